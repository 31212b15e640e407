package main

import (
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"backroom/store"
	"backroom/store/jsontest"
)

var auditColumns = []string{"time", "actor", "action", "target", "detail", "remote_addr", "session_id", "channel", "hash"}

// auditFixture makes a data dir with a few audit rows of different actions.
func auditFixture(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t)
	a, _ := h.pubKeyFile("alice")
	b, _ := h.pubKeyFile("bob")
	h.run("", "staff", "add", "alice", "--key", a, "--admin").must(t, 0)
	h.run("", "staff", "add", "bob", "--key", b).must(t, 0)
	h.run(testKey, "key", "set").must(t, 0)
	h.run("", "staff", "unlock", "bob").must(t, 0)
	return h
}

func TestAuditExportJSONL(t *testing.T) {
	t.Parallel()
	h := auditFixture(t)
	r := h.run("", "audit", "export", "--format", "jsonl").must(t, 0)
	lines := nonEmptyLines(r.stdout)
	if len(lines) < 5 {
		t.Fatalf("want at least 5 rows:\n%s", r.stdout)
	}
	for _, l := range lines {
		keys := slices.DeleteFunc(jsontest.Keys(t, l), func(k string) bool { return k == "id" })
		if !slices.Equal(keys, auditColumns) {
			t.Fatalf("jsonl keys %v, want %v (plus id)", keys, auditColumns)
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatal(err)
		}
		if _, ok := ev["detail"].(map[string]any); !ok {
			t.Errorf("detail is not an object: %s", l)
		}
		if _, err := time.Parse(time.RFC3339, ev["time"].(string)); err != nil {
			t.Errorf("time %v is not RFC 3339", ev["time"])
		}
	}
	var actions []string
	for _, l := range lines {
		var ev struct{ Action string }
		json.Unmarshal([]byte(l), &ev)
		actions = append(actions, ev.Action)
	}
	want := []string{"staff.added", "staff.added", "key.updated", "staff.unlocked", "audit.exported"}
	if !slices.Equal(actions[len(actions)-5:], want) {
		t.Errorf("actions %v, want them to end with %v (oldest first)", actions, want)
	}
	if strings.Contains(r.stdout, testKey) {
		t.Error("the Stripe key is in the audit log")
	}
	// Nothing but the rows on stdout.
	if r.stderr != "" {
		t.Logf("stderr: %s", r.stderr)
	}
}

func TestAuditExportCSV(t *testing.T) {
	t.Parallel()
	h := auditFixture(t)
	r := h.run("", "audit", "export", "--format", "csv").must(t, 0)
	recs, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if err != nil {
		t.Fatalf("not CSV: %v\n%s", err, r.stdout)
	}
	if !slices.Equal(recs[0], auditColumns) {
		t.Errorf("header %v, want %v", recs[0], auditColumns)
	}
	if len(recs) < 6 {
		t.Fatalf("want a header and at least 5 rows, got %d", len(recs))
	}
	for _, rec := range recs[1:] {
		if len(rec) != len(auditColumns) {
			t.Fatalf("row has %d columns: %v", len(rec), rec)
		}
		if !json.Valid([]byte(rec[4])) {
			t.Errorf("detail column is not JSON: %q", rec[4])
		}
		if rec[7] != store.ChannelCLI && rec[7] != store.ChannelSystem {
			t.Errorf("channel %q", rec[7])
		}
		if len(rec[8]) != 64 {
			t.Errorf("hash %q is not hex SHA-256", rec[8])
		}
	}
}

func TestAuditExportFilters(t *testing.T) {
	t.Parallel()
	h := auditFixture(t)
	count := func(args ...string) []string {
		t.Helper()
		r := h.run("", append([]string{"audit", "export"}, args...)...).must(t, 0)
		var actions []string
		for _, l := range nonEmptyLines(r.stdout) {
			var ev struct{ Actor, Action string }
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatal(err)
			}
			actions = append(actions, ev.Actor+" "+ev.Action)
		}
		return actions
	}
	staffOnly := count("--action", "staff.")
	if len(staffOnly) != 3 {
		t.Errorf("--action staff.: %v", staffOnly)
	}
	for _, a := range staffOnly {
		if !strings.Contains(a, " staff.") {
			t.Errorf("--action staff. let through %q", a)
		}
	}
	if got := count("--action", "key.updated"); len(got) != 1 {
		t.Errorf("--action key.updated: %v", got)
	}
	if got := count("--actor", "nobody"); len(got) != 0 {
		t.Errorf("--actor nobody: %v", got)
	}
	actor := h.invActorName()
	byCLI := count("--actor", actor, "--action", "staff.added")
	if len(byCLI) != 2 {
		t.Errorf("--actor %s --action staff.added: %v", actor, byCLI)
	}
	if got := count("--since", "1h"); len(got) < 5 {
		t.Errorf("--since 1h: %v", got)
	}
	if got := count("--since", "7d"); len(got) < 5 {
		t.Errorf("--since 7d: %v", got)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if got := count("--since", future); len(got) != 0 {
		t.Errorf("--since %s: %v", future, got)
	}
	h.run("", "audit", "export", "--since", "-1h").must(t, 2)
}

// invActorName is the actor name the CLI uses in this process.
func (h *harness) invActorName() string {
	return (&invocation{Env: h.env}).actor().Name
}

func TestAuditVerify(t *testing.T) {
	t.Parallel()
	h := auditFixture(t)
	r := h.run("", "audit", "verify").must(t, 0)
	s := h.openStore()
	n, err := s.CountAudit(t.Context())
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("audit log OK: %d rows\n", n); r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
}

func openRawDB(t *testing.T, h *harness) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(h.data, store.DBFile)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestAuditVerifyDetectsChangedRow(t *testing.T) {
	t.Parallel()
	h := auditFixture(t)
	db := openRawDB(t, h)
	if _, err := db.Exec(`UPDATE audit SET detail = '{}' WHERE id = 2`); err == nil {
		t.Fatal("the append-only trigger did not refuse an UPDATE")
	}
	if _, err := db.Exec(`DROP TRIGGER audit_no_update`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit SET actor = 'mallory' WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	r := h.run("", "audit", "verify").must(t, 1)
	if !strings.Contains(r.stderr, "row 2 ") || !strings.Contains(r.stderr, "FAILED") {
		t.Errorf("verify does not name row 2:\n%s", r.stderr)
	}
	if strings.Contains(r.stdout, "OK") {
		t.Errorf("stdout says OK: %s", r.stdout)
	}
}

func TestAuditVerifyDetectsMissingTail(t *testing.T) {
	t.Parallel()
	h := auditFixture(t)
	db := openRawDB(t, h)
	var last int64
	if err := db.QueryRow(`SELECT max(id) FROM audit`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DROP TRIGGER audit_no_delete`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM audit WHERE id > ?`, last-2); err != nil {
		t.Fatal(err)
	}
	db.Close()
	r := h.run("", "audit", "verify").must(t, 1)
	want := fmt.Sprintf("rows %d to %d were removed", last-1, last)
	if !strings.Contains(r.stderr, want) {
		t.Errorf("verify does not report the missing tail (%q):\n%s", want, r.stderr)
	}
}
