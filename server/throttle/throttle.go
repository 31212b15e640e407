// Package throttle keeps per-source penalties for failed sign-ins, modelled
// on OpenSSH's PerSourcePenalties: each failure adds time to its source's
// penalty, and once the penalty reaches a minimum the source is refused
// until it runs out. A source that keeps failing is refused for longer each
// time, up to a maximum; a source quiet for that long is forgiven.
// Successes add nothing. The SSH server and the web admin each keep a Box.
package throttle

import (
	"net/netip"
	"sync"
	"time"
)

// Penalties configure a Box.
type Penalties struct {
	// Min is the penalty at which a source starts being refused; Max caps
	// any penalty (and is how long a source must stay quiet to be
	// forgiven).
	Min, Max time.Duration
	// Exempt sources are never penalised.
	Exempt []netip.Prefix
}

// maxSources is how many sources a Box remembers before it forgets those
// whose penalty ran out long ago.
const maxSources = 4096

// Box holds the penalties of sources. It is safe for concurrent use.
type Box struct {
	now func() time.Time
	p   Penalties

	mu      sync.Mutex
	sources map[netip.Addr]*penalty
}

type penalty struct {
	accrued  time.Duration // penalty accumulated
	until    time.Time     // refused until then
	lastFail time.Time
}

// New returns an empty Box; now is its clock (nil: time.Now).
func New(now func() time.Time, p Penalties) *Box {
	if now == nil {
		now = time.Now
	}
	return &Box{now: now, p: p, sources: map[netip.Addr]*penalty{}}
}

// Exempt reports whether ip is never penalised.
func (b *Box) Exempt(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range b.p.Exempt {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Refused reports whether ip is refused now, and until when.
func (b *Box) Refused(ip netip.Addr) (time.Time, bool) {
	ip = ip.Unmap()
	if b.Exempt(ip) {
		return time.Time{}, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if p := b.sources[ip]; p != nil && b.now().Before(p.until) {
		return p.until, true
	}
	return time.Time{}, false
}

// Penalise adds d to ip's penalty; once it reaches Min the source is
// refused for the accrued time.
func (b *Box) Penalise(ip netip.Addr, d time.Duration) {
	ip = ip.Unmap()
	if d <= 0 || !ip.IsValid() || b.Exempt(ip) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	p := b.sources[ip]
	if p == nil {
		p = &penalty{}
		b.sources[ip] = p
	}
	if now.Sub(p.lastFail) > b.p.Max {
		// Quiet for long enough: forgiven.
		*p = penalty{}
	}
	p.lastFail = now
	p.accrued += d
	if p.accrued > b.p.Max {
		p.accrued = b.p.Max
	}
	if p.accrued >= b.p.Min {
		p.until = now.Add(p.accrued)
	}
	// Forget sources whose penalty ran out long ago, so the map stays small.
	if len(b.sources) > maxSources {
		for a, q := range b.sources {
			if now.Sub(q.lastFail) > b.p.Max {
				delete(b.sources, a)
			}
		}
	}
}

// Len is how many sources the Box remembers.
func (b *Box) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.sources)
}
