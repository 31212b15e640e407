package tui

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/muesli/termenv"

	"backroom/store"
)

// testClients are n clients with known, distinct names, creation times
// and balances: the expected order of every sort is computed from them.
func testClients(n int, created time.Time) []store.ClientData {
	out := make([]store.ClientData, n)
	for i := range out {
		d := store.ClientData{
			CustomerID:    fmt.Sprintf("cus_T%04d", i),
			Name:          fmt.Sprintf("Client %04d", i),
			Email:         fmt.Sprintf("client%04d@example.com", i),
			Phone:         fmt.Sprintf("+44 20 7946 %04d", i),
			Currency:      "usd",
			Balance:       int64((i*37+11)%100)*100 - 5000,
			Livemode:      i%2 == 0,
			Delinquent:    i%10 == 0,
			Deleted:       i%25 == 7,
			StripeCreated: created.Add(-time.Duration(i) * time.Hour),
			Version:       1,
		}
		if i%10 == 3 {
			d.Currency = "jpy"
		}
		if i%5 == 0 {
			d.Metadata = map[string]string{"plan": "team", "region": "eu"}
			d.Description = "Annual plan"
		}
		out[i] = d
	}
	return out
}

// clientsEnv is a store with alice (admin), bob (staff) and n test clients.
type clientsEnv struct {
	st    *store.Store
	clock *clock
	alice member
	bob   member
	data  []store.ClientData
}

