package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"backroom/server/webhooks"
	"backroom/store"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// TestWebhooksWired: the HTTP listener serves the webhook endpoint with
// the configured secrets, the console is told a secret is set, and Run
// prunes old webhook records as soon as it starts.
func TestWebhooksWired(t *testing.T) {
	dir := t.TempDir()
	clock := &testClock{t: time.Now().Add(-40 * 24 * time.Hour)}
	st, err := store.Open(context.Background(), store.Options{Dir: dir, MasterKey: store.NewMasterKey(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// An event received 40 days ago.
	old := store.IncomingEvent{EventID: "evt_old", Type: "ping", Payload: []byte(`{}`)}
	if _, err := st.ReceiveWebhook(context.Background(), store.WebhookAttempt{ReceivedAt: clock.Now()}, old, webhooks.Process); err != nil {
		t.Fatal(err)
	}
	clock.mu.Lock()
	clock.t = time.Now()
	clock.mu.Unlock()

	const secret = "whsec_wiredSecret42"
	srv, err := New(Config{
		Store: st, Now: clock.Now, SSHAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		HostKeyPath:    filepath.Join(dir, "host_key"),
		WebhookSecrets: []webhooks.Secret{secret},
		WebhookMaxBody: 8 << 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !srv.WebhookSecretSet() {
		t.Error("WebhookSecretSet = false with a secret")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := st.GetWebhook(context.Background(), "evt_old"); store.ErrorCode(err) == store.CodeNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the old event was not pruned at start")
		}
		time.Sleep(10 * time.Millisecond)
	}

	url := "http://" + srv.HTTPAddr() + "/webhooks/stripe"
	body := fmt.Appendf(nil, `{"id":"evt_wired","type":"customer.created","created":%d,"data":{"object":{"id":"cus_Wired","object":"customer"}}}`,
		time.Now().Unix())
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Stripe-Signature", webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret}).Header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(msg)) != "processed" {
		t.Fatalf("POST = %d %q", resp.StatusCode, msg)
	}
	if c, err := st.GetClient(context.Background(), "cus_Wired"); err != nil || c.Source != store.SourceWebhook {
		t.Errorf("client %+v %v", c, err)
	}
	resp, err = http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET = %d (Allow %q)", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestWebhookSecretNotSet(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(context.Background(), store.Options{Dir: dir, MasterKey: store.NewMasterKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := New(Config{Store: st, SSHAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", HostKeyPath: filepath.Join(dir, "host_key")})
	if err != nil {
		t.Fatal(err)
	}
	if srv.WebhookSecretSet() {
		t.Error("WebhookSecretSet = true without a secret")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	resp, err := http.Post("http://"+srv.HTTPAddr()+"/webhooks/stripe", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || strings.TrimSpace(string(msg)) != "webhook secret not set" {
		t.Errorf("POST = %d %q", resp.StatusCode, msg)
	}
}
