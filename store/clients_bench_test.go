package store

// Benchmarks of the clients store at scale. They are skipped unless
// BACKROOM_BENCH_CLIENTS holds the number of clients to seed, e.g.
//
//	BACKROOM_BENCH_CLIENTS=1000000 go test ./store/ -run '^$' -bench 'SeedClients' -benchtime 1x -timeout 30m
//	BACKROOM_BENCH_CLIENTS=1000000 go test ./store/ -run '^$' -bench 'ClientPages|ClientSearch' -benchtime 500x -timeout 60m
//
// Page and search benchmarks report p50/p95/max latency per call of
// ListClients (page and count together); the search ones also print each
// query's matches to stderr.
//
// BenchmarkSeedClients seeds a fresh store every run. The other benchmarks
// share one seeded store, kept between runs in BACKROOM_BENCH_DIR (default
// $TMPDIR/backroom-bench-clients-N-vSCHEMA) because seeding a million
// clients takes most of a minute; delete the directory to seed again.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var benchSeedNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// benchClients is the fixture size from BACKROOM_BENCH_CLIENTS; the
// benchmark is skipped when it is unset.
func benchClients(b *testing.B) int {
	b.Helper()
	v := os.Getenv("BACKROOM_BENCH_CLIENTS")
	if v == "" {
		b.Skip("set BACKROOM_BENCH_CLIENTS (e.g. 1000000) to run the clients benchmarks")
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("BACKROOM_BENCH_CLIENTS=%q is not a positive number", v)
	}
	return n
}

func openBenchStore(b *testing.B, dir string, mk MasterKey) *Store {
	b.Helper()
	s, err := Open(ctxb, Options{Dir: dir, MasterKey: mk, Now: func() time.Time { return benchSeedNow }})
	if err != nil {
		b.Fatalf("Open: %v", err)
	}
	return s
}

func dbSize(dir string) int64 {
	var n int64
	for _, f := range []string{DBFile, DBFile + "-wal"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err == nil {
			n += fi.Size()
		}
	}
	return n
}

