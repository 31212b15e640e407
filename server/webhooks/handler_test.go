package webhooks

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"backroom/store"
)

func TestSignatureTable(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	n := 0
	next := func() (string, []byte) {
		n++
		id := fmt.Sprintf("evt_sig%02d", n)
		return id, eventJSON(id, "customer.created", now, customerJSON(fmt.Sprintf("cus_Sig%02d", n), "Jenny Rosen", "jenny@example.com"))
	}
	sigOf := func(body []byte, secret string, ts time.Time) string {
		return hex.EncodeToString(webhook.ComputeSignature(ts, body, secret))
	}
	tests := []struct {
		name   string
		build  func(body []byte) ([]byte, string) // the body sent and its header
		code   int
		reason string
	}{
		{"valid", func(b []byte) ([]byte, string) { return b, f.sign(b, testSecret, now) }, 200, "processed"},
		{"one byte of the body changed", func(b []byte) ([]byte, string) {
			h := f.sign(b, testSecret, now)
			c := append([]byte(nil), b...)
			c[len(c)/2] ^= 0x01
			return c, h
		}, 400, ReasonNoMatch},
		{"wrong secret", func(b []byte) ([]byte, string) { return b, f.sign(b, "whsec_someoneElsesSecret", now) }, 400, ReasonNoMatch},
		{"v0 only", func(b []byte) ([]byte, string) {
			return b, fmt.Sprintf("t=%d,v0=%s", now.Unix(), sigOf(b, testSecret, now))
		}, 400, ReasonNoV1},
		{"no t", func(b []byte) ([]byte, string) { return b, "v1=" + sigOf(b, testSecret, now) }, 400, ReasonNoTimestamp},
		{"t=abc", func(b []byte) ([]byte, string) { return b, "t=abc,v1=" + sigOf(b, testSecret, now) }, 400, ReasonBadTimestamp},
		{"stale (301 s)", func(b []byte) ([]byte, string) { return b, f.sign(b, testSecret, now.Add(-301*time.Second)) }, 400, ReasonTooOld},
		// stripe-go measures the age with the wall clock, which runs on while the
		// table does: a margin of a few seconds keeps this case honest.
		{"295 s old", func(b []byte) ([]byte, string) { return b, f.sign(b, testSecret, now.Add(-295*time.Second)) }, 200, "processed"},
		{"future (+1 h)", func(b []byte) ([]byte, string) { return b, f.sign(b, testSecret, now.Add(time.Hour)) }, 400, ReasonFuture},
		{"future (+301 s)", func(b []byte) ([]byte, string) { return b, f.sign(b, testSecret, now.Add(301*time.Second)) }, 400, ReasonFuture},
		{"299 s ahead", func(b []byte) ([]byte, string) { return b, f.sign(b, testSecret, now.Add(299*time.Second)) }, 200, "processed"},
		{"two v1, only the second matches", func(b []byte) ([]byte, string) {
			return b, fmt.Sprintf("t=%d,v1=%s,v1=%s", now.Unix(), sigOf(b, "whsec_rolledAwaySecret", now), sigOf(b, testSecret, now))
		}, 200, "processed"},
		{"two v1, neither matches", func(b []byte) ([]byte, string) {
			return b, fmt.Sprintf("t=%d,v1=%s,v1=%s", now.Unix(), sigOf(b, "whsec_a1", now), sigOf(b, "whsec_b2", now))
		}, 400, ReasonNoMatch},
		{"signature for another timestamp", func(b []byte) ([]byte, string) {
			return b, fmt.Sprintf("t=%d,v1=%s", now.Unix(), sigOf(b, testSecret, now.Add(-time.Second)))
		}, 400, ReasonNoMatch},
		{"v1 not hex", func(b []byte) ([]byte, string) { return b, fmt.Sprintf("t=%d,v1=zz-not-hex", now.Unix()) }, 400, ReasonNoMatch},
		{"no header", func(b []byte) ([]byte, string) { return b, "" }, 400, ReasonNoSignature},
		{"garbage header", func(b []byte) ([]byte, string) { return b, "sha256 deadbeef" }, 400, ReasonBadHeader},
		{"two t", func(b []byte) ([]byte, string) {
			later := now.Add(time.Hour)
			return b, fmt.Sprintf("t=%d,t=%d,v1=%s", now.Unix(), later.Unix(), sigOf(b, testSecret, later))
		}, 400, ReasonBadHeader},
		{"malformed JSON, signed", func(b []byte) ([]byte, string) {
			c := b[:len(b)-3]
			return c, f.sign(c, testSecret, now)
		}, 400, ReasonMalformedJSON},
		{"JSON of the wrong shape, signed", func(b []byte) ([]byte, string) {
			c := []byte(`{"id": "evt_x", "type": "customer.created", "created": "yesterday"}`)
			return c, f.sign(c, testSecret, now)
		}, 400, ReasonMalformedJSON},
		{"not an object, signed", func(b []byte) ([]byte, string) {
			c := []byte(`["evt_x"]`)
			return c, f.sign(c, testSecret, now)
		}, 400, ReasonMalformedJSON},
		{"no id, signed", func(b []byte) ([]byte, string) {
			c := []byte(`{"object": "event", "type": "customer.created", "created": 1700000000}`)
			return c, f.sign(c, testSecret, now)
		}, 400, ReasonNoIDOrType},
		{"no type, signed", func(b []byte) ([]byte, string) {
			c := []byte(`{"id": "evt_notype", "object": "event", "created": 1700000000}`)
			return c, f.sign(c, testSecret, now)
		}, 400, ReasonNoIDOrType},
		{"id with a space, signed", func(b []byte) ([]byte, string) {
			c := []byte(`{"id": "evt_a b", "type": "customer.created", "created": 1700000000}`)
			return c, f.sign(c, testSecret, now)
		}, 400, ReasonBadIDOrType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, orig := next()
			body, sig := tt.build(orig)
			before := len(f.rejected())
			r := f.post(body, sig)
			r.want(t, tt.code, tt.reason)
			if strings.Contains(r.body, testSecret) || strings.Contains(r.body, "whsec_") {
				t.Errorf("the answer shows a secret: %q", r.body)
			}
			rej := f.rejected()
			if tt.code == 200 {
				if ev := f.event(id); ev.Status != store.WebhookProcessed || ev.Secret != "secret 1 of 1" {
					t.Errorf("stored %+v", ev)
				}
				if len(rej) != before {
					t.Errorf("a rejected attempt was recorded for a valid delivery")
				}
				return
			}
			f.noEvent(id)
			if len(rej) != before+1 {
				t.Fatalf("%d rejected attempts recorded, want 1", len(rej)-before)
			}
			a := rej[0]
			if a.Outcome != store.WebhookRejected || a.Reason != tt.reason || a.EventID != "" || a.RemoteAddr != "127.0.0.1" {
				t.Errorf("rejected attempt %+v", a)
			}
			if ss := a.Headers["Stripe-Signature"]; regexp.MustCompile(`[0-9a-f]{64}`).MatchString(ss) {
				t.Errorf("the recorded Stripe-Signature keeps a signature: %q", ss)
			}
			if a.Headers["User-Agent"] == "" || a.Headers["Content-Type"] == "" || a.Headers["Content-Length"] == "" {
				t.Errorf("headers %v", a.Headers)
			}
		})
	}
	if strings.Contains(f.logText(), testSecret) {
		t.Errorf("the log shows the secret")
	}
}

