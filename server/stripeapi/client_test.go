package stripeapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"backroom/server/stripeapi/stripemock"
	"backroom/store"
)

func TestParseAPIBase(t *testing.T) {
	for raw, want := range map[string]string{
		"":                           DefaultAPIBase,
		"https://api.stripe.com/":    "https://api.stripe.com",
		"http://127.0.0.1:12111":     "http://127.0.0.1:12111",
		" http://stripe-mock:12111 ": "http://stripe-mock:12111",
	} {
		if got, err := ParseAPIBase(raw); err != nil || got != want {
			t.Errorf("ParseAPIBase(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
	for _, raw := range []string{"api.stripe.com", "ftp://x", "https://", "https://u:p@api.stripe.com", "https://api.stripe.com/?x=1", "://"} {
		if _, err := ParseAPIBase(raw); err == nil || !strings.Contains(err.Error(), "STRIPE_API_BASE") {
			t.Errorf("ParseAPIBase(%q) = %v, want an error naming STRIPE_API_BASE", raw, err)
		}
	}
}

func TestRedact(t *testing.T) {
	msg := "Authorization was 'Bearer " + liveKey + "'. Also rk_test_abcdefghijklmnopqrstuvwx and Basic c2tfbGl2ZV8xMjM0NTY3ODkw"
	got := redact(msg, liveKey)
	for _, bad := range []string{liveKey, "rk_test_abcdefghijklmnopqrstuvwx", "c2tfbGl2ZV8xMjM0NTY3ODkw"} {
		if strings.Contains(got, bad) {
			t.Fatalf("redact left %q in %q", bad, got)
		}
	}
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestCheckKey(t *testing.T) {
	t.Parallel()
	mock := stripemock.Start(t)

	t.Run("accepted", func(t *testing.T) {
		t.Parallel()
		if err := New(Config{APIBase: mock}).CheckKey(ctxb, testKey); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("rejected by stripe-mock, key not echoed", func(t *testing.T) {
		t.Parallel()
		logs := &logBuffer{}
		err := New(Config{APIBase: mock, Logger: logs.logger()}).CheckKey(ctxb, liveKey)
		if !errors.Is(err, store.ErrKeyRejected) {
			t.Fatalf("err = %v", err)
		}
		secret := liveKey[len("sk_live_"):]
		if strings.Contains(err.Error(), secret) || strings.Contains(logs.String(), secret) {
			t.Fatalf("key leaked: %v\n%s", err, logs)
		}
		if !strings.Contains(err.Error(), "Please authenticate") {
			t.Fatalf("Stripe's reason is missing: %v", err)
		}
	})

	t.Run("rejected with Stripe's invalid key answer", func(t *testing.T) {
		t.Parallel()
		px := newStripeProxy(t, mock, 0)
		px.setOnOther(func(r *http.Request) *reply {
			return &reply{401, stripeErrorJSON("invalid_request_error", "", "Invalid API Key provided: sk_test_****************************KEY1")}
		})
		err := New(Config{APIBase: px.URL()}).CheckKey(ctxb, testKey)
		if !errors.Is(err, store.ErrKeyRejected) || err.Error() != "Invalid API Key provided: sk_test_****************************KEY1: rejected by Stripe" {
			t.Fatalf("err = %v", err)
		}
		if px.pathHits("/v1/balance") != 1 {
			t.Fatalf("a 401 was retried")
		}
	})

	t.Run("restricted key without Balance but with Customers passes", func(t *testing.T) {
		t.Parallel()
		const rk = "rk_test_51HxYzAbCdEfGhIjKlMnOpRESTRICTED"
		px := newStripeProxy(t, mock, 3)
		forbidden := &reply{403, stripeErrorJSON("invalid_request_error", "", "The provided key 'rk_test_*****TED' does not have the required permissions for this endpoint.")}
		px.setOnOther(func(r *http.Request) *reply {
			if r.URL.Path == "/v1/balance" {
				return forbidden
			}
			return nil
		})
		c := New(Config{APIBase: px.URL()})
		if err := c.CheckKey(ctxb, rk); err != nil {
			t.Fatal(err)
		}
		px.setOnList(func(*http.Request, string, int) *reply { return forbidden })
		err := c.CheckKey(ctxb, rk)
		if !errors.Is(err, store.ErrKeyRejected) || !strings.Contains(err.Error(), "may not read customers") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("Stripe unreachable: not rejected, quick", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		err := New(Config{APIBase: closedPort(t), MaxNetworkRetries: 1}).CheckKey(ctxb, testKey)
		if err == nil || errors.Is(err, store.ErrKeyRejected) || !strings.HasPrefix(err.Error(), "Stripe could not be reached: ") {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %v", d)
		}
	})

	t.Run("5xx after retries: not rejected", func(t *testing.T) {
		t.Parallel()
		px := newStripeProxy(t, mock, 0)
		px.setOnOther(func(r *http.Request) *reply {
			return &reply{503, stripeErrorJSON("api_error", "", "Service unavailable")}
		})
		err := New(Config{APIBase: px.URL(), MaxNetworkRetries: 1}).CheckKey(ctxb, testKey)
		if err == nil || errors.Is(err, store.ErrKeyRejected) || !strings.HasPrefix(err.Error(), "Stripe could not be reached: it answered HTTP 503") {
			t.Fatalf("err = %v", err)
		}
		if got := px.pathHits("/v1/balance"); got != 2 {
			t.Fatalf("balance asked %d times, want 2", got)
		}
		// A proxy's HTML error page: no body in the message.
		px.setOnOther(func(r *http.Request) *reply { return &reply{502, "<html>Bad Gateway from the corporate proxy</html>"} })
		err = New(Config{APIBase: px.URL(), MaxNetworkRetries: -1}).CheckKey(ctxb, testKey)
		if err == nil || err.Error() != "Stripe could not be reached: it answered HTTP 502 with something that is not Stripe's JSON" {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("no answer: bounded", func(t *testing.T) {
		t.Parallel()
		px := newStripeProxy(t, mock, 0)
		px.setOnOther(func(r *http.Request) *reply {
			<-r.Context().Done()
			return &reply{500, "{}"}
		})
		c := New(Config{APIBase: px.URL()})
		c.checkTimeout = 300 * time.Millisecond
		err := c.CheckKey(ctxb, testKey)
		if err == nil || errors.Is(err, store.ErrKeyRejected) || err.Error() != "Stripe could not be reached: no answer within 300ms" {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("the store asks before saving a key", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOpts{base: mock})
		_, err := e.st.SetStripeKey(ctxb, cliAdmin, store.SetKeyRequest{Key: liveKey})
		if store.ErrorCode(err) != store.CodeInvalid || !strings.Contains(err.Error(), "Stripe rejected this key (sk_live_...KEY9)") {
			t.Fatalf("err = %v", err)
		}
		if ks, _ := e.st.KeyStatus(ctxb); ks.Source != store.SourceNone {
			t.Fatalf("a rejected key was stored: %+v", ks)
		}
		noSecrets(t, e, liveKey, err.Error())
		ks, err := e.st.SetStripeKey(ctxb, cliAdmin, store.SetKeyRequest{Key: testKey})
		if err != nil || ks.Warning != "" || ks.Source != store.SourceDatabase {
			t.Fatalf("status %+v, err %v", ks, err)
		}

		down := newEnv(t, envOpts{base: closedPort(t), retries: -1})
		ks, err = down.st.SetStripeKey(ctxb, cliAdmin, store.SetKeyRequest{Key: testKey})
		if err != nil || !strings.Contains(ks.Warning, "Stripe could not be reached") {
			t.Fatalf("status %+v, err %v", ks, err)
		}
	})
}

func TestCustomerAndLink(t *testing.T) {
	t.Parallel()
	mock := stripemock.Start(t)

	t.Run("Customer", func(t *testing.T) {
		t.Parallel()
		px := newStripeProxy(t, mock, 3)
		px.remove(2)
		px.setOnOther(func(r *http.Request) *reply {
			if r.URL.Path == "/v1/customers/cus_Missing1" {
				return &reply{404, stripeErrorJSON("invalid_request_error", "resource_missing", "No such customer: 'cus_Missing1'")}
			}
			return nil
		})
		c := New(Config{APIBase: px.URL()})
		d, err := c.Customer(ctxb, testKey, "cus_ABC123") // stripe-mock's fixture, for this id
		if err != nil {
			t.Fatal(err)
		}
		if d.CustomerID != "cus_ABC123" || d.Currency != "usd" || d.StripeCreated.Unix() != 1234567890 || d.Deleted || d.Livemode || d.Version == 0 {
			t.Fatalf("customer = %+v", d)
		}
		d, err = c.Customer(ctxb, testKey, customerID(2))
		if err != nil || !d.Deleted || d.CustomerID != customerID(2) {
			t.Fatalf("deleted customer = %+v, %v", d, err)
		}
		_, err = c.Customer(ctxb, testKey, "cus_Missing1")
		if store.ErrorCode(err) != store.CodeNotFound || !strings.HasPrefix(err.Error(), "Stripe has no customer cus_Missing1 in test mode") {
			t.Fatalf("err = %v", err)
		}
		before := px.pathHits("/v1/customers/x")
		if _, err := c.Customer(ctxb, testKey, "x/../../v1/balance"); store.ErrorCode(err) != store.CodeInvalid || px.pathHits("/v1/customers/x") != before {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("Link", func(t *testing.T) {
		t.Parallel()
		px := newStripeProxy(t, mock, 0)
		e := newEnv(t, envOpts{base: px.URL()})
		if _, err := e.sy.Link(ctxb, sshAdmin, "cus_ABC123"); !errors.Is(err, ErrNoKey) {
			t.Fatalf("without a key: %v", err)
		}
		e.setKeyUnchecked(t, testKey)
		if _, err := e.sy.Link(ctxb, sshStaff, "cus_ABC123"); store.ErrorCode(err) != store.CodeForbidden {
			t.Fatalf("staff: %v", err)
		}
		c, err := e.sy.Link(ctxb, sshAdmin, "cus_ABC123")
		if err != nil {
			t.Fatal(err)
		}
		if c.CustomerID != "cus_ABC123" || c.Source != store.SourceSync || c.Currency != "usd" || c.Deleted {
			t.Fatalf("linked = %+v", c)
		}
		outcome := func() string {
			t.Helper()
			evs, err := e.st.ClientAudit(ctxb, "cus_ABC123", 1)
			if err != nil || len(evs) != 1 || evs[0].Action != store.ActionClientAdded || evs[0].Actor != "alice" {
				t.Fatalf("audit = %+v, %v", evs, err)
			}
			var d map[string]any
			_ = json.Unmarshal([]byte(evs[0].Detail), &d)
			if d["via"] != "link" || d["customer_id"] != "cus_ABC123" {
				t.Fatalf("detail = %v", d)
			}
			return fmt.Sprint(d["outcome"], " ", d["deleted_at_stripe"])
		}
		if got := outcome(); got != "created false" {
			t.Fatalf("outcome %q", got)
		}
		e.clock.Add(time.Minute)
		if _, err := e.sy.Link(ctxb, sshAdmin, "cus_ABC123"); err != nil {
			t.Fatal(err)
		}
		if got := outcome(); got != "unchanged false" {
			t.Fatalf("outcome %q", got)
		}
		// Deleted at Stripe since: the record is kept and marked.
		px.mu.Lock()
		px.deleted["cus_ABC123"] = true
		px.deleted["cus_Gone1"] = true
		px.mu.Unlock()
		e.clock.Add(time.Minute)
		c, err = e.sy.Link(ctxb, sshAdmin, "cus_ABC123")
		if err != nil || !c.Deleted || c.Currency != "usd" {
			t.Fatalf("linked deleted = %+v, %v", c, err)
		}
		if got := outcome(); got != "updated true" {
			t.Fatalf("outcome %q", got)
		}
		if _, err := e.sy.Link(ctxb, sshAdmin, "cus_Gone1"); store.ErrorCode(err) != store.CodeNotFound {
			t.Fatalf("deleted and unknown: %v", err)
		}
		if _, err := e.sy.Link(ctxb, sshAdmin, "nope"); store.ErrorCode(err) != store.CodeInvalid {
			t.Fatalf("bad id: %v", err)
		}
		noSecrets(t, e, testKey)
	})

	t.Run("Link with a rejected key", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOpts{base: mock, key: liveKey})
		_, err := e.sy.Link(ctxb, sshAdmin, "cus_ABC123")
		if !errors.Is(err, store.ErrKeyRejected) || !strings.HasPrefix(store.ErrorMessage(err), "Stripe rejected the API key (sk_live_...KEY9)") {
			t.Fatalf("err = %v", err)
		}
		noSecrets(t, e, liveKey, err.Error())
	})
}