func BenchmarkSeedClients(b *testing.B) {
	n := benchClients(b)
	b.StopTimer()
	for range b.N {
		dir := filepath.Join(b.TempDir(), "data")
		s := openBenchStore(b, dir, NewMasterKey())
		b.StartTimer()
		start := time.Now()
		if err := s.SeedClients(ctxb, n, benchSeedNow, nil); err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		b.StopTimer()
		// What closing the store (as `dev seed` does) adds: the WAL copied
		// into the database.
		start = time.Now()
		if err := s.Checkpoint(ctxb); err != nil {
			b.Fatal(err)
		}
		cp := time.Since(start)
		size := dbSize(dir)
		b.ReportMetric(el.Seconds(), "s/seed")
		b.ReportMetric(cp.Seconds(), "s/checkpoint")
		b.ReportMetric(float64(n)/el.Seconds(), "rows/s")
		b.ReportMetric(float64(size)/(1<<20), "MiB")
		b.Logf("seeded %d clients in %v (%.0f rows/s), then checkpointed in %v; database %.1f MiB", n, el.Round(time.Millisecond),
			float64(n)/el.Seconds(), cp.Round(time.Millisecond), float64(size)/(1<<20))
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// benchFixture is one seeded store shared by the page and search
// benchmarks of a process.
var benchFixture struct {
	once sync.Once
	s    *Store
	err  error
}

func sharedBenchStore(b *testing.B) *Store {
	b.Helper()
	n := benchClients(b)
	benchFixture.once.Do(func() {
		dir := os.Getenv("BACKROOM_BENCH_DIR")
		if dir == "" {
			dir = filepath.Join(os.TempDir(), fmt.Sprintf("backroom-bench-clients-%d-v%d", n, SchemaVersion))
		}
		marker := filepath.Join(dir, "seeded")
		keyPath := filepath.Join(dir, MasterKeyFile)
		if _, err := os.Stat(marker); err != nil {
			if err := os.RemoveAll(dir); err != nil {
				benchFixture.err = err
				return
			}
		}
		if err := EnsureDir(dir); err != nil {
			benchFixture.err = err
			return
		}
		mk, _, err := LoadMasterKeyFile(keyPath, true)
		if err != nil {
			benchFixture.err = err
			return
		}
		s, err := Open(ctxb, Options{Dir: dir, MasterKey: mk, Now: func() time.Time { return benchSeedNow }})
		if err != nil {
			benchFixture.err = err
			return
		}
		if _, err := os.Stat(marker); err != nil {
			start := time.Now()
			if err := s.SeedClients(ctxb, n, benchSeedNow, nil); err != nil {
				benchFixture.err = err
				return
			}
			if err := s.Checkpoint(ctxb); err != nil {
				benchFixture.err = err
				return
			}
			if err := os.WriteFile(marker, []byte(strconv.Itoa(n)), 0o600); err != nil {
				benchFixture.err = err
				return
			}
			fmt.Fprintf(os.Stderr, "seeded the shared fixture (%d clients) in %s in %v\n", n, dir, time.Since(start).Round(time.Millisecond))
		} else {
			fmt.Fprintf(os.Stderr, "using the shared fixture in %s\n", dir)
		}
		// Some clients deleted at Stripe (one in 200), as a sync marks
		// them: the "deleted only" view has something to page through.
		var deleted int
		if err := s.rdb.QueryRowContext(ctxb, `SELECT count(*) FROM clients WHERE deleted = 1`).Scan(&deleted); err != nil {
			benchFixture.err = err
			return
		}
		if deleted == 0 {
			if _, err := s.wdb.ExecContext(ctxb, `UPDATE clients SET deleted = 1 WHERE id % 200 = 0`); err != nil {
				benchFixture.err = err
				return
			}
		}
		benchFixture.s = s
	})
	if benchFixture.err != nil {
		b.Fatalf("bench fixture: %v", benchFixture.err)
	}
	return benchFixture.s
}

// latencies collects the duration of each operation and reports p50/p95.
type latencies []time.Duration

func (l latencies) pct(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

func (l latencies) report(b *testing.B) {
	b.ReportMetric(float64(l.pct(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(l.pct(0.95).Microseconds())/1000, "p95-ms")
	b.ReportMetric(float64(l.pct(1).Microseconds())/1000, "max-ms")
}

// benchCursors picks clients spread over the table, to start "next page"
// reads from the middle of an order.
func benchCursors(b *testing.B, s *Store, k int) []Client {
	b.Helper()
	var maxID int64
	if err := s.rdb.QueryRowContext(ctxb, `SELECT max(id) FROM clients`).Scan(&maxID); err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]Client, 0, k)
	for len(out) < k {
		c, err := scanClient(s.rdb.QueryRowContext(ctxb, `SELECT `+clientCols+` FROM clients WHERE id = ?`, 1+r.Int64N(maxID)))
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func BenchmarkClientPages(b *testing.B) {
	s := sharedBenchStore(b)
	cursors := benchCursors(b, s, 200)
	yes, no := true, false
	filters := []struct {
		name string
		q    ClientQuery
	}{
		{"all", ClientQuery{}},
		{"live", ClientQuery{Livemode: &yes}},
		{"test", ClientQuery{Livemode: &no}},
		{"delinquent", ClientQuery{Delinquent: &yes}},
		{"hide-deleted", ClientQuery{Deleted: &no}},
		{"deleted-only", ClientQuery{Deleted: &yes}},
		{"test-delinquent", ClientQuery{Livemode: &no, Delinquent: &yes}},
		{"deleted-delinquent", ClientQuery{Deleted: &yes, Delinquent: &yes}},
	}
	for _, f := range filters {
		for _, sort := range []string{SortName, SortCreated, SortBalance} {
			for _, desc := range []bool{false, true} {
				dir := "asc"
				if desc {
					dir = "desc"
				}
				for _, which := range []string{"first", "next"} {
					name := fmt.Sprintf("%s/%s-%s/%s", f.name, sort, dir, which)
					b.Run(name, func(b *testing.B) {
						var lat latencies
						var rows, total int64
						for i := range b.N {
							q := f.q
							q.Sort, q.Desc, q.Limit = sort, desc, 40
							if which == "next" {
								c := cursors[i%len(cursors)]
								q.After = &c
							}
							start := time.Now()
							p, err := s.ListClients(ctxb, q)
							lat = append(lat, time.Since(start))
							if err != nil {
								b.Fatal(err)
							}
							rows += int64(len(p.Clients))
							total = p.Total
						}
						lat.report(b)
						b.ReportMetric(float64(rows)/float64(b.N), "rows/page")
						b.ReportMetric(float64(total), "total")
					})
				}
			}
		}
	}
}

// benchSearchQueries makes 100 realistic queries from the seeded data:
// name fragments, email fragments and customer id prefixes, as someone
// types them.
func benchSearchQueries(b *testing.B, s *Store) []string {
	b.Helper()
	qs := []string{
		"ara", "Müll", "nguy", "ita.ko", "@shop.exa", "Tomás", "smith", "Okaf", "Tanaka", "son",
		"Wonka", "GmbH", "billing", "studio.ex", "lee", "López", "Grace", "ya Pat", "elena.", "mail.exam",
	}
	r := rand.New(rand.NewPCG(3, 4))
	for i, c := range benchCursors(b, s, 80) {
		switch i % 4 {
		case 0: // a customer id prefix, as someone pasting the start of one
			qs = append(qs, c.CustomerID[:6+r.IntN(3)])
		case 1: // a fragment of the name
			rs := []rune(c.Name)
			i := r.IntN(max(1, len(rs)-4))
			qs = append(qs, string(rs[i:min(len(rs), i+3+r.IntN(3))]))
		case 2: // the start of the email (the person's name part)
			rs := []rune(c.Email)
			qs = append(qs, string(rs[:min(len(rs), 5+r.IntN(4))]))
		case 3: // a fragment of the domain
			rs := []rune(c.Email)
			at := slices.Index(rs, '@')
			qs = append(qs, string(rs[at+r.IntN(2):min(len(rs), at+5+r.IntN(4))]))
		}
	}
	return qs
}

// benchDigitQueries are email fragments that span the seeded emails'
// sequence numbers and a common domain ("1818@exam"): the worst case of the
// trigram index (see BenchmarkClientSearchDigits).
func benchDigitQueries(b *testing.B, s *Store) []string {
	b.Helper()
	var qs []string
	for _, c := range benchCursors(b, s, 120) {
		rs := []rune(c.Email)
		at := slices.Index(rs, '@')
		if q := string(rs[max(0, at-4):min(len(rs), at+5)]); strings.HasSuffix(q, "@exam") && len(qs) < 20 {
			qs = append(qs, q)
		}
	}
	return qs
}

func BenchmarkClientSearch(b *testing.B) {
	s := sharedBenchStore(b)
	benchSearch(b, s, benchSearchQueries(b, s))
}

// BenchmarkClientSearchDigits: a fragment like "1818@exam" has one rare
// trigram ("181", in a few thousand seeded emails) and several that are in
// half of them ("@ex", "exa", "xam"): FTS5 checks every row that has the
// rare one against the long lists of the others.
func BenchmarkClientSearchDigits(b *testing.B) {
	s := sharedBenchStore(b)
	benchSearch(b, s, benchDigitQueries(b, s))
}

func benchSearch(b *testing.B, s *Store, queries []string) {
	b.Helper()
	type result struct {
		total int64
		exact bool
		lat   latencies
	}
	res := make([]result, len(queries))
	var all latencies
	for i := range b.N {
		k := i % len(queries)
		start := time.Now()
		p, err := s.ListClients(ctxb, ClientQuery{Search: queries[k]})
		d := time.Since(start)
		if err != nil {
			b.Fatalf("%q: %v", queries[k], err)
		}
		all = append(all, d)
		res[k].lat = append(res[k].lat, d)
		res[k].total, res[k].exact = p.Total, p.TotalExact
	}
	all.report(b)
	if b.N >= len(queries) {
		var lines []string
		for k, q := range queries {
			about := "≥"
			if res[k].exact {
				about = " "
			}
			lines = append(lines, fmt.Sprintf("  %-14q %s%-6d p50 %6.2f ms  max %6.2f ms", q, about, res[k].total,
				float64(res[k].lat.pct(0.5).Microseconds())/1000, float64(res[k].lat.pct(1).Microseconds())/1000))
		}
		// Printed, not logged: a benchmark's log is cut after ten lines.
		fmt.Fprintf(os.Stderr, "%s: %d queries, first page each (matches, counted up to %d):\n%s\n", b.Name(), len(queries), defaultClientBounds.countCap, strings.Join(lines, "\n"))
	}
}

// BenchmarkClientSearchCount times the count alone ("of about N") for
// broad queries, and the first page without it.
func BenchmarkClientSearchCount(b *testing.B) {
	s := sharedBenchStore(b)
	for _, q := range []string{"exa", "example.com", "son", "ara", "cus_", "an"} {
		b.Run(q, func(b *testing.B) {
			var lat latencies
			var n int64
			var exact bool
			for range b.N {
				query := ClientQuery{Search: q}
				// As ListClients counts a search without filters.
				from, conds, args := "clients_fts", []string{"clients_fts MATCH ?"}, []any{ftsQuery(q)}
				if query.searchMode() == "prefix" {
					from, conds, args = "clients INDEXED BY clients_name", []string{"clients.name LIKE ? ESCAPE '\\'"}, []any{escapeLike(q) + "%"}
				}
				start := time.Now()
				var err error
				n, exact, err = s.countClients(ctxb, from, conds, args)
				lat = append(lat, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
			}
			lat.report(b)
			b.ReportMetric(float64(n), "count")
			_ = exact
		})
	}
}