// TestFutureByInjectedClock: the future check reads the injected clock,
// not the machine's.
func TestFutureByInjectedClock(t *testing.T) {
	f := newFixture(t)
	real := f.clock.Now()
	body := eventJSON("evt_clock1", "customer.created", real, customerJSON("cus_Clock1", "A", ""))
	sig := f.sign(body, testSecret, real) // genuine by the machine's clock
	f.clock.Set(real.Add(-time.Hour))     // but Backroom's clock says an hour earlier
	f.post(body, sig).want(t, 400, ReasonFuture)
	f.clock.Set(real)
	f.post(body, sig).want(t, 200, "processed")
}

func TestMultipleSignatureHeaders(t *testing.T) {
	f := newFixture(t)
	body := eventJSON("evt_twoheaders", "customer.created", f.clock.Now(), customerJSON("cus_Two", "A", ""))
	sig := f.sign(body, testSecret, time.Time{})
	f.post(body, sig, "Stripe-Signature", sig).want(t, 400, ReasonBadHeader)
	if got := f.rejected()[0].Headers["Stripe-Signature"]; got != "2 headers" {
		t.Errorf("recorded header %q", got)
	}
}

// TestRolledSecrets: with STRIPE_WEBHOOK_SECRET="whsec_old,whsec_new" an
// event signed with either verifies, and the record says which.
func TestRolledSecrets(t *testing.T) {
	secrets, err := ParseSecrets("whsec_old,whsec_new")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) { c.Secrets = secrets })
	for i, s := range []string{"whsec_old", "whsec_new"} {
		id := fmt.Sprintf("evt_roll%d", i+1)
		body := eventJSON(id, "customer.created", f.clock.Now(), customerJSON(fmt.Sprintf("cus_Roll%d", i+1), "A", ""))
		f.post(body, f.sign(body, s, time.Time{})).want(t, 200, "processed")
		if got, want := f.event(id).Secret, fmt.Sprintf("secret %d of 2", i+1); got != want {
			t.Errorf("signed with %s: label %q, want %q", s, got, want)
		}
	}
	// During a roll Stripe signs with both: the first secret that matches
	// is recorded.
	body := eventJSON("evt_roll3", "customer.created", f.clock.Now(), customerJSON("cus_Roll3", "A", ""))
	ts := f.clock.Now()
	both := fmt.Sprintf("t=%d,v1=%s,v1=%s", ts.Unix(), hex.EncodeToString(webhook.ComputeSignature(ts, body, "whsec_new")),
		hex.EncodeToString(webhook.ComputeSignature(ts, body, "whsec_old")))
	f.post(body, both).want(t, 200, "processed")
	if got := f.event("evt_roll3").Secret; got != "secret 1 of 2" {
		t.Errorf("signed with both: label %q", got)
	}
	f.post(body, f.sign(body, "whsec_older", time.Time{})).want(t, 400, ReasonNoMatch)
	if strings.Contains(f.logText(), "whsec_") {
		t.Errorf("the log shows a secret:\n%s", f.logText())
	}
}

