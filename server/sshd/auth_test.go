package sshd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"backroom/store"
)

func TestLoginKeyThenCode(t *testing.T) {
	e := newEnv(t)
	alice := e.addStaff("alice", true)
	a := &answer{codes: []string{e.code(alice, 0)}}
	r := e.dial("alice", gossh.PublicKeys(alice.signer), gossh.KeyboardInteractive(a.callback))
	if r.err != nil {
		t.Fatalf("login failed: %v", r.err)
	}
	if len(a.prompts) != 1 || a.prompts[0] != "Verification code: " {
		t.Fatalf("prompts = %q, want one \"Verification code: \"", a.prompts)
	}
	if !strings.Contains(r.bannerText(), "verification code") {
		t.Errorf("no banner telling a code is required: %q", r.bannerText())
	}
	_, out, _ := console(t, r.client, 80, 24)
	out.waitFor(t, "Backroom", 5*time.Second)
	out.waitFor(t, "alice", time.Second)

	ok := e.audit(store.ActionLoginSuccess)
	if len(ok) != 1 || !strings.Contains(ok[0].Detail, alice.fp) || !strings.HasPrefix(ok[0].RemoteAddr, "127.0.0.1:") {
		t.Fatalf("login.success audit = %+v", ok)
	}
	eventually(t, 2*time.Second, "session.start audited", func() bool { return len(e.audit(store.ActionSessionStart)) == 1 })
	if got := e.audit(store.ActionSessionStart)[0]; got.SessionID == "" || got.SessionID != ok[0].SessionID {
		t.Errorf("session.start session id %q, login %q: want the same non-empty id", got.SessionID, ok[0].SessionID)
	}
}

func TestNoneMethodRefused(t *testing.T) {
	e := newEnv(t)
	e.addStaff("alice", true)
	r := e.dial("alice") // no methods: the client only tries "none"
	if r.err == nil {
		t.Fatal(`the "none" method logged in`)
	}
	if !strings.Contains(r.err.Error(), "[none]") {
		t.Errorf("error %q: want only none attempted", r.err)
	}
}

func TestPasswordRefused(t *testing.T) {
	e := newEnv(t)
	alice := e.addStaff("alice", true)
	r := e.dial("alice", gossh.Password(e.code(alice, 0)))
	if r.err == nil {
		t.Fatal("password auth logged in")
	}
}

func TestKeyOnlyRefusedWithBanner(t *testing.T) {
	e := newEnv(t)
	alice := e.addStaff("alice", true)
	r := e.dial("alice", gossh.PublicKeys(alice.signer))
	if r.err == nil {
		t.Fatal("key alone logged in")
	}
	if !strings.Contains(r.bannerText(), "verification code from your authenticator app is required") {
		t.Fatalf("a client without keyboard-interactive got no explanation; banners: %q", r.bannerText())
	}
}

func TestCodeOnlyRefused(t *testing.T) {
	e := newEnv(t)
	alice := e.addStaff("alice", true)
	a := &answer{codes: []string{e.code(alice, 0)}}
	r := e.dial("alice", gossh.KeyboardInteractive(a.callback))
	if r.err == nil {
		t.Fatal("code alone logged in")
	}
	if len(a.prompts) != 0 {
		t.Fatalf("asked for a code before a key: %q", a.prompts)
	}
}

// unsignedSigner offers a public key it cannot sign with.
type unsignedSigner struct{ pub gossh.PublicKey }

func (u unsignedSigner) PublicKey() gossh.PublicKey { return u.pub }
func (u unsignedSigner) Sign(io.Reader, []byte) (*gossh.Signature, error) {
	return nil, errors.New("no private key")
}

