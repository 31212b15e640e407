package throttle

import (
	"net/netip"
	"testing"
	"time"

	"backroom/store/clocktest"
)

func TestPenaltyGrowsAndExpires(t *testing.T) {
	c := clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	b := New(c.Now, Penalties{Min: 15 * time.Second, Max: time.Minute})
	ip := netip.MustParseAddr("203.0.113.9")
	other := netip.MustParseAddr("203.0.113.10")
	for i := range 2 {
		b.Penalise(ip, 5*time.Second)
		if _, refused := b.Refused(ip); refused {
			t.Fatalf("refused after %d failures (below Min)", i+1)
		}
	}
	b.Penalise(ip, 5*time.Second)
	until, refused := b.Refused(ip)
	if !refused || !until.Equal(c.Now().Add(15*time.Second)) {
		t.Fatalf("after 3 failures: refused %v until %v", refused, until)
	}
	if _, refused := b.Refused(other); refused {
		t.Fatal("another source is refused too")
	}
	c.Advance(16 * time.Second)
	if _, refused := b.Refused(ip); refused {
		t.Fatal("still refused after the penalty ran out")
	}
	// Failing again makes the next refusal longer, up to Max.
	b.Penalise(ip, 5*time.Second)
	if until, _ := b.Refused(ip); !until.Equal(c.Now().Add(20 * time.Second)) {
		t.Fatalf("second refusal until %v, want 20s", until)
	}
	for range 20 {
		b.Penalise(ip, 5*time.Second)
	}
	if until, _ := b.Refused(ip); !until.Equal(c.Now().Add(time.Minute)) {
		t.Fatalf("capped refusal until %v, want Max", until)
	}
	// Quiet for longer than Max: forgiven.
	c.Advance(2 * time.Minute)
	b.Penalise(ip, 5*time.Second)
	if _, refused := b.Refused(ip); refused {
		t.Fatal("not forgiven after a quiet period")
	}
}

func TestExemptAndMapped(t *testing.T) {
	c := clocktest.New(time.Unix(1e9, 0))
	b := New(c.Now, Penalties{Min: time.Second, Max: time.Minute, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	lo := netip.MustParseAddr("127.0.0.1")
	b.Penalise(lo, time.Hour)
	if _, refused := b.Refused(lo); refused || b.Len() != 0 {
		t.Fatal("an exempt source was penalised")
	}
	// An IPv4-mapped IPv6 address is the same source as the IPv4 one.
	b.Penalise(netip.MustParseAddr("::ffff:192.0.2.1"), 5*time.Second)
	if _, refused := b.Refused(netip.MustParseAddr("192.0.2.1")); !refused {
		t.Fatal("mapped address not unified")
	}
	b.Penalise(netip.Addr{}, time.Hour) // no address: ignored
	if b.Len() != 1 {
		t.Fatalf("Len = %d", b.Len())
	}
}

func TestForgetsOldSources(t *testing.T) {
	c := clocktest.New(time.Unix(1e9, 0))
	b := New(c.Now, Penalties{Min: time.Hour, Max: time.Minute})
	for i := range maxSources {
		b.Penalise(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), time.Second)
	}
	c.Advance(2 * time.Minute)
	b.Penalise(netip.MustParseAddr("192.0.2.1"), time.Second)
	b.Penalise(netip.MustParseAddr("192.0.2.2"), time.Second)
	if n := b.Len(); n > 2 {
		t.Fatalf("%d sources remembered after the old ones expired", n)
	}
}
