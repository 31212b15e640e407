package sshd

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"
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
	now       func() time.Time
	startups  MaxStartups
	penalties Penalties

	mu      sync.Mutex
	unauth  int
	sources map[netip.Addr]*penalty
}

type penalty struct {
	accrued  time.Duration // penalty accumulated
	until    time.Time     // refused until then
	lastFail time.Time
}

func newGate(now func() time.Time, ms MaxStartups, p Penalties) *gate {
	return &gate{now: now, startups: ms, penalties: p, sources: map[netip.Addr]*penalty{}}
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

func (g *gate) exempt(ip netip.Addr) bool {
	for _, p := range g.penalties.Exempt {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// admit reports whether a new connection from ip may start authenticating,
// and why not. An admitted connection holds an unauthenticated slot until
// release.
func (g *gate) admit(ip netip.Addr) (bool, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if p := g.sources[ip]; p != nil && now.Before(p.until) && !g.exempt(ip) {
		return false, "source penalised until " + p.until.UTC().Format(time.RFC3339)
	}
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
	if d <= 0 || !ip.IsValid() || g.exempt(ip) {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	p := g.sources[ip]
	if p == nil {
		p = &penalty{}
		g.sources[ip] = p
	}
	if now.Sub(p.lastFail) > g.penalties.Max {
		// Quiet for long enough: forgiven.
		*p = penalty{}
	}
	// A source that keeps failing is refused for longer each time, up to Max.
	p.lastFail = now
	p.accrued += d
	if p.accrued > g.penalties.Max {
		p.accrued = g.penalties.Max
	}
	if p.accrued >= g.penalties.Min {
		p.until = now.Add(p.accrued)
	}
	// Forget sources whose penalty ran out long ago, so the map stays small.
	if len(g.sources) > 4096 {
		for a, q := range g.sources {
			if now.Sub(q.lastFail) > g.penalties.Max {
				delete(g.sources, a)
			}
		}
	}
}