func TestOfferedButUnsignedKeyGrantsNothing(t *testing.T) {
	e := newEnv(t)
	alice := e.addStaff("alice", true)
	mallory := newSigner(t)
	a := &answer{codes: []string{e.code(alice, 0), e.code(alice, 0)}}
	// Offer alice's key (the server accepts the offer), never sign with it,
	// sign with an unknown key instead, then try a code.
	r := e.dial("alice",
		gossh.PublicKeys(unsignedSigner{alice.signer.PublicKey()}, mallory),
		gossh.KeyboardInteractive(a.callback))
	if r.err == nil {
		t.Fatal("an offered-but-unsigned key led to a login")
	}
	if len(a.prompts) != 0 {
		t.Fatalf("a code was asked for without a signed key: %q", a.prompts)
	}
	if n := len(e.audit(store.ActionLoginSuccess)); n != 0 {
		t.Fatalf("%d login.success rows", n)
	}
}

func TestSeveralKeysOffered(t *testing.T) {
	e := newEnv(t)
	alice := e.addStaff("alice", true)
	bob := e.addStaff("bob", false)
	a := &answer{codes: []string{e.code(alice, 0)}}
	r := e.dial("alice", gossh.PublicKeys(newSigner(t), bob.signer, alice.signer), gossh.KeyboardInteractive(a.callback))
	if r.err != nil {
		t.Fatalf("login with the right key third: %v", r.err)
	}
	fails := e.audit(store.ActionLoginFailure)
	reasons := ""
	for _, f := range fails {
		reasons += f.Detail
	}
	if !strings.Contains(reasons, "unknown key") || !strings.Contains(reasons, "key belongs to another staff member") || !strings.Contains(reasons, bob.fp) {
		t.Errorf("refused offers not audited with reasons and fingerprints: %s", reasons)
	}
}

func TestAnotherMembersKeyOrCode(t *testing.T) {
	e := newEnv(t)
	alice := e.addStaff("alice", true)
	bob := e.addStaff("bob", false)
	t.Run("bob's key as alice", func(t *testing.T) {
		a := &answer{codes: []string{e.code(alice, 0)}}
		if r := e.dial("alice", gossh.PublicKeys(bob.signer), gossh.KeyboardInteractive(a.callback)); r.err == nil {
			t.Fatal("logged in as alice with bob's key")
		}
	})
	t.Run("alice's key with bob's code", func(t *testing.T) {
		if r := e.login(alice, e.code(bob, 0)); r.err == nil {
			t.Fatal("alice logged in with bob's code")
		}
	})
	t.Run("unknown user", func(t *testing.T) {
		a := &answer{codes: []string{e.code(alice, 0)}}
		if r := e.dial("carol", gossh.PublicKeys(alice.signer), gossh.KeyboardInteractive(a.callback)); r.err == nil {
			t.Fatal("logged in as an unknown user")
		}
	})
	fails := e.audit(store.ActionLoginFailure)
	var sawUser, sawRemote bool
	for _, f := range fails {
		if f.Target == "carol" && f.Actor == "carol" {
			sawUser = true
		}
		if strings.HasPrefix(f.RemoteAddr, "127.0.0.1:") {
			sawRemote = true
		}
	}
	if !sawUser || !sawRemote {
		t.Errorf("failures not audited with the user tried and the remote address: %+v", fails)
	}
}

func TestReplayedAndOlderCodes(t *testing.T) {
	e := newEnv(t)
	alice := e.addStaff("alice", true)
	code := e.code(alice, 0)
	if r := e.login(alice, code); r.err != nil {
		t.Fatalf("first login: %v", r.err)
	}
	if r := e.login(alice, code); r.err == nil {
		t.Fatal("the same code logged in twice")
	}
	// A code of the next step, then the previous step's code.
	if r := e.login(alice, e.code(alice, 30*time.Second)); r.err != nil {
		t.Fatalf("next step's code: %v", r.err)
	}
	if r := e.login(alice, e.code(alice, -30*time.Second)); r.err == nil {
		t.Fatal("an older code was accepted after a newer one")
	}
	var replays int
	for _, f := range e.audit(store.ActionLoginFailure) {
		if strings.Contains(f.Detail, "replayed code") {
			replays++
		}
	}
	if replays != 2 {
		t.Errorf("%d failures audited as replayed, want 2", replays)
	}
}

