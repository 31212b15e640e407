// Package web is Backroom's web admin: server-rendered pages (html/template,
// an embedded stylesheet, no script) at a secret path, for staff who prefer
// a browser to the SSH console. It calls the same store methods as the
// console, so the two apply the same rules and write the same audit rows
// (channel web).
//
// Exposure: only requests whose escaped path starts with the configured
// path, exactly, from an allowed address, reach a page; anything else gets
// the listener's plain 404. Sign-in takes a password and a TOTP code, or a
// one-time link issued from the console; both end in a server-side session
// held in an HttpOnly, SameSite=Strict cookie. Every state-changing request
// passes http.CrossOriginProtection and a form token compared in constant
// time.
package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"path"
	"strings"
	"time"

	"backroom/server/httpd"
	"backroom/server/throttle"
	"backroom/server/webhooks"
	"backroom/store"
	"backroom/tui"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/style.css
var styleCSS []byte

// Store is what the web admin needs of the store; *store.Store satisfies
// it. The methods are the console's, plus the web's own sign-in and
// session methods.
type Store interface {
	SignInWithPassword(ctx context.Context, a store.Actor, password, code string, hashWait time.Duration) (store.Actor, bool, error)
	RedeemSignInLink(ctx context.Context, a store.Actor, token string) (store.Actor, error)
	SignInFormToken(nonce string) string
	CreateWebSession(ctx context.Context, a store.Actor, method, userAgent string, lim store.WebSessionLimits) (string, store.WebSession, error)
	WebSession(ctx context.Context, token string, lim store.WebSessionLimits) (store.WebSession, error)
	SignOut(ctx context.Context, a store.Actor, token string) error
	EndWebSession(ctx context.Context, a store.Actor, id string) error
	EndWebSessionsOf(ctx context.Context, a store.Actor, name, reason string) (int, error)
	ListWebSessions(ctx context.Context) ([]store.WebSession, error)

	KeyStatus(ctx context.Context) (store.KeyStatus, error)
	SetStripeKey(ctx context.Context, a store.Actor, req store.SetKeyRequest) (store.KeyStatus, error)

	ListAudit(ctx context.Context, q store.AuditQuery) ([]store.Event, error)
	AuditActions(ctx context.Context) ([]string, error)
	ExportAudit(ctx context.Context, a store.Actor, w io.Writer, format string, q store.AuditQuery) (int, error)

	ListClients(ctx context.Context, q store.ClientQuery) (store.ClientPage, error)
	GetClient(ctx context.Context, customerID string) (store.Client, error)
	ViewClient(ctx context.Context, a store.Actor, customerID string) (store.Client, error)
	ClientAudit(ctx context.Context, customerID string, limit int) ([]store.Event, error)
	BillingEvents(ctx context.Context, customerID string, limit int) ([]store.BillingEvent, error)

	ListWebhooks(ctx context.Context, q store.WebhookQuery) ([]store.WebhookEvent, error)
	GetWebhook(ctx context.Context, eventID string) (store.WebhookEvent, error)
	WebhookAttempts(ctx context.Context, eventID string) ([]store.WebhookAttempt, error)
	CountFailedWebhooks(ctx context.Context) (int, error)
	ReplayWebhook(ctx context.Context, a store.Actor, eventID string, process store.Processor) (string, error)
}

var _ Store = (*store.Store)(nil)

// Config configures the web admin.
type Config struct {
	Store Store
	// Path is where the admin is served (ADMIN_URL): it starts and ends
	// with "/" and holds only unreserved URL characters (checked by New).
	Path string
	// Allow are the client addresses that may see the admin at all
	// (BACKROOM_ADMIN_ALLOW_CIDRS); others get the listener's 404.
	Allow []netip.Prefix
	// TrustedProxies are the peers whose X-Forwarded-For is believed
	// (BACKROOM_TRUSTED_PROXIES).
	TrustedProxies []netip.Prefix
	// Secure marks cookies Secure (with the __Host- prefix) and sends
	// HSTS: the listener has TLS, or a TLS proxy is in front of it
	// (BACKROOM_COOKIE_SECURE). HSTS is also sent on any TLS request.
	Secure bool
	// PublicURL is the admin's public origin (BACKROOM_PUBLIC_URL), trusted
	// by the cross-origin check when a proxy rewrites the Host header.
	PublicURL string
	// Limits are the sessions' idle and absolute lifetimes.
	Limits store.WebSessionLimits
	// Now is the clock of the sign-in throttle (nil: time.Now); session
	// lifetimes follow the store's clock.
	Now    func() time.Time
	Logger *slog.Logger
	// WebhookProcessor reprocesses replayed events; nil makes replay say
	// it is not available.
	WebhookProcessor store.Processor
	// WebhookSecretSet tells whether Stripe's webhooks can be verified.
	WebhookSecretSet bool
	// SSH is the registry of live SSH sessions, listed and ended on the
	// Sessions page beside the web sessions; nil lists web sessions only.
	SSH tui.Sessions
	// Penalties throttle sign-in attempts per source address (zero:
	// DefaultPenalties); each failure adds Penalty.
	Penalties throttle.Penalties
	Penalty   time.Duration
	// HashWait is how long a sign-in waits for a password-hashing slot
	// before it is answered 503 (default 3s).
	HashWait time.Duration
	// NotFound answers every request that is not the admin's (default:
	// httpd.NotFound, the listener's own 404).
	NotFound http.Handler
}

