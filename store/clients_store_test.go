package store

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// --- helpers ------------------------------------------------------------------

func ptr[T any](v T) *T { return &v }

// cd is a valid ClientData with a name and an email.
func cd(id, name, email string, version int64) ClientData {
	return ClientData{CustomerID: id, Name: name, Email: email, Currency: "usd", Version: version}
}

func mustUpsert(t *testing.T, s *Store, source string, batch ...ClientData) UpsertResult {
	t.Helper()
	res, err := s.UpsertClients(ctxb, source, batch)
	if err != nil {
		t.Fatalf("UpsertClients: %v", err)
	}
	return res
}

func mustGet(t *testing.T, s *Store, id string) Client {
	t.Helper()
	c, err := s.GetClient(ctxb, id)
	if err != nil {
		t.Fatalf("GetClient(%s): %v", id, err)
	}
	return c
}

func mustListClients(t *testing.T, s *Store, q ClientQuery) ClientPage {
	t.Helper()
	p, err := s.ListClients(ctxb, q)
	if err != nil {
		t.Fatalf("ListClients(%+v): %v", q, err)
	}
	return p
}

func customerIDs(cs []Client) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.CustomerID
	}
	return out
}

// searchIDs is the customer ids of every client a search finds (all pages).
func searchIDs(t *testing.T, s *Store, q string) []string {
	t.Helper()
	return customerIDs(walkForward(t, s, ClientQuery{Search: q, Limit: 500}))
}

func wantMsg(t *testing.T, err error, code Code, msg string) {
	t.Helper()
	wantCode(t, err, code)
	if got := ErrorMessage(err); got != msg {
		t.Fatalf("message:\n got %q\nwant %q", got, msg)
	}
}

// allClients reads every client straight from the table, in id order.
func allClients(t *testing.T, s *Store) []Client {
	t.Helper()
	rows, err := s.rdb.QueryContext(ctxb, `SELECT `+clientCols+` FROM clients ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// walkForward reads every page of q from the start, checking More on the
// way, and returns the clients in page order.
func walkForward(t *testing.T, s *Store, q ClientQuery) []Client {
	t.Helper()
	q.After, q.Before = nil, nil
	var out []Client
	for i := 0; ; i++ {
		if i > 100000 {
			t.Fatal("paging does not end")
		}
		p := mustListClients(t, s, q)
		out = append(out, p.Clients...)
		if !p.More {
			return out
		}
		if len(p.Clients) == 0 {
			t.Fatalf("page %d is empty but says More", i)
		}
		q.After = &p.Clients[len(p.Clients)-1]
	}
}

// walkBackward reads every page before first (going back), checking More,
// and returns those clients in the query's order.
func walkBackward(t *testing.T, s *Store, q ClientQuery, first Client) []Client {
	t.Helper()
	q.After, q.Before = nil, &first
	var pages [][]Client
	for i := 0; ; i++ {
		if i > 100000 {
			t.Fatal("paging back does not end")
		}
		p := mustListClients(t, s, q)
		pages = append(pages, p.Clients)
		if !p.More {
			break
		}
		if len(p.Clients) != q.Limit {
			t.Fatalf("a page going back holds %d clients (limit %d) but says More", len(p.Clients), q.Limit)
		}
		q.Before = &p.Clients[0]
	}
	var out []Client
	for _, p := range slices.Backward(pages) {
		out = append(out, p...)
	}
	return out
}

// nocase compares as SQLite's NOCASE collation does: ASCII letters folded,
// then bytes.
func nocase(a, b string) int {
	fold := func(s string) []byte {
		out := []byte(s)
		for i, c := range out {
			if 'A' <= c && c <= 'Z' {
				out[i] = c + 'a' - 'A'
			}
		}
		return out
	}
	return bytes.Compare(fold(a), fold(b))
}

// expectedOrder is q's result computed in Go from every client: filters,
// then the sort key and the id.
func expectedOrder(all []Client, q ClientQuery) []Client {
	var out []Client
	for _, c := range all {
		if q.Livemode != nil && c.Livemode != *q.Livemode ||
			q.Delinquent != nil && c.Delinquent != *q.Delinquent ||
			q.Deleted != nil && c.Deleted != *q.Deleted {
			continue
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Client) int {
		var r int
		switch q.Sort {
		case SortCreated:
			r = cmp.Compare(unixOrZero(a.StripeCreated), unixOrZero(b.StripeCreated))
		case SortBalance:
			r = cmp.Compare(a.Balance, b.Balance)
		default:
			r = nocase(a.Name, b.Name)
		}
		if r == 0 {
			r = cmp.Compare(a.ID, b.ID)
		}
		if q.Desc {
			r = -r
		}
		return r
	})
	return out
}

func sameOrder(t *testing.T, what string, got, want []Client) {
	t.Helper()
	g, w := customerIDs(got), customerIDs(want)
	if !slices.Equal(g, w) {
		seen := map[string]int{}
		for _, id := range g {
			seen[id]++
		}
		var dup, missing []string
		for id, n := range seen {
			if n > 1 {
				dup = append(dup, id)
			}
		}
		for _, id := range w {
			if seen[id] == 0 {
				missing = append(missing, id)
			}
		}
		t.Fatalf("%s: got %d clients, want %d (repeated %v, missing %v)\n got %v\nwant %v", what, len(g), len(w), dup, missing, g, w)
	}
}

// tiedClients makes n clients with few distinct names (in several cases),
// balances and creation times, and a spread of flags.
func tiedClients(n int, seed uint64) []ClientData {
	r := rand.New(rand.NewPCG(seed, 7))
	names := []string{"alice", "Alice", "ALICE", "Bob", "bob", "Müller", "müller", "Zoë", "Ängel", "", "Émile", "_under", "100% Co"}
	created := []time.Time{{}, time.Unix(1_700_000_000, 0), time.Unix(1_600_000_000, 0)}
	out := make([]ClientData, n)
	for i := range out {
		out[i] = ClientData{
			CustomerID: fmt.Sprintf("cus_tie%04d", i), Name: names[r.IntN(len(names))],
			Email: fmt.Sprintf("tie%d@example.com", i), Currency: "eur",
			Balance:       []int64{0, 100, -100, 0, 5}[r.IntN(5)],
			StripeCreated: created[r.IntN(len(created))],
			Livemode:      r.IntN(2) == 0, Delinquent: r.IntN(3) == 0, Deleted: r.IntN(4) == 0, Version: 1,
		}
	}
	return out
}

// --- search -------------------------------------------------------------------

func searchEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	mustUpsert(t, e.s, SourceSync,
		cd("cus_AAA111", "Ada Lovelace", "ada@analytical.example", 1),
		cd("cus_BBB222", "Hans Müller", "hans.mueller@beispiel.example", 1),
		cd("cus_CCC333", "Tomás García", "tomas@correo.example", 1),
		cd("cus_DDD444", `O"Brien*-AND NEAR(x) 100%_off`, "obrien@quotes.example", 1),
		cd("cus_EEE555", "Andersson Brand", "sales@andersson.example", 1),
		cd("cus_FFF666", "Zoë Nguyen", "zoe.nguyen@shop.example", 1),
		cd("cus_GGG777", "ada lowercase", "lower@case.example", 1),
		cd("cus_aBc888", "_Underscore Ltd", "under@score.example", 1),
	)
	return e
}

