package stripeapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"backroom/server/stripeapi/stripemock"
	"backroom/store"
)

var ctxb = context.Background()

// syncAudits returns the detail of every client.synced row, oldest first.
func syncAudits(t *testing.T, st *store.Store) []map[string]any {
	t.Helper()
	evs, err := st.ListAudit(ctxb, store.AuditQuery{ActionPrefix: store.ActionClientSynced, Oldest: true})
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, e := range evs {
		var d map[string]any
		if err := json.Unmarshal([]byte(e.Detail), &d); err != nil {
			t.Fatal(err)
		}
		d["_actor"], d["_target"], d["_channel"] = e.Actor, e.Target, e.Channel
		out = append(out, d)
	}
	return out
}

// noSecrets fails when key (or its secret part) shows up in the logs, the
// audit log, or the text given.
func noSecrets(t *testing.T, e *env, key string, texts ...string) {
	t.Helper()
	secret := key[len("sk_test_"):]
	evs, err := e.st.ListAudit(ctxb, store.AuditQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		texts = append(texts, ev.Detail, ev.Target)
	}
	texts = append(texts, e.logs.String())
	for _, s := range texts {
		if strings.Contains(s, secret) {
			t.Fatalf("the key leaked into: %s", s)
		}
	}
}

func wantProgress(t *testing.T, p store.SyncProgress, fetched, created, updated, unchanged, deleted int) {
	t.Helper()
	if p.Fetched != fetched || p.Created != created || p.Updated != updated || p.Unchanged != unchanged || p.MarkedDeleted != deleted {
		t.Fatalf("progress = fetched %d, created %d, updated %d, unchanged %d, marked deleted %d; want %d, %d, %d, %d, %d (err %q)",
			p.Fetched, p.Created, p.Updated, p.Unchanged, p.MarkedDeleted, fetched, created, updated, unchanged, deleted, p.Err)
	}
}

