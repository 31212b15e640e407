package stripeapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"sync"
	"time"
	"unicode/utf8"

	stripe "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/customer"

	"backroom/store"
)

// ErrNoKey is the refusal to sync or link without a Stripe key.
var ErrNoKey = &store.Error{Code: store.CodeInvalid,
	Msg: "no Stripe API key is set: set one on the Key screen or with `backroom key set`"}

// Sync defaults.
const (
	pageSize         = 100 // customers per list request (Stripe's maximum)
	defaultBatchSize = 500 // customers per store transaction
	defaultLeaseTTL  = 2 * time.Minute
)

// errLeaseLost is the cause of a sync's cancellation when another process
// took the lease over (ours expired: this process stalled).
var errLeaseLost = errors.New("the sync lease was taken over by another process")

// Syncer runs syncs of all customers from Stripe into the store, one at a
// time: a mutex in this process, and the store lease store.LeaseClientSync
// (renewed while the sync runs) across processes sharing the data
// directory. It is safe for concurrent use.
type Syncer struct {
	c   *Client
	st  *store.Store
	log *slog.Logger

	// Tunables (tests shorten them).
	batchSize      int
	leaseTTL       time.Duration
	rateLimitWait  time.Duration // first wait after Stripe rate-limits a page; doubles
	rateLimitTries int           // how many times a rate-limited page is asked again

	mu      sync.Mutex
	running bool
	holder  string // lease holder of the running sync
	status  store.SyncProgress
	wg      sync.WaitGroup
}

// NewSyncer returns a Syncer that uses c and the key of st. log nil means
// c's logger.
func NewSyncer(c *Client, st *store.Store, log *slog.Logger) *Syncer {
	if log == nil {
		log = c.log
	}
	return &Syncer{c: c, st: st, log: log,
		batchSize: defaultBatchSize, leaseTTL: defaultLeaseTTL,
		rateLimitWait: 2 * time.Second, rateLimitTries: 4}
}

