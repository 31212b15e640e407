package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mattn/go-runewidth"

	"backroom/server/stripeapi/stripemock"
	"backroom/store"
	"backroom/store/jsontest"
)

// Keys of `clients list --json` and of `clients show --json`, in order.
const (
	clientListKeys = "customer_id,name,email,phone,description,currency,balance,livemode,delinquent,deleted,forgotten,created"
	clientShowKeys = clientListKeys + ",notes,metadata,source,updated_at,forgotten_at"
)

var cliAdmin = store.Actor{Name: "cli:test", Role: store.RoleAdmin, Channel: store.ChannelCLI}

// clientFixture makes a data dir holding four clients known from Stripe:
//
//	cus_A1 Ada Lovelace  usd    500  live                      created 2020
//	cus_B2 Bob Brown     eur   -200  test  delinquent          created 2021
//	cus_C3 Carol Chen    gbp  10000  live              deleted created 2019
//	cus_D4 Dan Day       jpy   1500  live  delinquent          created 2022
func clientFixture(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t)
	h.run("", "staff", "list").must(t, 0) // creates the data dir and its key
	st := h.openStore()
	defer st.Close()
	at := func(y int) time.Time { return time.Date(y, 3, 1, 12, 0, 0, 0, time.UTC) }
	_, err := st.UpsertClients(context.Background(), store.SourceSync, []store.ClientData{
		{CustomerID: "cus_A1", Name: "Ada Lovelace", Email: "ada@example.com", Phone: "+44 20 7946 0000", Description: "Analyst",
			Currency: "usd", Balance: 500, Livemode: true, StripeCreated: at(2020), Metadata: map[string]string{"plan": "team", "city": "London"}, Version: 1},
		{CustomerID: "cus_B2", Name: "Bob Brown", Email: "bob@example.org", Currency: "eur", Balance: -200, Delinquent: true,
			StripeCreated: at(2021), Version: 1},
		{CustomerID: "cus_C3", Name: "Carol Chen", Email: "carol@example.net", Currency: "gbp", Balance: 10000, Livemode: true,
			Deleted: true, StripeCreated: at(2019), Version: 1},
		{CustomerID: "cus_D4", Name: "Dan Day", Email: "dan@example.com", Currency: "jpy", Balance: 1500, Livemode: true,
			Delinquent: true, StripeCreated: at(2022), Version: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetClientNotes(context.Background(), cliAdmin, "cus_A1", "Prefers email.\nVIP since 2021."); err != nil {
		t.Fatal(err)
	}
	return h
}

// listIDs runs `clients list --json` with args and returns the customer
// ids in order, checking every line's keys.
func listIDs(t *testing.T, h *harness, args ...string) []string {
	t.Helper()
	r := h.run("", append([]string{"clients", "list", "--json"}, args...)...).must(t, 0)
	var ids []string
	for _, l := range nonEmptyLines(r.stdout) {
		if got := strings.Join(jsontest.Keys(t, l), ","); got != clientListKeys {
			t.Fatalf("keys %s, want %s", got, clientListKeys)
		}
		var c struct {
			CustomerID string `json:"customer_id"`
		}
		if err := json.Unmarshal([]byte(l), &c); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.CustomerID)
	}
	return ids
}

func TestClientsListJSON(t *testing.T) {
	t.Parallel()
	h := clientFixture(t)
	r := h.run("", "clients", "list", "--json").must(t, 0)
	lines := nonEmptyLines(r.stdout)
	if len(lines) != 4 {
		t.Fatalf("want 4 lines:\n%s", r.stdout)
	}
	var ada map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &ada); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"customer_id": "cus_A1", "name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0000",
		"description": "Analyst", "currency": "usd", "balance": 500.0, "livemode": true, "delinquent": false, "deleted": false,
		"forgotten": false, "created": "2020-03-01T12:00:00Z"}
	for k, v := range want {
		if ada[k] != v {
			t.Errorf("%s = %#v, want %#v", k, ada[k], v)
		}
	}
	if len(ada) != len(want) {
		t.Errorf("keys: %v", jsontest.Keys(t, lines[0]))
	}
}

