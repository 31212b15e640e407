package web

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"backroom/server/throttle"
	"backroom/store"
)

const alicePW = "violet anchor drums"

// noThrottle keeps the sign-in throttle out of a test's way.
func noThrottle(c *Config) { c.Penalties = throttle.Penalties{Min: time.Hour, Max: 2 * time.Hour} }

// TestCSRF: a form without its token, with a wrong one, or from another
// origin (Sec-Fetch-Site cross-site, or an Origin that is not the admin's)
// is refused with 403 and changes nothing — the sign-in forms included.
func TestCSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{cfg: noThrottle})
	a := e.add("alice", true, alicePW)
	b := e.browser()
	b.signInLink(a)
	tok := b.token()
	key := "sk_test_" + strings.Repeat("k", 30)
	form := func(csrf string) url.Values {
		return url.Values{"csrf": {csrf}, "key": {key}, "code": {e.code(a)}}
	}
	cases := []struct {
		name string
		r    func() resp
	}{
		{"no token", func() resp { return b.post("key", url.Values{"key": {key}, "code": {e.code(a)}}) }},
		{"empty token", func() resp { return b.post("key", form("")) }},
		{"wrong token", func() resp { return b.post("key", form(tok[:len(tok)-2]+"xx")) }},
		{"another session's token", func() resp {
			other := e.browser()
			other.signInLink(a)
			return b.post("key", form(other.token()))
		}},
		{"cross-site", func() resp {
			return b.postWith("key", form(tok), http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://evil.example"}})
		}},
		{"same-site but another origin", func() resp {
			return b.postWith("key", form(tok), http.Header{"Sec-Fetch-Site": {"same-site"}})
		}},
		{"foreign Origin, no Sec-Fetch-Site", func() resp {
			return b.postWith("key", form(tok), http.Header{"Origin": {"http://evil.example"}})
		}},
	}
	for _, c := range cases {
		if r := c.r(); r.code != http.StatusForbidden || !strings.Contains(r.body, "request refused") && !strings.Contains(r.body, "did not come from") {
			t.Errorf("%s: %d\n%s", c.name, r.code, r.body)
		}
	}
	if ks, _ := e.st.KeyStatus(ctxb); ks.Source != store.SourceNone {
		t.Fatalf("a refused form set the key: %+v", ks)
	}
	// Sign-out needs the token too.
	if r := b.post("signout", nil); r.code != http.StatusForbidden {
		t.Errorf("sign-out without a token = %d", r.code)
	}
	if r := b.get(""); r.code != 200 {
		t.Errorf("the session ended on a refused sign-out: %d", r.code)
	}
	// The right token, same origin: accepted (the control).
	if r := b.post("key", form(tok)); r.code != http.StatusSeeOther {
		t.Fatalf("a good form = %d\n%s", r.code, r.body)
	}

	// The sign-in form: its token is bound to the browser's cookie.
	anon := e.browser()
	page := anon.get("signin")
	good := url.Values{"csrf": {page.csrf(t)}, "name": {"alice"}, "password": {alicePW}, "code": {"000000"}}
	stranger := e.browser() // no sign-in cookie
	for name, r := range map[string]resp{
		"sign-in without the cookie":   stranger.post("signin", good),
		"sign-in with a wrong token":   anon.post("signin", url.Values{"csrf": {"nope"}, "name": {"alice"}, "password": {alicePW}}),
		"sign-in from another site":    anon.postWith("signin", good, http.Header{"Sec-Fetch-Site": {"cross-site"}}),
		"link from another site":       anon.postWith("link/"+e.link(a), good, http.Header{"Sec-Fetch-Site": {"cross-site"}}),
		"link without the form token":  anon.post("link/"+e.link(a), nil),
		"link with another's token":    stranger.post("link/"+e.link(a), url.Values{"csrf": {page.csrf(t)}}),
		"sign-in, foreign Origin only": anon.postWith("signin", good, http.Header{"Origin": {"http://evil.example"}}),
	} {
		if r.code != http.StatusForbidden {
			t.Errorf("%s = %d", name, r.code)
		}
	}
	// None of these reached the password check: no failure was audited.
	for _, ev := range e.events(store.ActionLoginFailure) {
		if ev.Channel == store.ChannelWeb && strings.Contains(ev.Detail, "password") {
			t.Errorf("a refused form reached the password check: %+v", ev)
		}
	}
}

