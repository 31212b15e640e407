package store

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"backroom/store/jsontest"
)

// fill writes n rows through the public API.
func fill(t *testing.T, s *Store, n int, action string) {
	t.Helper()
	for i := range n {
		if err := s.Audit(ctxb, sshActor("alice"), action, fmt.Sprintf("t%03d", i), Detail{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAuditAppendOnly(t *testing.T) {
	e := newEnv(t)
	e.add("alice", true)
	fill(t, e.s, 5, "test.row")
	n := auditCount(t, e.s)
	v := mustVerifyAudit(t, e.s)
	if v.Rows != n || v.BadRow != 0 {
		t.Fatalf("verify %+v, want %d rows", v, n)
	}
	db := rawDB(t, e.dir)
	for _, q := range []string{
		`UPDATE audit SET detail = '{}' WHERE id = 2`,
		`UPDATE audit SET hash = hash`,
		`DELETE FROM audit WHERE id = (SELECT max(id) FROM audit)`,
		`DELETE FROM audit`,
		`UPDATE audit SET detail = '{}' WHERE id = 2 RETURNING id`,
		`INSERT INTO audit (id, time, actor, action, channel, hash) VALUES (2, 'x', 'x', 'x', 'x', 'x') ON CONFLICT (id) DO UPDATE SET detail = '{}'`,
	} {
		_, err := db.Exec(q)
		if err == nil || !strings.Contains(err.Error(), "audit log is append-only") {
			t.Errorf("%s: %v, want the trigger's refusal", q, err)
		}
	}
	if auditCount(t, e.s) != n {
		t.Fatal("rows changed")
	}
	mustVerifyAudit(t, e.s)

	// REPLACE deletes the old row without firing DELETE triggers (SQLite
	// fires them only with recursive_triggers on): the schema refuses it.
	if _, err := db.Exec(`INSERT OR REPLACE INTO audit (id, time, actor, action, channel, hash) VALUES (2, 'x', 'x', 'x', 'x', 'x')`); err == nil || !strings.Contains(err.Error(), "audit log is append-only") {
		t.Fatalf("INSERT OR REPLACE over an audit row: %v", err)
	}

	// Appending a forged row is possible at the SQL level, but it does not
	// chain.
	mustExec(t, db, `INSERT INTO audit (id, time, actor, action, target, detail, channel, hash)
		VALUES (?, '2026-11-27T12:00:10.000Z', 'alice', 'staff.added', 'mallory', '{}', 'cli', ?)`, n+1, strings.Repeat("ab", 32))
	v, err := e.s.VerifyAudit(ctxb)
	if err != nil || v.OK || v.BadRow != n+1 {
		t.Fatalf("forged row: %+v %v", v, err)
	}
}

func TestAuditTamperNamesTheRow(t *testing.T) {
	e := newEnv(t)
	e.add("alice", true)
	fill(t, e.s, 6, "test.row")
	db := rawDB(t, e.dir)
	mustExec(t, db, `DROP TRIGGER audit_no_update`)
	const victim = 4
	for _, col := range []string{"time", "actor", "action", "target", "detail", "remote_addr", "session_id", "channel", "hash"} {
		var orig string
		if err := db.QueryRow(`SELECT `+col+` FROM audit WHERE id = ?`, victim).Scan(&orig); err != nil {
			t.Fatal(err)
		}
		forged := orig + "x"
		if col == "detail" {
			forged = `{"i":99}`
		}
		if col == "time" {
			forged = strings.Replace(orig, "12:", "11:", 1)
		}
		mustExec(t, db, `UPDATE audit SET `+col+` = ? WHERE id = ?`, forged, victim)
		v, err := e.s.VerifyAudit(ctxb)
		if err != nil || v.OK || v.BadRow != victim || !strings.Contains(v.Problem, "row "+strconv.Itoa(victim)) {
			t.Errorf("%s changed: %+v %v, want row %d named", col, v, err, victim)
		}
		mustExec(t, db, `UPDATE audit SET `+col+` = ? WHERE id = ?`, orig, victim)
		mustVerifyAudit(t, e.s)
	}
	// The same instant written another way would dodge the textual
	// Since/Until filters: it must not pass as untouched.
	var orig string
	if err := db.QueryRow(`SELECT time FROM audit WHERE id = ?`, victim).Scan(&orig); err != nil {
		t.Fatal(err)
	}
	ts, _ := time.Parse(TimeFormat, orig)
	for _, forged := range []string{
		ts.In(time.FixedZone("", 3600)).Format(TimeFormat),
		ts.Format("2006-01-02T15:04:05.000000Z07:00"),
		ts.Format(time.RFC3339),
	} {
		mustExec(t, db, `UPDATE audit SET time = ? WHERE id = ?`, forged, victim)
		if v, err := e.s.VerifyAudit(ctxb); err != nil || v.OK || v.BadRow != victim {
			t.Errorf("time %q rewritten as %q: %+v %v, want row %d named", orig, forged, v, err, victim)
		}
	}
	mustExec(t, db, `UPDATE audit SET time = ? WHERE id = ?`, orig, victim)
	mustVerifyAudit(t, e.s)

	// Renumbering a row is caught too.
	mustExec(t, db, `UPDATE audit SET id = 100 WHERE id = (SELECT max(id) FROM audit)`)
	if v, _ := e.s.VerifyAudit(ctxb); v.OK {
		t.Fatal("renumbered last row not detected")
	}
}

func TestAuditMissingRows(t *testing.T) {
	e := newEnv(t)
	e.add("alice", true)
	fill(t, e.s, 6, "test.row")
	n := auditCount(t, e.s)
	db := rawDB(t, e.dir)
	mustExec(t, db, `DROP TRIGGER audit_no_delete`)

	// The tail: only the head file knows.
	mustExec(t, db, `DELETE FROM audit WHERE id > ?`, n-2)
	v, err := e.s.VerifyAudit(ctxb)
	if err != nil || v.OK || v.BadRow != n-1 || !strings.Contains(v.Problem, "removed") ||
		!strings.Contains(v.Problem, strconv.FormatInt(n, 10)) {
		t.Fatalf("tail deleted: %+v %v", v, err)
	}

	// A row in the middle.
	e2 := newEnv(t)
	fill(t, e2.s, 6, "test.row")
	db2 := rawDB(t, e2.dir)
	mustExec(t, db2, `DROP TRIGGER audit_no_delete`)
	mustExec(t, db2, `DELETE FROM audit WHERE id = 3`)
	if v, _ := e2.s.VerifyAudit(ctxb); v.OK || v.BadRow != 3 || !strings.Contains(v.Problem, "missing") {
		t.Fatalf("middle row deleted: %+v", v)
	}
	// Everything, the head file left in place.
	mustExec(t, db2, `DELETE FROM audit`)
	if v, _ := e2.s.VerifyAudit(ctxb); v.OK || v.BadRow != 1 {
		t.Fatalf("all rows deleted: %+v", v)
	}
}

func TestAuditHeadFile(t *testing.T) {
	e := newEnv(t)
	fill(t, e.s, 4, "test.row")
	head, err := readHead(filepath.Join(e.dir, AuditHeadFile))
	if err != nil || head.ID != 4 {
		t.Fatalf("head %+v %v", head, err)
	}
	last, _ := e.s.GetAudit(ctxb, 4)
	if head.Hash != last.Hash {
		t.Fatal("head hash is not the last row's hash")
	}
	path := filepath.Join(e.dir, AuditHeadFile)
	orig, _ := os.ReadFile(path)

	// A head that lags (crash between commit and head write) is fine.
	third, _ := e.s.GetAudit(ctxb, 3)
	os.WriteFile(path, []byte(fmt.Sprintf("v1 3 %s\n", third.Hash)), 0o600)
	mustVerifyAudit(t, e.s)
	// A head whose hash is not the row's: the log was rewritten.
	os.WriteFile(path, []byte(fmt.Sprintf("v1 3 %s\n", last.Hash)), 0o600)
	if v, _ := e.s.VerifyAudit(ctxb); v.OK || v.BadRow != 3 {
		t.Fatalf("wrong head hash: %+v", v)
	}
	// Missing or garbled head file: cannot vouch for the end.
	os.Remove(path)
	if v, _ := e.s.VerifyAudit(ctxb); v.OK || !strings.Contains(v.Problem, "head") {
		t.Fatalf("no head file: %+v", v)
	}
	os.WriteFile(path, []byte("garbage"), 0o600)
	if v, _ := e.s.VerifyAudit(ctxb); v.OK {
		t.Fatalf("garbled head file: %+v", v)
	}
	os.WriteFile(path, orig, 0o600)
	mustVerifyAudit(t, e.s)
	// The next write moves the head on.
	fill(t, e.s, 1, "test.row")
	if head, _ := readHead(path); head.ID != 5 {
		t.Fatalf("head after a write: %+v", head)
	}
	// An empty log without a head file is fine.
	fresh := newEnv(t)
	if v := mustVerifyAudit(t, fresh.s); v.Rows != 0 {
		t.Fatalf("fresh: %+v", v)
	}
}

// TestAuditWriteFailureAbortsChange makes every audit insert fail: no
// change may happen without its row.
func TestAuditWriteFailureAbortsChange(t *testing.T) {
	e := newEnv(t)
	alice := e.add("alice", true)
	bob := e.add("bob", false)
	for range 5 {
		e.verify(bob, e.wrongCode(bob))
	}
	if _, err := e.s.SetStripeKey(ctxb, cliAdmin, SetKeyRequest{Key: testKey}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: "erin", Key: mustKey(t), EnrollAtLogin: true}); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, e.dir)
	mustExec(t, db, `CREATE TRIGGER boom BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'boom'); END`)

	file := keysFile(t, e.s)
	status, _ := e.s.KeyStatus(ctxb)
	bobState, _ := e.s.LoginState(ctxb, "bob")
	n := auditCount(t, e.s)

	ck := mustKey(t)
	if _, err := e.s.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: "carol", Key: ck}); err == nil {
		t.Fatal("AddStaff succeeded without its audit row")
	}
	if _, err := e.s.LookupKey("carol", ck, loopback); err == nil {
		t.Fatal("carol's key works")
	}
	var rows int
	db.QueryRow(`SELECT count(*) FROM staff WHERE name = 'carol'`).Scan(&rows)
	if rows != 0 {
		t.Fatal("carol's staff row was committed")
	}
	if _, err := e.s.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: "alice", Key: ck}); err == nil {
		t.Fatal("AddStaff (second key) succeeded")
	}
	if _, err := e.s.SetStripeKey(ctxb, cliAdmin, SetKeyRequest{Key: liveKey}); err == nil {
		t.Fatal("SetStripeKey succeeded")
	}
	if err := e.s.Unlock(ctxb, cliAdmin, "bob"); err == nil {
		t.Fatal("Unlock succeeded")
	}
	if err := e.s.RemoveStaff(ctxb, cliAdmin, "bob"); err == nil {
		t.Fatal("RemoveStaff succeeded")
	}
	if err := e.s.RemoveKey(ctxb, cliAdmin, "bob", bob.fp); err == nil {
		t.Fatal("RemoveKey succeeded")
	}
	if err := e.s.SetRole(ctxb, cliAdmin, "bob", RoleAdmin); err == nil {
		t.Fatal("SetRole succeeded")
	}
	if _, err := e.s.ResetTOTP(ctxb, cliAdmin, "alice", true); err == nil {
		t.Fatal("ResetTOTP succeeded")
	}
	enr := NewEnrollment("erin")
	c, _ := CodeFor(enr.Secret, e.clock.Now())
	if err := e.s.ConfirmEnrollment(ctxb, sshActor("erin"), "SHA256:e", enr, c); err == nil {
		t.Fatal("ConfirmEnrollment succeeded")
	}
	good := e.code(alice, 0)
	if _, err := e.s.VerifyCode(ctxb, sshActor("alice"), alice.fp, good, PurposeLogin); err == nil {
		t.Fatal("VerifyCode succeeded without its audit row")
	}
	for range 6 {
		e.s.VerifyCode(ctxb, sshActor("alice"), alice.fp, "000000", PurposeLogin)
	}
	var buf bytes.Buffer
	if _, err := e.s.ExportAudit(ctxb, cliAdmin, &buf, FormatCSV, AuditQuery{}); err == nil || buf.Len() != 0 {
		t.Fatalf("ExportAudit without its audit row: %v, %d bytes", err, buf.Len())
	}

	if keysFile(t, e.s) != file {
		t.Fatal("authorized_keys changed")
	}
	if st, _ := e.s.KeyStatus(ctxb); st != status {
		t.Fatalf("key status changed: %+v → %+v", status, st)
	}
	if ls, _ := e.s.LoginState(ctxb, "bob"); ls != bobState || ls.LockedUntil.IsZero() {
		t.Fatalf("bob's state changed: %+v → %+v", bobState, ls)
	}
	if ls, _ := e.s.LoginState(ctxb, "alice"); !ls.Enrolled || !ls.LockedUntil.IsZero() {
		t.Fatalf("alice's state changed: %+v", ls)
	}
	if ls, _ := e.s.LoginState(ctxb, "erin"); ls.Enrolled {
		t.Fatal("erin enrolled")
	}
	if st, _ := e.s.GetStaff(ctxb, "alice"); st.Failures != 0 {
		t.Fatalf("failures counted without audit rows: %d", st.Failures)
	}
	if auditCount(t, e.s) != n {
		t.Fatal("audit rows written")
	}

	mustExec(t, db, `DROP TRIGGER boom`)
	// The code whose check failed was not spent.
	if r := e.verify(alice, good); r.Verdict != CodeAccepted {
		t.Fatalf("code after the failed check: %v", r.Verdict)
	}
	mustVerifyAudit(t, e.s)
}

