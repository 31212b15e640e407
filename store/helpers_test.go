package store

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"backroom/store/clocktest"
)

// testClock is the tests' settable clock; Add moves it forward.
type testClock struct{ *clocktest.Clock }

// newClock starts 10 s into a TOTP step, so that ±k steps are plain
// additions of k×30 s.
func newClock() *testClock {
	base := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	step := TOTPStep(base)
	return &testClock{clocktest.New(time.Unix(step*int64(TOTPPeriod/time.Second)+10, 0).UTC())}
}

// Add moves the clock by d.
func (c *testClock) Add(d time.Duration) { c.Advance(d) }

var ctxb = context.Background()

// cliAdmin is the CLI actor (trusted as admin).
var cliAdmin = Actor{Name: "root", Role: RoleAdmin, Channel: ChannelCLI}

// sshActor is a staff member logging in or acting over SSH.
func sshActor(name string) Actor {
	return Actor{Name: name, Role: RoleStaff, Channel: ChannelSSH, RemoteAddr: "203.0.113.7:40022", SessionID: "sess-" + name}
}

// env is one data directory with its master key and clock.
type env struct {
	t     *testing.T
	dir   string
	mk    MasterKey
	clock *testClock
	s     *Store
}

func newEnv(t *testing.T, mod ...func(*Options)) *env {
	t.Helper()
	e := &env{t: t, dir: filepath.Join(t.TempDir(), "data"), mk: NewMasterKey(), clock: newClock()}
	e.s = e.open(mod...)
	return e
}

// open opens another handle on the env's data directory (another process,
// as far as the store can tell: its own connections and locks).
func (e *env) open(mod ...func(*Options)) *Store {
	e.t.Helper()
	opts := Options{Dir: e.dir, MasterKey: e.mk, Now: e.clock.Now}
	for _, m := range mod {
		m(&opts)
	}
	s, err := Open(ctxb, opts)
	if err != nil {
		e.t.Fatalf("Open: %v", err)
	}
	e.t.Cleanup(func() { s.Close() })
	return s
}

// reopen closes the env's store and opens it again.
func (e *env) reopen(mod ...func(*Options)) {
	e.t.Helper()
	if err := e.s.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	e.s = e.open(mod...)
}

type member struct {
	name string
	key  ssh.PublicKey
	priv ed25519.PrivateKey
	fp   string
	enr  *Enrollment
}

func newKey(t *testing.T) (ssh.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k, priv
}

func mustKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	k, _ := newKey(t)
	return k
}

func (e *env) add(name string, admin bool) member {
	e.t.Helper()
	k, priv := newKey(e.t)
	res, err := e.s.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: name, Key: k, Admin: admin, Comment: name + "@laptop"})
	if err != nil {
		e.t.Fatalf("AddStaff(%s): %v", name, err)
	}
	if res.Enrollment == nil {
		e.t.Fatalf("AddStaff(%s): no enrollment for a new member", name)
	}
	return member{name: name, key: k, priv: priv, fp: res.Fingerprint, enr: res.Enrollment}
}

// code is the member's TOTP code at the env's clock shifted by steps.
func (e *env) code(m member, steps int) string {
	e.t.Helper()
	c, err := CodeFor(m.enr.Secret, e.clock.Now().Add(time.Duration(steps)*TOTPPeriod))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) verify(m member, code string) CodeResult {
	e.t.Helper()
	res, err := e.s.VerifyCode(ctxb, sshActor(m.name), m.fp, code, PurposeLogin)
	if err != nil {
		e.t.Fatalf("VerifyCode(%s): %v", m.name, err)
	}
	return res
}

// wrongCode is a 6-digit code that is none of the member's codes at
// steps T-1..T+1.
func (e *env) wrongCode(m member) string {
	e.t.Helper()
	used := map[string]bool{e.code(m, -1): true, e.code(m, 0): true, e.code(m, 1): true}
	for _, c := range []string{"000000", "111111", "222222", "333333"} {
		if !used[c] {
			return c
		}
	}
	e.t.Fatal("no wrong code found")
	return ""
}

// rawDB opens the database file directly, as an attacker or a repair tool
// with access to the data directory would.
func rawDB(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, DBFile)+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// events returns every audit row with exactly this action, oldest first.
func events(t *testing.T, s *Store, action string) []Event {
	t.Helper()
	all := allEvents(t, s)
	var out []Event
	for _, e := range all {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// allEvents returns the whole audit log, oldest first.
func allEvents(t *testing.T, s *Store) []Event {
	t.Helper()
	var out []Event
	q := AuditQuery{Oldest: true, Limit: 1000}
	for {
		page, err := s.ListAudit(ctxb, q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page...)
		if len(page) < q.Limit {
			return out
		}
		q.AfterID = page[len(page)-1].ID
	}
}

func detail(t *testing.T, e Event) map[string]any {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal([]byte(e.Detail), &d); err != nil {
		t.Fatalf("audit row %d detail %q: %v", e.ID, e.Detail, err)
	}
	return d
}

// one returns the single audit row with action, failing otherwise.
func one(t *testing.T, s *Store, action string) Event {
	t.Helper()
	evs := events(t, s, action)
	if len(evs) != 1 {
		t.Fatalf("want exactly one %s audit row, got %d", action, len(evs))
	}
	return evs[0]
}

func auditCount(t *testing.T, s *Store) int64 {
	t.Helper()
	n, err := s.CountAudit(ctxb)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func mustVerifyAudit(t *testing.T, s *Store) VerifyResult {
	t.Helper()
	v, err := s.VerifyAudit(ctxb)
	if err != nil {
		t.Fatalf("VerifyAudit: %v", err)
	}
	if !v.OK {
		t.Fatalf("VerifyAudit: not OK: %+v", v)
	}
	return v
}

// dirFiles reads every regular file under dir.
func dirFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			out[rel] = b
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// assertNotInFiles fails when any needle occurs in any file of dir.
func assertNotInFiles(t *testing.T, dir, when string, needles ...[]byte) {
	t.Helper()
	files := dirFiles(t, dir)
	if len(files) == 0 {
		t.Fatalf("%s: no files in %s", when, dir)
	}
	for name, b := range files {
		for _, n := range needles {
			if len(n) == 0 {
				t.Fatal("empty needle")
			}
			if bytes.Contains(b, n) {
				t.Errorf("%s: %s contains a secret (%d bytes)", when, name, len(n))
			}
		}
	}
}

func keysFile(t *testing.T, s *Store) string {
	t.Helper()
	b, err := os.ReadFile(s.AuthorizedKeysPath())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// authLine is an authorized_keys line for key, written the way a person
// would by hand.
func authLine(user string, key ssh.PublicKey, opts ...string) string {
	o := append([]string{`environment="BACKROOM_USER=` + user + `"`}, opts...)
	return strings.Join(o, ",") + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))) + " " + user + "@hand"
}

func wantCode(t *testing.T, err error, code Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("want a %s error, got nil", code)
	}
	if got := ErrorCode(err); got != code {
		t.Fatalf("want error code %s, got %s (%v)", code, got, err)
	}
}