func TestConcurrentReplayOneWins(t *testing.T) {
	e := newEnv(t)
	alice := e.addStaff("alice", true)
	code := e.code(alice, 0)
	const n = 12
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := e.login(alice, code); r.err == nil {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("%d concurrent logins with one code succeeded, want exactly 1", ok.Load())
	}
}

func TestThreePromptsPerConnection(t *testing.T) {
	e := newEnv(t)
	alice := e.addStaff("alice", true)
	a := &answer{codes: []string{"000000", "111111", "222222", e.code(alice, 0)}}
	r := e.dial("alice", gossh.PublicKeys(alice.signer), gossh.KeyboardInteractive(a.callback))
	if r.err == nil {
		t.Fatal("a fourth prompt on one connection let the user in")
	}
	if len(a.prompts) != 3 {
		t.Fatalf("%d prompts, want 3", len(a.prompts))
	}
	if a.instructions[1] != codeRetry {
		t.Errorf("retry instruction = %q", a.instructions[1])
	}
}

func TestLockoutExpiryAndRestart(t *testing.T) {
	e := newEnv(t)
	alice := e.addStaff("alice", true)
	// 5 failures over two connections (3 prompts each at most).
	e.login(alice, "000001", "000002", "000003")
	e.login(alice, "000004", "000005")
	if len(e.audit(store.ActionLoginLocked)) != 1 {
		t.Fatalf("not locked after 5 failures: %+v", e.audit(store.ActionLoginFailure))
	}
	// The right code while locked: refused, told "temporarily locked".
	r := e.login(alice, e.code(alice, 0))
	if r.err == nil {
		t.Fatal("logged in while locked")
	}
	if !strings.Contains(r.bannerText(), "temporarily locked") {
		t.Fatalf("locked user not told: %q", r.bannerText())
	}
	// The lock survives a restart.
	e.restart()
	e.clock.Advance(14 * time.Minute)
	if r := e.login(alice, e.code(alice, 0)); r.err == nil || !strings.Contains(r.bannerText(), "temporarily locked") {
		t.Fatalf("lock did not survive the restart: err=%v banner=%q", r.err, r.bannerText())
	}
	e.clock.Advance(2 * time.Minute)
	if r := e.login(alice, e.code(alice, 0)); r.err != nil {
		t.Fatalf("still locked after 16 minutes: %v", r.err)
	}
}

func TestLockedResponseDoesNotRevealCode(t *testing.T) {
	e := newEnv(t)
	alice := e.addStaff("alice", true)
	e.login(alice, "000001", "000002", "000003")
	e.login(alice, "000004", "000005")
	right := e.login(alice, e.code(alice, 0))
	wrong := e.login(alice, "123456")
	if right.err == nil || wrong.err == nil || right.bannerText() != wrong.bannerText() || right.err.Error() != wrong.err.Error() {
		t.Fatalf("a locked user can tell right from wrong codes:\nright: %v %q\nwrong: %v %q", right.err, right.bannerText(), wrong.err, wrong.bannerText())
	}
}

func TestRecoveryCodeOnce(t *testing.T) {
	e := newEnv(t)
	alice := e.addStaff("alice", true)
	if r := e.login(alice, alice.codes[0]); r.err != nil {
		t.Fatalf("recovery code refused: %v", r.err)
	}
	if r := e.login(alice, alice.codes[0]); r.err == nil {
		t.Fatal("a recovery code worked twice")
	}
	used := e.audit(store.ActionLoginRecoveryCode)
	if len(used) != 1 || !strings.Contains(used[0].Detail, `"remaining":9`) {
		t.Fatalf("recovery code use not audited: %+v", used)
	}
}

