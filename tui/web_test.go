package tui

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"backroom/store"
)

// linkBase is a web admin sign-in URL longer than 80 columns once the
// token is added, so that the console must lay it out over lines.
const linkBase = "https://backroom.example.internal:8443/k7Qm2vXr9tLp4wZs-admin/sign-in/link?token="

func webURL(token string) string { return linkBase + token }

// browser is the actor of a browser redeeming a sign-in link.
var browser = store.Actor{Channel: store.ChannelWeb, RemoteAddr: "203.0.113.50"}

// shownURL is the URL the view shows: the line that starts it and the
// full-width lines that continue it, joined.
func shownURL(t *testing.T, h *harness) string {
	t.Helper()
	lines := strings.Split(h.view(), "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "https://") {
			continue
		}
		url := l
		for _, next := range lines[i+1:] {
			if next == "" || strings.Contains(next, " ") {
				break
			}
			url += next
		}
		return url
	}
	t.Fatalf("no URL shown:\n%s", h.view())
	return ""
}

func auditRows(t *testing.T, st *store.Store, action string) []store.Event {
	t.Helper()
	rows, err := st.ListAudit(context.Background(), store.AuditQuery{ActionPrefix: action})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestSignInLink(t *testing.T) {
	h, st, _ := admin(t, Options{WebSignInURL: webURL})
	ctx := context.Background()
	h.mustSee("Web admin", "on · w issues a one-time sign-in link", "w web sign-in link", "p web password")
	h.keys("w")
	h.mustSee("Web admin sign-in link", "signs in alice", "Single use:", "works once", "only for 60 seconds", "expires in 1:00", "esc hides it")
	if s := h.statusLine(); !strings.Contains(s, "Sign-in link issued") {
		t.Fatalf("status: %q", s)
	}
	h.checkFits(80, 24)

	// The URL is laid out whole over full lines, nothing else on them.
	url := shownURL(t, h)
	if !strings.HasPrefix(url, linkBase) || len(url) <= 80 {
		t.Fatalf("shown URL %q", url)
	}
	for _, l := range strings.Split(h.view(), "\n") {
		if strings.HasPrefix(l, "https://") && len(l) != 80 {
			t.Fatalf("the URL's first line is not a full 80-column line: %q", l)
		}
	}
	token := strings.TrimPrefix(url, linkBase)

	// Issued for alice and audited; the token works once.
	rows := auditRows(t, st, store.ActionSignInLinkIssued)
	if len(rows) != 1 || rows[0].Actor != "alice" || rows[0].Channel != store.ChannelSSH {
		t.Fatalf("audit: %+v", rows)
	}
	if strings.Contains(rows[0].Detail, token) {
		t.Fatal("the token is in the audit detail")
	}
	if who, err := st.RedeemSignInLink(ctx, browser, token); err != nil || who.Name != "alice" {
		t.Fatalf("redeem: %+v %v", who, err)
	}
	if _, err := st.RedeemSignInLink(ctx, browser, token); store.ErrorCode(err) != store.CodeForbidden {
		t.Fatalf("second redeem: %v", err)
	}

	// Live resize lays the URL out again, still whole.
	h.send(tea.WindowSizeMsg{Width: 200, Height: 40})
	if got := shownURL(t, h); got != url {
		t.Fatalf("after resize the URL reads %q", got)
	}
	h.checkFits(200, 40)
	h.send(tea.WindowSizeMsg{Width: 60, Height: 20})
	if got := shownURL(t, h); got != url {
		t.Fatalf("at 60 columns the URL reads %q", got)
	}
	h.checkFits(60, 20)

	// esc hides it.
	h.keys("esc")
	h.mustNotSee("Web admin sign-in link", token[:20])
	h.mustSee("Stripe API key")
}

func TestSignInLinkCountdown(t *testing.T) {
	h, st, _ := admin(t, Options{WebSignInURL: webURL})
	h.keys("w")
	url := shownURL(t, h)
	h.mustSee("expires in 1:00")
	if len(h.ticks) != 1 || h.ticks[0].d != time.Second {
		t.Fatalf("ticks: %+v", h.ticks)
	}
	fire := func() {
		t.Helper()
		tk := h.ticks[len(h.ticks)-1]
		h.ticks = nil
		h.send(tk.fn(h.clock.Now()))
	}
	h.clock.Advance(25 * time.Second)
	fire()
	h.mustSee("expires in 0:35")
	if len(h.ticks) != 1 {
		t.Fatal("the countdown stopped before the link expired")
	}
	h.clock.Advance(34*time.Second + 500*time.Millisecond)
	fire()
	h.mustSee("expires in 0:01")

	// At 60 s the link is gone from the screen, and the store refuses it.
	h.clock.Advance(500 * time.Millisecond)
	fire()
	h.mustNotSee("Web admin sign-in link", url[len(url)-20:])
	h.mustSee("Stripe API key")
	if s := h.statusLine(); !strings.Contains(s, "expired: press w for a new one") {
		t.Fatalf("status: %q", s)
	}
	if len(h.ticks) != 0 {
		t.Fatal("the countdown goes on after expiry")
	}
	if _, err := st.RedeemSignInLink(context.Background(), browser, strings.TrimPrefix(url, linkBase)); store.ErrorCode(err) != store.CodeForbidden {
		t.Fatalf("an expired link was accepted: %v", err)
	}

	// Leaving the screen drops a link; its tick does nothing.
	h.keys("w")
	h.mustSee("expires in 1:00")
	h.keys("2", "1")
	h.mustNotSee("Web admin sign-in link")
	fire()
	h.mustNotSee("Web admin sign-in link")
	if len(h.ticks) != 0 {
		t.Fatal("a dropped link keeps ticking")
	}

	// With colour, every line of the URL links to the whole URL (OSC 8).
	h2, _, _ := admin(t, Options{WebSignInURL: webURL, Renderer: testRenderer(true)})
	h2.keys("w")
	url2 := shownURL(t, h2)
	if n := strings.Count(h2.frame(), "\x1b]8;id=backroom-link;"+url2+"\a"); n < 2 {
		t.Fatalf("%d hyperlinks to the whole URL, want one per line", n)
	}
	h2.checkFits(80, 24)
}

func TestSignInLinkWebAdminOff(t *testing.T) {
	h, st, _ := admin(t, Options{})
	h.mustSee("Web admin", "off")
	h.keys("w")
	if s := h.statusLine(); !strings.Contains(s, "the web admin is off") {
		t.Fatalf("status: %q", s)
	}
	h.mustNotSee("Web admin sign-in link")
	if rows := auditRows(t, st, store.ActionSignInLinkIssued); len(rows) != 0 {
		t.Fatalf("a link was issued: %+v", rows)
	}
}

func TestWebPasswordSelf(t *testing.T) {
	st, c := openStore(t)
	ctx := context.Background()
	addMember(t, st, "alice", true, false)
	bob := addMember(t, st, "bob", false, false)
	h := newHarness(t, c, Options{Store: st, Actor: sshActor("bob", store.RoleStaff), Fingerprint: bob.fp})
	h.mustSee("Web password", "not set · p sets it")
	const good = "plum harbor velvet 42"
	typed := []string{good, "plum harbor velvet 43", "kiwi9", "1234567890123456", "bobbobbobbob1"}

	h.keys("p")
	h.mustSee("Your web password", "New password", "Type it again", "At least 12", "not all digits", "not a common password")
	h.checkFits(80, 24)

	// The two must match.
	h.typeText(typed[0])
	h.keys("enter")
	h.typeText(typed[1])
	h.keys("enter")
	h.mustSee("the two passwords do not match")

	// Each strength rule is named.
	for _, c := range []struct{ pw, rule string }{
		{typed[2], "too short"},
		{typed[3], "all digits"},
		{typed[4], "too similar to the user name"},
	} {
		h.typeText(c.pw)
		h.keys("tab")
		h.typeText(c.pw)
		h.keys("enter")
		h.mustSee(c.rule)
		if s := h.statusLine(); !strings.Contains(s, c.rule) {
			t.Fatalf("status for %q: %q", c.pw, s)
		}
	}
	if has, _ := st.HasPassword(ctx, "bob"); has {
		t.Fatal("a refused password was stored")
	}

	// q types into the form; esc leaves it unchanged.
	h.typeText("q")
	if h.quit {
		t.Fatal("q in the password form quit")
	}
	h.keys("esc")
	h.mustSee("Stripe API key")

	h.keys("p")
	h.typeText(good)
	h.keys("enter")
	h.typeText(good)
	h.keys("enter")
	if s := h.statusLine(); !strings.Contains(s, "web password set") {
		t.Fatalf("status: %q", s)
	}
	h.mustSee("set · p changes it")
	if ok, err := st.VerifyPassword(ctx, "bob", good); !ok || err != nil {
		t.Fatalf("verify: %v %v", ok, err)
	}
	rows := auditRows(t, st, store.ActionPasswordSet)
	if len(rows) != 1 || rows[0].Actor != "bob" || rows[0].Target != "bob" || !strings.Contains(rows[0].Detail, `"self"`) {
		t.Fatalf("audit: %+v", rows)
	}
	// Nothing typed ever reached a frame; the inputs showed masks.
	masked := false
	for _, f := range h.frames {
		for _, pw := range typed {
			if strings.Contains(f, pw) {
				t.Fatalf("a frame shows a typed password %q", pw)
			}
		}
		masked = masked || strings.Contains(f, "> *****")
	}
	if !masked {
		t.Fatal("the password inputs never showed a mask")
	}
}

func TestWebPasswordFromStaffScreen(t *testing.T) {
	h, st, _ := admin(t, Options{Width: 100, Height: 30})
	ctx := context.Background()
	addMember(t, st, "bob", false, false)
	h.keys("5")
	s := h.m.screens[4].(*staffScreen)
	for i, m := range s.shown {
		if m.Name == "bob" {
			s.grid.setCursor(i)
		}
	}
	h.keys("w")
	h.mustSee("Web password for bob")
	h.checkFits(100, 30)
	const pw = "granite lantern oyster"
	h.typeText(pw)
	h.keys("enter")
	h.typeText("password")
	h.keys("enter")
	h.mustSee("do not match")
	h.typeText("password1234")
	h.keys("enter")
	h.typeText("password1234")
	h.keys("enter")
	h.mustSee("too common")
	h.typeText(pw)
	h.keys("enter")
	h.typeText(pw)
	h.keys("enter")
	if s := h.statusLine(); !strings.Contains(s, "New web password set for bob") {
		t.Fatalf("status: %q", s)
	}
	h.mustNotSee("Web password for bob")
	if ok, err := st.VerifyPassword(ctx, "bob", pw); !ok || err != nil {
		t.Fatalf("verify: %v %v", ok, err)
	}
	rows := auditRows(t, st, store.ActionPasswordSet)
	if len(rows) != 1 || rows[0].Actor != "alice" || rows[0].Target != "bob" || !strings.Contains(rows[0].Detail, `"admin"`) {
		t.Fatalf("audit: %+v", rows)
	}
	for _, f := range h.frames {
		if strings.Contains(f, pw) {
			t.Fatal("a frame shows the typed password")
		}
	}
	h.keys("?")
	h.mustSee("set web password")
}

func TestSessionsScreenWebSessions(t *testing.T) {
	st, c := openStore(t)
	ctx := context.Background()
	alice := addMember(t, st, "alice", true, false)
	addMember(t, st, "bob", false, false)
	addMember(t, st, "carol", false, false)
	now := c.Now()
	lim := store.WebSessionLimits{Idle: 30 * time.Minute, MaxAge: 12 * time.Hour}
	web := func(name, addr, ua string) string {
		t.Helper()
		tok, _, err := st.CreateWebSession(ctx, store.Actor{Name: name, Role: store.RoleStaff, Channel: store.ChannelWeb, RemoteAddr: addr}, "password", ua, lim)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	const firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	bobTok := web("bob", "203.0.113.5", firefox)
	c.Advance(time.Minute)
	carol1 := web("carol", "192.0.2.10", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15")
	carol2 := web("carol", "192.0.2.11", "curl/8.5.0")
	c.Advance(4 * time.Minute)
	fs := &fakeSessions{list: []SessionInfo{
		{ID: "sess-alice", User: "alice", Role: "admin", Fingerprint: alice.fp, RemoteAddr: "198.51.100.7:50022", Started: now.Add(-time.Hour), LastInput: c.Now()},
		{ID: "s-carol", User: "carol", Role: "staff", Fingerprint: "SHA256:carolcarolcarolcarolcarolcarolcarolcarolca", RemoteAddr: "192.0.2.10:40000", Started: now.Add(-time.Minute), LastInput: c.Now()},
	}}
	h := newHarness(t, c, Options{Store: st, Sessions: fs, Actor: sshActor("alice", store.RoleAdmin), Fingerprint: alice.fp, Width: 100, Height: 30})
	h.keys("6")
	h.mustSee("via", "key / browser", "alice (you)", "Firefox 128 (Linux)", "Safari 17 (macOS)", "curl 8",
		"203.0.113.5", "5m00s", "5 live sessions (2 SSH, 3 web)")
	h.checkFits(100, 30)
	h.send(tea.WindowSizeMsg{Width: 80, Height: 24})
	h.mustSee("via", "key / browser", "since (UTC)", "idle", "Firefox 128", "curl 8", "5m00s")
	h.checkFits(80, 24)
	h.send(tea.WindowSizeMsg{Width: 100, Height: 30})
	s := h.m.screens[5].(*sessionsScreen)
	// Oldest first, web and SSH interleaved; bob's web row says "web".
	var order []string
	for _, r := range s.shown {
		order = append(order, r.user+"/"+r.via)
	}
	if got := strings.Join(order, " "); got != "alice/ssh carol/ssh bob/web carol/web carol/web" {
		t.Fatalf("order: %s", got)
	}
	if !strings.Contains(h.view(), "bob") || !strings.Contains(lineWith(h.view(), "bob"), " web ") {
		t.Fatalf("bob's row does not say web:\n%s", h.view())
	}
	// The search matches the browser too.
	h.keys("/")
	h.typeText("firefox")
	if len(s.shown) != 1 || s.shown[0].user != "bob" {
		t.Fatalf("search shows %+v", s.shown)
	}
	h.keys("esc")

	sel := func(user, via string) {
		t.Helper()
		for i, r := range s.shown {
			if r.user == user && r.via == via {
				s.grid.setCursor(i)
				return
			}
		}
		t.Fatalf("%s/%s not listed", user, via)
	}
	// End bob's web session through the store.
	sel("bob", viaWeb)
	h.keys("x")
	h.mustSee("End the web session of bob from 203.0.113.5?")
	h.keys("y")
	if s := h.statusLine(); !strings.Contains(s, "Ended the web session of bob") {
		t.Fatalf("status: %q", s)
	}
	if _, err := st.WebSession(ctx, bobTok, lim); !errors.Is(err, store.ErrNoWebSession) {
		t.Fatalf("bob's web session still works: %v", err)
	}
	h.mustNotSee("Firefox")
	if len(fs.ended) != 0 {
		t.Fatalf("an SSH session was ended: %v", fs.ended)
	}
	rows := auditRows(t, st, store.ActionSessionTerminated)
	if len(rows) != 1 || rows[0].Actor != "alice" || rows[0].Target != "bob" || !strings.Contains(rows[0].Detail, `"web"`) {
		t.Fatalf("audit: %+v", rows)
	}

	// End every session of carol: her SSH session and both web ones.
	sel("carol", viaWeb)
	h.keys("X")
	h.mustSee("End every session of carol (1 SSH, 2 web)?")
	h.keys("n")
	if _, err := st.WebSession(ctx, carol1, lim); err != nil {
		t.Fatalf("n ended carol's sessions: %v", err)
	}
	h.keys("X", "y")
	if s := h.statusLine(); !strings.Contains(s, "Ended every session of carol: 1 SSH, 2 web.") {
		t.Fatalf("status: %q", s)
	}
	for _, tok := range []string{carol1, carol2} {
		if _, err := st.WebSession(ctx, tok, lim); !errors.Is(err, store.ErrNoWebSession) {
			t.Fatalf("carol's web session still works: %v", err)
		}
	}
	if len(fs.ended) != 1 || fs.ended[0] != "s-carol" {
		t.Fatalf("SSH sessions ended: %v", fs.ended)
	}
	h.mustSee("1 live session")
	if len(s.list) != 1 || s.list[0].user != "alice" {
		t.Fatalf("still listed: %+v", s.list)
	}
	h.keys("?")
	h.mustSee("end all of member")
}

func TestBrowserName(t *testing.T) {
	for ua, want := range map[string]string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36":             "Chrome 126 (Windows)",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0": "Edge 126 (Windows)",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.224 Safari/537.36":          "Headless Chrome 120 (Linux)",
		"Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36":                "Chrome 126 (Android)",
		"":                  "—",
		"SomethingElse/1.0": "SomethingElse/1.0",
	} {
		if got := browserName(ua); got != want {
			t.Errorf("browserName(%q) = %q, want %q", ua, got, want)
		}
	}
}

// TestWebPasswordFromLogin: the home screen shows what the login read
// (no query of its own on the session's first frame), and reads it afresh
// when the screen is shown again.
func TestWebPasswordFromLogin(t *testing.T) {
	st, c := openStore(t)
	ctx := context.Background()
	addMember(t, st, "alice", true, false)
	bob := addMember(t, st, "bob", false, false)
	h := newHarness(t, c, Options{Store: st, Actor: sshActor("bob", store.RoleStaff), Fingerprint: bob.fp, WebPasswordSet: true})
	h.mustSee("Web password", "set · p changes it")

	// Set from elsewhere meanwhile (none in fact): back on the screen, the
	// store's answer wins over the login's.
	if has, err := st.HasPassword(ctx, "bob"); err != nil || has {
		t.Fatalf("HasPassword = %v, %v", has, err)
	}
	h.keys("3", "1")
	h.mustSee("Web password", "not set · p sets it")
}
