package tui

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"backroom/store"
)

// Small processors standing in for the server's registry.

// billingProc records a billing event of amount (USD cents) with summary.
func billingProc(amount int64, summary string) store.Processor {
	return func(ev store.IncomingEvent) (store.WebhookEffect, error) {
		return store.WebhookEffect{Billing: &store.BillingEvent{
			EventID: ev.EventID, CustomerID: ev.CustomerID, Type: ev.Type, ObjectID: "obj_" + ev.EventID,
			Amount: amount, Currency: "usd", Status: "ok", Created: ev.Created, Summary: summary,
		}}, nil
	}
}

func ignoreProc(store.IncomingEvent) (store.WebhookEffect, error) {
	return store.WebhookEffect{Ignored: true}, nil
}

func failProc(store.IncomingEvent) (store.WebhookEffect, error) {
	return store.WebhookEffect{}, errors.New("no plan named gold")
}

const testSignature = "t=1795780800,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"

// webhooksEnv is a store with alice (admin), bob (staff) and webhook
// events received through the store, one a minute.
type webhooksEnv struct {
	st    *store.Store
	clock *clock
	alice member
	bob   member
}

func newWebhooksEnv(t *testing.T) *webhooksEnv {
	t.Helper()
	st, c := openStore(t)
	return &webhooksEnv{st: st, clock: c, alice: addMember(t, st, "alice", true, false), bob: addMember(t, st, "bob", false, false)}
}