func TestResetTOTPInvalidatesOldSecret(t *testing.T) {
	e := newEnv(t)
	alice := e.addStaff("alice", true)
	// An admin resets alice's TOTP without enrollment at login: no code
	// can be right, and the key alone must not be enough.
	if _, err := e.store.ResetTOTP(context.Background(), cliActor, "alice", false); err != nil {
		t.Fatal(err)
	}
	if r := e.login(alice, e.code(alice, 0)); r.err == nil {
		t.Fatal("the old secret still works after a reset")
	}
}

func TestEnrollAtLogin(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.EnrollDuration = 3 * time.Second })
	e.addStaff("admin", true)
	signer := newSigner(t)
	if _, err := e.store.AddStaff(context.Background(), cliActor, store.AddStaffRequest{Name: "dave", Key: signer.PublicKey(), EnrollAtLogin: true}); err != nil {
		t.Fatal(err)
	}
	r := e.dial("dave", gossh.PublicKeys(signer))
	if r.err != nil {
		t.Fatalf("a member enrolling at login could not reach enrollment: %v", r.err)
	}
	_, out, _ := console(t, r.client, 100, 30)
	out.waitFor(t, "Recovery", 5*time.Second)
	// The session is confined: it ends at the enrollment deadline.
	eventually(t, 6*time.Second, "enrollment session to end", func() bool {
		return strings.Contains(stripANSI(out.String()), "enrollment window has closed")
	})
	if st, _ := e.store.LoginState(context.Background(), "dave"); st.Enrolled {
		t.Fatal("dave enrolled without confirming a code")
	}
}

func TestPreAuthCap(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxStartups = MaxStartups{Start: 2, Rate: 100, Full: 2} })
	alice := e.addStaff("alice", true)
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		readBanner(t, c)
	}
	eventually(t, 2*time.Second, "two unauthenticated connections", func() bool { return e.srv.Unauthenticated() == 2 })
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := c.Read(make([]byte, 64)); err == nil {
		t.Fatalf("a third unauthenticated connection was served (%d bytes)", n)
	}
	c.Close()
	held[0].Close()
	eventually(t, 2*time.Second, "a slot to free up", func() bool { return e.srv.Unauthenticated() == 1 })
	if r := e.login(alice, e.code(alice, 0)); r.err != nil {
		t.Fatalf("login with a free slot: %v", r.err)
	}
	// An authenticated connection holds no slot.
	eventually(t, 2*time.Second, "the login's slot to be released", func() bool { return e.srv.Unauthenticated() == 1 })
	held[1].Close()
}

func readBanner(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "SSH-2.0-Backroom") {
		t.Fatalf("no SSH banner: %q %v", buf[:n], err)
	}
	_ = c.SetReadDeadline(time.Time{})
}

func TestPerSourcePenalty(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Penalties = Penalties{} }) // loopback not exempt
	alice := e.addStaff("alice", true)
	// Each failed connection adds 5 s; at 15 s the source is refused.
	for i := range 3 {
		if r := e.login(alice, fmt.Sprintf("00000%d", i)); r.err == nil {
			t.Fatal("wrong code accepted")
		}
	}
	eventually(t, 2*time.Second, "the third failure to be counted", func() bool { return e.srv.Unauthenticated() == 0 })
	if r := e.login(alice, e.code(alice, 0)); r.err == nil {
		t.Fatal("a penalised source was served")
	}
	e.clock.Advance(16 * time.Second)
	if r := e.login(alice, e.code(alice, 0)); r.err != nil {
		t.Fatalf("the penalty did not expire: %v", r.err)
	}
}

func TestGraceDeadline(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.GraceTime = 300 * time.Millisecond })
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	readBanner(t, c)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = io.Copy(io.Discard, c) // returns when the server closes
	if err != nil {
		t.Fatalf("connection not closed by the server: %v", err)
	}
	if time.Since(start) > 4*time.Second {
		t.Fatal("the grace deadline did not close the connection")
	}
}