// TestSignInWithPassword: a right name, password and code start a session
// (a new id: the browser's old session ends); every failure gets the same
// words and status, whatever was wrong, and is audited with the remote
// address.
func TestSignInWithPassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{cfg: noThrottle})
	a := e.add("alice", false, alicePW)
	e.add("bob", false, "") // no web password
	b := e.browser()

	var failures []string
	for name, r := range map[string]func() resp{
		"unknown user":   func() resp { return b.signIn("mallory", alicePW, e.code(a)) },
		"wrong password": func() resp { return b.signIn("alice", "violet anchor drum", e.code(a)) },
		"no password":    func() resp { return b.signIn("bob", alicePW, "123456") },
		"no code":        func() resp { return b.signIn("alice", alicePW, "") },
	} {
		res := r()
		if res.code != http.StatusUnauthorized || !strings.Contains(res.body, errSignIn) {
			t.Errorf("%s: %d\n%s", name, res.code, res.body)
		}
		failures = append(failures, name)
	}
	// Wrong code after the right password (counts toward the lockout).
	if res := b.signIn("alice", alicePW, "000000"); res.code != http.StatusUnauthorized || !strings.Contains(res.body, errSignIn) {
		t.Errorf("wrong code: %d", res.code)
	}
	evs := e.events(store.ActionLoginFailure)
	if len(evs) != len(failures)+1 {
		t.Fatalf("%d login.failure rows, want %d", len(evs), len(failures)+1)
	}
	reasons := map[string]bool{}
	for _, ev := range evs {
		if ev.Channel != store.ChannelWeb || ev.RemoteAddr != "127.0.0.1" {
			t.Errorf("failure row without channel web and the remote address: %+v", ev)
		}
		if strings.Contains(ev.Detail, alicePW) || strings.Contains(ev.Actor, "mallory") || strings.Contains(ev.Detail, "mallory") {
			t.Errorf("the audit row holds typed text: %+v", ev)
		}
		for _, r := range []string{"unknown user", "wrong password", "no web password set", "no code typed", "wrong code"} {
			if strings.Contains(ev.Detail, `"reason":"`+r+`"`) {
				reasons[r] = true
			}
		}
	}
	if len(reasons) != 5 {
		t.Errorf("reasons audited: %v", reasons)
	}

	res := b.signIn("alice", alicePW, e.code(a))
	if res.code != http.StatusSeeOther || res.location() != testPath {
		t.Fatalf("sign-in = %d → %q\n%s", res.code, res.location(), res.body)
	}
	if r := b.get(""); r.code != 200 || !strings.Contains(r.body, "alice") {
		t.Errorf("dashboard = %d", r.code)
	}
	if n := len(e.events(store.ActionLoginSuccess)); n != 1 {
		t.Errorf("%d login.success rows, want 1", n)
	}
	// Signed in, the sign-in page sends the browser on.
	if r := b.get("signin"); r.code != http.StatusSeeOther || r.location() != testPath {
		t.Errorf("sign-in page when signed in = %d %q", r.code, r.location())
	}
	// Signing in again (here with a link) rotates the session: a new id,
	// and the browser's previous session ends.
	old := b.cookie(sessionCookie)
	b.signInLink(a)
	if now := b.cookie(sessionCookie); now == "" || now == old {
		t.Fatalf("the session id did not rotate: %q → %q", old, now)
	}
	if _, err := e.st.WebSession(ctxb, old, store.WebSessionLimits{Idle: time.Hour, MaxAge: time.Hour}); err == nil {
		t.Error("the previous session still works")
	}
	if ws, _ := e.st.ListWebSessions(ctxb); len(ws) != 1 {
		t.Errorf("%d sessions, want 1", len(ws))
	}
}