// Status is the progress of the running sync, or of the last one this
// Syncer ran (the zero value before any).
func (s *Syncer) Status() store.SyncProgress {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Wait blocks until a sync started with Start has finished (and written
// its audit row). Call it before closing the store, once the context given
// to Start is cancelled (which stops the sync) and nothing calls Start any
// more.
func (s *Syncer) Wait() { s.wg.Wait() }

// Start begins a sync in the background and returns at once. The sync is
// bound to ctx (the server's context, not a console session's: leaving the
// screen does not stop it); Status reports its progress. It refuses with
// ErrNoKey when no Stripe key is set, and with a *store.Error of code
// CodeConflict when a sync is already running here or in another process.
func (s *Syncer) Start(ctx context.Context, a store.Actor) error {
	r, err := s.begin(ctx, a)
	if err != nil {
		return err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_, _ = r.run(ctx, nil)
	}()
	return nil
}

// Run syncs in the foreground (the CLI), calling progress (when not nil)
// after each batch is stored. It refuses like Start. The error, when the
// sync failed, is a *store.Error whose message is the progress's Err.
func (s *Syncer) Run(ctx context.Context, a store.Actor, progress func(store.SyncProgress)) (store.SyncProgress, error) {
	r, err := s.begin(ctx, a)
	if err != nil {
		return store.SyncProgress{}, err
	}
	return r.run(ctx, progress)
}

// Link fetches one customer from Stripe and stores it (source sync), for
// an admin linking a customer Backroom has not seen (or refreshing one).
// It is audited as client.added with detail via "link" and the outcome
// (created, updated, unchanged, stale). A customer deleted at Stripe marks
// the local record deleted (keeping its fields); one Backroom does not
// know is refused as not found.
func (s *Syncer) Link(ctx context.Context, a store.Actor, customerID string) (store.Client, error) {
	if !a.IsAdmin() {
		return store.Client{}, &store.Error{Code: store.CodeForbidden, Msg: "only an admin may link clients"}
	}
	if err := store.ValidCustomerID(customerID); err != nil {
		return store.Client{}, err
	}
	key, err := s.key(ctx)
	if err != nil {
		return store.Client{}, err
	}
	d, err := s.c.Customer(ctx, key, customerID)
	if err != nil {
		return store.Client{}, err
	}
	d.Version = s.st.Now().Unix()
	if d.Deleted {
		cur, err := s.st.GetClient(ctx, customerID)
		if store.ErrorCode(err) == store.CodeNotFound {
			return store.Client{}, &store.Error{Code: store.CodeNotFound,
				Msg: fmt.Sprintf("%s was deleted at Stripe; there is nothing to link", customerID)}
		}
		if err != nil {
			return store.Client{}, err
		}
		d = store.ClientData{CustomerID: cur.CustomerID, Name: cur.Name, Email: cur.Email, Phone: cur.Phone,
			Description: cur.Description, Currency: cur.Currency, Balance: cur.Balance, Delinquent: cur.Delinquent,
			Livemode: cur.Livemode, Metadata: cur.Metadata, StripeCreated: cur.StripeCreated, Deleted: true, Version: d.Version}
	}
	c, _, err := s.st.LinkClient(ctx, a, d, store.Detail{"via": "link", "deleted_at_stripe": d.Deleted, "mode": keyMode(key)})
	if err != nil {
		if store.ErrorCode(err) == store.CodeInvalid {
			return store.Client{}, &store.Error{Code: store.CodeInvalid,
				Msg: fmt.Sprintf("Stripe's data for %s cannot be stored: its %s does not pass Backroom's checks", customerID, invalidField(d))}
		}
		return store.Client{}, err
	}
	return c, nil
}

// key returns the active Stripe key, or ErrNoKey.
func (s *Syncer) key(ctx context.Context) (string, error) {
	key, ok, err := s.st.StripeKey(ctx)
	if err != nil {
		return "", err
	}
	if !ok || key == "" {
		return "", ErrNoKey
	}
	return key, nil
}

// syncRun is one sync between begin and its end.
type syncRun struct {
	s      *Syncer
	a      store.Actor
	key    string
	live   bool
	holder string
	start  time.Time
	p      store.SyncProgress
}

// begin applies the refusals and takes the process slot and the lease.
// The mutex is not held across the store calls (Status stays quick).
func (s *Syncer) begin(ctx context.Context, a store.Actor) (*syncRun, error) {
	s.mu.Lock()
	if s.running {
		defer s.mu.Unlock()
		return nil, conflict(s.holder)
	}
	s.running, s.holder = true, a.Name+" via "+a.Channel
	s.mu.Unlock()
	started := false
	defer func() {
		if !started {
			s.mu.Lock()
			s.running, s.holder = false, ""
			s.mu.Unlock()
		}
	}()

	if err := ctx.Err(); err != nil {
		return nil, &store.Error{Code: store.CodeInternal, Msg: "Backroom is shutting down; run the sync later", Err: err}
	}
	key, err := s.key(ctx)
	if err != nil {
		return nil, err
	}
	start := s.st.Now()
	holder := fmt.Sprintf("%s via %s at %s (pid %d, run %s)", a.Name, a.Channel,
		start.UTC().Format("2006-01-02 15:04:05 UTC"), os.Getpid(), randomHex(3))
	if err := s.st.AcquireLease(ctx, store.LeaseClientSync, holder, s.leaseTTL); err != nil {
		if errors.Is(err, store.ErrLeaseHeld) {
			other, _ := s.st.LeaseHolder(ctx, store.LeaseClientSync)
			if other == "" {
				other = "another process"
			}
			return nil, conflict(other)
		}
		return nil, err
	}
	r := &syncRun{s: s, a: a, key: key, live: keyMode(key) == store.ModeLive, holder: holder, start: start,
		p: store.SyncProgress{Running: true, StartedBy: a.Name, StartedAt: start}}
	s.mu.Lock()
	s.holder, s.status = holder, r.p
	s.mu.Unlock()
	started = true
	return r, nil
}

func conflict(holder string) error {
	return &store.Error{Code: store.CodeConflict, Msg: "a sync is already running (started by " + holder + ")"}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// publish makes p the visible status.
func (r *syncRun) publish() {
	r.s.mu.Lock()
	r.s.status = r.p
	r.s.mu.Unlock()
}

// run does the sync and everything that must follow it, whatever happens:
// the audit row, the lease's release, the final status.
func (r *syncRun) run(parent context.Context, progress func(store.SyncProgress)) (store.SyncProgress, error) {
	s := r.s
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	stopRenew := r.renewLease(ctx, cancel)

	masked := store.MaskStripeKey(r.key)
	s.log.Info("client sync started", "by", r.a.Name, "key", masked)
	complete, err := r.sync(ctx, progress)
	stopRenew()

	r.p.Running = false
	r.p.FinishedAt = s.st.Now()
	if err != nil {
		r.p.Err = redact(store.ErrorMessage(err), r.key)
	}

	// The end is recorded even when the sync's context was cancelled.
	after, done := context.WithTimeout(context.WithoutCancel(parent), 10*time.Second)
	defer done()
	detail := store.Detail{
		"fetched": r.p.Fetched, "created": r.p.Created, "updated": r.p.Updated, "unchanged": r.p.Unchanged,
		"stale": r.p.Stale, "skipped": r.p.Skipped, "marked_deleted": r.p.MarkedDeleted,
		"mode": keyMode(r.key), "key": masked, "complete": complete,
		"duration_ms": r.p.FinishedAt.Sub(r.start).Milliseconds(),
	}
	if r.p.Err != "" {
		detail["error"] = r.p.Err
	}
	if aerr := s.st.Audit(after, r.a, store.ActionClientSynced, "clients", detail); aerr != nil {
		s.log.Error("auditing a client sync", "err", aerr)
	}
	if rerr := s.st.ReleaseLease(after, store.LeaseClientSync, r.holder); rerr != nil {
		s.log.Error("releasing the client sync lease", "err", rerr)
	}
	attrs := []any{"by", r.a.Name, "key", masked, "fetched", r.p.Fetched, "created", r.p.Created, "updated", r.p.Updated,
		"unchanged", r.p.Unchanged, "stale", r.p.Stale, "skipped", r.p.Skipped, "marked_deleted", r.p.MarkedDeleted}
	if err != nil {
		s.log.Warn("client sync failed", append(attrs, "err", r.p.Err)...)
	} else {
		s.log.Info("client sync finished", attrs...)
	}

	s.mu.Lock()
	s.status = r.p
	s.running, s.holder = false, ""
	s.mu.Unlock()
	if err != nil {
		return r.p, &store.Error{Code: store.ErrorCode(err), Msg: r.p.Err, Err: unwrapSafe(err)}
	}
	return r.p, nil
}

// unwrapSafe keeps the sentinel errors callers may test for, and nothing
// else (wrapped errors may hold details not meant for staff).
func unwrapSafe(err error) error {
	for _, target := range []error{store.ErrKeyRejected, context.Canceled, context.DeadlineExceeded, errLeaseLost} {
		if errors.Is(err, target) {
			return target
		}
	}
	return nil
}

// renewLease keeps the lease while the sync runs; losing it to another
// process cancels the sync. The returned func stops the renewal.
func (r *syncRun) renewLease(ctx context.Context, cancel context.CancelCauseFunc) (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(r.s.leaseTTL / 4)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				err := r.s.st.AcquireLease(ctx, store.LeaseClientSync, r.holder, r.s.leaseTTL)
				if errors.Is(err, store.ErrLeaseHeld) {
					r.s.log.Error("client sync stopped: another process took the sync lease over")
					cancel(errLeaseLost)
					return
				}
				if err != nil && ctx.Err() == nil {
					r.s.log.Warn("renewing the client sync lease", "err", err)
				}
			}
		}
	}()
	return func() { close(quit); wg.Wait() }
}

