package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// --- helpers ------------------------------------------------------------------

// whEvent is an incoming customer event with a JSON payload holding
// personal data.
func whEvent(id, typ, customer string, created time.Time) IncomingEvent {
	payload := fmt.Sprintf(`{"id":%q,"type":%q,"created":%d,"data":{"object":{"id":%q,"object":"customer",`+
		`"name":"Jenny Rosen","email":"jenny@example.com","phone":"+1 555 0100","address":{"line1":"1 Main St","city":"Springfield"},`+
		`"metadata":{"crm":"A-1"},"balance":250,"currency":"usd"}}}`, id, typ, created.Unix(), customer)
	return IncomingEvent{EventID: id, Type: typ, APIVersion: "2023-10-16", Created: created, CustomerID: customer,
		Payload: []byte(payload), Secret: "secret 1 of 1"}
}

func attempt(e *env) WebhookAttempt {
	return WebhookAttempt{ReceivedAt: e.clock.Now(), RemoteAddr: "203.0.113.9", Headers: map[string]string{"User-Agent": "Stripe/1.0"}}
}

// clientProc upserts the event's customer with the given name (and the
// event's created time as version).
func clientProc(name string) Processor {
	return func(ev IncomingEvent) (WebhookEffect, error) {
		return WebhookEffect{Client: &ClientData{CustomerID: ev.CustomerID, Name: name, Email: "jenny@example.com",
			Currency: "usd", Version: ev.Created.Unix()}}, nil
	}
}

func billingProc(ev IncomingEvent) (WebhookEffect, error) {
	return WebhookEffect{Billing: &BillingEvent{EventID: ev.EventID, CustomerID: ev.CustomerID, Type: ev.Type,
		ObjectID: "in_" + ev.EventID, Amount: 1200, Currency: "usd", Status: "paid", Created: ev.Created, Summary: "Invoice paid: USD 12.00"}}, nil
}

func ignoreProc(IncomingEvent) (WebhookEffect, error) { return WebhookEffect{Ignored: true}, nil }

func failProc(msg string) Processor {
	return func(IncomingEvent) (WebhookEffect, error) { return WebhookEffect{}, errors.New(msg) }
}

func receive(t *testing.T, e *env, ev IncomingEvent, p Processor) string {
	t.Helper()
	out, err := e.s.ReceiveWebhook(ctxb, attempt(e), ev, p)
	if err != nil {
		t.Fatalf("ReceiveWebhook(%s): %v", ev.EventID, err)
	}
	return out
}

func mustWebhook(t *testing.T, s *Store, id string) WebhookEvent {
	t.Helper()
	ev, err := s.GetWebhook(ctxb, id)
	if err != nil {
		t.Fatalf("GetWebhook(%s): %v", id, err)
	}
	return ev
}