// TestLockoutCounting: wrong passwords never count toward the TOTP lockout
// (so nobody can lock a colleague out of SSH from the web form); wrong
// codes after the right password do, like SSH codes, and the lock ends the
// member's web sessions.
func TestLockoutCounting(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{cfg: noThrottle, storeMo: func(o *store.Options) { o.LockoutAfter = 3 }})
	a := e.add("alice", false, alicePW)
	other := e.browser()
	other.signInLink(a) // alice's existing session elsewhere
	b := e.browser()

	for range 5 {
		if r := b.signIn("alice", "not her password", "000000"); r.code != http.StatusUnauthorized {
			t.Fatalf("wrong password = %d", r.code)
		}
	}
	st, err := e.st.GetStaff(ctxb, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if st.Failures != 0 || st.Locked(e.clock.Now()) {
		t.Fatalf("wrong passwords counted: failures %d, locked until %v", st.Failures, st.LockedUntil)
	}
	if r := other.get(""); r.code != 200 {
		t.Fatalf("alice's session ended on wrong passwords: %d", r.code)
	}

	for i := range 3 {
		if r := b.signIn("alice", alicePW, "000000"); r.code != http.StatusUnauthorized {
			t.Fatalf("wrong code %d = %d", i, r.code)
		}
	}
	st, _ = e.st.GetStaff(ctxb, "alice")
	if !st.Locked(e.clock.Now()) {
		t.Fatalf("three wrong codes after the right password did not lock: %+v", st)
	}
	if n := len(e.events(store.ActionLoginLocked)); n != 1 {
		t.Errorf("%d login.locked rows", n)
	}
	// Her web session elsewhere ended with the lock, audited.
	if r := other.get(""); r.code != http.StatusSeeOther {
		t.Errorf("a locked member's session still works: %d", r.code)
	}
	ended := false
	for _, ev := range e.events(store.ActionSessionTerminated) {
		ended = ended || strings.Contains(ev.Detail, "locked")
	}
	if !ended {
		t.Error("no session.terminated row for the lock")
	}
	// Locked, even everything right is refused, with the same words; SSH
	// is locked too (one counter).
	if r := b.signIn("alice", alicePW, e.code(a)); r.code != http.StatusUnauthorized || !strings.Contains(r.body, errSignIn) {
		t.Errorf("locked sign-in = %d", r.code)
	}
	ls, _ := e.st.LoginState(ctxb, "alice")
	if ls.LockedUntil.IsZero() {
		t.Error("SSH does not see the lock")
	}
}

// TestTOTPReplayAcrossSSHAndWeb: a code accepted by SSH is refused by the
// web form and the other way round (one replay rule, one last step).
func TestTOTPReplayAcrossSSHAndWeb(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{cfg: noThrottle})
	a := e.add("alice", false, alicePW)
	ssh := store.Actor{Name: "alice", Role: store.RoleStaff, Channel: store.ChannelSSH, RemoteAddr: "198.51.100.7:5000"}
	code := e.code(a)
	if res, err := e.st.VerifyCode(ctxb, ssh, a.fp, code, store.PurposeLogin); err != nil || res.Verdict != store.CodeAccepted {
		t.Fatalf("SSH login: %v %v", res.Verdict, err)
	}
	b := e.browser()
	if r := b.signIn("alice", alicePW, code); r.code != http.StatusUnauthorized {
		t.Fatalf("the code SSH used worked on the web: %d", r.code)
	}
	if evs := e.events(store.ActionLoginFailure); len(evs) != 1 || !strings.Contains(evs[0].Detail, "replayed code") {
		t.Errorf("failure rows: %+v", evs)
	}

	e.nextStep()
	code = e.code(a)
	if r := b.signIn("alice", alicePW, code); r.code != http.StatusSeeOther {
		t.Fatalf("a fresh code on the web = %d", r.code)
	}
	if res, err := e.st.VerifyCode(ctxb, ssh, a.fp, code, store.PurposeLogin); err != nil || res.Verdict != store.CodeReplayed {
		t.Fatalf("the code the web used, on SSH: %v %v", res.Verdict, err)
	}
}