// sync lists every customer and stores them batch by batch; only after a
// complete listing does it mark the missing ones deleted.
func (r *syncRun) sync(ctx context.Context, progress func(store.SyncProgress)) (complete bool, err error) {
	s := r.s
	version := r.start.Unix()
	cc := customer.Client{B: s.c.backend(r.key), Key: r.key}
	seen := make(map[string]bool)
	batch := make([]store.ClientData, 0, s.batchSize)

	flush := func(ctx context.Context) error {
		if len(batch) == 0 {
			return nil
		}
		res, skipped, err := r.store(ctx, batch)
		r.p.UpsertResult.Add(res)
		r.p.Skipped += skipped
		batch = batch[:0]
		if err != nil {
			return err
		}
		r.publish()
		if progress != nil {
			progress(r.p)
		}
		return nil
	}
	// On failure, what was fetched is still stored (an interrupted sync
	// keeps its work), even when ctx was cancelled.
	flushAfterFailure := func() {
		fctx, done := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer done()
		if err := flush(fctx); err != nil {
			s.log.Error("storing the clients fetched before the sync failed", "err", err)
		}
	}

	lastID := ""
	tries := 0
	wait := s.rateLimitWait
	for {
		params := &stripe.CustomerListParams{}
		params.Context = ctx
		params.Limit = stripe.Int64(pageSize)
		if lastID != "" {
			params.StartingAfter = stripe.String(lastID)
		}
		it := cc.List(params)
		for it.Next() {
			cus := it.Customer()
			lastID = cus.ID
			if seen[cus.ID] {
				continue // listed twice (the list moved under us)
			}
			seen[cus.ID] = true
			r.p.Fetched++
			tries, wait = 0, s.rateLimitWait
			batch = append(batch, clientData(cus, version))
			if len(batch) >= s.batchSize {
				if err := flush(ctx); err != nil {
					return false, r.failed(ctx, err)
				}
			} else if r.p.Fetched%pageSize == 0 {
				r.publish()
			}
		}
		lerr := it.Err()
		if lerr == nil {
			break
		}
		f := classify(ctx, lerr, r.key)
		if f.kind == failRateLimited && tries < s.rateLimitTries {
			tries++
			s.log.Info("Stripe rate-limited the client sync; waiting", "wait", wait.String(), "try", tries)
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				flushAfterFailure()
				return false, r.failed(ctx, ctx.Err())
			}
			wait *= 2
			continue
		}
		flushAfterFailure()
		s.log.Warn("listing Stripe customers failed", "kind", f.kind.String(), "reason", f.reason, "after", lastID)
		if f.kind == failRateLimited {
			return false, &store.Error{Code: store.CodeInternal, Msg: "Stripe rate-limited the sync repeatedly; run it again later"}
		}
		return false, r.failed(ctx, lerr)
	}
	if err := flush(ctx); err != nil {
		return false, r.failed(ctx, err)
	}
	n, err := s.st.MarkMissingDeleted(ctx, r.live, version)
	if err != nil {
		return true, r.failed(ctx, err)
	}
	r.p.MarkedDeleted = n
	r.publish()
	return true, nil
}