func TestListAuditKeysetPaging(t *testing.T) {
	e := newEnv(t)
	fill(t, e.s, 123, "test.row")
	total := auditCount(t, e.s)

	def, err := e.s.ListAudit(ctxb, AuditQuery{})
	if err != nil || len(def) != 50 || def[0].ID != total {
		t.Fatalf("default page: %d rows, first %d, %v", len(def), def[0].ID, err)
	}

	var down []int64
	q := AuditQuery{Limit: 25}
	pages := 0
	for {
		page, err := e.s.ListAudit(ctxb, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		pages++
		for _, ev := range page {
			down = append(down, ev.ID)
		}
		q.BeforeID = page[len(page)-1].ID
	}
	if pages != 5 || int64(len(down)) != total {
		t.Fatalf("%d pages, %d rows, want 5 pages of %d rows", pages, len(down), total)
	}
	for i := 1; i < len(down); i++ {
		if down[i] != down[i-1]-1 {
			t.Fatalf("gap or overlap at %d: %d then %d", i, down[i-1], down[i])
		}
	}

	// Back up from the oldest page: every page newest first, no overlap.
	q = AuditQuery{Limit: 25, AfterID: 10}
	var up []int64
	for {
		page, err := e.s.ListAudit(ctxb, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for i := 1; i < len(page); i++ {
			if page[i].ID != page[i-1].ID-1 {
				t.Fatalf("page going up not newest first: %d then %d", page[i-1].ID, page[i].ID)
			}
		}
		if page[len(page)-1].ID != q.AfterID+1 {
			t.Fatalf("page after %d starts at %d", q.AfterID, page[len(page)-1].ID)
		}
		for _, ev := range page {
			up = append(up, ev.ID)
		}
		q.AfterID = page[0].ID
	}
	slices.Sort(up)
	if int64(len(up)) != total-10 || up[0] != 11 || up[len(up)-1] != total || len(slices.Compact(up)) != len(up) {
		t.Fatalf("paging up: %d rows from %d to %d", len(up), up[0], up[len(up)-1])
	}

	// Both bounds at once.
	page, _ := e.s.ListAudit(ctxb, AuditQuery{AfterID: 40, BeforeID: 46})
	if len(page) != 5 || page[0].ID != 45 || page[4].ID != 41 {
		t.Fatalf("between 40 and 46: %v", ids(page))
	}
	if one, _ := e.s.GetAudit(ctxb, 7); one.ID != 7 || one.Target != "t006" {
		t.Fatalf("GetAudit(7): %+v", one)
	}
	if _, err := e.s.GetAudit(ctxb, 9999); ErrorCode(err) != CodeNotFound {
		t.Fatalf("GetAudit(9999): %v", err)
	}
}

func ids(evs []Event) []int64 {
	var out []int64
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

func TestListAuditFilters(t *testing.T) {
	e := newEnv(t)
	t0 := e.clock.Now()
	write := func(actor, action, target string) {
		t.Helper()
		if err := e.s.Audit(ctxb, Actor{Name: actor, Channel: ChannelSSH}, action, target, Detail{"note": target}); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(time.Minute)
	}
	write("alice", "login.success", "alice")    // 1  t0
	write("bob", "login.failure", "bob")        // 2  t0+1m
	write("alice2", "login.locked", "alice2")   // 3  t0+2m
	write("alice", "loginx.other", "x")         // 4  t0+3m
	write("alice", "login", "bare")             // 5  t0+4m
	write("bob", "key.updated", "stripe")       // 6  t0+5m
	write("alice", "test.search", "100%")       // 7
	write("alice", "test.search", "100x")       // 8
	write("alice", "test.search", "a_b")        // 9
	write("alice", "test.search", "axb")        // 10
	write("alice", "test.search", `back\slash`) // 11
	write("alice", "test.search", "Mixed.CASE") // 12

	list := func(q AuditQuery) []int64 {
		t.Helper()
		evs, err := e.s.ListAudit(ctxb, q)
		if err != nil {
			t.Fatal(err)
		}
		return ids(evs)
	}
	for _, tc := range []struct {
		name string
		q    AuditQuery
		want []int64
	}{
		{"actor", AuditQuery{Actor: "alice2"}, []int64{3}},
		{"actor exact", AuditQuery{Actor: "bob"}, []int64{6, 2}},
		{"prefix with dot", AuditQuery{ActionPrefix: "login."}, []int64{3, 2, 1}},
		{"prefix without dot", AuditQuery{ActionPrefix: "login"}, []int64{3, 2, 1}},
		{"exact action", AuditQuery{ActionPrefix: "login.success"}, []int64{1}},
		{"exact key.updated", AuditQuery{ActionPrefix: "key.updated"}, []int64{6}},
		{"since", AuditQuery{Since: t0.Add(4 * time.Minute), ActionPrefix: "key."}, []int64{6}},
		{"since inclusive", AuditQuery{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)}, []int64{3, 2}},
		{"until exclusive", AuditQuery{Until: t0.Add(time.Minute)}, []int64{1}},
		{"search percent", AuditQuery{Search: "%", ActionPrefix: "test.search"}, []int64{7}},
		{"search 0%", AuditQuery{Search: "0%"}, []int64{7}},
		{"search underscore", AuditQuery{Search: "a_b", ActionPrefix: "test.search"}, []int64{9}},
		{"search lone underscore", AuditQuery{Search: "_", ActionPrefix: "test.search"}, []int64{9}},
		{"search backslash", AuditQuery{Search: `\`, ActionPrefix: "test.search"}, []int64{11}},
		{"search detail", AuditQuery{Search: "stripe"}, []int64{6}},
		{"search case", AuditQuery{Search: "mixed.case"}, []int64{12}},
		{"combined", AuditQuery{Actor: "alice", ActionPrefix: "login.", Until: t0.Add(time.Hour)}, []int64{1}},
	} {
		if got := list(tc.q); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	// A filter with paging: no row twice, none lost.
	var got []int64
	q := AuditQuery{Actor: "alice", Limit: 2}
	for {
		page := list(q)
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		q.BeforeID = page[len(page)-1]
	}
	if !slices.Equal(got, []int64{12, 11, 10, 9, 8, 7, 5, 4, 1}) {
		t.Fatalf("alice's rows paged: %v", got)
	}
	actions, err := e.s.AuditActions(ctxb)
	if err != nil || !slices.Equal(actions, []string{"key.updated", "login", "login.failure", "login.locked", "login.success", "loginx.other", "test.search"}) {
		t.Fatalf("AuditActions: %v %v", actions, err)
	}
}

var exportColumns = []string{"time", "actor", "action", "target", "detail", "remote_addr", "session_id", "channel", "hash"}

func TestExportAudit(t *testing.T) {
	e := newEnv(t)
	alice := e.add("alice", true)
	e.verify(alice, e.code(alice, 0))
	e.verify(alice, "000000")
	fill(t, e.s, 3, "test.row")

	// CSV.
	var buf bytes.Buffer
	n, err := e.s.ExportAudit(ctxb, cliAdmin, &buf, FormatCSV, AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	all := allEvents(t, e.s)
	if n != len(all) || all[len(all)-1].Action != ActionAuditExported {
		t.Fatalf("exported %d of %d rows; last row %s", n, len(all), all[len(all)-1].Action)
	}
	exp := all[len(all)-1]
	if exp.Actor != "root" || detail(t, exp)["format"] != FormatCSV {
		t.Fatalf("audit.exported row %+v", exp)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(recs[0], exportColumns) {
		t.Fatalf("CSV header %v", recs[0])
	}
	if len(recs) != n+1 {
		t.Fatalf("%d CSV records for %d rows", len(recs), n)
	}
	for i, ev := range all {
		want := []string{ev.Time.UTC().Format(TimeFormat), ev.Actor, ev.Action, ev.Target, ev.Detail, ev.RemoteAddr, ev.SessionID, ev.Channel, ev.Hash}
		if !slices.Equal(recs[i+1], want) {
			t.Fatalf("CSV record %d:\n%v\nwant\n%v", i+1, recs[i+1], want)
		}
	}

	// JSONL.
	buf.Reset()
	n, err = e.s.ExportAudit(ctxb, cliAdmin, &buf, FormatJSONL, AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	all = allEvents(t, e.s)
	sc := bufio.NewScanner(&buf)
	i := 0
	for sc.Scan() {
		ev := all[i]
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		keys := jsontest.Keys(t, sc.Text())
		keys = slices.DeleteFunc(keys, func(k string) bool { return k == "id" })
		if !slices.Equal(keys, exportColumns) {
			t.Fatalf("JSON keys %v, want %v (in order)", keys, exportColumns)
		}
		if _, ok := m["detail"].(map[string]any); !ok {
			t.Fatalf("detail is %T, want an object", m["detail"])
		}
		if m["time"] != ev.Time.UTC().Format(TimeFormat) || m["actor"] != ev.Actor || m["action"] != ev.Action ||
			m["hash"] != ev.Hash || m["remote_addr"] != ev.RemoteAddr || m["channel"] != ev.Channel {
			t.Fatalf("line %d: %v, want %+v", i+1, m, ev)
		}
		i++
	}
	if i != n || n != len(all) {
		t.Fatalf("%d lines, %d reported, %d rows", i, n, len(all))
	}
	if strings.Contains(all[0].Time.UTC().Format(TimeFormat), "+") || !strings.HasSuffix(all[0].Time.UTC().Format(TimeFormat), "Z") {
		t.Fatalf("time %s is not UTC RFC 3339", all[0].Time.UTC().Format(TimeFormat))
	}

	// Filtered, and the filters recorded.
	buf.Reset()
	since := e.clock.Now().Add(-time.Second)
	n, err = e.s.ExportAudit(ctxb, cliAdmin, &buf, FormatJSONL, AuditQuery{ActionPrefix: "login.", Actor: "alice", Since: since})
	if err != nil || n != 2 {
		t.Fatalf("login rows exported: %d %v", n, err)
	}
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if !strings.Contains(l, `"action":"login.`) {
			t.Fatalf("filtered export holds %s", l)
		}
	}
	evs := events(t, e.s, ActionAuditExported)
	if d := detail(t, evs[len(evs)-1]); d["action"] != "login." || d["actor"] != "alice" || d["since"] != since.UTC().Format(TimeFormat) {
		t.Fatalf("audit.exported detail %v", d)
	}

	// Refusals write nothing.
	before := auditCount(t, e.s)
	buf.Reset()
	_, err = e.s.ExportAudit(ctxb, sshActor("alice"), &buf, FormatCSV, AuditQuery{})
	wantCode(t, err, CodeForbidden)
	_, err = e.s.ExportAudit(ctxb, cliAdmin, &buf, "xml", AuditQuery{})
	wantCode(t, err, CodeInvalid)
	if buf.Len() != 0 || auditCount(t, e.s) != before {
		t.Fatal("a refused export wrote something")
	}
}

// TestExportAuditManyRows crosses the 1000-row page size of the export.
func TestExportAuditManyRows(t *testing.T) {
	e := newEnv(t)
	err := e.s.write(ctxb, func(tx *wtx) error {
		for i := range 2000 {
			if err := tx.audit(ctxb, System, "test.bulk", strconv.Itoa(i), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if page, _ := e.s.ListAudit(ctxb, AuditQuery{Limit: 5000}); len(page) != 1000 {
		t.Fatalf("Limit 5000 gave %d rows, want the 1000 cap", len(page))
	}
	var buf bytes.Buffer
	n, err := e.s.ExportAudit(ctxb, cliAdmin, &buf, FormatJSONL, AuditQuery{ActionPrefix: "test."})
	if err != nil || n != 2000 || strings.Count(buf.String(), "\n") != 2000 {
		t.Fatalf("exported %d rows, %d lines, %v", n, strings.Count(buf.String(), "\n"), err)
	}
	mustVerifyAudit(t, e.s)
}

// TestConcurrentAuditWriters: four writers on two handles (two processes);
// the chain stays one chain.
func TestConcurrentAuditWriters(t *testing.T) {
	e := newEnv(t)
	other := e.open()
	stores := []*Store{e.s, other}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[g%2]
			for i := range 50 {
				if err := s.Audit(ctxb, sshActor(fmt.Sprintf("w%d", g)), "test.concurrent", strconv.Itoa(i), Detail{"g": g}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, s := range stores {
		v := mustVerifyAudit(t, s)
		if v.Rows != 200 {
			t.Fatalf("%d rows, want 200", v.Rows)
		}
	}
	head, err := readHead(filepath.Join(e.dir, AuditHeadFile))
	if err != nil || head.ID != 200 {
		t.Fatalf("head %+v %v", head, err)
	}
	for g := range 4 {
		if n := len(mustList(t, e.s, AuditQuery{Actor: fmt.Sprintf("w%d", g), Limit: 1000})); n != 50 {
			t.Fatalf("writer %d has %d rows", g, n)
		}
	}
}

func mustList(t *testing.T, s *Store, q AuditQuery) []Event {
	t.Helper()
	evs, err := s.ListAudit(ctxb, q)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestVerifyAuditWhileWriting runs VerifyAudit (as `backroom audit verify`
// would, next to a running server) while another handle keeps writing: a
// live log must never be reported as tampered with.
func TestVerifyAuditWhileWriting(t *testing.T) {
	e := newEnv(t)
	writer := e.open()
	fill(t, e.s, 3, "test.row")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Bounded, so that the verifications (each walks the whole
		// chain) stay cheap.
		for i := 0; i < 3000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := writer.Audit(ctxb, System, "test.live", strconv.Itoa(i), nil); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := range 60 {
		v, err := e.s.VerifyAudit(ctxb)
		if err != nil || !v.OK {
			close(stop)
			<-done
			t.Fatalf("verification %d of a live log: %+v %v", i, v, err)
		}
	}
	close(stop)
	<-done
	mustVerifyAudit(t, e.s)
}
