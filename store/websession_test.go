package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

var webLimits = WebSessionLimits{Idle: 30 * time.Minute, MaxAge: 12 * time.Hour}

func webActor(name string) Actor {
	return Actor{Name: name, Channel: ChannelWeb, RemoteAddr: "192.0.2.44"}
}

// TestSignInWithPassword: the password is checked before the code, and
// only a code typed after the right password counts toward the lockout;
// every failure is audited with its reason and the remote address,
// without the text typed.
func TestSignInWithPassword(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.LockoutAfter = 2 })
	alice := e.add("alice", true)
	if ls, err := e.s.LoginState(ctxb, "alice"); err != nil || ls.WebPassword {
		t.Fatalf("before a password: LoginState = %+v, %v", ls, err)
	}
	const pw = "violet anchor drums"
	if err := e.s.SetPassword(ctxb, cliAdmin, "alice", pw); err != nil {
		t.Fatal(err)
	}
	// The SSH login reads it with the rest of the member's state, for the
	// console's home screen.
	if ls, err := e.s.LoginState(ctxb, "alice"); err != nil || !ls.WebPassword {
		t.Fatalf("after a password: LoginState = %+v, %v", ls, err)
	}
	for _, c := range []struct{ name, pw, code, reason string }{
		{"alice", "wrong wrong wrong", e.code(alice, 0), "wrong password"},
		{"alice", "wrong wrong wrong", e.wrongCode(alice), "wrong password"},
		{"alice", "wrong wrong wrong", e.wrongCode(alice), "wrong password"},
		{"zed " + pw, pw, e.code(alice, 0), "unknown user"},
		{"alice", pw, " ", "no code typed"},
	} {
		a, ok, err := e.s.SignInWithPassword(ctxb, webActor(c.name), c.pw, c.code, 0)
		if err != nil || ok || a.Role != "" {
			t.Fatalf("%s/%s: %v %v %+v", c.name, c.reason, ok, err, a)
		}
		evs := events(t, e.s, ActionLoginFailure)
		last := evs[len(evs)-1]
		if d := detail(t, last); d["reason"] != c.reason || d["method"] != "password" || last.RemoteAddr != "192.0.2.44" || last.Channel != ChannelWeb {
			t.Errorf("%s: audit row %+v", c.reason, last)
		}
		if strings.Contains(last.Actor+last.Target+last.Detail, pw) || strings.Contains(last.Actor, "zed") {
			t.Errorf("the row holds typed text: %+v", last)
		}
	}
	if st, _ := e.s.GetStaff(ctxb, "alice"); st.Failures != 0 {
		t.Fatalf("wrong passwords counted: %d", st.Failures)
	}

	// The right password and code: the member and role, login.success
	// without a fingerprint (a browser has none).
	a, ok, err := e.s.SignInWithPassword(ctxb, webActor("alice"), pw, e.code(alice, 0), 0)
	if err != nil || !ok || a.Name != "alice" || a.Role != RoleAdmin {
		t.Fatalf("good sign-in: %v %v %+v", ok, err, a)
	}
	succ := one(t, e.s, ActionLoginSuccess)
	if d := detail(t, succ); d["fingerprint"] != nil || d["method"] != "totp" || succ.Channel != ChannelWeb {
		t.Errorf("login.success %+v", succ)
	}

	// A web session, then two wrong codes after the right password: locked,
	// and the session ends in the same transaction.
	tok, _, err := e.s.CreateWebSession(ctxb, a, "password", "test", webLimits)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, ok, err := e.s.SignInWithPassword(ctxb, webActor("alice"), pw, e.wrongCode(alice), 0); ok || err != nil {
			t.Fatalf("wrong code: %v %v", ok, err)
		}
	}
	ls, _ := e.s.LoginState(ctxb, "alice")
	if ls.LockedUntil.IsZero() {
		t.Fatal("two wrong codes after the right password did not lock")
	}
	if list, _ := e.s.ListWebSessions(ctxb); len(list) != 0 {
		t.Errorf("a locked member keeps %d web sessions", len(list))
	}
	if _, err := e.s.WebSession(ctxb, tok, webLimits); !errors.Is(err, ErrNoWebSession) {
		t.Errorf("the session of a locked member: %v", err)
	}
	term := one(t, e.s, ActionSessionTerminated)
	if d := detail(t, term); !strings.Contains(d["reason"].(string), "locked") || term.Target != "alice" {
		t.Errorf("session.terminated %+v", term)
	}
	if d := detail(t, one(t, e.s, ActionLoginLocked)); d["fingerprint"] != nil {
		t.Errorf("login.locked of a web sign-in carries a fingerprint: %v", d)
	}
	mustVerifyAudit(t, e.s)
}

