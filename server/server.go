// Package server runs Backroom's network edges: the SSH console server, the
// sibling HTTP listener (Stripe's webhooks, health) and the web admin — on
// the HTTP listener or on a listener of its own — started together and
// stopped together.
package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/sync/errgroup"

	"backroom/server/httpd"
	"backroom/server/sshd"
	"backroom/server/web"
	"backroom/server/webhooks"
	"backroom/store"
	"backroom/tui"
)

// Config is everything the servers need; cmd/backroom fills it from flags,
// the environment and .env.
type Config struct {
	Store  *store.Store
	Logger *slog.Logger
	Now    func() time.Time // nil = time.Now

	SSHAddr     string // e.g. 127.0.0.1:2222
	HTTPAddr    string // e.g. 127.0.0.1:8080
	HostKeyPath string // generated (ed25519, 0600) when missing

	MaxStartups    MaxStartups    // like OpenSSH's MaxStartups (default 64:30:256)
	PenaltyExempt  []netip.Prefix // sources never penalised (default loopback)
	IdleTimeout    time.Duration  // console idle timeout (default 15m)
	IdleWarning    time.Duration  // warning before the idle end (default 1m)
	GraceTime      time.Duration  // deadline to finish authentication (default 60s)
	CodePrompts    int            // code prompts per connection (default 3)
	EnrollDuration time.Duration  // life of an enrollment-only session (default 10m)
	// KeysPollInterval is how often authorized_keys is checked for hand
	// edits (default 1s).
	KeysPollInterval time.Duration
	// ClientSync syncs clients with Stripe for the console (nil: the
	// console says sync is not available). Syncs started from the console
	// run under the server's lifetime, not the console's: Run cancels them
	// when it shuts down; the caller waits for them (stripeapi.Syncer.Wait)
	// before closing the store.
	ClientSync tui.ClientSync

	// WebhookSecrets are Stripe's webhook signing secrets
	// (STRIPE_WEBHOOK_SECRET), tried in order. With none the endpoint
	// answers 503 and the console says "webhook secret not set".
	WebhookSecrets []webhooks.Secret
	// WebhookMaxBody is the largest webhook body, in bytes (default 1 MiB).
	WebhookMaxBody int64
	// TrustedProxies are the peers whose X-Forwarded-For is believed
	// (BACKROOM_TRUSTED_PROXIES).
	TrustedProxies []netip.Prefix
	// WebhookRetention is how long webhook records are kept (default 720h,
	// at least 72h); WebhookPruneInterval is how often they are pruned
	// (default 1h).
	WebhookRetention     time.Duration
	WebhookPruneInterval time.Duration

	// AdminPath is where the web admin is served (ADMIN_URL); "" turns the
	// web admin off.
	AdminPath string
	// AdminAddr gives the web admin a listener of its own
	// (BACKROOM_ADMIN_ADDR): the HTTP listener then never serves it. ""
	// serves it on the HTTP listener.
	AdminAddr string
	// AdminAllow are the client addresses that may see the admin
	// (BACKROOM_ADMIN_ALLOW_CIDRS); others get the plain 404.
	AdminAllow []netip.Prefix
	// TLSCert puts TLS on the listener that serves the admin
	// (BACKROOM_TLS_CERT_FILE, BACKROOM_TLS_KEY_FILE); nil: plain HTTP.
	TLSCert *tls.Certificate
	// CookieSecure marks the admin's cookies Secure and sends HSTS behind a
	// TLS proxy (BACKROOM_COOKIE_SECURE); TLSCert implies it.
	CookieSecure bool
	// PublicURL is the admin listener's public origin, for the console's
	// sign-in links (BACKROOM_PUBLIC_URL); "" uses the bound address
	// (http:// or https://).
	PublicURL string
	// WebLimits are the web sessions' idle and absolute lifetimes
	// (default 30m and 12h); WebPruneInterval is how often expired ones
	// are ended (default 1m).
	WebLimits        store.WebSessionLimits
	WebPruneInterval time.Duration
}

// MaxStartups caps concurrent unauthenticated SSH connections: above Start,
// new ones are refused with probability Rate% rising linearly to 100% at
// Full.
type MaxStartups = sshd.MaxStartups

// Server is the listeners, bound and ready to run.
type Server struct {
	cfg       Config
	sync      *boundSync // nil without cfg.ClientSync
	log       *slog.Logger
	sshLn     net.Listener
	httpLn    net.Listener
	adminLn   net.Listener // nil unless the admin has its own listener
	ssh       *sshd.Server
	http      *http.Server
	admin     *http.Server // nil unless the admin has its own listener
	web       *web.Handler // nil when the web admin is off
	publicURL string       // the admin listener's public origin
	hostKey   gossh.Signer
}

