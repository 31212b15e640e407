package tui

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"rsc.io/qr"

	"backroom/store"
)

const (
	testKey  = "sk_test_4eC39HqLyjWDarjtT1zdp7dcAbCd"
	testKey2 = "sk_test_Zz9988776655443322110011WxYz"
	liveKey  = "sk_live_51HqLyjWDarjtT1zdp7dcLiVeK3yQr9"
)

// admin sets up a store with alice (admin) and a console for her.
func admin(t *testing.T, o Options) (*harness, *store.Store, member) {
	t.Helper()
	st, c := openStore(t)
	alice := addMember(t, st, "alice", true, false)
	o.Store = st
	o.Actor = sshActor("alice", store.RoleAdmin)
	o.Fingerprint = alice.fp
	return newHarness(t, c, o), st, alice
}

func TestFirstFrameIsComplete(t *testing.T) {
	st, c := openStore(t)
	alice := addMember(t, st, "alice", true, false)
	m := New(Options{Store: st, Actor: sshActor("alice", store.RoleAdmin), Fingerprint: alice.fp, Now: c.Now, Width: 80, Height: 24})
	h := &harness{t: t, m: m}
	// Before Init and before any query answered.
	h.mustSee("Backroom", "alice", "(admin)", "1 Key", "2 Clients", "3 Audit", "4 Webhooks", "5 Staff", "loading…", "? help", "q quit")
	h.checkFits(80, 24)
}

func TestHeaderAndKeyUpdate(t *testing.T) {
	h, st, alice := admin(t, Options{Width: 100, Height: 30})
	h.mustSee("Backroom", "alice", "(admin)", "[NONE]", "No Stripe key is set", "Updates go to", "database (encrypted)")

	// A wrong step-up code is refused with the store's message.
	h.keys("u")
	h.mustSee("Secret key")
	h.typeText(testKey)
	h.keys("enter")
	h.mustSee("sk_test_...AbCd", "Verification code")
	h.typeText("000000")
	h.keys("enter")
	h.mustSee("the verification code was not accepted")
	if !strings.Contains(h.statusLine(), "verification code was not accepted") {
		t.Fatalf("status line: %q", h.statusLine())
	}
	// The form starts over (the key is not kept) and succeeds with a
	// fresh code.
	h.mustSee("Secret key")
	h.typeText(testKey)
	h.keys("enter")
	code, _ := store.CodeFor(alice.secret, h.clock.Now())
	h.typeText(code)
	h.keys("enter")
	if s := h.statusLine(); !strings.Contains(s, "Stripe key updated: sk_test_...AbCd (TEST)") {
		t.Fatalf("status line: %q", s)
	}
	h.mustSee("[TEST]", "Source", "sk_test_...AbCd", "Set by", "alice, 2026-11-27 12:00:00 UTC")
	h.mustNotSee("[NONE]")
	rows, err := st.ListAudit(context.Background(), store.AuditQuery{ActionPrefix: store.ActionKeyUpdated})
	if err != nil || len(rows) != 1 || rows[0].Actor != "alice" || rows[0].Channel != store.ChannelSSH {
		t.Fatalf("key.updated rows: %+v %v", rows, err)
	}

	// A live key needs LIVE typed, then a fresh code; the badge turns LIVE.
	h.clock.Advance(30 * time.Second)
	h.keys("u")
	h.typeText(liveKey)
	h.keys("enter")
	h.mustSee("This is a LIVE key", "Type LIVE")
	h.typeText("live")
	h.keys("enter")
	h.mustSee("type LIVE in capital letters")
	h.typeText("LIVE")
	h.keys("enter")
	h.mustSee("confirmed", "Verification code")
	code, _ = store.CodeFor(alice.secret, h.clock.Now())
	h.typeText(code)
	h.keys("enter")
	if s := h.statusLine(); !strings.Contains(s, "Stripe key updated: sk_live_...yQr9 (LIVE)") {
		t.Fatalf("status line: %q", s)
	}
	h.mustSee("[!LIVE!]")

	// The typed keys never reached a frame.
	for _, f := range h.frames {
		for _, secret := range []string{testKey, liveKey, testKey[8:], liveKey[8:]} {
			if strings.Contains(f, secret) {
				t.Fatalf("a frame shows the secret key:\n%s", f)
			}
		}
	}
}