// failed words why the sync stopped, for staff.
func (r *syncRun) failed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		if errors.Is(context.Cause(ctx), errLeaseLost) {
			return &store.Error{Code: store.CodeConflict, Err: errLeaseLost,
				Msg: "the sync stopped: another process took it over (this one stalled past its lease); nothing was marked deleted"}
		}
		return &store.Error{Code: store.CodeInternal, Err: context.Canceled,
			Msg: "the sync was interrupted before it finished (what was fetched is kept; nothing was marked deleted); run it again"}
	}
	var se *store.Error
	if errors.As(err, &se) {
		return &store.Error{Code: se.Code, Msg: "storing the clients failed: " + se.Msg + "; run the sync again"}
	}
	f := classify(ctx, err, r.key)
	if f.kind == failOther && !isStripeError(err) {
		r.s.log.Error("client sync", "err", f.reason)
		return &store.Error{Code: store.CodeInternal, Msg: "the sync failed (details are in the server log); run it again"}
	}
	return f.storeError(r.key, "to list customers", "run the sync again")
}

func isStripeError(err error) bool {
	var se *stripe.Error
	return errors.As(err, &se)
}

// store upserts a batch in one transaction. When the store refuses the
// batch because a customer's data does not pass its checks, the batch is
// stored one customer at a time and the refused ones are skipped (logged
// by customer id only: the store's message may quote personal data).
func (r *syncRun) store(ctx context.Context, batch []store.ClientData) (store.UpsertResult, int, error) {
	res, err := r.s.st.UpsertClients(ctx, store.SourceSync, batch)
	if err == nil || store.ErrorCode(err) != store.CodeInvalid {
		return res, 0, err
	}
	res = store.UpsertResult{}
	skipped := 0
	for _, d := range batch {
		one, err := r.s.st.UpsertClients(ctx, store.SourceSync, []store.ClientData{d})
		if store.ErrorCode(err) == store.CodeInvalid {
			skipped++
			r.s.log.Warn("skipped a Stripe customer whose data Backroom cannot store", "customer_id", d.CustomerID, "field", invalidField(d))
			continue
		}
		if err != nil {
			return res, skipped, err
		}
		res.Add(one)
	}
	return res, skipped, nil
}

var currencyRE = regexp.MustCompile(`^[a-z]{3}$`)

// invalidField names the field of d that the store's checks refuse (for
// the log; the value itself is personal data).
func invalidField(d store.ClientData) string {
	if store.ValidCustomerID(d.CustomerID) != nil {
		return "customer id"
	}
	for _, f := range []struct{ name, v string }{{"name", d.Name}, {"email", d.Email}, {"phone", d.Phone},
		{"description", d.Description}, {"currency", d.Currency}} {
		if !utf8.ValidString(f.v) || len(f.v) > 1000 {
			return f.name
		}
	}
	if !store.ValidEmail(d.Email) {
		return "email"
	}
	if d.Currency != "" && !currencyRE.MatchString(d.Currency) {
		return "currency"
	}
	return "data"
}