func TestClientsListFilters(t *testing.T) {
	t.Parallel()
	h := clientFixture(t)
	tests := []struct {
		args []string
		want string
	}{
		{nil, "cus_A1 cus_B2 cus_C3 cus_D4"}, // by name
		{[]string{"--sort", "balance"}, "cus_B2 cus_A1 cus_D4 cus_C3"},
		{[]string{"--sort", "balance", "--desc"}, "cus_C3 cus_D4 cus_A1 cus_B2"},
		{[]string{"--sort", "created"}, "cus_C3 cus_A1 cus_B2 cus_D4"},
		{[]string{"--sort", "name", "--desc"}, "cus_D4 cus_C3 cus_B2 cus_A1"},
		{[]string{"--live"}, "cus_A1 cus_C3 cus_D4"},
		{[]string{"--test"}, "cus_B2"},
		{[]string{"--delinquent"}, "cus_B2 cus_D4"},
		{[]string{"--delinquent=false"}, "cus_A1 cus_C3"},
		{[]string{"--deleted"}, "cus_C3"},
		{[]string{"--deleted=false"}, "cus_A1 cus_B2 cus_D4"},
		{[]string{"--live", "--delinquent", "--sort", "balance"}, "cus_D4"},
		{[]string{"--search", "example.org"}, "cus_B2"},        // email substring
		{[]string{"--search", "LOVELACE"}, "cus_A1"},           // name substring, any case
		{[]string{"--search", "cus_C"}, "cus_C3"},              // customer id prefix
		{[]string{"--search", "Da"}, "cus_D4"},                 // 1-2 characters: name prefix
		{[]string{"--search", "example.com"}, "cus_A1 cus_D4"}, // insertion order
		{[]string{"--search", "example", "--live", "--deleted=false"}, "cus_A1 cus_D4"},
		{[]string{"--search", "nobody-here"}, ""},
		{[]string{"--limit", "2"}, "cus_A1 cus_B2"},
		{[]string{"--limit", "0"}, "cus_A1 cus_B2 cus_C3 cus_D4"},
	}
	for _, tt := range tests {
		if got := strings.Join(listIDs(t, h, tt.args...), " "); got != tt.want {
			t.Errorf("list %v = %q, want %q", tt.args, got, tt.want)
		}
	}
	for _, args := range [][]string{
		{"--live", "--test"},
		{"--sort", "email"},
		{"--limit", "-1"},
		{"--limit", "many"},
		{"extra-arg"},
	} {
		r := h.run("", append([]string{"clients", "list"}, args...)...).must(t, 2)
		if r.stdout != "" {
			t.Errorf("%v: output on a usage error:\n%s", args, r.stdout)
		}
	}
	r := h.run("", "clients", "list", "--search", "example", "--sort", "balance").must(t, 0)
	if !strings.Contains(r.stderr, "--sort and --desc do not apply to a search") {
		t.Errorf("no note that a search ignores --sort:\n%s", r.stderr)
	}
}