// TestSignInHashBusy: with every hashing slot taken, a sign-in waits at
// most hashWait, then fails with ErrHashBusy having checked and recorded
// nothing.
func TestSignInHashBusy(t *testing.T) {
	e := newEnv(t)
	e.add("alice", false)
	for range MaxConcurrentHashes {
		e.s.hashSlots <- struct{}{}
	}
	before := auditCount(t, e.s)
	start := time.Now()
	_, ok, err := e.s.SignInWithPassword(ctxb, webActor("alice"), "whatever whatever", "123456", 20*time.Millisecond)
	if !errors.Is(err, ErrHashBusy) || ok {
		t.Fatalf("busy sign-in: %v %v", ok, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("waited %v", d)
	}
	ctx, cancel := context.WithTimeout(ctxb, 20*time.Millisecond)
	defer cancel()
	if _, err := e.s.VerifyPassword(ctx, "alice", "x"); !errors.Is(err, ErrHashBusy) {
		t.Errorf("VerifyPassword with no slot: %v", err)
	}
	if auditCount(t, e.s) != before {
		t.Error("a busy sign-in was audited")
	}
	<-e.s.hashSlots
	if _, _, err := e.s.SignInWithPassword(ctxb, webActor("alice"), "whatever whatever", "123456", 20*time.Millisecond); err != nil {
		t.Errorf("with a slot free: %v", err)
	}
}

// TestRedeemSignInLink: a link works once, before it expires, for a
// member who still holds a key and is not locked; refusals are one error
// and each is audited.
func TestRedeemSignInLink(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.LockoutAfter = 1 })
	alice := e.add("alice", true)
	bob := e.add("bob", false)
	issue := func(name string) string {
		tok, exp, err := e.s.CreateSignInLink(ctxb, sshActor(name))
		if err != nil {
			t.Fatal(err)
		}
		if exp.Sub(e.clock.Now()) != SignInLinkTTL {
			t.Fatalf("expires %v", exp)
		}
		return tok
	}
	if _, _, err := e.s.CreateSignInLink(ctxb, webActor("alice")); ErrorCode(err) != CodeForbidden {
		t.Errorf("a link issued from the web: %v", err)
	}
	tok := issue("alice")
	a, err := e.s.RedeemSignInLink(ctxb, webActor(""), tok)
	if err != nil || a.Name != "alice" || a.Role != RoleAdmin || a.Channel != ChannelWeb || a.RemoteAddr != "192.0.2.44" {
		t.Fatalf("redeem: %+v %v", a, err)
	}
	refused := func(what, tok, reason string) {
		t.Helper()
		if _, err := e.s.RedeemSignInLink(ctxb, webActor(""), tok); ErrorCode(err) != CodeForbidden {
			t.Errorf("%s: %v", what, err)
		}
		evs := events(t, e.s, ActionLoginFailure)
		if d := detail(t, evs[len(evs)-1]); d["reason"] != reason || d["method"] != "link" {
			t.Errorf("%s: audit %v", what, d)
		}
	}
	refused("reused", tok, "unknown, used or expired sign-in link")
	refused("empty", "", "unknown, used or expired sign-in link")
	tok = issue("alice")
	e.clock.Add(SignInLinkTTL)
	refused("expired", tok, "unknown, used or expired sign-in link")

	tok = issue("bob")
	if res := e.verify(bob, e.wrongCode(bob)); res.Verdict != CodeLocked {
		t.Fatalf("bob not locked: %v", res.Verdict)
	}
	refused("locked", tok, "member locked")
	if err := e.s.Unlock(ctxb, cliAdmin, "bob"); err != nil {
		t.Fatal(err)
	}
	tok = issue("bob")
	if err := e.s.RemoveStaff(ctxb, cliAdmin, "bob"); err != nil {
		t.Fatal(err)
	}
	refused("no key", tok, "member has no key")
	// Only hashes are stored.
	assertNotInFiles(t, e.dir, "after links", []byte(tok))
	_ = alice
}

