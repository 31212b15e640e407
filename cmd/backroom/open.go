package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"backroom/server/stripeapi"
	"backroom/store"
)

// cmdEnv is what a command has once its configuration is loaded and its store
// is open.
type cmdEnv struct {
	inv *invocation
	cfg *Config
	log *slog.Logger
	st  *store.Store
	mk  masterKeyInfo
}

// openOptions tune openEnv.
type openOptions struct {
	needKeyring bool         // check the OS keyring when USE_KEYRING=1 (serve, key)
	logger      *slog.Logger // the command's and the store's logger; nil = a new one (the store's at error level)
}

// openEnv loads the configuration, opens the store and reports what a
// command must say about either (config warnings, a generated master key).
// The caller closes e.st.
func (inv *invocation) openEnv(c *cobra.Command, opts openOptions) (*cmdEnv, error) {
	cfg, err := inv.config(c)
	if err != nil {
		return nil, err
	}
	return inv.openStore(cfg, opts)
}

// openStore is openEnv for a configuration already loaded.
func (inv *invocation) openStore(cfg *Config, opts openOptions) (*cmdEnv, error) {
	e := &cmdEnv{inv: inv, cfg: cfg, log: opts.logger}
	if e.log == nil {
		e.log = newLogger(inv.Stderr, cfg.LogLevel)
	}
	for _, w := range cfg.Warnings {
		e.log.Warn(w)
	}
	var kr store.Keyring
	if cfg.UseKeyring {
		kr = store.OSKeyring{}
		if opts.needKeyring {
			if err := store.CheckKeyring(kr); err != nil {
				return nil, usageErrorf("%s: %v. Start a Secret Service (e.g. gnome-keyring) or set %s=0 to keep the Stripe key sealed in the database", envUseKeyring, err, envUseKeyring)
			}
		}
	}
	k, mk, err := inv.masterKey(cfg)
	if err != nil {
		return nil, err
	}
	e.mk = mk
	if mk.Created {
		e.log.Warn("generated a new master key for this new data directory: back it up with the data", "file", mk.Path)
	}
	storeLog := opts.logger
	if storeLog == nil {
		storeLog = newLogger(inv.Stderr, max(cfg.LogLevel, slog.LevelError))
	}
	dir := inv.abs(cfg.DataDir)
	// Saving a key asks Stripe about it first (store.KeyChecker).
	checker := newKeyChecker(cfg, storeLog)
	st, err := store.Open(inv.Ctx, store.Options{
		Dir:          dir,
		MasterKey:    k,
		Now:          inv.Now,
		Logger:       storeLog,
		Synchronous:  cfg.Synchronous,
		LockoutAfter: cfg.LockoutAfter,
		LockoutFor:   cfg.LockoutFor,
		EnvStripeKey: string(cfg.StripeKey),
		Keyring:      kr,
		KeyChecker:   checker,
	})
	switch {
	case errors.Is(err, store.ErrMasterKeyMismatch):
		return nil, usageErrorf("%s: %v (%s). Use the key this data directory was created with; nothing was changed",
			mk.Origin, store.ErrMasterKeyMismatch, dir)
	case errors.Is(err, store.ErrSchemaTooNew):
		return nil, usageErrorf("%s: %v", cfg.DataDirOrigin, err)
	case err != nil:
		return nil, usageErrorf("%s: cannot open the data directory %s: %v", cfg.DataDirOrigin, dir, err)
	}
	e.st = st
	return e, nil
}

// Stripe HTTP timeouts. A key check is one request, no retries: someone is
// waiting for it, and a key that cannot be checked is stored anyway, with a
// warning. A sync retries (stripe-go's backoff) and gives each request
// longer.
const (
	stripeDialTimeout    = 5 * time.Second  // TCP connect and TLS handshake
	stripeCheckTimeout   = 10 * time.Second // one key check
	stripeRequestTimeout = 30 * time.Second // one request of a sync or a link
)

// stripeHTTPClient is the HTTP client for Stripe's API, with timeout as its
// bound on one request (connect, TLS, headers and body).
func stripeHTTPClient(timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: stripeDialTimeout, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = stripeDialTimeout
	return &http.Client{Timeout: timeout, Transport: tr}
}

// newKeyChecker is the client that checks a key being saved.
func newKeyChecker(cfg *Config, log *slog.Logger) *stripeapi.Client {
	return stripeapi.New(stripeapi.Config{APIBase: cfg.StripeAPIBase, MaxNetworkRetries: -1,
		HTTPClient: stripeHTTPClient(stripeCheckTimeout), Logger: log})
}

// newStripeClient is the client for syncs and links (stripe-go's retries
// for connection errors, 409, 429 and 5xx).
func newStripeClient(cfg *Config, log *slog.Logger) *stripeapi.Client {
	return stripeapi.New(stripeapi.Config{APIBase: cfg.StripeAPIBase,
		HTTPClient: stripeHTTPClient(stripeRequestTimeout), Logger: log})
}

// close closes the store, logging a failure.
func (e *cmdEnv) close() {
	if err := e.st.Close(); err != nil {
		e.log.Error("closing the store", "err", err)
	}
}

// newLogger is the text logger every command writes to stderr.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// actor is who the CLI acts as: "cli:" and the OS user name. The prefix
// keeps CLI actions apart from staff members (a staff name cannot hold ':'),
// and the channel says cli as well.
func (inv *invocation) actor() store.Actor {
	name := ""
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	} else if v := inv.Env["USER"]; v != "" {
		name = v
	} else if v := inv.Env["LOGNAME"]; v != "" {
		name = v
	} else {
		name = "uid" + strconv.Itoa(os.Getuid())
	}
	return store.Actor{Name: "cli:" + name, Role: store.RoleAdmin, Channel: store.ChannelCLI}
}

// storeError turns a store error into an exit error: invalid input is a
// usage error (2); not found, conflicts, refusals and internal errors are
// failures (1). Internal details are logged, the message shown is the
// store's safe one.
func (e *cmdEnv) storeError(err error) error {
	if err == nil {
		return nil
	}
	switch store.ErrorCode(err) {
	case store.CodeInvalid:
		return usageErrorf("%s", store.ErrorMessage(err))
	case store.CodeInternal:
		e.log.Error("internal error", "err", err)
		return failErrorf("%s", store.ErrorMessage(err))
	default:
		return failErrorf("%s", store.ErrorMessage(err))
	}
}

// isTerminal reports whether v is an *os.File on a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// writeJSON writes v as one line of JSON, without HTML escaping (URIs keep
// their '&').
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

// writeRows writes the rows each yields to w, as JSON lines or as a table
// under header, and returns how many it wrote. Failing to write stops each
// and is reported as the writing error; each's own error (the store's) is
// returned apart, after what was written is flushed.
func writeRows[T any](w *bufio.Writer, asJSON bool, header string, each func(yield func(T) error) error,
	toJSON func(T) any, row func(T) string) (n int, writeErr, err error) {
	if !asJSON {
		fmt.Fprintln(w, header)
	}
	err = each(func(v T) error {
		n++
		if asJSON {
			writeErr = writeJSON(w, toJSON(v))
		} else {
			_, writeErr = fmt.Fprintln(w, row(v))
		}
		return writeErr
	})
	switch {
	case writeErr != nil:
		return n, failErrorf("writing the list: %v", writeErr), nil
	case err != nil:
		w.Flush()
	}
	return n, nil, err
}