// AddrError is returned by New when a listener cannot be bound.
type AddrError struct {
	Setting string // BACKROOM_SSH_ADDR, BACKROOM_HTTP_ADDR or BACKROOM_ADMIN_ADDR
	Addr    string
	Err     error
}

func (e *AddrError) Error() string {
	return fmt.Sprintf("%s: cannot listen on %q: %v", e.Setting, e.Addr, e.Err)
}

func (e *AddrError) Unwrap() error { return e.Err }

// New binds the listeners (so a port in use is reported before anything
// runs) and prepares the servers.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("server: no store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.KeysPollInterval <= 0 {
		cfg.KeysPollInterval = time.Second
	}
	if cfg.WebPruneInterval <= 0 {
		cfg.WebPruneInterval = time.Minute
	}
	if cfg.WebLimits.Idle <= 0 {
		cfg.WebLimits.Idle = 30 * time.Minute
	}
	if cfg.WebLimits.MaxAge <= 0 {
		cfg.WebLimits.MaxAge = 12 * time.Hour
	}
	signer, err := LoadOrCreateHostKey(cfg.HostKeyPath)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, hostKey: signer}
	var clientSync tui.ClientSync
	if cfg.ClientSync != nil {
		s.sync = newBoundSync(cfg.ClientSync)
		clientSync = s.sync
	}
	webhook := webhooks.New(webhooks.Config{
		Store:          cfg.Store,
		Secrets:        cfg.WebhookSecrets,
		MaxBody:        cfg.WebhookMaxBody,
		TrustedProxies: cfg.TrustedProxies,
		Now:            cfg.Now,
		Process:        webhooks.Process,
		Logger:         cfg.Logger.With("server", "http", "component", "webhooks"),
	})
	var signInURL func(string) string
	if cfg.AdminPath != "" {
		signInURL = s.SignInURL // answers once the admin is built, below
	}
	s.ssh, err = sshd.New(sshd.Config{
		Store:          cfg.Store,
		Logger:         cfg.Logger.With("server", "ssh"),
		Now:            cfg.Now,
		HostSigner:     signer,
		MaxStartups:    cfg.MaxStartups,
		Penalties:      sshd.Penalties{Exempt: cfg.PenaltyExempt},
		GraceTime:      cfg.GraceTime,
		CodePrompts:    cfg.CodePrompts,
		IdleTimeout:    cfg.IdleTimeout,
		IdleWarning:    cfg.IdleWarning,
		EnrollDuration: cfg.EnrollDuration,
		ClientSync:     clientSync,
		// Replays from the console do what a delivery does.
		WebhookProcessor: webhooks.Process,
		WebhookSecretSet: webhook.SecretSet(),
		WebSignInURL:     signInURL,
	})
	if err != nil {
		return nil, err
	}

	if err := s.listen(); err != nil {
		return nil, err
	}
	routes := httpd.Routes{Webhook: webhook}
	if cfg.AdminPath != "" {
		if err := s.newWeb(); err != nil {
			s.closeListeners()
			return nil, err
		}
		if s.adminLn == nil {
			routes.Admin, routes.AdminPath = s.web, cfg.AdminPath
		} else {
			s.admin = httpd.NewServer(httpd.Handler(cfg.Store, cfg.Logger.With("server", "admin"),
				httpd.Routes{Admin: s.web, AdminPath: cfg.AdminPath}), cfg.Logger)
		}
		// A member who loses a key (or whose key changes owner, role or
		// restrictions) loses their web sessions, which belong to no key.
		cfg.Store.OnKeyOwnersRemoved(func(names []string) {
			for _, n := range names {
				if _, err := cfg.Store.EndWebSessionsOf(context.Background(), store.System, n, "key removed or changed"); err != nil {
					s.log.Error("ending the web sessions of a member whose key was removed", "member", n, "err", err)
				}
			}
		})
	}
	s.http = httpd.NewServer(httpd.Handler(cfg.Store, cfg.Logger.With("server", "http"), routes), cfg.Logger)
	if cfg.TLSCert != nil {
		tc := &tls.Config{Certificates: []tls.Certificate{*cfg.TLSCert}, MinVersion: tls.VersionTLS12}
		if s.admin != nil {
			s.admin.TLSConfig = tc
		} else {
			s.http.TLSConfig = tc
		}
	}
	return s, nil
}

