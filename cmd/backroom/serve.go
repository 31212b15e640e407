package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"backroom/server"
	"backroom/server/stripeapi"
	"backroom/store"
)

func newServeCmd(inv *invocation) *cobra.Command {
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the SSH console and the HTTP listener until SIGINT or SIGTERM",
		Long: `Run Backroom: the SSH console (public key, then a TOTP code) and the sibling
HTTP listener, until SIGINT or SIGTERM. The data directory is created on the
first run, with a generated SSH host key whose fingerprint is logged at start.

` + settingsTable(),
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error { return inv.serve(c) },
	}
	c.Flags().String(flagSSHAddr, defaultSSHAddr, "SSH console listen address (env "+envSSHAddr+")")
	c.Flags().String(flagHTTPAddr, defaultHTTPAddr, "HTTP listen address (env "+envHTTPAddr+")")
	return c
}

// serve runs the servers until the invocation's context ends or a signal
// arrives, then shuts them down and closes the store.
func (inv *invocation) serve(c *cobra.Command) error {
	cfg, err := inv.config(c)
	if err != nil {
		return err
	}
	log := newLogger(inv.Stderr, cfg.LogLevel)
	tuneGC()
	e, err := inv.openStore(cfg, openOptions{needKeyring: true, logger: log})
	if err != nil {
		return err
	}
	defer e.close()
	dir := inv.abs(cfg.DataDir)

	if e.mk.InDataDir {
		log.Warn("the master key is kept in the data directory; production should keep it elsewhere ("+
			envMasterKey+" or "+envMasterKeyFile+") so that a copy of the data directory alone cannot be read",
			"file", e.mk.Path)
		if st, err := os.Stat(e.mk.Path); err == nil && st.Mode().Perm()&0o077 != 0 {
			log.Warn("the master key file is readable by other users: chmod 600 it", "file", e.mk.Path, "mode", fmt.Sprintf("%04o", st.Mode().Perm()))
		}
	}
	log.Warn("back up the data directory together with its master key: neither is of use without the other", "data", dir)
	if unsynced, err := clockUnsynchronised(); err != nil {
		log.Debug("cannot tell whether the system clock is synchronised", "err", err)
	} else if unsynced {
		log.Warn("the system clock is not synchronised (NTP): TOTP codes depend on it, so logins may fail; enable time synchronisation (e.g. systemd-timesyncd or chrony)")
	}
	if cfg.StripeKey != "" {
		log.Info("the Stripe key comes from " + envStripeKey + " and wins over any stored key")
	}
	if cfg.StripeAPIBase != stripeapi.DefaultAPIBase {
		log.Info("Stripe's API is reached at "+cfg.StripeAPIBase, "from", cfg.StripeAPIBaseOrigin)
	}

	// The console's syncs with Stripe run in this process; the store stays
	// open until the last one has stopped and written its audit row
	// (deferred calls run last in, first out).
	syncer := stripeapi.NewSyncer(newStripeClient(cfg, log.With("component", "stripe")), e.st, nil)
	defer syncer.Wait()

	var cert *tls.Certificate
	if cfg.TLSCertFile != "" {
		c, err := tls.LoadX509KeyPair(inv.abs(cfg.TLSCertFile), inv.abs(cfg.TLSKeyFile))
		if err != nil {
			return usageErrorf("%s / %s: cannot load the TLS certificate and key: %v (give PEM files: the certificate chain, and its unencrypted private key)",
				envTLSCert, envTLSKey, tlsLoadReason(err))
		}
		cert = &c
	}

	sc := inv.serverConfig(cfg, e.st, log, dir)
	sc.ClientSync = syncer
	sc.AdminPath, sc.AdminAddr, sc.AdminAllow = cfg.AdminPath, cfg.AdminAddr, cfg.AdminAllow
	sc.TLSCert, sc.CookieSecure, sc.PublicURL = cert, cfg.CookieSecure, cfg.PublicURL
	sc.WebLimits = store.WebSessionLimits{Idle: cfg.WebIdle, MaxAge: cfg.WebMaxAge}
	srv, err := server.New(sc)
	if err != nil {
		return serverError(cfg, err)
	}
	log.Info("SSH host key: check this fingerprint on first connect", "fingerprint", srv.HostKeyFingerprint(),
		"file", filepath.Join(dir, store.HostKeyFile))
	log.Info("listening", "ssh", srv.SSHAddr(), "http", srv.HTTPAddr(), "data", dir)
	if srv.AdminURL() == "" {
		log.Info("web admin off (" + envAdminAllow + " is empty)")
	} else {
		// The admin's address is logged, never its path: logs travel
		// further than the configuration.
		log.Info("web admin listening", "addr", srv.AdminAddr(), "tls", cert != nil, "separate_listener", cfg.AdminAddr != "",
			"allow", prefixList(cfg.AdminAllow), "secure_cookies", cfg.CookieSecure || cert != nil)
		if cfg.AdminPath == defaultAdminURL {
			log.Warn(envAdminURL + " is the default " + defaultAdminURL + ": in production set it to a long random path " +
				"(such as /$(openssl rand -hex 16)/) so that the web admin cannot be found by guessing")
		}
	}
	if n := len(cfg.WebhookSecrets); n == 0 {
		log.Warn("webhook secret not set: POST /webhooks/stripe answers 503 and no Stripe event is accepted; set " +
			envWebhookSecret + " to the endpoint's signing secret (whsec_…, from Stripe's dashboard or `stripe listen`)")
	} else {
		log.Info("Stripe webhooks accepted at POST /webhooks/stripe", "secrets", n, "max_body", cfg.WebhookMaxBody,
			"trusted_proxies", len(cfg.TrustedProxies), "retention", cfg.WebhookRetention.String())
	}

	staff, err := e.st.ListStaff(inv.Ctx)
	switch {
	case err != nil:
		log.Error("listing staff", "err", err)
	case len(staff) == 0:
		fmt.Fprintf(inv.Stderr, "\nNo staff yet. In another terminal, add yourself with your SSH public key, then log in:\n\n"+
			"  %s staff add YOURNAME --key ~/.ssh/id_ed25519.pub --admin --data %s\n"+
			"  %s\n\n",
			inv.Prog, shellQuote(cfg.DataDir), sshCommand(srv.SSHAddr(), "YOURNAME"))
	case !anyAdmin(staff):
		log.Warn("no staff member is admin: nobody can manage staff from the console; run: " + inv.Prog + " staff set-role NAME admin")
	}

	ctx, stop := signal.NotifyContext(inv.Ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = srv.Run(ctx)
	stop()
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("server stopped", "err", err)
		return failErrorf("the servers stopped: %v", err)
	}
	log.Info("stopped")
	return nil
}

