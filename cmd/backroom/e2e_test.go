package main

// End-to-end tests: the built binary (`backroom serve` and the CLI, run as
// separate processes) driven by the real OpenSSH client, non-interactively
// through SSH_ASKPASS or interactively inside a private tmux server.

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"backroom/store"
)

// e2eEnv is one data directory and the programs run against it.
type e2eEnv struct {
	t    *testing.T
	root string // temp dir: keys, known_hosts, askpass, tmux socket
	data string // the data directory (--data)
	home string // HOME for every program we run
}

func newE2E(t *testing.T) *e2eEnv {
	t.Helper()
	root := t.TempDir()
	e := &e2eEnv{t: t, root: root, data: filepath.Join(root, "data"), home: filepath.Join(root, "home")}
	if err := os.MkdirAll(e.home, 0o700); err != nil {
		t.Fatal(err)
	}
	return e
}

// baseEnv is a minimal environment: nothing of the user's (agent, tmux,
// BACKROOM_* settings) leaks into the programs under test.
func (e *e2eEnv) baseEnv(extra ...string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.home, "LANG=C.UTF-8"}, extra...)
}

// cli runs the backroom binary with --data and stdin, and waits for it.
func (e *e2eEnv) cli(stdin string, args ...string) result {
	e.t.Helper()
	cmd := exec.Command(backroomBinary(e.t), append(args, "--data", e.data)...)
	cmd.Env = e.baseEnv()
	cmd.Dir = e.root
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			e.t.Fatalf("running backroom %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// e2eUser is a staff member added with the CLI: their private key file and
// TOTP secret.
type e2eUser struct {
	name, key, fingerprint, secret string
}

// addStaff writes a fresh ed25519 key pair (OpenSSH private key 0600 and
// .pub) and runs `backroom staff add NAME --key NAME.pub [--admin] --json`.
func (e *e2eEnv) addStaff(name string, admin bool) e2eUser {
	e.t.Helper()
	_, line, priv := newEd25519(e.t, name+"@e2e")
	keyPath := filepath.Join(e.root, name+"_key")
	if err := os.WriteFile(keyPath, priv, 0o600); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(keyPath+".pub", []byte(line), 0o644); err != nil {
		e.t.Fatal(err)
	}
	args := []string{"staff", "add", name, "--key", keyPath + ".pub", "--json"}
	if admin {
		args = append(args, "--admin")
	}
	r := e.cli("", args...).must(e.t, 0)
	var out enrollmentJSON
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		e.t.Fatalf("staff add --json: %v\n%s", err, r.stdout)
	}
	u, err := url.Parse(out.OTPAuthURI)
	if err != nil || u.Scheme != "otpauth" || u.Query().Get("secret") == "" {
		e.t.Fatalf("staff add --json: otpauth_uri %q has no secret (%v)", out.OTPAuthURI, err)
	}
	if !strings.HasPrefix(out.Fingerprint, "SHA256:") {
		e.t.Fatalf("staff add --json: fingerprint %q", out.Fingerprint)
	}
	return e2eUser{name: name, key: keyPath, fingerprint: out.Fingerprint, secret: u.Query().Get("secret")}
}

// code is u's TOTP code at t.
func (u e2eUser) code(t *testing.T, at time.Time) string {
	t.Helper()
	c, err := store.CodeFor(u.secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sshArgs is the OpenSSH command line for u on p, with nothing taken from
// the user's configuration, agent or known hosts.
func (e *e2eEnv) sshArgs(p *proc, u e2eUser, opts ...string) []string {
	e.t.Helper()
	host, port, err := net.SplitHostPort(p.SSHAddr)
	if err != nil {
		e.t.Fatal(err)
	}
	args := []string{"-F", "/dev/null", "-p", port, "-i", u.key,
		"-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none",
		"-o", "UserKnownHostsFile=" + filepath.Join(e.root, "known_hosts"),
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=accept-new",
		"-o", "ConnectTimeout=10",
	}
	args = append(args, opts...)
	return append(args, u.name+"@"+host)
}

// askpass writes a script for SSH_ASKPASS that prints the contents of a
// file, and returns both paths. The code is written to the file just
// before ssh runs, never put on a command line.
func (e *e2eEnv) askpass() (script, codeFile string) {
	e.t.Helper()
	codeFile = filepath.Join(e.root, "code")
	script = filepath.Join(e.root, "askpass.sh")
	body := "#!/bin/sh\ncat '" + codeFile + "'\n"
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		e.t.Fatal(err)
	}
	return script, codeFile
}

// runSSH runs `setsid -w ssh ARGS` without a terminal, answering the code
// prompt through SSH_ASKPASS with code (if any), and returns its exit code
// and output.
func (e *e2eEnv) runSSH(code string, args ...string) result {
	e.t.Helper()
	script, codeFile := e.askpass()
	if err := os.WriteFile(codeFile, []byte(code+"\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	defer os.Remove(codeFile)
	cmd := exec.Command("setsid", append([]string{"-w", "ssh"}, args...)...)
	cmd.Env = e.baseEnv("SSH_ASKPASS="+script, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0")
	cmd.Stdin = nil // /dev/null
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		e.t.Fatalf("ssh did not finish in 20 s\nstderr:\n%s", errb.String())
	}
	codeOut := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			e.t.Fatalf("ssh: %v", err)
		}
		codeOut = ee.ExitCode()
	}
	return result{code: codeOut, stdout: out.String(), stderr: errb.String()}
}

// auditRow is one line of `audit export --format jsonl`.
type auditRow struct {
	Actor     string         `json:"actor"`
	Action    string         `json:"action"`
	Target    string         `json:"target"`
	Detail    map[string]any `json:"detail"`
	Channel   string         `json:"channel"`
	SessionID string         `json:"session_id"`
}

// exportAudit runs `backroom audit export --format jsonl` and parses it.
func (e *e2eEnv) exportAudit() ([]auditRow, string) {
	e.t.Helper()
	r := e.cli("", "audit", "export", "--format", "jsonl").must(e.t, 0)
	var rows []auditRow
	for _, l := range nonEmptyLines(r.stdout) {
		var row auditRow
		if err := json.Unmarshal([]byte(l), &row); err != nil {
			e.t.Fatalf("audit export: line %q: %v", l, err)
		}
		rows = append(rows, row)
	}
	return rows, r.stdout
}

// findRow returns the first row with action (and, if given, actor).
func findRow(rows []auditRow, action, actor string) (auditRow, bool) {
	for _, r := range rows {
		if r.Action == action && (actor == "" || r.Actor == actor) {
			return r, true
		}
	}
	return auditRow{}, false
}

// --- tmux --------------------------------------------------------------------

// tmuxPane is one session of a private tmux server (its own socket in a temp
// dir) running a command in a 100x30 pane that stays after the command
// exits, so its last screen and exit status can be read.
type tmuxPane struct {
	t    *testing.T
	sock string
	env  []string
	save string // where the last capture is written
}

// startTmux runs argv in a new detached tmux session.
func (e *e2eEnv) startTmux(argv ...string) *tmuxPane {
	e.t.Helper()
	// A short socket path: unix socket paths are limited to ~107 bytes.
	sockDir, err := os.MkdirTemp("", "brtmux")
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { os.RemoveAll(sockDir) })
	conf := filepath.Join(e.root, "tmux.conf")
	// remain-on-exit keeps the pane (its text and exit status) after ssh ends.
	if err := os.WriteFile(conf, []byte("set -g remain-on-exit on\nset -g history-limit 1000\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	tp := &tmuxPane{t: e.t, sock: filepath.Join(sockDir, "s"), env: e.baseEnv("TERM=xterm-256color"),
		save: filepath.Join(e.root, "console.txt")}
	args := append([]string{"-f", conf, "new-session", "-d", "-s", "e2e", "-x", "100", "-y", "30", "--"}, argv...)
	if out, err := tp.cmd(args...).CombinedOutput(); err != nil {
		e.t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	e.t.Cleanup(func() {
		if e.t.Failed() {
			text := tp.capture()
			_ = os.WriteFile(tp.save, []byte(text), 0o600)
			e.t.Logf("last console screen (also in %s):\n%s", tp.save, text)
		}
		_ = tp.cmd("kill-server").Run()
	})
	return tp
}

func (tp *tmuxPane) cmd(args ...string) *exec.Cmd {
	c := exec.Command("tmux", append([]string{"-S", tp.sock}, args...)...)
	c.Env = tp.env
	return c
}

// capture is the pane's visible text (no escape sequences).
func (tp *tmuxPane) capture() string {
	out, err := tp.cmd("capture-pane", "-p", "-t", "e2e").Output()
	if err != nil {
		return fmt.Sprintf("(capture-pane: %v)", err)
	}
	return string(out)
}

// send types keys: literal text, or a tmux key name such as Enter.
func (tp *tmuxPane) sendText(text string) {
	tp.t.Helper()
	if out, err := tp.cmd("send-keys", "-t", "e2e", "-l", text).CombinedOutput(); err != nil {
		tp.t.Fatalf("tmux send-keys: %v\n%s", err, out)
	}
}

func (tp *tmuxPane) sendKey(name string) {
	tp.t.Helper()
	if out, err := tp.cmd("send-keys", "-t", "e2e", name).CombinedOutput(); err != nil {
		tp.t.Fatalf("tmux send-keys %s: %v\n%s", name, err, out)
	}
}

// waitFor polls the pane until ok holds, and fails with the screen after
// limit.
func (tp *tmuxPane) waitFor(what string, limit time.Duration, ok func(screen string) bool) string {
	tp.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		s := tp.capture()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			tp.t.Fatalf("waited %s for %s; screen:\n%s", limit, what, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitText waits until the pane shows every one of texts.
func (tp *tmuxPane) waitText(limit time.Duration, texts ...string) string {
	tp.t.Helper()
	return tp.waitFor(fmt.Sprintf("%q", texts), limit, func(s string) bool {
		for _, x := range texts {
			if !strings.Contains(s, x) {
				return false
			}
		}
		return true
	})
}

// dead reports whether the pane's command has exited, and its status.
func (tp *tmuxPane) dead() (bool, string) {
	out, err := tp.cmd("display-message", "-p", "-t", "e2e", "#{pane_dead} #{pane_dead_status}").Output()
	if err != nil {
		return true, "session gone"
	}
	f := strings.Fields(string(out))
	if len(f) > 0 && f[0] == "1" {
		return true, strings.Join(f[1:], " ")
	}
	return false, ""
}

// waitDead waits until the pane's command has exited and returns its exit
// status.
func (tp *tmuxPane) waitDead(limit time.Duration) string {
	tp.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if d, st := tp.dead(); d {
			return st
		}
		if time.Now().After(deadline) {
			tp.t.Fatalf("ssh still running after %s; screen:\n%s", limit, tp.capture())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// consoleLogin starts `ssh -tt` for u in tmux, answers the code prompt with
// code and waits for the console's header.
func (e *e2eEnv) consoleLogin(p *proc, u e2eUser, role, code string) *tmuxPane {
	e.t.Helper()
	argv := append([]string{"ssh", "-tt"}, e.sshArgs(p, u)...)
	tp := e.startTmux(argv...)
	tp.waitText(15*time.Second, "Verification code:")
	tp.sendText(code)
	tp.sendKey("Enter")
	tp.waitFor("the console header", 15*time.Second, func(s string) bool {
		h := firstLine(s)
		return strings.Contains(h, "Backroom") && strings.Contains(h, u.name) &&
			strings.Contains(h, "("+role+")") && badgeRE("NONE|TEST|LIVE").MatchString(h)
	})
	return tp
}

// badgeRE matches the header's Stripe badge (padded, possibly with colour
// turned into spaces) for the alternatives in badges.
func badgeRE(badges string) *regexp.Regexp {
	return regexp.MustCompile(`Stripe\s+(` + badges + `)\b`)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// testStripeKey is a fresh, valid-looking test secret key.
func testStripeKey(t *testing.T) string {
	t.Helper()
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return "sk_test_" + string(b)
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// --- the tests ---------------------------------------------------------------

// TestE2ELoginPartialSuccess: the stock OpenSSH client sees the public key
// accepted with partial success, then logs in with keyboard-interactive
// (the code, from SSH_ASKPASS); the exec request is then refused.
func TestE2ELoginPartialSuccess(t *testing.T) {
	requireTool(t, "ssh")
	requireTool(t, "setsid")
	e := newE2E(t)
	alice := e.addStaff("alice", true)
	p := startBackroom(t, e.data)

	r := e.runSSH(alice.code(t, time.Now()), append([]string{"-v",
		"-o", "BatchMode=no",
		"-o", "PreferredAuthentications=publickey,keyboard-interactive",
	}, append(e.sshArgs(p, alice), "true")...)...)
	_, port, _ := net.SplitHostPort(p.SSHAddr)
	if !strings.Contains(r.stderr, `Authenticated using "publickey" with partial success`) {
		t.Errorf("ssh -v does not show publickey with partial success\nstderr:\n%s", r.stderr)
	}
	ki := regexp.MustCompile(`Authenticated to 127\.0\.0\.1 \(\[127\.0\.0\.1\]:` + port + `\) using "keyboard-interactive"`)
	if !ki.MatchString(r.stderr) {
		t.Errorf("ssh -v does not show keyboard-interactive as the final method\nstderr:\n%s", r.stderr)
	}
	if i, j := strings.Index(r.stderr, "partial success"), strings.Index(r.stderr, `using "keyboard-interactive"`); i < 0 || j < i {
		t.Errorf("keyboard-interactive did not follow the partial success")
	}
	if !strings.Contains(r.stderr, "backroom: commands are not available") {
		t.Errorf("no exec refusal on stderr (exit %d)\nstderr:\n%s", r.code, r.stderr)
	}
	if r.code == 0 {
		t.Errorf("ssh ... true exited 0: the command was not refused")
	}
	if strings.Contains(r.stderr, "Permission denied") {
		t.Errorf("login was refused\nstderr:\n%s", r.stderr)
	}

	rows, raw := e.exportAudit()
	if row, ok := findRow(rows, store.ActionLoginSuccess, "alice"); !ok || row.Detail["fingerprint"] != alice.fingerprint {
		t.Errorf("no login.success for alice with %s in the audit log:\n%s", alice.fingerprint, raw)
	}
	if t.Failed() {
		t.Logf("server log:\n%s", p.Log())
	}
}

// TestE2EBatchModeGetsBanner: a client that cannot answer the code prompt
// is told why, through the auth banner, not only "Permission denied".
func TestE2EBatchModeGetsBanner(t *testing.T) {
	requireTool(t, "ssh")
	requireTool(t, "setsid")
	e := newE2E(t)
	alice := e.addStaff("alice", true)
	p := startBackroom(t, e.data)

	r := e.runSSH("", append([]string{"-o", "BatchMode=yes"}, e.sshArgs(p, alice)...)...)
	if r.code != 255 {
		t.Errorf("ssh in BatchMode exited %d, want 255\nstderr:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "A verification code from your authenticator app is required") {
		t.Errorf("BatchMode client did not get Backroom's code-required banner\nstderr:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "Permission denied") {
		t.Errorf("BatchMode client was not refused\nstderr:\n%s", r.stderr)
	}
}

// TestE2EConsoleUpdatesStripeKey: log in on the console with key + code,
// update the Stripe key (step-up code), quit, then check the audit log,
// its chain and the key status from the CLI, and that the plaintext key is
// nowhere in the data directory or the server's log.
func TestE2EConsoleUpdatesStripeKey(t *testing.T) {
	requireTool(t, "ssh")
	requireTool(t, "tmux")
	e := newE2E(t)
	alice := e.addStaff("alice", true)
	p := startBackroom(t, e.data)

	loginAt := time.Now()
	tp := e.consoleLogin(p, alice, "admin", alice.code(t, loginAt))
	if h := firstLine(tp.capture()); !badgeRE("NONE").MatchString(h) {
		t.Fatalf("header before the update: %q, want badge NONE", h)
	}
	tp.waitText(5*time.Second, "No Stripe key is set.", "Press u to update the key.")

	key := testStripeKey(t)
	masked := "sk_test_..." + key[len(key)-4:]
	tp.sendText("u")
	tp.waitText(5*time.Second, "Paste a secret key", "Secret key")
	tp.sendText(key)
	// The input is masked: the key never shows on the screen.
	s := tp.waitText(5*time.Second, strings.Repeat("*", 20))
	if strings.Contains(s, key[8:20]) {
		t.Fatalf("the key shows on the screen while typed:\n%s", s)
	}
	tp.sendKey("Enter")
	tp.waitText(5*time.Second, "Verification code", masked)
	// Step-up: the login used the step of loginAt; the next step is fresh.
	tp.sendText(alice.code(t, loginAt.Add(30*time.Second)))
	tp.sendKey("Enter")
	s = tp.waitText(10*time.Second, "Stripe key updated: "+masked+" (TEST)")
	if h := firstLine(s); !badgeRE("TEST").MatchString(h) {
		// The header reloads after the status line: wait for it.
		tp.waitFor("the header's TEST badge", 5*time.Second, func(s string) bool { return badgeRE("TEST").MatchString(firstLine(s)) })
	}
	s = tp.waitText(5*time.Second, "database (encrypted)", masked, "Set by")
	if strings.Contains(s, key) {
		t.Fatalf("the key shows on the screen:\n%s", s)
	}
	if err := os.WriteFile(tp.save, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}

	tp.sendText("q")
	tp.waitDead(5 * time.Second)
	tp.waitText(2*time.Second, "Goodbye from Backroom.")

	// The audit log, from the CLI, while the server runs.
	rows, raw := e.exportAudit()
	for _, action := range []string{store.ActionLoginSuccess, store.ActionSessionStart, store.ActionKeyUpdated, store.ActionSessionEnd} {
		row, ok := findRow(rows, action, "alice")
		if !ok {
			t.Errorf("no %s by alice in the audit log", action)
			continue
		}
		if row.Channel != "ssh" {
			t.Errorf("%s: channel %q, want ssh", action, row.Channel)
		}
	}
	if row, ok := findRow(rows, store.ActionKeyUpdated, "alice"); ok {
		if row.Detail["new"] != masked || row.Detail["mode"] != "test" || row.Detail["old"] != nil {
			t.Errorf("key.updated detail = %v, want new %q, mode test, old null", row.Detail, masked)
		}
	}
	if row, ok := findRow(rows, store.ActionSessionEnd, "alice"); ok && row.Detail["reason"] != "quit" {
		t.Errorf("session.end reason %v, want quit", row.Detail["reason"])
	}
	if strings.Contains(raw, key) || strings.Contains(raw, key[8:]) {
		t.Errorf("the plaintext key is in the audit export")
	}
	if t.Failed() {
		t.Logf("audit export:\n%s", raw)
	}

	e.cli("", "audit", "verify").must(t, 0)

	r := e.cli("", "key", "status", "--json").must(t, 0)
	var ks keyStatusJSON
	if err := json.Unmarshal([]byte(r.stdout), &ks); err != nil {
		t.Fatalf("key status --json: %v\n%s", err, r.stdout)
	}
	if ks.Source != store.SourceDatabase || ks.Mode == nil || *ks.Mode != "test" ||
		ks.Masked == nil || *ks.Masked != masked || ks.SetBy == nil || !strings.Contains(*ks.SetBy, "alice") {
		t.Errorf("key status --json = %s, want source database, mode test, masked %s, set by alice", r.stdout, masked)
	}

	// The plaintext key is in no file of the data dir (the WAL included, as
	// the server still runs) and in no log line; nor after a clean stop.
	noPlaintext := func(when string) {
		t.Helper()
		for _, needle := range []string{key, key[8:]} {
			if hits := filesContaining(t, e.data, needle); len(hits) > 0 {
				t.Errorf("%s: the plaintext key is in %v", when, hits)
			}
		}
		if strings.Contains(p.Log(), key[8:]) {
			t.Errorf("%s: the plaintext key is in the server's log", when)
		}
	}
	if _, err := os.Stat(filepath.Join(e.data, "backroom.db-wal")); err != nil {
		t.Logf("no WAL file while the server runs: %v", err)
	}
	noPlaintext("server running")
	p.Stop(t)
	noPlaintext("server stopped")
}

// TestE2EHandEditEndsSession: removing a member's line from authorized_keys
// by hand ends their live console within seconds, with a message, and is
// audited with the removed fingerprint.
func TestE2EHandEditEndsSession(t *testing.T) {
	requireTool(t, "ssh")
	requireTool(t, "tmux")
	e := newE2E(t)
	e.addStaff("alice", true)
	bob := e.addStaff("bob", false)
	p := startBackroom(t, e.data)

	tp := e.consoleLogin(p, bob, "staff", bob.code(t, time.Now()))

	path := filepath.Join(e.data, store.AuthorizedKeysFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	removed := 0
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if strings.Contains(l, `BACKROOM_USER=bob"`) {
			removed++
			continue
		}
		kept = append(kept, l)
	}
	if removed != 1 {
		t.Fatalf("found %d lines of bob in authorized_keys:\n%s", removed, b)
	}
	edited := time.Now()
	if err := os.WriteFile(path, []byte(strings.Join(kept, "")), 0o600); err != nil {
		t.Fatal(err)
	}

	tp.waitDead(3 * time.Second)
	took := time.Since(edited)
	tp.waitText(time.Second, "Your key was removed from Backroom's authorized_keys; this session has ended.")
	t.Logf("session ended %s after the hand edit", took.Round(time.Millisecond))

	rows, raw := e.exportAudit()
	row, ok := findRow(rows, store.ActionAuthorizedKeysChanged, "")
	if !ok {
		t.Fatalf("no authorized_keys.changed in the audit log:\n%s", raw)
	}
	rm, _ := json.Marshal(row.Detail["removed"])
	if !strings.Contains(string(rm), `"fingerprint":"`+bob.fingerprint+`"`) {
		t.Errorf("authorized_keys.changed removed = %s, want bob's %s", rm, bob.fingerprint)
	}
	if end, ok := findRow(rows, store.ActionSessionEnd, "bob"); !ok || end.Detail["reason"] != "key removed" {
		t.Errorf("session.end of bob: %v (found %v), want reason \"key removed\"", end.Detail, ok)
	}
	if p.exited() {
		t.Errorf("the server exited")
	}
}

// TestE2EShutdown: SIGTERM with a console open says goodbye to it and the
// server exits 0 within seconds.
func TestE2EShutdown(t *testing.T) {
	requireTool(t, "ssh")
	requireTool(t, "tmux")
	e := newE2E(t)
	alice := e.addStaff("alice", true)
	p := startBackroom(t, e.data)

	tp := e.consoleLogin(p, alice, "admin", alice.code(t, time.Now()))

	start := time.Now()
	p.Stop(t)
	took := time.Since(start)
	if p.exitErr != nil {
		t.Errorf("backroom serve exited with %v on SIGTERM, want status 0\nlog:\n%s", p.exitErr, p.Log())
	}
	if took > 5*time.Second {
		t.Errorf("backroom serve took %s to stop, want a few seconds at most", took)
	}
	tp.waitDead(5 * time.Second)
	tp.waitText(time.Second, "Backroom is shutting down. Goodbye.")
	if !strings.Contains(p.Log(), "stopped") {
		t.Errorf("no clean stop in the log:\n%s", p.Log())
	}
	t.Logf("stopped in %s", took.Round(time.Millisecond))
}