func TestBodyOverTheLimit(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxBody = 4096 })
	base := eventJSON("evt_big", "customer.created", f.clock.Now(), customerJSON("cus_Big", "A", ""))
	pad := func(n int) []byte { // valid JSON of exactly n bytes
		return append(append([]byte(nil), base...), strings.Repeat(" ", n-len(base))...)
	}
	over := pad(4097)
	r := f.post(over, f.sign(over, testSecret, time.Time{}))
	r.want(t, http.StatusRequestEntityTooLarge, "request body too large (limit 4096 bytes)")
	f.noEvent("evt_big")
	if n := len(f.rejected()); n != 0 {
		t.Errorf("%d attempts stored for an oversized body", n)
	}
	// Unsigned and huge: still 413, nothing stored.
	f.post(make([]byte, 1<<20), "").want(t, http.StatusRequestEntityTooLarge, "request body too large (limit 4096 bytes)")
	if n := len(f.rejected()); n != 0 {
		t.Errorf("%d attempts stored for an oversized body", n)
	}
	exact := pad(4096)
	f.post(exact, f.sign(exact, testSecret, time.Time{})).want(t, 200, "processed")
}

func TestMethodsAndNoSecret(t *testing.T) {
	f := newFixture(t)
	for _, m := range []string{"GET", "PUT", "DELETE", "PATCH"} {
		r := f.do(m, nil, "")
		if r.code != http.StatusMethodNotAllowed || r.header.Get("Allow") != "POST" {
			t.Errorf("%s = %d (Allow %q), want 405 with Allow: POST", m, r.code, r.header.Get("Allow"))
		}
	}

	f = newFixture(t, func(c *Config) { c.Secrets = nil })
	body := eventJSON("evt_nosecret", "customer.created", f.clock.Now(), customerJSON("cus_NoSecret", "A", ""))
	f.post(body, f.sign(body, testSecret, time.Time{})).want(t, http.StatusServiceUnavailable, "webhook secret not set")
	f.post(body, "").want(t, http.StatusServiceUnavailable, "webhook secret not set")
	f.noEvent("evt_nosecret")
	if n := len(f.rejected()); n != 0 {
		t.Errorf("%d attempts stored without a secret", n)
	}
	if r := f.do("GET", nil, ""); r.code != http.StatusMethodNotAllowed {
		t.Errorf("GET without a secret = %d, want 405", r.code)
	}
}

