package store

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestOpenFileModes runs with umask 0, so that any file the store (or
// SQLite) creates without an explicit 0600 shows up as world-readable.
func TestOpenFileModes(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)

	dir := filepath.Join(t.TempDir(), "nested", "data")
	if err := EnsureDir(dir); err != nil {
		t.Fatal(err)
	}
	mk, created, err := LoadMasterKeyFile(filepath.Join(dir, MasterKeyFile), true)
	if err != nil || !created {
		t.Fatalf("LoadMasterKeyFile: created=%v err=%v", created, err)
	}
	e := &env{t: t, dir: dir, mk: mk, clock: newClock()}
	e.s = e.open()
	alice := e.add("alice", true)
	e.verify(alice, e.code(alice, 0))
	if _, err := e.s.SetStripeKey(ctxb, cliAdmin, SetKeyRequest{Key: "sk_test_" + strings.Repeat("a1", 12)}); err != nil {
		t.Fatal(err)
	}
	// A second handle (the CLI while the server runs).
	s2 := e.open()
	if _, err := s2.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: "bob", Key: mustKey(t)}); err != nil {
		t.Fatal(err)
	}

	check := func(when string) {
		t.Helper()
		seen := map[string]bool{}
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			st, err := os.Lstat(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			seen[rel] = true
			switch {
			case d.IsDir():
				if st.Mode().Perm() != 0o700 {
					t.Errorf("%s: directory %s has mode %v, want 0700", when, rel, st.Mode().Perm())
				}
			case st.Mode().IsRegular():
				if st.Mode().Perm() != 0o600 {
					t.Errorf("%s: %s has mode %v, want 0600", when, rel, st.Mode().Perm())
				}
				if strings.Contains(rel, ".tmp-") {
					t.Errorf("%s: temporary file %s left behind", when, rel)
				}
			default:
				t.Errorf("%s: unexpected %v %s", when, st.Mode().Type(), rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{DBFile, DBFile + "-wal", DBFile + "-shm", AuthorizedKeysFile, AuditHeadFile, MasterKeyFile} {
			if !seen[want] {
				t.Errorf("%s: %s missing from the data directory (have %v)", when, want, seen)
			}
		}
	}
	check("while open")
	s2.Close()
	e.reopen()
	e.add("carol", false)
	check("after reopen")
}

func TestOpenCreatesAndTightensDataDir(t *testing.T) {
	root := t.TempDir()
	fresh := filepath.Join(root, "a", "b", "data")
	s, err := Open(ctxb, Options{Dir: fresh, MasterKey: NewMasterKey()})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if st, err := os.Stat(fresh); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("new data dir: %v %v, want 0700", st.Mode().Perm(), err)
	}

	loose := filepath.Join(root, "loose")
	if err := os.Mkdir(loose, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctxb, Options{Dir: loose, MasterKey: NewMasterKey()})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if st, _ := os.Stat(loose); st.Mode().Perm() != 0o700 {
		t.Fatalf("existing data dir left at %v, want 0700", st.Mode().Perm())
	}

	if _, err := Open(ctxb, Options{Dir: fresh}); err == nil {
		t.Fatal("Open without a master key succeeded")
	}
	if _, err := Open(ctxb, Options{Dir: fresh, MasterKey: NewMasterKey()[:16]}); err == nil {
		t.Fatal("Open with a 16-byte master key succeeded")
	}
	if _, err := Open(ctxb, Options{Dir: fresh, MasterKey: NewMasterKey(), Synchronous: "sometimes"}); err == nil {
		t.Fatal("Open with synchronous=sometimes succeeded")
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	e := newEnv(t)
	e.add("alice", true)
	if err := e.s.Close(); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, e.dir)
	mustExec(t, db, `UPDATE meta SET value = '99' WHERE key = 'schema'`)
	db.Close()

	_, err := Open(ctxb, Options{Dir: e.dir, MasterKey: e.mk, Now: e.clock.Now})
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open on schema 99: %v, want ErrSchemaTooNew", err)
	}
	db = rawDB(t, e.dir)
	var v string
	if err := db.QueryRow(`SELECT value FROM meta WHERE key = 'schema'`).Scan(&v); err != nil || v != "99" {
		t.Fatalf("schema after the refusal: %q %v; the newer schema must be left alone", v, err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM staff`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("staff rows after the refusal: %d %v", n, err)
	}
}

func TestOpenRefusesOtherMasterKey(t *testing.T) {
	e := newEnv(t)
	alice := e.add("alice", true)
	stripe := "sk_live_" + strings.Repeat("Zq9", 10)
	if _, err := e.s.SetStripeKey(ctxb, cliAdmin, SetKeyRequest{Key: stripe}); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Close(); err != nil {
		t.Fatal(err)
	}
	if !HasData(e.dir) {
		t.Fatal("HasData is false for a data dir with a database")
	}
	before := dirFiles(t, e.dir)

	other := NewMasterKey()
	_, err := Open(ctxb, Options{Dir: e.dir, MasterKey: other, Now: e.clock.Now})
	if !errors.Is(err, ErrMasterKeyMismatch) {
		t.Fatalf("Open with another master key: %v, want ErrMasterKeyMismatch", err)
	}
	after := dirFiles(t, e.dir)
	for _, name := range []string{DBFile, AuthorizedKeysFile, AuditHeadFile} {
		if !bytes.Equal(before[name], after[name]) {
			t.Errorf("%s changed by an Open with the wrong master key", name)
		}
	}
	if len(after[DBFile+"-wal"]) != 0 {
		t.Errorf("the refused Open left %d bytes in the WAL", len(after[DBFile+"-wal"]))
	}

	// The right key still opens everything as it was.
	e.s = e.open()
	got, ok, err := e.s.StripeKey(ctxb)
	if err != nil || !ok || got != stripe {
		t.Fatalf("StripeKey after the refusal: ok=%v err=%v", ok, err)
	}
	e.clock.Add(TOTPPeriod)
	if r := e.verify(alice, e.code(alice, 0)); r.Verdict != CodeAccepted {
		t.Fatalf("alice's code after the refusal: %v", r.Verdict)
	}
	mustVerifyAudit(t, e.s)
}

func TestHasData(t *testing.T) {
	dir := t.TempDir()
	if HasData(dir) {
		t.Fatal("HasData on an empty dir")
	}
	if HasData(filepath.Join(dir, "missing")) {
		t.Fatal("HasData on a missing dir")
	}
}

func TestParseMasterKey(t *testing.T) {
	k := NewMasterKey()
	text := EncodeMasterKey(k)
	for _, in := range []string{text, "  " + text + "\n", "\t" + text + "\r\n"} {
		got, err := ParseMasterKey(in)
		if err != nil || !bytes.Equal(got, k) {
			t.Fatalf("ParseMasterKey(%q): %v", in, err)
		}
	}
	bad := []struct{ name, in, want string }{
		{"not base64", "s3cr3t-not-base64!!", "base64"},
		{"url-safe base64", strings.NewReplacer("+", "-", "/", "_").Replace(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xff}, 16))), "base64"},
		{"16 bytes", base64.StdEncoding.EncodeToString([]byte("0123456789abcdef")), "16 bytes"},
		{"33 bytes", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("q"), 33)), "33 bytes"},
		{"empty", "", "0 bytes"},
		{"hex", hex.EncodeToString(k), "bytes"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMasterKey(tc.in)
			if err == nil {
				t.Fatalf("accepted: %d bytes", len(got))
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if tc.in != "" && strings.Contains(err.Error(), strings.TrimSpace(tc.in)) {
				t.Errorf("error contains the input: %q", err)
			}
			if tc.in != "" && strings.Contains(err.Error(), strings.TrimSpace(tc.in)[:8]) {
				t.Errorf("error contains part of the input: %q", err)
			}
		})
	}
}

func TestLoadMasterKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, MasterKeyFile)
	if _, _, err := LoadMasterKeyFile(path, false); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file without create: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("LoadMasterKeyFile(create=false) created the file")
	}
	k1, created, err := LoadMasterKeyFile(path, true)
	if err != nil || !created || len(k1) != MasterKeySize {
		t.Fatalf("create: created=%v len=%d err=%v", created, len(k1), err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("master.key mode %v", st.Mode().Perm())
	}
	content, _ := os.ReadFile(path)
	if strings.TrimSpace(string(content)) != EncodeMasterKey(k1) {
		t.Fatal("master.key does not hold the key in standard base64")
	}
	k2, created, err := LoadMasterKeyFile(path, true)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Fatalf("second load: created=%v equal=%v err=%v", created, bytes.Equal(k1, k2), err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, content) {
		t.Fatal("second load rewrote the file")
	}

	// An invalid file is an error, never replaced by a new key, and the
	// error does not repeat its content.
	badPath := filepath.Join(dir, "bad.key")
	secretish := "hunter2-is-not-a-master-key"
	if err := os.WriteFile(badPath, []byte(secretish), 0o600); err != nil {
		t.Fatal(err)
	}
	_, created, err = LoadMasterKeyFile(badPath, true)
	if err == nil || created {
		t.Fatalf("invalid file: created=%v err=%v", created, err)
	}
	if strings.Contains(err.Error(), secretish) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error repeats the file content: %v", err)
	}
	if b, _ := os.ReadFile(badPath); string(b) != secretish {
		t.Fatal("invalid master key file was overwritten")
	}
	short := filepath.Join(dir, "short.key")
	if err := os.WriteFile(short, []byte(base64.StdEncoding.EncodeToString(make([]byte, 31))), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadMasterKeyFile(short, true); err == nil || !strings.Contains(err.Error(), "31 bytes") {
		t.Fatalf("31-byte key file: %v", err)
	}
}

func TestMasterKeyNeverPrinted(t *testing.T) {
	k := NewMasterKey()
	secrets := []string{EncodeMasterKey(k), hex.EncodeToString(k), string(k), fmt.Sprint([]byte(k))}
	var out []string
	for _, f := range []string{"%v", "%s", "%+v", "%#v", "%q", "%x", "%X"} {
		out = append(out, fmt.Sprintf(f, k), fmt.Sprintf(f, Options{Dir: "d", MasterKey: k}), fmt.Sprintf(f, &Options{MasterKey: k}))
	}
	for _, newHandler := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var buf bytes.Buffer
		log := slog.New(newHandler(&buf))
		log.Info("start", "master_key", k)
		log.With("mk", k).Info("again")
		out = append(out, buf.String())
	}
	for _, o := range out {
		// The placeholder, or its hex form for %x and %X.
		if !strings.Contains(o, "[master key]") && !strings.Contains(strings.ToLower(o), hex.EncodeToString([]byte("[master key]"))) {
			t.Errorf("output does not show the placeholder: %q", o)
		}
		for _, s := range secrets {
			if strings.Contains(o, s) || strings.Contains(strings.ToLower(o), s) {
				t.Errorf("master key revealed in %q", o)
			}
		}
	}
}