func newClientsEnv(t *testing.T, n int) *clientsEnv {
	t.Helper()
	st, c := openStore(t)
	e := &clientsEnv{st: st, clock: c}
	e.alice = addMember(t, st, "alice", true, false)
	e.bob = addMember(t, st, "bob", false, false)
	e.data = testClients(n, c.Now().Add(-24*time.Hour))
	if n > 0 {
		if _, err := st.UpsertClients(context.Background(), store.SourceSync, e.data); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// console opens a console for alice (admin) or bob (staff) on the Clients
// screen.
func (e *clientsEnv) console(t *testing.T, admin bool, o Options) *harness {
	t.Helper()
	o.Store = e.st
	if admin {
		o.Actor, o.Fingerprint = sshActor("alice", store.RoleAdmin), e.alice.fp
	} else {
		o.Actor, o.Fingerprint = sshActor("bob", store.RoleStaff), e.bob.fp
	}
	h := newHarness(t, e.clock, o)
	h.keys("2")
	return h
}

func clientsOf(h *harness) *clientsScreen {
	for _, s := range h.m.screens {
		if c, ok := s.(*clientsScreen); ok {
			return c
		}
	}
	h.t.Fatal("no Clients screen")
	return nil
}

// order returns the customer ids of data sorted as the store sorts them
// (ties broken by insertion order).
func order(data []store.ClientData, keep func(store.ClientData) bool, cmp func(a, b store.ClientData) int) []string {
	type row struct {
		d store.ClientData
		i int
	}
	var rows []row
	for i, d := range data {
		if keep == nil || keep(d) {
			rows = append(rows, row{d, i})
		}
	}
	slices.SortStableFunc(rows, func(a, b row) int {
		if c := cmp(a.d, b.d); c != 0 {
			return c
		}
		return a.i - b.i
	})
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.d.CustomerID
	}
	return ids
}

func byName(a, b store.ClientData) int { return strings.Compare(a.Name, b.Name) }

// shownIDs is the customer ids of the page the screen holds.
func shownIDs(cs *clientsScreen) []string {
	ids := make([]string, len(cs.rows))
	for i, c := range cs.rows {
		ids[i] = c.CustomerID
	}
	return ids
}

// tableIDs is the customer ids in the frame's table, top to bottom.
func tableIDs(h *harness) []string {
	var ids []string
	for _, l := range strings.Split(h.view(), "\n") {
		f := strings.Fields(strings.TrimLeft(l, " >▸"))
		if len(f) > 0 && strings.HasPrefix(f[0], "cus_") {
			ids = append(ids, f[0])
		}
	}
	return ids
}

func TestClientsFirstPage(t *testing.T) {
	e := newClientsEnv(t, 100)
	h := e.console(t, false, Options{})
	cs := clientsOf(h)
	h.mustSee("1 Key", "[2 Clients]", "3 Audit", "customer", "name", "email", "balance", "flags")
	h.mustNotSee("Staff")
	size := cs.pageSize()
	if size != 18 {
		t.Fatalf("page size at 80x24 is %d, want 18", size)
	}
	want := order(e.data, nil, byName)[:size]
	if got := tableIDs(h); !slices.Equal(got, want) {
		t.Fatalf("first page shows %v, want %v", got, want)
	}
	if got := shownIDs(cs); !slices.Equal(got, want) {
		t.Fatalf("the screen holds %v, want only the visible page %v", got, want)
	}
	// The unfiltered total is an estimate.
	h.mustSee("1–18 of about 100 · sort name ↑")
	// Row content: balance with its currency, mode and flags.
	lines := strings.Split(h.view(), "\n")
	if first := lines[3]; !strings.Contains(first, "Client 0000") || !strings.Contains(first, "USD -39.00") ||
		!strings.Contains(first, "LIVE") {
		t.Fatalf("first row: %q", first)
	}
	h.mustSee("JPY -2,800") // cus_T0003: a zero-decimal currency
	h.mustSee("enter details", "/ search", "s sort")
	h.mustNotSee("forget", "add client")
}

func TestClientsPaging(t *testing.T) {
	e := newClientsEnv(t, 100)
	h := e.console(t, false, Options{})
	cs := clientsOf(h)
	size := cs.pageSize()
	all := order(e.data, nil, byName)

	// pgdn walks every page in order, without gaps or repeats.
	var seen []string
	for page := 0; ; page++ {
		if page > 10 {
			t.Fatal("pgdn never reaches the end")
		}
		seen = append(seen, shownIDs(cs)...)
		from := page*size + 1
		h.mustSee(fmt.Sprintf("%d–%d of about 100", from, from+len(cs.rows)-1))
		if !cs.hasNext {
			break
		}
		h.keys("pgdown")
	}
	if !slices.Equal(seen, all) {
		t.Fatalf("pages forward:\n%v\nwant\n%v", seen, all)
	}
	h.keys("pgdown")
	if s := h.statusLine(); !strings.Contains(s, "This is the last page.") {
		t.Fatalf("status at the end: %q", s)
	}
	// pgup walks back to the top the same way.
	var back []string
	for page := 0; ; page++ {
		if page > 10 {
			t.Fatal("pgup never reaches the top")
		}
		back = append(append([]string(nil), shownIDs(cs)...), back...)
		if !cs.hasPrev {
			break
		}
		h.keys("pgup")
	}
	if !slices.Equal(back, all) {
		t.Fatalf("pages backward:\n%v\nwant\n%v", back, all)
	}
	h.mustSee("1–18 of about 100")

	// ↓ past the last row loads the next page; ↑ past the first goes back.
	h.keys("g")
	for range size - 1 {
		h.keys("down")
	}
	if cs.grid.cursor() != size-1 || cs.rows[0].CustomerID != all[0] {
		t.Fatalf("moving down within the page: cursor %d, first %s", cs.grid.cursor(), cs.rows[0].CustomerID)
	}
	h.keys("down")
	if cs.rows[0].CustomerID != all[size] || cs.grid.cursor() != 0 {
		t.Fatalf("↓ past the edge: first %s cursor %d, want %s at 0", cs.rows[0].CustomerID, cs.grid.cursor(), all[size])
	}
	h.mustSee(fmt.Sprintf("%d–%d of about 100", size+1, 2*size))
	h.keys("up")
	if cs.rows[0].CustomerID != all[0] || cs.grid.cursor() != size-1 {
		t.Fatalf("↑ past the edge: first %s cursor %d", cs.rows[0].CustomerID, cs.grid.cursor())
	}
	if got, _ := cs.selected(); got.CustomerID != all[size-1] {
		t.Fatalf("selected %s after ↑, want %s", got.CustomerID, all[size-1])
	}

	// G shows the last page, g the first.
	h.keys("G")
	if !slices.Equal(shownIDs(cs), all[len(all)-size:]) || cs.hasNext {
		t.Fatalf("G shows %v", shownIDs(cs))
	}
	h.mustSee(fmt.Sprintf("%d–100 of about 100", 100-size+1))
	if got, _ := cs.selected(); got.CustomerID != all[99] {
		t.Fatalf("G selects %s", got.CustomerID)
	}
	// ↑ from the last page continues backwards without a gap.
	h.keys("pgup")
	if !slices.Equal(shownIDs(cs), all[len(all)-2*size:len(all)-size]) {
		t.Fatalf("pgup after G shows %v", shownIDs(cs))
	}
	h.keys("g")
	if !slices.Equal(shownIDs(cs), all[:size]) || cs.hasPrev {
		t.Fatalf("g shows %v", shownIDs(cs))
	}

	// Reverse order: the pages still meet without gaps.
	h.keys("S")
	h.mustSee("sort name ↓")
	rev := slices.Clone(all)
	slices.Reverse(rev)
	h.keys("pgdown")
	h.keys("up")
	if got, _ := cs.selected(); got.CustomerID != rev[size-1] {
		t.Fatalf("descending ↑ across the edge selects %s, want %s", got.CustomerID, rev[size-1])
	}
}

func TestClientsSearch(t *testing.T) {
	e := newClientsEnv(t, 100)
	h := e.console(t, false, Options{})
	cs := clientsOf(h)

	h.keys("/")
	h.mustSee("/")
	// One or two characters: a name prefix.
	h.typeText("C")
	h.mustSee("1–18 of 100", "name prefix, by name")
	h.typeText("lient 00")
	h.mustSee("/Client 00", "1–18 of 100", "insertion order")
	h.typeText("4")
	h.mustSee("1–10 of 10")
	for _, c := range cs.rows {
		if !strings.HasPrefix(c.Name, "Client 004") {
			t.Fatalf("search let %s through", c.Name)
		}
	}
	h.typeText("2")
	h.mustSee("1–1 of 1")
	if ids := tableIDs(h); !slices.Equal(ids, []string{"cus_T0042"}) {
		t.Fatalf("search rows %v", ids)
	}
	// The sort keys say why they do nothing while searching.
	h.keys("enter")
	h.mustSee(`search "Client 0042"`)
	h.keys("s")
	if s := h.statusLine(); !strings.Contains(s, "Sorting is ignored while searching") {
		t.Fatalf("status: %q", s)
	}
	// Email and customer id substrings.
	h.keys("/")
	for range 20 {
		h.keys("backspace")
	}
	h.typeText("t0057@exa")
	if ids := shownIDs(cs); !slices.Equal(ids, []string{"cus_T0057"}) {
		t.Fatalf("email search: %v", ids)
	}
	// esc clears the search.
	h.keys("esc")
	// The sort chosen while searching applies now: oldest first.
	h.mustSee("1–18 of about 100", "sort created ↑")
	h.mustNotSee(`search "`)
	if cs.rows[0].Name != "Client 0099" {
		t.Fatalf("after esc: %s", cs.rows[0].Name)
	}
	// A search with no match.
	h.keys("/")
	h.typeText("zzzz")
	h.mustSee("no clients match")
	h.keys("esc")
}

func TestClientsStaleSearchIgnored(t *testing.T) {
	e := newClientsEnv(t, 100)
	h := e.console(t, false, Options{})
	cs := clientsOf(h)

	// Two keystrokes: the first query's result arrives after the second's.
	cs.listing.search = "Client 001"
	slow := cs.load(loadFirst)
	cs.listing.search = "Client 002"
	fast := cs.load(loadFirst)
	h.send(fast())
	h.send(slow()) // superseded: cancelled, and dropped when it arrives
	if len(cs.rows) != 10 {
		t.Fatalf("%d rows", len(cs.rows))
	}
	for _, c := range cs.rows {
		if !strings.HasPrefix(c.Name, "Client 002") {
			t.Fatalf("a stale result replaced the current one: %s", c.Name)
		}
	}
	if s := h.statusLine(); strings.Contains(s, "error") {
		t.Fatalf("the cancelled query shows an error: %q", s)
	}

	// Typed quickly: every keystroke starts a query that cancels the one
	// before; only the last one's rows are shown.
	h.keys("esc", "/")
	var cmds []tea.Cmd
	for _, r := range "Client 0031" {
		_, cmd := h.m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
		cmds = append(cmds, cmd)
	}
	for i := len(cmds) - 1; i >= 0; i-- { // newest first: the rest are stale
		h.run(cmds[i])
	}
	if ids := shownIDs(cs); !slices.Equal(ids, []string{"cus_T0031"}) {
		t.Fatalf("after out-of-order answers: %v", ids)
	}
}

func TestClientsSortAndFilter(t *testing.T) {
	e := newClientsEnv(t, 100)
	h := e.console(t, false, Options{})
	cs := clientsOf(h)
	size := cs.pageSize()
	check := func(label string, keep func(store.ClientData) bool, cmp func(a, b store.ClientData) int) {
		t.Helper()
		want := order(e.data, keep, cmp)
		if len(want) > size {
			want = want[:size]
		}
		if got := shownIDs(cs); !slices.Equal(got, want) {
			t.Fatalf("%s: rows %v, want %v", label, got, want)
		}
		if len(want) > 0 {
			if got := tableIDs(h); len(got) == 0 || got[0] != want[0] {
				t.Fatalf("%s: first row on screen %v, want %s", label, got, want[0])
			}
		}
	}
	created := func(a, b store.ClientData) int { return a.StripeCreated.Compare(b.StripeCreated) }
	balance := func(a, b store.ClientData) int { return int(a.Balance - b.Balance) }
	desc := func(f func(a, b store.ClientData) int) func(a, b store.ClientData) int {
		return func(a, b store.ClientData) int { return -f(a, b) }
	}

	h.keys("s")
	h.mustSee("sort created ↑")
	check("created", nil, created)
	if cs.rows[0].CustomerID != "cus_T0099" {
		t.Fatalf("oldest first: %s", cs.rows[0].CustomerID)
	}
	h.keys("S")
	h.mustSee("sort created ↓")
	check("created desc", nil, desc(created))
	h.keys("s")
	h.mustSee("sort balance ↓")
	check("balance desc", nil, desc(balance))
	h.keys("S")
	check("balance", nil, balance)
	h.keys("s")
	h.mustSee("sort name ↑")
	check("name", nil, byName)

	// Filters; the total of a filtered list is a count.
	h.keys("l")
	h.mustSee("filter: live only", "of 50")
	check("live", func(d store.ClientData) bool { return d.Livemode }, byName)
	h.keys("l")
	h.mustSee("filter: test only")
	check("test", func(d store.ClientData) bool { return !d.Livemode }, byName)
	h.keys("l", "d")
	h.mustSee("filter: delinquent", "1–10 of 10")
	check("delinquent", func(d store.ClientData) bool { return d.Delinquent }, byName)
	h.keys("d", "x")
	h.mustSee("filter: deleted hidden", "of 96")
	check("hide deleted", func(d store.ClientData) bool { return !d.Deleted }, byName)
	h.keys("x")
	h.mustSee("filter: deleted only", "1–4 of 4", "deleted")
	check("deleted only", func(d store.ClientData) bool { return d.Deleted }, byName)
	h.keys("x")
	h.mustNotSee("filter:")
	h.mustSee("of about 100")

	// Sort and filter together.
	h.keys("s", "l")
	check("live by created", func(d store.ClientData) bool { return d.Livemode }, created)
	h.keys("?")
	h.mustSee("sort name/created/balance", "reverse sort", "live/test/any", "delinquent only", "deleted: all/hide/only")
	h.mustNotSee("forget", "add client", "link from Stripe", "sync with Stripe")
}

func TestClientsDetail(t *testing.T) {
	e := newClientsEnv(t, 100)
	ctx := context.Background()
	h := e.console(t, false, Options{Width: 100, Height: 50})
	h.keys("/")
	h.typeText("client0040@")
	h.keys("enter", "enter")
	h.mustSee("Client cus_T0040 · Client 0040", "esc back",
		"Customer     cus_T0040", "Status       active", "Email        client0040@example.com",
		"Phone        +44 20 7946 0040", "Description  Annual plan", "Currency     USD",
		"Balance      USD 41.00  (owed by the client)", "Delinquent   yes", "Mode         LIVE",
		"Created      2026-11-24 20:00:00 UTC", "Updated      2026-11-27 12:00:00 UTC",
		"Source       sync", "Version      1",
		"Metadata", "plan=team", "region=eu", "Notes", "e edit", "Audit (1)", "client.viewed")

	// Opening the detail wrote exactly one client.viewed row.
	rows, err := e.st.ListAudit(ctx, store.AuditQuery{ActionPrefix: store.ActionClientViewed})
	if err != nil || len(rows) != 1 || rows[0].Target != "cus_T0040" || rows[0].Actor != "bob" || rows[0].Channel != store.ChannelSSH {
		t.Fatalf("client.viewed rows: %+v %v", rows, err)
	}
	// Scrolling and leaving write nothing more.
	h.keys("down", "pgdown", "G", "g", "esc")
	h.mustSee("1–1 of 1")
	if rows, _ := e.st.ListAudit(ctx, store.AuditQuery{ActionPrefix: store.ActionClientViewed}); len(rows) != 1 {
		t.Fatalf("%d client.viewed rows after scrolling", len(rows))
	}

	// A deleted client is marked as such.
	h.keys("esc", "x", "x")
	h.mustSee("deleted only")
	h.keys("enter")
	h.mustSee("Status       deleted at Stripe")
}

func TestClientsNotes(t *testing.T) {
	e := newClientsEnv(t, 30)
	ctx := context.Background()
	h := e.console(t, false, Options{Width: 100, Height: 40})
	h.keys("enter")
	h.mustSee("Client cus_T0000")
	h.keys("e")
	h.mustSee("Notes of cus_T0000", "ctrl+s save", "esc cancel")
	// q and digits type into the notes.
	h.typeText("q2 prefers email")
	h.keys("enter")
	h.typeText("call before 10:00")
	h.mustSee("q2 prefers email", "call before 10:00")
	if h.quit || h.m.active != 1 {
		t.Fatal("a key typed into the notes left them")
	}
	h.send(tea.KeyMsg{Type: tea.KeyCtrlS})
	if s := h.statusLine(); !strings.Contains(s, "Notes of cus_T0000 saved.") {
		t.Fatalf("status: %q", s)
	}
	c, err := e.st.GetClient(ctx, "cus_T0000")
	if err != nil || c.Notes != "q2 prefers email\ncall before 10:00" {
		t.Fatalf("stored notes %q %v", c.Notes, err)
	}
	h.mustSee("q2 prefers email", "call before 10:00", "client.notes_updated", "Audit (2)")
	rows, err := e.st.ListAudit(ctx, store.AuditQuery{ActionPrefix: store.ActionClientNotesUpdated})
	if err != nil || len(rows) != 1 || rows[0].Target != "cus_T0000" || rows[0].Actor != "bob" {
		t.Fatalf("notes audit: %+v %v", rows, err)
	}

	// esc cancels an edit.
	h.keys("e")
	h.typeText(" DISCARD")
	h.keys("esc")
	h.mustNotSee("DISCARD")
	if c, _ := e.st.GetClient(ctx, "cus_T0000"); strings.Contains(c.Notes, "DISCARD") {
		t.Fatal("esc saved the notes")
	}

	// The store's refusal is shown and the editor stays open.
	h.keys("e")
	h.paste(strings.Repeat("é", 2100)) // 4,200 bytes
	h.send(tea.KeyMsg{Type: tea.KeyCtrlS})
	h.mustSee("at most 4000 are kept")
	if s := h.statusLine(); !strings.Contains(s, "at most 4000 are kept") {
		t.Fatalf("status: %q", s)
	}
	h.mustSee("ctrl+s save")
	h.keys("esc", "esc")
}

func TestClientsForget(t *testing.T) {
	e := newClientsEnv(t, 30)
	ctx := context.Background()

	// Staff: not offered, refused when tried.
	h := e.console(t, false, Options{Width: 100, Height: 40})
	h.keys("?")
	h.mustNotSee("forget")
	h.keys("?", "F")
	if s := h.statusLine(); !strings.Contains(s, "Only an admin may forget clients.") {
		t.Fatalf("status: %q", s)
	}
	h.keys("enter", "F")
	h.mustNotSee("Type the customer id")
	if c, _ := e.st.GetClient(ctx, "cus_T0000"); c.Forgotten() {
		t.Fatal("staff forgot a client")
	}

	// Admin: the id must be typed exactly.
	h = e.console(t, true, Options{Width: 100, Height: 40})
	h.keys("?")
	h.mustSee("forget (erase)", "add client", "link from Stripe", "sync with Stripe")
	h.keys("?", "enter")
	h.mustSee("Client cus_T0000 · Client 0000", "Email        client0000@example.com")
	h.keys("F")
	h.mustSee("Forget cus_T0000?", "Type the customer id to confirm")
	h.typeText("cus_t0000")
	h.keys("enter")
	h.mustSee("that is not cus_T0000")
	if c, _ := e.st.GetClient(ctx, "cus_T0000"); c.Forgotten() {
		t.Fatal("forgotten without the exact id")
	}
	h.typeText("cus_T0000")
	h.keys("enter")
	if s := h.statusLine(); !strings.Contains(s, "Forgot cus_T0000") {
		t.Fatalf("status: %q", s)
	}
	h.mustSee("Status       forgotten 2026-11-27 12:00:00 UTC: personal data erased", "client.forgotten")
	h.mustNotSee("Client 0000", "client0000@example.com", "+44 20 7946 0000", "plan=team")
	c, err := e.st.GetClient(ctx, "cus_T0000")
	if err != nil || !c.Forgotten() || c.Name != "" || c.Email != "" {
		t.Fatalf("store: %+v %v", c, err)
	}
	rows, _ := e.st.ListAudit(ctx, store.AuditQuery{ActionPrefix: store.ActionClientForgotten})
	if len(rows) != 1 || rows[0].Actor != "alice" {
		t.Fatalf("forget audit: %+v", rows)
	}
	// No notes for a forgotten client.
	h.keys("e")
	h.mustNotSee("ctrl+s save")
	if s := h.statusLine(); !strings.Contains(s, "was forgotten") {
		t.Fatalf("status: %q", s)
	}
	// In the list it shows as forgotten, without a name.
	h.keys("esc", "s") // by created: the row stays where it was
	h.keys("G")
	h.mustSee("cus_T0000", "forgotten")
	row := ""
	for _, l := range strings.Split(h.view(), "\n") {
		if f := strings.Fields(strings.TrimLeft(l, " >")); len(f) > 0 && f[0] == "cus_T0000" {
			row = l
		}
	}
	if !strings.Contains(row, "(forgotten)") || !strings.Contains(row, "LIVE forgot") || strings.Contains(row, "Client 0000") {
		t.Fatalf("forgotten row: %q", row)
	}
	// Forgetting twice: the store's words.
	h.keys("F")
	h.typeText("cus_T0000")
	h.keys("enter")
	if s := h.statusLine(); !strings.Contains(s, "already forgotten") {
		t.Fatalf("status: %q", s)
	}
}

func TestClientsAdd(t *testing.T) {
	e := newClientsEnv(t, 5)
	ctx := context.Background()

	h := e.console(t, false, Options{})
	h.keys("n")
	if s := h.statusLine(); !strings.Contains(s, "Only an admin may add clients.") {
		t.Fatalf("staff status: %q", s)
	}
	h.mustNotSee("Add a client")

	h = e.console(t, true, Options{})
	h.keys("n")
	h.mustSee("Add a client by hand", "Customer id", "Email", "Currency", "Mode")
	h.typeText("customer-1")
	h.keys("tab")
	h.typeText("Grace Hopper")
	h.keys("tab")
	h.typeText("grace@navy")
	h.keys("tab")
	h.typeText("USD")
	h.keys("tab", "y", "enter")
	h.mustSee(`"customer-1" is not a Stripe customer id (expected cus_ followed by letters and`)
	if cs := clientsOf(h); cs.form.field != fieldID {
		t.Fatalf("focus on field %d after a bad id", cs.form.field)
	}
	for range 20 {
		h.keys("backspace")
	}
	h.typeText("cus_Grace1906")
	h.keys("enter", "enter", "enter", "enter", "enter")
	h.mustSee(`"grace@navy" is not an email address`)
	h.typeText(".mil")
	h.keys("enter", "enter", "enter")
	if s := h.statusLine(); !strings.Contains(s, "Added cus_Grace1906 by hand.") {
		t.Fatalf("status: %q\n%s", s, h.view())
	}
	h.mustNotSee("Add a client")
	c, err := e.st.GetClient(ctx, "cus_Grace1906")
	if err != nil || c.Name != "Grace Hopper" || c.Email != "grace@navy.mil" || c.Currency != "usd" || !c.Livemode || c.Source != store.SourceManual {
		t.Fatalf("added: %+v %v", c, err)
	}
	h.mustSee("cus_Grace1906", "Grace Hopper")

	// The store's refusal (an existing id) is shown in the form.
	h.keys("n")
	h.typeText("cus_T0001")
	h.keys("enter", "enter", "enter", "enter", "enter")
	h.mustSee("client cus_T0001 already exists")
	h.keys("esc")
	h.mustNotSee("Add a client")
}

// fakeSync is an in-memory ClientSync: tests set its progress.
type fakeSync struct {
	mu       sync.Mutex
	p        store.SyncProgress
	starts   []string
	startErr error
	polls    int
	links    []string
	onLink   func(id string) (store.Client, error)
}

func (f *fakeSync) Start(_ context.Context, a store.Actor) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.startErr != nil {
		return f.startErr
	}
	f.starts = append(f.starts, a.Name)
	f.p = store.SyncProgress{Running: true, StartedBy: a.Name, StartedAt: time.Now()}
	return nil
}

