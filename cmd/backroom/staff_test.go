package main

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"backroom/store"
	"backroom/store/jsontest"
)

func TestStaffAddJSON(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	keyPath, key := h.pubKeyFile("alice")
	r := h.run("", "staff", "add", "alice", "--key", keyPath, "--json").must(t, 0)
	lines := nonEmptyLines(r.stdout)
	if len(lines) != 1 {
		t.Fatalf("stdout has %d lines, want exactly one JSON object:\n%s", len(lines), r.stdout)
	}
	if got, want := jsontest.Keys(t, lines[0]), []string{"name", "role", "fingerprint", "otpauth_uri", "recovery_codes"}; !slices.Equal(got, want) {
		t.Errorf("keys %v, want %v", got, want)
	}
	var out struct {
		Name          string   `json:"name"`
		Role          string   `json:"role"`
		Fingerprint   string   `json:"fingerprint"`
		OTPAuthURI    string   `json:"otpauth_uri"`
		RecoveryCodes []string `json:"recovery_codes"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &out); err != nil {
		t.Fatal(err)
	}
	if out.Name != "alice" {
		t.Errorf("name %q", out.Name)
	}
	if out.Role != store.RoleAdmin {
		t.Errorf("role %q: the first member should become admin when there is none", out.Role)
	}
	if !strings.Contains(r.stderr, "alice is admin because there was no admin yet") {
		t.Errorf("the first-admin rule is not announced:\n%s", r.stderr)
	}
	if out.Fingerprint != ssh.FingerprintSHA256(key) {
		t.Errorf("fingerprint %q, want %q", out.Fingerprint, ssh.FingerprintSHA256(key))
	}
	u, err := url.Parse(out.OTPAuthURI)
	if err != nil {
		t.Fatalf("otpauth_uri does not parse: %v", err)
	}
	if u.Scheme != "otpauth" || u.Host != "totp" || u.Query().Get("secret") == "" || u.Query().Get("issuer") != "Backroom" {
		t.Errorf("otpauth_uri %q is not a TOTP URI with a secret", out.OTPAuthURI)
	}
	if len(out.RecoveryCodes) != 10 {
		t.Errorf("%d recovery codes, want 10", len(out.RecoveryCodes))
	}
	seen := map[string]bool{}
	for _, c := range out.RecoveryCodes {
		if c == "" || seen[c] {
			t.Errorf("recovery code %q empty or repeated", c)
		}
		seen[c] = true
	}

	// The secret in the URI is the one the store checks codes against.
	now := time.Now()
	code, err := store.CodeFor(u.Query().Get("secret"), now)
	if err != nil {
		t.Fatal(err)
	}
	s := h.openStore()
	res, err := s.VerifyCode(context.Background(), store.Actor{Name: "alice", Channel: store.ChannelSSH}, out.Fingerprint, code, store.PurposeLogin)
	s.Close()
	if err != nil || res.Verdict != store.CodeAccepted {
		t.Fatalf("a code from the printed secret was not accepted: %v %v", res.Verdict, err)
	}

	// A second member without --admin is staff: there is an admin now.
	bobKey, _ := h.pubKeyFile("bob")
	r = h.run("", "staff", "add", "bob", "--key", bobKey, "--json").must(t, 0)
	if !strings.Contains(r.stdout, `"role":"staff"`) || strings.Contains(r.stderr, "no admin yet") {
		t.Errorf("second member:\nstdout %s\nstderr %s", r.stdout, r.stderr)
	}
}

func TestStaffAddEnrollAtLoginJSON(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	keyPath, key := h.pubKeyFile("dora")
	r := h.run("", "staff", "add", "dora", "--key", keyPath, "--enroll-at-login", "--admin", "--json").must(t, 0)
	lines := nonEmptyLines(r.stdout)
	if len(lines) != 1 {
		t.Fatalf("want one line:\n%s", r.stdout)
	}
	if got, want := jsontest.Keys(t, lines[0]), []string{"name", "role", "fingerprint"}; !slices.Equal(got, want) {
		t.Errorf("keys %v, want %v (no otpauth_uri, no recovery codes)", got, want)
	}
	if !strings.Contains(lines[0], ssh.FingerprintSHA256(key)) {
		t.Errorf("fingerprint missing: %s", lines[0])
	}
	r = h.run("", "staff", "list", "--json").must(t, 0)
	if !strings.Contains(r.stdout, `"totp":"pending"`) {
		t.Errorf("dora should be pending:\n%s", r.stdout)
	}
}

func TestStaffAddText(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.env[envSSHAddr] = "127.0.0.1:2222"
	keyPath, _ := h.pubKeyFile("alice")
	r := h.run("", "staff", "add", "alice", "--key", keyPath).must(t, 0)
	for _, w := range []string{"Added alice as admin", "otpauth://totp/", "Secret:", "Recovery codes", "ssh -p 2222 alice@localhost"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "█") {
		t.Error("a QR code was printed although stdout is not a terminal")
	}
	// Another key of the same member: no new enrollment.
	second, k2 := h.pubKeyFile("alice2")
	r = h.run("", "staff", "add", "alice", "--key", second).must(t, 0)
	if !strings.Contains(r.stdout, "Added key "+ssh.FingerprintSHA256(k2)+" to alice") || strings.Contains(r.stdout, "otpauth://") {
		t.Errorf("adding a key:\n%s", r.stdout)
	}
	r = h.run("", "staff", "add", "alice", "--key", second).must(t, 1)
	if !strings.Contains(r.stderr, "already listed") {
		t.Errorf("a duplicate key:\n%s", r.stderr)
	}
	// Enrollment at login says what happens next.
	k3, _ := h.pubKeyFile("erin")
	r = h.run("", "staff", "add", "erin", "--key", k3, "--enroll-at-login").must(t, 0)
	if !strings.Contains(r.stdout, "first login") || strings.Contains(r.stdout, "otpauth://") {
		t.Errorf("enroll at login:\n%s", r.stdout)
	}
}

func TestPrintEnrollmentQR(t *testing.T) {
	t.Parallel()
	enr := store.NewEnrollment("alice")
	var b strings.Builder
	printEnrollment(&b, enr, true)
	out := b.String()
	if !strings.ContainsAny(out, "▀▄█") {
		t.Errorf("no half-block QR code:\n%s", out)
	}
	for _, w := range append([]string{enr.URI, enr.Secret}, enr.RecoveryCodes...) {
		if !strings.Contains(out, w) {
			t.Errorf("enrollment lacks %q", w)
		}
	}
}

func TestStaffAddFlagsAnywhere(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	delete(h.env, envData)
	a, _ := h.pubKeyFile("alice")
	b, _ := h.pubKeyFile("bob")
	c, _ := h.pubKeyFile("carl")
	h.run("", "staff", "add", "alice", "--key", a, "--admin", "--json", "--data", h.data).must(t, 0)
	h.run("", "staff", "add", "--admin", "bob", "--key", b, "--data", h.data, "--json").must(t, 0)
	h.run("", "--data", h.data, "staff", "add", "--key="+c, "carl", "--json").must(t, 0)
	r := h.run("", "staff", "list", "--json", "--data", h.data).must(t, 0)
	want := map[string]string{"alice": "admin", "bob": "admin", "carl": "staff"}
	for _, l := range nonEmptyLines(r.stdout) {
		var s staffJSON
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatal(err)
		}
		if want[s.Name] != s.Role {
			t.Errorf("%s: role %q, want %q", s.Name, s.Role, want[s.Name])
		}
		delete(want, s.Name)
	}
	if len(want) > 0 {
		t.Errorf("missing from the list: %v", want)
	}
}

func TestStaffAddKeyFromStdinAndHome(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	k, line, _ := newEd25519(t, "stdin@test")
	r := h.run(line, "staff", "add", "alice", "--key", "-", "--json").must(t, 0)
	if !strings.Contains(r.stdout, ssh.FingerprintSHA256(k)) {
		t.Errorf("key from stdin not added:\n%s", r.stdout)
	}
	// --key=~/... is not expanded by the shell: Backroom does it.
	if err := os.MkdirAll(filepath.Join(h.dir, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	k2, line2, _ := newEd25519(t, "home@test")
	h.writeFile(".ssh/id_ed25519.pub", line2)
	r = h.run("", "staff", "add", "bob", "--key=~/.ssh/id_ed25519.pub", "--json").must(t, 0)
	if !strings.Contains(r.stdout, ssh.FingerprintSHA256(k2)) {
		t.Errorf("key from ~ not added:\n%s", r.stdout)
	}
}

func TestStaffAddRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	_, pubLine, priv := newEd25519(t, "alice@test")
	privPath := h.writeFile("id_ed25519", string(priv))
	h.writeFile("id_ed25519.pub", pubLine)
	r := h.run("", "staff", "add", "alice", "--key", privPath).must(t, 2)
	if !strings.Contains(r.stderr, "that is a private key; give the .pub file") || !strings.Contains(r.stderr, privPath+".pub") {
		t.Errorf("private key:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, "OPENSSH PRIVATE KEY") || strings.Contains(r.stderr, string(priv[40:80])) {
		t.Errorf("the private key is echoed:\n%s", r.stderr)
	}
	r = h.run(string(priv), "staff", "add", "alice", "--key", "-").must(t, 2)
	if !strings.Contains(r.stderr, "that is a private key") {
		t.Errorf("private key on stdin:\n%s", r.stderr)
	}

	rsaPath := h.writeFile("id_rsa.pub", rsaPubLine(t, 2048))
	r = h.run("", "staff", "add", "alice", "--key", rsaPath).must(t, 2)
	if !strings.Contains(r.stderr, "2048 bits is too weak") || !strings.Contains(r.stderr, "ed25519") {
		t.Errorf("RSA-2048:\n%s", r.stderr)
	}

	r = h.run("", "staff", "add", "alice", "--key", filepath.Join(h.dir, "nope.pub")).must(t, 2)
	if !strings.Contains(r.stderr, "no such file") {
		t.Errorf("missing file:\n%s", r.stderr)
	}
	r = h.run("", "staff", "add", "alice").must(t, 2)
	if !strings.Contains(r.stderr, "--key is required") {
		t.Errorf("no --key:\n%s", r.stderr)
	}
	notKey := h.writeFile("notes.txt", "hello world\n")
	h.run("", "staff", "add", "alice", "--key", notKey).must(t, 2)
	good, _ := h.pubKeyFile("good")
	r = h.run("", "staff", "add", "Alice Smith", "--key", good).must(t, 2)
	if !strings.Contains(r.stderr, "not valid") {
		t.Errorf("bad name:\n%s", r.stderr)
	}
	r = h.run("", "staff", "list", "--json").must(t, 0)
	if strings.TrimSpace(r.stdout) != "" {
		t.Errorf("a refused add left staff behind:\n%s", r.stdout)
	}
}

func TestStaffListJSON(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a1, ka1 := h.pubKeyFile("alice")
	a2, ka2 := h.pubKeyFile("alice2")
	b, kb := h.pubKeyFile("bob")
	h.run("", "staff", "add", "alice", "--key", a1, "--admin").must(t, 0)
	h.run("", "staff", "add", "alice", "--key", a2).must(t, 0)
	h.run("", "staff", "add", "bob", "--key", b, "--enroll-at-login").must(t, 0)

	r := h.run("", "staff", "list", "--json").must(t, 0)
	lines := nonEmptyLines(r.stdout)
	if len(lines) != 2 {
		t.Fatalf("want 2 lines:\n%s", r.stdout)
	}
	for _, l := range lines {
		if got, want := jsontest.Keys(t, l), []string{"name", "role", "fingerprints", "totp", "locked_until"}; !slices.Equal(got, want) {
			t.Errorf("keys %v, want %v", got, want)
		}
	}
	var alice, bob staffJSON
	json.Unmarshal([]byte(lines[0]), &alice)
	json.Unmarshal([]byte(lines[1]), &bob)
	if alice.Name != "alice" || alice.Role != "admin" || alice.TOTP != "enrolled" || alice.LockedUntil != nil ||
		!slices.Equal(alice.Fingerprints, []string{ssh.FingerprintSHA256(ka1), ssh.FingerprintSHA256(ka2)}) {
		t.Errorf("alice: %+v", alice)
	}
	if bob.Name != "bob" || bob.Role != "staff" || bob.TOTP != "pending" || !slices.Equal(bob.Fingerprints, []string{ssh.FingerprintSHA256(kb)}) {
		t.Errorf("bob: %+v", bob)
	}
	if !strings.Contains(lines[0], `"locked_until":null`) {
		t.Errorf("locked_until is not null: %s", lines[0])
	}

	// The table names everyone and every key.
	r = h.run("", "staff", "list").must(t, 0)
	for _, w := range []string{"NAME", "LOCKED UNTIL", "alice", "bob", ssh.FingerprintSHA256(ka2), "pending"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("table lacks %q:\n%s", w, r.stdout)
		}
	}

	// A broken authorized_keys line is reported on stderr.
	f, err := os.OpenFile(filepath.Join(h.data, store.AuthorizedKeysFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("this is not a key line\n")
	f.Close()
	r = h.run("", "staff", "list", "--json").must(t, 0)
	if !strings.Contains(r.stderr, "warning:") || !strings.Contains(r.stderr, "line ") {
		t.Errorf("no authorized_keys warning:\n%s", r.stderr)
	}
	if len(nonEmptyLines(r.stdout)) != 2 {
		t.Errorf("stdout is not just the JSON lines:\n%s", r.stdout)
	}
}

func TestStaffLockAndUnlock(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, ka := h.pubKeyFile("alice")
	h.run("", "staff", "add", "alice", "--key", a, "--admin").must(t, 0)
	s := h.openStore()
	for range 5 {
		if _, err := s.VerifyCode(context.Background(), store.Actor{Name: "alice", Channel: store.ChannelSSH},
			ssh.FingerprintSHA256(ka), "000000x", store.PurposeLogin); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	r := h.run("", "staff", "list", "--json").must(t, 0)
	var st staffJSON
	json.Unmarshal([]byte(nonEmptyLines(r.stdout)[0]), &st)
	if st.LockedUntil == nil {
		t.Fatalf("alice is not locked: %s", r.stdout)
	}
	if _, err := time.Parse(time.RFC3339, *st.LockedUntil); err != nil {
		t.Errorf("locked_until %q is not RFC 3339", *st.LockedUntil)
	}
	h.run("", "staff", "unlock", "alice").must(t, 0)
	r = h.run("", "staff", "list", "--json").must(t, 0)
	if !strings.Contains(r.stdout, `"locked_until":null`) {
		t.Errorf("still locked after unlock: %s", r.stdout)
	}
	r = h.run("", "staff", "unlock", "nobody").must(t, 1)
	if !strings.Contains(r.stderr, "nobody") {
		t.Errorf("unlock of an unknown member:\n%s", r.stderr)
	}
}

func TestStaffRoundTrips(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, _ := h.pubKeyFile("alice")
	b1, kb1 := h.pubKeyFile("bob")
	b2, kb2 := h.pubKeyFile("bob2")
	first := h.run("", "staff", "add", "alice", "--key", a, "--admin", "--json").must(t, 0)
	h.run("", "staff", "add", "bob", "--key", b1).must(t, 0)
	h.run("", "staff", "add", "bob", "--key", b2).must(t, 0)

	// remove-key
	h.run("", "staff", "remove-key", "bob", ssh.FingerprintSHA256(kb1)).must(t, 0)
	r := h.run("", "staff", "list", "--json").must(t, 0)
	if strings.Contains(r.stdout, ssh.FingerprintSHA256(kb1)) || !strings.Contains(r.stdout, ssh.FingerprintSHA256(kb2)) {
		t.Errorf("after remove-key:\n%s", r.stdout)
	}
	r = h.run("", "staff", "remove-key", "bob", ssh.FingerprintSHA256(kb1)).must(t, 1)
	if !strings.Contains(r.stderr, "has no key") {
		t.Errorf("remove-key twice:\n%s", r.stderr)
	}
	h.run("", "staff", "remove-key", "nobody", "SHA256:AAAA").must(t, 1)

	// set-role
	h.run("", "staff", "set-role", "bob", "admin").must(t, 0)
	r = h.run("", "staff", "set-role", "bob", "admin").must(t, 0)
	if !strings.Contains(r.stdout, "already admin") {
		t.Errorf("set-role to the same role:\n%s", r.stdout)
	}
	h.run("", "staff", "set-role", "bob", "staff").must(t, 0)
	r = h.run("", "staff", "set-role", "alice", "staff").must(t, 1)
	if !strings.Contains(r.stderr, "last admin") {
		t.Errorf("demoting the last admin:\n%s", r.stderr)
	}
	h.run("", "staff", "set-role", "nobody", "admin").must(t, 1)
	h.run("", "staff", "set-role", "bob", "owner").must(t, 2)

	// reset-totp
	r = h.run("", "staff", "reset-totp", "alice", "--json").must(t, 0)
	var before, after enrollmentJSON
	json.Unmarshal([]byte(first.stdout), &before)
	json.Unmarshal([]byte(r.stdout), &after)
	if after.Name != "alice" || after.Role != "admin" || after.OTPAuthURI == "" || after.OTPAuthURI == before.OTPAuthURI || len(after.RecoveryCodes) != 10 {
		t.Errorf("reset-totp: %+v", after)
	}
	r = h.run("", "staff", "reset-totp", "alice", "--enroll-at-login", "--json").must(t, 0)
	if strings.Contains(r.stdout, "otpauth_uri") || strings.Contains(r.stdout, "recovery_codes") {
		t.Errorf("reset-totp --enroll-at-login printed an enrollment: %s", r.stdout)
	}
	r = h.run("", "staff", "list", "--json").must(t, 0)
	if !strings.Contains(nonEmptyLines(r.stdout)[0], `"totp":"pending"`) {
		t.Errorf("alice should be pending: %s", r.stdout)
	}
	r = h.run("", "staff", "reset-totp", "alice").must(t, 0)
	if !strings.Contains(r.stdout, "otpauth://") || !strings.Contains(r.stdout, "Recovery codes") {
		t.Errorf("reset-totp text:\n%s", r.stdout)
	}
	h.run("", "staff", "reset-totp", "nobody").must(t, 1)

	// remove: the last admin cannot go; others can.
	r = h.run("", "staff", "remove", "alice").must(t, 1)
	if !strings.Contains(r.stderr, "alice is the last admin and cannot be removed") {
		t.Errorf("removing the last admin:\n%s", r.stderr)
	}
	h.run("", "staff", "remove", "bob").must(t, 0)
	h.run("", "staff", "remove", "bob").must(t, 1)
	r = h.run("", "staff", "list", "--json").must(t, 0)
	if len(nonEmptyLines(r.stdout)) != 1 || strings.Contains(r.stdout, "bob") {
		t.Errorf("after remove:\n%s", r.stdout)
	}

	// Every change is in the audit log, by the CLI actor.
	r = h.run("", "audit", "export", "--format", "jsonl").must(t, 0)
	for _, action := range []string{"staff.added", "staff.key_added", "staff.key_removed", "staff.role_changed", "totp.reset", "staff.removed"} {
		if !strings.Contains(r.stdout, `"action":"`+action+`"`) {
			t.Errorf("audit lacks %s", action)
		}
	}
	if !strings.Contains(r.stdout, `"actor":"cli:`) || !strings.Contains(r.stdout, `"channel":"cli"`) {
		t.Errorf("audit rows do not name the CLI actor:\n%s", r.stdout)
	}
}