func TestClientSearchSubstring(t *testing.T) {
	e := searchEnv(t)
	for _, tc := range []struct {
		q    string
		want []string
	}{
		// name, email and customer id, anywhere in the text, any case
		{"lovelace", []string{"cus_AAA111"}},
		{"LOVEL", []string{"cus_AAA111"}},
		{"ada", []string{"cus_AAA111", "cus_GGG777"}},
		{"analytical.ex", []string{"cus_AAA111"}},
		{"@shop.exa", []string{"cus_FFF666"}},
		{"BBB22", []string{"cus_BBB222"}},
		{"cus_aBc", []string{"cus_aBc888"}},
		{"cus_ab", []string{"cus_aBc888"}}, // trigram matching ignores case
		{"cus_", []string{"cus_AAA111", "cus_BBB222", "cus_CCC333", "cus_DDD444", "cus_EEE555", "cus_FFF666", "cus_GGG777", "cus_aBc888"}},
		// unicode
		{"Müll", []string{"cus_BBB222"}},
		{"müller", []string{"cus_BBB222"}},
		{"MÜLLER", []string{"cus_BBB222"}},
		{"Tomás", []string{"cus_CCC333"}},
		{"omás g", []string{"cus_CCC333"}},
		{"Zoë", []string{"cus_FFF666"}},
		{"  nguyen  ", []string{"cus_FFF666"}}, // trimmed
		// FTS5 syntax is literal text
		{`O"Brien`, []string{"cus_DDD444"}},
		{`"Brien*`, []string{"cus_DDD444"}},
		{`*-AND`, []string{"cus_DDD444"}},
		{"AND", []string{"cus_DDD444", "cus_EEE555"}},
		{"and NEAR(", []string{"cus_DDD444"}},
		{"NEAR(x)", []string{"cus_DDD444"}},
		{"100%_", []string{"cus_DDD444"}},
		{`"""`, nil},
		{"***", nil},
		{"-abc", nil},
		{"NOT", nil},
		{"a OR b", nil},
		{"name:ada", nil},
		{"^ada", nil},
		{"(((", nil},
		{"ada)", nil},
		{"'; DROP TABLE clients; --", nil},
		{"\xff\xfe\xfd", nil},
		{"x\x00y", nil},
		// no match
		{"zzzzz", nil},
		{"lovelace ada", nil},
	} {
		got := searchIDs(t, e.s, tc.q)
		if !slices.Equal(got, tc.want) {
			t.Errorf("search %q: got %v, want %v", tc.q, got, tc.want)
		}
	}
	// Every query above with a match also finds its rows with a filter, and
	// the count of a search is exact when small.
	p := mustListClients(t, e.s, ClientQuery{Search: "ada"})
	if p.Total != 2 || !p.TotalExact || p.More {
		t.Errorf("search ada: total %d exact %v more %v", p.Total, p.TotalExact, p.More)
	}
	p = mustListClients(t, e.s, ClientQuery{Search: "zzzzz"})
	if len(p.Clients) != 0 || p.Total != 0 || !p.TotalExact || p.More {
		t.Errorf("no match: %+v", p)
	}
}

func TestClientSearchPrefix(t *testing.T) {
	e := searchEnv(t)
	for _, tc := range []struct {
		q    string
		want []string // in name order
	}{
		{"a", []string{"cus_AAA111", "cus_GGG777", "cus_EEE555"}}, // "Ada Lovelace" < "ada lowercase" < "Andersson"
		{"AD", []string{"cus_AAA111", "cus_GGG777"}},
		{"Mü", nil},                     // a name prefix, not a substring: "Hans Müller"
		{"Ha", []string{"cus_BBB222"}},  // prefix of the name only
		{"Zo", []string{"cus_FFF666"}},  // "Zoë"
		{"cu", nil},                     // 1–2 characters look at names only
		{"_", []string{"cus_aBc888"}},   // LIKE wildcards are literal
		{"%", nil},                      //
		{"O\"", []string{"cus_DDD444"}}, // a quote
		{"\\", nil},                     // the LIKE escape character
		{"q", nil},                      // no match
		{" t ", []string{"cus_CCC333"}}, // trimmed: "t"
	} {
		p := mustListClients(t, e.s, ClientQuery{Search: tc.q, Limit: 500})
		if got := customerIDs(p.Clients); !slices.Equal(got, tc.want) {
			t.Errorf("prefix %q: got %v, want %v", tc.q, got, tc.want)
		}
		if p.Total != int64(len(tc.want)) || !p.TotalExact {
			t.Errorf("prefix %q: total %d exact %v", tc.q, p.Total, p.TotalExact)
		}
	}
}

// TestClientSearchPaging walks trigram and prefix searches with filters
// page by page, forwards and backwards, against the matches worked out in
// Go.
func TestClientSearchPaging(t *testing.T) {
	e := newEnv(t)
	var batch []ClientData
	for i := range 40 {
		name := []string{"Sara Abara", "sara abara", "Lara Dara", "Tara", "Bob Stone"}[i%5]
		batch = append(batch, ClientData{CustomerID: fmt.Sprintf("cus_pg%03d", i), Name: name,
			Email: fmt.Sprintf("p%d@%s.example", i, []string{"ara", "zed"}[i%2]), Currency: "usd",
			Livemode: i%3 == 0, Delinquent: i%4 == 0, Version: 1})
	}
	mustUpsert(t, e.s, SourceSync, batch...)
	all := allClients(t, e.s)
	contains := func(c Client, q string) bool {
		q = strings.ToLower(q)
		return strings.Contains(strings.ToLower(c.Name), q) || strings.Contains(strings.ToLower(c.Email), q) ||
			strings.Contains(strings.ToLower(c.CustomerID), q)
	}
	for _, tc := range []struct {
		q          string
		live, delq *bool
		limit      int
	}{
		{"ara", nil, nil, 4}, {"ara", ptr(true), nil, 3}, {"sara a", nil, nil, 5}, {"zed", ptr(false), nil, 7}, {"cus_pg0", nil, nil, 40},
		{"ston", nil, nil, 1}, {"nothing", nil, nil, 10}, {"ara", nil, ptr(true), 2}, {"ara", ptr(false), ptr(false), 3}, {"cus_pg", ptr(true), ptr(true), 1},
	} {
		var want []Client
		for _, c := range all { // insertion order
			if contains(c, tc.q) && (tc.live == nil || c.Livemode == *tc.live) && (tc.delq == nil || c.Delinquent == *tc.delq) {
				want = append(want, c)
			}
		}
		query := ClientQuery{Search: tc.q, Livemode: tc.live, Delinquent: tc.delq, Limit: tc.limit, Sort: SortBalance, Desc: true} // sort ignored
		what := fmt.Sprintf("search %q live %v delinquent %v limit %d", tc.q, fmtb(tc.live), fmtb(tc.delq), tc.limit)
		got := walkForward(t, e.s, query)
		sameOrder(t, what+" forwards", got, want)
		if len(got) > 0 {
			last := (len(got) - 1) / tc.limit * tc.limit
			sameOrder(t, what+" backwards", append(walkBackward(t, e.s, query, got[last]), got[last:]...), want)
		}
		p := mustListClients(t, e.s, query)
		if p.Total != int64(len(want)) || !p.TotalExact {
			t.Fatalf("%s: total %d exact %v, want %d", what, p.Total, p.TotalExact, len(want))
		}
	}
	// Prefix searches page in name order (ties by id).
	for _, tc := range []struct {
		q     string
		limit int
	}{{"s", 3}, {"Sa", 7}, {"ta", 2}, {"b", 40}} {
		var want []Client
		for _, c := range all {
			if len(c.Name) >= len(tc.q) && nocase(c.Name[:len(tc.q)], tc.q) == 0 {
				want = append(want, c)
			}
		}
		want = expectedOrder(want, ClientQuery{Sort: SortName})
		query := ClientQuery{Search: tc.q, Limit: tc.limit, Desc: true, Delinquent: ptr(false)} // Desc ignored
		var filtered []Client
		for _, c := range want {
			if !c.Delinquent {
				filtered = append(filtered, c)
			}
		}
		what := fmt.Sprintf("prefix %q limit %d", tc.q, tc.limit)
		got := walkForward(t, e.s, query)
		sameOrder(t, what+" forwards", got, filtered)
		last := (len(got) - 1) / tc.limit * tc.limit
		sameOrder(t, what+" backwards", append(walkBackward(t, e.s, query, got[last]), got[last:]...), filtered)
	}
}

// --- browsing -----------------------------------------------------------------

