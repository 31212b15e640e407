package sshdref_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"sync/atomic"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"backroom/server/sshd/sshdbench"
	"backroom/server/sshd/sshdref"
)

// TestLogin logs a member in (key, then code) and sees the fixed line; a
// second login on the same TOTP step and a login under another name are
// refused, a login on the next step is let in.
func TestLogin(t *testing.T) {
	var offset atomic.Int64 // seconds after base
	base := time.Date(2026, 11, 27, 12, 0, 10, 0, time.UTC)
	clock := func() time.Time { return base.Add(time.Duration(offset.Load()) * time.Second) }

	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := gossh.NewSignerFromKey(priv)
	m := &sshdbench.Member{Name: "alice", Signer: signer, Secret: "JBSWY3DPEHPK3PXP"}
	srv := sshdref.New(clock, []sshdref.Member{{Name: m.Name, Key: signer.PublicKey(), Secret: m.Secret}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { _ = srv.Serve(ln) }()
	addr := ln.Addr().String()

	client, err := gossh.Dial("tcp", addr, m.ClientConfig(clock))
	if err != nil {
		t.Fatal(err)
	}
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.RequestPty("xterm-256color", 24, 80, gossh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	if err := sshdbench.ReadUntil(out, sshdref.Line); err != nil {
		t.Fatal(err)
	}
	if n := srv.Active(); n != 1 {
		t.Errorf("Active() = %d with one client, want 1", n)
	}
	client.Close()

	if c, err := gossh.Dial("tcp", addr, m.ClientConfig(clock)); err == nil {
		c.Close()
		t.Error("a second login on the same TOTP step was let in")
	}
	offset.Store(30)
	bob := &sshdbench.Member{Name: "bob", Signer: signer, Secret: m.Secret}
	if c, err := gossh.Dial("tcp", addr, bob.ClientConfig(clock)); err == nil {
		c.Close()
		t.Error("alice's key was let in as bob")
	}
	c, err := gossh.Dial("tcp", addr, m.ClientConfig(clock))
	if err != nil {
		t.Fatalf("a login on the next TOTP step: %v", err)
	}
	c.Close()

	deadline := time.Now().Add(5 * time.Second)
	for srv.Active() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := srv.Active(); n != 0 {
		t.Errorf("Active() = %d after every client closed, want 0", n)
	}
}