func TestClientsListTable(t *testing.T) {
	t.Parallel()
	h := clientFixture(t)
	r := h.run("", "clients", "list").must(t, 0)
	lines := nonEmptyLines(r.stdout)
	if len(lines) != 6 {
		t.Fatalf("want a header, 4 rows and a total:\n%s", r.stdout)
	}
	for _, l := range lines {
		if w := runewidth.StringWidth(l); w > 100 {
			t.Errorf("line is %d columns wide:\n%s", w, l)
		}
	}
	for i, want := range [][]string{
		{"CUSTOMER ID", "NAME", "EMAIL", "BALANCE", "FLAGS"},
		{"cus_A1", "Ada Lovelace", "ada@example.com", "5.00 USD"},
		{"cus_B2", "Bob Brown", "bob@example.org", "-2.00 EUR", "test delinq"},
		{"cus_C3", "Carol Chen", "100.00 GBP", "deleted"},
		{"cus_D4", "Dan Day", "1,500 JPY", "delinq"},
		{"4 of ", "4 clients"}, // exact or "about": the store decides
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d lacks %q: %q", i, w, lines[i])
			}
		}
	}
	r = h.run("", "clients", "list", "--limit", "1").must(t, 0)
	if !strings.Contains(r.stdout, "1 of about 4 clients; --limit 0 lists them all") {
		t.Errorf("limited list does not say there are more:\n%s", r.stdout)
	}
	r = h.run("", "clients", "list", "--delinquent").must(t, 0)
	if !strings.Contains(r.stdout, "2 of 2 clients") {
		t.Errorf("filtered total:\n%s", r.stdout)
	}
	r = h.run("", "clients", "list", "--search", "zzzz").must(t, 0)
	if !strings.Contains(r.stdout, "No clients match.") {
		t.Errorf("empty result:\n%s", r.stdout)
	}
	// Text from Stripe cannot drive the terminal.
	if got := printable("Eve\x1b[2J\u202eevil"); got != "Eve?[2J?evil" {
		t.Errorf("printable = %q", got)
	}
	if got := money(-123456, "usd") + " " + money(5, "jpy") + " " + money(1234567, "kwd") + " " + money(7, ""); got != "-1,234.56 USD 5 JPY 1,234.567 KWD 7" {
		t.Errorf("money = %q", got)
	}
}

