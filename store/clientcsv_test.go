package store

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

const csvHeader = "customer_id,name,email,phone,description,currency,livemode,notes\n"

// importCSV does what `backroom clients import` does: parse the whole file
// and import only when no row is bad.
func importCSV(t *testing.T, s *Store, a Actor, text string) (ImportResult, error) {
	t.Helper()
	rows, err := ParseClientsCSV(strings.NewReader(text))
	if err != nil {
		if rows != nil {
			t.Fatalf("ParseClientsCSV returned %d rows with an error", len(rows))
		}
		return ImportResult{}, err
	}
	return s.ImportClients(ctxb, a, rows)
}

func TestParseClientsCSVErrors(t *testing.T) {
	const quoteHelp = `quote whole fields with ", and double a " inside one`
	const fields = "each row has 8 (customer_id,name,email,phone,description,currency,livemode,notes)"
	good := "cus_ok1,Good Row,good@example.com,,,usd,false,\n"
	for _, tc := range []struct {
		name, in string
		want     string // the whole error text
	}{
		{"empty file", "", "the file is empty: the first line must be the header customer_id,name,email,phone,description,currency,livemode,notes"},
		{"blank lines only", "\n\n", "the file is empty: the first line must be the header customer_id,name,email,phone,description,currency,livemode,notes"},
		{"bad header", "customer_id,name,email\n" + good, "line 1: the header must be exactly customer_id,name,email,phone,description,currency,livemode,notes"},
		{"header in other case", strings.ToUpper(csvHeader) + good, "line 1: the header must be exactly customer_id,name,email,phone,description,currency,livemode,notes"},
		{"header with a space", strings.Replace(csvHeader, ",email", ", email", 1) + good, "line 1: the header must be exactly customer_id,name,email,phone,description,currency,livemode,notes"},
		{"rows without a header", good, "line 1: the header must be exactly customer_id,name,email,phone,description,currency,livemode,notes"},
		{"broken quote in the header", `"customer_id,name` + "\n", `line 1: a quote is malformed (column 19): ` + quoteHelp},
		{"unclosed quote", csvHeader + good + "cus_2,\"Bob,b@example.com,,,usd,false,\ncus_3,C,,,,,,\n",
			"1 bad row, nothing imported\nline 3: a quote is malformed (found at line 4, column 15): " + quoteHelp},
		{"text after a closing quote", csvHeader + "cus_1,\"Bob\"x,b@example.com,,,usd,false,\n",
			"1 bad row, nothing imported\nline 2: a quote is malformed (column 11): " + quoteHelp},
		{"bare quote", csvHeader + "cus_1,Bo\"b,b@example.com,,,usd,false,\n",
			"1 bad row, nothing imported\nline 2: a quote is malformed (column 9): " + quoteHelp},
		{"bare quote after good rows stops the reading", csvHeader + good + "cus_1,Bo\"b,,,,,,\ncus_bad,,not-an-email,,,,,\n",
			"1 bad row, nothing imported\nline 3: a quote is malformed (column 9): " + quoteHelp},
		{"too few fields", csvHeader + "cus_1,Bob\n", "1 bad row, nothing imported\nline 2: 2 fields; " + fields},
		{"too many fields", csvHeader + "cus_1,Bob,,,,usd,false,,extra\n", "1 bad row, nothing imported\nline 2: 9 fields; " + fields},
		{"invalid UTF-8 in a name", csvHeader + "cus_1,Caf\xe9 Noir,,,,usd,false,\n",
			"1 bad row, nothing imported\nline 2: name is not valid UTF-8 text (save the file as UTF-8)"},
		{"invalid UTF-8 in notes", csvHeader + "cus_1,Ok,,,,usd,false,\xff\xfe\n",
			"1 bad row, nothing imported\nline 2: notes is not valid UTF-8 text (save the file as UTF-8)"},
		{"duplicate customer id", csvHeader + "cus_1,A,,,,,,\ncus_2,B,,,,,,\ncus_1,C,,,,,,\n",
			"1 bad row, nothing imported\nline 4: customer id cus_1 already on line 2"},
		{"duplicate after trimming", csvHeader + "cus_1,A,,,,,,\n cus_1 ,B,,,,,,\n",
			"1 bad row, nothing imported\nline 3: customer id cus_1 already on line 2"},
		{"malformed email", csvHeader + "cus_1,Bob,bob@example,,,usd,false,\n",
			"1 bad row, nothing imported\nline 2: \"bob@example\" is not an email address (expected name@example.com)"},
		{"malformed customer id", csvHeader + "cust_1,Bob,,,,usd,false,\n",
			"1 bad row, nothing imported\nline 2: \"cust_1\" is not a Stripe customer id (expected cus_ followed by letters and digits, e.g. cus_NffrFeUfNV2Hib)"},
		{"empty customer id", csvHeader + ",Bob,,,,usd,false,\n",
			"1 bad row, nothing imported\nline 2: \"\" is not a Stripe customer id (expected cus_ followed by letters and digits, e.g. cus_NffrFeUfNV2Hib)"},
		{"bad livemode", csvHeader + "cus_1,Bob,,,,usd,maybe,\n", "1 bad row, nothing imported\nline 2: livemode \"maybe\" is not true or false"},
		{"bad currency", csvHeader + "cus_1,Bob,,,,dollars,true,\n",
			"1 bad row, nothing imported\nline 2: currency \"dollars\" is not a three-letter ISO code in lower case (e.g. usd, eur)"},
		{"notes too long", csvHeader + "cus_1,Bob,,,,usd,true," + strings.Repeat("n", MaxNotes+1) + "\n",
			"1 bad row, nothing imported\nline 2: notes are 4001 bytes; at most 4000 are kept"},
		{"name too long", csvHeader + "cus_1," + strings.Repeat("n", 1001) + ",,,,usd,true,\n",
			"1 bad row, nothing imported\nline 2: the name is longer than 1000 bytes"},
		{"CRLF line endings keep line numbers", strings.ReplaceAll(csvHeader+good+"cus_2,Bob,nope,,,usd,false,\n", "\n", "\r\n"),
			"1 bad row, nothing imported\nline 3: \"nope\" is not an email address (expected name@example.com)"},
		{"quoted commas and newlines keep line numbers", csvHeader +
			"cus_1,\"Smith, Jane\",jane@example.com,,\"Line one,\nline two\nline three\",usd,false,\"a \"\"quoted\"\" note\"\n" +
			good + "cus_3,Bad Mail,@example.com,,,usd,false,\n",
			"1 bad row, nothing imported\nline 6: \"@example.com\" is not an email address (expected name@example.com)"},
		{"every bad row is reported", csvHeader + "cust_1,,,,,,,\n" + good + "cus_2,,x,,,,,\n\ncus_3,,,,,,perhaps,\n",
			"3 bad rows, nothing imported\n" +
				"line 2: \"cust_1\" is not a Stripe customer id (expected cus_ followed by letters and digits, e.g. cus_NffrFeUfNV2Hib)\n" +
				"line 4: \"x\" is not an email address (expected name@example.com)\n" +
				"line 6: livemode \"perhaps\" is not true or false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := ParseClientsCSV(strings.NewReader(tc.in))
			if err == nil {
				t.Fatalf("no error; %d rows", len(rows))
			}
			if rows != nil {
				t.Errorf("%d rows returned with the error", len(rows))
			}
			if ErrorCode(err) != CodeInvalid && !isImportErrors(err) {
				t.Errorf("error is neither invalid nor ImportErrors: %T %v", err, err)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n got %q\nwant %q", err.Error(), tc.want)
			}
		})
	}
}