func outcomes(t *testing.T, s *Store, id string) string {
	t.Helper()
	atts, err := s.WebhookAttempts(ctxb, id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range atts {
		out = append(out, a.Outcome)
	}
	return strings.Join(out, ",")
}

func wantCodeOf(t *testing.T, err error, code Code) {
	t.Helper()
	if ErrorCode(err) != code {
		t.Fatalf("error %v (code %q), want code %q", err, ErrorCode(err), code)
	}
}

// --- receiving -------------------------------------------------------------------

func TestReceiveWebhookProcessedAndDuplicate(t *testing.T) {
	e := newEnv(t)
	created := e.clock.Now().Add(-time.Minute)
	ev := whEvent("evt_1", "customer.created", "cus_W1", created)
	if out := receive(t, e, ev, clientProc("Jenny Rosen")); out != WebhookProcessed {
		t.Fatalf("first delivery: %s", out)
	}
	c := mustGet(t, e.s, "cus_W1")
	if c.Name != "Jenny Rosen" || c.Source != SourceWebhook || c.Version != created.Unix() {
		t.Errorf("client %+v", c)
	}
	// The same id again, even with an effect that would change the
	// client: a duplicate, no second effect.
	e.clock.Add(time.Second)
	if out := receive(t, e, ev, clientProc("Someone Else")); out != WebhookDuplicate {
		t.Fatalf("second delivery: %s", out)
	}
	if c := mustGet(t, e.s, "cus_W1"); c.Name != "Jenny Rosen" {
		t.Errorf("a duplicate had an effect: %+v", c)
	}
	w := mustWebhook(t, e.s, "evt_1")
	if w.Status != WebhookProcessed || w.Attempts != 2 || w.Type != "customer.created" || w.CustomerID != "cus_W1" ||
		w.APIVersion != "2023-10-16" || !w.Created.Equal(created.Truncate(time.Second)) || w.Secret != "secret 1 of 1" ||
		string(w.Payload) != string(ev.Payload) || !w.UpdatedAt.After(w.ReceivedAt) {
		t.Errorf("event %+v", w)
	}
	if got := outcomes(t, e.s, "evt_1"); got != "processed,duplicate" {
		t.Errorf("attempts %s", got)
	}
	atts, _ := e.s.WebhookAttempts(ctxb, "evt_1")
	if atts[0].RemoteAddr != "203.0.113.9" || atts[0].Headers["User-Agent"] != "Stripe/1.0" || atts[0].EventID != "evt_1" {
		t.Errorf("attempt %+v", atts[0])
	}
}

func TestReceiveWebhookIgnored(t *testing.T) {
	e := newEnv(t)
	ev := whEvent("evt_ign", "payment_intent.created", "cus_W2", e.clock.Now())
	if out := receive(t, e, ev, ignoreProc); out != WebhookIgnored {
		t.Fatalf("%s", out)
	}
	// An empty effect is ignored too.
	ev2 := whEvent("evt_empty", "x.y", "", e.clock.Now())
	if out := receive(t, e, ev2, func(IncomingEvent) (WebhookEffect, error) { return WebhookEffect{}, nil }); out != WebhookIgnored {
		t.Fatalf("%s", out)
	}
	if out := receive(t, e, ev, clientProc("X")); out != WebhookDuplicate {
		t.Fatalf("an ignored event again: %s", out)
	}
	if _, err := e.s.GetClient(ctxb, "cus_W2"); ErrorCode(err) != CodeNotFound {
		t.Errorf("an ignored event had an effect")
	}
	if w := mustWebhook(t, e.s, "evt_ign"); w.Status != WebhookIgnored || w.Attempts != 2 {
		t.Errorf("%+v", w)
	}
}

func TestReceiveWebhookFailedThenProcessed(t *testing.T) {
	e := newEnv(t)
	ev := whEvent("evt_f", "invoice.paid", "cus_W3", e.clock.Now())
	if out := receive(t, e, ev, failProc("no such plan")); out != WebhookFailed {
		t.Fatalf("%s", out)
	}
	if w := mustWebhook(t, e.s, "evt_f"); w.Status != WebhookFailed || w.Error != "no such plan" {
		t.Errorf("%+v", w)
	}
	if n, _ := e.s.CountFailedWebhooks(ctxb); n != 1 {
		t.Errorf("%d failed", n)
	}
	// Failing again stays failed; the error is the latest.
	receive(t, e, ev, failProc("still no plan"))
	if w := mustWebhook(t, e.s, "evt_f"); w.Status != WebhookFailed || w.Error != "still no plan" || w.Attempts != 2 {
		t.Errorf("%+v", w)
	}
	// A retry that succeeds processes it (not a duplicate).
	if out := receive(t, e, ev, billingProc); out != WebhookProcessed {
		t.Fatalf("retry: %s", out)
	}
	if w := mustWebhook(t, e.s, "evt_f"); w.Status != WebhookProcessed || w.Error != "" || w.Attempts != 3 {
		t.Errorf("%+v", w)
	}
	if got := outcomes(t, e.s, "evt_f"); got != "failed,failed,processed" {
		t.Errorf("attempts %s", got)
	}
	atts, _ := e.s.WebhookAttempts(ctxb, "evt_f")
	if atts[0].Error != "no such plan" || atts[2].Error != "" {
		t.Errorf("attempt errors %q %q", atts[0].Error, atts[2].Error)
	}
	if n, _ := e.s.CountFailedWebhooks(ctxb); n != 0 {
		t.Errorf("%d failed", n)
	}
	bills, _ := e.s.BillingEvents(ctxb, "cus_W3", 0)
	if len(bills) != 1 {
		t.Errorf("billing %+v", bills)
	}
}

// TestReceiveWebhookEffectIsAtomic: when part of an effect fails, none of
// it is applied, and the event is still recorded (as failed).
func TestReceiveWebhookEffectIsAtomic(t *testing.T) {
	e := newEnv(t)
	ev := whEvent("evt_half", "customer.updated", "cus_W4", e.clock.Now())
	both := func(ev IncomingEvent) (WebhookEffect, error) {
		return WebhookEffect{
			Client:  &ClientData{CustomerID: "cus_W4", Name: "Half", Version: 5},
			Billing: &BillingEvent{EventID: ev.EventID}, // no customer: refused
		}, nil
	}
	if out := receive(t, e, ev, both); out != WebhookFailed {
		t.Fatalf("%s", out)
	}
	if _, err := e.s.GetClient(ctxb, "cus_W4"); ErrorCode(err) != CodeNotFound {
		t.Errorf("half an effect was applied")
	}
	if w := mustWebhook(t, e.s, "evt_half"); w.Error != "the billing event names no customer" {
		t.Errorf("%+v", w)
	}
	// Invalid client data: failed with the store's message.
	bad := func(IncomingEvent) (WebhookEffect, error) {
		return WebhookEffect{Client: &ClientData{CustomerID: "cus_W4", Email: "nope"}}, nil
	}
	receive(t, e, whEvent("evt_bad", "customer.updated", "cus_W4", e.clock.Now()), bad)
	if w := mustWebhook(t, e.s, "evt_bad"); w.Status != WebhookFailed || !strings.Contains(w.Error, "not an email address") {
		t.Errorf("%+v", w)
	}
	// A panicking processor fails the event, not the process.
	receive(t, e, whEvent("evt_panic", "customer.updated", "cus_W4", e.clock.Now()), func(IncomingEvent) (WebhookEffect, error) {
		panic("index out of range")
	})
	if w := mustWebhook(t, e.s, "evt_panic"); w.Status != WebhookFailed || !strings.Contains(w.Error, "processing panicked") {
		t.Errorf("%+v", w)
	}
}

// TestReceiveWebhookEffectFailsMidway: a statement of the effect fails
// after part of it was written (the client, then the billing row). The
// event shares its group's transaction without a savepoint, so the group
// runs again with savepoints: the event is recorded as failed with none
// of its effect, and the events that shared its group are processed.
func TestReceiveWebhookEffectFailsMidway(t *testing.T) {
	e := newEnv(t)
	if _, err := e.s.wdb.Exec(`CREATE TRIGGER boom BEFORE INSERT ON billing_events WHEN new.customer_id = 'cus_Boom'
		BEGIN SELECT RAISE(ABORT, 'disk on fire'); END`); err != nil {
		t.Fatal(err)
	}
	both := func(ev IncomingEvent) (WebhookEffect, error) {
		eff, _ := clientProc("Half")(ev)
		b, _ := billingProc(ev)
		eff.Billing = b.Billing
		return eff, nil
	}
	var wg sync.WaitGroup
	outs := make([]string, 40)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cus := fmt.Sprint("cus_Ok", i)
			if i == 20 {
				cus = "cus_Boom"
			}
			out, err := e.s.ReceiveWebhook(ctxb, attempt(e), whEvent(fmt.Sprint("evt_m", i), "customer.updated", cus, e.clock.Now()), both)
			if err != nil {
				t.Error(err)
			}
			outs[i] = out
		}()
	}
	wg.Wait()
	for i, out := range outs {
		if want := map[bool]string{true: WebhookFailed, false: WebhookProcessed}[i == 20]; out != want {
			t.Errorf("event %d: %s, want %s", i, out, want)
		}
	}
	w := mustWebhook(t, e.s, "evt_m20")
	if w.Status != WebhookFailed || !strings.Contains(w.Error, "disk on fire") || outcomes(t, e.s, "evt_m20") != WebhookFailed {
		t.Errorf("the failed event: %+v (attempts %s)", w, outcomes(t, e.s, "evt_m20"))
	}
	if _, err := e.s.GetClient(ctxb, "cus_Boom"); ErrorCode(err) != CodeNotFound {
		t.Errorf("the client of the failed effect was kept: %v", err)
	}
	if c, err := e.s.GetClient(ctxb, "cus_Ok7"); err != nil || c.Name != "Half" {
		t.Errorf("a client of the same group: %+v %v", c, err)
	}
	if bills, _ := e.s.BillingEvents(ctxb, "cus_Ok7", 0); len(bills) != 1 {
		t.Errorf("%d billing rows for a processed event", len(bills))
	}
}