// TestClientPagingProperty walks every sort and direction with several
// filter combinations page by page, forwards and then backwards from the
// last page, over clients with many ties on each sort key, and compares
// with the order worked out in Go: no client is skipped or repeated. It
// runs twice: with the matches of every filter read from the flags index
// (few clients), and with a sort index walked (many).
func TestClientPagingProperty(t *testing.T) {
	e := newEnv(t)
	mustUpsert(t, e.s, SourceSync, tiedClients(48, 1)...)
	all := allClients(t, e.s)
	filters := []struct{ live, delinquent, deleted *bool }{
		{}, {live: ptr(true)}, {delinquent: ptr(true)}, {deleted: ptr(true)}, {live: ptr(false), deleted: ptr(false)},
		{live: ptr(true), delinquent: ptr(false), deleted: ptr(false)},
	}
	limits := []int{2, 3, 7, 10, 48}
	combo := 0
	for _, few := range []int64{defaultClientBounds.few, 0} {
		withCaps(e.s, defaultClientBounds.countCap, few)
		for _, sort := range []string{SortName, SortCreated, SortBalance} {
			for _, desc := range []bool{false, true} {
				for _, f := range filters {
					combo++
					limit := limits[combo%len(limits)]
					q := ClientQuery{Sort: sort, Desc: desc, Livemode: f.live, Delinquent: f.delinquent, Deleted: f.deleted, Limit: limit}
					want := expectedOrder(all, q)
					what := fmt.Sprintf("few %d sort %q desc %v live %v delinquent %v deleted %v limit %d", few, sort, desc,
						fmtb(f.live), fmtb(f.delinquent), fmtb(f.deleted), limit)
					got := walkForward(t, e.s, q)
					sameOrder(t, what+" forwards", got, want)
					if len(got) == 0 {
						continue
					}
					last := (len(got) - 1) / limit * limit
					back := walkBackward(t, e.s, q, got[last])
					sameOrder(t, what+" backwards", append(back, got[last:]...), want)
					// Going back from the second page gives exactly the first.
					if len(got) > limit {
						q.Before = &got[limit]
						p := mustListClients(t, e.s, q)
						sameOrder(t, what+" back from page 2", p.Clients, got[:limit])
						if p.More {
							t.Fatalf("%s: the first page, reached going back, says More", what)
						}
					}
				}
			}
		}
	}
}

func fmtb(b *bool) string {
	if b == nil {
		return "any"
	}
	return fmt.Sprint(*b)
}

func TestClientPagingBoundaries(t *testing.T) {
	e := newEnv(t)
	// Empty table.
	p := mustListClients(t, e.s, ClientQuery{})
	if len(p.Clients) != 0 || p.More || p.Total != 0 {
		t.Fatalf("empty table: %+v", p)
	}
	p = mustListClients(t, e.s, ClientQuery{Livemode: ptr(true)})
	if len(p.Clients) != 0 || p.More || p.Total != 0 || !p.TotalExact {
		t.Fatalf("empty table, filtered: %+v", p)
	}
	// A single row.
	mustUpsert(t, e.s, SourceSync, cd("cus_one", "Only One", "one@example.com", 1))
	for _, sort := range []string{SortName, SortCreated, SortBalance} {
		for _, desc := range []bool{false, true} {
			p = mustListClients(t, e.s, ClientQuery{Sort: sort, Desc: desc, Limit: 1})
			if len(p.Clients) != 1 || p.More || p.Total != 1 || !p.TotalExact { // the first page holds all: exact
				t.Fatalf("single row %s desc %v: %+v", sort, desc, p)
			}
			after := mustListClients(t, e.s, ClientQuery{Sort: sort, Desc: desc, After: &p.Clients[0]})
			before := mustListClients(t, e.s, ClientQuery{Sort: sort, Desc: desc, Before: &p.Clients[0]})
			if len(after.Clients)+len(before.Clients) != 0 || after.More || before.More {
				t.Fatalf("single row %s desc %v: after %+v before %+v", sort, desc, after, before)
			}
		}
	}
	// Exact multiples of the page size: the last full page says More=false,
	// and no empty page follows.
	var batch []ClientData
	for i := range 29 { // 30 clients with the one above
		batch = append(batch, cd(fmt.Sprintf("cus_m%02d", i), fmt.Sprintf("Multiple %02d", i), "", 1))
	}
	mustUpsert(t, e.s, SourceSync, batch...)
	for _, limit := range []int{10, 15, 30, 1} {
		q := ClientQuery{Limit: limit}
		pages := 0
		for {
			p := mustListClients(t, e.s, q)
			pages++
			if len(p.Clients) != limit {
				t.Fatalf("limit %d: page %d holds %d clients", limit, pages, len(p.Clients))
			}
			if !p.More {
				break
			}
			q.After = &p.Clients[limit-1]
		}
		if pages != 30/limit {
			t.Fatalf("limit %d: %d pages, want %d", limit, pages, 30/limit)
		}
	}
	// Limits: default 40, at most 500.
	p = mustListClients(t, e.s, ClientQuery{Limit: 0})
	if len(p.Clients) != 30 || p.More {
		t.Fatalf("default limit: %d clients, more %v", len(p.Clients), p.More)
	}
	_, err := e.s.ListClients(ctxb, ClientQuery{Sort: "email"})
	wantMsg(t, err, CodeInvalid, `sort "email" is not name, created or balance`)
}

func TestClientListLimitCap(t *testing.T) {
	e := newEnv(t)
	if err := e.s.SeedClients(ctxb, 520, e.clock.Now(), nil); err != nil {
		t.Fatal(err)
	}
	p := mustListClients(t, e.s, ClientQuery{Limit: 10_000})
	if len(p.Clients) != 500 || !p.More {
		t.Fatalf("limit cap: %d clients, more %v", len(p.Clients), p.More)
	}
	p = mustListClients(t, e.s, ClientQuery{})
	if len(p.Clients) != 40 || !p.More {
		t.Fatalf("default limit: %d clients", len(p.Clients))
	}
	// An export reads past the 500-row page.
	var buf strings.Builder
	n, err := e.s.ExportClients(ctxb, cliAdmin, &buf, ClientQuery{})
	if err != nil || n != 520 {
		t.Fatalf("export: %d %v", n, err)
	}
	rows, err := ParseClientsCSV(strings.NewReader(buf.String()))
	if err != nil || len(rows) != 520 {
		t.Fatalf("export parse: %d %v", len(rows), err)
	}
	seen := map[string]bool{}
	for _, r := range rows {
		seen[r.CustomerID] = true
	}
	if len(seen) != 520 {
		t.Fatalf("export repeated clients: %d distinct", len(seen))
	}
}

func TestClientSortOrders(t *testing.T) {
	e := newEnv(t)
	t1, t2 := time.Unix(1_600_000_000, 0), time.Unix(1_700_000_000, 0)
	mustUpsert(t, e.s, SourceSync,
		ClientData{CustomerID: "cus_1", Name: "bravo", Balance: 300, StripeCreated: t2, Version: 1},
		ClientData{CustomerID: "cus_2", Name: "Alpha", Balance: -50, StripeCreated: t1, Version: 1},
		ClientData{CustomerID: "cus_3", Name: "alpha", Balance: 300, Version: 1}, // created unknown
		ClientData{CustomerID: "cus_4", Name: "Charlie", Balance: 0, StripeCreated: t1, Version: 1},
		ClientData{CustomerID: "cus_5", Name: "ALPHA", Balance: -50, StripeCreated: t2, Version: 1},
	)
	for _, tc := range []struct {
		sort string
		desc bool
		want []string
	}{
		{SortName, false, []string{"cus_2", "cus_3", "cus_5", "cus_1", "cus_4"}}, // case-insensitive, ties by insertion
		{SortName, true, []string{"cus_4", "cus_1", "cus_5", "cus_3", "cus_2"}},
		{"", false, []string{"cus_2", "cus_3", "cus_5", "cus_1", "cus_4"}}, // name is the default
		{SortCreated, false, []string{"cus_3", "cus_2", "cus_4", "cus_1", "cus_5"}},
		{SortCreated, true, []string{"cus_5", "cus_1", "cus_4", "cus_2", "cus_3"}},
		{SortBalance, false, []string{"cus_2", "cus_5", "cus_4", "cus_1", "cus_3"}},
		{SortBalance, true, []string{"cus_3", "cus_1", "cus_4", "cus_5", "cus_2"}},
	} {
		got := customerIDs(walkForward(t, e.s, ClientQuery{Sort: tc.sort, Desc: tc.desc, Limit: 2}))
		if !slices.Equal(got, tc.want) {
			t.Errorf("sort %q desc %v: got %v, want %v", tc.sort, tc.desc, got, tc.want)
		}
	}
}

