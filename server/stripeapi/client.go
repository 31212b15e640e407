// Package stripeapi is Backroom's client of Stripe's API: it checks keys,
// fetches customers and syncs them into the store.
//
// Every call builds its own stripe-go backend from a Config (base URL,
// retries, HTTP client, logger) and the key it is given: stripe-go's
// package-level key and default backends are never used, and the key is
// never logged (only its masked form, store.MaskStripeKey).
package stripeapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	stripe "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/balance"
	"github.com/stripe/stripe-go/v76/customer"

	"backroom/store"
)

// DefaultAPIBase is Stripe's API.
const DefaultAPIBase = "https://api.stripe.com"

// Config configures a Client.
type Config struct {
	// APIBase is where Stripe's API is (STRIPE_API_BASE); default
	// DefaultAPIBase. A trailing "/" or "/v1" is ignored.
	APIBase string
	// MaxNetworkRetries is how many times stripe-go retries a request that
	// failed with a connection error, a 5xx, a 409 or a 429 lock timeout,
	// with exponential backoff (0.5 s, 1 s, 2.5 s, … up to 5 s). 0 means the
	// default, 3; a negative value turns retries off.
	MaxNetworkRetries int64
	// HTTPClient makes the requests; default a client with a 30 s timeout.
	HTTPClient *http.Client
	// Logger receives operational messages (never a key or personal data);
	// nil discards them.
	Logger *slog.Logger
}

// Client talks to Stripe's API. It is safe for concurrent use and holds no
// key: each call is given the key to use.
type Client struct {
	base         string
	retries      int64
	http         *http.Client
	log          *slog.Logger
	checkTimeout time.Duration // bounds CheckKey, retries included
}

// errCheckTimeout is the cause of CheckKey's own deadline.
var errCheckTimeout = errors.New("key check timed out")

// New returns a Client for cfg.
func New(cfg Config) *Client {
	c := &Client{base: cfg.APIBase, retries: cfg.MaxNetworkRetries, http: cfg.HTTPClient, log: cfg.Logger,
		checkTimeout: 20 * time.Second}
	if strings.TrimSpace(c.base) == "" {
		c.base = DefaultAPIBase
	}
	switch {
	case c.retries == 0:
		c.retries = 3
	case c.retries < 0:
		c.retries = 0
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: 30 * time.Second}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// ParseAPIBase checks a STRIPE_API_BASE value ("" means DefaultAPIBase) and
// returns it without a trailing slash. It must be an http or https URL
// with a host and nothing after the path.
func ParseAPIBase(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return DefaultAPIBase, nil
	}
	u, err := url.Parse(raw)
	bad := err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != ""
	if bad {
		return "", fmt.Errorf("STRIPE_API_BASE %q is not valid: expected an http or https URL such as %s or http://127.0.0.1:12111 (stripe-mock)", raw, DefaultAPIBase)
	}
	return strings.TrimSuffix(raw, "/"), nil
}

// backend builds a stripe-go backend for one use with key. Its logger
// redacts the key.
func (c *Client) backend(key string) stripe.Backend {
	return stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		EnableTelemetry:   stripe.Bool(false),
		HTTPClient:        c.http,
		LeveledLogger:     stripeLogger{log: c.log, key: key},
		MaxNetworkRetries: stripe.Int64(c.retries),
		URL:               stripe.String(c.base),
	})
}

// CheckKey asks Stripe whether key works (GET /v1/balance). It implements
// store.KeyChecker: a key Stripe refuses (401, or 403 for a key that may
// not read customers either) gives an error wrapping store.ErrKeyRejected
// with Stripe's reason; anything else (network errors, 5xx after retries,
// rate limits) a plain error. Errors never contain the key.
func (c *Client) CheckKey(ctx context.Context, key string) error {
	// Saving a key waits for this: bound it even when the caller did not
	// (a black-holed network would otherwise take the HTTP timeout once
	// per retry).
	ctx, cancel := context.WithTimeoutCause(ctx, c.checkTimeout, errCheckTimeout)
	defer cancel()
	b := c.backend(key)
	params := &stripe.BalanceParams{}
	params.Context = ctx
	_, err := balance.Client{B: b, Key: key}.Get(params)
	if err == nil {
		return nil
	}
	f := classify(ctx, err, key)
	if f.kind == failForbidden {
		// A restricted key may lack the Balance permission and still
		// read customers, which is all Backroom needs.
		lp := &stripe.CustomerListParams{}
		lp.Context = ctx
		lp.Limit = stripe.Int64(1)
		lp.Single = true
		it := customer.Client{B: b, Key: key}.List(lp)
		for it.Next() {
		}
		if it.Err() == nil {
			return nil
		}
		f = classify(ctx, it.Err(), key)
		if f.kind == failForbidden {
			return fmt.Errorf("the key may not read customers, which Backroom needs (Stripe said: %s): %w", f.reason, store.ErrKeyRejected)
		}
	}
	c.log.Info("Stripe key check failed", "key", store.MaskStripeKey(key), "kind", f.kind.String(), "reason", f.reason)
	switch f.kind {
	case failRejected:
		return fmt.Errorf("%s: %w", f.reason, store.ErrKeyRejected)
	case failUnreachable:
		//lint:ignore ST1005 "Stripe" is a name; the message is shown to staff as is
		return fmt.Errorf("Stripe could not be reached: %s", f.reason)
	case failRateLimited:
		//lint:ignore ST1005 "Stripe" is a name; the message is shown to staff as is
		return errors.New("Stripe rate-limited the check; try again later")
	case failCanceled:
		if errors.Is(context.Cause(ctx), errCheckTimeout) {
			//lint:ignore ST1005 "Stripe" is a name; the message is shown to staff as is
			return fmt.Errorf("Stripe could not be reached: no answer within %s", c.checkTimeout)
		}
		return fmt.Errorf("the check was interrupted: %w", context.Cause(ctx))
	default:
		//lint:ignore ST1005 "Stripe" is a name; the message is shown to staff as is
		return fmt.Errorf("Stripe could not check the key: %s", f.reason)
	}
}

