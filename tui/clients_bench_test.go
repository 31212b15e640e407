package tui

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"backroom/store"
	"backroom/store/clocktest"
)

// clientsFixture is the store seeded with BACKROOM_BENCH_CLIENTS clients,
// shared by the clients benchmarks (seeded once per process).
var clientsFixture benchFixture

func (f *benchFixture) getClients(b *testing.B) int {
	env := os.Getenv("BACKROOM_BENCH_CLIENTS")
	if env == "" {
		b.Skip("set BACKROOM_BENCH_CLIENTS (e.g. 1000000) to run")
	}
	n, err := strconv.Atoi(env)
	if err != nil || n <= 0 {
		b.Fatalf("BACKROOM_BENCH_CLIENTS=%q is not a positive number", env)
	}
	f.once.Do(func() {
		f.dir, f.err = os.MkdirTemp("", "backroom-bench-clients-")
		if f.err != nil {
			return
		}
		f.clock = clocktest.New(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
		f.st, f.err = store.Open(context.Background(), store.Options{Dir: f.dir, MasterKey: store.NewMasterKey(), Now: f.clock.Now})
		if f.err != nil {
			return
		}
		f.fp = addMember(b, f.st, "alice", true, false).fp
		start := time.Now()
		f.err = f.st.SeedClients(context.Background(), n, f.clock.Now(), nil)
		f.seed = time.Since(start)
	})
	if f.err != nil {
		b.Fatal(f.err)
	}
	return n
}

// clientsBench drives one console on the Clients screen of the fixture.
type clientsBench struct {
	b  *testing.B
	h  *harness
	cs *clientsScreen
}

func newClientsBench(b *testing.B, f *benchFixture) *clientsBench {
	h := newHarness(b, f.clock, Options{Store: f.st, Actor: sshActor("alice", store.RoleAdmin), Fingerprint: f.fp, Width: 120, Height: 40})
	h.forget = true
	h.keys("2")
	return &clientsBench{b: b, h: h, cs: clientsOf(h)}
}

// shows reports whether the frame shows the page the screen holds.
func (c *clientsBench) shows() bool {
	v := c.h.m.View()
	if c.cs.loading {
		return false
	}
	if len(c.cs.rows) == 0 {
		return strings.Contains(v, "no clients match")
	}
	return strings.Contains(v, c.cs.rows[0].CustomerID)
}

// measure times act (Update, the Cmds it returns against the store, the
// Updates of their answers) until View shows the new rows.
func (c *clientsBench) measure(into *[]time.Duration, act func()) {
	start := time.Now()
	act()
	if !c.shows() {
		c.b.Fatalf("the view does not show the new rows:\n%s", c.h.m.View())
	}
	*into = append(*into, time.Since(start))
}

// report adds an operation's p50 and p95 to the benchmark's metrics and
// returns a line for the log.
func report(b *testing.B, name string, ds []time.Duration) string {
	if len(ds) == 0 {
		return ""
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	p50, p95 := percentile(ds, 50), percentile(ds, 95)
	b.ReportMetric(ms(p50), name+"-p50-ms")
	b.ReportMetric(ms(p95), name+"-p95-ms")
	return fmt.Sprintf("%s n=%d p50 %.2f p95 %.2f max %.2f ms", name, len(ds), ms(p50), ms(p95), ms(slices.Max(ds)))
}

// BenchmarkClientsScreen measures the Clients screen at
// BACKROOM_BENCH_CLIENTS clients: from a key press through Update, the
// store query in its Cmd and the new page's Update to a View that shows
// the new rows (120x40, 34 rows a page).
//
//	BACKROOM_BENCH_CLIENTS=1000000 go test -run='^$' -bench=ClientsScreen -benchtime=100x -timeout=30m ./tui/
func BenchmarkClientsScreen(b *testing.B) {
	f := &clientsFixture
	n := f.getClients(b)
	b.Logf("seeded %d clients in %v", n, f.seed.Round(time.Millisecond))
	c := newClientsBench(b, f)
	h, cs := c.h, c.cs
	// Realistic searches typed one character at a time: name fragments,
	// email fragments and customer id prefixes (the synthetic data's
	// spelling).
	benchSearches := []string{"tanaka", "Nguyen", "ada.kh", "finance", "Kowals", "cus_A", "müller", "studio",
		"Priya", "grace.", "Wonka", "cus_zz", "Okafor", "ap12", "Sofia", "Pied P"}

	var pgdn, pgup, down, first, last, sortK, dirK, filter []time.Duration
	var search, prefix []time.Duration
	matches := map[string]string{}

	b.ResetTimer()
	for i := range b.N {
		// Three pages forward and back; ↓ across a page edge.
		for range 3 {
			before := cs.rows[0].ID
			c.measure(&pgdn, func() { h.keys("pgdown") })
			if cs.rows[0].ID == before {
				b.Fatal("pgdn did not move")
			}
		}
		for range 3 {
			c.measure(&pgup, func() { h.keys("pgup") })
		}
		cs.grid.setCursor(len(cs.rows) - 1)
		c.measure(&down, func() { h.keys("down") })

		// Sort: each measured key press reloads the first page.
		c.measure(&sortK, func() { h.keys("s") }) // created
		c.measure(&dirK, func() { h.keys("S") })  // created, newest first
		c.measure(&sortK, func() { h.keys("s") }) // balance
		c.measure(&pgdn, func() { h.keys("pgdown") })
		c.measure(&sortK, func() { h.keys("s") }) // name
		c.measure(&dirK, func() { h.keys("S") })  // name ascending again
		if i%4 == 0 {
			c.measure(&last, func() { h.keys("G") })
			c.measure(&first, func() { h.keys("g") })
		}

		// Filters.
		c.measure(&filter, func() { h.keys("l") })
		c.measure(&filter, func() { h.keys("d") })
		c.measure(&filter, func() { h.keys("d") })
		c.measure(&filter, func() { h.keys("l", "l") })
		c.measure(&filter, func() { h.keys("x") }) // deleted hidden
		c.measure(&filter, func() { h.keys("x") }) // deleted only
		c.measure(&filter, func() { h.keys("x") }) // all again

		// A search typed key by key; each keystroke to its frame.
		term := benchSearches[i%len(benchSearches)]
		h.keys("/")
		for j, r := range term {
			into := &search
			if j < 2 {
				into = &prefix
			}
			c.measure(into, func() { h.typeText(string(r)) })
		}
		if _, ok := matches[term]; !ok {
			matches[term] = cs.rangeText()
		}
		h.keys("esc")
	}
	b.StopTimer()

	// The testing package keeps 10 log lines of a benchmark: a few long
	// ones.
	var lines []string
	for _, r := range []struct {
		name string
		ds   []time.Duration
	}{{"pgdn", pgdn}, {"pgup", pgup}, {"down-past-edge", down}, {"sort", sortK}, {"sort-direction", dirK},
		{"filter", filter}, {"search-1-2-chars", prefix}, {"search-3+-chars", search}, {"bottom(G)", last}, {"top(g)", first},
		{"all", slices.Concat(pgdn, pgup, down, sortK, dirK, filter, prefix, search, last, first)}} {
		if l := report(b, r.name, r.ds); l != "" {
			lines = append(lines, l)
		}
	}
	b.Logf("b.N=%d: %s", b.N, strings.Join(lines[:len(lines)/2], "; "))
	b.Logf("b.N=%d: %s", b.N, strings.Join(lines[len(lines)/2:], "; "))
	var ms []string
	for _, t := range benchSearches {
		if m, ok := matches[t]; ok {
			ms = append(ms, strconv.Quote(t)+": "+m)
		}
	}
	b.Logf("matches (the total the status line shows): %s", strings.Join(ms, ", "))
	b.ReportMetric(0, "ns/op")
}

// vmRSS is the process's resident set size in bytes (Linux), 0 elsewhere.
func vmRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// sessionMem is BenchmarkClientsSessionMemory's measurement, made once.
var sessionMem struct {
	once                sync.Once
	firstHeap, firstRSS float64
	heap, rss, total    float64
}

// memNow is the heap in use and the RSS after a full collection that
// returns freed memory to the system (else garbage left by earlier work,
// such as seeding, makes the RSS deltas meaningless).
func memNow() (heap uint64, rss int64) {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, vmRSS()
}

// BenchmarkClientsSessionMemory measures what one console session browsing
// BACKROOM_BENCH_CLIENTS clients adds: a Model created, the Clients screen
// opened, 200 pages forward, a search, a detail. The first browse also
// fills SQLite's page cache (shared by every session); a second session
// browsing the same pages shows the cost of a session alone.
//
//	BACKROOM_BENCH_CLIENTS=1000000 go test -run='^$' -bench=ClientsSessionMemory -benchtime=1x -timeout=30m ./tui/
func BenchmarkClientsSessionMemory(b *testing.B) {
	f := &clientsFixture
	f.getClients(b)
	browse := func() *clientsBench {
		c := newClientsBench(b, f)
		for range 200 {
			c.h.keys("pgdown")
		}
		c.h.keys("/")
		c.h.typeText("tanaka")
		c.h.keys("enter", "enter")
		if c.cs.detail == nil || !c.cs.detail.loaded {
			b.Fatal("the detail did not open")
		}
		c.h.keys("esc", "esc")
		return c
	}
	// Measured once per process: later runs (b.N > 1) would browse pages
	// the cache already holds.
	sessionMem.once.Do(func() {
		m := &sessionMem
		h0, r0 := memNow()
		first := browse()
		h1, r1 := memNow()
		second := browse()
		h2, r2 := memNow()
		runtime.KeepAlive(first)
		runtime.KeepAlive(second)
		m.firstHeap, m.firstRSS = float64(h1)-float64(h0), float64(r1-r0)
		m.heap, m.rss, m.total = float64(h2)-float64(h1), float64(r2-r1), float64(r2)
	})
	m := &sessionMem
	mib := func(v float64) float64 { return v / (1 << 20) }
	b.ReportMetric(mib(m.firstHeap), "first-session-heap-MiB")
	b.ReportMetric(mib(m.firstRSS), "first-session-rss-MiB")
	b.ReportMetric(mib(m.heap), "session-heap-MiB")
	b.ReportMetric(mib(m.rss), "session-rss-MiB")
	b.Logf("first session (cold SQLite page cache): heap %+.2f MiB, RSS %+.2f MiB; another session, same pages: heap %+.2f MiB, RSS %+.2f MiB; process RSS %.1f MiB",
		mib(m.firstHeap), mib(m.firstRSS), mib(m.heap), mib(m.rss), mib(m.total))
	b.ReportMetric(0, "ns/op")
}