func TestSync(t *testing.T) {
	t.Parallel()
	mock := stripemock.Start(t)

	t.Run("counts, pages, rerun, update, deleted, forgotten", func(t *testing.T) {
		t.Parallel()
		const n = 250
		px := newStripeProxy(t, mock, n)
		e := newEnv(t, envOpts{base: px.URL(), key: testKey})
		e.sy.batchSize = 100
		var calls []store.SyncProgress
		p, err := e.sy.Run(ctxb, cliAdmin, func(p store.SyncProgress) { calls = append(calls, p) })
		if err != nil {
			t.Fatal(err)
		}
		wantProgress(t, p, n, n, 0, 0, 0)
		if p.Running || p.Err != "" || p.StartedBy != "root" || p.FinishedAt.IsZero() || p.StartedAt.IsZero() {
			t.Fatalf("final progress %+v", p)
		}
		// 250 customers, 100 a page: three list requests, the 2nd and 3rd
		// continuing after the last customer of the page before.
		if got, want := px.listRequests(), []string{"", customerID(99), customerID(199)}; !slices.Equal(got, want) {
			t.Fatalf("list requests (starting_after) = %q, want %q", got, want)
		}
		if len(calls) != 3 || calls[0].Created != 100 || calls[1].Created != 200 || calls[2].Created != 250 || !calls[0].Running {
			t.Fatalf("progress calls = %+v", calls)
		}
		if e.sy.Status() != p {
			t.Fatalf("Status() = %+v, want %+v", e.sy.Status(), p)
		}
		c, err := e.st.GetClient(ctxb, customerID(42))
		if err != nil {
			t.Fatal(err)
		}
		if c.Name != "Client 0042" || c.Email != "client0042@example.com" || c.Phone != "+15550000042" ||
			c.Description != "customer number 42" || c.Balance != 420 || c.Currency != "usd" || c.Livemode ||
			c.Metadata["n"] != "42" || c.StripeCreated.Unix() != 1_700_000_042 || c.Source != store.SourceSync ||
			c.Version != p.StartedAt.Unix() || c.Deleted {
			t.Fatalf("stored client = %+v", c)
		}
		if c7, _ := e.st.GetClient(ctxb, customerID(7)); !c7.Delinquent {
			t.Fatalf("customer 7 should be delinquent: %+v", c7)
		}
		au := syncAudits(t, e.st)
		if len(au) != 1 || au[0]["created"] != 250.0 || au[0]["fetched"] != 250.0 || au[0]["marked_deleted"] != 0.0 ||
			au[0]["complete"] != true || au[0]["mode"] != "test" || au[0]["_actor"] != "root" || au[0]["_target"] != "clients" || au[0]["error"] != nil {
			t.Fatalf("audit = %v", au)
		}

		// Idempotent: the same customers again change nothing.
		e.clock.Add(time.Minute)
		p, err = e.sy.Run(ctxb, cliAdmin, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantProgress(t, p, n, 0, 0, n, 0)

		// One customer changes at Stripe, one is deleted there (it leaves
		// the list), one is forgotten here.
		px.set(5, "name", "Renamed Five")
		px.set(5, "balance", -300)
		px.remove(7)
		if err := e.st.ForgetClient(ctxb, cliAdmin, customerID(9)); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(time.Minute)
		p, err = e.sy.Run(ctxb, cliAdmin, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantProgress(t, p, n-1, 0, 1, n-2, 1)
		if c, _ := e.st.GetClient(ctxb, customerID(5)); c.Name != "Renamed Five" || c.Balance != -300 {
			t.Fatalf("updated client = %+v", c)
		}
		if c, _ := e.st.GetClient(ctxb, customerID(7)); !c.Deleted || c.Name != "Client 0007" {
			t.Fatalf("client deleted at Stripe = %+v", c)
		}
		c9, _ := e.st.GetClient(ctxb, customerID(9))
		if !c9.Forgotten() || c9.Name != "" || c9.Email != "" || c9.Phone != "" || c9.Description != "" || len(c9.Metadata) != 0 {
			t.Fatalf("forgotten client after a sync = %+v", c9)
		}

		// And again: nothing more to mark deleted.
		e.clock.Add(time.Minute)
		p, err = e.sy.Run(ctxb, cliAdmin, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantProgress(t, p, n-1, 0, 0, n-1, 0)
		if au := syncAudits(t, e.st); len(au) != 4 || au[2]["marked_deleted"] != 1.0 || au[2]["updated"] != 1.0 {
			t.Fatalf("audit = %v", au)
		}
		noSecrets(t, e, testKey)
	})

	t.Run("500 retried by stripe-go", func(t *testing.T) {
		t.Parallel()
		px := newStripeProxy(t, mock, 110)
		px.setOnList(func(r *http.Request, after string, hit int) *reply {
			if after == customerID(99) && hit == 1 {
				return &reply{500, stripeErrorJSON("api_error", "", "An unknown error occurred")}
			}
			return nil
		})
		e := newEnv(t, envOpts{base: px.URL(), key: testKey})
		p, err := e.sy.Run(ctxb, cliAdmin, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantProgress(t, p, 110, 110, 0, 0, 0)
		if got := px.pageRequests(customerID(99)); got != 2 {
			t.Fatalf("page 2 was asked %d times, want 2 (one retry)", got)
		}
		if !strings.Contains(e.logs.String(), "Initiating retry 1") {
			t.Fatalf("no retry in the log:\n%s", e.logs)
		}
	})

	t.Run("429 lock timeout retried by stripe-go", func(t *testing.T) {
		t.Parallel()
		px := newStripeProxy(t, mock, 20)
		px.setOnList(func(r *http.Request, after string, hit int) *reply {
			if hit == 1 {
				return &reply{429, stripeErrorJSON("invalid_request_error", "lock_timeout", "This object cannot be accessed right now because another API request or Stripe process is currently accessing it.")}
			}
			return nil
		})
		e := newEnv(t, envOpts{base: px.URL(), key: testKey})
		p, err := e.sy.Run(ctxb, cliAdmin, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantProgress(t, p, 20, 20, 0, 0, 0)
		if got := px.pageRequests(""); got != 2 {
			t.Fatalf("the page was asked %d times, want 2", got)
		}
	})

	t.Run("429 rate limit retried by the sync", func(t *testing.T) {
		t.Parallel()
		px := newStripeProxy(t, mock, 110)
		px.setOnList(func(r *http.Request, after string, hit int) *reply {
			if after == customerID(99) && hit <= 2 {
				return &reply{429, stripeErrorJSON("invalid_request_error", "rate_limit", "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.")}
			}
			return nil
		})
		e := newEnv(t, envOpts{base: px.URL(), key: testKey})
		p, err := e.sy.Run(ctxb, cliAdmin, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantProgress(t, p, 110, 110, 0, 0, 0)
		// stripe-go does not retry a rate limit itself; the sync waits and
		// asks for the page again (after the last customer it has).
		if got := px.pageRequests(customerID(99)); got != 3 {
			t.Fatalf("page 2 was asked %d times, want 3", got)
		}
		if !strings.Contains(e.logs.String(), "Stripe rate-limited the client sync; waiting") {
			t.Fatalf("log:\n%s", e.logs)
		}
	})

	t.Run("persistent rate limit fails", func(t *testing.T) {
		t.Parallel()
		px := newStripeProxy(t, mock, 20)
		px.setOnList(func(r *http.Request, after string, hit int) *reply {
			return &reply{429, stripeErrorJSON("invalid_request_error", "rate_limit", "Request rate limit exceeded.")}
		})
		e := newEnv(t, envOpts{base: px.URL(), key: testKey})
		p, err := e.sy.Run(ctxb, cliAdmin, nil)
		if err == nil || p.Err != "Stripe rate-limited the sync repeatedly; run it again later" || err.Error() != p.Err {
			t.Fatalf("err = %v, progress err %q", err, p.Err)
		}
		if got := px.pageRequests(""); got != 1+e.sy.rateLimitTries {
			t.Fatalf("the page was asked %d times, want %d", got, 1+e.sy.rateLimitTries)
		}
	})

	t.Run("persistent 500 fails, keeps what was fetched, marks nothing", func(t *testing.T) {
		t.Parallel()
		const n = 110
		px := newStripeProxy(t, mock, n)
		e := newEnv(t, envOpts{base: px.URL(), key: testKey, retries: 1})
		if _, err := e.sy.Run(ctxb, cliAdmin, nil); err != nil {
			t.Fatal(err)
		}
		px.set(50, "name", "Changed Fifty")
		px.remove(3)
		px.setOnList(func(r *http.Request, after string, hit int) *reply {
			if after != "" {
				return &reply{500, stripeErrorJSON("api_error", "", "An unknown error occurred")}
			}
			return nil
		})
		e.clock.Add(time.Minute)
		p, err := e.sy.Run(ctxb, sshAdmin, nil)
		if err == nil || store.ErrorCode(err) != store.CodeInternal {
			t.Fatalf("err = %v", err)
		}
		if !strings.HasPrefix(p.Err, "Stripe could not be reached (it answered HTTP 500") || !strings.Contains(p.Err, "run the sync again") {
			t.Fatalf("Err = %q", p.Err)
		}
		wantProgress(t, p, 100, 0, 1, 99, 0)
		if got := px.pageRequests(customerID(100)); got != 2 {
			t.Fatalf("page 2 was asked %d times, want 2 (MaxNetworkRetries 1)", got)
		}
		if c, _ := e.st.GetClient(ctxb, customerID(3)); c.Deleted {
			t.Fatal("an incomplete sync marked a customer deleted")
		}
		if c, _ := e.st.GetClient(ctxb, customerID(50)); c.Name != "Changed Fifty" {
			t.Fatal("what the failed sync fetched was not kept")
		}
		au := syncAudits(t, e.st)
		last := au[len(au)-1]
		if last["error"] != p.Err || last["complete"] != false || last["fetched"] != 100.0 || last["_actor"] != "alice" || last["_channel"] != "ssh" {
			t.Fatalf("audit = %v", last)
		}
		if st := e.sy.Status(); st.Err != p.Err || st.Running {
			t.Fatalf("Status = %+v", st)
		}
		// Stripe is back: the sync completes and finds the deleted one.
		px.setOnList(nil)
		e.clock.Add(time.Minute)
		p, err = e.sy.Run(ctxb, sshAdmin, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantProgress(t, p, n-1, 0, 0, n-1, 1)
	})

	t.Run("interrupted sync keeps its work and runs again", func(t *testing.T) {
		t.Parallel()
		const n = 110
		px := newStripeProxy(t, mock, n)
		reached := make(chan struct{}, 1)
		px.setOnList(func(r *http.Request, after string, hit int) *reply {
			if after == customerID(99) {
				reached <- struct{}{}
				<-r.Context().Done() // hangs until the client gives up
				return &reply{500, "{}"}
			}
			return nil
		})
		e := newEnv(t, envOpts{base: px.URL(), key: testKey})
		ctx, cancel := context.WithCancel(ctxb)
		if err := e.sy.Start(ctx, sshAdmin); err != nil {
			t.Fatal(err)
		}
		<-reached
		if st := e.sy.Status(); !st.Running || st.StartedBy != "alice" || st.Fetched != 100 {
			t.Fatalf("Status while running = %+v", st)
		}
		cancel()
		e.sy.Wait()
		p := e.sy.Status()
		if p.Running || !strings.Contains(p.Err, "interrupted") {
			t.Fatalf("Status = %+v", p)
		}
		wantProgress(t, p, 100, 100, 0, 0, 0)
		if au := syncAudits(t, e.st); len(au) != 1 || au[0]["complete"] != false || au[0]["created"] != 100.0 {
			t.Fatalf("audit = %v", au)
		}
		if h, _ := e.st.LeaseHolder(ctxb, store.LeaseClientSync); h != "" {
			t.Fatalf("lease still held by %q", h)
		}
		px.setOnList(nil)
		e.clock.Add(time.Minute)
		p, err := e.sy.Run(ctxb, sshAdmin, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantProgress(t, p, n, n-100, 0, 100, 0)
	})

	t.Run("one at a time, in this process and across processes", func(t *testing.T) {
		t.Parallel()
		px := newStripeProxy(t, mock, 10)
		gate := make(chan struct{})
		reached := make(chan struct{}, 1)
		var once sync.Once
		px.setOnList(func(r *http.Request, after string, hit int) *reply {
			once.Do(func() { reached <- struct{}{} })
			<-gate
			return nil
		})
		e := newEnv(t, envOpts{base: px.URL(), key: testKey})
		e.sy.leaseTTL = 300 * time.Millisecond // renewed every 75 ms
		if err := e.sy.Start(ctxb, sshAdmin); err != nil {
			t.Fatal(err)
		}
		<-reached
		for _, err := range []error{e.sy.Start(ctxb, sshStaff), func() error { _, err := e.sy.Run(ctxb, cliAdmin, nil); return err }()} {
			if store.ErrorCode(err) != store.CodeConflict || !strings.HasPrefix(err.Error(), "a sync is already running (started by alice via ssh at ") {
				t.Fatalf("second start: %v", err)
			}
		}
		// Another process (a second handle on the same data directory),
		// well after the lease's TTL: the renewal keeps it.
		time.Sleep(700 * time.Millisecond)
		other := newEnv(t, envOpts{base: px.URL(), dir: e.dir, mk: e.mk})
		err := other.sy.Start(ctxb, cliAdmin)
		if store.ErrorCode(err) != store.CodeConflict || !strings.Contains(err.Error(), "started by alice via ssh") {
			t.Fatalf("start from another process: %v", err)
		}
		if _, err := other.sy.Run(ctxb, cliAdmin, nil); store.ErrorCode(err) != store.CodeConflict {
			t.Fatalf("run from another process: %v", err)
		}
		close(gate)
		e.sy.Wait()
		if p := e.sy.Status(); p.Err != "" || p.Created != 10 || p.Running {
			t.Fatalf("Status = %+v", p)
		}
		// Released: the other process may sync now.
		p, err := other.sy.Run(ctxb, cliAdmin, nil)
		if err != nil {
			t.Fatal(err)
		}
		if p.Unchanged != 10 {
			t.Fatalf("progress %+v", p)
		}
		if au := syncAudits(t, e.st); len(au) != 2 {
			t.Fatalf("audit rows: %v (refusals write none)", au)
		}
	})

	t.Run("a sync whose lease is taken over stops", func(t *testing.T) {
		t.Parallel()
		px := newStripeProxy(t, mock, 5)
		reached := make(chan struct{}, 1)
		px.setOnList(func(r *http.Request, after string, hit int) *reply {
			reached <- struct{}{}
			<-r.Context().Done()
			return &reply{500, "{}"}
		})
		e := newEnv(t, envOpts{base: px.URL(), key: testKey})
		e.sy.leaseTTL = 200 * time.Millisecond
		if err := e.sy.Start(ctxb, sshAdmin); err != nil {
			t.Fatal(err)
		}
		<-reached
		// As if this process had stalled past its lease and another one
		// had taken it.
		holder, err := e.st.LeaseHolder(ctxb, store.LeaseClientSync)
		if err != nil || !strings.HasPrefix(holder, "alice via ssh at ") {
			t.Fatalf("holder %q, %v", holder, err)
		}
		if err := e.st.ReleaseLease(ctxb, store.LeaseClientSync, holder); err != nil {
			t.Fatal(err)
		}
		if err := e.st.AcquireLease(ctxb, store.LeaseClientSync, "intruder", time.Minute); err != nil {
			t.Fatal(err)
		}
		e.sy.Wait()
		p := e.sy.Status()
		if !strings.HasPrefix(p.Err, "the sync stopped: another process took it over") || p.MarkedDeleted != 0 {
			t.Fatalf("Status = %+v", p)
		}
		if h, _ := e.st.LeaseHolder(ctxb, store.LeaseClientSync); h != "intruder" {
			t.Fatalf("the stopped sync released someone else's lease: holder %q", h)
		}
	})

	t.Run("no key", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOpts{base: mock})
		const want = "no Stripe API key is set: set one on the Key screen or with `backroom key set`"
		if err := e.sy.Start(ctxb, sshAdmin); err == nil || err.Error() != want || !errors.Is(err, ErrNoKey) {
			t.Fatalf("Start: %v", err)
		}
		if _, err := e.sy.Run(ctxb, cliAdmin, nil); err == nil || err.Error() != want {
			t.Fatalf("Run: %v", err)
		}
		if e.sy.Status().Running {
			t.Fatal("running")
		}
		if au := syncAudits(t, e.st); len(au) != 0 {
			t.Fatalf("audit: %v", au)
		}
	})

	t.Run("rejected key: actionable, never leaked", func(t *testing.T) {
		t.Parallel()
		// stripe-mock refuses live keys with a 401 that quotes the
		// Authorization header, key included.
		px := newStripeProxy(t, mock, 5)
		e := newEnv(t, envOpts{base: px.URL(), key: liveKey})
		p, err := e.sy.Run(ctxb, cliAdmin, nil)
		if !errors.Is(err, store.ErrKeyRejected) || store.ErrorCode(err) != store.CodeInvalid {
			t.Fatalf("err = %v", err)
		}
		if !strings.HasPrefix(p.Err, "Stripe rejected the API key (sk_live_...KEY9): ") || !strings.HasSuffix(p.Err, "then run the sync again") {
			t.Fatalf("Err = %q", p.Err)
		}
		if got := px.pageRequests(""); got != 1 {
			t.Fatalf("a 401 was retried: %d requests", got)
		}
		if au := syncAudits(t, e.st); len(au) != 1 || au[0]["mode"] != "live" || au[0]["error"] != p.Err {
			t.Fatalf("audit = %v", au)
		}
		if !strings.Contains(e.logs.String(), "sk_live_...KEY9") || !strings.Contains(e.logs.String(), "Request error from Stripe (status 401)") {
			t.Fatalf("the log should name the masked key and stripe-go's error:\n%s", e.logs)
		}
		noSecrets(t, e, liveKey, p.Err, err.Error())
	})

	t.Run("customer data the store refuses is skipped", func(t *testing.T) {
		t.Parallel()
		px := newStripeProxy(t, mock, 12)
		px.set(4, "email", "not-an-email")
		e := newEnv(t, envOpts{base: px.URL(), key: testKey})
		p, err := e.sy.Run(ctxb, cliAdmin, nil)
		if err != nil {
			t.Fatal(err)
		}
		if p.Skipped != 1 || p.Created != 11 || p.Fetched != 12 {
			t.Fatalf("progress %+v", p)
		}
		logs := e.logs.String()
		if !strings.Contains(logs, `"customer_id":"cus_Test00004","field":"email"`) || strings.Contains(logs, "not-an-email") {
			t.Fatalf("log:\n%s", logs)
		}
		if _, err := e.st.GetClient(ctxb, customerID(4)); store.ErrorCode(err) != store.CodeNotFound {
			t.Fatalf("skipped customer stored: %v", err)
		}
		if au := syncAudits(t, e.st); au[0]["skipped"] != 1.0 {
			t.Fatalf("audit = %v", au)
		}
	})
}