// TestConcurrentDuplicates: 100 concurrent deliveries of one event id
// have exactly one effect; every one is answered 200 and recorded.
func TestConcurrentDuplicates(t *testing.T) {
	f := newFixture(t)
	created := f.clock.Now().Add(-time.Minute)
	for _, tc := range []struct {
		id, typ, object string
	}{
		{"evt_dupcustomer", "customer.updated", customerJSON("cus_Dup", "Jenny Rosen", "jenny@example.com")},
		{"evt_dupinvoice", "invoice.paid", invoiceJSON("in_Dup1", "cus_Dup", 1200, 1200, "paid")},
	} {
		body := eventJSON(tc.id, tc.typ, created, tc.object)
		var wg sync.WaitGroup
		codes := make([]int, 100)
		bodies := make([]string, 100)
		for i := range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Each delivery is signed afresh, as Stripe's retries are.
				r := f.post(body, f.sign(body, testSecret, f.clock.Now().Add(-time.Duration(i)*time.Second)))
				codes[i], bodies[i] = r.code, strings.TrimSpace(r.body)
			}()
		}
		wg.Wait()
		outcomes := map[string]int{}
		for i, c := range codes {
			if c != 200 {
				t.Errorf("%s delivery %d: %d %q", tc.id, i, c, bodies[i])
			}
			outcomes[bodies[i]]++
		}
		if outcomes["processed"] != 1 || outcomes["duplicate"] != 99 {
			t.Errorf("%s answers %v, want 1 processed and 99 duplicate", tc.id, outcomes)
		}
		ev := f.event(tc.id)
		if ev.Status != store.WebhookProcessed || ev.Attempts != 100 {
			t.Errorf("%s: status %s, %d attempts; want processed, 100", tc.id, ev.Status, ev.Attempts)
		}
		got := map[string]int{}
		for _, a := range f.attempts(tc.id) {
			got[a.Outcome]++
		}
		if got[store.WebhookProcessed] != 1 || got[store.WebhookDuplicate] != 99 || len(got) != 2 {
			t.Errorf("%s attempts %v, want 1 processed and 99 duplicate", tc.id, got)
		}
	}
	c := f.client("cus_Dup")
	if c.Version != created.Unix() || c.Email != "jenny@example.com" || c.Source != store.SourceWebhook {
		t.Errorf("client %+v", c)
	}
	bills, err := f.st.BillingEvents(ctxb, "cus_Dup", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(bills) != 1 || bills[0].EventID != "evt_dupinvoice" || bills[0].Summary != "Invoice in_Dup1 paid: USD 12.00" {
		t.Errorf("billing rows %+v, want one", bills)
	}
}

// TestFailedThenRetried: a processing failure answers 500 and keeps the
// event as failed; Stripe's retry processes it.
func TestFailedThenRetried(t *testing.T) {
	var calls atomic.Int32
	flaky := func(ev store.IncomingEvent) (store.WebhookEffect, error) {
		if calls.Add(1) == 1 {
			return store.WebhookEffect{}, errors.New("the upstream lookup timed out")
		}
		return Process(ev)
	}
	f := newFixture(t, func(c *Config) { c.Process = flaky })
	body := eventJSON("evt_flaky", "customer.created", f.clock.Now(), customerJSON("cus_Flaky", "Jenny Rosen", "jenny@example.com"))
	f.deliver(body).want(t, 500, msgFailed)
	ev := f.event("evt_flaky")
	if ev.Status != store.WebhookFailed || ev.Error != "the upstream lookup timed out" {
		t.Errorf("after the failure: %+v", ev)
	}
	if _, err := f.st.GetClient(ctxb, "cus_Flaky"); store.ErrorCode(err) != store.CodeNotFound {
		t.Errorf("a failed event had an effect: %v", err)
	}
	if n, _ := f.st.CountFailedWebhooks(ctxb); n != 1 {
		t.Errorf("%d failed events, want 1", n)
	}
	f.deliver(body).want(t, 200, "processed")
	ev = f.event("evt_flaky")
	if ev.Status != store.WebhookProcessed || ev.Error != "" || ev.Attempts != 2 {
		t.Errorf("after the retry: %+v", ev)
	}
	if c := f.client("cus_Flaky"); c.Email != "jenny@example.com" {
		t.Errorf("client %+v", c)
	}
	var outcomes []string
	for _, a := range f.attempts("evt_flaky") {
		outcomes = append(outcomes, a.Outcome)
	}
	if strings.Join(outcomes, ",") != "failed,processed" {
		t.Errorf("attempts %v", outcomes)
	}
	f.deliver(body).want(t, 200, "duplicate")
	if n, _ := f.st.CountFailedWebhooks(ctxb); n != 0 {
		t.Errorf("%d failed events, want 0", n)
	}
}