func TestClientFiltersAndTotals(t *testing.T) {
	e := newEnv(t)
	mustUpsert(t, e.s, SourceSync, someClients(100, 1)...) // livemode: even; delinquent: every 10th
	mustUpsert(t, e.s, SourceSync, ClientData{CustomerID: "cus_0003", Name: "Client 0003", Email: "client0003@example.com",
		Currency: "usd", Balance: 300, StripeCreated: time.Unix(1700000003, 0), Deleted: true, Version: 2})
	for _, tc := range []struct {
		q     ClientQuery
		total int64
		exact bool
	}{
		{ClientQuery{}, 100, false}, // unfiltered: estimated from the row ids
		{ClientQuery{Livemode: ptr(true)}, 50, true},
		{ClientQuery{Livemode: ptr(false)}, 50, true},
		{ClientQuery{Delinquent: ptr(true)}, 10, true},
		{ClientQuery{Livemode: ptr(true), Delinquent: ptr(true)}, 10, true},
		{ClientQuery{Livemode: ptr(false), Delinquent: ptr(true)}, 0, true},
		{ClientQuery{Deleted: ptr(true)}, 1, true},
		{ClientQuery{Deleted: ptr(false)}, 99, true},
		{ClientQuery{Deleted: ptr(true), Livemode: ptr(true)}, 0, true},
		{ClientQuery{Search: "client00", Livemode: ptr(true)}, 50, true},
		{ClientQuery{Search: "C", Delinquent: ptr(true)}, 10, true},
	} {
		p := mustListClients(t, e.s, tc.q)
		if p.Total != tc.total || p.TotalExact != tc.exact {
			t.Errorf("%+v: total %d exact %v, want %d %v", tc.q, p.Total, p.TotalExact, tc.total, tc.exact)
		}
		for _, c := range p.Clients {
			if tc.q.Livemode != nil && c.Livemode != *tc.q.Livemode || tc.q.Delinquent != nil && c.Delinquent != *tc.q.Delinquent ||
				tc.q.Deleted != nil && c.Deleted != *tc.q.Deleted {
				t.Errorf("%+v: %s does not match the filter", tc.q, c.CustomerID)
			}
		}
	}
}

// withCaps lowers the count cap and the "few clients" threshold for one
// test, so that small tables take the paths of big ones.
func withCaps(s *Store, capN, few int64) {
	s.bounds.countCap, s.bounds.few = capN, few
}

// withSearchCaps lowers the bounds of a filtered search's count for one
// test.
func withSearchCaps(s *Store, capN, rows int64) {
	s.bounds.searchCap, s.bounds.searchRows = capN, rows
}

func TestClientTotalsCapped(t *testing.T) {
	e := newEnv(t)
	withCaps(e.s, 20, 5)
	withSearchCaps(e.s, 20, 1000)
	mustUpsert(t, e.s, SourceSync, someClients(100, 1)...) // livemode: even; delinquent: every 10th
	for _, tc := range []struct {
		q     ClientQuery
		total int64
		exact bool
	}{
		{ClientQuery{}, 100, false},                 // estimated, never counted
		{ClientQuery{Search: "example"}, 20, false}, // every email: capped
		{ClientQuery{Search: "example", Livemode: ptr(true), Limit: 10}, 20, false},
		{ClientQuery{Search: "client003"}, 10, true},
		{ClientQuery{Search: "C"}, 20, false},                               // a name prefix
		{ClientQuery{Deleted: ptr(false)}, 20, false},                       // a broad filter
		{ClientQuery{Livemode: ptr(true), Delinquent: ptr(true)}, 10, true}, // more than "few": walks the sort index
		{ClientQuery{Delinquent: ptr(true), Livemode: ptr(false)}, 0, true},
		{ClientQuery{Deleted: ptr(true)}, 0, true},
	} {
		p := mustListClients(t, e.s, tc.q)
		if p.Total != tc.total || p.TotalExact != tc.exact {
			t.Errorf("%+v: total %d exact %v, want %d %v", tc.q, p.Total, p.TotalExact, tc.total, tc.exact)
		}
	}
}

// TestClientSearchCountBounds: a substring search with a filter reads a
// client row per match to count; the count stops at bounds.searchCap
// matching clients and reads at most bounds.searchRows matches, and says so
// (not exact). The pages themselves still list every match.
func TestClientSearchCountBounds(t *testing.T) {
	e := newEnv(t)
	withSearchCaps(e.s, 5, 20)
	mustUpsert(t, e.s, SourceSync, someClients(100, 1)...) // livemode: even; delinquent: every 10th; emails client00NN@example.com
	all := allClients(t, e.s)
	later := func(q ClientQuery) ClientQuery { // the page after the first
		p := mustListClients(t, e.s, q)
		q.After = &p.Clients[len(p.Clients)-1]
		return q
	}
	for _, tc := range []struct {
		what  string
		q     ClientQuery
		total int64
		exact bool
	}{
		// 10 matches (client0030-39), all read: exact.
		{"few matches", ClientQuery{Search: "client003", Livemode: ptr(true), Limit: 2}, 5, true},
		{"few matches, one passes", ClientQuery{Search: "client003", Delinquent: ptr(true), Limit: 2}, 1, true},
		// 100 matches, half of them live: stops after 5 found.
		{"capped", ClientQuery{Search: "example", Livemode: ptr(true), Limit: 2}, 5, false},
		{"capped, later page", later(ClientQuery{Search: "example", Livemode: ptr(true), Limit: 2}), 5, false},
		// Delinquent: 2 of the first 20 matches read (client0000, 0010);
		// a lower bound, raised to what the first page shows.
		{"rows read", later(ClientQuery{Search: "example", Delinquent: ptr(true), Limit: 2}), 2, false},
		{"rows read, first page", ClientQuery{Search: "example", Delinquent: ptr(true), Limit: 4}, 4, false},
		{"none", ClientQuery{Search: "example", Deleted: ptr(true), Limit: 2}, 0, true},
	} {
		p := mustListClients(t, e.s, tc.q)
		if p.Total != tc.total || p.TotalExact != tc.exact {
			t.Errorf("%s: total %d exact %v, want %d %v", tc.what, p.Total, p.TotalExact, tc.total, tc.exact)
		}
		// Whatever the count, the pages list every match, in order.
		q := tc.q
		q.After = nil
		var want []Client
		for _, c := range expectedOrder(all, q) {
			if strings.Contains(c.Email, q.Search) {
				want = append(want, c)
			}
		}
		slices.SortFunc(want, func(a, b Client) int { return cmp.Compare(a.ID, b.ID) })
		if got := customerIDs(walkForward(t, e.s, q)); !slices.Equal(got, customerIDs(want)) {
			t.Errorf("%s: pages list %v, want %v", tc.what, got, customerIDs(want))
		}
	}
}

// --- upserts --------------------------------------------------------------------

func TestUpsertClientsOrdering(t *testing.T) {
	e := newEnv(t)
	base := ClientData{CustomerID: "cus_ord", Name: "Ordered", Email: "o@example.com", Currency: "usd", Balance: 10,
		Metadata: map[string]string{"plan": "team"}, StripeCreated: time.Unix(1_650_000_000, 0), Version: 100}
	if r := mustUpsert(t, e.s, SourceSync, base); r != (UpsertResult{Created: 1}) {
		t.Fatalf("create: %+v", r)
	}
	e.clock.Add(time.Minute)
	// Identical data at the same version: unchanged, nothing written.
	before := mustGet(t, e.s, "cus_ord")
	if r := mustUpsert(t, e.s, SourceWebhook, base); r != (UpsertResult{Unchanged: 1}) {
		t.Fatalf("same version, same data: %+v", r)
	}
	if after := mustGet(t, e.s, "cus_ord"); !after.UpdatedAt.Equal(before.UpdatedAt) || after.Source != SourceSync {
		t.Fatalf("an unchanged upsert wrote the record: %+v", after)
	}
	// Older data never overwrites newer.
	old := base
	old.Name, old.Balance, old.Version = "Older Name", 999, 99
	if r := mustUpsert(t, e.s, SourceWebhook, old); r != (UpsertResult{Stale: 1}) {
		t.Fatalf("older version: %+v", r)
	}
	if c := mustGet(t, e.s, "cus_ord"); c.Name != "Ordered" || c.Balance != 10 || c.Version != 100 {
		t.Fatalf("older data was written: %+v", c)
	}
	// Identical data at a newer version moves the version on, so that data
	// between the two stays stale.
	newer := base
	newer.Version = 200
	if r := mustUpsert(t, e.s, SourceSync, newer); r != (UpsertResult{Unchanged: 1}) {
		t.Fatalf("newer, same data: %+v", r)
	}
	mid := base
	mid.Name, mid.Version = "Middle", 150
	if r := mustUpsert(t, e.s, SourceWebhook, mid); r != (UpsertResult{Stale: 1}) {
		t.Fatalf("between the versions: %+v", r)
	}
	// Newer and different: updated, every field.
	upd := ClientData{CustomerID: "cus_ord", Name: "Renamed", Email: "r@example.com", Phone: "+1 555", Description: "d",
		Currency: "eur", Balance: -5, Delinquent: true, Livemode: true, Deleted: true, Version: 300}
	e.clock.Add(time.Minute)
	if r := mustUpsert(t, e.s, SourceWebhook, upd); r != (UpsertResult{Updated: 1}) {
		t.Fatalf("newer data: %+v", r)
	}
	c := mustGet(t, e.s, "cus_ord")
	if c.Name != "Renamed" || c.Email != "r@example.com" || c.Phone != "+1 555" || c.Description != "d" || c.Currency != "eur" ||
		c.Balance != -5 || !c.Delinquent || !c.Livemode || !c.Deleted || c.Metadata != nil || c.Version != 300 ||
		c.Source != SourceWebhook || !c.UpdatedAt.Equal(e.clock.Now().Truncate(time.Millisecond)) {
		t.Fatalf("after the update: %+v", c)
	}
	if !c.StripeCreated.Equal(base.StripeCreated) {
		t.Fatalf("an update without a created time lost it: %v", c.StripeCreated)
	}
	// Within one batch, an older copy after a newer one is stale.
	a, b := cd("cus_bat", "Newer", "", 50), cd("cus_bat", "Older", "", 40)
	if r := mustUpsert(t, e.s, SourceSync, a, b); r != (UpsertResult{Created: 1, Stale: 1}) {
		t.Fatalf("batch: %+v", r)
	}
	if c := mustGet(t, e.s, "cus_bat"); c.Name != "Newer" {
		t.Fatalf("batch: %q", c.Name)
	}
	// The search index follows a rename.
	if got := searchIDs(t, e.s, "Renamed"); !slices.Equal(got, []string{"cus_ord"}) {
		t.Fatalf("search after rename: %v", got)
	}
	if got := searchIDs(t, e.s, "Ordered"); len(got) != 0 {
		t.Fatalf("the old name is still found: %v", got)
	}
}