func TestReceiveWebhookRefusals(t *testing.T) {
	e := newEnv(t)
	_, err := e.s.ReceiveWebhook(ctxb, attempt(e), IncomingEvent{Type: "x"}, ignoreProc)
	wantCodeOf(t, err, CodeInvalid)
	_, err = e.s.ReceiveWebhook(ctxb, attempt(e), IncomingEvent{EventID: "evt_x"}, ignoreProc)
	wantCodeOf(t, err, CodeInvalid)
	wantCodeOf(t, func() error { _, err := e.s.GetWebhook(ctxb, "evt_none"); return err }(), CodeNotFound)
}

// TestReceiveWebhookConcurrent: many concurrent deliveries of one id (in
// shared group-commit transactions) have exactly one effect.
func TestReceiveWebhookConcurrent(t *testing.T) {
	e := newEnv(t)
	ev := whEvent("evt_c", "invoice.paid", "cus_W5", e.clock.Now())
	var wg sync.WaitGroup
	got := make(chan string, 100)
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := e.s.ReceiveWebhook(ctxb, attempt(e), ev, billingProc)
			if err != nil {
				t.Error(err)
			}
			got <- out
		}()
	}
	wg.Wait()
	close(got)
	n := map[string]int{}
	for o := range got {
		n[o]++
	}
	if n[WebhookProcessed] != 1 || n[WebhookDuplicate] != 99 {
		t.Errorf("outcomes %v", n)
	}
	bills, _ := e.s.BillingEvents(ctxb, "cus_W5", 0)
	if len(bills) != 1 || mustWebhook(t, e.s, "evt_c").Attempts != 100 {
		t.Errorf("%d billing rows", len(bills))
	}
}

// TestReceiveWebhookOutOfOrder: an older event for a client never
// overwrites what a newer one wrote.
func TestReceiveWebhookOutOfOrder(t *testing.T) {
	e := newEnv(t)
	t1 := e.clock.Now().Add(-time.Hour)
	receive(t, e, whEvent("evt_new", "customer.updated", "cus_W6", t1.Add(time.Minute)), clientProc("Newer"))
	receive(t, e, whEvent("evt_old", "customer.updated", "cus_W6", t1), clientProc("Older"))
	if c := mustGet(t, e.s, "cus_W6"); c.Name != "Newer" {
		t.Errorf("client %+v", c)
	}
	if w := mustWebhook(t, e.s, "evt_old"); w.Status != WebhookProcessed {
		t.Errorf("a stale event is still processed (it changed nothing): %+v", w)
	}
}

// --- replay ------------------------------------------------------------------