// TestMalformedCustomerFails: a handled type whose object does not read
// fails (500, stored as failed with the reason), and keeps failing on
// retries: only a replay with a fixed processor can help.
func TestMalformedCustomerFails(t *testing.T) {
	f := newFixture(t)
	body := eventJSON("evt_bademail", "customer.created", f.clock.Now(), customerJSON("cus_BadEmail", "Jenny", "not-an-email"))
	f.deliver(body).want(t, 500, msgFailed)
	f.deliver(body).want(t, 500, msgFailed)
	ev := f.event("evt_bademail")
	if ev.Status != store.WebhookFailed || !strings.Contains(ev.Error, "email") || ev.Attempts != 2 {
		t.Errorf("%+v", ev)
	}
	body = eventJSON("evt_notcustomer", "customer.updated", f.clock.Now(), invoiceJSON("in_X", "cus_X", 0, 0, "open"))
	f.deliver(body).want(t, 500, msgFailed)
	if ev := f.event("evt_notcustomer"); ev.Error != `data.object is not a customer (its object is "invoice")` {
		t.Errorf("%+v", ev)
	}
}

// TestReplayFixesFailure: a failure answered 500 and recorded as failed
// is fixed by store.ReplayWebhook with the real processor, audited as
// webhook.replayed.
func TestReplayFixesFailure(t *testing.T) {
	broken := func(store.IncomingEvent) (store.WebhookEffect, error) {
		return store.WebhookEffect{}, errors.New("bug #12")
	}
	f := newFixture(t, func(c *Config) { c.Process = broken })
	body := eventJSON("evt_replay", "invoice.payment_failed", f.clock.Now(), invoiceJSON("in_Replay", "cus_Replay", 0, 4999, "open"))
	f.deliver(body).want(t, 500, msgFailed)
	if ev := f.event("evt_replay"); ev.Status != store.WebhookFailed || ev.Error != "bug #12" {
		t.Fatalf("%+v", ev)
	}
	staff := store.Actor{Name: "alice", Role: store.RoleStaff, Channel: store.ChannelSSH, SessionID: "s1"}
	outcome, err := f.st.ReplayWebhook(ctxb, staff, "evt_replay", Process)
	if err != nil || outcome != store.WebhookProcessed {
		t.Fatalf("replay: %q, %v", outcome, err)
	}
	if ev := f.event("evt_replay"); ev.Status != store.WebhookProcessed || ev.Error != "" {
		t.Errorf("after the replay: %+v", ev)
	}
	bills, _ := f.st.BillingEvents(ctxb, "cus_Replay", 10)
	if len(bills) != 1 || bills[0].Summary != "Invoice in_Replay payment failed: USD 49.99" || bills[0].Amount != 4999 {
		t.Errorf("billing %+v", bills)
	}
	evs, err := f.st.ListAudit(ctxb, store.AuditQuery{ActionPrefix: store.ActionWebhookReplayed})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Actor != "alice" || evs[0].Target != "evt_replay" ||
		!strings.Contains(evs[0].Detail, `"outcome":"processed"`) || !strings.Contains(evs[0].Detail, `"before":"failed"`) {
		t.Errorf("audit %+v", evs)
	}
	// Stripe's retry after the replay is a duplicate.
	f.deliver(body).want(t, 200, "duplicate")
}