// listen binds the SSH, HTTP and (when separate) admin listeners.
func (s *Server) listen() error {
	cfg := s.cfg
	var err error
	s.sshLn, err = net.Listen("tcp", cfg.SSHAddr)
	if err != nil {
		return &AddrError{Setting: "BACKROOM_SSH_ADDR", Addr: cfg.SSHAddr, Err: err}
	}
	s.httpLn, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		s.closeListeners()
		return &AddrError{Setting: "BACKROOM_HTTP_ADDR", Addr: cfg.HTTPAddr, Err: err}
	}
	if cfg.AdminPath != "" && cfg.AdminAddr != "" {
		s.adminLn, err = net.Listen("tcp", cfg.AdminAddr)
		if err != nil {
			s.closeListeners()
			return &AddrError{Setting: "BACKROOM_ADMIN_ADDR", Addr: cfg.AdminAddr, Err: err}
		}
	}
	return nil
}

func (s *Server) closeListeners() {
	for _, ln := range []net.Listener{s.sshLn, s.httpLn, s.adminLn} {
		if ln != nil {
			ln.Close()
		}
	}
}

// newWeb builds the web admin, once the listener that serves it is bound
// (its address is the default public URL).
func (s *Server) newWeb() error {
	cfg := s.cfg
	ln := s.httpLn
	if s.adminLn != nil {
		ln = s.adminLn
	}
	s.publicURL = strings.TrimRight(cfg.PublicURL, "/")
	if s.publicURL == "" {
		s.publicURL = defaultPublicURL(ln.Addr(), cfg.TLSCert != nil)
	}
	var err error
	s.web, err = web.New(web.Config{
		Store:            cfg.Store,
		Path:             cfg.AdminPath,
		Allow:            cfg.AdminAllow,
		TrustedProxies:   cfg.TrustedProxies,
		Secure:           cfg.CookieSecure || cfg.TLSCert != nil,
		PublicURL:        s.publicURL,
		Limits:           cfg.WebLimits,
		Now:              cfg.Now,
		Logger:           cfg.Logger.With("server", "http", "component", "web"),
		WebhookProcessor: webhooks.Process,
		WebhookSecretSet: len(cfg.WebhookSecrets) > 0,
		SSH:              s.ssh.Sessions(),
	})
	return err
}

// defaultPublicURL is http(s):// and a listener's address; an unspecified
// host (every interface) becomes localhost.
func defaultPublicURL(a net.Addr, tls bool) string {
	scheme := "http://"
	if tls {
		scheme = "https://"
	}
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return scheme + a.String()
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return scheme + net.JoinHostPort(host, port)
}

// SSHAddr is the bound SSH address.
func (s *Server) SSHAddr() string { return s.sshLn.Addr().String() }

// HTTPAddr is the bound HTTP address.
func (s *Server) HTTPAddr() string { return s.httpLn.Addr().String() }

// AdminAddr is the bound address of the listener serving the web admin
// (the HTTP listener's unless it has its own), "" when the admin is off.
func (s *Server) AdminAddr() string {
	switch {
	case s.web == nil:
		return ""
	case s.adminLn != nil:
		return s.adminLn.Addr().String()
	}
	return s.HTTPAddr()
}

// AdminURL is the web admin's public URL, "" when it is off.
func (s *Server) AdminURL() string {
	if s.web == nil {
		return ""
	}
	return s.publicURL + s.cfg.AdminPath
}

// SignInURL is the web admin's sign-in link for a token, as the console
// shows it ("" when the admin is off).
func (s *Server) SignInURL(token string) string {
	if s.web == nil {
		return ""
	}
	return s.publicURL + s.cfg.AdminPath + "link/" + token
}

// HostKeyFingerprint is the SSH host key's SHA256 fingerprint, for staff to
// check on first connect.
func (s *Server) HostKeyFingerprint() string { return gossh.FingerprintSHA256(s.hostKey.PublicKey()) }

// WebhookSecretSet reports whether a webhook signing secret is configured
// (without one the endpoint answers 503).
func (s *Server) WebhookSecretSet() bool { return len(s.cfg.WebhookSecrets) > 0 }

// SSH is the SSH server (for its session registry).
func (s *Server) SSH() *sshd.Server { return s.ssh }

// shutdownGrace bounds how long a shutdown waits for sessions and requests.
const shutdownGrace = 5 * time.Second