func TestReplayWebhook(t *testing.T) {
	e := newEnv(t)
	ev := whEvent("evt_r", "invoice.paid", "cus_W7", e.clock.Now())
	receive(t, e, ev, failProc("bug"))
	staff := sshActor("alice")
	out, err := e.s.ReplayWebhook(ctxb, staff, "evt_r", billingProc)
	if err != nil || out != WebhookProcessed {
		t.Fatalf("replay: %s %v", out, err)
	}
	w := mustWebhook(t, e.s, "evt_r")
	if w.Status != WebhookProcessed || w.Error != "" || w.Attempts != 1 {
		t.Errorf("after replay %+v (a replay is not a delivery)", w)
	}
	a := one(t, e.s, ActionWebhookReplayed)
	d := detail(t, a)
	if a.Actor != "alice" || a.Target != "evt_r" || d["before"] != "failed" || d["outcome"] != "processed" || d["type"] != "invoice.paid" {
		t.Errorf("audit %+v %v", a, d)
	}
	// Replaying a processed event changes nothing (one billing row) and is
	// audited again.
	if out, err := e.s.ReplayWebhook(ctxb, staff, "evt_r", billingProc); err != nil || out != WebhookProcessed {
		t.Fatalf("second replay: %s %v", out, err)
	}
	if bills, _ := e.s.BillingEvents(ctxb, "cus_W7", 0); len(bills) != 1 {
		t.Errorf("%d billing rows after two replays", len(bills))
	}
	if n := len(events(t, e.s, ActionWebhookReplayed)); n != 2 {
		t.Errorf("%d replay audit rows", n)
	}
	// A replay that fails keeps the event failed, with the new error, and
	// is audited with that outcome.
	receive(t, e, whEvent("evt_r2", "invoice.paid", "cus_W7", e.clock.Now()), failProc("bug"))
	r, err := e.s.ReplayWebhookDetail(ctxb, staff, "evt_r2", failProc("still a bug"))
	if err != nil || r != (WebhookReplay{Type: "invoice.paid", Before: WebhookFailed, Outcome: WebhookFailed, Error: "still a bug"}) {
		t.Fatalf("failing replay: %+v %v", r, err)
	}
	if w := mustWebhook(t, e.s, "evt_r2"); w.Status != WebhookFailed || w.Error != "still a bug" {
		t.Errorf("%+v", w)
	}
	_, err = e.s.ReplayWebhook(ctxb, staff, "evt_unknown", billingProc)
	wantCodeOf(t, err, CodeNotFound)
	mustVerifyAudit(t, e.s)
}

// --- rejected attempts ---------------------------------------------------------

func TestRecordRejectedCap(t *testing.T) {
	e := newEnv(t)
	minute := e.clock.Now().Truncate(time.Minute)
	reject := func(addr string, at time.Time) bool {
		t.Helper()
		stored, err := e.s.RecordRejected(ctxb, WebhookAttempt{ReceivedAt: at, RemoteAddr: addr,
			Headers: map[string]string{"Stripe-Signature": "t=1; v1 signatures: 1"}}, "no signature matches")
		if err != nil {
			t.Fatal(err)
		}
		return stored
	}
	stored := 0
	for i := range 150 {
		// One source whatever the port.
		if reject(fmt.Sprintf("198.51.100.4:%d", 40000+i), minute.Add(time.Duration(i)*300*time.Millisecond)) {
			stored++
		}
	}
	if stored != 100 {
		t.Errorf("%d stored, want 100", stored)
	}
	if n, _ := e.s.RejectedDropped(ctxb, minute); n != 50 {
		t.Errorf("%d dropped, want 50", n)
	}
	for _, addr := range []string{"198.51.100.5", "[2001:db8::1]:443", "2001:db8::2"} {
		if !reject(addr, minute.Add(50*time.Second)) {
			t.Errorf("%s: not stored", addr)
		}
	}
	if !reject("198.51.100.4", minute.Add(time.Minute)) {
		t.Error("the next minute: not stored")
	}
	if n, _ := e.s.RejectedDropped(ctxb, minute.Add(time.Minute)); n != 0 {
		t.Errorf("%d dropped since the next minute", n)
	}
	var all []WebhookAttempt
	for before := int64(0); ; {
		page, err := e.s.ListRejected(ctxb, before, 40)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) < 40 {
			break
		}
		before = page[len(page)-1].ID
	}
	if len(all) != 104 {
		t.Fatalf("%d rejected attempts listed, want 104", len(all))
	}
	for i, a := range all {
		if a.Outcome != WebhookRejected || a.Reason != "no signature matches" || a.EventID != "" ||
			(i > 0 && a.ID >= all[i-1].ID) || a.Headers["Stripe-Signature"] == "" {
			t.Fatalf("rejected attempt %d: %+v", i, a)
		}
	}
	// Rejected attempts belong to no event.
	if atts, _ := e.s.WebhookAttempts(ctxb, ""); len(atts) != 0 {
		t.Errorf("%d attempts under the empty event id", len(atts))
	}
}

// --- pruning ----------------------------------------------------------------------