// TestSignInFormToken: the pre-session form token is a function of the
// nonce and the master key, and never a session's form token.
func TestSignInFormToken(t *testing.T) {
	e := newEnv(t)
	a, b := e.s.SignInFormToken("nonce-a"), e.s.SignInFormToken("nonce-b")
	if a == b || a != e.s.SignInFormToken("nonce-a") || len(a) < 40 {
		t.Fatalf("tokens %q %q", a, b)
	}
	other := newEnv(t)
	if other.s.SignInFormToken("nonce-a") == a {
		t.Error("the token does not depend on the master key")
	}
	e.add("alice", false)
	tok, ws, err := e.s.CreateWebSession(ctxb, Actor{Name: "alice", Role: RoleStaff, Channel: ChannelWeb}, "link", "", webLimits)
	if err != nil {
		t.Fatal(err)
	}
	if e.s.SignInFormToken(tok) == ws.CSRF {
		t.Error("a sign-in form token equals the session's form token")
	}
}

// TestWebSessionLifetimes: idle and absolute limits end a session when it
// is next used, and the pruner ends the ones nobody comes back to; each
// end is audited once.
func TestWebSessionLifetimes(t *testing.T) {
	e := newEnv(t)
	e.add("alice", false)
	a := Actor{Name: "alice", Role: RoleStaff, Channel: ChannelWeb, RemoteAddr: "192.0.2.44"}
	start := func() string {
		tok, _, err := e.s.CreateWebSession(ctxb, a, "link", "agent", webLimits)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	idle := start()
	e.clock.Add(29 * time.Minute)
	if _, err := e.s.WebSession(ctxb, idle, webLimits); err != nil {
		t.Fatalf("29 idle minutes: %v", err)
	}
	e.clock.Add(30 * time.Minute)
	if _, err := e.s.WebSession(ctxb, idle, webLimits); !errors.Is(err, ErrNoWebSession) {
		t.Fatalf("30 idle minutes: %v", err)
	}

	busy := start()
	for range 12*2 - 1 {
		e.clock.Add(30*time.Minute - time.Second)
		if _, err := e.s.WebSession(ctxb, busy, webLimits); err != nil {
			t.Fatalf("a busy session ended early: %v", err)
		}
	}
	e.clock.Add(time.Hour)
	if _, err := e.s.WebSession(ctxb, busy, webLimits); !errors.Is(err, ErrNoWebSession) {
		t.Fatalf("past 12 h: %v", err)
	}

	forgotten := start()
	e.clock.Add(31 * time.Minute)
	if err := e.s.PruneWebSessions(ctxb, webLimits); err != nil {
		t.Fatal(err)
	}
	if list, _ := e.s.ListWebSessions(ctxb); len(list) != 0 {
		t.Errorf("pruning left %d sessions", len(list))
	}
	if _, err := e.s.WebSession(ctxb, forgotten, webLimits); !errors.Is(err, ErrNoWebSession) {
		t.Error("a pruned session works")
	}
	reasons := map[string]int{}
	for _, ev := range events(t, e.s, ActionSessionEnd) {
		reasons[detail(t, ev)["reason"].(string)]++
	}
	if reasons["expired (idle)"] != 2 || reasons["expired (absolute limit)"] != 1 {
		t.Errorf("session.end reasons %v", reasons)
	}
}