// TestOutOfOrderUpdates: an older customer.updated arriving after a newer
// one does not overwrite the newer data.
func TestOutOfOrderUpdates(t *testing.T) {
	f := newFixture(t)
	t1 := f.clock.Now().Add(-2 * time.Minute)
	t2 := t1.Add(time.Minute)
	newer := eventJSON("evt_newer", "customer.updated", t2, customerJSON("cus_Order", "Jenny Rosen", "new@example.com"))
	older := eventJSON("evt_older", "customer.updated", t1, customerJSON("cus_Order", "Jenny Appleseed", "old@example.com"))
	f.deliver(newer).want(t, 200, "processed")
	f.deliver(older).want(t, 200, "processed")
	c := f.client("cus_Order")
	if c.Email != "new@example.com" || c.Name != "Jenny Rosen" || c.Version != t2.Unix() {
		t.Errorf("client %+v: the older event overwrote the newer", c)
	}
	// A deletion newer still wins.
	deleted := eventJSON("evt_deleted", "customer.deleted", t2.Add(time.Second), customerJSON("cus_Order", "Jenny Rosen", "new@example.com"))
	f.deliver(deleted).want(t, 200, "processed")
	if c := f.client("cus_Order"); !c.Deleted {
		t.Errorf("client %+v not deleted", c)
	}
	f.deliver(eventJSON("evt_older2", "customer.updated", t2, customerJSON("cus_Order", "X", "x@example.com"))).want(t, 200, "processed")
	if c := f.client("cus_Order"); !c.Deleted || c.Email != "new@example.com" {
		t.Errorf("client %+v: an older update undid the deletion", c)
	}
}

// TestRejectedFloodCap: 150 forged requests from one address within a
// minute store 100 and count 50; another address is still stored.
func TestRejectedFloodCap(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.TrustedProxies = prefixes("127.0.0.0/8") })
	minute := f.clock.Now().Truncate(time.Minute)
	f.clock.Set(minute.Add(5 * time.Second))
	forged := []byte(`{"id":"evt_forged","type":"customer.created"}`)
	for i := range 150 {
		f.clock.Set(minute.Add(time.Duration(i) * 300 * time.Millisecond)) // 45 s in all
		f.post(forged, fmt.Sprintf("t=%d,v1=%064x", f.clock.Now().Unix(), i), "X-Forwarded-For", "203.0.113.66").want(t, 400, ReasonNoMatch)
	}
	f.post(forged, "", "X-Forwarded-For", "198.51.100.7").want(t, 400, ReasonNoSignature)
	rej := f.rejected()
	by := map[string]int{}
	for _, a := range rej {
		by[a.RemoteAddr]++
	}
	if by["203.0.113.66"] != 100 || by["198.51.100.7"] != 1 || len(rej) != 101 {
		t.Errorf("stored rejections by address %v, want 100 and 1", by)
	}
	if n, err := f.st.RejectedDropped(ctxb, minute); err != nil || n != 50 {
		t.Errorf("dropped %d (%v), want 50", n, err)
	}
	// The next minute stores again.
	f.clock.Set(minute.Add(time.Minute))
	f.post(forged, "", "X-Forwarded-For", "203.0.113.66").want(t, 400, ReasonNoSignature)
	if n := len(f.rejected()); n != 102 {
		t.Errorf("%d stored after the minute turned, want 102", n)
	}
}

