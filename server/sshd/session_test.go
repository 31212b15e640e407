package sshd

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/ssh"
	"github.com/charmbracelet/wish"
	gossh "golang.org/x/crypto/ssh"

	"backroom/store"
)

func loggedIn(t *testing.T, e *env, m member) *gossh.Client {
	t.Helper()
	r := e.login(m, e.code(m, 0))
	if r.err != nil {
		t.Fatalf("login: %v", r.err)
	}
	return r.client
}

func TestExecRefused(t *testing.T) {
	e := newEnv(t)
	alice := e.addStaff("alice", true)
	c := loggedIn(t, e, alice)
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	sess.Stderr = &stderr
	err = sess.Run("cat /etc/passwd")
	var exit *gossh.ExitError
	if err == nil || !errorAs(err, &exit) || exit.ExitStatus() != 1 {
		t.Fatalf("exec: err = %v, want exit status 1", err)
	}
	if !strings.Contains(stderr.String(), "commands are not available") {
		t.Fatalf("no one-line reason: %q", stderr.String())
	}
}

func TestShellWithoutPTYRefused(t *testing.T) {
	e := newEnv(t)
	alice := e.addStaff("alice", true)
	c := loggedIn(t, e, alice)
	sess, _ := c.NewSession()
	var stderr bytes.Buffer
	sess.Stderr = &stderr
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	err := sess.Wait()
	if err == nil || !strings.Contains(stderr.String(), "needs a terminal") {
		t.Fatalf("shell without a pty: err=%v stderr=%q", err, stderr.String())
	}
}

func TestSFTPRefused(t *testing.T) {
	e := newEnv(t)
	alice := e.addStaff("alice", true)
	c := loggedIn(t, e, alice)
	sess, _ := c.NewSession()
	stderr, _ := sess.StderrPipe()
	if err := sess.RequestSubsystem("sftp"); err != nil {
		t.Fatalf("request: %v", err)
	}
	b, _ := io.ReadAll(stderr)
	if !strings.Contains(string(b), `subsystem "sftp" refused`) {
		t.Fatalf("sftp: stderr=%q", b)
	}
}

func TestForwardingRefused(t *testing.T) {
	e := newEnv(t)
	alice := e.addStaff("alice", true)
	c := loggedIn(t, e, alice)
	if _, err := c.Dial("tcp", "127.0.0.1:22"); err == nil || !strings.Contains(err.Error(), "port forwarding is disabled") {
		t.Fatalf("local forwarding: %v", err)
	}
	if _, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
		t.Fatal("remote forwarding was accepted")
	}
	sess, _ := c.NewSession()
	defer sess.Close()
	ok, err := sess.SendRequest("auth-agent-req@openssh.com", true, nil)
	if err != nil || ok {
		t.Fatalf("agent forwarding: ok=%v err=%v", ok, err)
	}
	ok, _ = sess.SendRequest("x11-req", true, gossh.Marshal(struct {
		Single        bool
		Proto, Cookie string
		Screen        uint32
	}{false, "MIT-MAGIC-COOKIE-1", "00", 0}))
	if ok {
		t.Fatal("X11 forwarding was accepted")
	}
}

func TestUnansweredTerminalGetsFirstFrame(t *testing.T) {
	e := newEnv(t)
	alice := e.addStaff("alice", true)
	c := loggedIn(t, e, alice)
	start := time.Now()
	// The Go client never answers terminal queries.
	_, out, _ := console(t, c, 80, 24)
	out.waitFor(t, "Backroom", 3*time.Second)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("first frame after %s", d)
	}
}

func TestIdleWarningAndEnd(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.IdleTimeout = 1500 * time.Millisecond; c.IdleWarning = time.Second })
	alice := e.addStaff("alice", true)
	c := loggedIn(t, e, alice)
	sess, out, _ := console(t, c, 80, 24)
	out.waitFor(t, "Backroom", 3*time.Second)
	out.waitFor(t, "press any key to stay", 3*time.Second)
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("idle session was not ended")
	}
	eventually(t, 2*time.Second, "session.end audited", func() bool {
		ends := e.audit(store.ActionSessionEnd)
		return len(ends) == 1 && strings.Contains(ends[0].Detail, `"reason":"idle"`)
	})
}

func TestInputKeepsSessionAlive(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.IdleTimeout = 1200 * time.Millisecond; c.IdleWarning = 400 * time.Millisecond })
	alice := e.addStaff("alice", true)
	c := loggedIn(t, e, alice)
	sess, out, in := console(t, c, 80, 24)
	out.waitFor(t, "Backroom", 3*time.Second)
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	for range 8 { // 2.4 s of activity, twice the timeout
		time.Sleep(300 * time.Millisecond)
		if _, err := in.Write([]byte("j")); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-done:
		t.Fatal("an active session was ended as idle")
	default:
	}
}