// TestSignInLink: a link's page never uses it (previewers cannot burn
// it); the POST works once, within 60 s, for a member who still holds a
// key; refusals are audited.
func TestSignInLink(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{cfg: noThrottle})
	a := e.add("alice", false, "")
	b := e.browser()

	tok := e.link(a)
	for range 3 {
		if r := b.get("link/" + tok); r.code != 200 || !strings.Contains(r.body, "Sign in") {
			t.Fatalf("link page = %d", r.code)
		}
	}
	page := b.get("link/" + tok)
	if r := b.post("link/"+tok, url.Values{"csrf": {page.csrf(t)}}); r.code != http.StatusSeeOther {
		t.Fatalf("first use after three GETs = %d\n%s", r.code, r.body)
	}
	ev := e.events(store.ActionSessionStart)
	if len(ev) != 1 || !strings.Contains(ev[0].Detail, `"method":"link"`) || ev[0].Channel != store.ChannelWeb {
		t.Fatalf("session.start: %+v", ev)
	}

	// Used once: refused, from a fresh browser too.
	c := e.browser()
	page = c.get("link/" + tok)
	if r := c.post("link/"+tok, url.Values{"csrf": {page.csrf(t)}}); r.code != http.StatusForbidden || !strings.Contains(r.body, "links work once") {
		t.Errorf("second use = %d\n%s", r.code, r.body)
	}
	if r := c.get(""); r.code != http.StatusSeeOther {
		t.Error("a reused link signed in")
	}

	// Expired after 60 s.
	tok = e.link(a)
	e.clock.Advance(61 * time.Second)
	if r := c.post("link/"+tok, url.Values{"csrf": {page.csrf(t)}}); r.code != http.StatusForbidden {
		t.Errorf("expired link = %d", r.code)
	}
	// A forged token.
	if r := c.post("link/"+strings.Repeat("A", 43), url.Values{"csrf": {page.csrf(t)}}); r.code != http.StatusForbidden {
		t.Errorf("forged link = %d", r.code)
	}
	// A member whose key was removed after the link was issued.
	tok = e.link(a)
	if err := e.st.RemoveStaff(ctxb, cliActor, "alice"); err != nil {
		t.Fatal(err)
	}
	if r := c.post("link/"+tok, url.Values{"csrf": {page.csrf(t)}}); r.code != http.StatusForbidden {
		t.Errorf("link of a removed member = %d", r.code)
	}
	// Her session in b ended with her key.
	if r := b.get(""); r.code != http.StatusSeeOther {
		t.Errorf("a removed member's session = %d", r.code)
	}
	reasons := ""
	for _, ev := range e.events(store.ActionLoginFailure) {
		if ev.Channel == store.ChannelWeb && ev.RemoteAddr == "127.0.0.1" {
			reasons += ev.Detail
		}
	}
	for _, want := range []string{"unknown, used or expired sign-in link", "member has no key"} {
		if strings.Count(reasons, want) == 0 {
			t.Errorf("no %q failure audited: %s", want, reasons)
		}
	}
	if n := strings.Count(reasons, "unknown, used or expired"); n != 3 {
		t.Errorf("%d refused links audited, want 3 (reused, expired, forged)", n)
	}
}

// TestSignOut: sign-out deletes the session server-side, so a copy of the
// old cookie is useless; the signed-out browser sees the sign-in page.
func TestSignOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	a := e.add("alice", false, "")
	b := e.browser()
	b.signInLink(a)
	cookie := b.cookie(sessionCookie)
	dash := b.get("")
	if dash.hdr.Get("Cache-Control") != "no-store" {
		t.Error("a private page may be cached")
	}
	r := b.post("signout", url.Values{"csrf": {dash.csrf(t)}})
	if r.code != http.StatusSeeOther || r.location() != testPath+"signin?done=signed-out" {
		t.Fatalf("sign-out = %d %q", r.code, r.location())
	}
	if b.cookie(sessionCookie) != "" {
		t.Error("the cookie was not deleted")
	}
	if p := b.get("signin?done=signed-out"); !strings.Contains(p.body, "You are signed out.") {
		t.Error("no sign-out notice")
	}
	// Someone who kept a copy of the cookie.
	thief := e.browser()
	u, _ := url.Parse(e.root + testPath)
	thief.c.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: cookie, Path: "/"}})
	if r := thief.get(""); r.code != http.StatusSeeOther || strings.Contains(r.body, "alice") {
		t.Errorf("the old cookie still opens the dashboard: %d", r.code)
	}
	if r := thief.post("signout", url.Values{"csrf": {dash.csrf(t)}}); r.code != http.StatusForbidden {
		t.Errorf("the old cookie and token still post: %d", r.code)
	}
	if ws, _ := e.st.ListWebSessions(ctxb); len(ws) != 0 {
		t.Errorf("sessions left: %+v", ws)
	}
	if evs := e.events(store.ActionSessionEnd); len(evs) != 1 || !strings.Contains(evs[0].Detail, "signed out") {
		t.Errorf("session.end rows: %+v", evs)
	}
}

// TestSessionTimeouts: a session ends after 30 minutes without a request
// (idle) and 12 hours after sign-in whatever (absolute), on the injected
// clock.
func TestSessionTimeouts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	a := e.add("alice", false, "")

	b := e.browser()
	b.signInLink(a)
	e.clock.Advance(29 * time.Minute)
	if r := b.get(""); r.code != 200 {
		t.Fatalf("after 29 idle minutes = %d", r.code)
	}
	e.clock.Advance(29 * time.Minute) // 58 minutes in, 29 idle: still alive
	if r := b.get("audit"); r.code != 200 {
		t.Fatalf("activity does not keep the session: %d", r.code)
	}
	e.clock.Advance(30 * time.Minute)
	if r := b.get(""); r.code != http.StatusSeeOther {
		t.Fatalf("after 30 idle minutes = %d", r.code)
	}

	c := e.browser()
	c.signInLink(a)
	for elapsed := time.Duration(0); elapsed < 12*time.Hour-25*time.Minute; elapsed += 25 * time.Minute {
		e.clock.Advance(25 * time.Minute)
		if r := c.get(""); r.code != 200 {
			t.Fatalf("busy session ended after %v: %d", elapsed+25*time.Minute, r.code)
		}
	}
	e.clock.Advance(25 * time.Minute)
	if r := c.get(""); r.code != http.StatusSeeOther {
		t.Fatalf("a session older than 12 h still works: %d", r.code)
	}
	reasons := ""
	for _, ev := range e.events(store.ActionSessionEnd) {
		reasons += ev.Detail
	}
	if !strings.Contains(reasons, "expired (idle)") || !strings.Contains(reasons, "expired (absolute limit)") {
		t.Errorf("session.end reasons: %s", reasons)
	}
}