func (f *fakeSync) Status() store.SyncProgress {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.polls++
	return f.p
}

func (f *fakeSync) Link(_ context.Context, _ store.Actor, id string) (store.Client, error) {
	f.mu.Lock()
	f.links = append(f.links, id)
	on := f.onLink
	f.mu.Unlock()
	return on(id)
}

func (f *fakeSync) set(p store.SyncProgress) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.p = p
}

func (f *fakeSync) pollCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.polls
}

func TestClientsSync(t *testing.T) {
	e := newClientsEnv(t, 40)
	ctx := context.Background()

	// Without a ClientSync the actions say so.
	h := e.console(t, true, Options{})
	h.keys("Y")
	if s := h.statusLine(); !strings.Contains(s, "Sync is not available in this session.") {
		t.Fatalf("status: %q", s)
	}
	h.keys("L")
	if s := h.statusLine(); !strings.Contains(s, "Sync is not available in this session.") {
		t.Fatalf("status: %q", s)
	}
	if len(h.ticks) != 0 {
		t.Fatalf("ticks without a sync: %d", len(h.ticks))
	}

	fs := &fakeSync{}
	h = e.console(t, true, Options{ClientSync: fs, Width: 120, Height: 24})
	cs := clientsOf(h)
	if len(h.ticks) != 0 {
		t.Fatal("ticks while no sync runs")
	}
	// Staff may not start one.
	hb := e.console(t, false, Options{ClientSync: fs})
	hb.keys("Y")
	if s := hb.statusLine(); !strings.Contains(s, "Only an admin may start a sync") {
		t.Fatalf("staff status: %q", s)
	}

	h.keys("Y")
	h.mustSee("Start a sync with Stripe now?", "y/n")
	h.keys("n")
	if len(fs.starts) != 0 {
		t.Fatal("n started a sync")
	}
	h.keys("Y", "y")
	if len(fs.starts) != 1 || fs.starts[0] != "alice" {
		t.Fatalf("starts: %v", fs.starts)
	}
	if s := h.statusLine(); !strings.Contains(s, "Stripe sync started") {
		t.Fatalf("status: %q", s)
	}
	// The total is not known yet: a count, no bar.
	h.mustSee("Stripe sync", "the total is not known yet", "fetched 0 · 0 created · 0 updated · 0 unchanged · started by alice")
	h.checkFits(120, 24)
	if len(h.ticks) != 1 || h.ticks[0].d != 250*time.Millisecond {
		t.Fatalf("ticks: %+v", h.ticks)
	}
	if cs.pageSize() != 16 {
		t.Fatalf("page size with the sync lines: %d", cs.pageSize())
	}
	if len(cs.rows) != 16 {
		t.Fatalf("page not reloaded to fit: %d rows", len(cs.rows))
	}

	// Progress with a known total: the bar and the counts.
	fs.set(store.SyncProgress{Running: true, StartedBy: "alice", Fetched: 1234, Total: 2500,
		UpsertResult: store.UpsertResult{Created: 12, Updated: 3, Unchanged: 1219}})
	tick := h.ticks[0]
	h.ticks = nil
	h.send(tick.fn(time.Now()))
	h.mustSee("fetched 1,234 of 2,500 · 12 created · 3 updated · 1,219 unchanged", " 49%", "####", "....")
	h.checkFits(120, 24)
	if len(h.ticks) != 1 {
		t.Fatalf("the poll was not renewed: %d ticks", len(h.ticks))
	}
	// Staff see it too.
	hb.keys("1", "2")
	hb.mustSee("fetched 1,234 of 2,500")

	// Leaving the screen stops the polling: the pending tick returns no
	// command and schedules no other.
	h.keys("3")
	polls := fs.pollCount()
	tick = h.ticks[0]
	h.ticks = nil
	_, cmd := h.m.Update(tick.fn(time.Now()))
	if cmd != nil {
		t.Fatal("a tick on a hidden screen returned a command")
	}
	if fs.pollCount() != polls || len(h.ticks) != 0 {
		t.Fatalf("hidden screen polled (%d → %d) or ticked (%d)", polls, fs.pollCount(), len(h.ticks))
	}
	// Also in the detail and after the sync is over, nothing ticks when
	// hidden.
	h.keys("1")
	if len(h.ticks) != 0 {
		t.Fatal("ticks on the Key screen")
	}

	// The sync finishes meanwhile (here: 5 new clients); coming back shows
	// the outcome and the refreshed list.
	more := testClients(45, e.clock.Now())[40:]
	if _, err := e.st.UpsertClients(ctx, store.SourceSync, more); err != nil {
		t.Fatal(err)
	}
	fs.set(store.SyncProgress{StartedBy: "alice", Fetched: 45, Total: 45, FinishedAt: e.clock.Now(),
		UpsertResult: store.UpsertResult{Created: 5, Unchanged: 40}, MarkedDeleted: 1})
	h.keys("2")
	if s := h.statusLine(); !strings.Contains(s, "Stripe sync finished 2026-11-27 12:00:00 UTC: fetched 45 · 5 created · 0 updated · 40 unchanged · 1 marked deleted") {
		t.Fatalf("status: %q", s)
	}
	h.mustNotSee("started by")
	h.mustSee("of about 45")
	if len(h.ticks) != 0 || cs.pageSize() != 18 || len(cs.rows) != 18 {
		t.Fatalf("after the sync: %d ticks, page %d, %d rows", len(h.ticks), cs.pageSize(), len(cs.rows))
	}

	// Watching a sync end on screen refreshes the list too.
	h.keys("Y", "y")
	tick = h.ticks[0]
	h.ticks = nil
	if _, err := e.st.UpsertClients(ctx, store.SourceSync, []store.ClientData{{CustomerID: "cus_AAAfirst", Name: "Aaron Aardvark", Version: 1}}); err != nil {
		t.Fatal(err)
	}
	fs.set(store.SyncProgress{StartedBy: "alice", Fetched: 46, FinishedAt: e.clock.Now().Add(time.Minute), Err: "Stripe refused the key (invalid API key)"})
	h.send(tick.fn(time.Now()))
	if s := h.statusLine(); !strings.Contains(s, "Stripe sync stopped: Stripe refused the key (invalid API key)") {
		t.Fatalf("status: %q", s)
	}
	h.mustSee("Aaron Aardvark", "of about 46")
	if len(h.ticks) != 0 {
		t.Fatal("ticks after the sync ended")
	}

	// One at a time: the server's conflict is shown as it says it.
	fs.startErr = &store.Error{Code: store.CodeConflict, Msg: "already running (started by carol)"}
	h.keys("Y", "y")
	if s := h.statusLine(); !strings.Contains(s, "already running (started by carol)") {
		t.Fatalf("status: %q", s)
	}
	fs.startErr = &store.Error{Code: store.CodeInvalid, Msg: "no Stripe key is set: set one on the Key screen first"}
	h.keys("Y", "y")
	if s := h.statusLine(); !strings.Contains(s, "no Stripe key is set") {
		t.Fatalf("status: %q", s)
	}
}

