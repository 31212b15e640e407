package sshd

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"backroom/server/throttle"
)

// MaxStartups caps concurrent unauthenticated connections like OpenSSH's
// option of the same name: above Start, a new connection is refused with
// probability Rate% rising linearly to 100% at Full.
type MaxStartups struct{ Start, Rate, Full int }

// Penalties is OpenSSH's PerSourcePenalties, simplified: each kind of
// failure adds time to a source's penalty; once the penalty exceeds Min the
// source is refused until it expires. Penalties never exceed Max.
type Penalties struct {
	AuthFail time.Duration // a connection that failed authentication
	NoAuth   time.Duration // a connection that never tried
	Grace    time.Duration // a connection that ran out of login grace time
	Min, Max time.Duration
	Exempt   []netip.Prefix
}

// DefaultPenalties are OpenSSH's defaults.
var DefaultPenalties = Penalties{
	AuthFail: 5 * time.Second,
	NoAuth:   1 * time.Second,
	Grace:    10 * time.Second,
	Min:      15 * time.Second,
	Max:      10 * time.Minute,
}

// gate decides which connections may start authenticating.
type gate struct {
	startups  MaxStartups
	penalties *throttle.Box

	mu     sync.Mutex
	unauth int
}

func newGate(now func() time.Time, ms MaxStartups, p Penalties) *gate {
	return &gate{startups: ms, penalties: throttle.New(now, throttle.Penalties{Min: p.Min, Max: p.Max, Exempt: p.Exempt})}
}

func sourceAddr(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap()
		}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// admit reports whether a new connection from ip may start authenticating,
// and why not. An admitted connection holds an unauthenticated slot until
// release.
func (g *gate) admit(ip netip.Addr) (bool, string) {
	if until, refused := g.penalties.Refused(ip); refused {
		return false, "source penalised until " + until.UTC().Format(time.RFC3339)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	ms := g.startups
	if ms.Full > 0 && g.unauth >= ms.Full {
		return false, "too many unauthenticated connections (MaxStartups full)"
	}
	if ms.Start > 0 && g.unauth >= ms.Start {
		prob := ms.Rate
		if ms.Full > ms.Start {
			prob += (100 - ms.Rate) * (g.unauth - ms.Start) / (ms.Full - ms.Start)
		}
		if rand.IntN(100) < prob {
			return false, "too many unauthenticated connections (MaxStartups)"
		}
	}
	g.unauth++
	return true, ""
}

// release frees an unauthenticated slot.
func (g *gate) release() {
	g.mu.Lock()
	g.unauth--
	g.mu.Unlock()
}

// Unauthenticated reports the number of connections still authenticating.
func (g *gate) unauthenticated() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.unauth
}

// penalise adds d to ip's penalty; once over Min it takes effect.
func (g *gate) penalise(ip netip.Addr, d time.Duration) {
	g.penalties.Penalise(ip, d)
}