// tlsLoadReason is tls.LoadX509KeyPair's error without file contents.
func tlsLoadReason(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Op + " " + pe.Path + ": " + pe.Err.Error()
	}
	return err.Error()
}

func prefixList(ps []netip.Prefix) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return strings.Join(out, ",")
}

func anyAdmin(staff []store.Staff) bool {
	for _, s := range staff {
		if s.Role == store.RoleAdmin {
			return true
		}
	}
	return false
}

// serverError maps an error of server.New: a listener that cannot bind is
// a configuration error naming its setting (as the user gave it); anything
// else is a failure.
func serverError(cfg *Config, err error) error {
	var ae *server.AddrError
	if errors.As(err, &ae) {
		origin := ae.Setting
		switch ae.Setting {
		case envSSHAddr:
			origin = cfg.SSHAddrOrigin
		case envHTTPAddr:
			origin = cfg.HTTPAddrOrigin
		case envAdminAddr:
			origin = cfg.AdminAddrOrigin
		}
		reason := ae.Err
		var op *net.OpError
		if errors.As(ae.Err, &op) && op.Err != nil {
			reason = op.Err
		}
		return usageErrorf("%s: cannot listen on %s: %v (another program, or another Backroom, may be using it: choose another HOST:PORT)", origin, ae.Addr, reason)
	}
	return failErrorf("starting the servers: %v", err)
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./~:@%+=,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// serveGCPercent is the garbage collector's target for the server: a login
// allocates a console's worth of short-lived memory and keeps little, so
// collecting at 200% growth instead of 100% halves the collector's work
// (measured: about 25% more logins a second) for a few MiB more heap.
const serveGCPercent = 200

// tuneGC applies serveGCPercent unless GOGC is set in the environment.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(serveGCPercent)
	}
}

// serverConfig is the server's configuration from cfg for the SSH console
// and the webhook endpoint, as serve runs them (serve adds the web admin
// and client sync; bench webhooks its own addresses and secret).
func (inv *invocation) serverConfig(cfg *Config, st *store.Store, log *slog.Logger, dir string) server.Config {
	return server.Config{
		Store:            st,
		Logger:           log,
		Now:              inv.Now,
		SSHAddr:          cfg.SSHAddr,
		HTTPAddr:         cfg.HTTPAddr,
		HostKeyPath:      filepath.Join(dir, store.HostKeyFile),
		MaxStartups:      cfg.MaxStartups,
		PenaltyExempt:    cfg.PenaltyExempt,
		IdleTimeout:      cfg.IdleTimeout,
		GraceTime:        cfg.GraceTime,
		CodePrompts:      cfg.CodePrompts,
		EnrollDuration:   enrollDuration,
		WebhookSecrets:   cfg.WebhookSecrets,
		WebhookMaxBody:   cfg.WebhookMaxBody,
		TrustedProxies:   cfg.TrustedProxies,
		WebhookRetention: cfg.WebhookRetention,
	}
}