func eventPayload(id, typ, cus string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"object":"event","type":%q,"api_version":"2023-10-16","data":{"object":{"id":"obj_%s","customer":%q}}}`,
		id, typ, id, cus)
}

// receive delivers an event as the endpoint would, then moves the clock on
// a minute.
func (e *webhooksEnv) receive(t *testing.T, id, typ, cus string, payload []byte, proc store.Processor) string {
	t.Helper()
	now := e.clock.Now()
	att := store.WebhookAttempt{ReceivedAt: now, RemoteAddr: "203.0.113.5:4430", Headers: map[string]string{
		"Stripe-Signature": testSignature, "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
	}}
	ev := store.IncomingEvent{EventID: id, Type: typ, APIVersion: "2023-10-16", Created: now.Add(-time.Second),
		CustomerID: cus, Payload: payload, Secret: "secret 1 of 1"}
	if payload == nil {
		ev.Payload = eventPayload(id, typ, cus)
	}
	out, err := e.st.ReceiveWebhook(context.Background(), att, ev, proc)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	return out
}

func whID(i int) string { return fmt.Sprintf("evt_1T%04d", i) }

// fill receives 30 events: every third an invoice.paid (processed), every
// third a product.created (ignored), every third a
// customer.subscription.updated, of which the even ones fail (4, 10, 16,
// 22, 28). Customers are cus_W000..cus_W003 (none on ignored events).
func (e *webhooksEnv) fill(t *testing.T) {
	t.Helper()
	for i := 1; i <= 30; i++ {
		cus := fmt.Sprintf("cus_W%03d", i%4)
		var want string
		switch i % 3 {
		case 0:
			want = e.receive(t, whID(i), "invoice.paid", cus, nil, billingProc(4900, "Invoice paid"))
			if want != store.WebhookProcessed {
				t.Fatalf("%s: %s", whID(i), want)
			}
		case 1:
			proc := billingProc(1500, "Subscription updated")
			if i%2 == 0 {
				proc = failProc
			}
			e.receive(t, whID(i), "customer.subscription.updated", cus, nil, proc)
		case 2:
			e.receive(t, whID(i), "product.created", "", nil, ignoreProc)
		}
	}
}

// failedIDs are the events fill makes fail, newest first.
func failedIDs() []int { return []int{28, 22, 16, 10, 4} }

func (e *webhooksEnv) console(t *testing.T, admin bool, o Options) *harness {
	t.Helper()
	o.Store = e.st
	if admin {
		o.Actor, o.Fingerprint = sshActor("alice", store.RoleAdmin), e.alice.fp
	} else {
		o.Actor, o.Fingerprint = sshActor("bob", store.RoleStaff), e.bob.fp
	}
	h := newHarness(t, e.clock, o)
	h.keys("4")
	return h
}

func webhooksOf(h *harness) *webhooksScreen {
	for _, s := range h.m.screens {
		if w, ok := s.(*webhooksScreen); ok {
			return w
		}
	}
	h.t.Fatal("no Webhooks screen")
	return nil
}

// eventRows is the event id and the rest of each table row in the frame,
// top to bottom.
func eventRows(h *harness) (ids []string, lines []string) {
	for _, l := range strings.Split(h.view(), "\n") {
		for _, f := range strings.Fields(l) {
			if strings.HasPrefix(f, "evt_") {
				ids = append(ids, f)
				lines = append(lines, l)
				break
			}
		}
	}
	return ids, lines
}

func ids(ns ...int) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = whID(n)
	}
	return out
}

func shownEvents(s *webhooksScreen) []string {
	out := make([]string, len(s.rows))
	for i, ev := range s.rows {
		out[i] = ev.EventID
	}
	return out
}

func TestWebhooksListNewestFirstWithMarkers(t *testing.T) {
	e := newWebhooksEnv(t)
	e.fill(t)
	h := e.console(t, false, Options{})
	h.mustSee("[4 Webhooks]", "received (UTC)", "event", "type", "customer", "status", "events 1–18", "pgdn older")
	s := webhooksOf(h)
	if s.pageSize() != 18 {
		t.Fatalf("page size at 80x24 is %d, want 18", s.pageSize())
	}
	got, lines := eventRows(h)
	want := ids(30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13)
	if !slices.Equal(got, want) {
		t.Fatalf("rows %v, want %v", got, want)
	}
	// Every row carries its status in words and with a marker.
	for i, l := range lines {
		n := 30 - i
		var mark string
		switch {
		case n%3 == 0, n%3 == 1 && n%2 == 1:
			mark = "✓ processed"
		case n%3 == 2:
			mark = "· ignored"
		default:
			mark = "✗ failed"
		}
		if !strings.Contains(l, mark) {
			t.Errorf("row of %s lacks %q: %q", whID(n), mark, l)
		}
	}
	// The received time, the customer and the type are there too.
	if l := lines[0]; !strings.Contains(l, "2026-11-27 12:29:00") || !strings.Contains(l, "cus_W002") || !strings.Contains(l, "invoice.paid") {
		t.Fatalf("first row: %q", l)
	}
	// Wider, the attempts and the API version show as well.
	h.send(tea.WindowSizeMsg{Width: 160, Height: 40})
	h.mustSee("attempts", "api version", "2023-10-16", "customer.subscription.updated")
	if len(h.ticks) != 0 {
		t.Fatalf("ticks while idle: %+v", h.ticks)
	}
}

func TestWebhooksStatusColours(t *testing.T) {
	e := newWebhooksEnv(t)
	e.fill(t)
	h := e.console(t, false, Options{Renderer: testRenderer(true), Width: 120, Height: 40})
	st := h.m.e.st
	frame := h.frame()
	// The cursor is on evt_1T0030; the other rows are tinted.
	for _, want := range []string{st.err.Render("✗ failed   "), st.ok.Render("✓ processed"), st.dim.Render("· ignored  ")} {
		if !strings.Contains(frame, want) {
			t.Errorf("frame lacks %q", want)
		}
	}
	h.checkFits(120, 40)
}

func TestWebhooksPaging(t *testing.T) {
	e := newWebhooksEnv(t)
	e.fill(t)
	h := e.console(t, false, Options{})
	s := webhooksOf(h)
	h.keys("pgdown")
	h.mustSee("events 19–30")
	h.mustNotSee("pgdn older")
	if got, want := shownEvents(s), ids(12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1); !slices.Equal(got, want) {
		t.Fatalf("second page %v, want %v", got, want)
	}
	h.keys("pgdown")
	h.mustSee("This is the oldest page.")
	h.keys("pgup")
	h.mustSee("events 1–18")
	if got := shownEvents(s); got[0] != whID(30) || len(got) != 18 {
		t.Fatalf("back on the first page: %v", got)
	}
	// ↓ past the last row loads the next page, ↑ past the first the previous.
	h.keys("G")
	h.mustSee("last 18 events (oldest)")
	if got := shownEvents(s); got[0] != whID(18) || got[17] != whID(1) {
		t.Fatalf("oldest page: %v", got)
	}
	if s.grid.cursor() != 17 {
		t.Fatalf("cursor %d after G", s.grid.cursor())
	}
	h.keys("g")
	h.mustSee("events 1–18")
	for range 18 {
		h.keys("down")
	}
	h.mustSee("events 19–30")
	if s.grid.cursor() != 0 || s.rows[0].EventID != whID(12) {
		t.Fatalf("down past the page: cursor %d on %v", s.grid.cursor(), shownEvents(s))
	}
	h.keys("up")
	h.mustSee("events 1–18")
	if s.grid.cursor() != 17 {
		t.Fatalf("up past the page: cursor %d", s.grid.cursor())
	}
	if len(h.ticks) != 0 {
		t.Fatalf("ticks while idle: %+v", h.ticks)
	}
}

func TestWebhooksFilters(t *testing.T) {
	e := newWebhooksEnv(t)
	e.fill(t)
	h := e.console(t, false, Options{Width: 120, Height: 40})
	s := webhooksOf(h)

	// s cycles the status: failed only.
	h.keys("s")
	h.mustSee("filter: status=failed", "events 1–5")
	got, lines := eventRows(h)
	if !slices.Equal(got, ids(failedIDs()...)) {
		t.Fatalf("failed rows %v", got)
	}
	for _, l := range lines {
		if !strings.Contains(l, "✗ failed") {
			t.Fatalf("a row that is not failed: %q", l)
		}
	}
	h.keys("s")
	h.mustSee("filter: status=processed", "events 1–15")
	h.mustNotSee("✗ failed", "· ignored")
	h.keys("s")
	h.mustSee("filter: status=ignored", "events 1–10")
	h.mustNotSee("✗ failed", "✓ processed")
	h.keys("s")
	h.mustNotSee("filter:")
	h.mustSee("events 1–30")

	// t filters by type: a prefix with *.
	h.keys("t")
	h.mustSee("type: ")
	h.typeText("customer.subscription.*")
	h.keys("enter")
	h.mustSee("filter: type=customer.subscription.*", "events 1–10")
	h.mustNotSee("invoice.paid", "product.created")
	for _, ev := range s.rows {
		if ev.Type != "customer.subscription.updated" {
			t.Fatalf("type filter let %s (%s) through", ev.EventID, ev.Type)
		}
	}
	// ... or a prefix ending in a dot, with the status as well.
	h.keys("t")
	for range len("customer.subscription.*") {
		h.keys("backspace")
	}
	h.typeText("customer.")
	h.keys("enter", "s")
	h.mustSee("filter: status=failed type=customer.", "events 1–5")
	// An exact type.
	h.keys("x", "t")
	h.typeText("invoice.paid")
	h.keys("enter")
	h.mustSee("filter: type=invoice.paid", "events 1–10")
	h.keys("x")
	h.mustSee("Filters cleared.", "events 1–30")

	// / searches by customer id as it is typed.
	h.keys("/")
	h.typeText("cus_W002")
	h.mustSee(`/cus_W002`, "events 1–5")
	if got, _ := eventRows(h); !slices.Equal(got, ids(30, 22, 18, 10, 6)) {
		t.Fatalf("search by customer %v", got)
	}
	for _, ev := range s.rows {
		if ev.CustomerID != "cus_W002" {
			t.Fatalf("search let %s (%s) through", ev.EventID, ev.CustomerID)
		}
	}
	h.keys("enter")
	h.mustSee(`filter: search="cus_W002"`)
	// ... and by event id (a prefix).
	h.keys("/")
	for range len("cus_W002") {
		h.keys("backspace")
	}
	h.typeText("evt_1T001")
	if got := shownEvents(s); !slices.Equal(got, ids(19, 18, 17, 16, 15, 14, 13, 12, 11, 10)) {
		t.Fatalf("search by event id prefix: %v", got)
	}
	// esc clears the search.
	h.keys("esc")
	h.mustNotSee("filter:")
	h.mustSee("events 1–30")
	if len(h.ticks) != 0 {
		t.Fatalf("ticks while idle: %+v", h.ticks)
	}
}

func TestWebhooksStaleResultsDropped(t *testing.T) {
	e := newWebhooksEnv(t)
	e.fill(t)
	h := e.console(t, false, Options{})
	s := webhooksOf(h)
	s.filter.search = "cus_W001"
	slow := s.load(pageNewest, 0)
	s.filter.search = "cus_W002"
	fast := s.load(pageNewest, 0)
	h.send(fast())
	h.send(slow()) // arrives late: dropped
	for _, ev := range s.rows {
		if ev.CustomerID != "cus_W002" {
			t.Fatalf("a stale page replaced the current one: %v", shownEvents(s))
		}
	}
}

func TestWebhooksRejected(t *testing.T) {
	e := newWebhooksEnv(t)
	e.fill(t)
	ctx := context.Background()
	reject := func(addr, reason string, n int) {
		for range n {
			if _, err := e.st.RecordRejected(ctx, store.WebhookAttempt{ReceivedAt: e.clock.Now(), RemoteAddr: addr,
				Headers: map[string]string{"Stripe-Signature": "t=1,v1=forged", "Content-Type": "application/json"}}, reason); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A flood from one address: 100 stored, 7 only counted.
	reject("198.51.100.1:5000", "no valid signature for any secret", store.RejectedPerMinute+7)
	e.clock.Advance(time.Minute)
	reject("203.0.113.9:6000", "timestamp too old (301 s)", 2)
	h := e.console(t, false, Options{})
	h.keys("R")
	h.mustSee("received (UTC)", "remote address", "reason", "rejected attempts 1–18",
		"7 more were counted but not stored (last 24 h)")
	lines := strings.Split(h.view(), "\n")
	if !strings.Contains(lines[3], "203.0.113.9:6000") || !strings.Contains(lines[3], "timestamp too old (301 s)") ||
		!strings.Contains(lines[5], "198.51.100.1:5000") || !strings.Contains(lines[5], "no valid signature") {
		t.Fatalf("rejected rows not newest first:\n%s", h.view())
	}
	r := webhooksOf(h).rejected
	if len(r.rows) != 18 || r.rows[0].Reason != "timestamp too old (301 s)" || r.rows[0].ID < r.rows[17].ID {
		t.Fatalf("rejected page: %d rows, first %+v", len(r.rows), r.rows[0])
	}
	// Paging through the 102 stored.
	for range 5 {
		h.keys("pgdown")
	}
	h.mustSee("rejected attempts 91–102")
	h.mustNotSee("pgdn older")
	h.keys("pgup")
	h.mustSee("rejected attempts 73–90")
	h.keys("g")
	h.mustSee("rejected attempts 1–18")
	// The detail shows the headers.
	h.keys("enter")
	h.mustSee("Rejected attempt #", "Remote address  203.0.113.9:6000", "✗ rejected", "Reason          timestamp too old (301 s)",
		"Headers", "Content-Type: application/json", "Stripe-Signature: t=1,v1=forged")
	h.keys("esc")
	h.mustSee("rejected attempts 1–18")
	h.keys("esc")
	h.mustSee("events 1–18")
	h.mustNotSee("remote address")
	// A day later the count of those only counted is gone.
	e.clock.Advance(25 * time.Hour)
	h.keys("R")
	h.mustSee("rejected attempts 1–18")
	h.mustNotSee("counted but not stored")
	if len(h.ticks) != 0 {
		t.Fatalf("ticks while idle: %+v", h.ticks)
	}
}

func TestWebhooksDetail(t *testing.T) {
	e := newWebhooksEnv(t)
	// Delivered twice, failing both times.
	e.receive(t, "evt_1Fail", "customer.subscription.updated", "cus_W001", nil, failProc)
	e.receive(t, "evt_1Fail", "customer.subscription.updated", "cus_W001", nil, failProc)
	e.receive(t, "evt_1Bad", "invoice.paid", "cus_W002", []byte("{\"id\": \"evt_1Bad\", \x1b[31mnot json"), ignoreProc)
	h := e.console(t, false, Options{Width: 120, Height: 40})
	// The newest row is evt_1Bad; the one below, evt_1Fail.
	h.keys("down", "enter")
	h.mustSee("Webhook evt_1Fail", "✗ failed", "esc back",
		"Event        evt_1Fail", "Type         customer.subscription.updated", "Status       ✗ failed",
		"Customer     cus_W001", "API version  2023-10-16", "Mode         test", "Deliveries   2",
		"Verified by  secret 1 of 1", "Received     2026-11-27 12:00:00.000 UTC",
		"Error", "no plan named gold",
		"Attempts (2)",
		"#1  2026-11-27 12:00:00.000 UTC  203.0.113.5:4430  ✗ failed",
		"#2  2026-11-27 12:01:00.000 UTC  203.0.113.5:4430  ✗ failed",
		"    error: no plan named gold",
		"    Stripe-Signature: t=1795780800,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd",
		"    User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)",
		"r replay")
	// The payload is pretty-printed further down.
	h.keys("G")
	h.mustSee("Payload", `  "object": "event",`, `  "data": {`, `      "customer": "cus_W001"`, "100%")
	h.keys("g")
	h.mustSee("Event        evt_1Fail")
	h.checkFits(120, 40)
	h.send(tea.WindowSizeMsg{Width: 80, Height: 24})
	h.checkFits(80, 24)
	h.keys("esc")
	h.mustSee("events 1–2")

	// A payload that is not JSON is shown as stored, escapes neutralised.
	h.keys("g", "enter", "G")
	h.mustSee("Webhook evt_1Bad", "not valid JSON: shown as stored", `{"id": "evt_1Bad", �[31mnot json`)
	if strings.Contains(h.frame(), "\x1b[31mnot") {
		t.Fatal("an escape sequence from the payload reached the terminal")
	}
	h.checkFits(80, 24)
}

func TestWebhooksReplay(t *testing.T) {
	e := newWebhooksEnv(t)
	e.fill(t)
	ctx := context.Background()
	h := e.console(t, false, Options{WebhookProcessor: billingProc(1500, "Subscription updated"), Width: 100, Height: 30})
	h.mustSee("5 failed webhooks")
	h.keys("s", "enter")
	h.mustSee("Webhook "+whID(28), "Status       ✗ failed", "no plan named gold")
	h.keys("r")
	h.mustSee("Replay " + whID(28) + "? Its stored payload is processed again.  y/n")
	// n keeps it as it is.
	h.keys("n")
	h.mustSee("Nothing replayed.", "Status       ✗ failed")
	// q answers the prompt, not the console.
	h.keys("r", "q")
	if h.quit {
		t.Fatal("q quit during the replay prompt")
	}
	h.keys("y")
	if s := h.statusLine(); !strings.Contains(s, "Replayed "+whID(28)+": processed.") {
		t.Fatalf("status line: %q", s)
	}
	h.mustSee("Webhook "+whID(28)+"  ✓ processed", "Status       ✓ processed", "4 failed webhooks")
	h.mustNotSee("Error", "5 failed webhooks")
	// Replays are not deliveries.
	h.mustSee("Deliveries   1", "Attempts (1)")

	rows, err := e.st.ListAudit(ctx, store.AuditQuery{ActionPrefix: store.ActionWebhookReplayed})
	if err != nil || len(rows) != 1 || rows[0].Target != whID(28) || rows[0].Actor != "bob" || rows[0].Channel != store.ChannelSSH {
		t.Fatalf("webhook.replayed rows: %+v %v", rows, err)
	}
	if !strings.Contains(rows[0].Detail, `"outcome":"processed"`) || !strings.Contains(rows[0].Detail, `"before":"failed"`) {
		t.Fatalf("audit detail: %s", rows[0].Detail)
	}
	if ev, _ := e.st.GetWebhook(ctx, whID(28)); ev.Status != store.WebhookProcessed {
		t.Fatalf("stored status %q", ev.Status)
	}
	// The failed-only list no longer holds it.
	h.keys("esc")
	h.mustSee("filter: status=failed", "events 1–4")
	if got := shownEvents(webhooksOf(h)); !slices.Equal(got, ids(22, 16, 10, 4)) {
		t.Fatalf("failed after the replay: %v", got)
	}

	// From the list too; a processor that still fails says why.
	h2 := e.console(t, true, Options{WebhookProcessor: failProc, Width: 100, Height: 30})
	h2.keys("s", "r", "y")
	if s := h2.statusLine(); !strings.Contains(s, "Replayed "+whID(22)+": failed again: no plan named gold") {
		t.Fatalf("status line: %q", s)
	}
	h2.mustSee("4 failed webhooks")

	// Without a processor replay is not offered.
	h3 := e.console(t, false, Options{Width: 100, Height: 30})
	h3.keys("s", "enter", "r")
	if s := h3.statusLine(); !strings.Contains(s, "Replay is not available in this session.") {
		t.Fatalf("status line: %q", s)
	}
	h3.mustNotSee("y/n")
	for _, hh := range []*harness{h, h2, h3} {
		if len(hh.ticks) != 0 {
			t.Fatalf("ticks while idle: %+v", hh.ticks)
		}
	}
}

func TestWebhooksHeaderAndSecret(t *testing.T) {
	e := newWebhooksEnv(t)
	e.receive(t, "evt_1A", "invoice.paid", "cus_W001", nil, failProc)
	e.receive(t, "evt_1B", "invoice.paid", "cus_W001", nil, failProc)
	e.receive(t, "evt_1C", "invoice.paid", "cus_W001", nil, billingProc(100, "ok"))

	// No secret: the header, the Webhooks screen and the Key screen say so.
	h := e.console(t, false, Options{Width: 100, Height: 30})
	header := strings.Split(h.view(), "\n")[0]
	if !strings.Contains(header, "2 failed webhooks") || !strings.Contains(header, "webhook secret not set") {
		t.Fatalf("header: %q", header)
	}
	if !strings.Contains(h.m.screens[h.m.active].view(), "webhook secret not set") {
		t.Fatal("the Webhooks screen does not say the secret is not set")
	}
	h.keys("1")
	if !strings.Contains(h.m.screens[0].view(), "webhook secret not set") {
		t.Fatal("the Key screen does not say the secret is not set")
	}
	// One failed webhook is singular; a new failure shows on the next
	// header refresh (a screen change).
	e.receive(t, "evt_1D", "invoice.paid", "cus_W001", nil, failProc)
	h.keys("4")
	h.mustSee("3 failed webhooks")

	// With a secret: not a word of it.
	h = e.console(t, false, Options{WebhookSecretSet: true, Width: 100, Height: 30})
	h.mustSee("3 failed webhooks")
	h.mustNotSee("webhook secret not set")
	h.keys("1")
	h.mustNotSee("webhook secret not set")

	// Without failures, no counter.
	st, c := openStore(t)
	bob := addMember(t, st, "bob", false, false)
	h = newHarness(t, c, Options{Store: st, Actor: sshActor("bob", store.RoleStaff), Fingerprint: bob.fp, WebhookSecretSet: true})
	h.mustNotSee("failed webhook")
	h.keys("4")
	h.mustSee("no webhook events yet")
	_, err := st.ReceiveWebhook(context.Background(), store.WebhookAttempt{ReceivedAt: c.Now()},
		store.IncomingEvent{EventID: "evt_1Z", Type: "invoice.paid", Payload: []byte("{}")}, failProc)
	if err != nil {
		t.Fatal(err)
	}
	h.keys("1", "4")
	h.mustSee("1 failed webhook", "events 1–1")
	h.mustNotSee("1 failed webhooks")
}

func TestClientsDetailBillingEvents(t *testing.T) {
	e := newClientsEnv(t, 100)
	we := &webhooksEnv{st: e.st, clock: e.clock}
	we.receive(t, "evt_1Inv", "invoice.paid", "cus_T0040", nil, billingProc(4900, "Invoice in_1Q paid"))
	we.receive(t, "evt_1Ref", "charge.refunded", "cus_T0040", nil, billingProc(-1000, "Refund of ch_1Q"))
	we.receive(t, "evt_1Sub", "customer.subscription.updated", "cus_T0040", nil, func(ev store.IncomingEvent) (store.WebhookEffect, error) {
		return store.WebhookEffect{Billing: &store.BillingEvent{EventID: ev.EventID, CustomerID: ev.CustomerID, Type: ev.Type,
			ObjectID: "sub_1Q", Status: "active", Created: ev.Created, Summary: "Subscription sub_1Q now active"}}, nil
	})
	we.receive(t, "evt_1Other", "invoice.paid", "cus_T0041", nil, billingProc(100, "Someone else's invoice"))

	h := e.console(t, false, Options{Width: 100, Height: 60})
	h.keys("/")
	h.typeText("client0040@")
	h.keys("enter", "enter")
	h.mustSee("Client cus_T0040", "Billing events (3)")
	v := h.view()
	var billing []string
	for _, l := range strings.Split(v, "\n") {
		if strings.HasPrefix(l, "2026-11-27  ") {
			billing = append(billing, strings.Join(strings.Fields(l), " "))
		}
	}
	want := []string{
		"2026-11-27 customer.subscription.updated Subscription sub_1Q now active",
		"2026-11-27 charge.refunded Refund of ch_1Q USD -10.00",
		"2026-11-27 invoice.paid Invoice in_1Q paid USD 49.00",
	}
	if !slices.Equal(billing, want) {
		t.Fatalf("billing lines %q, want %q\n%s", billing, want, v)
	}
	if strings.Contains(v, "Someone else's invoice") {
		t.Fatal("another client's billing event is shown")
	}
	// The section sits between the notes and the audit trail.
	if i, j, k := strings.Index(v, "Notes"), strings.Index(v, "Billing events"), strings.Index(v, "Audit ("); !(i < j && j < k) {
		t.Fatalf("section order: notes %d, billing %d, audit %d", i, j, k)
	}
	// Amounts line up.
	if a, b := strings.Index(lineWith(v, "USD -10.00"), "USD"), strings.Index(lineWith(v, "USD 49.00"), "USD"); a+1 != b {
		t.Fatalf("amounts not aligned: %d %d", a, b)
	}

	// A client without billing events says so.
	h.keys("esc", "/")
	for range len("client0040@") {
		h.keys("backspace")
	}
	h.typeText("client0041@")
	h.keys("enter", "enter")
	h.mustSee("Billing events (1)", "Someone else's invoice")
	h.keys("esc", "/")
	for range len("client0041@") {
		h.keys("backspace")
	}
	h.typeText("client0042@")
	h.keys("enter", "enter")
	h.mustSee("Billing events (0)", "— none received from Stripe yet")
}

func lineWith(v, s string) string {
	for _, l := range strings.Split(v, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

func TestWebhooksLayoutFits(t *testing.T) {
	for _, colour := range []bool{false, true} {
		e := newWebhooksEnv(t)
		e.fill(t)
		for range 30 {
			if _, err := e.st.RecordRejected(context.Background(), store.WebhookAttempt{ReceivedAt: e.clock.Now(),
				RemoteAddr: "[2001:db8::1]:50000", Headers: map[string]string{"Stripe-Signature": strings.Repeat("v1=ab", 40)}},
				"no valid signature for any secret "+strings.Repeat("x", 150)); err != nil {
				t.Fatal(err)
			}
		}
		// A long type, customer and error.
		e.receive(t, "evt_1"+strings.Repeat("L", 60), "customer.subscription.trial_will_end."+strings.Repeat("y", 40),
			"cus_"+strings.Repeat("C", 40), nil, func(store.IncomingEvent) (store.WebhookEffect, error) {
				return store.WebhookEffect{}, errors.New(strings.Repeat("processing failed badly ", 30))
			})
		h := e.console(t, true, Options{Renderer: testRenderer(colour), WebhookProcessor: ignoreProc})
		for _, size := range [][2]int{{80, 24}, {120, 40}, {100, 30}, {80, 24}} {
			w, ht := size[0], size[1]
			h.send(tea.WindowSizeMsg{Width: w, Height: ht})
			h.keys("4", "g")
			h.checkFits(w, ht)
			if got, want := len(webhooksOf(h).rows), min(31, ht-6); got != want {
				t.Errorf("%v: page has %d rows, want %d", size, got, want)
			}
			// The long ids are shortened in the middle, both ends kept.
			if v := h.view(); !regexp.MustCompile(`evt_1L+…L+ `).MatchString(v) {
				t.Errorf("%v: long event id not shortened in the middle:\n%s", size, v)
			}
			h.keys("/")
			h.checkFits(w, ht)
			h.keys("esc", "t")
			h.checkFits(w, ht)
			h.keys("esc", "r")
			h.checkFits(w, ht)
			h.keys("n", "enter")
			h.checkFits(w, ht)
			h.keys("G")
			h.checkFits(w, ht)
			h.keys("r")
			h.checkFits(w, ht)
			h.keys("y")
			h.checkFits(w, ht)
			h.keys("?")
			h.checkFits(w, ht)
			h.keys("?", "esc", "R")
			h.checkFits(w, ht)
			h.mustSee("rejected attempts 1–")
			h.keys("enter")
			h.checkFits(w, ht)
			h.mustSee("Rejected attempt #")
			h.keys("?")
			h.checkFits(w, ht)
			h.keys("?", "esc", "esc")
			h.checkFits(w, ht)
			h.keys("1")
			h.checkFits(w, ht)
		}
		if len(h.ticks) != 0 {
			t.Fatalf("ticks while idle: %+v", h.ticks)
		}
	}
}

func TestWebhooksHelp(t *testing.T) {
	e := newWebhooksEnv(t)
	e.fill(t)
	h := e.console(t, false, Options{Width: 120, Height: 40, WebhookProcessor: ignoreProc})
	short := ansi.Strip(h.m.helpLine())
	for _, want := range []string{"enter details", "/ search", "s status", "t filter type", "r replay"} {
		if !strings.Contains(short, want) {
			t.Errorf("short help %q lacks %q", short, want)
		}
	}
	h.keys("?")
	h.mustSee("status any/failed/processed/ignored", "filter type", "rejected attempts", "replay", "clear filters", "go to screen")
	h.keys("?", "enter")
	if short := ansi.Strip(h.m.helpLine()); !strings.Contains(short, "r replay") || !strings.Contains(short, "esc back") {
		t.Errorf("detail help %q", short)
	}
	h.keys("r")
	if short := ansi.Strip(h.m.helpLine()); !strings.Contains(short, "y yes") || !strings.Contains(short, "n/esc no") {
		t.Errorf("prompt help %q", short)
	}
	h.keys("esc", "esc", "R")
	if short := ansi.Strip(h.m.helpLine()); !strings.Contains(short, "R/esc back to events") {
		t.Errorf("rejected help %q", short)
	}
}