func isImportErrors(err error) bool {
	_, ok := err.(ImportErrors)
	return ok
}

func TestParseClientsCSVManyErrors(t *testing.T) {
	var b strings.Builder
	b.WriteString(csvHeader)
	for i := range 25 {
		fmt.Fprintf(&b, "bad_%d,,,,,,,\n", i)
	}
	_, err := ParseClientsCSV(strings.NewReader(b.String()))
	ie, ok := err.(ImportErrors)
	if !ok || len(ie) != 25 || ie[24].Line != 26 {
		t.Fatalf("got %T %v", err, err)
	}
	lines := strings.Split(err.Error(), "\n")
	if lines[0] != "25 bad rows, nothing imported" || len(lines) != 22 || lines[21] != "… and 5 more" ||
		!strings.HasPrefix(lines[20], "line 21: ") {
		t.Fatalf("error text:\n%s", err)
	}
}

func TestParseClientsCSVAccepts(t *testing.T) {
	in := "\ufeff" + strings.ReplaceAll(csvHeader, "\n", "\r\n") +
		" cus_A1 , Ana Ávila ,ANA@Example.com , +34 600 ,\"Multi,\r\nline\",USD,TRUE,\"said \"\"hi\"\"\r\nthen left\"\r\n" +
		"\r\n" + // blank lines are skipped
		"cus_B2,Bo,,,,,yes,\r\n" +
		"cus_C3,Cy,,,,eur,0,\r\n" +
		"cus_D4,Di,,,,,no,\r\n" +
		"cus_E5,Ed,,,,,1,\r\n" +
		"cus_F6,Fa,,,,,False," // no final newline
	rows, err := ParseClientsCSV(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 6 {
		t.Fatalf("%d rows", len(rows))
	}
	a := rows[0]
	want := ImportRow{Line: 2, Notes: "said \"hi\"\nthen left", ClientData: ClientData{CustomerID: "cus_A1", Name: "Ana Ávila",
		Email: "ANA@Example.com", Phone: "+34 600", Description: "Multi,\nline", Currency: "usd", Livemode: true}}
	if fmt.Sprintf("%+v", a) != fmt.Sprintf("%+v", want) {
		t.Fatalf("row:\n got %+v\nwant %+v", a, want)
	}
	var lines []int
	var live []bool
	for _, r := range rows {
		lines = append(lines, r.Line)
		live = append(live, r.Livemode)
	}
	if !slices.Equal(lines, []int{2, 6, 7, 8, 9, 10}) || !slices.Equal(live, []bool{true, true, false, false, true, false}) {
		t.Fatalf("lines %v livemode %v", lines, live)
	}
	// A header alone is an empty import, not an error.
	rows, err = ParseClientsCSV(strings.NewReader(csvHeader))
	if err != nil || len(rows) != 0 {
		t.Fatalf("header only: %v %v", rows, err)
	}
}

func TestImportBadFileImportsNothing(t *testing.T) {
	e := newEnv(t)
	mustUpsert(t, e.s, SourceSync, cd("cus_keep", "Kept", "kept@example.com", 1))
	before, audits := allClients(t, e.s), auditCount(t, e.s)
	for _, text := range []string{
		csvHeader + "cus_new1,New One,,,,usd,false,\ncus_keep,Changed,,,,usd,false,\ncus_new2,Bad,not-an-email,,,usd,false,\n",
		csvHeader + "cus_new1,New One,,,,usd,false,\ncus_keep,\"Changed,,,,usd,false,\n",
		csvHeader + "cus_new1,New One,,,,usd,false,\ncus_new1,Twice,,,,usd,false,\n",
	} {
		if _, err := importCSV(t, e.s, cliAdmin, text); err == nil {
			t.Fatal("a bad file was imported")
		}
	}
	if after := allClients(t, e.s); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("the store changed:\n%v\n%v", before, after)
	}
	if auditCount(t, e.s) != audits {
		t.Fatal("a refused import was audited")
	}
}