// TestForwardedFor: X-Forwarded-For is believed only from a trusted proxy.
func TestForwardedFor(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []string
		xff     []string
		want    string
	}{
		{"no proxies trusted", nil, []string{"203.0.113.9"}, "127.0.0.1"},
		{"another proxy trusted", []string{"10.0.0.0/8"}, []string{"203.0.113.9"}, "127.0.0.1"},
		{"trusted peer", []string{"127.0.0.1/32"}, []string{"203.0.113.9"}, "203.0.113.9"},
		{"last untrusted hop", []string{"127.0.0.0/8", "10.0.0.0/8"}, []string{"198.51.100.1, 203.0.113.9, 10.0.0.2"}, "203.0.113.9"},
		{"forged hops on the left are ignored", []string{"127.0.0.0/8"}, []string{"1.2.3.4", "203.0.113.9"}, "203.0.113.9"},
		{"garbage hop", []string{"127.0.0.0/8"}, []string{"203.0.113.9, not-an-ip"}, "127.0.0.1"},
		{"with a port", []string{"127.0.0.0/8"}, []string{"[2001:db8::7]:4711"}, "2001:db8::7"},
		{"all trusted", []string{"127.0.0.0/8", "10.0.0.0/8"}, []string{"10.1.1.1, 10.0.0.2"}, "10.1.1.1"},
		{"trusted peer, no header", []string{"127.0.0.0/8"}, nil, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(c *Config) { c.TrustedProxies = prefixes(tc.trusted...) })
			var extra []string
			for _, v := range tc.xff {
				extra = append(extra, "X-Forwarded-For", v)
			}
			f.post([]byte("{}"), "", extra...).want(t, 400, ReasonNoSignature)
			a := f.rejected()[0]
			if a.RemoteAddr != tc.want {
				t.Errorf("remote %q, want %q", a.RemoteAddr, tc.want)
			}
			if len(tc.xff) > 0 && a.Headers["X-Forwarded-For"] != strings.Join(tc.xff, ", ") {
				t.Errorf("X-Forwarded-For recorded as %q", a.Headers["X-Forwarded-For"])
			}
			// A verified event's attempt carries the same address.
			body := eventJSON("evt_xff", "customer.created", f.clock.Now(), customerJSON("cus_Xff", "A", ""))
			f.deliver(body, extra...).want(t, 200, "processed")
			if got := f.attempts("evt_xff")[0].RemoteAddr; got != tc.want {
				t.Errorf("event attempt remote %q, want %q", got, tc.want)
			}
		})
	}
}

// TestAttemptRecord: what is kept of a verified delivery.
func TestAttemptRecord(t *testing.T) {
	f := newFixture(t)
	created := f.clock.Now().Add(-10 * time.Second).Truncate(time.Second)
	body := []byte(strings.Replace(string(eventJSON("evt_rec", "invoice.paid", created, invoiceJSON("in_Rec", "cus_Rec", 1200, 1200, "paid"))),
		`"api_version": "2023-10-16"`, `"api_version": "2020-08-27"`, 1))
	body = []byte(strings.Replace(string(body), `"livemode": false,
  "pending`, `"livemode": true,
  "pending`, 1))
	ts := f.clock.Now()
	sig := fmt.Sprintf("%s,v1=%064x,v0=%064x", f.sign(body, testSecret, ts), 1, 2)
	f.post(body, sig, "X-Forwarded-For", "198.51.100.23").want(t, 200, "processed")
	ev := f.event("evt_rec")
	if ev.Type != "invoice.paid" || ev.APIVersion != "2020-08-27" || !ev.Livemode || !ev.Created.Equal(created) ||
		ev.CustomerID != "cus_Rec" || ev.Secret != "secret 1 of 1" || string(ev.Payload) != string(body) || ev.Attempts != 1 {
		t.Errorf("event %+v", ev)
	}
	atts := f.attempts("evt_rec")
	if len(atts) != 1 {
		t.Fatalf("%d attempts", len(atts))
	}
	a := atts[0]
	want := map[string]string{
		"Stripe-Signature": fmt.Sprintf("t=%d; v1 signatures: 2; v0 signatures: 1", ts.Unix()),
		"User-Agent":       "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
		"Content-Type":     "application/json; charset=utf-8",
		"Content-Length":   fmt.Sprint(len(body)),
		"X-Forwarded-For":  "198.51.100.23",
	}
	if fmt.Sprint(a.Headers) != fmt.Sprint(want) {
		t.Errorf("headers\n got %v\nwant %v", a.Headers, want)
	}
	if a.Outcome != store.WebhookProcessed || a.RemoteAddr != "127.0.0.1" || !a.ReceivedAt.Equal(f.clock.Now().UTC().Truncate(time.Millisecond)) {
		t.Errorf("attempt %+v", a)
	}
}