func TestClientsShow(t *testing.T) {
	t.Parallel()
	h := clientFixture(t)
	r := h.run("", "clients", "show", "cus_A1", "--json").must(t, 0)
	lines := nonEmptyLines(r.stdout)
	if len(lines) != 1 {
		t.Fatalf("want one line:\n%s", r.stdout)
	}
	if got := strings.Join(jsontest.Keys(t, lines[0]), ","); got != clientShowKeys {
		t.Errorf("keys %s, want %s", got, clientShowKeys)
	}
	var c struct {
		clientJSON
		Notes       string            `json:"notes"`
		Metadata    map[string]string `json:"metadata"`
		Source      string            `json:"source"`
		UpdatedAt   string            `json:"updated_at"`
		ForgottenAt *string           `json:"forgotten_at"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &c); err != nil {
		t.Fatal(err)
	}
	if c.Name != "Ada Lovelace" || c.Notes != "Prefers email.\nVIP since 2021." || c.Metadata["plan"] != "team" ||
		c.Metadata["city"] != "London" || c.Source != store.SourceSync || c.ForgottenAt != nil || c.Balance != 500 {
		t.Errorf("show --json: %s", lines[0])
	}
	if _, err := time.Parse(time.RFC3339, c.UpdatedAt); err != nil {
		t.Errorf("updated_at %q", c.UpdatedAt)
	}

	r = h.run("", "clients", "show", "cus_A1").must(t, 0)
	for _, w := range []string{"customer id:   cus_A1", "name:          Ada Lovelace", "email:         ada@example.com",
		"balance:       5.00 USD (owed by the client)", "mode:          live", "city = London", "plan = team",
		"notes:         Prefers email.", "               VIP since 2021.", "created:       2020-03-01T12:00:00Z",
		"client.viewed"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("show lacks %q:\n%s", w, r.stdout)
		}
	}

	// Each look is audited as client.viewed, by the CLI, naming the
	// customer id only.
	r = h.run("", "audit", "export", "--action", store.ActionClientViewed).must(t, 0)
	views := nonEmptyLines(r.stdout)
	if len(views) != 2 {
		t.Fatalf("want 2 client.viewed rows:\n%s", r.stdout)
	}
	var ev struct {
		Actor, Target, Channel string
		Detail                 map[string]any
	}
	if err := json.Unmarshal([]byte(views[0]), &ev); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ev.Actor, "cli:") || ev.Target != "cus_A1" || ev.Channel != store.ChannelCLI || ev.Detail["customer_id"] != "cus_A1" {
		t.Errorf("audit row: %s", views[0])
	}
	if strings.Contains(r.stdout, "Lovelace") || strings.Contains(r.stdout, "ada@example.com") {
		t.Error("the audit log holds personal data")
	}

	// Unknown: exit 1, and no audit row. Malformed: a usage error.
	r = h.run("", "clients", "show", "cus_Unknown9").must(t, 1)
	if !strings.Contains(r.stderr, "no client cus_Unknown9") || r.stdout != "" {
		t.Errorf("unknown client:\n%s%s", r.stdout, r.stderr)
	}
	h.run("", "clients", "show", "cus_Unknown9", "--json").must(t, 1)
	r = h.run("", "clients", "show", "bob@example.org").must(t, 2)
	if !strings.Contains(r.stderr, "not a Stripe customer id") {
		t.Errorf("malformed id:\n%s", r.stderr)
	}
	h.run("", "clients", "show").must(t, 2)
	r = h.run("", "audit", "export", "--action", store.ActionClientViewed).must(t, 0)
	if n := len(nonEmptyLines(r.stdout)); n != 2 {
		t.Errorf("%d client.viewed rows after failed shows, want 2", n)
	}
}

func TestClientsForget(t *testing.T) {
	t.Parallel()
	h := clientFixture(t)
	r := h.run("", "clients", "forget", "cus_A1").must(t, 0)
	if !strings.Contains(r.stdout, "Forgot cus_A1: erased name, email, phone, description, notes, metadata (2 keys).") {
		t.Errorf("forget output:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "Lovelace") || strings.Contains(r.stdout, "ada@example.com") {
		t.Errorf("forget prints the erased data:\n%s", r.stdout)
	}

	r = h.run("", "clients", "show", "cus_A1", "--json").must(t, 0)
	var c struct {
		clientJSON
		Notes       string            `json:"notes"`
		Metadata    map[string]string `json:"metadata"`
		ForgottenAt *string           `json:"forgotten_at"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil {
		t.Fatal(err)
	}
	if c.CustomerID != "cus_A1" || c.Name != "" || c.Email != "" || c.Phone != "" || c.Description != "" || c.Notes != "" ||
		len(c.Metadata) != 0 || !c.Forgotten || c.ForgottenAt == nil || c.Balance != 500 {
		t.Errorf("tombstone: %s", r.stdout)
	}
	r = h.run("", "clients", "show", "cus_A1").must(t, 0)
	if !strings.Contains(r.stdout, "personal data erased") {
		t.Errorf("show of a tombstone:\n%s", r.stdout)
	}
	r = h.run("", "clients", "list").must(t, 0)
	if !strings.Contains(r.stdout, "(forgotten)") {
		t.Errorf("list does not show the tombstone:\n%s", r.stdout)
	}
	if ids := listIDs(t, h, "--search", "Lovelace"); len(ids) != 0 {
		t.Errorf("the search index still finds the forgotten client: %v", ids)
	}

	// No file of the data dir holds the erased data.
	for _, s := range []string{"ada@example.com", "Ada Lovelace", "Lovelace", "Prefers email", "+44 20 7946 0000"} {
		if hits := filesContaining(t, h.data, s); len(hits) > 0 {
			t.Errorf("%q is still in %v", s, hits)
		}
	}

	r = h.run("", "clients", "forget", "cus_A1").must(t, 1)
	if !strings.Contains(r.stderr, "cus_A1 was already forgotten") {
		t.Errorf("second forget:\n%s", r.stderr)
	}
	r = h.run("", "clients", "forget", "cus_Nobody").must(t, 1)
	if !strings.Contains(r.stderr, "no client cus_Nobody") {
		t.Errorf("unknown:\n%s", r.stderr)
	}
	h.run("", "clients", "forget", "ada").must(t, 2)

	r = h.run("", "audit", "export", "--action", store.ActionClientForgotten).must(t, 0)
	if lines := nonEmptyLines(r.stdout); len(lines) != 1 || !strings.Contains(lines[0], `"target":"cus_A1"`) {
		t.Errorf("client.forgotten rows:\n%s", r.stdout)
	}
	h.run("", "audit", "verify").must(t, 0)
}

const csvHeader = "customer_id,name,email,phone,description,currency,livemode,notes\n"

func TestClientsImport(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	good := h.writeFile("good.csv", csvHeader+
		"cus_Imp1,Iris Import,iris@example.com,+1 555 0100,Reseller,usd,true,Met at the fair\n"+
		"cus_Imp2,\"Jon, Junior\",jon@example.org,,,eur,false,\n"+
		"cus_Imp3,Kim,,,,,,\"two\nlines\"\n")
	r := h.run("", "clients", "import", good).must(t, 0)
	if !strings.Contains(r.stdout, "Imported 3 rows from "+good+": 3 created, 0 updated, 0 notes only, 0 unchanged.") {
		t.Errorf("import output:\n%s", r.stdout)
	}
	if got := strings.Join(listIDs(t, h), " "); got != "cus_Imp1 cus_Imp2 cus_Imp3" {
		t.Errorf("after import: %s", got)
	}
	r = h.run("", "clients", "show", "cus_Imp2", "--json").must(t, 0)
	var c clientDetailJSON
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil {
		t.Fatal(err)
	}
	if c.Name != "Jon, Junior" || c.Livemode || c.Currency != "eur" || c.Created != nil || c.Source != store.SourceImport {
		t.Errorf("imported client: %s", r.stdout)
	}

	// A file with bad rows: every one reported by line, nothing imported.
	bad := h.writeFile("bad.csv", csvHeader+
		"cus_New1,Good Row,good@example.com,,,usd,true,\n"+ // line 2: fine
		"cus_New2,Bad Email,not-an-email,,,usd,true,\n"+ // line 3
		"cus_New3,Bad Mode,m@example.com,,,usd,maybe,\n"+ // line 4
		"cus_New1,Dup,dup@example.com,,,usd,true,\n"+ // line 5: duplicate of line 2
		"nope,Bad Id,id@example.com,,,usd,true,\n"+ // line 6
		"cus_New4,Bad Currency,c@example.com,,,dollars,true,\n"+ // line 7
		"cus_New5,Too,few\n") // line 8
	r = h.run("", "clients", "import", bad).must(t, 1)
	for _, w := range []string{
		"line 3: \"not-an-email\" is not an email address",
		"line 4: livemode \"maybe\" is not true or false",
		"line 5: customer id cus_New1 already on line 2",
		"line 6: \"nope\" is not a Stripe customer id",
		"line 7: currency \"dollars\"",
		"line 8: 3 fields; each row has 8",
		"has 6 bad rows (listed above): nothing was imported",
	} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "line 2:") || r.stdout != "" {
		t.Errorf("a good line is reported, or output on stdout:\n%s%s", r.stdout, r.stderr)
	}
	if got := strings.Join(listIDs(t, h), " "); got != "cus_Imp1 cus_Imp2 cus_Imp3" {
		t.Errorf("a bad file imported something: %s", got)
	}

	// A broken quote, a wrong header, an empty file, a missing file.
	r = h.run(csvHeader+"cus_Q1,\"unterminated,a@example.com,,,usd,true,\n", "clients", "import", "-").must(t, 1)
	if !strings.Contains(r.stderr, "stdin: line 2: a quote is malformed") {
		t.Errorf("broken quote:\n%s", r.stderr)
	}
	r = h.run("id,name\ncus_X,Y\n", "clients", "import", "-").must(t, 1)
	if !strings.Contains(r.stderr, "the header must be exactly "+strings.TrimSpace(csvHeader)) {
		t.Errorf("wrong header:\n%s", r.stderr)
	}
	h.run("", "clients", "import", "-").must(t, 1)
	r = h.run("", "clients", "import", "no-such.csv").must(t, 2)
	if !strings.Contains(r.stderr, "cannot read no-such.csv") {
		t.Errorf("missing file:\n%s", r.stderr)
	}
	h.run("", "clients", "import").must(t, 2)

	// Only the good import is audited.
	r = h.run("", "audit", "export", "--action", store.ActionClientImported).must(t, 0)
	if n := len(nonEmptyLines(r.stdout)); n != 1 {
		t.Errorf("%d client.imported rows, want 1:\n%s", n, r.stdout)
	}
}