func TestImportClients(t *testing.T) {
	e := newEnv(t)
	mustUpsert(t, e.s, SourceSync,
		cd("cus_S", "Stripe Name", "stripe@example.com", 5),
		cd("cus_S2", "Stripe Two", "two@example.com", 5),
		cd("cus_F", "Forgotten Person", "forgotten@example.com", 5))
	if err := e.s.SetClientNotes(ctxb, cliAdmin, "cus_S2", "kept note"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.AddClient(ctxb, cliAdmin, ClientData{CustomerID: "cus_M", Name: "Manual", Email: "m@example.com", Currency: "usd"}); err != nil {
		t.Fatal(err)
	}
	if _, err := importCSV(t, e.s, cliAdmin, csvHeader+"cus_I,First Import,i@example.com,,,eur,false,first\n"); err != nil {
		t.Fatal(err)
	}
	if err := e.s.ForgetClient(ctxb, cliAdmin, "cus_F"); err != nil {
		t.Fatal(err)
	}
	// Rows that did not come through the parser are checked too.
	_, err := e.s.ImportClients(ctxb, cliAdmin, []ImportRow{{Line: 7, ClientData: ClientData{CustomerID: "cus_ok"}},
		{Line: 9, ClientData: ClientData{CustomerID: "bad id"}}})
	wantMsg(t, err, CodeInvalid, `line 9: "bad id" is not a Stripe customer id (expected cus_ followed by letters and digits, e.g. cus_NffrFeUfNV2Hib)`)
	_, err = e.s.ImportClients(ctxb, cliAdmin, []ImportRow{{Line: 3, ClientData: ClientData{CustomerID: "cus_ok"}, Notes: "\xff"}})
	wantMsg(t, err, CodeInvalid, "line 3: notes must be UTF-8 text of at most 4000 bytes")
	if _, err := e.s.GetClient(ctxb, "cus_ok"); ErrorCode(err) != CodeNotFound {
		t.Fatalf("a refused import wrote a client: %v", err)
	}
	staff := sshActor("alice")
	_, err = importCSV(t, e.s, staff, csvHeader+"cus_X,X,,,,,,\n")
	wantMsg(t, err, CodeForbidden, "only an admin may import clients")

	e.clock.Add(time.Hour)
	file := csvHeader +
		"cus_N,New Person,new@example.com,+1 555,Referred,usd,true,new note\n" +
		"cus_M,Manual Renamed,m2@example.com,,,gbp,false,manual note\n" +
		"cus_I,Second Import,i2@example.com,,,eur,true,second\n" +
		"cus_S,Other Name,other@example.com,,,jpy,true,from the file\n" +
		"cus_S2,Other Two,,,,usd,false,\n" +
		"cus_F,Forgotten Person,forgotten@example.com,+1 999,desc,usd,true,a note\n"
	res, err := importCSV(t, e.s, Actor{Name: "bea", Role: RoleAdmin, Channel: ChannelSSH}, file)
	if err != nil {
		t.Fatal(err)
	}
	if res != (ImportResult{Created: 1, Updated: 2, NotesOnly: 1}) {
		t.Fatalf("result %+v", res)
	}
	n := mustGet(t, e.s, "cus_N")
	if n.Name != "New Person" || n.Email != "new@example.com" || n.Phone != "+1 555" || n.Description != "Referred" || n.Currency != "usd" ||
		!n.Livemode || n.Notes != "new note" || n.Source != SourceImport || n.Version != 0 {
		t.Fatalf("created: %+v", n)
	}
	m := mustGet(t, e.s, "cus_M")
	if m.Name != "Manual Renamed" || m.Email != "m2@example.com" || m.Currency != "gbp" || m.Notes != "manual note" || m.Source != SourceImport {
		t.Fatalf("manual client: %+v", m)
	}
	if i := mustGet(t, e.s, "cus_I"); i.Name != "Second Import" || !i.Livemode || i.Notes != "second" {
		t.Fatalf("imported client: %+v", i)
	}
	s := mustGet(t, e.s, "cus_S")
	if s.Name != "Stripe Name" || s.Email != "stripe@example.com" || s.Currency != "usd" || s.Livemode || s.Notes != "from the file" || s.Source != SourceSync {
		t.Fatalf("Stripe client: %+v", s)
	}
	if s2 := mustGet(t, e.s, "cus_S2"); s2.Name != "Stripe Two" || s2.Notes != "kept note" {
		t.Fatalf("Stripe client with no notes in the file: %+v", s2)
	}
	f := mustGet(t, e.s, "cus_F")
	if f.Name != "" || f.Email != "" || f.Phone != "" || f.Description != "" || f.Notes != "" || !f.Forgotten() {
		t.Fatalf("forgotten client took data from the file: %+v", f)
	}
	if got := searchIDs(t, e.s, "Forgotten Pers"); len(got) != 0 {
		t.Fatalf("forgotten client back in the index: %v", got)
	}
	for q, want := range map[string]string{"New Pers": "cus_N", "Manual Ren": "cus_M", "Second Imp": "cus_I"} {
		if got := searchIDs(t, e.s, q); !slices.Equal(got, []string{want}) {
			t.Errorf("search %q: %v", q, got)
		}
	}
	if got := searchIDs(t, e.s, "First Imp"); len(got) != 0 {
		t.Errorf("the old imported name is still found: %v", got)
	}
	evs := events(t, e.s, ActionClientImported)
	if len(evs) != 2 {
		t.Fatalf("%d import audit rows", len(evs))
	}
	ev := evs[1]
	if ev.Actor != "bea" || ev.Target != "clients" || ev.Detail != `{"created":1,"notes_only":1,"rows":6,"updated":2}` {
		t.Fatalf("audit: %+v", ev)
	}
	mustVerifyAudit(t, e.s)
}

func TestExportClients(t *testing.T) {
	e := newEnv(t)
	mustUpsert(t, e.s, SourceSync,
		ClientData{CustomerID: "cus_E1", Name: `Jane "JJ" Smith, Jr.`, Email: "jane@example.com", Phone: "+1 555 0100",
			Description: "Line one\nline two, with comma", Currency: "usd", Livemode: true, Version: 1},
		ClientData{CustomerID: "cus_E2", Name: "Hans Müller", Email: "hans@beispiel.example", Currency: "eur", Version: 1},
		ClientData{CustomerID: "cus_E3", Name: "=cmd|' /C calc'!A0", Email: "", Currency: "", Version: 1},
		ClientData{CustomerID: "cus_E4", Name: "To Forget", Email: "forget@example.com", Currency: "gbp", Livemode: true, Version: 1},
	)
	if err := e.s.SetClientNotes(ctxb, cliAdmin, "cus_E2", "Notiz: \"wichtig\"\r\nzweite Zeile"); err != nil {
		t.Fatal(err)
	}
	if err := e.s.ForgetClient(ctxb, cliAdmin, "cus_E4"); err != nil {
		t.Fatal(err)
	}
	// Staff may not export.
	var buf bytes.Buffer
	_, err := e.s.ExportClients(ctxb, sshActor("alice"), &buf, ClientQuery{})
	wantMsg(t, err, CodeForbidden, "only an admin may export clients")
	if buf.Len() != 0 || len(events(t, e.s, ActionClientExported)) != 0 {
		t.Fatal("a refused export wrote something")
	}
	// Everything, and back through the parser.
	n, err := e.s.ExportClients(ctxb, cliAdmin, &buf, ClientQuery{})
	if err != nil || n != 4 {
		t.Fatalf("export: %d %v", n, err)
	}
	if !strings.HasPrefix(buf.String(), strings.TrimSuffix(csvHeader, "\n")) {
		t.Fatalf("no header: %q", buf.String())
	}
	// No cell a spreadsheet would run as a formula.
	raw := buf.String()
	if !strings.Contains(raw, `'=cmd|`) || !strings.Contains(raw, `'+1 555 0100`) {
		t.Errorf("formula-like cells are not guarded:\n%s", raw)
	}
	recs, err := csv.NewReader(strings.NewReader(raw)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		for _, cell := range rec {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Errorf("cell %q starts a formula", cell)
			}
		}
	}
	rows, err := ParseClientsCSV(&buf)
	if err != nil {
		t.Fatalf("the export does not parse: %v", err)
	}
	var got, want []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s|%s|%s|%s|%s|%s|%v|%s", r.CustomerID, r.Name, r.Email, r.Phone, r.Description, r.Currency, r.Livemode, r.Notes))
	}
	for _, c := range walkForward(t, e.s, ClientQuery{}) {
		// encoding/csv reads a CRLF inside a quoted field as LF.
		notes := strings.ReplaceAll(c.Notes, "\r\n", "\n")
		want = append(want, fmt.Sprintf("%s|%s|%s|%s|%s|%s|%v|%s", c.CustomerID, c.Name, c.Email, c.Phone, c.Description, c.Currency, c.Livemode, notes))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("round trip:\n got %q\nwant %q", got, want)
	}
	ev := one(t, e.s, ActionClientExported)
	if ev.Target != "clients" || ev.Detail != `{"filtered":false}` {
		t.Fatalf("audit: %+v", ev)
	}
	// A search narrows the export, and so do filters.
	buf.Reset()
	n, err = e.s.ExportClients(ctxb, cliAdmin, &buf, ClientQuery{Search: "müll"})
	if err != nil || n != 1 || !strings.Contains(buf.String(), "cus_E2,Hans Müller") || strings.Contains(buf.String(), "cus_E1") {
		t.Fatalf("export with a search: %d %v\n%s", n, err, buf.String())
	}
	buf.Reset()
	n, err = e.s.ExportClients(ctxb, cliAdmin, &buf, ClientQuery{Livemode: ptr(true)})
	if err != nil || n != 2 || !strings.Contains(buf.String(), "cus_E1,") || !strings.Contains(buf.String(), "cus_E4,,,,,gbp,true,\n") {
		t.Fatalf("export with a filter: %d %v\n%s", n, err, buf.String())
	}
	evs := events(t, e.s, ActionClientExported)
	if len(evs) != 3 || evs[1].Detail != `{"filtered":true}` || evs[2].Detail != `{"filtered":true}` {
		t.Fatalf("export audit rows: %+v", evs)
	}
}

// TestCSVTextGuard: formula-like cells (and those that start with an
// apostrophe) get an apostrophe on export and lose it on import; other
// text is left alone.
func TestCSVTextGuard(t *testing.T) {
	for v, want := range map[string]string{
		"=SUM(A1)": "'=SUM(A1)", "+44 20 7946 0000": "'+44 20 7946 0000", "-1": "'-1", "@home": "'@home",
		"\tx": "'\tx", "Ada": "Ada", "'t Hooft": "''t Hooft", "": "", "'=quoted": "''=quoted", "O'Brien": "O'Brien",
	} {
		if got := csvText(v); got != want {
			t.Errorf("csvText(%q) = %q, want %q", v, got, want)
		}
		if back := csvUntext(csvText(v)); back != v {
			t.Errorf("csvUntext(csvText(%q)) = %q", v, back)
		}
	}
	// A hand-made file's apostrophe before a letter stays.
	if got := csvUntext("'t Hooft"); got != "'t Hooft" {
		t.Errorf("csvUntext('t Hooft) = %q", got)
	}
}