func TestClientsLink(t *testing.T) {
	e := newClientsEnv(t, 5)
	ctx := context.Background()
	fs := &fakeSync{onLink: func(id string) (store.Client, error) {
		if id == "cus_Missing" {
			return store.Client{}, &store.Error{Code: store.CodeNotFound, Msg: "Stripe has no customer " + id}
		}
		d := store.ClientData{CustomerID: id, Name: "Linked Person", Email: "linked@example.com", Currency: "eur", Version: 1}
		if _, err := e.st.UpsertClients(ctx, store.SourceSync, []store.ClientData{d}); err != nil {
			return store.Client{}, err
		}
		return e.st.GetClient(ctx, id)
	}}
	hb := e.console(t, false, Options{ClientSync: fs})
	hb.keys("L")
	if s := hb.statusLine(); !strings.Contains(s, "Only an admin may link clients.") {
		t.Fatalf("staff: %q", s)
	}

	h := e.console(t, true, Options{ClientSync: fs})
	h.keys("L")
	h.mustSee("Link a Stripe customer", "Customer id:")
	h.typeText("nope")
	h.keys("enter")
	h.mustSee(`"nope" is not a Stripe customer id`)
	if len(fs.links) != 0 {
		t.Fatal("an invalid id reached Stripe")
	}
	for range 10 {
		h.keys("backspace")
	}
	h.typeText("cus_Missing")
	h.keys("enter")
	if s := h.statusLine(); !strings.Contains(s, "Stripe has no customer cus_Missing") {
		t.Fatalf("status: %q", s)
	}
	h.keys("L")
	h.typeText("cus_Linked42")
	h.keys("enter")
	if s := h.statusLine(); !strings.Contains(s, "Linked cus_Linked42 from Stripe (Linked Person).") {
		t.Fatalf("status: %q", s)
	}
	h.mustSee("cus_Linked42", "Linked Person", "EUR 0.00")
}