func TestClientsExportRoundTrip(t *testing.T) {
	t.Parallel()
	h := clientFixture(t)
	h.run("", "clients", "forget", "cus_D4").must(t, 0)
	h.run(csvHeader+"cus_Imp1,\"Quote \"\"Q\"\" Person\",q@example.com,,\"multi\nline\",usd,true,note\n", "clients", "import", "-").must(t, 0)
	r := h.run("", "clients", "export").must(t, 0)
	if !strings.Contains(r.stderr, "exported 5 clients") {
		t.Errorf("stderr: %s", r.stderr)
	}
	recs, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if err != nil {
		t.Fatalf("export is not CSV: %v\n%s", err, r.stdout)
	}
	if strings.Join(recs[0], ",") != strings.TrimSpace(csvHeader) || len(recs) != 6 {
		t.Fatalf("export:\n%s", r.stdout)
	}
	if !slices.ContainsFunc(recs[1:], func(rec []string) bool { return strings.Join(rec, ",") == "cus_D4,,,,,jpy,true," }) {
		t.Errorf("the tombstone is not exported as an id only:\n%s", r.stdout)
	}

	// The export imports into another data dir, and exports the same.
	h2 := newHarness(t)
	ir := h2.run(r.stdout, "clients", "import", "-").must(t, 0)
	if !strings.Contains(ir.stdout, "Imported 5 rows from stdin: 5 created") {
		t.Errorf("re-import:\n%s", ir.stdout)
	}
	r2 := h2.run("", "clients", "export").must(t, 0)
	if r2.stdout != r.stdout {
		t.Errorf("round trip differs:\n%s\nvs\n%s", r.stdout, r2.stdout)
	}

	// Filters apply to the export; it is audited (admins only: the CLI is).
	r = h.run("", "clients", "export", "--search", "example.org").must(t, 0)
	if recs, _ := csv.NewReader(strings.NewReader(r.stdout)).ReadAll(); len(recs) != 2 || recs[1][0] != "cus_B2" {
		t.Errorf("export --search:\n%s", r.stdout)
	}
	r = h.run("", "clients", "export", "--live", "--deleted=false").must(t, 0)
	if recs, _ := csv.NewReader(strings.NewReader(r.stdout)).ReadAll(); len(recs) != 4 {
		t.Errorf("export --live --deleted=false:\n%s", r.stdout)
	}
	r = h.run("", "audit", "export", "--action", store.ActionClientExported).must(t, 0)
	if n := len(nonEmptyLines(r.stdout)); n != 3 {
		t.Errorf("%d client.exported rows, want 3", n)
	}
}