func TestKeyFormRefusesBadKeys(t *testing.T) {
	h, _, _ := admin(t, Options{})
	h.keys("u")
	h.typeText("pk_test_4eC39HqLyjWDarjtT1zdp7dcAbCd")
	h.keys("enter")
	h.mustSee("publishable key")
	h.typeText("hello")
	h.keys("enter")
	h.mustSee("not a Stripe secret key")
	// q types into the form; esc leaves it.
	h.typeText("q")
	if h.quit {
		t.Fatal("q in a form quit the console")
	}
	h.keys("esc")
	h.mustSee("Press u to update the key")
	h.mustNotSee("Secret key")
}

func TestKeyShadowedByEnv(t *testing.T) {
	dir := t.TempDir()
	mk := store.NewMasterKey()
	st, err := store.Open(context.Background(), store.Options{Dir: dir, MasterKey: mk})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetStripeKey(context.Background(), cliActor, store.SetKeyRequest{Key: testKey}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st, err = store.Open(context.Background(), store.Options{Dir: dir, MasterKey: mk, EnvStripeKey: liveKey})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := newHarness(t, nil, Options{Store: st, Actor: sshActor("bob", store.RoleStaff)})
	h.mustSee("environment (STRIPE_API_KEY)", "STRIPE_API_KEY is set in the environment: it wins",
		"The stored key sk_test_...AbCd is shadowed", "[!LIVE!]", "sk_live_...yQr9")
}

func TestAuditScreen(t *testing.T) {
	h, st, _ := admin(t, Options{Width: 120, Height: 30})
	ctx := context.Background()
	start := h.clock.Now().Add(-200 * time.Minute)
	if err := st.SeedAudit(ctx, 150, start, time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, err := st.VerifyAudit(ctx); err != nil || !v.OK {
		t.Fatalf("seeded chain does not verify: %+v %v", v, err)
	}
	h.keys("3")
	a := h.m.screens[2].(*auditScreen)
	size := a.pageSize()
	newest, _ := st.ListAudit(ctx, store.AuditQuery{Limit: size})
	h.mustSee("time (UTC)", "actor", "action", "rows 1–"+itoa(size))
	// Newest first: the first data line is the newest row.
	lines := strings.Split(h.view(), "\n")
	if !strings.Contains(lines[3], fmtTime(newest[0].Time)) || !strings.Contains(lines[3], newest[0].Action) {
		t.Fatalf("first row is not the newest (%v %s):\n%s", newest[0].Time, newest[0].Action, h.view())
	}
	for i := 1; i < len(a.rows); i++ {
		if a.rows[i].ID >= a.rows[i-1].ID {
			t.Fatalf("rows not newest first: %d then %d", a.rows[i-1].ID, a.rows[i].ID)
		}
	}

	// Paging.
	first := a.rows[0].ID
	h.keys("pgdown")
	h.mustSee("rows " + itoa(size+1) + "–" + itoa(2*size))
	if a.rows[0].ID != first-int64(size) {
		t.Fatalf("next page starts at %d, want %d", a.rows[0].ID, first-int64(size))
	}
	h.keys("pgdown", "pgup")
	h.mustSee("rows " + itoa(size+1) + "–" + itoa(2*size))
	h.keys("pgup")
	h.mustSee("rows 1–" + itoa(size))
	if a.rows[0].ID != first {
		t.Fatalf("back on top at %d, want %d", a.rows[0].ID, first)
	}
	h.keys("G")
	h.mustSee("(oldest)")
	if a.rows[len(a.rows)-1].ID != 1 {
		t.Fatalf("oldest page ends at %d", a.rows[len(a.rows)-1].ID)
	}
	h.keys("g")
	h.mustSee("rows 1–")
	// Arrow down past the last row fetches the next page.
	for range size {
		h.keys("down")
	}
	if a.rows[0].ID != first-int64(size) || a.grid.cursor() != 0 {
		t.Fatalf("arrow paging: first %d cursor %d", a.rows[0].ID, a.grid.cursor())
	}
	h.keys("g")

	// Filter by actor: exact name.
	h.keys("a")
	h.typeText("bob")
	h.keys("enter")
	h.mustSee("filter: actor=bob")
	if len(a.rows) == 0 {
		t.Fatal("no rows for bob")
	}
	for _, ev := range a.rows {
		if ev.Actor != "bob" {
			t.Fatalf("actor filter let %q through", ev.Actor)
		}
	}
	// esc clears the filters.
	h.keys("esc")
	h.mustNotSee("filter:")

	// Action prefix, cycling through the actions present.
	h.keys("A")
	h.typeText("session.")
	h.keys("enter")
	h.mustSee("filter: action=session.")
	for _, ev := range a.rows {
		if !strings.HasPrefix(ev.Action, "session.") {
			t.Fatalf("action filter let %q through", ev.Action)
		}
	}
	h.keys("A")
	for range 40 {
		h.keys("backspace")
	}
	h.keys("right")
	if v := a.input.ti.Value(); !strings.HasSuffix(v, ".") {
		t.Fatalf("first cycled option %q is not a prefix", v)
	}
	h.keys("enter", "x")
	h.mustNotSee("filter:")

	// Time range: a bad value is explained, a good one narrows.
	h.keys("t")
	h.typeText("yesterday")
	h.keys("enter")
	h.mustSee("neither a duration")
	for range 20 {
		h.keys("backspace")
	}
	h.typeText("30m")
	h.keys("enter")
	h.mustSee("filter: time=30m")
	cut := h.clock.Now().Add(-30 * time.Minute)
	for _, ev := range a.rows {
		if ev.Time.Before(cut) {
			t.Fatalf("time filter let %v through", ev.Time)
		}
	}
	h.keys("x")

	// Incremental search narrows as it is typed; esc clears it.
	h.keys("/")
	h.typeText("recovery")
	h.mustSee("/recovery")
	if len(a.rows) == 0 {
		t.Fatal("search found nothing")
	}
	for _, ev := range a.rows {
		if !strings.Contains(ev.Action+ev.Detail+ev.Target+ev.Actor, "recovery") {
			t.Fatalf("search let %+v through", ev)
		}
	}
	h.keys("enter")
	h.mustSee(`filter: search="recovery"`)
	h.keys("/", "esc")
	h.mustNotSee("search=")

	// Detail: every field, the detail JSON pretty-printed, the hash.
	h.keys("g", "enter")
	ev := a.rows[0]
	h.mustSee("Audit row #"+itoa(int(ev.ID)), "Remote address", "Detail", "Hash", ev.Hash[:40])
	if !regexp.MustCompile(`\n\{ *\n  "[a-z_]+": `).MatchString(h.view()) {
		t.Fatalf("detail JSON is not pretty-printed:\n%s", h.view())
	}
	h.keys("esc")
	h.mustSee("rows 1–")
}

func TestAuditStaleResultsDropped(t *testing.T) {
	h, st, _ := admin(t, Options{})
	if err := st.SeedAudit(context.Background(), 50, h.clock.Now().Add(-time.Hour), time.Second); err != nil {
		t.Fatal(err)
	}
	h.keys("3")
	a := h.m.screens[2].(*auditScreen)
	a.filter.actor = "carol"
	slow := a.load(pageNewest, 0)
	a.filter.actor = "dave"
	fast := a.load(pageNewest, 0)
	h.send(fast())
	slowMsg := slow() // superseded: its context was cancelled or its result is late
	h.send(slowMsg)
	for _, ev := range a.rows {
		if ev.Actor != "dave" {
			t.Fatalf("a stale page replaced the current one: %q", ev.Actor)
		}
	}
}

func TestAuditEscapesAreNeutralised(t *testing.T) {
	h, st, _ := admin(t, Options{})
	evil := store.Actor{Name: "x\x1b[2J\x1b]0;pwned\x07", Channel: store.ChannelSSH, RemoteAddr: "\x1b[31m1.2.3.4"}
	if err := st.Audit(context.Background(), evil, store.ActionLoginFailure, "\u202eroot\x1b[0m", store.Detail{"user": "\x1b[5mx"}); err != nil {
		t.Fatal(err)
	}
	h.keys("3", "enter")
	f := h.frame()
	if strings.Contains(f, "\x1b") || strings.Contains(f, "\u202e") || strings.Contains(f, "\x07") {
		t.Fatalf("escape sequences from the log reached the terminal: %q", f)
	}
}

func TestStaffHiddenFromStaff(t *testing.T) {
	st, c := openStore(t)
	addMember(t, st, "alice", true, false)
	bob := addMember(t, st, "bob", false, false)
	h := newHarness(t, c, Options{Store: st, Actor: sshActor("bob", store.RoleStaff), Fingerprint: bob.fp, Sessions: &fakeSessions{}})
	if len(h.m.screens) != 4 {
		t.Fatalf("staff member has %d screens", len(h.m.screens))
	}
	h.mustSee("1 Key", "2 Clients", "3 Audit", "4 Webhooks", "(staff)")
	h.mustNotSee("Staff", "Sessions", "locked")
	for _, k := range []string{"5", "6", "tab", "tab", "tab", "tab", "shift+tab", "5"} {
		h.keys(k)
		switch h.m.screens[h.m.active].(type) {
		case *keyScreen, *clientsScreen, *auditScreen, *webhooksScreen:
		default:
			t.Fatalf("key %q reached an admin screen", k)
		}
		h.mustNotSee("Staff", "Sessions")
	}
}

func TestStaffScreen(t *testing.T) {
	h, st, _ := admin(t, Options{Width: 100, Height: 30})
	ctx := context.Background()
	h.keys("5")
	h.mustSee("name", "role", "TOTP", "alice", "admin", "enrolled")

	// Add bob, enrolling at login (the default).
	_, bobLine := newKeyLine(t, "bob@laptop")
	h.keys("n")
	h.mustSee("Add a staff member", "Enroll at login")
	h.typeText("bob")
	h.keys("tab")
	h.paste(bobLine)
	h.keys("enter", "enter", "enter")
	if s := h.statusLine(); !strings.Contains(s, "Added bob (staff)") || !strings.Contains(s, "bob enrolls at first login") {
		t.Fatalf("status: %q", s)
	}
	bob, err := st.GetStaff(ctx, "bob")
	if err != nil || bob.TOTP != store.TOTPPending || !bob.EnrollAtLogin || bob.Role != store.RoleStaff {
		t.Fatalf("bob: %+v %v", bob, err)
	}
	h.mustSee("bob", "pending")
	h.keys("/")
	h.typeText("bo")
	if sh := h.m.screens[4].(*staffScreen).shown; len(sh) != 1 || sh[0].Name != "bob" {
		t.Fatalf("search shows %+v", sh)
	}
	h.keys("enter")
	h.mustSee("search: bo")
	h.keys("esc")
	if sh := h.m.screens[4].(*staffScreen).shown; len(sh) != 2 {
		t.Fatalf("esc left %d rows", len(sh))
	}

	// A bad key is refused with the parser's words.
	h.keys("n")
	h.typeText("carol")
	h.keys("tab")
	h.paste("ssh-ed25519 not-base64!")
	h.keys("enter", "enter", "enter")
	h.mustSee("public key:", "not valid base64")
	h.keys("esc")

	// Add carol with a secret shown now: the enrollment is shown once.
	_, carolLine := newKeyLine(t, "carol@laptop")
	h.keys("n")
	h.typeText("carol")
	h.keys("tab")
	h.paste(carolLine)
	h.keys("tab", "tab", "n", "enter")
	h.mustSee("Enrollment for carol", "Shown once", "Recovery codes", "otpauth URI", "▀")
	h.checkFits(100, 30)
	h.keys("enter")
	h.mustNotSee("Enrollment for carol")

	// Removing needs the typed name.
	sel := func(name string) {
		t.Helper()
		s := h.m.screens[4].(*staffScreen)
		for i, m := range s.shown {
			if m.Name == name {
				s.grid.setCursor(i)
				return
			}
		}
		t.Fatalf("%s not listed", name)
	}
	sel("bob")
	h.keys("d")
	h.mustSee("Remove bob and all their keys?")
	h.typeText("bobby")
	h.keys("enter")
	h.mustSee("the name does not match")
	h.typeText("bob")
	h.keys("enter")
	if _, err := st.GetStaff(ctx, "bob"); store.ErrorCode(err) != store.CodeNotFound {
		t.Fatalf("bob still there: %v", err)
	}
	h.mustNotSee("bob ")

	// The last admin cannot be removed: the store says so.
	sel("alice")
	h.keys("d")
	h.typeText("alice")
	h.keys("enter")
	if s := h.statusLine(); !strings.Contains(s, "last admin") {
		t.Fatalf("status: %q", s)
	}

	// Role, unlock, reset TOTP.
	sel("carol")
	h.keys("p")
	h.mustSee("Make carol an admin?")
	h.keys("y")
	if c, _ := st.GetStaff(ctx, "carol"); c.Role != store.RoleAdmin {
		t.Fatalf("carol role %s", c.Role)
	}
	sel("carol")
	h.keys("p", "n")
	if c, _ := st.GetStaff(ctx, "carol"); c.Role != store.RoleAdmin {
		t.Fatal("n changed the role")
	}

	// Lock carol with wrong codes; the header counts her, unlock clears.
	ca := sshActor("carol", store.RoleAdmin)
	for range 5 {
		if _, err := st.VerifyCode(ctx, ca, "fp", "000000", store.PurposeLogin); err != nil {
			t.Fatal(err)
		}
	}
	h.keys("1", "5")
	h.mustSee("1 locked", "2026-11-27 12:15:00")
	sel("carol")
	h.keys("u", "y")
	if s := h.statusLine(); !strings.Contains(s, "Unlocked carol") {
		t.Fatalf("status: %q", s)
	}
	h.mustNotSee("1 locked")

	sel("carol")
	h.keys("r")
	h.mustSee("enroll at next login", "new secret shown now")
	h.keys("e")
	if c, _ := st.GetStaff(ctx, "carol"); c.TOTP != store.TOTPPending || !c.EnrollAtLogin {
		t.Fatalf("carol after reset: %+v", c)
	}
	sel("carol")
	h.keys("r", "s")
	h.mustSee("Enrollment for carol")
	h.keys("esc")
	if c, _ := st.GetStaff(ctx, "carol"); c.TOTP != store.TOTPEnrolled {
		t.Fatalf("carol after reset with secret: %+v", c)
	}

	// Detail lists the keys; K removes one.
	k2, _ := newKeyLine(t, "carol@desktop")
	if _, err := st.AddStaff(ctx, cliActor, store.AddStaffRequest{Name: "carol", Key: k2, Comment: "carol@desktop"}); err != nil {
		t.Fatal(err)
	}
	h.keys("1", "5")
	sel("carol")
	h.keys("enter")
	h.mustSee("Keys (2)", "fingerprint", "ssh-ed25519", "carol@laptop", "carol@desktop")
	h.keys("down", "K")
	h.mustSee("Remove key SHA256:")
	h.keys("y")
	h.mustSee("Keys (1)", "carol@laptop")
	h.mustNotSee("carol@desktop")
	if c, _ := st.GetStaff(ctx, "carol"); len(c.Keys) != 1 {
		t.Fatalf("carol has %d keys", len(c.Keys))
	}
	h.keys("esc")
	h.mustSee("locked until (UTC)")
}

// fakeSessions is an in-memory session registry.
type fakeSessions struct {
	list  []SessionInfo
	calls int
	ended []string
	by    []store.Actor
}

func (f *fakeSessions) List() []SessionInfo {
	f.calls++
	return append([]SessionInfo(nil), f.list...)
}

func (f *fakeSessions) End(_ context.Context, by store.Actor, id string) error {
	f.ended = append(f.ended, id)
	f.by = append(f.by, by)
	var keep []SessionInfo
	for _, s := range f.list {
		if s.ID != id {
			keep = append(keep, s)
		}
	}
	f.list = keep
	return nil
}

func TestSessionsScreen(t *testing.T) {
	st, c := openStore(t)
	alice := addMember(t, st, "alice", true, false)
	now := c.Now()
	fs := &fakeSessions{list: []SessionInfo{
		{ID: "sess-alice", User: "alice", Role: "admin", Fingerprint: alice.fp, RemoteAddr: "198.51.100.7:50022", Started: now.Add(-time.Hour), LastInput: now},
		{ID: "s2", User: "bob", Role: "staff", Fingerprint: "SHA256:bobbobbobbobbobbobbobbobbobbobbobbobbobbob", RemoteAddr: "203.0.113.9:40000", Started: now.Add(-30 * time.Minute), LastInput: now.Add(-5 * time.Minute)},
	}}
	h := newHarness(t, c, Options{Store: st, Sessions: fs, Actor: sshActor("alice", store.RoleAdmin), Fingerprint: alice.fp})
	if len(h.ticks) != 0 {
		t.Fatalf("ticks while the Sessions screen is hidden: %d", len(h.ticks))
	}
	h.keys("6")
	h.mustSee("alice (you)", "bob", "203.0.113.9:40000", "5m00s", "SHA256:bobbobbo…", "2 live sessions")
	if len(h.ticks) != 1 || h.ticks[0].d != 2*time.Second {
		t.Fatalf("ticks: %+v", h.ticks)
	}
	// Incremental search narrows the list; esc clears it.
	h.keys("/")
	h.typeText("203.0")
	h.mustSee("bob")
	h.mustNotSee("alice (you)")
	h.keys("esc")
	h.mustSee("alice (you)", "bob")

	// The tick refreshes while visible.
	fs.list = append(fs.list, SessionInfo{ID: "s3", User: "carol", RemoteAddr: "192.0.2.1:1", Started: now, LastInput: now})
	tick := h.ticks[0]
	h.ticks = nil
	h.send(tick.fn(now))
	h.mustSee("carol", "3 live sessions")
	if len(h.ticks) != 1 {
		t.Fatal("the refresh did not renew its tick")
	}
	// Hidden: the pending tick does nothing and is not renewed.
	h.keys("1")
	calls := fs.calls
	tick = h.ticks[0]
	h.ticks = nil
	h.send(tick.fn(now))
	if fs.calls != calls || len(h.ticks) != 0 {
		t.Fatalf("hidden screen refreshed (%d → %d calls, %d ticks)", calls, fs.calls, len(h.ticks))
	}
	// End bob's session.
	h.keys("6")
	s := h.m.screens[5].(*sessionsScreen)
	for i, si := range s.list {
		if si.user == "bob" {
			s.grid.setCursor(i)
		}
	}
	h.keys("x")
	h.mustSee("End the session of bob from 203.0.113.9:40000?")
	h.keys("n")
	if len(fs.ended) != 0 {
		t.Fatal("n ended the session")
	}
	h.keys("x", "y")
	if len(fs.ended) != 1 || fs.ended[0] != "s2" || fs.by[0].Name != "alice" {
		t.Fatalf("ended %v by %v", fs.ended, fs.by)
	}
	if s := h.statusLine(); !strings.Contains(s, "Ended the session of bob") {
		t.Fatalf("status: %q", s)
	}
	h.mustNotSee("203.0.113.9")
}

func TestEnrollment(t *testing.T) {
	st, c := openStore(t)
	addMember(t, st, "alice", true, false)
	eve := addMember(t, st, "eve", false, true)
	deadline := c.Now().Add(10 * time.Minute)
	h := newHarness(t, c, Options{Store: st, Actor: sshActor("eve", store.RoleStaff), Fingerprint: eve.fp,
		Enroll: true, EnrollDeadline: deadline, Renderer: testRenderer(true)})
	en := h.m.enroll.en.e
	h.mustSee("Backroom", "eve", "enrollment", "time left 10:00", "Set up your authenticator app",
		en.Secret[:4]+" "+en.Secret[4:8], en.RecoveryCodes[0], en.RecoveryCodes[9], "each works once", "Code from the app")
	h.mustNotSee("1 Key", "Audit", "Staff")
	h.checkFits(80, 24)
	if !strings.Contains(h.frame(), "\x1b[") || !strings.Contains(h.view(), "▀") {
		t.Fatal("the QR code is not drawn in colour half blocks")
	}
	// Nothing else is reachable.
	h.keys("tab", "2", "3", "a")
	if h.m.active != 0 || len(h.m.screens) != 1 {
		t.Fatal("left the enrollment screen")
	}
	// The countdown ticks.
	if len(h.ticks) == 0 {
		t.Fatal("no countdown tick")
	}
	c.Advance(61 * time.Second)
	h.mustSee("time left 8:59")

	// A wrong code, then the right one.
	h.typeText("123456")
	h.keys("enter")
	h.mustSee("that code does not match")
	code, _ := store.CodeFor(en.Secret, c.Now())
	h.typeText(code)
	h.keys("enter")
	h.mustSee("Enrolled. Log in again with your key and a code from your app.")
	h.mustNotSee(en.Secret[:8], en.RecoveryCodes[0])
	if e, _ := st.GetStaff(context.Background(), "eve"); e.TOTP != store.TOTPEnrolled {
		t.Fatalf("eve not enrolled: %+v", e)
	}
	last := h.ticks[len(h.ticks)-1]
	if last.d != 5*time.Second {
		t.Fatalf("no 5 s close timer: %v", last.d)
	}
	h.keys("x")
	if !h.quit {
		t.Fatal("a key after enrolling did not quit")
	}
}

func TestEnrollmentQuitAndTimeout(t *testing.T) {
	st, c := openStore(t)
	eve := addMember(t, st, "eve", false, true)
	h := newHarness(t, c, Options{Store: st, Actor: sshActor("eve", store.RoleStaff), Fingerprint: eve.fp,
		Enroll: true, EnrollDeadline: c.Now().Add(time.Minute)})
	h.typeText("q")
	if !h.quit {
		t.Fatal("q did not quit the enrollment")
	}
	h = newHarness(t, c, Options{Store: st, Actor: sshActor("eve", store.RoleStaff), Fingerprint: eve.fp,
		Enroll: true, EnrollDeadline: c.Now().Add(time.Minute)})
	c.Advance(2 * time.Minute)
	h.mustSee("The time to enroll is over")
	tk := h.ticks[len(h.ticks)-1]
	h.ticks = nil
	h.send(tk.fn(c.Now()))
	if len(h.ticks) != 0 {
		t.Fatal("the countdown keeps ticking after the deadline")
	}
}

func TestFullHelp(t *testing.T) {
	h, _, _ := admin(t, Options{})
	h.keys("3", "?")
	h.mustSee("Keys", "next screen", "go to screen", "filter actor", "filter action", "time range", "search", "quit (always)", "next page")
	h.checkFits(80, 24)
	h.keys("?")
	h.mustNotSee("quit (always)")
	h.mustSee("rows")
	h.keys("5", "?")
	h.mustSee("add staff", "remove staff", "reset TOTP", "unlock", "admin/staff")
	h.keys("esc")
	h.mustNotSee("(? or esc closes)")
}

func TestLayoutFits(t *testing.T) {
	for _, colour := range []bool{false, true} {
		st, c := openStore(t)
		alice := addMember(t, st, "alice", true, false)
		if err := st.SeedAudit(context.Background(), 300, c.Now().Add(-time.Hour), time.Second); err != nil {
			t.Fatal(err)
		}
		fs := &fakeSessions{list: []SessionInfo{{ID: "s1", User: "alice", Fingerprint: alice.fp, RemoteAddr: "[2001:db8::1]:50000", Started: c.Now()}}}
		h := newHarness(t, c, Options{Store: st, Sessions: fs, Actor: sshActor("alice", store.RoleAdmin), Fingerprint: alice.fp,
			Renderer: testRenderer(colour), Width: 80, Height: 24})
		for _, size := range [][2]int{{80, 24}, {120, 40}, {100, 30}, {80, 24}} {
			h.send(tea.WindowSizeMsg{Width: size[0], Height: size[1]})
			for _, screen := range []string{"1", "2", "3", "4", "5", "6"} {
				h.keys(screen)
				h.checkFits(size[0], size[1])
				if screen == "3" {
					a := h.m.screens[2].(*auditScreen)
					if got, want := len(a.rows), size[1]-6; got != want {
						t.Errorf("%v: audit page has %d rows, want %d", size, got, want)
					}
					h.keys("enter")
					h.checkFits(size[0], size[1])
					h.keys("esc", "?")
					h.checkFits(size[0], size[1])
					h.keys("?")
				}
				if screen == "4" {
					h.keys("R")
					h.checkFits(size[0], size[1])
					h.keys("esc", "s", "t")
					h.checkFits(size[0], size[1])
					h.keys("esc", "s", "s", "s")
				}
				if screen == "5" {
					h.keys("n")
					h.checkFits(size[0], size[1])
					h.keys("esc", "enter")
					h.checkFits(size[0], size[1])
					h.keys("esc")
				}
			}
			h.keys("1", "u")
			h.checkFits(size[0], size[1])
			h.keys("esc")
		}
		// Columns that do not fit are dropped.
		h.send(tea.WindowSizeMsg{Width: 80, Height: 24})
		h.keys("3")
		h.mustNotSee("channel")
		h.send(tea.WindowSizeMsg{Width: 140, Height: 24})
		h.mustSee("channel", "remote address")
	}
}

func TestNotices(t *testing.T) {
	h, _, _ := admin(t, Options{})
	h.send(NoticeMsg{Text: "Idle: this session ends in 1 minute — press any key to stay"})
	h.mustSee("Idle: this session ends in 1 minute — press any key to stay")
	// The next key only dismisses it.
	h.keys("q")
	if h.quit {
		t.Fatal("the key that dismissed the notice quit")
	}
	h.mustNotSee("Idle:")
	_, cmd := h.m.Update(NoticeMsg{Text: "Backroom is shutting down.", Quit: true})
	if cmd == nil {
		t.Fatal("no command for a quit notice")
	}
	if _, ok := cmd().(tea.QuitMsg); !ok {
		t.Fatal("a quit notice does not return tea.Quit")
	}
	h.mustSee("Backroom is shutting down.")
}

func TestQuitKeys(t *testing.T) {
	h, _, _ := admin(t, Options{})
	h.keys("q")
	if !h.quit {
		t.Fatal("q did not quit")
	}
	h, _, _ = admin(t, Options{})
	h.keys("3", "/")
	h.typeText("q")
	if h.quit {
		t.Fatal("q in the search input quit")
	}
	h.mustSee("/q")
	h.keys("ctrl+c")
	if !h.quit {
		t.Fatal("ctrl+c did not quit from an input")
	}
}

func TestQRCodeModules(t *testing.T) {
	enr := store.NewEnrollment("a_rather_long_staff_name.x")
	text := qrCompact(enr.URI)
	if !strings.Contains(text, "secret="+enr.Secret) || strings.Contains(text, "algorithm=") || !strings.HasPrefix(text, "otpauth://totp/Backroom:") {
		t.Fatalf("compact URI %q", text)
	}
	code, err := qr.Encode(text, qr.L)
	if err != nil {
		t.Fatal(err)
	}
	for _, quiet := range []int{1, 2} {
		for _, darkBg := range []bool{true, false} {
			r := testRenderer(false)
			r.SetHasDarkBackground(darkBg)
			lines := qrLines(newStyles(r), text, quiet)
			for i, l := range lines {
				cells := []rune(l)
				if len(cells) != code.Size+2*quiet {
					t.Fatalf("quiet %d line %d is %d wide, want %d", quiet, i, len(cells), code.Size+2*quiet)
				}
				for col, ch := range cells {
					x := col - quiet
					yTop := 2*i - quiet - quiet%2
					for half, y := range []int{yTop, yTop + 1} {
						outside := y < -quiet || y >= code.Size+quiet
						dark := x >= 0 && y >= 0 && x < code.Size && y < code.Size && code.Black(x, y)
						inked := strings.ContainsRune([]string{"█▀", "█▄"}[half], ch)
						want := !outside && (dark != darkBg)
						if inked != want {
							t.Fatalf("quiet %d darkBg %v: cell (%d,%d) half %d drawn %q", quiet, darkBg, col, i, half, ch)
						}
					}
				}
			}
			if want := (code.Size + 2*quiet + 1) / 2; len(lines) != want {
				t.Fatalf("quiet %d: %d lines, want %d", quiet, len(lines), want)
			}
		}
	}
}