func TestRemovedKeyEndsSession(t *testing.T) {
	e := newEnv(t)
	e.addStaff("admin", true)
	bob := e.addStaff("bob", false)
	c := loggedIn(t, e, bob)
	sess, out, _ := console(t, c, 80, 24)
	out.waitFor(t, "Backroom", 3*time.Second)
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()

	// Remove bob's line by hand, as an admin editing the file would.
	path := filepath.Join(e.dir, store.AuthorizedKeysFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, l := range strings.SplitAfter(string(data), "\n") {
		if !strings.Contains(l, "BACKROOM_USER=bob") {
			kept = append(kept, l)
		}
	}
	if err := os.WriteFile(path, []byte(strings.Join(kept, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("session of a removed key still open after 3 s")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("session ended %s after the key was removed, want ≤ 2 s", d)
	}
	if !strings.Contains(stripANSI(out.String()), "key was removed") {
		t.Errorf("no goodbye line for the removed key: %q", stripANSI(out.String()))
	}
	changed := e.audit(store.ActionAuthorizedKeysChanged)
	if len(changed) != 1 || !strings.Contains(changed[0].Detail, bob.fp) {
		t.Fatalf("hand edit not audited: %+v", changed)
	}
}

func TestAdminEndsSession(t *testing.T) {
	e := newEnv(t)
	admin := e.addStaff("admin", true)
	bob := e.addStaff("bob", false)
	c := loggedIn(t, e, bob)
	sess, out, _ := console(t, c, 80, 24)
	out.waitFor(t, "Backroom", 3*time.Second)
	var id string
	eventually(t, 2*time.Second, "the session to be listed", func() bool {
		for _, s := range e.srv.Sessions().List() {
			if s.User == "bob" && s.Fingerprint == bob.fp {
				id = s.ID
			}
		}
		return id != ""
	})
	staffActor := store.Actor{Name: "bob", Role: store.RoleStaff, Channel: store.ChannelSSH}
	if err := e.srv.Sessions().End(context.Background(), staffActor, id); store.ErrorCode(err) != store.CodeForbidden {
		t.Fatalf("a non-admin ended a session: %v", err)
	}
	adminActor := store.Actor{Name: admin.name, Role: store.RoleAdmin, Channel: store.ChannelSSH}
	if err := e.srv.Sessions().End(context.Background(), adminActor, id); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("ended session still open")
	}
	if got := e.audit(store.ActionSessionTerminated); len(got) != 1 || got[0].Target != "bob" || got[0].Actor != "admin" {
		t.Fatalf("session.terminated audit = %+v", got)
	}
}

func TestShutdownSaysGoodbye(t *testing.T) {
	e := newEnv(t)
	alice := e.addStaff("alice", true)
	c := loggedIn(t, e, alice)
	sess, out, _ := console(t, c, 80, 24)
	out.waitFor(t, "Backroom", 3*time.Second)
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	go e.stop()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("session survived the shutdown")
	}
	if !strings.Contains(stripANSI(out.String()), "shutting down") {
		t.Fatalf("no goodbye line: %q", stripANSI(out.String()))
	}
}

// TestIdentityBackstop runs the middleware behind a server that lets
// anybody in (as a misconfiguration would): the session is still refused.
func TestIdentityBackstop(t *testing.T) {
	e := newEnv(t)
	srv, err := wish.NewServer(
		func(s *ssh.Server) error { s.AddHostKey(newSigner(t)); return nil },
		wish.WithMiddleware(e.srv.console, e.srv.channelPolicy, e.srv.requireIdentity),
	)
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	c, err := gossh.Dial("tcp", ln.Addr().String(), &gossh.ClientConfig{User: "alice", HostKeyCallback: gossh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatalf("the open server refused the connection: %v", err)
	}
	defer c.Close()
	sess, _ := c.NewSession()
	var stdout, stderr bytes.Buffer
	sess.Stdout, sess.Stderr = &stdout, &stderr
	_ = sess.RequestPty("xterm", 24, 80, gossh.TerminalModes{})
	_ = sess.Shell()
	err = sess.Wait()
	if err == nil || !strings.Contains(stderr.String(), "no staff identity") {
		t.Fatalf("session without identity: err=%v stderr=%q", err, stderr.String())
	}
	if strings.Contains(stdout.String(), "Backroom") {
		t.Fatal("the console was shown without an identity")
	}
}

func errorAs(err error, target any) bool {
	return err != nil && errorsAs(err, target)
}
