package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"backroom/store"
	"backroom/tui"
)

// TestKeyUpdate: the key form applies the console's rules (validation,
// LIVE confirmation, a fresh step-up code) through the same store method;
// the update is audited with channel web and the key is never echoed.
func TestKeyUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	a := e.add("alice", false, "")
	b := e.browser()
	b.signInLink(a)
	tok := b.token()
	testKey := "sk_test_" + strings.Repeat("T", 20) + "abcd1234"
	liveKey := "sk_live_" + strings.Repeat("L", 20) + "wxyz9876"

	post := func(key, live, code string) resp {
		return b.post("key", url.Values{"csrf": {tok}, "key": {key}, "live": {live}, "code": {code}})
	}
	for _, c := range []struct {
		name, key, live, code string
		status                int
		says                  string
	}{
		{"publishable key", "pk_test_" + strings.Repeat("x", 24), "", e.code(a), 400, "publishable key"},
		{"garbage", "hello", "", e.code(a), 400, "not a Stripe secret key"},
		{"live without LIVE", liveKey, "", e.code(a), 400, "type LIVE"},
		{"live with live", liveKey, "live", e.code(a), 400, "type LIVE"},
		{"no code", testKey, "", "", 400, "code from your authenticator"},
		{"wrong code", testKey, "", "000000", 403, "verification code was not accepted"},
	} {
		r := post(c.key, c.live, c.code)
		if r.code != c.status || !strings.Contains(r.body, c.says) {
			t.Errorf("%s: %d, want %d saying %q\n%s", c.name, r.code, c.status, c.says, r.body)
		}
		if strings.Contains(r.body, c.key) && len(c.key) > 10 {
			t.Errorf("%s: the page echoes the key", c.name)
		}
	}
	if ks, _ := e.st.KeyStatus(ctxb); ks.Source != store.SourceNone {
		t.Fatalf("a refused form stored a key: %+v", ks)
	}

	r := post(testKey, "", e.code(a))
	if r.code != http.StatusSeeOther || r.location() != testPath+"key?done=key-updated" {
		t.Fatalf("update = %d → %q\n%s", r.code, r.location(), r.body)
	}
	page := b.get("key?done=key-updated")
	if !strings.Contains(page.body, "Stripe key updated.") || !strings.Contains(page.body, "sk_test_...1234") ||
		!strings.Contains(page.body, `badge-test">TEST<`) || strings.Contains(page.body, testKey) {
		t.Errorf("key page after the update:\n%s", page.body)
	}
	// The same code again is a replay.
	if r := post(testKey, "", e.code(a)); r.code != http.StatusForbidden {
		t.Errorf("replayed step-up code = %d", r.code)
	}
	e.nextStep()
	if r := post(liveKey, "LIVE", e.code(a)); r.code != http.StatusSeeOther {
		t.Fatalf("live key with LIVE = %d\n%s", r.code, r.body)
	}
	if page := b.get(""); !strings.Contains(page.body, `badge-live">LIVE<`) {
		t.Error("the header's badge does not say LIVE")
	}
	evs := e.events(store.ActionKeyUpdated)
	if len(evs) != 2 {
		t.Fatalf("%d key.updated rows", len(evs))
	}
	ev := evs[0]
	if ev.Actor != "alice" || ev.Channel != store.ChannelWeb || ev.RemoteAddr != "127.0.0.1" || ev.SessionID == "" ||
		!strings.Contains(ev.Detail, `"step_up":true`) || !strings.Contains(ev.Detail, "sk_live_...9876") || strings.Contains(ev.Detail, liveKey) {
		t.Errorf("audit row: %+v", ev)
	}
	// The key is in the audit page too (as the browser tests will look for it).
	if a := b.get("audit?action=key."); !strings.Contains(a.body, "key.updated") || !strings.Contains(a.body, "sk_live_...9876") {
		t.Error("the audit page does not show the update")
	}
}