// TestSignInThrottle: failed sign-ins penalise their source address (as
// seen through a trusted proxy); a refused source gets 429 without any
// check (nothing hashed, nothing audited) while others go on; the
// penalty runs out on the clock.
func TestSignInThrottle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{cfg: func(c *Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.Allow = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}
	}})
	a := e.add("alice", false, alicePW)
	attacker := e.browser()
	attacker.header.Set("X-Forwarded-For", "203.0.113.66")
	for range 3 {
		if r := attacker.signIn("alice", "guess guess guess", "000000"); r.code != http.StatusUnauthorized {
			t.Fatalf("failed sign-in = %d", r.code)
		}
	}
	audited := len(e.events(store.ActionLoginFailure))
	r := attacker.signIn("alice", alicePW, e.code(a))
	if r.code != http.StatusTooManyRequests || r.hdr.Get("Retry-After") == "" {
		t.Fatalf("fourth try = %d (Retry-After %q)", r.code, r.hdr.Get("Retry-After"))
	}
	if n := len(e.events(store.ActionLoginFailure)); n != audited {
		t.Error("a throttled try was checked and audited")
	}
	for _, ev := range e.events(store.ActionLoginFailure) {
		if ev.RemoteAddr != "203.0.113.66" {
			t.Errorf("failure audited from %q, want the client behind the proxy", ev.RemoteAddr)
		}
	}
	// Another source is not held back.
	colleague := e.browser()
	colleague.header.Set("X-Forwarded-For", "198.51.100.20")
	if r := colleague.signIn("alice", alicePW, e.code(a)); r.code != http.StatusSeeOther {
		t.Fatalf("another source = %d", r.code)
	}
	// The penalty runs out.
	e.clock.Advance(16 * time.Second)
	e.nextStep()
	if r := attacker.signIn("alice", alicePW, e.code(a)); r.code != http.StatusSeeOther {
		t.Fatalf("after the penalty = %d\n%s", r.code, r.body)
	}
}

// TestHashConcurrencyCap: at most two password hashes run at once; a
// sign-in that cannot get a slot within HashWait is answered 503 with
// Retry-After (never 500), and nothing is counted against the member.
func TestHashConcurrencyCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{cfg: func(c *Config) {
		noThrottle(c)
		c.HashWait = time.Millisecond
	}})
	e.add("alice", false, alicePW)
	const n = 8
	for attempt := 0; ; attempt++ {
		pages := make([]*browser, n)
		tokens := make([]string, n)
		for i := range pages {
			pages[i] = e.browser()
			tokens[i] = pages[i].get("signin").csrf(t)
		}
		codes := make([]int, n)
		retry := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				r := pages[i].post("signin", url.Values{"csrf": {tokens[i]}, "name": {"alice"}, "password": {"wrong wrong wrong"}})
				codes[i], retry[i] = r.code, r.hdr.Get("Retry-After")
			})
		}
		wg.Wait()
		busy := 0
		for i, c := range codes {
			switch c {
			case http.StatusServiceUnavailable:
				busy++
				if retry[i] == "" {
					t.Error("503 without Retry-After")
				}
			case http.StatusUnauthorized:
			default:
				t.Fatalf("sign-in under load = %d", c)
			}
		}
		if busy > 0 && busy <= n-2 {
			t.Logf("%d of %d concurrent sign-ins answered 503", busy, n)
			break
		}
		if attempt == 3 {
			t.Fatalf("no 503 among %d concurrent sign-ins (codes %v)", n, codes)
		}
	}
	st, _ := e.st.GetStaff(ctxb, "alice")
	if st.Failures != 0 {
		t.Errorf("failures = %d", st.Failures)
	}
}