func TestPruneWebhooks(t *testing.T) {
	e := newEnv(t)
	start := e.clock.Now()
	receive(t, e, whEvent("evt_old", "invoice.paid", "cus_P", start), billingProc)
	receive(t, e, whEvent("evt_retried", "customer.updated", "cus_P", start), clientProc("A"))
	if _, err := e.s.RecordRejected(ctxb, WebhookAttempt{ReceivedAt: start, RemoteAddr: "192.0.2.1"}, "no signature matches"); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(40 * 24 * time.Hour)
	// A late retry keeps its event id (and so its duplicate status).
	if out := receive(t, e, whEvent("evt_retried", "customer.updated", "cus_P", start), clientProc("B")); out != WebhookDuplicate {
		t.Fatalf("%s", out)
	}
	receive(t, e, whEvent("evt_new", "customer.updated", "cus_P", e.clock.Now()), clientProc("C"))
	n, err := e.s.PruneWebhooks(ctxb, e.clock.Now().Add(-30*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// evt_old and its attempt, evt_retried's first attempt, the rejected
	// attempt and its counter.
	if n != 5 {
		t.Errorf("pruned %d rows, want 5", n)
	}
	if _, err := e.s.GetWebhook(ctxb, "evt_old"); ErrorCode(err) != CodeNotFound {
		t.Errorf("evt_old not pruned: %v", err)
	}
	if got := outcomes(t, e.s, "evt_retried"); got != "duplicate" {
		t.Errorf("evt_retried attempts after pruning: %s", got)
	}
	if out := receive(t, e, whEvent("evt_retried", "customer.updated", "cus_P", start), clientProc("B")); out != WebhookDuplicate {
		t.Errorf("after pruning, a retry of a kept id: %s", out)
	}
	mustWebhook(t, e.s, "evt_new")
	if rej, _ := e.s.ListRejected(ctxb, 0, 10); len(rej) != 0 {
		t.Errorf("%d rejected attempts left", len(rej))
	}
	// Billing activity is the client's history: it stays.
	if bills, _ := e.s.BillingEvents(ctxb, "cus_P", 0); len(bills) != 1 {
		t.Errorf("%d billing rows", len(bills))
	}
	if n, err := e.s.PruneWebhooks(ctxb, e.clock.Now().Add(-30*24*time.Hour)); err != nil || n != 0 {
		t.Errorf("second prune: %d %v", n, err)
	}
}

// TestPruneWebhooksInBatches: more rows than one batch are all pruned.
func TestPruneWebhooksInBatches(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	e := newEnv(t)
	for i := range 6000 {
		if _, err := e.s.RecordRejected(ctxb, WebhookAttempt{ReceivedAt: e.clock.Now(), RemoteAddr: fmt.Sprintf("10.0.%d.%d", i/250, i%250)}, "x"); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Add(100 * 24 * time.Hour)
	n, err := e.s.PruneWebhooks(ctxb, e.clock.Now())
	if err != nil || n != 12000 {
		t.Errorf("pruned %d (%v), want 12000", n, err)
	}
}

// --- personal data ---------------------------------------------------------------

func TestWebhookPayloadsOfForgottenClient(t *testing.T) {
	e := newEnv(t)
	t0 := e.clock.Now().Add(-time.Hour)
	receive(t, e, whEvent("evt_p1", "customer.created", "cus_Gone", t0), clientProc("Jenny Rosen"))
	receive(t, e, whEvent("evt_p2", "invoice.paid", "cus_Gone", t0), billingProc)
	receive(t, e, whEvent("evt_p3", "customer.created", "cus_Stays", t0), clientProc("Other"))
	if err := e.s.ForgetClient(ctxb, cliAdmin, "cus_Gone"); err != nil {
		t.Fatal(err)
	}
	personal := []string{"Jenny", "jenny@example.com", "555", "Main St", "Springfield", "A-1"}
	for _, id := range []string{"evt_p1", "evt_p2"} {
		p := string(mustWebhook(t, e.s, id).Payload)
		for _, s := range personal {
			if strings.Contains(p, s) {
				t.Errorf("%s still holds %q: %s", id, s, p)
			}
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(p), &v); err != nil || !strings.Contains(p, `"cus_Gone"`) || !strings.Contains(p, `"balance":250`) {
			t.Errorf("%s scrubbed payload is not the event without personal data: %s (%v)", id, p, err)
		}
	}
	if p := string(mustWebhook(t, e.s, "evt_p3").Payload); !strings.Contains(p, "jenny@example.com") {
		t.Errorf("another client's payload was scrubbed: %s", p)
	}
	if bills, _ := e.s.BillingEvents(ctxb, "cus_Gone", 0); len(bills) != 1 || bills[0].Summary != "" {
		t.Errorf("billing of a forgotten client %+v", bills)
	}
	// Later events: stored without personal data, and the client gets none
	// back.
	receive(t, e, whEvent("evt_p4", "customer.updated", "cus_Gone", t0.Add(time.Minute)), clientProc("Jenny Again"))
	p := string(mustWebhook(t, e.s, "evt_p4").Payload)
	for _, s := range personal {
		if strings.Contains(p, s) {
			t.Errorf("a later payload holds %q: %s", s, p)
		}
	}
	if c := mustGet(t, e.s, "cus_Gone"); c.Name != "" || c.Email != "" || !c.Forgotten() {
		t.Errorf("client %+v", c)
	}
	// Even a failing event's payload is scrubbed.
	receive(t, e, whEvent("evt_p5", "customer.updated", "cus_Gone", t0.Add(time.Minute)), failProc("x"))
	if p := string(mustWebhook(t, e.s, "evt_p5").Payload); strings.Contains(p, "jenny@example.com") {
		t.Errorf("a failed event's payload holds personal data: %s", p)
	}
}

func TestScrubPersonalData(t *testing.T) {
	in := `{"id":"evt_1","data":{"object":{"id":"cus_1","email":"a@b.co","name":"A","amount":12345678901234567890,` +
		`"lines":{"data":[{"description":"Pro plan for A","amount":100}]},"billing_details":{"name":"A"},"shipping":{"address":{"city":"X"}},` +
		`"customer_email":"a@b.co","metadata":{"k":"v"},"currency":"usd"}}}`
	out := string(ScrubPersonalData([]byte(in)))
	for _, s := range []string{"a@b.co", `"A"`, "Pro plan", `"city"`, `"k"`} {
		if strings.Contains(out, s) {
			t.Errorf("scrubbed payload holds %s: %s", s, out)
		}
	}
	for _, s := range []string{`"cus_1"`, `"currency":"usd"`, `12345678901234567890`, `"amount":100`} {
		if !strings.Contains(out, s) {
			t.Errorf("scrubbed payload lost %s: %s", s, out)
		}
	}
	if got := string(ScrubPersonalData([]byte("not json"))); got != "{}" {
		t.Errorf("non-JSON: %q", got)
	}
}

// --- listing ------------------------------------------------------------------

func TestListWebhooksFilters(t *testing.T) {
	e := newEnv(t)
	types := []string{"customer.created", "invoice.paid", "customer.subscription.updated", "customer.subscription.deleted", "charge.refunded"}
	for i := range 30 {
		typ := types[i%len(types)]
		cus := fmt.Sprintf("cus_L%d", i%3)
		p := Processor(billingProc)
		switch {
		case i%7 == 0:
			p = failProc("boom")
		case i%5 == 4:
			p = ignoreProc
		}
		receive(t, e, whEvent(fmt.Sprintf("evt_%02d", i), typ, cus, e.clock.Now()), p)
	}
	receive(t, e, whEvent("evtX01", "customer.created", "cus_Z", e.clock.Now()), ignoreProc)
	list := func(q WebhookQuery) []string {
		t.Helper()
		evs, err := e.s.ListWebhooks(ctxb, q)
		if err != nil {
			t.Fatalf("ListWebhooks(%+v): %v", q, err)
		}
		var ids []string
		for i, ev := range evs {
			if len(ev.Payload) != 0 {
				t.Errorf("a list carries payloads")
			}
			if i > 0 && ev.ID >= evs[i-1].ID {
				t.Errorf("not newest first")
			}
			ids = append(ids, ev.EventID)
		}
		return ids
	}
	count := func(q WebhookQuery) int { return len(list(q)) }
	if n := count(WebhookQuery{Limit: 1000}); n != 31 {
		t.Errorf("all: %d", n)
	}
	if n := count(WebhookQuery{}); n != 31 {
		t.Errorf("default limit: %d", n)
	}
	if n := count(WebhookQuery{Status: WebhookFailed}); n != 5 { // 0, 7, 14, 21, 28
		t.Errorf("failed: %d", n)
	}
	if n, _ := e.s.CountFailedWebhooks(ctxb); n != 5 {
		t.Errorf("CountFailedWebhooks %d", n)
	}
	if n := count(WebhookQuery{Status: WebhookIgnored}); n != 6 { // 4, 9, 19, 24, 29 and evtX01 (14 failed)
		t.Errorf("ignored: %d", n)
	}
	if n := count(WebhookQuery{Type: "invoice.paid"}); n != 6 {
		t.Errorf("invoice.paid: %d", n)
	}
	for _, q := range []string{"customer.subscription.*", "customer.subscription."} {
		if n := count(WebhookQuery{Type: q}); n != 12 {
			t.Errorf("%s: %d", q, n)
		}
	}
	if n := count(WebhookQuery{Type: "customer.subscription"}); n != 0 {
		t.Errorf("a type without a dot or star is exact: %d", n)
	}
	if n := count(WebhookQuery{Type: "customer.*"}); n != 19 { // 6 created + 12 subscription + evtX01
		t.Errorf("customer.*: %d", n)
	}
	if ids := list(WebhookQuery{Search: "evt_1"}); len(ids) != 10 || ids[0] != "evt_19" {
		t.Errorf("search evt_1: %v", ids)
	}
	if ids := list(WebhookQuery{Search: "evt_"}); len(ids) != 30 {
		t.Errorf("search evt_ (an underscore is not a wildcard): %d", len(ids))
	}
	if ids := list(WebhookQuery{Search: " cus_L2 "}); len(ids) != 10 {
		t.Errorf("search by customer: %d", len(ids))
	}
	if ids := list(WebhookQuery{Search: "%"}); len(ids) != 0 {
		t.Errorf("search %%: %v", ids)
	}
	if ids := list(WebhookQuery{Status: WebhookProcessed, Type: "invoice.paid", Search: "cus_L1"}); len(ids) != 2 {
		t.Errorf("combined: %v", ids)
	}
	_, err := e.s.ListWebhooks(ctxb, WebhookQuery{Status: "duplicate"})
	wantCodeOf(t, err, CodeInvalid)
	// Failed events are counted (every console header) and listed from
	// their own index, not by scanning.
	for _, q := range []string{`SELECT count(*) FROM webhook_events WHERE status = 'failed'`,
		`SELECT id FROM webhook_events WHERE status = 'failed' ORDER BY id DESC LIMIT 50`} {
		var plan []string
		rows, err := e.s.rdb.Query(`EXPLAIN QUERY PLAN ` + q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id, parent, unused int
			var detail string
			rows.Scan(&id, &parent, &unused, &detail)
			plan = append(plan, detail)
		}
		rows.Close()
		if p := strings.Join(plan, "; "); !strings.Contains(p, "webhook_events_failed") {
			t.Errorf("%s: plan %q does not use the index of failed events", q, p)
		}
	}
}

func TestListWebhooksPaging(t *testing.T) {
	e := newEnv(t)
	for i := range 23 {
		receive(t, e, whEvent(fmt.Sprintf("evt_pg%02d", i), "invoice.paid", "cus_Pg", e.clock.Now()), billingProc)
	}
	// Forward (older) pages of 5.
	var pages [][]WebhookEvent
	q := WebhookQuery{Limit: 5}
	for {
		page, err := e.s.ListWebhooks(ctxb, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		pages = append(pages, page)
		q.BeforeID = page[len(page)-1].ID
	}
	var ids []string
	for _, p := range pages {
		for _, ev := range p {
			ids = append(ids, ev.EventID)
		}
	}
	if len(pages) != 5 || len(ids) != 23 || ids[0] != "evt_pg22" || ids[22] != "evt_pg00" {
		t.Fatalf("%d pages, ids %v", len(pages), ids)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] >= ids[i-1] {
			t.Fatalf("order %v", ids)
		}
	}
	// Back (newer) from the third page: the second page, newest first.
	back, err := e.s.ListWebhooks(ctxb, WebhookQuery{Limit: 5, AfterID: pages[2][0].ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != 5 || back[0].EventID != pages[1][0].EventID || back[4].EventID != pages[1][4].EventID {
		t.Errorf("back page %v, want %v", eventIDs(back), eventIDs(pages[1]))
	}
	// A filter pages the same way.
	if page, _ := e.s.ListWebhooks(ctxb, WebhookQuery{Limit: 3, Search: "evt_pg1", BeforeID: pages[1][0].ID}); len(page) != 3 || page[0].EventID != "evt_pg16" {
		t.Errorf("filtered page %v", eventIDs(page))
	}
	if page, _ := e.s.ListWebhooks(ctxb, WebhookQuery{Limit: 5000}); len(page) != 23 {
		t.Errorf("big limit: %d", len(page))
	}
}

func eventIDs(evs []WebhookEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.EventID)
	}
	return out
}

func TestBillingEventsOrder(t *testing.T) {
	e := newEnv(t)
	base := e.clock.Now().Add(-time.Hour)
	for i, off := range []int{3, 1, 2} {
		receive(t, e, whEvent(fmt.Sprintf("evt_b%d", i), "invoice.paid", "cus_B", base.Add(time.Duration(off)*time.Minute)), billingProc)
	}
	receive(t, e, whEvent("evt_other", "invoice.paid", "cus_Other", base), billingProc)
	bills, err := e.s.BillingEvents(ctxb, "cus_B", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(bills) != 2 || bills[0].EventID != "evt_b0" || bills[1].EventID != "evt_b2" {
		t.Errorf("%+v", bills)
	}
	b := bills[0]
	if b.CustomerID != "cus_B" || b.Type != "invoice.paid" || b.ObjectID != "in_evt_b0" || b.Amount != 1200 || b.Currency != "usd" ||
		b.Status != "paid" || !b.Created.Equal(base.Add(3*time.Minute).Truncate(time.Second)) || b.Summary != "Invoice paid: USD 12.00" {
		t.Errorf("%+v", b)
	}
}

// TestMigrationLinksAttemptsToEvents: a database from before migration 12
// (attempts found by event id) lists the same attempts after it.
func TestMigrationLinksAttemptsToEvents(t *testing.T) {
	e := newEnv(t)
	ev := whEvent("evt_old", "customer.updated", "cus_M12", e.clock.Now())
	receive(t, e, ev, failProc("first try fails"))
	receive(t, e, ev, clientProc("Jenny Rosen"))
	receive(t, e, ev, clientProc("Jenny Rosen"))
	if _, err := e.s.RecordRejected(ctxb, attempt(e), "no signature matches"); err != nil {
		t.Fatal(err)
	}
	receive(t, e, whEvent("evt_bill", "invoice.paid", "cus_M12", e.clock.Now()), billingProc)
	// Back to schema 11: the column and its index gone, the old index back.
	for _, q := range []string{
		`DROP INDEX webhook_attempts_event`,
		`ALTER TABLE webhook_attempts DROP COLUMN event_row`,
		`CREATE INDEX webhook_attempts_event ON webhook_attempts (event_id, id) WHERE event_id != ''`,
		`DROP INDEX webhook_events_kinds`,
		`DROP INDEX webhook_events_failed`,
		`CREATE INDEX webhook_events_status ON webhook_events (status, id)`,
		`CREATE INDEX webhook_events_type ON webhook_events (type, id)`,
		`UPDATE meta SET value = '11' WHERE key = 'schema'`,
	} {
		mustExecStore(t, e.s, q)
	}
	e.reopen()
	if got := outcomes(t, e.s, "evt_old"); got != "failed,processed,duplicate" {
		t.Errorf("after the migration, the event's attempts are %q", got)
	}
	var linked, unlinked int
	if err := e.s.rdb.QueryRow(`SELECT count(event_row), count(*) - count(event_row) FROM webhook_attempts`).Scan(&linked, &unlinked); err != nil {
		t.Fatal(err)
	}
	if linked != 4 || unlinked != 1 {
		t.Errorf("%d attempts linked to their event and %d not, want 4 and the rejected one", linked, unlinked)
	}
	// Migration 14 swapped the status and type indexes for two that
	// commits append to.
	var idx []string
	rows, err := e.s.rdb.Query(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'webhook_events' AND sql IS NOT NULL ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		rows.Scan(&n)
		idx = append(idx, n)
	}
	rows.Close()
	if got := strings.Join(idx, " "); got != "webhook_events_customer webhook_events_failed webhook_events_kinds" {
		t.Errorf("webhook_events indexes after the migrations: %s", got)
	}
	if n, err := e.s.CountFailedWebhooks(ctxb); err != nil || n != 0 {
		t.Errorf("failed events after the migrations: %d (%v)", n, err)
	}
	// Migration 13 kept the billing rows, and a replay still adds none.
	if _, err := e.s.ReplayWebhook(ctxb, sshActor("alice"), "evt_bill", billingProc); err != nil {
		t.Fatal(err)
	}
	if bills, err := e.s.BillingEvents(ctxb, "cus_M12", 0); err != nil || len(bills) != 1 || bills[0].EventID != "evt_bill" {
		t.Errorf("billing rows after the migrations and a replay: %+v (%v)", bills, err)
	}
}

// TestWebhookPayloadsStoredCompressed: a payload is stored compressed and
// read back as received; one stored before compression (or too short to
// gain) reads as it is; forgetting the customer scrubs compressed ones.
func TestWebhookPayloadsStoredCompressed(t *testing.T) {
	e := newEnv(t)
	ev := whEvent("evt_z1", "customer.updated", "cus_Z1", e.clock.Now())
	ev.Payload = []byte(strings.Replace(string(ev.Payload), `"crm":"A-1"`, `"crm":"A-1","note":"`+strings.Repeat("long text ", 80)+`"`, 1))
	receive(t, e, ev, clientProc("Zelda Zip"))
	var raw []byte
	if err := e.s.rdb.QueryRow(`SELECT payload FROM webhook_events WHERE event_id = 'evt_z1'`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) == 0 || raw[0] != packedPayload || len(raw) >= len(ev.Payload)/2 {
		t.Errorf("stored payload: %d bytes starting %q for a %d-byte body, want it compressed", len(raw), raw[:1], len(ev.Payload))
	}
	if w := mustWebhook(t, e.s, "evt_z1"); !bytes.Equal(w.Payload, ev.Payload) {
		t.Errorf("read back %q, want the body as received", w.Payload)
	}
	// A row written before compression.
	mustExecStore(t, e.s, `UPDATE webhook_events SET payload = CAST('{"id":"evt_z1","old":true}' AS BLOB) WHERE event_id = 'evt_z1'`)
	if w := mustWebhook(t, e.s, "evt_z1"); string(w.Payload) != `{"id":"evt_z1","old":true}` {
		t.Errorf("an uncompressed payload reads %q", w.Payload)
	}
	// A corrupt compressed payload is an error, not garbage.
	mustExecStore(t, e.s, `UPDATE webhook_events SET payload = x'01ffff' WHERE event_id = 'evt_z1'`)
	if _, err := e.s.GetWebhook(ctxb, "evt_z1"); err == nil {
		t.Error("a corrupt payload read without an error")
	}
	// Scrubbing works on compressed payloads.
	ev2 := whEvent("evt_z2", "customer.updated", "cus_Z2", e.clock.Now())
	ev2.Payload = []byte(strings.Replace(string(ev2.Payload), `"crm":"A-1"`, `"crm":"A-1","note":"`+strings.Repeat("padding ", 80)+`"`, 1))
	receive(t, e, ev2, clientProc("Zora Zed"))
	if !bytes.Contains(mustWebhook(t, e.s, "evt_z2").Payload, []byte("jenny@example.com")) {
		t.Fatal("setup: the payload has no email to scrub")
	}
	if err := e.s.ForgetClient(ctxb, cliAdmin, "cus_Z2"); err != nil {
		t.Fatal(err)
	}
	if p := mustWebhook(t, e.s, "evt_z2").Payload; bytes.Contains(p, []byte("jenny@example.com")) || !bytes.Contains(p, []byte("evt_z2")) {
		t.Errorf("after forgetting the customer, the payload is %s", p)
	}
}