func TestUpsertClientsRefusals(t *testing.T) {
	e := newEnv(t)
	_, err := e.s.UpsertClients(ctxb, SourceImport, []ClientData{cd("cus_x", "X", "", 1)})
	wantMsg(t, err, CodeInvalid, `source "import" is not sync or webhook`)
	// One bad client refuses the whole batch.
	_, err = e.s.UpsertClients(ctxb, SourceSync, []ClientData{cd("cus_ok", "Ok", "", 1), cd("cus_bad", "Bad", "not-an-email", 1)})
	wantMsg(t, err, CodeInvalid, `"not-an-email" is not an email address (expected name@example.com)`)
	if p := mustListClients(t, e.s, ClientQuery{}); len(p.Clients) != 0 {
		t.Fatalf("a refused batch wrote %d clients", len(p.Clients))
	}
}

func TestMarkMissingDeleted(t *testing.T) {
	e := newEnv(t)
	live := func(id string, v int64) ClientData { d := cd(id, id, "", v); d.Livemode = true; return d }
	mustUpsert(t, e.s, SourceSync,
		live("cus_seen", 10), live("cus_gone", 10), live("cus_newer", 500), live("cus_done", 10),
		cd("cus_testgone", "t", "", 10), // test mode
	)
	gone := live("cus_done", 20)
	gone.Deleted = true
	mustUpsert(t, e.s, SourceWebhook, gone)
	if _, err := e.s.AddClient(ctxb, cliAdmin, ClientData{CustomerID: "cus_manual", Livemode: true}); err != nil {
		t.Fatal(err)
	}
	// A sync that started at 100 sees cus_seen (unchanged: only its version
	// moves on) and cus_newer (newer already: stale).
	if r := mustUpsert(t, e.s, SourceSync, live("cus_seen", 100), live("cus_newer", 100)); r != (UpsertResult{Unchanged: 1, Stale: 1}) {
		t.Fatalf("the sync's upsert: %+v", r)
	}
	n, err := e.s.MarkMissingDeleted(ctxb, true, 100)
	if err != nil || n != 1 {
		t.Fatalf("MarkMissingDeleted: %d %v", n, err)
	}
	for id, want := range map[string]bool{"cus_seen": false, "cus_gone": true, "cus_newer": false, "cus_done": true, "cus_testgone": false, "cus_manual": false} {
		if c := mustGet(t, e.s, id); c.Deleted != want {
			t.Errorf("%s: deleted %v, want %v", id, c.Deleted, want)
		}
	}
	if c := mustGet(t, e.s, "cus_gone"); c.Version != 100 {
		t.Errorf("a client marked deleted keeps version %d, want the sync's start", c.Version)
	}
	// The mark counts as data of that time: a stale webhook does not undo it.
	if r := mustUpsert(t, e.s, SourceWebhook, live("cus_gone", 50)); r.Stale != 1 {
		t.Errorf("an older webhook undid the deletion: %+v", r)
	}
	// Test mode on its own.
	n, err = e.s.MarkMissingDeleted(ctxb, false, 100)
	if err != nil || n != 1 || !mustGet(t, e.s, "cus_testgone").Deleted {
		t.Fatalf("test mode: %d %v", n, err)
	}
	// Running again changes nothing.
	if n, err := e.s.MarkMissingDeleted(ctxb, true, 100); err != nil || n != 0 {
		t.Fatalf("again: %d %v", n, err)
	}
}

// --- forgetting ---------------------------------------------------------------