func TestClientsLayoutFits(t *testing.T) {
	for _, colour := range []bool{false, true} {
		e := newClientsEnv(t, 60)
		fs := &fakeSync{}
		h := e.console(t, true, Options{ClientSync: fs, Renderer: testRenderer(colour)})
		cs := clientsOf(h)
		for _, size := range [][2]int{{80, 24}, {120, 40}} {
			w, ht := size[0], size[1]
			h.send(tea.WindowSizeMsg{Width: w, Height: ht})
			fits := func(what string) {
				t.Helper()
				before := len(h.frames)
				h.checkFits(w, ht)
				if t.Failed() {
					t.Fatalf("colour %v %dx%d: %s does not fit (frame %d)", colour, w, ht, what, before)
				}
			}
			fits("list")
			if got, want := len(cs.rows), ht-6; got != want {
				t.Errorf("%dx%d: page of %d rows, want %d", w, ht, got, want)
			}
			h.keys("/")
			h.typeText("Client 00")
			fits("search")
			h.keys("esc", "?")
			fits("full help")
			h.keys("?", "enter")
			fits("detail")
			h.keys("e")
			h.paste(strings.Repeat("a long line of notes ", 30))
			fits("notes editor")
			h.keys("esc", "F")
			fits("forget prompt")
			h.typeText("wrong")
			h.keys("enter")
			fits("forget prompt with error")
			h.keys("esc", "esc", "n", "enter", "enter", "enter", "enter", "enter")
			h.mustSee("is not a Stripe customer id")
			fits("add form with error")
			h.keys("esc", "L")
			fits("link prompt")
			h.keys("esc", "Y", "y")
			fs.set(store.SyncProgress{Running: true, StartedBy: "alice", Fetched: 1_234_567, Total: 2_000_000,
				UpsertResult: store.UpsertResult{Created: 1_000_000, Updated: 34_567, Unchanged: 200_000}, MarkedDeleted: 12})
			tick := h.ticks[len(h.ticks)-1]
			h.ticks = nil
			h.send(tick.fn(time.Now()))
			h.mustSee("Stripe sync", "62%")
			fits("sync progress")
			if got, want := len(cs.rows), ht-8; got != want {
				t.Errorf("%dx%d with sync: page of %d rows, want %d", w, ht, got, want)
			}
			h.keys("enter")
			fits("detail during a sync")
			h.keys("esc")
			fs.set(store.SyncProgress{FinishedAt: time.Now()})
			tick = h.ticks[len(h.ticks)-1]
			h.ticks = nil
			h.send(tick.fn(time.Now()))
			fits("after the sync")
		}
		// Narrow terminals drop the columns that do not fit.
		header := func() string { return strings.Split(h.view(), "\n")[2] }
		h.send(tea.WindowSizeMsg{Width: 80, Height: 24})
		if hd := header(); strings.Contains(hd, "created") || !strings.Contains(hd, "flags") {
			t.Fatalf("80 columns: %q", hd)
		}
		h.send(tea.WindowSizeMsg{Width: 120, Height: 24})
		if hd := header(); !strings.Contains(hd, "created") {
			t.Fatalf("120 columns: %q", hd)
		}
	}
}