// DefaultPenalties throttle sign-in like OpenSSH's PerSourcePenalties
// throttle SSH logins: three failures in a row refuse a source for 15 s,
// more for longer, up to 10 minutes.
var DefaultPenalties = throttle.Penalties{Min: 15 * time.Second, Max: 10 * time.Minute}

// defaultPenalty is what one failed sign-in adds.
const defaultPenalty = 5 * time.Second

// Handler is the web admin.
type Handler struct {
	cfg      Config
	st       Store
	base     string
	log      *slog.Logger
	now      func() time.Time
	mux      *http.ServeMux
	cop      *http.CrossOriginProtection
	box      *throttle.Box
	pages    map[string]*template.Template
	cssETag  string
	notFound http.Handler
}

// ValidPath checks an admin path: it starts and ends with "/", its
// segments hold only letters, digits and - . _ ~ (so that it has one
// spelling), and it is neither /admin/ nor inside the listener's own
// paths.
func ValidPath(p string) error {
	if len(p) < 3 || p[0] != '/' || p[len(p)-1] != '/' {
		return errors.New("must start and end with / and name at least one segment, such as /backroom-admin/")
	}
	for _, seg := range strings.Split(p[1:len(p)-1], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return errors.New("has an empty, . or .. segment")
		}
		for _, r := range seg {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~", r)) {
				return errors.New("may hold only letters, digits and - . _ ~ between its slashes")
			}
		}
	}
	first := strings.ToLower(strings.SplitN(p[1:], "/", 2)[0])
	switch first {
	case "admin":
		return errors.New("must not be /admin/ (the first path anyone tries): choose a long random path")
	case "webhooks", "healthz", "readyz":
		return errors.New("must not start with /" + first + " (the listener's own path)")
	}
	return nil
}

// New builds the web admin.
func New(cfg Config) (*Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("web: no store")
	}
	if err := ValidPath(cfg.Path); err != nil {
		return nil, errors.New("web: ADMIN_URL " + err.Error())
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Penalties.Min == 0 && cfg.Penalties.Max == 0 {
		exempt := cfg.Penalties.Exempt
		cfg.Penalties = DefaultPenalties
		cfg.Penalties.Exempt = exempt
	}
	if cfg.Penalty <= 0 {
		cfg.Penalty = defaultPenalty
	}
	if cfg.HashWait <= 0 {
		cfg.HashWait = 3 * time.Second
	}
	if cfg.Limits.Idle <= 0 {
		cfg.Limits.Idle = 30 * time.Minute
	}
	if cfg.Limits.MaxAge <= 0 {
		cfg.Limits.MaxAge = 12 * time.Hour
	}
	if cfg.NotFound == nil {
		cfg.NotFound = http.HandlerFunc(httpd.NotFound)
	}
	h := &Handler{
		cfg:      cfg,
		st:       cfg.Store,
		base:     cfg.Path,
		log:      cfg.Logger,
		now:      cfg.Now,
		cop:      http.NewCrossOriginProtection(),
		box:      throttle.New(cfg.Now, cfg.Penalties),
		notFound: cfg.NotFound,
	}
	if cfg.PublicURL != "" {
		if err := h.cop.AddTrustedOrigin(strings.TrimRight(cfg.PublicURL, "/")); err != nil {
			return nil, errors.New("web: public URL: " + err.Error())
		}
	}
	sum := sha256.Sum256(styleCSS)
	h.cssETag = `"` + hex.EncodeToString(sum[:8]) + `"`
	var err error
	if h.pages, err = parsePages(); err != nil {
		return nil, err
	}
	h.routes()
	return h, nil
}