// TestClients: the list searches and pages by keyset; the detail is
// audited as client.viewed (channel web); a bad id is refused without a
// lookup.
func TestClients(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	a := e.add("alice", false, "")
	if err := e.st.SeedClients(ctxb, 120, e.clock.Now(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.AddClient(ctxb, cliActor, store.ClientData{CustomerID: "cus_Zed42", Name: "Zed Quuxley-Vrbanic", Email: "zed@example.org", Currency: "eur", Balance: 1250}); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.signInLink(a)

	idRE := regexp.MustCompile(`<code>(cus_[A-Za-z0-9]+)</code></a>`)
	seen := map[string]bool{}
	page := b.get("clients")
	for pages := 0; ; pages++ {
		if page.code != 200 {
			t.Fatalf("clients page = %d\n%s", page.code, page.body)
		}
		ids := idRE.FindAllStringSubmatch(page.body, -1)
		if len(ids) == 0 || len(ids) > clientsPageSize {
			t.Fatalf("page %d shows %d clients", pages, len(ids))
		}
		for _, m := range ids {
			if seen[m[1]] {
				t.Fatalf("%s on two pages", m[1])
			}
			seen[m[1]] = true
		}
		next := regexp.MustCompile(`<a href="([^"]+)" rel="next">`).FindStringSubmatch(page.body)
		if next == nil {
			break
		}
		page = b.get(strings.TrimPrefix(strings.ReplaceAll(next[1], "&amp;", "&"), testPath))
	}
	if len(seen) != 121 {
		t.Errorf("paged through %d clients, want 121", len(seen))
	}
	// Back from the last page.
	prev := regexp.MustCompile(`<a href="([^"]+)" rel="prev">`).FindStringSubmatch(page.body)
	if prev == nil {
		t.Fatal("no previous link on the last page")
	}
	if back := b.get(strings.TrimPrefix(strings.ReplaceAll(prev[1], "&amp;", "&"), testPath)); len(idRE.FindAllString(back.body, -1)) != clientsPageSize {
		t.Error("the previous page is not a full page")
	}

	found := b.get("clients?q=Quuxley")
	if ids := idRE.FindAllStringSubmatch(found.body, -1); len(ids) != 1 || ids[0][1] != "cus_Zed42" {
		t.Fatalf("search found %v", ids)
	}
	if n := len(e.events(store.ActionClientViewed)); n != 0 {
		t.Fatalf("listing audited %d views", n)
	}
	d := b.get("clients/cus_Zed42")
	if d.code != 200 || !strings.Contains(d.body, "zed@example.org") || !strings.Contains(d.body, "12.50 EUR") {
		t.Fatalf("detail = %d\n%s", d.code, d.body)
	}
	evs := e.events(store.ActionClientViewed)
	if len(evs) != 1 || evs[0].Actor != "alice" || evs[0].Channel != store.ChannelWeb || evs[0].Target != "cus_Zed42" {
		t.Fatalf("client.viewed rows: %+v", evs)
	}
	if r := b.get("clients/cus_Nobody1"); r.code != 404 {
		t.Errorf("unknown client = %d", r.code)
	}
	if r := b.get("clients/robert'); DROP"); r.code != 404 && r.code != 400 {
		t.Errorf("bad id = %d", r.code)
	}
	if r := b.get("clients/not_a_customer"); r.code != 400 {
		t.Errorf("bad id = %d", r.code)
	}
	if n := len(e.events(store.ActionClientViewed)); n != 1 {
		t.Errorf("failed views audited: %d rows", n)
	}
}

// TestWebhooksReplay: failed events are listed by default; the detail
// shows the payload and deliveries; replay reprocesses the event (audited
// webhook.replayed, channel web).
func TestWebhooksReplay(t *testing.T) {
	t.Parallel()
	fixed := false
	e := newEnv(t, options{cfg: func(c *Config) {
		c.WebhookProcessor = func(ev store.IncomingEvent) (store.WebhookEffect, error) {
			if !fixed {
				return store.WebhookEffect{}, errors.New("customer not found yet")
			}
			return store.WebhookEffect{Ignored: true}, nil
		}
	}})
	a := e.add("alice", false, "")
	fail := func(ev store.IncomingEvent) (store.WebhookEffect, error) {
		return store.WebhookEffect{}, errors.New("boom")
	}
	ok := func(ev store.IncomingEvent) (store.WebhookEffect, error) {
		return store.WebhookEffect{Ignored: true}, nil
	}
	for id, p := range map[string]store.Processor{"evt_bad1": fail, "evt_good1": ok} {
		ev := store.IncomingEvent{EventID: id, Type: "invoice.paid", Created: e.clock.Now(), Payload: []byte(`{"id":"` + id + `","object":"event"}`)}
		if _, err := e.st.ReceiveWebhook(ctxb, store.WebhookAttempt{ReceivedAt: e.clock.Now(), RemoteAddr: "54.187.174.169"}, ev, p); err != nil {
			t.Fatal(err)
		}
	}
	b := e.browser()
	b.signInLink(a)
	list := b.get("webhooks")
	if !strings.Contains(list.body, "evt_bad1") || strings.Contains(list.body, "evt_good1") {
		t.Fatalf("default list (failed):\n%s", list.body)
	}
	if all := b.get("webhooks?status=all"); !strings.Contains(all.body, "evt_good1") {
		t.Error("status=all hides events")
	}
	if head := b.get(""); !regexp.MustCompile(`title="failed events">1<`).MatchString(head.body) {
		t.Error("the header does not count the failed event")
	}
	d := b.get("webhooks/evt_bad1")
	if d.code != 200 || !strings.Contains(d.body, "&#34;object&#34;: &#34;event&#34;") || !strings.Contains(d.body, "54.187.174.169") || !strings.Contains(d.body, "boom") {
		t.Fatalf("detail = %d\n%s", d.code, d.body)
	}
	r := b.post("webhooks/evt_bad1/replay", url.Values{"csrf": {d.csrf(t)}})
	if r.code != http.StatusSeeOther || r.location() != testPath+"webhooks/evt_bad1?done=replay-failed" {
		t.Fatalf("replay = %d %q", r.code, r.location())
	}
	fixed = true
	r = b.post("webhooks/evt_bad1/replay", url.Values{"csrf": {d.csrf(t)}})
	if r.code != http.StatusSeeOther || r.location() != testPath+"webhooks/evt_bad1?done=replay-ignored" {
		t.Fatalf("replay = %d %q", r.code, r.location())
	}
	if p := b.get("webhooks/evt_bad1?done=replay-ignored"); !strings.Contains(p.body, "Replayed: the event is of a type") {
		t.Error("no replay notice")
	}
	evs := e.events(store.ActionWebhookReplayed)
	if len(evs) != 2 || evs[0].Channel != store.ChannelWeb || evs[0].Actor != "alice" || !strings.Contains(evs[0].Detail, `"outcome":"ignored"`) {
		t.Fatalf("webhook.replayed rows: %+v", evs)
	}
	if r := b.post("webhooks/evt_none/replay", url.Values{"csrf": {d.csrf(t)}}); r.code != 404 {
		t.Errorf("replaying an unknown event = %d", r.code)
	}
}

// TestAuditPageAndExport: the audit page filters and pages; export is for
// admins only (a staff member's attempt is refused before anything is
// written) and downloads the filtered rows, itself audited.
func TestAuditPageAndExport(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	admin := e.add("alice", true, "")
	staff := e.add("bob", false, "")
	if err := e.st.SeedAudit(ctxb, 120, e.clock.Now().Add(-time.Hour), time.Second); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.signInLink(staff)

	rowRE := regexp.MustCompile(`<td class="num">(\d+)</td>`)
	page := b.get("audit")
	rows := rowRE.FindAllStringSubmatch(page.body, -1)
	if len(rows) != auditPageSize {
		t.Fatalf("first page has %d rows", len(rows))
	}
	older := regexp.MustCompile(`<a href="([^"]+)" rel="next">`).FindStringSubmatch(page.body)
	if older == nil {
		t.Fatal("no older link")
	}
	next := b.get(strings.TrimPrefix(strings.ReplaceAll(older[1], "&amp;", "&"), testPath))
	nrows := rowRE.FindAllStringSubmatch(next.body, -1)
	first, _ := strconv.Atoi(nrows[0][1])
	last, _ := strconv.Atoi(rows[len(rows)-1][1])
	if len(nrows) != auditPageSize || first != last-1 {
		t.Fatalf("second page: %d rows starting at #%d after #%d", len(nrows), first, last)
	}
	newer := regexp.MustCompile(`<a href="([^"]+)" rel="prev">`).FindStringSubmatch(next.body)
	if newer == nil {
		t.Fatal("no newer link on the second page")
	}
	back := b.get(strings.TrimPrefix(strings.ReplaceAll(newer[1], "&amp;", "&"), testPath))
	if got := rowRE.FindAllStringSubmatch(back.body, -1); len(got) != auditPageSize || got[0][1] != rows[0][1] {
		t.Errorf("back to the first page: %d rows from %v", len(got), got[0])
	}

	filtered := b.get("audit?actor=alice")
	if strings.Contains(filtered.body, "<td>bob</td>") || !strings.Contains(filtered.body, "<td>alice</td>") {
		t.Error("the actor filter does not filter")
	}
	if r := b.get("audit?since=last-week"); r.code != 400 || !strings.Contains(r.body, "YYYY-MM-DD") {
		t.Errorf("a bad date = %d", r.code)
	}
	if strings.Contains(page.body, "audit/export") {
		t.Error("staff see the export form")
	}
	if r := b.post("audit/export", url.Values{"csrf": {b.token()}, "format": {"csv"}}); r.code != http.StatusForbidden || r.hdr.Get("Content-Disposition") != "" {
		t.Errorf("staff export = %d", r.code)
	}
	webExports := func() (out []store.Event) {
		for _, ev := range e.events(store.ActionAuditExported) {
			if ev.Channel == store.ChannelWeb {
				out = append(out, ev)
			}
		}
		return out
	}
	if n := len(webExports()); n != 0 {
		t.Fatalf("a refused export was audited: %d", n)
	}

	ad := e.browser()
	ad.signInLink(admin)
	ap := ad.get("audit")
	if !strings.Contains(ap.body, "audit/export") {
		t.Fatal("admins see no export form")
	}
	r := ad.post("audit/export", url.Values{"csrf": {ap.csrf(t)}, "format": {"csv"}, "actor": {"bob"}})
	if r.code != 200 || !strings.HasPrefix(r.hdr.Get("Content-Disposition"), `attachment; filename="backroom-audit-`) ||
		!strings.HasPrefix(r.hdr.Get("Content-Type"), "text/csv") {
		t.Fatalf("export = %d %v\n%s", r.code, r.hdr, r.body)
	}
	lines := strings.Split(strings.TrimSpace(r.body), "\n")
	if len(lines) < 2 || !strings.Contains(lines[1], "bob") || strings.Contains(r.body, ",alice,") {
		t.Errorf("export body:\n%s", r.body)
	}
	evs := webExports()
	if len(evs) != 1 || evs[0].Actor != "alice" {
		t.Errorf("audit.exported rows: %+v", evs)
	}
	if r := ad.post("audit/export", url.Values{"csrf": {ap.csrf(t)}, "format": {"xml"}}); r.code != 400 {
		t.Errorf("bad format = %d", r.code)
	}
}

// sshSessions is a registry of SSH sessions for the Sessions page (the
// real one lives in the SSH server; server's tests wire it).
type sshSessions struct{ list []tui.SessionInfo }

func (s *sshSessions) List() []tui.SessionInfo { return s.list }
func (s *sshSessions) End(_ context.Context, by store.Actor, id string) error {
	if !by.IsAdmin() {
		return &store.Error{Code: store.CodeForbidden, Msg: "only an admin may end sessions"}
	}
	for i, si := range s.list {
		if si.ID == id {
			s.list = append(s.list[:i], s.list[i+1:]...)
			return nil
		}
	}
	return &store.Error{Code: store.CodeNotFound, Msg: "that session has already ended"}
}

// TestSessions: the Sessions page is for admins; it lists web (and SSH)
// sessions and ends one (audited); the ended browser is signed out.
func TestSessions(t *testing.T) {
	t.Parallel()
	reg := &sshSessions{list: []tui.SessionInfo{{ID: "ssh1", User: "bob", Fingerprint: "SHA256:abcdefgh", RemoteAddr: "198.51.100.4:2200"}}}
	e := newEnv(t, options{cfg: func(c *Config) { c.SSH = reg }})
	admin := e.add("alice", true, "")
	staff := e.add("bob", false, "")
	bob := e.browser()
	bob.signInLink(staff)
	if r := bob.get("sessions"); r.code != http.StatusForbidden || strings.Contains(r.body, "SHA256") {
		t.Errorf("staff see sessions: %d", r.code)
	}
	if r := bob.get(""); strings.Contains(r.body, testPath+"sessions") {
		t.Error("staff see the Sessions link")
	}
	ws, _ := e.st.ListWebSessions(ctxb)
	if r := bob.post("sessions", url.Values{"csrf": {bob.token()}, "kind": {"web"}, "id": {ws[0].ID}}); r.code != http.StatusForbidden {
		t.Errorf("staff ended a session: %d", r.code)
	}

	al := e.browser()
	al.signInLink(admin)
	page := al.get("sessions")
	if page.code != 200 || !strings.Contains(page.body, "bob") || !strings.Contains(page.body, "SHA256:abcdefgh") || !strings.Contains(page.body, `>you<`) {
		t.Fatalf("sessions page:\n%s", page.body)
	}
	r := al.post("sessions", url.Values{"csrf": {page.csrf(t)}, "kind": {"web"}, "id": {ws[0].ID}})
	if r.code != http.StatusSeeOther || r.location() != testPath+"sessions?done=session-ended" {
		t.Fatalf("end = %d %q\n%s", r.code, r.location(), r.body)
	}
	if r := bob.get(""); r.code != http.StatusSeeOther {
		t.Errorf("an ended session still works: %d", r.code)
	}
	evs := e.events(store.ActionSessionTerminated)
	if len(evs) != 1 || evs[0].Actor != "alice" || evs[0].Target != "bob" {
		t.Errorf("session.terminated: %+v", evs)
	}
	if r := al.post("sessions", url.Values{"csrf": {page.csrf(t)}, "kind": {"ssh"}, "id": {"ssh1"}}); r.code != http.StatusSeeOther || len(reg.list) != 0 {
		t.Errorf("ending the SSH session = %d, %d left", r.code, len(reg.list))
	}
	if r := al.post("sessions", url.Values{"csrf": {page.csrf(t)}, "kind": {"web"}, "id": {ws[0].ID}}); r.code != 404 {
		t.Errorf("ending an ended session = %d", r.code)
	}
}

// TestEndAllOfAMembersSessions: an admin ends every web and SSH session of
// one member at once (each audited); other members' sessions stay, staff
// may not, and ending one's own signs out.
func TestEndAllOfAMembersSessions(t *testing.T) {
	t.Parallel()
	reg := &sshSessions{list: []tui.SessionInfo{
		{ID: "ssh1", User: "bob", Fingerprint: "SHA256:bobkey1", RemoteAddr: "198.51.100.4:2200"},
		{ID: "ssh2", User: "carol", Fingerprint: "SHA256:carolkey", RemoteAddr: "198.51.100.5:2200"},
	}}
	e := newEnv(t, options{cfg: func(c *Config) { c.SSH = reg }})
	admin := e.add("alice", true, "")
	bob := e.add("bob", false, "")
	carol := e.add("carol", false, "")
	bob1, bob2, carol1 := e.browser(), e.browser(), e.browser()
	bob1.signInLink(bob)
	bob2.signInLink(bob)
	carol1.signInLink(carol)

	if r := bob1.post("sessions", url.Values{"csrf": {bob1.token()}, "kind": {"member"}, "name": {"carol"}}); r.code != http.StatusForbidden {
		t.Errorf("staff ended a member's sessions: %d", r.code)
	}
	al := e.browser()
	al.signInLink(admin)
	page := al.get("sessions")
	for _, want := range []string{"By member", "End all of bob's sessions", "End all of carol's sessions"} {
		if !strings.Contains(page.body, want) {
			t.Fatalf("sessions page lacks %q:\n%s", want, page.body)
		}
	}
	r := al.post("sessions", url.Values{"csrf": {page.csrf(t)}, "kind": {"member"}, "name": {"bob"}})
	if r.code != http.StatusSeeOther || r.location() != testPath+"sessions?done=member-sessions-ended" {
		t.Fatalf("end all of bob's = %d %q\n%s", r.code, r.location(), r.body)
	}
	for i, b := range []*browser{bob1, bob2} {
		if r := b.get(""); r.code != http.StatusSeeOther {
			t.Errorf("bob's browser %d still signed in: %d", i+1, r.code)
		}
	}
	if r := carol1.get(""); r.code != http.StatusOK {
		t.Errorf("carol's session ended with bob's: %d", r.code)
	}
	if len(reg.list) != 1 || reg.list[0].User != "carol" {
		t.Errorf("SSH sessions left: %+v, want carol's only", reg.list)
	}
	evs := e.events(store.ActionSessionTerminated)
	if len(evs) != 2 {
		t.Fatalf("session.terminated rows: %d, want bob's two web sessions (the SSH registry audits its own)", len(evs))
	}
	for _, ev := range evs {
		if ev.Actor != "alice" || ev.Target != "bob" || !strings.Contains(ev.Detail, "all sessions ended by alice") {
			t.Errorf("session.terminated: %+v", ev)
		}
	}
	if r := al.get("sessions?done=member-sessions-ended"); !strings.Contains(r.body, "Every session of that member ended.") {
		t.Error("no notice after ending a member's sessions")
	}

	// Bad input: no name, a member without sessions.
	if r := al.post("sessions", url.Values{"csrf": {page.csrf(t)}, "kind": {"member"}}); r.code != http.StatusBadRequest || !strings.Contains(r.body, "no member named") {
		t.Errorf("no name = %d\n%s", r.code, r.body)
	}
	if r := al.post("sessions", url.Values{"csrf": {page.csrf(t)}, "kind": {"member"}, "name": {"bob"}}); r.code != http.StatusNotFound || !strings.Contains(r.body, "no live sessions") {
		t.Errorf("bob again = %d\n%s", r.code, r.body)
	}
	// Without the form token: refused, nothing ended.
	if r := al.post("sessions", url.Values{"kind": {"member"}, "name": {"carol"}}); r.code != http.StatusForbidden || len(reg.list) != 1 {
		t.Errorf("without a form token = %d, SSH sessions left %d", r.code, len(reg.list))
	}

	// Ending one's own: signed out.
	r = al.post("sessions", url.Values{"csrf": {page.csrf(t)}, "kind": {"member"}, "name": {"alice"}})
	if r.code != http.StatusSeeOther || r.location() != testPath+"signin?done=signed-out" {
		t.Fatalf("end all of one's own = %d %q", r.code, r.location())
	}
	if r := al.get(""); r.code != http.StatusSeeOther {
		t.Errorf("still signed in after ending one's own sessions: %d", r.code)
	}
}

// TestNonStaffRefused: a member whose key was removed, or whose role
// changed, is refused or sees the new role at once; a name that is not a
// staff member's never signs in.
func TestNonStaffRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{cfg: noThrottle})
	admin := e.add("alice", true, "")
	e.add("carol", true, "") // keeps an admin after alice's demotion
	b := e.browser()
	b.signInLink(admin)
	if r := b.get("sessions"); r.code != 200 {
		t.Fatalf("admin page = %d", r.code)
	}
	if err := e.st.SetRole(ctxb, cliActor, "alice", store.RoleStaff); err != nil {
		t.Fatal(err)
	}
	// The role is read afresh on every request.
	if r := b.get("sessions"); r.code != http.StatusForbidden {
		t.Errorf("a demoted admin's admin page = %d", r.code)
	}
	if r := b.get(""); !strings.Contains(r.body, `<span class="role">staff</span>`) {
		t.Error("the header does not show the new role")
	}
	// A removed member's session ends at their next request.
	if err := e.st.RemoveStaff(ctxb, cliActor, "alice"); err != nil {
		t.Fatal(err)
	}
	if r := b.get(""); r.code != http.StatusSeeOther || strings.Contains(r.body, "alice") {
		t.Errorf("a removed member's dashboard = %d", r.code)
	}
	if r := e.browser().signIn("mallory", "whatever whatever", "123456"); r.code != http.StatusUnauthorized {
		t.Errorf("non-staff sign-in = %d", r.code)
	}
}