// Run serves until ctx ends, then shuts both servers down together: live
// sessions see a goodbye line, the HTTP server drains. It returns the first
// error of either server.
func (s *Server) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := s.ssh.Serve(s.sshLn); err != nil {
			return fmt.Errorf("ssh server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := serveHTTP(s.http, s.httpLn); err != nil {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	if s.admin != nil {
		g.Go(func() error {
			if err := serveHTTP(s.admin, s.adminLn); err != nil {
				return fmt.Errorf("admin server: %w", err)
			}
			return nil
		})
	}
	if s.web != nil {
		g.Go(func() error {
			s.pruneWebSessions(gctx)
			return nil
		})
	}
	g.Go(func() error {
		s.cfg.Store.WatchAuthorizedKeys(gctx, s.cfg.KeysPollInterval)
		return nil
	})
	g.Go(func() error {
		webhooks.RunPruner(gctx, webhooks.PruneConfig{
			Store:     s.cfg.Store,
			Retention: s.cfg.WebhookRetention,
			Interval:  s.cfg.WebhookPruneInterval,
			Now:       s.cfg.Now,
			Logger:    s.log.With("component", "webhooks"),
		})
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		if s.sync != nil {
			s.sync.stop() // a running sync stops, keeping what it fetched
		}
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		errs := []error{s.ssh.Shutdown(sctx), s.http.Shutdown(sctx)}
		if s.admin != nil {
			errs = append(errs, s.admin.Shutdown(sctx))
		}
		return errors.Join(errs...)
	})
	return g.Wait()
}

// serveHTTP serves hs on ln, with TLS when hs has a TLS configuration.
func serveHTTP(hs *http.Server, ln net.Listener) error {
	var err error
	if hs.TLSConfig != nil {
		err = hs.ServeTLS(ln, "", "")
	} else {
		err = hs.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// pruneWebSessions ends expired web sessions (each audited) every
// WebPruneInterval until ctx ends.
func (s *Server) pruneWebSessions(ctx context.Context) {
	t := time.NewTicker(s.cfg.WebPruneInterval)
	defer t.Stop()
	for {
		if err := s.cfg.Store.PruneWebSessions(ctx, s.cfg.WebLimits); err != nil && ctx.Err() == nil {
			s.log.Error("pruning expired web sessions", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// boundSync gives the console a ClientSync whose syncs belong to the
// server: Start ignores the console's context (a short-lived one per
// command) and binds the sync to the server's, which stop cancels.
type boundSync struct {
	tui.ClientSync
	ctx    context.Context
	cancel context.CancelFunc
}

func newBoundSync(cs tui.ClientSync) *boundSync {
	ctx, cancel := context.WithCancel(context.Background())
	return &boundSync{ClientSync: cs, ctx: ctx, cancel: cancel}
}

// Start begins a sync that runs until it ends or the server shuts down.
func (b *boundSync) Start(_ context.Context, a store.Actor) error {
	return b.ClientSync.Start(b.ctx, a)
}

func (b *boundSync) stop() { b.cancel() }

// LoadOrCreateHostKey reads the SSH host key at path, generating an
// ed25519 key (0600) the first time.
func LoadOrCreateHostKey(path string) (gossh.Signer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		block, err := gossh.MarshalPrivateKey(priv, "backroom host key")
		if err != nil {
			return nil, err
		}
		b = pem.EncodeToMemory(block)
		if err := store.WriteFileAtomic(path, b); err != nil {
			return nil, fmt.Errorf("write host key %s: %w", path, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("read host key %s: %w", path, err)
	}
	signer, err := gossh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("host key %s: %w", path, err)
	}
	return signer, nil
}

// ParseMaxStartups parses "start:rate:full" (or a single number, meaning
// refuse everything beyond it), as OpenSSH's MaxStartups.
func ParseMaxStartups(v string) (MaxStartups, error) {
	bad := fmt.Errorf("%q is not start:rate:full (e.g. 64:30:256) with 1 ≤ start ≤ full and rate 1..100", v)
	parts := strings.Split(strings.TrimSpace(v), ":")
	nums := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return MaxStartups{}, bad
		}
		nums[i] = n
	}
	switch len(nums) {
	case 1:
		if nums[0] < 1 {
			return MaxStartups{}, bad
		}
		return MaxStartups{Start: nums[0], Rate: 100, Full: nums[0]}, nil
	case 3:
		ms := MaxStartups{Start: nums[0], Rate: nums[1], Full: nums[2]}
		if ms.Start < 1 || ms.Full < ms.Start || ms.Rate < 1 || ms.Rate > 100 {
			return MaxStartups{}, bad
		}
		return ms, nil
	}
	return MaxStartups{}, bad
}
