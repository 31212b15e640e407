package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"backroom/server/httpd"
)

// TestWebhooksSurviveKill9: the real binary takes signed webhook events
// from concurrent senders (the load generator of `bench webhooks`: new
// events, duplicates, forged ones) and is killed with SIGKILL in the
// middle of the load. Restarted on the same data directory, it has every
// event that was answered 2xx, and a redelivery of one is a duplicate.
func TestWebhooksSurviveKill9(t *testing.T) {
	t.Parallel()
	const secret = "whsec_killNineKillNineKillNine00001"
	h := newHarness(t)
	h.run("", "staff", "list").must(t, 0)
	p := startBackroom(t, h.data, envWebhookSecret+"="+secret)

	var acks atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loaded := make(chan loadResult, 1)
	go func() {
		loaded <- runLoad(ctx, loadOptions{
			URL: "http://" + p.HTTPAddr + httpd.WebhookPath, Secret: secret, Senders: 16, Duration: 20 * time.Second,
			Duplicates: 0.1, Forged: 0.05, Tag: "k9", Acks: &acks,
		})
	}()
	// Kill once the load is well under way: several hundred events
	// acknowledged, more in flight.
	deadline := time.Now().Add(15 * time.Second)
	for acks.Load() < 400 {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("only %d events acknowledged in 15 s\nlog:\n%s", acks.Load(), p.Log())
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.Kill()
	// The senders now meet refused connections; stop them soon after.
	time.Sleep(100 * time.Millisecond)
	cancel()
	res := <-loaded
	if res.Errors == 0 {
		t.Errorf("no request failed: the process was not killed under load")
	}
	if res.ForgedAccepted > 0 {
		t.Errorf("%d forged requests were answered 2xx", res.ForgedAccepted)
	}

	p2 := startBackroom(t, h.data, envWebhookSecret+"="+secret)
	stored := map[string]bool{}
	for _, l := range nonEmptyLines(h.run("", "webhooks", "list", "--limit", "0", "--json").must(t, 0).stdout) {
		var e webhookJSON
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		stored[e.EventID] = true
	}
	unique, missing, examples := missingAcked(res.Acked, stored)
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged events are missing after kill -9 and restart, e.g. %s", missing, unique, strings.Join(examples, ", "))
	}
	t.Logf("%d requests, %d acknowledged event ids, all stored; %d events stored in all", res.Requests, unique, len(stored))

	// Idempotency survived too: redelivering an acknowledged event is a
	// duplicate (one more attempt, no second effect).
	id := res.Acked[0]
	body := sampleBody(sampleEvent{Type: "customer.created", EventID: id, CustomerID: "cus_k9redelivery", Created: time.Now()})
	req, _ := http.NewRequest(http.MethodPost, "http://"+p2.HTTPAddr+httpd.WebhookPath, bytes.NewReader(body))
	req.Header.Set("Stripe-Signature", webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret}).Header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(answer)) != "duplicate" {
		t.Errorf("redelivery of %s after the restart: %d %q, want 200 duplicate", id, resp.StatusCode, answer)
	}
	p2.Stop(t)
	if r := h.run("", "audit", "verify"); r.code != 0 {
		t.Errorf("audit verify after kill -9: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