func TestClientsIdleCostsNothing(t *testing.T) {
	e := newClientsEnv(t, 10)
	fs := &fakeSync{}
	h := e.console(t, true, Options{ClientSync: fs})
	h.keys("enter", "esc", "1", "2", "3", "2")
	if len(h.ticks) != 0 {
		t.Fatalf("%d ticks while no sync runs", len(h.ticks))
	}
	// Status is asked once per visit, not polled.
	if n := fs.pollCount(); n != 3 {
		t.Fatalf("Status called %d times for 3 visits", n)
	}
}

func TestMoneyFormat(t *testing.T) {
	for _, c := range []struct {
		minor    int64
		currency string
		want     string
	}{
		{123456, "usd", "USD 1,234.56"},
		{-5, "eur", "EUR -0.05"},
		{0, "gbp", "GBP 0.00"},
		{100000000, "usd", "USD 1,000,000.00"},
		{5000, "jpy", "JPY 5,000"},
		{-1234567, "krw", "KRW -1,234,567"},
		{1234, "kwd", "KWD 1.234"},
		{0, "", "—"},
		{250, "", "250 (minor units)"},
		{-9223372036854775808, "usd", "USD -92,233,720,368,547,758.08"},
	} {
		if got := fmtMoney(c.minor, c.currency); got != c.want {
			t.Errorf("fmtMoney(%d, %q) = %q, want %q", c.minor, c.currency, got, c.want)
		}
	}
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1000000: "1,000,000", -12345: "-12,345"} {
		if got := fmtInt(n); got != want {
			t.Errorf("fmtInt(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestClientsSyncBarFollowsBackground(t *testing.T) {
	e := newClientsEnv(t, 5)
	fs := &fakeSync{p: store.SyncProgress{Running: true, Fetched: 50, Total: 100}}
	r := testRenderer(true)
	h := e.console(t, true, Options{ClientSync: fs, Renderer: r})
	// The accent colour for each background, as the session's profile
	// writes it.
	dark := termenv.TrueColor.Color("#A594FF").Sequence(false) + "m█"
	light := termenv.TrueColor.Color("#4B2FB0").Sequence(false) + "m█"
	if f := h.frame(); !strings.Contains(f, dark) || strings.Contains(f, light) {
		t.Fatalf("dark background: no dark-background bar:\n%q", f)
	}
	// The server learns the terminal's background after the first frame.
	r.SetHasDarkBackground(false)
	if f := h.frame(); !strings.Contains(f, light) || strings.Contains(f, dark) {
		t.Fatalf("light background: the bar kept its colours:\n%q", f)
	}
}

func TestClientsEscapesAreNeutralised(t *testing.T) {
	e := newClientsEnv(t, 0)
	evil := store.ClientData{CustomerID: "cus_Evil1", Name: "x\x1b[2J\x1b]0;pwned\x07", Email: "a@b.co",
		Description: "\u202egnp.exe", Metadata: map[string]string{"k\x1b[31m": "v\x1b[5m"}, Currency: "usd", Version: 1}
	if _, err := e.st.UpsertClients(context.Background(), store.SourceSync, []store.ClientData{evil}); err != nil {
		t.Fatal(err)
	}
	h := e.console(t, true, Options{})
	h.mustSee("cus_Evil1")
	h.keys("enter")
	h.mustSee("Client cus_Evil1")
	for _, f := range h.frames {
		if strings.ContainsAny(f, "\x1b\a\u202e") {
			t.Fatalf("control characters from client data reached the terminal: %q", f)
		}
	}
}