// Customer fetches one customer (GET /v1/customers/{id}) with key. A
// customer deleted at Stripe comes back with only CustomerID and Deleted
// set. Version is the time of the fetch (unix seconds); callers with their
// own clock may overwrite it. Unknown ids give a *store.Error with
// CodeNotFound; other failures a *store.Error whose message says what to do.
func (c *Client) Customer(ctx context.Context, key, id string) (store.ClientData, error) {
	if err := store.ValidCustomerID(id); err != nil {
		return store.ClientData{}, err
	}
	params := &stripe.CustomerParams{}
	params.Context = ctx
	cus, err := customer.Client{B: c.backend(key), Key: key}.Get(id, params)
	if err != nil {
		f := classify(ctx, err, key)
		if f.kind == failNotFound {
			return store.ClientData{}, &store.Error{Code: store.CodeNotFound,
				Msg: fmt.Sprintf("Stripe has no customer %s in %s mode", id, keyMode(key))}
		}
		c.log.Warn("fetching a Stripe customer failed", "customer_id", id, "key", store.MaskStripeKey(key), "kind", f.kind.String(), "reason", f.reason)
		return store.ClientData{}, f.storeError(key, "to fetch "+id, "try again")
	}
	if cus.ID == "" {
		cus.ID = id
	}
	return clientData(cus, time.Now().Unix()), nil
}

// clientData converts a Stripe customer into what the store keeps.
func clientData(c *stripe.Customer, version int64) store.ClientData {
	d := store.ClientData{
		CustomerID:  c.ID,
		Name:        c.Name,
		Email:       c.Email,
		Phone:       c.Phone,
		Description: c.Description,
		Currency:    string(c.Currency),
		Balance:     c.Balance,
		Delinquent:  c.Delinquent,
		Livemode:    c.Livemode,
		Metadata:    c.Metadata,
		Deleted:     c.Deleted,
		Version:     version,
	}
	if c.Created != 0 {
		d.StripeCreated = time.Unix(c.Created, 0).UTC()
	}
	return d
}

// keyMode is "live" or "test" for a key.
func keyMode(key string) string {
	if _, info, err := store.ParseStripeKey(key); err == nil {
		return info.Mode
	}
	if strings.Contains(key, "_live_") {
		return store.ModeLive
	}
	return store.ModeTest
}

// --- errors -----------------------------------------------------------------

type failKind int

const (
	failOther       failKind = iota
	failRejected             // 401: the key is invalid, expired or revoked
	failForbidden            // 403: the key may not do this
	failNotFound             // 404
	failRateLimited          // 429 after stripe-go's retries
	failUnreachable          // connection errors, timeouts, 5xx after retries
	failCanceled             // the caller's context ended
)

func (k failKind) String() string {
	return [...]string{"other", "rejected", "forbidden", "not_found", "rate_limited", "unreachable", "canceled"}[k]
}

// failure is a classified error from stripe-go; reason is safe to show
// (redacted, short, no personal data).
type failure struct {
	kind   failKind
	status int
	reason string
}