func TestForgetClient(t *testing.T) {
	e := newEnv(t)
	d := ClientData{CustomerID: "cus_Forget1", Name: "Wilhelmina Forgetme", Email: "wilhelmina@forget.example", Phone: "+44 20 7946 0000",
		Description: "VIP since 2019", Currency: "gbp", Balance: 1234, Livemode: true, Delinquent: true,
		Metadata: map[string]string{"address": "1 Erasure Lane"}, StripeCreated: time.Unix(1_600_000_000, 0), Version: 10}
	mustUpsert(t, e.s, SourceSync, d, cd("cus_Other", "Other Person", "other@example.com", 10))
	if err := e.s.SetClientNotes(ctxb, sshActor("alice"), "cus_Forget1", "call after 5pm"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"Wilhelmina", "forget.example", "Forget1"} {
		if got := searchIDs(t, e.s, q); !slices.Equal(got, []string{"cus_Forget1"}) {
			t.Fatalf("before forgetting, search %q: %v", q, got)
		}
	}
	// Staff may not forget.
	err := e.s.ForgetClient(ctxb, sshActor("alice"), "cus_Forget1")
	wantMsg(t, err, CodeForbidden, "only an admin may forget clients")
	if mustGet(t, e.s, "cus_Forget1").Forgotten() || len(events(t, e.s, ActionClientForgotten)) != 0 {
		t.Fatal("a refused forget changed something")
	}
	wantCode(t, e.s.ForgetClient(ctxb, cliAdmin, "cus_Unknown"), CodeNotFound)

	e.clock.Add(time.Hour)
	admin := Actor{Name: "bea", Role: RoleAdmin, Channel: ChannelSSH, SessionID: "s1"}
	if err := e.s.ForgetClient(ctxb, admin, "cus_Forget1"); err != nil {
		t.Fatal(err)
	}
	c := mustGet(t, e.s, "cus_Forget1")
	if c.Name != "" || c.Email != "" || c.Phone != "" || c.Description != "" || c.Notes != "" || c.Metadata != nil {
		t.Fatalf("personal fields kept: %+v", c)
	}
	if !c.Forgotten() || !c.ForgottenAt.Equal(e.clock.Now().Truncate(time.Millisecond)) || c.CustomerID != "cus_Forget1" ||
		c.Balance != 1234 || c.Currency != "gbp" || !c.Livemode {
		t.Fatalf("tombstone: %+v", c)
	}
	for _, q := range []string{"Wilhelmina", "forget.example", "Forget1", "cus_Forget", "Wi"} {
		if got := searchIDs(t, e.s, q); len(got) != 0 {
			t.Errorf("after forgetting, search %q still finds %v", q, got)
		}
	}
	if got := searchIDs(t, e.s, "cus_"); !slices.Equal(got, []string{"cus_Other"}) {
		t.Errorf("other clients' search: %v", got)
	}
	// Still listed (a tombstone), so the id stays known.
	if p := mustListClients(t, e.s, ClientQuery{}); len(p.Clients) != 2 {
		t.Errorf("listing after forget: %d clients", len(p.Clients))
	}
	ev := one(t, e.s, ActionClientForgotten)
	if ev.Actor != "bea" || ev.Target != "cus_Forget1" || ev.Detail != `{"customer_id":"cus_Forget1"}` {
		t.Fatalf("audit: %+v", ev)
	}
	// Twice is a conflict.
	err = e.s.ForgetClient(ctxb, admin, "cus_Forget1")
	wantMsg(t, err, CodeConflict, "cus_Forget1 was already forgotten on "+e.clock.Now().Format("2006-01-02"))
	// Nothing personal comes back: not from Stripe, not from an import,
	// not from notes, not from a manual add.
	later := d
	later.Version, later.Balance = 20, 99
	if r := mustUpsert(t, e.s, SourceWebhook, later); r.Updated != 1 {
		t.Fatalf("later sync: %+v", r)
	}
	res, err := e.s.ImportClients(ctxb, cliAdmin, []ImportRow{{Line: 2, ClientData: d, Notes: "imported note"}})
	if err != nil || res != (ImportResult{}) {
		t.Fatalf("import of a forgotten client: %+v %v", res, err)
	}
	wantCode(t, e.s.SetClientNotes(ctxb, sshActor("alice"), "cus_Forget1", "again"), CodeConflict)
	_, err = e.s.AddClient(ctxb, cliAdmin, d)
	wantCode(t, err, CodeConflict)
	c = mustGet(t, e.s, "cus_Forget1")
	if c.Name != "" || c.Email != "" || c.Phone != "" || c.Description != "" || c.Notes != "" || c.Metadata != nil || c.Balance != 99 || !c.Forgotten() {
		t.Fatalf("after later writes: %+v", c)
	}
	if got := searchIDs(t, e.s, "Wilhelmina"); len(got) != 0 {
		t.Fatalf("later writes put it back in the index: %v", got)
	}
	// The audit trail about the client stays, and says nothing personal.
	trail, err := e.s.ClientAudit(ctxb, "cus_Forget1", 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, ev := range trail {
		actions = append(actions, ev.Action)
		if strings.Contains(ev.Detail, "Wilhelmina") || strings.Contains(ev.Detail, "wilhelmina") || strings.Contains(ev.Detail, "5pm") {
			t.Errorf("audit row %d holds personal data: %s", ev.ID, ev.Detail)
		}
	}
	if !slices.Equal(actions, []string{ActionClientForgotten, ActionClientNotesUpdated}) {
		t.Errorf("client audit trail: %v", actions)
	}
	mustVerifyAudit(t, e.s)
	if _, err := rawDB(t, e.dir).Exec(`INSERT INTO clients_fts (clients_fts, rank) VALUES ('integrity-check', 1)`); err != nil {
		t.Fatalf("search index integrity after forgetting: %v", err)
	}
}

// TestForgetClientLeavesNoTrace forgets one client among 5,000 (so that its
// rows share pages with others') and then reads every file in the data
// directory for its email, name, notes, phone and metadata.
func TestForgetClientLeavesNoTrace(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 5,000 clients")
	}
	e := newEnv(t)
	now := e.clock.Now()
	if err := e.s.SeedClients(ctxb, 5000, now, nil); err != nil {
		t.Fatal(err)
	}
	const (
		email = "quintessa.vandermolen@erasure.example"
		name  = "Quintessa Vandermolen"
		notes = "prefers calls on Thursdays, ask for Pieter"
		phone = "+31 20 555 0199"
	)
	target := ClientData{CustomerID: "cus_ZZerase01", Name: name, Email: email, Phone: phone, Currency: "eur",
		Description: "Quintessa's studio", Metadata: map[string]string{"address": "Keizersgracht 1"}, Version: 1}
	mustUpsert(t, e.s, SourceSync, target)
	if err := e.s.SetClientNotes(ctxb, sshActor("alice"), target.CustomerID, notes); err != nil {
		t.Fatal(err)
	}
	// A few more clients after it, sharing its pages.
	var after []ClientData
	for i := range 30 {
		after = append(after, cd(fmt.Sprintf("cus_ZZafter%02d", i), fmt.Sprintf("After Person %02d", i), fmt.Sprintf("after%02d@example.com", i), 1))
	}
	mustUpsert(t, e.s, SourceSync, after...)
	// Touch it again so that older versions of its row sit in freed space.
	upd := target
	upd.Balance, upd.Version = 500, 2
	mustUpsert(t, e.s, SourceWebhook, upd)
	if err := e.s.SetClientNotes(ctxb, sshActor("alice"), target.CustomerID, notes+"!"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.ViewClient(ctxb, sshActor("alice"), target.CustomerID); err != nil {
		t.Fatal(err)
	}
	needles := map[string][]byte{"email": []byte(email), "name": []byte(name), "notes": []byte(notes), "phone": []byte(phone),
		"address": []byte("Keizersgracht 1")}
	// The test can see them before: in the database file once
	// checkpointed, and in some file while they sit in the WAL.
	found := func() map[string]bool {
		out := map[string]bool{}
		for _, b := range dirFiles(t, e.dir) {
			for what, n := range needles {
				if bytes.Contains(b, n) {
					out[what] = true
				}
			}
		}
		return out
	}
	if f := found(); len(f) != len(needles) {
		t.Fatalf("before the checkpoint, found only %v", f)
	}
	if err := e.s.Checkpoint(ctxb); err != nil {
		t.Fatal(err)
	}
	db := dirFiles(t, e.dir)[DBFile]
	for what, n := range needles {
		if !bytes.Contains(db, n) {
			t.Fatalf("the test cannot see the %s in the database file before forgetting", what)
		}
	}
	// Some reads in flight, as a console would have.
	mustListClients(t, e.s, ClientQuery{Search: "Quintessa"})
	if err := e.s.ForgetClient(ctxb, cliAdmin, target.CustomerID); err != nil {
		t.Fatal(err)
	}
	if f := found(); len(f) != 0 {
		for what := range f {
			t.Errorf("after forgetting, the %s is still in the data directory", what)
		}
	}
	// And after closing the store.
	e.reopen()
	if f := found(); len(f) != 0 {
		t.Errorf("after reopening, still found %v", slices.Sorted(maps.Keys(f)))
	}
	if got := searchIDs(t, e.s, "Quintessa"); len(got) != 0 {
		t.Errorf("still searchable: %v", got)
	}
}

// --- views, notes, adding -------------------------------------------------------

func TestViewClientAudited(t *testing.T) {
	e := newEnv(t)
	mustUpsert(t, e.s, SourceSync, cd("cus_view", "Viewed Person", "viewed@example.com", 1))
	c, err := e.s.ViewClient(ctxb, sshActor("alice"), "cus_view")
	if err != nil || c.Name != "Viewed Person" {
		t.Fatalf("ViewClient: %+v %v", c, err)
	}
	ev := one(t, e.s, ActionClientViewed)
	if ev.Actor != "alice" || ev.Target != "cus_view" || ev.Detail != `{"customer_id":"cus_view"}` || ev.SessionID != "sess-alice" {
		t.Fatalf("audit: %+v", ev)
	}
	_, err = e.s.ViewClient(ctxb, sshActor("alice"), "cus_nobody")
	wantMsg(t, err, CodeNotFound, "no client cus_nobody")
	if n := len(events(t, e.s, ActionClientViewed)); n != 1 {
		t.Fatalf("a failed view was audited (%d rows)", n)
	}
	// GetClient does not audit.
	mustGet(t, e.s, "cus_view")
	if n := len(events(t, e.s, ActionClientViewed)); n != 1 {
		t.Fatal("GetClient audited")
	}
}

func TestSetClientNotes(t *testing.T) {
	e := newEnv(t)
	mustUpsert(t, e.s, SourceSync, cd("cus_notes", "Noted", "", 1))
	e.clock.Add(time.Minute)
	secret := "owes us a favour — see ticket 4471"
	if err := e.s.SetClientNotes(ctxb, sshActor("alice"), "cus_notes", secret); err != nil {
		t.Fatal(err)
	}
	c := mustGet(t, e.s, "cus_notes")
	if c.Notes != secret || !c.UpdatedAt.Equal(e.clock.Now().Truncate(time.Millisecond)) {
		t.Fatalf("notes: %+v", c)
	}
	ev := one(t, e.s, ActionClientNotesUpdated)
	if ev.Target != "cus_notes" || ev.Actor != "alice" || strings.Contains(ev.Detail, "favour") ||
		ev.Detail != fmt.Sprintf(`{"customer_id":"cus_notes","length":%d}`, len(secret)) {
		t.Fatalf("audit: %+v", ev)
	}
	// Exactly the limit is fine; one byte more is not.
	if err := e.s.SetClientNotes(ctxb, sshActor("alice"), "cus_notes", strings.Repeat("n", MaxNotes)); err != nil {
		t.Fatal(err)
	}
	err := e.s.SetClientNotes(ctxb, sshActor("alice"), "cus_notes", strings.Repeat("n", MaxNotes+1))
	wantMsg(t, err, CodeInvalid, "the notes are 4001 bytes; at most 4000 are kept")
	err = e.s.SetClientNotes(ctxb, sshActor("alice"), "cus_notes", "bad \xff\xfe text")
	wantMsg(t, err, CodeInvalid, "the notes are not valid UTF-8 text")
	wantMsg(t, e.s.SetClientNotes(ctxb, sshActor("alice"), "cus_none", "x"), CodeNotFound, "no client cus_none")
	if n := len(events(t, e.s, ActionClientNotesUpdated)); n != 2 {
		t.Fatalf("%d notes audit rows, want 2", n)
	}
	// Clearing notes is allowed.
	if err := e.s.SetClientNotes(ctxb, sshActor("alice"), "cus_notes", ""); err != nil || mustGet(t, e.s, "cus_notes").Notes != "" {
		t.Fatalf("clearing notes: %v", err)
	}
}

func TestAddClient(t *testing.T) {
	e := newEnv(t)
	admin := Actor{Name: "bea", Role: RoleAdmin, Channel: ChannelSSH}
	for _, tc := range []struct {
		d   ClientData
		msg string
	}{
		{ClientData{CustomerID: "cust_1"}, `"cust_1" is not a Stripe customer id (expected cus_ followed by letters and digits, e.g. cus_NffrFeUfNV2Hib)`},
		{ClientData{CustomerID: "cus_"}, `"cus_" is not a Stripe customer id (expected cus_ followed by letters and digits, e.g. cus_NffrFeUfNV2Hib)`},
		{ClientData{CustomerID: "cus_a-b"}, `"cus_a-b" is not a Stripe customer id (expected cus_ followed by letters and digits, e.g. cus_NffrFeUfNV2Hib)`},
		{ClientData{CustomerID: " cus_a"}, `" cus_a" is not a Stripe customer id (expected cus_ followed by letters and digits, e.g. cus_NffrFeUfNV2Hib)`},
		{ClientData{CustomerID: "cus_" + strings.Repeat("x", 70)}, `"cus_` + strings.Repeat("x", 36) + `…" is not a Stripe customer id (expected cus_ followed by letters and digits, e.g. cus_NffrFeUfNV2Hib)`},
		{ClientData{CustomerID: "cus_ok", Email: "bob"}, `"bob" is not an email address (expected name@example.com)`},
		{ClientData{CustomerID: "cus_ok", Email: "bob@example"}, `"bob@example" is not an email address (expected name@example.com)`},
		{ClientData{CustomerID: "cus_ok", Email: "bob @example.com"}, `"bob @example.com" is not an email address (expected name@example.com)`},
		{ClientData{CustomerID: "cus_ok", Currency: "USD"}, `currency "USD" is not a three-letter ISO code in lower case (e.g. usd, eur)`},
		{ClientData{CustomerID: "cus_ok", Currency: "euro"}, `currency "euro" is not a three-letter ISO code in lower case (e.g. usd, eur)`},
		{ClientData{CustomerID: "cus_ok", Name: "bad \xff"}, `the name is not valid UTF-8 text`},
		{ClientData{CustomerID: "cus_ok", Description: strings.Repeat("d", 1001)}, `the description is longer than 1000 bytes`},
	} {
		_, err := e.s.AddClient(ctxb, admin, tc.d)
		wantMsg(t, err, CodeInvalid, tc.msg)
	}
	_, err := e.s.AddClient(ctxb, sshActor("alice"), ClientData{CustomerID: "cus_ok"})
	wantMsg(t, err, CodeForbidden, "only an admin may add clients")
	if n := len(events(t, e.s, ActionClientAdded)); n != 0 {
		t.Fatalf("refused adds were audited: %d", n)
	}
	c, err := e.s.AddClient(ctxb, admin, ClientData{CustomerID: "cus_ok", Name: "Manual Person", Email: "m@example.com", Currency: "usd"})
	if err != nil || c.Source != SourceManual || c.Name != "Manual Person" || c.ID == 0 {
		t.Fatalf("AddClient: %+v %v", c, err)
	}
	ev := one(t, e.s, ActionClientAdded)
	if ev.Target != "cus_ok" || ev.Detail != `{"customer_id":"cus_ok"}` || ev.Actor != "bea" {
		t.Fatalf("audit: %+v", ev)
	}
	_, err = e.s.AddClient(ctxb, admin, ClientData{CustomerID: "cus_ok"})
	wantMsg(t, err, CodeConflict, "client cus_ok already exists")
	if got := searchIDs(t, e.s, "Manual Pers"); !slices.Equal(got, []string{"cus_ok"}) {
		t.Fatalf("a manual client is not searchable: %v", got)
	}
	// Stripe's data later takes over a manual record.
	if r := mustUpsert(t, e.s, SourceSync, cd("cus_ok", "From Stripe", "s@example.com", 5)); r.Updated != 1 {
		t.Fatalf("sync over a manual client: %+v", r)
	}
	if c := mustGet(t, e.s, "cus_ok"); c.Source != SourceSync || c.Name != "From Stripe" {
		t.Fatalf("after sync: %+v", c)
	}
}

func TestClientAuditNewestFirst(t *testing.T) {
	e := newEnv(t)
	mustUpsert(t, e.s, SourceSync, cd("cus_aud", "A", "", 1), cd("cus_other", "B", "", 1))
	for range 3 {
		if _, err := e.s.ViewClient(ctxb, sshActor("alice"), "cus_aud"); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.s.SetClientNotes(ctxb, sshActor("alice"), "cus_aud", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.ViewClient(ctxb, sshActor("alice"), "cus_other"); err != nil {
		t.Fatal(err)
	}
	evs, err := e.s.ClientAudit(ctxb, "cus_aud", 2)
	if err != nil || len(evs) != 2 || evs[0].Action != ActionClientNotesUpdated || evs[1].Action != ActionClientViewed || evs[0].ID < evs[1].ID {
		t.Fatalf("ClientAudit: %+v %v", evs, err)
	}
	evs, _ = e.s.ClientAudit(ctxb, "cus_aud", 0)
	if len(evs) != 4 {
		t.Fatalf("ClientAudit: %d rows", len(evs))
	}
}

// --- leases -----------------------------------------------------------------------

func TestLeases(t *testing.T) {
	e := newEnv(t)
	other := e.open() // another process on the same data directory
	const ttl = time.Minute
	if err := e.s.AcquireLease(ctxb, LeaseClientSync, "alice", ttl); err != nil {
		t.Fatal(err)
	}
	if h, err := other.LeaseHolder(ctxb, LeaseClientSync); err != nil || h != "alice" {
		t.Fatalf("holder: %q %v", h, err)
	}
	err := other.AcquireLease(ctxb, LeaseClientSync, "bob", ttl)
	wantMsg(t, err, CodeConflict, "already running (started by alice)")
	if !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("not ErrLeaseHeld: %v", err)
	}
	// The holder renews; other leases are independent.
	e.clock.Add(50 * time.Second)
	if err := e.s.AcquireLease(ctxb, LeaseClientSync, "alice", ttl); err != nil {
		t.Fatalf("renew: %v", err)
	}
	if err := other.AcquireLease(ctxb, "other.job", "bob", ttl); err != nil {
		t.Fatalf("another lease: %v", err)
	}
	// Still held until the renewed expiry (inclusive) ...
	e.clock.Add(ttl)
	wantCode(t, other.AcquireLease(ctxb, LeaseClientSync, "bob", ttl), CodeConflict)
	if h, _ := other.LeaseHolder(ctxb, LeaseClientSync); h != "alice" {
		t.Fatalf("holder at expiry: %q", h)
	}
	// ... and free after it.
	e.clock.Add(time.Millisecond)
	if h, _ := other.LeaseHolder(ctxb, LeaseClientSync); h != "" {
		t.Fatalf("holder after expiry: %q", h)
	}
	if err := other.AcquireLease(ctxb, LeaseClientSync, "bob", ttl); err != nil {
		t.Fatalf("take over an expired lease: %v", err)
	}
	err = e.s.AcquireLease(ctxb, LeaseClientSync, "alice", ttl)
	wantMsg(t, err, CodeConflict, "already running (started by bob)")
	// Only the holder releases.
	if err := e.s.ReleaseLease(ctxb, LeaseClientSync, "alice"); err != nil {
		t.Fatal(err)
	}
	if h, _ := e.s.LeaseHolder(ctxb, LeaseClientSync); h != "bob" {
		t.Fatalf("a non-holder released the lease: holder %q", h)
	}
	if err := other.ReleaseLease(ctxb, LeaseClientSync, "bob"); err != nil {
		t.Fatal(err)
	}
	if h, _ := e.s.LeaseHolder(ctxb, LeaseClientSync); h != "" {
		t.Fatalf("after release: %q", h)
	}
	if err := e.s.AcquireLease(ctxb, LeaseClientSync, "alice", ttl); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

// TestLeaseRace has many callers on two handles race for one lease: exactly
// one wins.
func TestLeaseRace(t *testing.T) {
	e := newEnv(t)
	handles := []*Store{e.s, e.open()}
	errs := make(chan error, 16)
	for i := range 16 {
		go func() { errs <- handles[i%2].AcquireLease(ctxb, LeaseClientSync, fmt.Sprintf("h%d", i), time.Minute) }()
	}
	won := 0
	for range 16 {
		err := <-errs
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrLeaseHeld):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d holders, want 1", won)
	}
}

// TestBulkLoadInterrupted: a seed that dies between dropping the indexes
// and rebuilding them is finished by the next Open.
func TestBulkLoadInterrupted(t *testing.T) {
	e := newEnv(t)
	mustUpsert(t, e.s, SourceSync, cd("cus_before", "Before Crash", "before@example.com", 1))
	schema := func() []string {
		rows, err := e.s.rdb.QueryContext(ctxb, `SELECT name FROM sqlite_schema WHERE tbl_name = 'clients' AND sql IS NOT NULL ORDER BY name`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			out = append(out, n)
		}
		return out
	}
	want := schema()
	if !slices.Contains(want, "clients_flags") || !slices.Contains(want, "clients_fts_insert") || !slices.Contains(want, "clients_name") {
		t.Fatalf("schema: %v", want)
	}
	restore, err := e.s.startBulkLoad(ctxb)
	if err != nil {
		t.Fatal(err)
	}
	if got := schema(); slices.Contains(got, "clients_name") || slices.Contains(got, "clients_fts_insert") {
		t.Fatalf("bulk load did not drop: %v", got)
	}
	// Starting again (a second seed after a crash) reuses the record.
	if again, err := e.s.startBulkLoad(ctxb); err != nil || again != restore {
		t.Fatalf("second start: %v", err)
	}
	mustUpsert(t, e.s, SourceSync, cd("cus_during", "During Load", "during@example.com", 1)) // not indexed yet
	e.reopen()
	if got := schema(); !slices.Equal(got, want) {
		t.Fatalf("after reopening:\n got %v\nwant %v", got, want)
	}
	var n int
	if err := e.s.rdb.QueryRowContext(ctxb, `SELECT count(*) FROM meta WHERE key = ?`, bulkLoadKey).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the bulk load record stayed: %d %v", n, err)
	}
	for q, id := range map[string]string{"During Lo": "cus_during", "Before Cr": "cus_before"} {
		if got := searchIDs(t, e.s, q); !slices.Equal(got, []string{id}) {
			t.Errorf("search %q: %v", q, got)
		}
	}
	mustUpsert(t, e.s, SourceSync, cd("cus_after", "After Repair", "after@example.com", 1))
	if got := searchIDs(t, e.s, "After Rep"); !slices.Equal(got, []string{"cus_after"}) {
		t.Errorf("the insert trigger is not back: %v", got)
	}
	if p := mustListClients(t, e.s, ClientQuery{Sort: SortBalance, Deleted: ptr(false)}); len(p.Clients) != 3 {
		t.Errorf("listing after repair: %d", len(p.Clients))
	}
}

// TestSearchIndexFollowsRenames checks the search index's triggers: a
// rename (even of case only) re-indexes, other updates leave it alone, and
// the index stays consistent with the table.
func TestSearchIndexFollowsRenames(t *testing.T) {
	e := newEnv(t)
	mustUpsert(t, e.s, SourceSync, cd("cus_r1", "Alice Smith", "alice@example.com", 1), cd("cus_r2", "Bob", "bob@example.com", 1))
	steps := []ClientData{
		{CustomerID: "cus_r1", Name: "alice smith", Email: "alice@example.com", Currency: "usd", Version: 2}, // case only
		{CustomerID: "cus_r1", Name: "alice smith", Email: "alice@example.com", Currency: "usd", Balance: 5, Version: 3},
		{CustomerID: "cus_r1", Name: "Carol Jones", Email: "carol@example.com", Currency: "usd", Balance: 5, Version: 4},
	}
	for _, d := range steps {
		mustUpsert(t, e.s, SourceWebhook, d)
	}
	if got := searchIDs(t, e.s, "Carol Jo"); !slices.Equal(got, []string{"cus_r1"}) {
		t.Fatalf("renamed client: %v", got)
	}
	for _, q := range []string{"Alice", "alice@"} {
		if got := searchIDs(t, e.s, q); len(got) != 0 {
			t.Fatalf("old text %q still found: %v", q, got)
		}
	}
	var ok string
	db := rawDB(t, e.dir)
	if _, err := db.Exec(`INSERT INTO clients_fts (clients_fts, rank) VALUES ('integrity-check', 1)`); err != nil {
		t.Fatalf("search index integrity: %v", err)
	}
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity: %q %v", ok, err)
	}
}

