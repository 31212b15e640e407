package webhooks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"backroom/server/httpd"
	"backroom/store"
)

// FuzzWebhookHandler sends random bodies and Stripe-Signature headers to
// the endpoint over loopback HTTP, some of them signed (by the harness,
// at a fuzzed offset from now, with the secret or another), and checks:
// the handler never panics; it never answers 2xx to a request whose
// signature does not verify (by stripe-go, independently of the handler);
// and every event in the store came from a request that verified, with
// the body as sent.
func FuzzWebhookHandler(f *testing.F) {
	now := time.Now()
	seeds := []struct{ typ, object string }{
		{"customer.created", customerJSON("cus_Fz1", "Jenny Rosen", "jenny@example.com")},
		{"customer.updated", customerJSON("cus_Fz1", "Jenny R", "not-an-email")},
		{"customer.deleted", customerJSON("cus_Fz2", "", "")},
		{"invoice.paid", invoiceJSON("in_Fz1", "cus_Fz1", 1200, 1200, "paid")},
		{"invoice.payment_failed", invoiceJSON("in_Fz2", "cus_Fz1", 0, 990, "open")},
		{"charge.refunded", chargeJSON("ch_Fz1", "cus_Fz1", 1200, 400)},
		{"customer.subscription.updated", subscriptionJSON("sub_Fz1", "cus_Fz1", "active", 2000, 1)},
		{"payment_intent.succeeded", `{"id": "pi_1", "object": "payment_intent", "customer": "cus_Fz1"}`},
		{"customer.created", `{"id": "cus_Fz3", "object": "invoice"}`},
	}
	for i, s := range seeds {
		body := eventJSON(fmt.Sprintf("evt_fz%d", i), s.typ, now, s.object)
		f.Add(body, "", uint8(1), int16(0))         // signed with the secret, now
		f.Add(body, ",v1=00", uint8(1), int16(-30)) // plus a junk signature
		f.Add(body, "", uint8(2), int16(0))         // signed with another secret
		f.Add(body, "", uint8(3), int16(0))         // signed, then one byte changed
	}
	f.Add([]byte(`{"id":"evt_x","type":"customer.created"}`), "", uint8(1), int16(400))  // future
	f.Add([]byte(`{"id":"evt_x","type":"customer.created"}`), "", uint8(1), int16(-400)) // stale
	f.Add([]byte(`{"id":"evt_x"`), "", uint8(1), int16(0))                               // malformed, signed
	f.Add([]byte(`{"id":"evt_x","type":"x"}`), "t=1700000000,v1=abc", uint8(0), int16(0))
	f.Add([]byte(`{}`), "t=abc,v1=00", uint8(0), int16(0))
	f.Add([]byte(`null`), "v0=00", uint8(0), int16(0))
	f.Add([]byte(``), "", uint8(0), int16(0))
	f.Add(bytes.Repeat([]byte("a"), 5000), "", uint8(1), int16(0)) // over the limit

	// One endpoint and store per fuzzing process.
	st, err := store.Open(ctxb, store.Options{Dir: f.TempDir(), MasterKey: store.NewMasterKey()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	var panicked atomic.Value
	rec := &recordingStore{Store: st}
	h := New(Config{Store: rec, Secrets: []Secret{testSecret}, MaxBody: 4096, Logger: slog.New(slog.DiscardHandler)})
	guard := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				panicked.Store(fmt.Sprintf("%v\n%s", p, debug.Stack()))
				panic(p)
			}
		}()
		h.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	srv := httpd.NewServer(httpd.Handler(st, slog.New(slog.DiscardHandler), httpd.Routes{Webhook: guard}), slog.New(slog.DiscardHandler))
	go func() { _ = srv.Serve(ln) }()
	f.Cleanup(func() { _ = srv.Close() })
	url := "http://" + ln.Addr().String() + httpd.WebhookPath
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	// Bodies sent with a header that verified, by hash: every stored
	// payload must be one of them.
	var mu sync.Mutex
	verifiedBodies := map[[32]byte]string{}

	f.Fuzz(func(t *testing.T, body []byte, header string, mode uint8, offset int16) {
		ts := time.Now().Add(time.Duration(offset) * time.Second)
		sent := body
		switch mode % 4 {
		case 1: // signed with the secret
			header = webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: testSecret, Timestamp: ts}).Header + header
		case 2: // signed with another secret
			header = webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: "whsec_notTheSecret", Timestamp: ts}).Header + header
		case 3: // signed, then the body changed
			header = webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: testSecret, Timestamp: ts}).Header + header
			sent = append(append([]byte(nil), body...), ' ')
			if len(body) > 0 {
				sent = append([]byte(nil), body...)
				sent[int(offset&0x7fff)%len(sent)] ^= 0x20
			}
		}
		req, err := http.NewRequest("POST", url, bytes.NewReader(sent))
		if err != nil {
			return
		}
		if header != "" {
			req.Header["Stripe-Signature"] = []string{header}
		}
		before, calls := countEvents(t, st), rec.calls.Load()
		resp, err := client.Do(req)
		if p := panicked.Load(); p != nil {
			t.Fatalf("the handler panicked: %s", p)
		}
		if err != nil {
			// The client refused to send it (a header value Go will not
			// write), or the server dropped it: nothing was acknowledged.
			return
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// The server sees the header without surrounding spaces and tabs
		// (HTTP trims them from every field value), so that is what has
		// to verify.
		received := strings.Trim(header, " \t")
		genuine := webhook.ValidatePayloadWithTolerance(sent, received, testSecret, Tolerance) == nil
		if resp.StatusCode/100 == 3 {
			t.Fatalf("redirect %d", resp.StatusCode)
		}
		if resp.StatusCode/100 == 2 && !genuine {
			t.Fatalf("%d %q for a request that does not verify (header %q)", resp.StatusCode, msg, header)
		}
		if genuine && len(sent) <= 4096 {
			mu.Lock()
			verifiedBodies[sha256.Sum256(sent)] = received
			mu.Unlock()
		}
		if rec.calls.Load() != calls && !genuine {
			t.Fatalf("a request that does not verify reached ReceiveWebhook")
		}
		if after := countEvents(t, st); after != before && !genuine {
			t.Fatalf("an event was stored from a request that does not verify (%d → %d)", before, after)
		}
		// Every stored payload is a body that came with a verifying
		// header, and still verifies with it: the newest events, and the
		// one this request named (a retry of a failed event rewrites it).
		evs, err := st.ListWebhooks(ctxb, store.WebhookQuery{Limit: 5})
		if err != nil {
			t.Fatal(err)
		}
		if id := rec.last.Load(); id != nil && rec.calls.Load() != calls {
			evs = append(evs, store.WebhookEvent{EventID: id.(string)})
		}
		for _, e := range evs {
			full, err := st.GetWebhook(ctxb, e.EventID)
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			hdr, ok := verifiedBodies[sha256.Sum256(full.Payload)]
			mu.Unlock()
			if !ok {
				t.Fatalf("stored event %q has a payload no verified request carried: %q", e.EventID, full.Payload)
			}
			if err := webhook.ValidatePayloadIgnoringTolerance(full.Payload, hdr, testSecret); err != nil {
				t.Fatalf("stored event %q does not verify: %v", e.EventID, err)
			}
		}
	})
}

// recordingStore counts the events handed to ReceiveWebhook.
type recordingStore struct {
	*store.Store
	calls atomic.Int64
	last  atomic.Value // event id
}

func (r *recordingStore) ReceiveWebhook(ctx context.Context, att store.WebhookAttempt, ev store.IncomingEvent, p store.Processor) (string, error) {
	r.calls.Add(1)
	r.last.Store(ev.EventID)
	return r.Store.ReceiveWebhook(ctx, att, ev, p)
}

func countEvents(t *testing.T, st *store.Store) int {
	t.Helper()
	evs, err := st.ListWebhooks(ctxb, store.WebhookQuery{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) == 0 {
		return 0
	}
	return int(evs[0].ID) // ids only grow: a new event raises the newest id
}