func TestStaffSetPassword(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	keyPath, _ := h.pubKeyFile("alice")
	h.run("", "staff", "add", "alice", "--key", keyPath, "--enroll-at-login").must(t, 0)
	const pw = "plum harbor velvet 42"
	var outputs []result
	run := func(stdin string, want int, args ...string) result {
		t.Helper()
		r := h.run(stdin, args...).must(t, want)
		outputs = append(outputs, r)
		return r
	}

	// Weak passwords are refused with the rule named (exit 2) and not stored.
	for _, c := range []struct{ pw, rule string }{
		{"kiwi9", "too short"},
		{"123456789012345", "all digits"},
		{"alicealice12", "too similar to the user name"},
		{"password1234", "too common"},
	} {
		r := run(c.pw+"\n", 2, "staff", "set-password", "alice")
		if !strings.Contains(r.stderr, c.rule) {
			t.Errorf("%q: stderr does not name the rule %q:\n%s", c.pw, c.rule, r.stderr)
		}
	}
	// Empty stdin, or an empty first line, is refused with a clear message.
	for _, stdin := range []string{"", "\n", "\r\n" + pw + "\n"} {
		r := run(stdin, 2, "staff", "set-password", "alice")
		if !strings.Contains(r.stderr, "no password on stdin") || !strings.Contains(r.stderr, "never put it on the command line") {
			t.Errorf("stdin %q: stderr:\n%s", stdin, r.stderr)
		}
	}
	// An unknown member is exit 1, before stdin is read.
	r := run(pw+"\n", 1, "staff", "set-password", "zed")
	if !strings.Contains(r.stderr, `no staff member named "zed"`) {
		t.Errorf("unknown member: %s", r.stderr)
	}
	// A password as an argument or a flag is refused without repeating it.
	run("", 2, "staff", "set-password", "alice", "hunter2hunter2hunter2")
	run("", 2, "staff", "set-password", "alice", "-phunter2hunter2hunter2")
	run("", 2, "staff", "set-password", "alice", "--password=hunter2hunter2hunter2")

	s := h.openStore()
	if has, err := s.HasPassword(context.Background(), "alice"); err != nil || has {
		t.Fatalf("a refused password was stored: %v %v", has, err)
	}
	s.Close()

	// The first line is the password (its line ending removed, spaces kept).
	r = run(pw+"\r\nsecond line\n", 0, "staff", "set-password", "alice")
	if !strings.Contains(r.stdout, "Set the web password of alice") {
		t.Errorf("stdout: %s", r.stdout)
	}
	s = h.openStore()
	defer s.Close()
	ctx := context.Background()
	for cand, want := range map[string]bool{pw: true, pw + "\r": false, "second line": false} {
		if ok, err := s.VerifyPassword(ctx, "alice", cand); err != nil || ok != want {
			t.Errorf("VerifyPassword(%q) = %v %v, want %v", cand, ok, err, want)
		}
	}
	rows, err := s.ListAudit(ctx, store.AuditQuery{ActionPrefix: store.ActionPasswordSet})
	if err != nil || len(rows) != 1 || !strings.HasPrefix(rows[0].Actor, "cli:") || rows[0].Target != "alice" || rows[0].Channel != store.ChannelCLI {
		t.Fatalf("audit: %+v %v", rows, err)
	}

	// The password is never printed, and never stored in plain text.
	for _, r := range outputs {
		for _, secret := range []string{pw, "hunter2", "kiwi9", "alicealice12"} {
			if strings.Contains(r.stdout+r.stderr, secret) {
				t.Fatalf("output shows %q:\n%s\n%s", secret, r.stdout, r.stderr)
			}
		}
	}
	if hits := filesContaining(t, h.data, pw); len(hits) > 0 {
		t.Fatalf("the password is in %v", hits)
	}

	// The staff command's help lists it; its own help says stdin.
	r = run("", 0, "staff", "--help")
	if !strings.Contains(r.stdout, "set-password") || !strings.Contains(r.stdout, "web password") {
		t.Errorf("staff --help:\n%s", r.stdout)
	}
	r = run("", 0, "staff", "set-password", "--help")
	if !strings.Contains(r.stdout, "read from stdin") || !strings.Contains(r.stdout, "exit 2") {
		t.Errorf("set-password --help:\n%s", r.stdout)
	}
}