// TestClientDataFirstBadField: with several bad fields the message names
// the first, every time.
func TestClientDataFirstBadField(t *testing.T) {
	for range 20 {
		err := checkClientData(ClientData{CustomerID: "cus_x", Name: "\xff", Email: "\xfe", Description: strings.Repeat("d", 2000)})
		if ErrorMessage(err) != "the name is not valid UTF-8 text" {
			t.Fatalf("got %v", err)
		}
	}
}

// TestUpsertSetsOnlyChangedColumns: an update names only the columns that
// change, so that SQLite leaves the indexes of the others alone (it
// rewrites the entry of every index on a column an UPDATE sets).
func TestUpsertSetsOnlyChangedColumns(t *testing.T) {
	e := newEnv(t)
	mustExecStore(t, e.s, `CREATE TABLE touched (col TEXT)`)
	for _, c := range []string{"name", "balance", "delinquent", "stripe_created"} {
		mustExecStore(t, e.s, `CREATE TRIGGER touched_`+c+` AFTER UPDATE OF `+c+` ON clients BEGIN INSERT INTO touched VALUES ('`+c+`'); END`)
	}
	touched := func() string {
		t.Helper()
		var got []string
		rows, err := e.s.rdb.Query(`SELECT col FROM touched ORDER BY col`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var c string
			rows.Scan(&c)
			got = append(got, c)
		}
		mustExecStore(t, e.s, `DELETE FROM touched`)
		return strings.Join(got, ",")
	}
	d := ClientData{CustomerID: "cus_Cols", Name: "Column Person", Email: "cols@example.com", Balance: 100, Version: 1,
		StripeCreated: time.Unix(1_700_000_000, 0)}
	mustUpsert(t, e.s, SourceWebhook, d)
	touched()
	d.Balance, d.Version = 250, 2
	mustUpsert(t, e.s, SourceWebhook, d)
	if got := touched(); got != "balance" {
		t.Errorf("a balance change set %q, want balance only", got)
	}
	d.Name, d.Delinquent, d.Version = "Renamed Person", true, 3
	mustUpsert(t, e.s, SourceWebhook, d)
	if got := touched(); got != "delinquent,name" {
		t.Errorf("a name and delinquency change set %q", got)
	}
	if c := mustGet(t, e.s, "cus_Cols"); c.Name != "Renamed Person" || c.Balance != 250 || !c.Delinquent || c.Version != 3 ||
		!c.StripeCreated.Equal(d.StripeCreated) {
		t.Errorf("client after the updates: %+v", c)
	}
}
