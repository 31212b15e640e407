package tui

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"backroom/store"
	"backroom/store/clocktest"
)

// benchFixture is the seeded store shared by the runs of one benchmark
// (the testing package calls a benchmark more than once; seeding a million
// rows once is enough).
type benchFixture struct {
	once  sync.Once
	dir   string
	st    *store.Store
	clock *clock
	fp    string
	seed  time.Duration
	err   error
}

var auditFixture benchFixture

func TestMain(m *testing.M) {
	code := m.Run()
	for _, f := range []*benchFixture{&auditFixture, &clientsFixture} {
		if f.st != nil {
			f.st.Close()
		}
		if f.dir != "" {
			os.RemoveAll(f.dir)
		}
	}
	os.Exit(code)
}

func (f *benchFixture) get(b *testing.B, n int) {
	f.once.Do(func() {
		f.dir, f.err = os.MkdirTemp("", "backroom-bench-")
		if f.err != nil {
			return
		}
		f.clock = clocktest.New(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
		f.st, f.err = store.Open(context.Background(), store.Options{Dir: f.dir, MasterKey: store.NewMasterKey(), Now: f.clock.Now})
		if f.err != nil {
			return
		}
		f.fp = addMember(b, f.st, "alice", true, false).fp
		step := 10 * time.Second
		start := time.Now()
		f.err = f.st.SeedAudit(context.Background(), n, f.clock.Now().Add(-time.Duration(n)*step), step)
		f.seed = time.Since(start)
	})
	if f.err != nil {
		b.Fatal(f.err)
	}
}

// percentile returns the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(float64(len(s))*p/100+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// BenchmarkAuditScreen measures the Audit screen at BACKROOM_BENCH_ROWS
// rows: from the key press through Update, the store query in its Cmd and
// the new page's Update to a View that shows the new rows.
//
//	BACKROOM_BENCH_ROWS=1000000 go test -run='^$' -bench=AuditScreen -benchtime=200x ./tui/
func BenchmarkAuditScreen(b *testing.B) {
	env := os.Getenv("BACKROOM_BENCH_ROWS")
	if env == "" {
		b.Skip("set BACKROOM_BENCH_ROWS (e.g. 1000000) to run")
	}
	n, err := strconv.Atoi(env)
	if err != nil || n <= 0 {
		b.Fatalf("BACKROOM_BENCH_ROWS=%q is not a positive number", env)
	}
	f := &auditFixture
	f.get(b, n)
	b.Logf("seeded %d audit rows in %v", n, f.seed.Round(time.Millisecond))

	h := newHarness(b, f.clock, Options{Store: f.st, Actor: sshActor("alice", store.RoleAdmin), Fingerprint: f.fp, Width: 120, Height: 40})
	h.forget = true
	h.keys("3")
	a := h.m.screens[2].(*auditScreen)

	// shows reports whether the frame shows the page's first row.
	shows := func() bool {
		v := h.m.View()
		if a.loading {
			return false
		}
		if len(a.rows) == 0 {
			return true // nothing matches: an empty table
		}
		return strings.Contains(v, fmtTime(a.rows[0].Time))
	}
	measure := func(into *[]time.Duration, act func()) {
		start := time.Now()
		act()
		if !shows() {
			b.Fatalf("the view does not show the new page:\n%s", h.m.View())
		}
		*into = append(*into, time.Since(start))
	}
	actors := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "unknown"}
	exact := []string{"login.failure", "key.updated", "session.start", "staff.added", "login.locked", "totp.enrolled"}
	prefixes := []string{"login.", "session.", "staff.", "key.", "totp.", "audit."}
	var page, actor, action, prefix, since, search []time.Duration

	b.ResetTimer()
	for i := range b.N {
		before := a.rows[0].ID
		measure(&page, func() { h.keys("pgdown") })
		if a.rows[0].ID >= before {
			b.Fatalf("pgdn did not move: %d then %d", before, a.rows[0].ID)
		}

		// Filters are typed untimed; the clock runs from enter (apply) to
		// the view showing the rows.
		h.keys("a")
		h.typeText(actors[i%len(actors)])
		measure(&actor, func() { h.keys("enter") })
		measure(&page, func() { h.keys("pgdown") })
		h.keys("x")

		h.keys("A")
		h.typeText(exact[i%len(exact)])
		measure(&action, func() { h.keys("enter") })
		h.keys("x")

		h.keys("A")
		h.typeText(prefixes[i%len(prefixes)])
		measure(&prefix, func() { h.keys("enter") })
		h.keys("x")

		if i < 5 {
			// Slower, informative only: a time range and a free-text search.
			h.keys("t")
			h.typeText(strconv.Itoa(1+i) + "d")
			measure(&since, func() { h.keys("enter") })
			h.keys("x")
			// The last keystroke of an incremental search for a rare text.
			text := "198.51.100.80:4000" + strconv.Itoa(i)
			h.keys("/")
			h.typeText(text[:len(text)-1])
			measure(&search, func() { h.typeText(text[len(text)-1:]) })
			h.keys("esc")
		}
		h.keys("g")
	}
	b.StopTimer()

	report := func(name string, ds []time.Duration) {
		p50, p95 := percentile(ds, 50), percentile(ds, 95)
		b.ReportMetric(float64(p50.Microseconds())/1000, name+"-p50-ms")
		b.ReportMetric(float64(p95.Microseconds())/1000, name+"-p95-ms")
		b.Logf("%-14s n=%-4d p50 %8.2f ms  p95 %8.2f ms  max %8.2f ms", name, len(ds),
			float64(p50.Microseconds())/1000, float64(p95.Microseconds())/1000, float64(slices.Max(ds).Microseconds())/1000)
	}
	report("pgdn", page)
	report("actor", actor)
	report("action", action)
	report("prefix", prefix)
	if len(since) > 0 {
		report("since", since)
		report("search", search)
	}
	b.ReportMetric(0, "ns/op")
}