// syncedDetail returns the detail of every client.synced row, oldest first.
func syncedDetail(t *testing.T, h *harness) []map[string]any {
	t.Helper()
	r := h.run("", "audit", "export", "--action", store.ActionClientSynced).must(t, 0)
	var out []map[string]any
	for _, l := range nonEmptyLines(r.stdout) {
		var ev struct{ Detail map[string]any }
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev.Detail)
	}
	return out
}

func TestClientsSync(t *testing.T) {
	t.Parallel()
	mock := stripemock.Start(t)
	h := clientFixture(t) // Bob (cus_B2) is a test-mode client Stripe does not list
	h.env[envStripeAPIBase] = mock

	r := h.run("", "clients", "sync").must(t, 2)
	if !strings.Contains(r.stderr, "no Stripe API key is set") {
		t.Errorf("sync without a key:\n%s", r.stderr)
	}

	r = h.run(testKey, "key", "set").must(t, 0)
	if strings.Contains(r.stderr, "warning") {
		t.Errorf("stripe-mock accepts the key, yet:\n%s", r.stderr)
	}

	r = h.run("", "clients", "sync").must(t, 0)
	for _, w := range []string{"Synced 1 customer from Stripe (test mode)", "created:        1", "updated:        0",
		"unchanged:      0", "marked deleted: 1"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("first sync lacks %q:\n%s", w, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "fetched 1 customer: 1 created") {
		t.Errorf("no progress on stderr:\n%s", r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, testKey) {
		t.Fatal("the key is printed")
	}
	ids := listIDs(t, h, "--test", "--deleted=false")
	if len(ids) != 1 || !strings.HasPrefix(ids[0], "cus_") || ids[0] == "cus_B2" {
		t.Errorf("test-mode clients after the sync: %v", ids)
	}
	if got := listIDs(t, h, "--deleted"); !slices.Equal(got, []string{"cus_B2", "cus_C3"}) {
		t.Errorf("deleted after the sync: %v (Bob is no longer listed by Stripe)", got)
	}

	// Again: nothing changes.
	r = h.run("", "clients", "sync").must(t, 0)
	for _, w := range []string{"created:        0", "updated:        0", "unchanged:      1", "marked deleted: 0"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("second sync lacks %q:\n%s", w, r.stdout)
		}
	}
	d := syncedDetail(t, h)
	if len(d) != 2 || d[0]["created"] != 1.0 || d[0]["marked_deleted"] != 1.0 || d[1]["unchanged"] != 1.0 || d[1]["created"] != 0.0 ||
		d[1]["complete"] != true || d[1]["mode"] != "test" {
		t.Errorf("client.synced rows: %v", d)
	}
}

// TestClientsSyncInterrupted stops a sync the way Ctrl-C does (its
// context ends) while Stripe is answering: exit 1 with a message that says
// to run it again, nothing marked deleted, and the stop audited.
func TestClientsSyncInterrupted(t *testing.T) {
	t.Parallel()
	mock := stripemock.Start(t)
	target, _ := url.Parse(mock)
	rp := httputil.NewSingleHostReverseProxy(target)
	listing := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/customers" {
			select {
			case listing <- struct{}{}:
			default:
			}
			<-r.Context().Done() // never answers: the client gives up
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(slow.Close)
	h := clientFixture(t)
	h.env[envStripeAPIBase] = slow.URL
	h.run(testKey, "key", "set").must(t, 0)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan result, 1)
	go func() {
		var out, errb syncBuffer
		code := invocation{Args: []string{"clients", "sync"}, Env: h.env, Dir: h.dir,
			Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Ctx: ctx}.run()
		done <- result{code: code, stdout: out.String(), stderr: errb.String()}
	}()
	select {
	case <-listing:
	case r := <-done:
		t.Fatalf("sync ended before listing: %d\n%s", r.code, r.stderr)
	case <-time.After(20 * time.Second):
		t.Fatal("the sync never asked for customers")
	}
	cancel()
	var r result
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the sync did not stop when interrupted")
	}
	r.must(t, 1)
	if !strings.Contains(r.stderr, "interrupted before it finished") || !strings.Contains(r.stderr, "run it again") {
		t.Errorf("interrupted sync:\n%s", r.stderr)
	}
	if got := listIDs(t, h, "--deleted"); !slices.Equal(got, []string{"cus_C3"}) {
		t.Errorf("an interrupted sync marked clients deleted: %v", got)
	}
	d := syncedDetail(t, h)
	if len(d) != 1 || d[0]["complete"] != false || !strings.Contains(fmt.Sprint(d[0]["error"]), "interrupted") {
		t.Errorf("client.synced rows: %v", d)
	}
	// The lease was released: the next sync may run.
	holder := func() string {
		st := h.openStore()
		defer st.Close()
		v, err := st.LeaseHolder(context.Background(), store.LeaseClientSync)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}()
	if holder != "" {
		t.Errorf("the sync lease is still held by %q", holder)
	}
}