// TestIgnoredTypes: types Backroom does not act on are stored as ignored
// (still visible), answered 200, and duplicates of them too.
func TestIgnoredTypes(t *testing.T) {
	f := newFixture(t)
	body := eventJSON("evt_ignored", "payment_intent.succeeded", f.clock.Now(),
		`{"id": "pi_3Pgc6t", "object": "payment_intent", "amount": 1200, "currency": "usd", "customer": "cus_Ign"}`)
	f.deliver(body).want(t, 200, "ignored")
	f.deliver(body).want(t, 200, "duplicate")
	if ev := f.event("evt_ignored"); ev.Status != store.WebhookIgnored || ev.CustomerID != "cus_Ign" {
		t.Errorf("%+v", ev)
	}
	// A charge refunded for a guest (no customer) has nothing to link to.
	guest := eventJSON("evt_guest", "charge.refunded", f.clock.Now(), chargeJSON("ch_Guest", "", 500, 500))
	f.deliver(guest).want(t, 200, "ignored")
}

// TestForgottenClient: forgetting a client scrubs the stored payloads of
// its earlier events; later events for it store no personal data.
func TestForgottenClient(t *testing.T) {
	f := newFixture(t)
	t0 := f.clock.Now().Add(-time.Minute)
	f.deliver(eventJSON("evt_f1", "customer.created", t0, customerJSON("cus_Forget", "Jenny Rosen", "jenny@example.com"))).want(t, 200, "processed")
	f.deliver(eventJSON("evt_f2", "invoice.paid", t0, invoiceJSON("in_F2", "cus_Forget", 1200, 1200, "paid"))).want(t, 200, "processed")
	personal := []string{"Jenny", "jenny@example.com", "rue de", "+33", "A-1042", "Wholesale"}
	if !strings.Contains(string(f.event("evt_f1").Payload), "jenny@example.com") {
		t.Fatal("the payload was not stored as received")
	}
	admin := store.Actor{Name: "root", Role: store.RoleAdmin, Channel: store.ChannelCLI}
	if err := f.st.ForgetClient(ctxb, admin, "cus_Forget"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"evt_f1", "evt_f2"} {
		p := string(f.event(id).Payload)
		for _, s := range personal {
			if strings.Contains(p, s) {
				t.Errorf("%s payload still holds %q after forgetting: %s", id, s, p)
			}
		}
		if !strings.Contains(p, "cus_Forget") {
			t.Errorf("%s payload lost the customer id: %s", id, p)
		}
	}
	// Later events: no personal fields in the client or the payloads.
	f.deliver(eventJSON("evt_f3", "customer.updated", t0.Add(time.Second), customerJSON("cus_Forget", "Jenny Rosen", "jenny.new@example.com"))).want(t, 200, "processed")
	f.deliver(eventJSON("evt_f4", "charge.refunded", t0.Add(time.Second), chargeJSON("ch_F4", "cus_Forget", 1200, 300))).want(t, 200, "processed")
	c := f.client("cus_Forget")
	if c.Name != "" || c.Email != "" || c.Phone != "" || c.Description != "" || len(c.Metadata) != 0 || !c.Forgotten() {
		t.Errorf("forgotten client got personal data back: %+v", c)
	}
	if c.Balance != -1500 || c.Currency != "eur" {
		t.Errorf("non-personal fields not updated: %+v", c)
	}
	for _, id := range []string{"evt_f3", "evt_f4"} {
		p := string(f.event(id).Payload)
		for _, s := range append(personal, "jenny.new@example.com") {
			if strings.Contains(p, s) {
				t.Errorf("%s payload for a forgotten client holds %q: %s", id, s, p)
			}
		}
	}
	// A replay of a scrubbed payload still processes.
	if out, err := f.st.ReplayWebhook(ctxb, admin, "evt_f3", Process); err != nil || out != store.WebhookProcessed {
		t.Errorf("replay of a scrubbed event: %q %v", out, err)
	}
}

// TestStoreFailureIsNot2xx: when the event cannot be committed the answer
// is a 500, never a 2xx (Stripe keeps it and retries).
func TestStoreFailureIsNot2xx(t *testing.T) {
	f := newFixture(t)
	f.st.Close()
	body := eventJSON("evt_closed", "customer.created", f.clock.Now(), customerJSON("cus_Closed", "A", ""))
	f.deliver(body).want(t, 500, msgStoreFailed)
	f.post(body, "").want(t, 400, ReasonNoSignature) // still refused, even if it cannot be recorded
}