// classify sorts an error from stripe-go and extracts a reason that holds
// neither the key nor a response body.
func classify(ctx context.Context, err error, key string) failure {
	if ctx.Err() != nil {
		return failure{kind: failCanceled, reason: "interrupted"}
	}
	var se *stripe.Error
	if errors.As(err, &se) {
		f := failure{status: se.HTTPStatusCode, reason: clip(strings.TrimRight(redact(se.Msg, key), ". "), 200)}
		if f.reason == "" {
			f.reason = fmt.Sprintf("HTTP %d", se.HTTPStatusCode)
		}
		switch s := se.HTTPStatusCode; {
		case s == http.StatusUnauthorized:
			f.kind = failRejected
		case s == http.StatusForbidden:
			f.kind = failForbidden
		case s == http.StatusNotFound || se.Code == stripe.ErrorCodeResourceMissing:
			f.kind = failNotFound
		case s == http.StatusTooManyRequests:
			f.kind = failRateLimited
		case s >= 500:
			f.kind = failUnreachable
			f.reason = fmt.Sprintf("it answered HTTP %d (%s)", s, f.reason)
		}
		return f
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		reason := ue.Err.Error()
		var ne net.Error
		if errors.As(ue.Err, &ne) && ne.Timeout() {
			reason = "the request timed out"
		}
		return failure{kind: failUnreachable, reason: clip(redact(reason, key), 200)}
	}
	// stripe-go could not decode the answer (e.g. an HTML error page from
	// a proxy): its message holds a sample of the body, which is left out.
	msg := err.Error()
	if m := undecodable.FindStringSubmatch(msg); m != nil {
		status, _ := strconv.Atoi(m[1])
		f := failure{kind: failOther, status: status, reason: fmt.Sprintf("it answered HTTP %d with something that is not Stripe's JSON", status)}
		if status >= 500 {
			f.kind = failUnreachable
		}
		return f
	}
	return failure{kind: failOther, reason: clip(redact(msg, key), 200)}
}

// storeError turns a failure into a *store.Error with words a staff
// member can act on; doing says what was being done ("to fetch cus_…"),
// then what to do once the cause is fixed ("try again").
func (f failure) storeError(key, doing, then string) *store.Error {
	masked := store.MaskStripeKey(key)
	switch f.kind {
	case failRejected:
		return &store.Error{Code: store.CodeInvalid, Err: store.ErrKeyRejected,
			Msg: fmt.Sprintf("Stripe rejected the API key (%s): %s. Set a working key on the Key screen or with `backroom key set`, then %s", masked, f.reason, then)}
	case failForbidden:
		return &store.Error{Code: store.CodeInvalid,
			Msg: fmt.Sprintf("Stripe refused %s with this key (%s): %s. A restricted key needs read access to Customers", doing, masked, f.reason)}
	case failUnreachable:
		return &store.Error{Code: store.CodeInternal,
			Msg: fmt.Sprintf("Stripe could not be reached (%s); check the network and STRIPE_API_BASE, then %s", f.reason, then)}
	case failRateLimited:
		return &store.Error{Code: store.CodeInternal, Msg: "Stripe rate-limited the request; " + then + " later"}
	case failCanceled:
		return &store.Error{Code: store.CodeInternal, Msg: "interrupted before Stripe answered; " + then, Err: context.Canceled}
	case failNotFound:
		return &store.Error{Code: store.CodeNotFound, Msg: fmt.Sprintf("Stripe found nothing when asked %s (%s)", doing, f.reason)}
	default:
		return &store.Error{Code: store.CodeInternal, Msg: fmt.Sprintf("Stripe answered unexpectedly when asked %s: %s; %s", doing, f.reason, then)}
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && cut < len(s) && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
		cut--
	}
	return s[:cut] + "…"
}

// undecodable matches stripe-go's error for an answer that is not JSON.
var undecodable = regexp.MustCompile(`^Couldn't deserialize JSON \(response status: (\d+)`)

// keyLike matches anything shaped like a Stripe secret or restricted key;
// authHeader an Authorization value echoed back (stripe-mock does).
var (
	keyLike    = regexp.MustCompile(`(sk|rk)_(test|live)_[A-Za-z0-9]+`)
	authHeader = regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9+/=_\-.]+`)
)

// redact removes key (and anything shaped like a Stripe key or an
// Authorization header) from s.
func redact(s, key string) string {
	if key != "" {
		s = strings.ReplaceAll(s, key, store.MaskStripeKey(key))
		s = strings.ReplaceAll(s, base64.StdEncoding.EncodeToString([]byte(key+":")), "[redacted]")
		s = strings.ReplaceAll(s, base64.StdEncoding.EncodeToString([]byte(key)), "[redacted]")
	}
	s = authHeader.ReplaceAllString(s, "$1 [redacted]")
	return keyLike.ReplaceAllStringFunc(s, store.MaskStripeKey)
}

// stripeLogger passes stripe-go's log lines to slog, redacted. Its debug
// lines (whole response bodies: personal data) are dropped; its info lines
// (one per request) become debug, its warnings (retries) info, and its
// errors (each failed attempt, retried or not) warnings: the caller logs
// the outcome.
type stripeLogger struct {
	log *slog.Logger
	key string
}

func (l stripeLogger) Debugf(string, ...any) {}

func (l stripeLogger) Infof(format string, v ...any) { l.emit(slog.LevelDebug, format, v) }

func (l stripeLogger) Warnf(format string, v ...any) { l.emit(slog.LevelInfo, format, v) }

func (l stripeLogger) Errorf(format string, v ...any) { l.emit(slog.LevelWarn, format, v) }

func (l stripeLogger) emit(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	msg := fmt.Sprintf(format, v...)
	if i := strings.Index(msg, ", body sample"); i >= 0 {
		msg = msg[:i] + ")"
	}
	l.log.Log(ctx, level, "stripe-go: "+clip(redact(msg, l.key), 500))
}
