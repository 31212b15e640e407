package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"

	"backroom/server/webhooks"
	"backroom/store"
	"backroom/store/jsontest"
)

// Keys of `webhooks list --json`, `webhooks show --json` and of
// `webhooks list --rejected --json`, in order.
const (
	webhookListKeys     = "event_id,type,status,received_at,api_version,attempts,customer_id,livemode,created,updated_at,error"
	webhookShowKeys     = webhookListKeys + ",secret,payload"
	webhookAttemptKeys  = "received_at,remote_addr,outcome,reason,error,headers"
	webhookRejectedKeys = "received_at,remote_addr,reason,headers"
)

// errTransient is a processing failure that a replay does not meet again
// (Stripe unreachable, say): the real processors succeed on replay.
var errTransient = errors.New("the lookup timed out")

func failingProcessor(store.IncomingEvent) (store.WebhookEffect, error) {
	return store.WebhookEffect{}, errTransient
}

// webhookFixture makes a data dir holding these events, oldest first:
//
//	evt_A  customer.created          cus_Ada1   processed
//	evt_B  invoice.paid              cus_Ada1   processed, delivered twice (then a duplicate)
//	evt_C  payment_intent.succeeded  cus_Ada1   ignored
//	evt_D  customer.updated          cus_Ada1   failed (transient: a replay processes it)
//	evt_E  customer.created          cus_Bad2   failed (the email is not an email: a replay fails again)
//	evt_F  customer.created          cus_Cy3    failed (transient)
//
// and three rejected attempts from 198.51.100.7.
func webhookFixture(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t)
	h.run("", "staff", "list").must(t, 0) // creates the data dir and its key
	st := h.openStore()
	defer st.Close()
	ctx := context.Background()
	created := time.Now().Add(-time.Hour).Truncate(time.Second)
	deliver := func(id, typ, cus string, process store.Processor, body []byte) {
		t.Helper()
		if body == nil {
			body = sampleBody(sampleEvent{Type: typ, EventID: id, CustomerID: cus, Created: created, Variant: 7})
		}
		att := store.WebhookAttempt{ReceivedAt: time.Now(), RemoteAddr: "203.0.113.9",
			Headers: map[string]string{"Stripe-Signature": "t=1; v1 signatures: 1", "User-Agent": "Stripe/1.0"}}
		ev := store.IncomingEvent{EventID: id, Type: typ, APIVersion: stripe.APIVersion, Created: created, CustomerID: cus,
			Payload: body, Secret: "secret 1 of 1"}
		if _, err := st.ReceiveWebhook(ctx, att, ev, process); err != nil {
			t.Fatal(err)
		}
		created = created.Add(time.Second)
	}
	deliver("evt_A", "customer.created", "cus_Ada1", webhooks.Process, nil)
	deliver("evt_B", "invoice.paid", "cus_Ada1", webhooks.Process, nil)
	deliver("evt_B", "invoice.paid", "cus_Ada1", webhooks.Process, nil)
	deliver("evt_C", "payment_intent.succeeded", "cus_Ada1", webhooks.Process, nil)
	deliver("evt_D", "customer.updated", "cus_Ada1", failingProcessor, nil)
	bad := sampleBody(sampleEvent{Type: "customer.created", EventID: "evt_E", CustomerID: "cus_Bad2", Created: created, Email: "not-an-email"})
	deliver("evt_E", "customer.created", "cus_Bad2", webhooks.Process, bad)
	deliver("evt_F", "customer.created", "cus_Cy3", failingProcessor, nil)
	for _, reason := range []string{webhooks.ReasonNoMatch, webhooks.ReasonTooOld, webhooks.ReasonNoSignature} {
		att := store.WebhookAttempt{ReceivedAt: time.Now(), RemoteAddr: "198.51.100.7", Headers: map[string]string{"User-Agent": "curl/8"}}
		if _, err := st.RecordRejected(ctx, att, reason); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// listedEvents runs `webhooks list --json` with args, checks every line's
// keys and returns the events.
func listedEvents(t *testing.T, h *harness, args ...string) []webhookJSON {
	t.Helper()
	r := h.run("", append([]string{"webhooks", "list", "--json"}, args...)...).must(t, 0)
	var out []webhookJSON
	for _, l := range nonEmptyLines(r.stdout) {
		if got := strings.Join(jsontest.Keys(t, l), ","); got != webhookListKeys {
			t.Fatalf("keys %s, want %s", got, webhookListKeys)
		}
		var e webhookJSON
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func eventIDs(evs []webhookJSON) string {
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.EventID
	}
	return strings.Join(ids, " ")
}

func TestWebhooksListJSON(t *testing.T) {
	t.Parallel()
	h := webhookFixture(t)
	evs := listedEvents(t, h)
	if got := eventIDs(evs); got != "evt_F evt_E evt_D evt_C evt_B evt_A" {
		t.Fatalf("events %s, want newest first", got)
	}
	b := evs[4]
	if b.Type != "invoice.paid" || b.Status != store.WebhookProcessed || b.Attempts != 2 || b.APIVersion != stripe.APIVersion ||
		b.CustomerID != "cus_Ada1" || b.Created == nil || b.Error != "" {
		t.Errorf("evt_B: %+v", b)
	}
	if _, err := time.Parse(time.RFC3339, b.ReceivedAt); err != nil || !strings.HasSuffix(b.ReceivedAt, "Z") {
		t.Errorf("received_at %q is not RFC 3339 UTC", b.ReceivedAt)
	}
	if e := evs[1]; e.Status != store.WebhookFailed || !strings.Contains(e.Error, "email") {
		t.Errorf("evt_E: status %q error %q, want failed about the email", e.Status, e.Error)
	}
	if d := evs[2]; d.Status != store.WebhookFailed || d.Error != errTransient.Error() || d.Attempts != 1 {
		t.Errorf("evt_D: %+v", d)
	}
}

func TestWebhooksListFilters(t *testing.T) {
	t.Parallel()
	h := webhookFixture(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--status", "failed"}, "evt_F evt_E evt_D"},
		{[]string{"--status", "PROCESSED"}, "evt_B evt_A"},
		{[]string{"--status", "ignored"}, "evt_C"},
		{[]string{"--type", "invoice.paid"}, "evt_B"},
		{[]string{"--type", "customer.*"}, "evt_F evt_E evt_D evt_A"},
		{[]string{"--type", "customer."}, "evt_F evt_E evt_D evt_A"},
		{[]string{"--type", "customer.created", "--status", "failed"}, "evt_F evt_E"},
		{[]string{"--type", "charge.refunded"}, ""},
		{[]string{"--limit", "2"}, "evt_F evt_E"},
		{[]string{"-n", "1", "--status", "processed"}, "evt_B"},
		{[]string{"--limit", "0"}, "evt_F evt_E evt_D evt_C evt_B evt_A"},
	}
	for _, tc := range tests {
		if got := eventIDs(listedEvents(t, h, tc.args...)); got != tc.want {
			t.Errorf("list %v: %q, want %q", tc.args, got, tc.want)
		}
	}
}

// TestWebhooksListPagesThroughAll: --limit 0 lists every event across the
// listing's pages; the default stops at 50 and says more match.
func TestWebhooksListPagesThroughAll(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.run("", "staff", "list").must(t, 0)
	st := h.openStore()
	const n = webhookPage + 20
	for i := range n {
		ev := store.IncomingEvent{EventID: fmt.Sprintf("evt_P%04d", i), Type: "payment_intent.succeeded",
			Payload: []byte(fmt.Sprintf(`{"id":"evt_P%04d"}`, i))}
		if _, err := st.ReceiveWebhook(context.Background(), store.WebhookAttempt{ReceivedAt: time.Now()}, ev, webhooks.Process); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	evs := listedEvents(t, h, "--limit", "0")
	if len(evs) != n || evs[0].EventID != fmt.Sprintf("evt_P%04d", n-1) || evs[n-1].EventID != "evt_P0000" {
		t.Fatalf("--limit 0 listed %d events (first %v), want all %d newest first", len(evs), evs[0].EventID, n)
	}
	seen := map[string]bool{}
	for _, e := range evs {
		if seen[e.EventID] {
			t.Fatalf("%s listed twice", e.EventID)
		}
		seen[e.EventID] = true
	}
	r := h.run("", "webhooks", "list").must(t, 0)
	if rows := len(nonEmptyLines(r.stdout)); rows != 1+50+1 {
		t.Errorf("default list: %d lines, want header, 50 rows and the count:\n%s", rows, r.stdout)
	}
	if !strings.Contains(r.stdout, "50 events; more match: --limit 0 lists them all") {
		t.Errorf("default list does not say more match:\n%s", r.stdout)
	}
}

func TestWebhooksListTable(t *testing.T) {
	t.Parallel()
	h := webhookFixture(t)
	r := h.run("", "webhooks", "list", "--status", "processed").must(t, 0)
	lines := nonEmptyLines(r.stdout)
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "RECEIVED (UTC)") || !strings.Contains(lines[0], "STATUS") {
		t.Fatalf("want a header, two rows and a count:\n%s", r.stdout)
	}
	row := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  evt_B +invoice\.paid +processed +2  cus_Ada1$`)
	if !row.MatchString(lines[1]) {
		t.Errorf("row %q does not match %s", lines[1], row)
	}
	if lines[3] != "2 events" {
		t.Errorf("last line %q, want the count", lines[3])
	}
	if r := h.run("", "webhooks", "list", "--type", "charge.refunded").must(t, 0); !strings.Contains(r.stdout, "No events match.") {
		t.Errorf("empty filtered list:\n%s", r.stdout)
	}
	empty := newHarness(t)
	if r := empty.run("", "webhooks", "list").must(t, 0); !strings.Contains(r.stdout, "webhooks send") {
		t.Errorf("an empty list should say how to try one:\n%s", r.stdout)
	}
}

func TestWebhooksListRejected(t *testing.T) {
	t.Parallel()
	h := webhookFixture(t)
	r := h.run("", "webhooks", "list", "--rejected", "--json").must(t, 0)
	lines := nonEmptyLines(r.stdout)
	if len(lines) != 3 {
		t.Fatalf("want 3 rejected attempts:\n%s", r.stdout)
	}
	var reasons []string
	for _, l := range lines {
		if got := strings.Join(jsontest.Keys(t, l), ","); got != webhookRejectedKeys {
			t.Fatalf("keys %s, want %s", got, webhookRejectedKeys)
		}
		var a rejectedJSON
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatal(err)
		}
		if a.RemoteAddr != "198.51.100.7" || a.Headers["User-Agent"] != "curl/8" {
			t.Errorf("attempt %+v", a)
		}
		reasons = append(reasons, a.Reason)
	}
	if want := []string{webhooks.ReasonNoSignature, webhooks.ReasonTooOld, webhooks.ReasonNoMatch}; !slices.Equal(reasons, want) {
		t.Errorf("reasons %q, want newest first %q", reasons, want)
	}
	if r.stderr != "" {
		t.Errorf("stderr with nothing over the cap: %q", r.stderr)
	}
	r = h.run("", "webhooks", "list", "--rejected", "--limit", "2").must(t, 0)
	if !strings.Contains(r.stdout, "REASON") || !strings.Contains(r.stdout, webhooks.ReasonTooOld) ||
		strings.Contains(r.stdout, webhooks.ReasonNoMatch) || !strings.Contains(r.stdout, "2 rejected attempts") {
		t.Errorf("--rejected --limit 2 table:\n%s", r.stdout)
	}
	if r := h.run("", "webhooks", "list", "--rejected", "--status", "failed"); r.code != 2 || !strings.Contains(r.stderr, "--rejected") {
		t.Errorf("--rejected with --status: exit %d %q, want 2", r.code, r.stderr)
	}
}

// TestWebhooksListRejectedOverCap: past the cap, rejected attempts are
// only counted, and the listing says how many on stderr.
func TestWebhooksListRejectedOverCap(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.run("", "staff", "list").must(t, 0)
	st := h.openStore()
	at := time.Now().Truncate(time.Minute)
	for i := range store.RejectedPerMinute + 3 {
		att := store.WebhookAttempt{ReceivedAt: at.Add(time.Duration(i) * time.Millisecond), RemoteAddr: "192.0.2.1:4000"}
		if _, err := st.RecordRejected(context.Background(), att, webhooks.ReasonNoMatch); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	r := h.run("", "webhooks", "list", "--rejected", "--limit", "0", "--json").must(t, 0)
	if n := len(nonEmptyLines(r.stdout)); n != store.RejectedPerMinute {
		t.Errorf("%d stored, want %d", n, store.RejectedPerMinute)
	}
	if !strings.Contains(r.stderr, "3 more rejected attempts in the last 24 hours were only counted") {
		t.Errorf("stderr %q does not count the 3 over the cap", r.stderr)
	}
}

func TestWebhooksShow(t *testing.T) {
	t.Parallel()
	h := webhookFixture(t)
	r := h.run("", "webhooks", "show", "evt_B").must(t, 0)
	for _, want := range []string{
		"event id:     evt_B", "type:         invoice.paid", "status:       processed", "customer:     cus_Ada1",
		"api version:  " + stripe.APIVersion, "verified by:  secret 1 of 1", "2 attempts (oldest first):",
		"processed from 203.0.113.9", "duplicate from 203.0.113.9", "User-Agent: Stripe/1.0",
		"payload:", `"object": "invoice"`, `"customer": "cus_Ada1"`,
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, r.stdout)
		}
	}
	if i, j := strings.Index(r.stdout, "processed from"), strings.Index(r.stdout, "duplicate from"); i > j {
		t.Errorf("attempts are not oldest first:\n%s", r.stdout)
	}
	if r := h.run("", "webhooks", "show", "evt_E").must(t, 0); !strings.Contains(r.stdout, "error:") || !strings.Contains(r.stdout, "failed: ") {
		t.Errorf("show of a failed event lacks its error:\n%s", r.stdout)
	}

	r = h.run("", "webhooks", "show", "evt_B", "--json").must(t, 0)
	if got := strings.Join(jsontest.Keys(t, r.stdout), ","); got != webhookShowKeys {
		t.Fatalf("keys %s, want %s", got, webhookShowKeys)
	}
	var d struct {
		EventID  string                       `json:"event_id"`
		Status   string                       `json:"status"`
		Secret   string                       `json:"secret"`
		Attempts []map[string]json.RawMessage `json:"attempts"`
		Payload  struct {
			ID   string `json:"id"`
			Type string `json:"type"`
			Data struct {
				Object struct {
					Object string `json:"object"`
				} `json:"object"`
			} `json:"data"`
		} `json:"payload"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatal(err)
	}
	if d.EventID != "evt_B" || d.Status != "processed" || d.Secret != "secret 1 of 1" || len(d.Attempts) != 2 ||
		d.Payload.ID != "evt_B" || d.Payload.Type != "invoice.paid" || d.Payload.Data.Object.Object != "invoice" {
		t.Fatalf("show --json: %s", r.stdout)
	}
	var outcomes []string
	for _, a := range d.Attempts {
		b, _ := json.Marshal(a)
		if got := strings.Join(jsontest.Keys(t, string(b)), ","); !sameKeys(got, webhookAttemptKeys) {
			t.Errorf("attempt keys %s, want %s", got, webhookAttemptKeys)
		}
		var o string
		_ = json.Unmarshal(a["outcome"], &o)
		outcomes = append(outcomes, o)
	}
	if !slices.Equal(outcomes, []string{"processed", "duplicate"}) {
		t.Errorf("attempt outcomes %v", outcomes)
	}
}

// sameKeys compares two comma-separated key lists as sets (a map
// re-marshalled sorts its keys).
func sameKeys(a, b string) bool {
	x, y := strings.Split(a, ","), strings.Split(b, ",")
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

func TestWebhooksShowRefusals(t *testing.T) {
	t.Parallel()
	h := webhookFixture(t)
	r := h.run("", "webhooks", "show", "evt_Nope")
	if r.code != 1 || !strings.Contains(r.stderr, "no webhook event evt_Nope") || r.stdout != "" {
		t.Errorf("unknown event: exit %d stdout %q stderr %q, want 1", r.code, r.stdout, r.stderr)
	}
	if r := h.run("", "webhooks", "show", "evt_Nope", "--json"); r.code != 1 || r.stdout != "" {
		t.Errorf("unknown event --json: exit %d stdout %q, want 1 and nothing", r.code, r.stdout)
	}
	if r := h.run("", "webhooks", "show", "evt bad"); r.code != 2 || !strings.Contains(r.stderr, "not an event id") {
		t.Errorf("malformed id: exit %d %q, want 2", r.code, r.stderr)
	}
	if r := h.run("", "webhooks", "show"); r.code != 2 {
		t.Errorf("no id: exit %d, want 2", r.code)
	}
}

func TestWebhooksListRefusals(t *testing.T) {
	t.Parallel()
	h := webhookFixture(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--status", "duplicate"}, `--status "duplicate" is not valid: use processed, ignored or failed`},
		{[]string{"--status", "bogus"}, "is not valid"},
		{[]string{"--limit", "-1"}, "--limit -1"},
		{[]string{"--limit", "many"}, "many"},
		{[]string{"extra"}, ""},
	} {
		r := h.run("", append([]string{"webhooks", "list"}, tc.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("list %v: exit %d stdout %q stderr %q, want 2 naming %q", tc.args, r.code, r.stdout, r.stderr, tc.want)
		}
	}
}

// auditedReplays returns the webhook.replayed rows of the audit log.
func auditedReplays(t *testing.T, h *harness) []map[string]any {
	t.Helper()
	r := h.run("", "audit", "export", "--format", "jsonl").must(t, 0)
	var out []map[string]any
	for _, l := range nonEmptyLines(r.stdout) {
		var row map[string]any
		if err := json.Unmarshal([]byte(l), &row); err != nil {
			t.Fatal(err)
		}
		if row["action"] == store.ActionWebhookReplayed {
			out = append(out, row)
		}
	}
	return out
}

func TestWebhooksReplay(t *testing.T) {
	t.Parallel()
	h := webhookFixture(t)
	r := h.run("", "webhooks", "replay", "evt_D").must(t, 0)
	if !strings.Contains(r.stdout, "evt_D  customer.updated: failed → processed") {
		t.Errorf("replay output:\n%s", r.stdout)
	}
	if evs := listedEvents(t, h, "--status", "failed"); eventIDs(evs) != "evt_F evt_E" {
		t.Errorf("failed after replaying evt_D: %s", eventIDs(evs))
	}
	rows := auditedReplays(t, h)
	if len(rows) != 1 {
		t.Fatalf("%d webhook.replayed rows, want 1", len(rows))
	}
	detail, _ := rows[0]["detail"].(map[string]any)
	if rows[0]["target"] != "evt_D" || !strings.HasPrefix(fmt.Sprint(rows[0]["actor"]), "cli:") || rows[0]["channel"] != "cli" ||
		detail["before"] != "failed" || detail["outcome"] != "processed" || detail["type"] != "customer.updated" {
		t.Errorf("audit row %v", rows[0])
	}
	// Replaying a processed event changes nothing, and is audited too.
	if r := h.run("", "webhooks", "replay", "evt_A").must(t, 0); !strings.Contains(r.stdout, "processed → processed") {
		t.Errorf("replay of a processed event:\n%s", r.stdout)
	}

	// --failed: oldest first; the transient failure is processed, the
	// bad email fails again (exit 1, with its error).
	r = h.run("", "webhooks", "replay", "--failed")
	if r.code != 1 {
		t.Fatalf("replay --failed: exit %d, want 1 (one still fails)\n%s%s", r.code, r.stdout, r.stderr)
	}
	lines := nonEmptyLines(r.stdout)
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "evt_E") || !strings.Contains(lines[0], "failed → failed (") ||
		!strings.Contains(lines[1], "evt_F  customer.created: failed → processed") ||
		lines[2] != "Replayed 2 events: 1 processed, 0 ignored, 1 still failed." {
		t.Errorf("replay --failed output:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "1 event is still failed") {
		t.Errorf("replay --failed stderr: %q", r.stderr)
	}
	if rows := auditedReplays(t, h); len(rows) != 4 {
		t.Errorf("%d webhook.replayed rows, want 4", len(rows))
	}
	st := h.openStore()
	defer st.Close()
	if c, err := st.GetClient(context.Background(), "cus_Cy3"); err != nil || c.Source != store.SourceWebhook {
		t.Errorf("the replayed customer.created made no client: %+v %v", c, err)
	}
}

func TestWebhooksReplayRefusals(t *testing.T) {
	t.Parallel()
	h := webhookFixture(t)
	if r := h.run("", "webhooks", "replay", "evt_Nope"); r.code != 1 || !strings.Contains(r.stderr, "no webhook event evt_Nope") {
		t.Errorf("unknown event: exit %d %q, want 1", r.code, r.stderr)
	}
	if r := h.run("", "webhooks", "replay"); r.code != 2 || !strings.Contains(r.stderr, "--failed") {
		t.Errorf("no id: exit %d %q, want 2", r.code, r.stderr)
	}
	if r := h.run("", "webhooks", "replay", "evt_A", "--failed"); r.code != 2 || !strings.Contains(r.stderr, "not both") {
		t.Errorf("id and --failed: exit %d %q, want 2", r.code, r.stderr)
	}
	if rows := auditedReplays(t, h); len(rows) != 0 {
		t.Errorf("refused replays were audited: %v", rows)
	}
	empty := newHarness(t)
	if r := empty.run("", "webhooks", "replay", "--failed").must(t, 0); !strings.Contains(r.stdout, "No failed events to replay.") {
		t.Errorf("replay --failed with none: %q", r.stdout)
	}
}

func TestDefaultWebhookURL(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		"127.0.0.1:8080": "http://127.0.0.1:8080/webhooks/stripe",
		"0.0.0.0:8080":   "http://127.0.0.1:8080/webhooks/stripe",
		":9000":          "http://127.0.0.1:9000/webhooks/stripe",
		"[::]:8080":      "http://[::1]:8080/webhooks/stripe",
		"[::1]:8443":     "http://[::1]:8443/webhooks/stripe",
		"backroom:80":    "http://backroom:80/webhooks/stripe",
	} {
		if got := defaultWebhookURL(addr); got != want {
			t.Errorf("defaultWebhookURL(%q) = %q, want %q", addr, got, want)
		}
	}
}

// sentEventID is the event id `webhooks send` printed.
func sentEventID(t *testing.T, out string) string {
	t.Helper()
	m := regexp.MustCompile(`Sending (evt_[A-Za-z0-9]+) `).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("send did not name its event:\n%s", out)
	}
	return m[1]
}

// TestWebhooksSend: `webhooks send` signs sample events with the
// configured secret and posts them to the running server's endpoint (by
// default BACKROOM_HTTP_ADDR), which stores and processes them.
func TestWebhooksSend(t *testing.T) {
	t.Parallel()
	const secret = "whsec_sendTestSecretSendTestSecret01"
	h := newHarness(t)
	h.run("", "staff", "list").must(t, 0)
	p := startBackroom(t, h.data, envWebhookSecret+"="+secret)
	h.env[envWebhookSecret] = secret
	h.env[envHTTPAddr] = p.HTTPAddr

	var printed strings.Builder // every send's output, for the secret check below
	r := h.run("", "webhooks", "send", "--customer", "cus_SendTest1").must(t, 0)
	printed.WriteString(r.stdout + r.stderr)
	created := sentEventID(t, r.stdout)
	if !strings.Contains(r.stdout, "(customer.created, customer cus_SendTest1) to http://"+p.HTTPAddr+"/webhooks/stripe") ||
		!strings.Contains(r.stdout, "200 OK: processed") {
		t.Errorf("send output:\n%s", r.stdout)
	}
	r = h.run("", "webhooks", "send", "--type", "invoice.paid", "--customer", "cus_SendTest1", "--url", "http://"+p.HTTPAddr+"/webhooks/stripe").must(t, 0)
	printed.WriteString(r.stdout + r.stderr)
	paid := sentEventID(t, r.stdout)
	r = h.run("", "webhooks", "send", "--type", "product.created").must(t, 0)
	printed.WriteString(r.stdout + r.stderr)
	other := sentEventID(t, r.stdout)
	if !strings.Contains(r.stdout, "200 OK: ignored") {
		t.Errorf("a type without a processor:\n%s", r.stdout)
	}

	st := h.openStore()
	ctx := context.Background()
	for id, want := range map[string]string{created: store.WebhookProcessed, paid: store.WebhookProcessed, other: store.WebhookIgnored} {
		ev, err := st.GetWebhook(ctx, id)
		if err != nil || ev.Status != want || ev.Secret != "secret 1 of 1" || ev.APIVersion != stripe.APIVersion {
			t.Errorf("%s: %+v %v, want %s, verified by the secret", id, ev, err, want)
		}
	}
	c, err := st.GetClient(ctx, "cus_SendTest1")
	if err != nil || c.Source != store.SourceWebhook || !store.ValidEmail(c.Email) || c.Name == "" {
		t.Errorf("client from the sample customer.created: %+v %v", c, err)
	}
	if bills, err := st.BillingEvents(ctx, "cus_SendTest1", 10); err != nil || len(bills) != 1 || bills[0].EventID != paid {
		t.Errorf("billing activity from the sample invoice.paid: %+v %v", bills, err)
	}
	for _, out := range []string{printed.String(), p.Log()} {
		if strings.Contains(out, secret) {
			t.Errorf("the secret was printed:\n%s", out)
		}
	}

	// Wrong secret: 400, exit 1, with a hint; nothing stored.
	r = h.runEnv(map[string]string{envWebhookSecret: "whsec_notTheServersSecretNotTheServers"}, "", "webhooks", "send")
	if r.code != 1 || !strings.Contains(r.stdout, "400 Bad Request: "+webhooks.ReasonNoMatch) || !strings.Contains(r.stderr, "another secret") {
		t.Errorf("wrong secret: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := st.GetWebhook(ctx, sentEventID(t, r.stdout)); store.ErrorCode(err) != store.CodeNotFound {
		t.Errorf("an event signed with a wrong secret was stored: %v", err)
	}
}

func TestWebhooksSendRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.env[envHTTPAddr] = freePort(t) // nobody listens
	if r := h.run("", "webhooks", "send"); r.code != 2 || !strings.Contains(r.stderr, envWebhookSecret) {
		t.Errorf("no secret: exit %d %q, want 2 naming %s", r.code, r.stderr, envWebhookSecret)
	}
	h.env[envWebhookSecret] = "whsec_refusalsRefusalsRefusals0001"
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--url", "ftp://example.com/x"}, 2, "is not valid: give the endpoint's http or https URL"},
		{[]string{"--url", "not a url"}, 2, "is not valid"},
		{[]string{"--url", "http://"}, 2, "is not valid"},
		{[]string{"--type", "has space"}, 2, "is not an event type"},
		{[]string{"--type", ""}, 2, "is not an event type"},
		{[]string{"--customer", "bob"}, 2, "bob"},
		{nil, 1, "cannot reach http://" + h.env[envHTTPAddr] + "/webhooks/stripe"},
		{nil, 1, "(is backroom serve running, with " + envHTTPAddr + " " + h.env[envHTTPAddr] + "?)"},
	} {
		r := h.run("", append([]string{"webhooks", "send"}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("send %v: exit %d %q, want %d naming %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
		if strings.Contains(r.stdout+r.stderr, h.env[envWebhookSecret]) {
			t.Errorf("send %v printed the secret", tc.args)
		}
	}
}