// routes registers the pages. Every pattern names one exact path (no
// subtree pattern, so ServeMux never redirects); anything else, including
// a known path with another method, is the listener's 404.
func (h *Handler) routes() {
	b := h.base
	m := http.NewServeMux()
	m.HandleFunc("GET "+b+"static/style.css", h.serveCSS)
	m.HandleFunc("GET "+b+"signin", h.signInPage)
	m.HandleFunc("POST "+b+"signin", h.preSession(h.signIn))
	m.HandleFunc("GET "+b+"link/{token}", h.linkPage)
	m.HandleFunc("POST "+b+"link/{token}", h.preSession(h.redeemLink))
	m.HandleFunc("POST "+b+"signout", h.action(h.signOut, false))

	m.HandleFunc("GET "+b+"{$}", h.page(h.dashboard, false))
	m.HandleFunc("GET "+b+"key", h.page(h.keyPage, false))
	m.HandleFunc("POST "+b+"key", h.action(h.updateKey, false))
	m.HandleFunc("GET "+b+"clients", h.page(h.clientsPage, false))
	m.HandleFunc("GET "+b+"clients/{cus}", h.page(h.clientPage, false))
	m.HandleFunc("GET "+b+"webhooks", h.page(h.webhooksPage, false))
	m.HandleFunc("GET "+b+"webhooks/{evt}", h.page(h.webhookPage, false))
	m.HandleFunc("POST "+b+"webhooks/{evt}/replay", h.action(h.replayWebhook, false))
	m.HandleFunc("GET "+b+"audit", h.page(h.auditPage, false))
	m.HandleFunc("POST "+b+"audit/export", h.action(h.exportAudit, true))
	m.HandleFunc("GET "+b+"sessions", h.page(h.sessionsPage, true))
	m.HandleFunc("POST "+b+"sessions", h.action(h.endSession, true))
	m.Handle("/", h.notFound)
	h.mux = m
}

// ServeHTTP answers a request for the admin: the listener's own 404 for a
// path that is not exactly under the admin's path (another case, any
// percent-encoding — no admin path needs one —, an uncleaned path) or a
// client outside the allowed addresses; otherwise the page, with the
// security headers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	if !strings.HasPrefix(p, h.base) || p != r.URL.Path || p != cleanPath(p) {
		h.notFound.ServeHTTP(w, r)
		return
	}
	if _, ok := h.allowed(r); !ok {
		h.notFound.ServeHTTP(w, r)
		return
	}
	h.securityHeaders(w, r)
	h.mux.ServeHTTP(w, r)
}

// Path is where the admin is served.
func (h *Handler) Path() string { return h.base }

// clientIP is the request's client address (X-Forwarded-For only from a
// trusted proxy).
func (h *Handler) clientIP(r *http.Request) netip.Addr {
	a, err := netip.ParseAddr(webhooks.ClientAddr(r, h.cfg.TrustedProxies))
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// allowed returns the client address and whether it may see the admin.
func (h *Handler) allowed(r *http.Request) (netip.Addr, bool) {
	ip := h.clientIP(r)
	if !ip.IsValid() {
		return ip, false
	}
	for _, p := range h.cfg.Allow {
		if p.Contains(ip) {
			return ip, true
		}
	}
	return ip, false
}

// csp allows nothing but this origin's own stylesheet and forms: no
// script at all, no framing, no <base>.
const csp = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"

func (h *Handler) securityHeaders(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", csp)
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cache-Control", "no-store")
	if h.cfg.Secure || r.TLS != nil {
		hd.Set("Strict-Transport-Security", "max-age=31536000")
	}
}

// serveCSS serves the embedded stylesheet: cacheable by the browser only
// (private: the path is secret), revalidated by its ETag.
func (h *Handler) serveCSS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "private, max-age=3600")
	w.Header().Set("ETag", h.cssETag)
	http.ServeContent(w, r, "style.css", time.Time{}, bytes.NewReader(styleCSS))
}

// cleanPath is ServeMux's canonical form of a path.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// parsePages parses every page with the layout, once.
func parsePages() (map[string]*template.Template, error) {
	layout, err := template.New("layout").Funcs(funcMap()).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, err
		}
		pages[name] = t
	}
	return pages, nil
}
