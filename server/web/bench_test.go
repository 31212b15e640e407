package web

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"backroom/store"
)

// benchRows is the fixture size: BACKROOM_BENCH_ROWS, or a small default.
func benchRows(b *testing.B) int {
	b.Helper()
	v := os.Getenv("BACKROOM_BENCH_ROWS")
	if v == "" {
		return 10_000
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 10_000 {
		b.Fatalf("BACKROOM_BENCH_ROWS=%q is not a number of at least 10000", v)
	}
	return n
}

// pagesFixture is a seeded store, the web admin on it and a signed-in
// session.
type pagesFixture struct {
	h       *Handler
	cookie  string
	samples []store.Client // clients spread over the table
	rows    int
	seeded  time.Duration
}

// benchWebhooks is how many webhook events the fixture stores (every third
// failed): the figure is about clients and audit rows, but the
// webhooks page should list something.
const benchWebhooks = 300

func newPagesFixture(b *testing.B, n int) *pagesFixture {
	b.Helper()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	st, err := store.Open(ctxb, store.Options{Dir: b.TempDir(), MasterKey: store.NewMasterKey(), Now: clock})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })

	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.AddStaff(ctxb, cliActor, store.AddStaffRequest{Name: "alice", Key: key, Admin: true}); err != nil {
		b.Fatal(err)
	}

	start := time.Now()
	if err := st.SeedClients(ctxb, n, now, nil); err != nil {
		b.Fatal(err)
	}
	step := 10 * time.Second
	if err := st.SeedAudit(ctxb, n, now.Add(-time.Duration(n)*step), step); err != nil {
		b.Fatal(err)
	}
	f := &pagesFixture{rows: n, seeded: time.Since(start)}

	// Clients spread over the table, found by the zero-padded sequence
	// number that ends a seeded customer id.
	for i := range 100 {
		seq := fmt.Sprintf("%06d", 1+i*(n-1)/100)
		p, err := st.ListClients(ctxb, store.ClientQuery{Search: seq, Limit: 500})
		if err != nil {
			b.Fatal(err)
		}
		k := slices.IndexFunc(p.Clients, func(c store.Client) bool { return strings.HasSuffix(c.CustomerID, seq) })
		if k < 0 {
			b.Fatalf("no seeded client ends in %s", seq)
		}
		f.samples = append(f.samples, p.Clients[k])
	}

	// Webhook events: some processed (billing activity of sampled
	// clients), every third failed.
	for i := range benchWebhooks {
		c := f.samples[i%len(f.samples)]
		id := fmt.Sprintf("evt_bench%05d", i)
		ev := store.IncomingEvent{EventID: id, Type: "invoice.paid", Created: now, CustomerID: c.CustomerID,
			Payload: []byte(`{"id":"` + id + `","object":"event","type":"invoice.paid"}`)}
		process := func(store.IncomingEvent) (store.WebhookEffect, error) {
			if i%3 == 0 {
				return store.WebhookEffect{}, errors.New("bench: processing failed")
			}
			return store.WebhookEffect{Billing: &store.BillingEvent{EventID: id, CustomerID: c.CustomerID, Type: "invoice.paid",
				ObjectID: fmt.Sprintf("in_bench%05d", i), Amount: 1200, Currency: "usd", Status: "paid", Created: now, Summary: "invoice paid"}}, nil
		}
		if _, err := st.ReceiveWebhook(ctxb, store.WebhookAttempt{ReceivedAt: now, RemoteAddr: "54.187.174.169"}, ev, process); err != nil {
			b.Fatal(err)
		}
	}

	h, err := New(Config{
		Store:            st,
		Path:             testPath,
		Allow:            []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Limits:           store.WebSessionLimits{Idle: 30 * time.Minute, MaxAge: 12 * time.Hour},
		Now:              clock,
		WebhookSecretSet: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	f.h = h
	f.cookie = f.signIn(b, st)
	return f
}

// serve sends one request to the handler from a loopback address.
func (f *pagesFixture) serve(method, target string, body url.Values, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	var r *http.Request
	if body != nil {
		r = httptest.NewRequest(method, target, strings.NewReader(body.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Sec-Fetch-Site", "same-origin")
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	r.RemoteAddr = "127.0.0.1:5555"
	for _, c := range cookies {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

// signIn redeems a console-issued sign-in link, as a browser does, and
// returns the session cookie's value.
func (f *pagesFixture) signIn(b *testing.B, st *store.Store) string {
	b.Helper()
	tok, _, err := st.CreateSignInLink(ctxb, store.Actor{Name: "alice", Role: store.RoleAdmin, Channel: store.ChannelSSH, RemoteAddr: "198.51.100.9", SessionID: "s1"})
	if err != nil {
		b.Fatal(err)
	}
	page := f.serve("GET", testPath+"link/"+tok, nil)
	m := csrfRE.FindStringSubmatch(page.Body.String())
	if page.Code != http.StatusOK || m == nil {
		b.Fatalf("link page = %d:\n%s", page.Code, page.Body)
	}
	res := f.serve("POST", testPath+"link/"+tok, url.Values{"csrf": {m[1]}}, page.Result().Cookies()...)
	for _, c := range res.Result().Cookies() {
		if c.Name == sessionCookie && c.Value != "" {
			return c.Value
		}
	}
	b.Fatalf("redeeming the link = %d → %q: no session cookie", res.Code, res.Header().Get("Location"))
	return ""
}

// get times one signed-in GET of the page at rel (under the admin's
// path) and returns the body.
func (f *pagesFixture) get(b *testing.B, rel string) (string, time.Duration) {
	b.Helper()
	r := httptest.NewRequest("GET", testPath+rel, nil)
	r.RemoteAddr = "127.0.0.1:5555"
	r.AddCookie(&http.Cookie{Name: sessionCookie, Value: f.cookie})
	w := httptest.NewRecorder()
	start := time.Now()
	f.h.ServeHTTP(w, r)
	d := time.Since(start)
	if w.Code != http.StatusOK {
		b.Fatalf("GET %s = %d (%s):\n%.2000s", rel, w.Code, w.Header().Get("Location"), w.Body)
	}
	return w.Body.String(), d
}

// benchPage is one page of the benchmark: its URL for the i-th request and
// what its body must show.
type benchPage struct {
	name  string
	url   func(i int) string
	check func(body string, i int) error
}

// atLeast checks that body holds s at least n times.
func atLeast(body, s string, n int) error {
	if c := strings.Count(body, s); c < n {
		return fmt.Errorf("%d × %q, want at least %d", c, s, n)
	}
	return nil
}

// exactly checks that body holds s n times.
func exactly(body, s string, n int) error {
	if c := strings.Count(body, s); c != n {
		return fmt.Errorf("%d × %q, want %d", c, s, n)
	}
	return nil
}

func all(errs ...error) error { return errors.Join(errs...) }

// pages are the pages measured, with what each must show.
func (f *pagesFixture) pages(b *testing.B) []benchPage {
	b.Helper()
	fixed := func(rel string) func(int) string { return func(int) string { return rel } }
	clientRow := `<a href="` + testPath + `clients/cus_`
	auditRow := `<tr><td class="num">`
	next := `rel="next"`
	sample := func(i int) store.Client { return f.samples[i%len(f.samples)] }
	// A rare search: the start of a customer id (its random part), which
	// one client matches.
	rare := func(i int) string { return sample(i).CustomerID[:12] }
	// An older page of the audit log, from a row spread over the log.
	older := func(i int) string {
		return fmt.Sprintf("audit?before=%d", auditPageSize+1+(i%100)*(f.rows-auditPageSize)/100)
	}
	// Common searches: last names, each in about 1.4% of the seeded
	// clients. Taken in turn, so that a page does not find the rows of
	// the same search still in the cache.
	common := func(i int) string { return commonNames[i%len(commonNames)] }
	// The second page of each, from its first page's link.
	var searchNext []string
	for _, name := range commonNames {
		first, _ := f.get(b, "clients?q="+url.QueryEscape(name))
		m := nextRE.FindStringSubmatch(first)
		if m == nil {
			b.Fatalf("the first page of a search for %s has no next link:\n%.3000s", name, first)
		}
		searchNext = append(searchNext, strings.TrimPrefix(html.UnescapeString(m[1]), testPath))
	}
	return []benchPage{
		{"dashboard", fixed(""), func(body string, _ int) error {
			return all(atLeast(body, "<h1>Dashboard</h1>", 1), exactly(body, auditRow, recentAudit),
				atLeast(body, fmt.Sprintf("%d awaiting review", benchWebhooks/3), 1))
		}},
		{"key", fixed("key"), func(body string, _ int) error {
			return all(atLeast(body, "Stripe key", 1), atLeast(body, `name="key"`, 1))
		}},
		{"clients", fixed("clients"), func(body string, _ int) error {
			return all(exactly(body, clientRow, clientsPageSize), atLeast(body, next, 1))
		}},
		{"clients-next", func(i int) string { return "clients?after=" + sample(i).CustomerID }, func(body string, i int) error {
			if sample(i).Name >= "Zoe" { // near the end: the page may be short
				return atLeast(body, "<h1>Clients</h1>", 1)
			}
			return all(exactly(body, clientRow, clientsPageSize), atLeast(body, `rel="prev"`, 1))
		}},
		{"clients-delinquent", fixed("clients?delinquent=yes"), func(body string, _ int) error {
			return all(exactly(body, clientRow, clientsPageSize), exactly(body, `<span class="tag warn">delinquent</span>`, clientsPageSize))
		}},
		{"clients-balance-desc", fixed("clients?sort=balance&desc=1"), func(body string, _ int) error {
			return all(exactly(body, clientRow, clientsPageSize), atLeast(body, next, 1))
		}},
		{"search-common", func(i int) string { return "clients?q=" + url.QueryEscape(common(i)) }, func(body string, i int) error {
			return all(exactly(body, clientRow, clientsPageSize), atLeast(body, common(i), clientsPageSize), atLeast(body, next, 1))
		}},
		{"search-common-next", func(i int) string { return searchNext[i%len(searchNext)] }, func(body string, i int) error {
			return all(exactly(body, clientRow, clientsPageSize), atLeast(body, common(i), clientsPageSize), atLeast(body, `rel="prev"`, 1))
		}},
		{"search-delinquent", func(i int) string { return "clients?delinquent=yes&q=" + url.QueryEscape(common(i)) }, func(body string, i int) error {
			rows := strings.Count(body, clientRow)
			return all(atLeast(body, clientRow, 1), exactly(body, `<span class="tag warn">delinquent</span>`, rows), atLeast(body, common(i), rows))
		}},
		{"search-rare", func(i int) string { return "clients?q=" + rare(i) }, func(body string, i int) error {
			return all(atLeast(body, "<code>"+sample(i).CustomerID+"</code>", 1), atLeast(body, "1 matching", 1))
		}},
		{"client", func(i int) string { return "clients/" + sample(i).CustomerID }, func(body string, i int) error {
			return all(atLeast(body, "<h1><code>"+sample(i).CustomerID+"</code>", 1), atLeast(body, "in_bench", 1))
		}},
		{"webhooks", fixed("webhooks"), func(body string, _ int) error {
			return all(exactly(body, `<span class="status status-failed">`, webhooksPageSize), atLeast(body, next, 1))
		}},
		{"audit", fixed("audit"), func(body string, _ int) error {
			return all(exactly(body, auditRow, auditPageSize), atLeast(body, next, 1))
		}},
		{"audit-older", older, func(body string, _ int) error {
			return all(exactly(body, auditRow, auditPageSize), atLeast(body, `rel="prev"`, 1))
		}},
		{"audit-action", fixed("audit?action=login."), func(body string, _ int) error {
			return all(exactly(body, auditRow, auditPageSize), exactly(body, "<td><code>login.", auditPageSize))
		}},
		{"audit-actor", fixed("audit?actor=bob"), func(body string, _ int) error {
			return all(exactly(body, auditRow, auditPageSize), atLeast(body, "<td>bob</td>", auditPageSize))
		}},
		{"sessions", fixed("sessions"), func(body string, _ int) error {
			return all(atLeast(body, `<span class="tag">you</span>`, 1), atLeast(body, "<h2>Web sessions</h2>", 1))
		}},
	}
}

// commonNames are last names of seeded clients (store.SeedClients).
var commonNames = []string{"Smith", "Tanaka", "Müller", "Nguyen", "Okafor", "Patel", "Garcia", "Rossi", "Kowalski", "Haddad",
	"Dubois", "Yilmaz", "Petrov", "Larsen", "Silva", "Nakamura", "Byrne", "Popescu", "Walsh", "Bianchi"}

// nextRE finds a page's "next" link.
var nextRE = regexp.MustCompile(`<a href="([^"]+)" rel="next">`)

// pageTimes are one page's latencies.
type pageTimes struct {
	name          string
	n             int
	p50, p95, max time.Duration
}

// nearestRank is the p-th percentile of sorted ds (nearest rank).
func nearestRank(sorted []time.Duration, p float64) time.Duration {
	rank := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkPages measures the server time of the web admin's pages (issue
// 5: dashboard and list pages ≤ 10 ms with 1,000,000 clients and audit
// rows). It seeds BACKROOM_BENCH_ROWS clients and as many audit rows
// (default 10,000, so that `go test -bench .` stays quick), signs in once
// with a console-issued link, then times the Handler's ServeHTTP for each
// page with an httptest recorder: no network, only what the server does.
//
//	BACKROOM_BENCH_ROWS=1000000 go test -run='^$' -bench=Pages -benchtime=200x -timeout=30m ./server/web/
//
// Each page is a sub-benchmark reporting p50/p95/max in ms; the whole table
// is printed to stderr at the end (a benchmark's log is cut after ten
// lines). Seeding a million of each takes a minute or two; it happens once
// per run of BenchmarkPages (use -benchtime=Nx, not -count, to measure
// longer). Every response must be 200 and show what the page is for, so a
// broken page fails the benchmark rather than looking fast.
func BenchmarkPages(b *testing.B) {
	n := benchRows(b)
	f := newPagesFixture(b, n)
	b.Logf("seeded %d clients and %d audit rows in %v", n, n, f.seeded.Round(time.Millisecond))
	pages := f.pages(b)
	results := make([]pageTimes, len(pages))
	for k, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			ds := make([]time.Duration, 0, b.N)
			for i := range b.N {
				body, d := f.get(b, p.url(i))
				if err := p.check(body, i); err != nil {
					b.Fatalf("GET %s: %v:\n%.3000s", p.url(i), err, body)
				}
				ds = append(ds, d)
			}
			slices.Sort(ds)
			t := pageTimes{name: p.name, n: len(ds), p50: nearestRank(ds, 50), p95: nearestRank(ds, 95), max: ds[len(ds)-1]}
			results[k] = t
			b.ReportMetric(ms(t.p50), "p50-ms")
			b.ReportMetric(ms(t.p95), "p95-ms")
			b.ReportMetric(ms(t.max), "max-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "web admin pages, server time, %d clients and %d audit rows (seeded in %v):\n", n, n, f.seeded.Round(time.Second))
	fmt.Fprintf(&sb, "  %-22s %5s %9s %9s %9s\n", "page", "n", "p50 ms", "p95 ms", "max ms")
	for _, t := range results {
		if t.n > 0 {
			fmt.Fprintf(&sb, "  %-22s %5d %9.2f %9.2f %9.2f\n", t.name, t.n, ms(t.p50), ms(t.p95), ms(t.max))
		}
	}
	// Printed, not logged: a benchmark's log is cut after ten lines.
	fmt.Fprint(os.Stderr, sb.String())
}
