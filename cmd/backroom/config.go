package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/joho/godotenv"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"backroom/server"
	"backroom/server/stripeapi"
	"backroom/server/web"
	"backroom/server/webhooks"
	"backroom/store"
)

// Environment variables read by Backroom.
const (
	envData           = "BACKROOM_DATA"
	envSSHAddr        = "BACKROOM_SSH_ADDR"
	envHTTPAddr       = "BACKROOM_HTTP_ADDR"
	envMasterKey      = "BACKROOM_MASTER_KEY"
	envMasterKeyFile  = "BACKROOM_MASTER_KEY_FILE"
	envStripeKey      = "STRIPE_API_KEY"
	envUseKeyring     = "USE_KEYRING"
	envLogLevel       = "BACKROOM_LOG_LEVEL"
	envLockoutAfter   = "BACKROOM_LOCKOUT_AFTER"
	envLockoutFor     = "BACKROOM_LOCKOUT_FOR"
	envMaxStartups    = "BACKROOM_SSH_MAX_STARTUPS"
	envPenaltyExempt  = "BACKROOM_SSH_PENALTY_EXEMPT"
	envIdleTimeout    = "BACKROOM_SSH_IDLE_TIMEOUT"
	envGraceTime      = "BACKROOM_SSH_GRACE_TIME"
	envCodePrompts    = "BACKROOM_SSH_CODE_PROMPTS"
	envSQLiteSync     = "BACKROOM_SQLITE_SYNCHRONOUS"
	envStripeAPIBase  = "STRIPE_API_BASE"
	envWebhookSecret  = "STRIPE_WEBHOOK_SECRET"
	envWebhookMaxBody = "BACKROOM_WEBHOOK_MAX_BODY"
	envTrustedProxies = "BACKROOM_TRUSTED_PROXIES"
	envWebhookRetain  = "BACKROOM_WEBHOOK_RETENTION"
	envAdminURL       = "ADMIN_URL"
	envAdminAddr      = "BACKROOM_ADMIN_ADDR"
	envAdminAllow     = "BACKROOM_ADMIN_ALLOW_CIDRS"
	envTLSCert        = "BACKROOM_TLS_CERT_FILE"
	envTLSKey         = "BACKROOM_TLS_KEY_FILE"
	envCookieSecure   = "BACKROOM_COOKIE_SECURE"
	envPublicURL      = "BACKROOM_PUBLIC_URL"
	envWebIdle        = "BACKROOM_WEB_IDLE_TIMEOUT"
	envWebMaxAge      = "BACKROOM_WEB_MAX_AGE"
	dotenvFile        = ".env"
	masterKeyDataFile = store.MasterKeyFile
)

// Flags that carry settings.
const (
	flagData     = "data"
	flagLogLevel = "log-level"
	flagSSHAddr  = "ssh-addr"
	flagHTTPAddr = "http-addr"
)

// Defaults.
const (
	defaultData          = "./data"
	defaultSSHAddr       = "127.0.0.1:2222"
	defaultHTTPAddr      = "127.0.0.1:8080"
	defaultLogLevel      = "info"
	defaultLockoutAfter  = "5"
	defaultLockoutFor    = "15m"
	defaultMaxStartups   = "64:30:256"
	defaultPenaltyExempt = "127.0.0.0/8,::1/128"
	defaultIdleTimeout   = "15m"
	defaultGraceTime     = "60s"
	defaultCodePrompts   = "3"
	defaultSQLiteSync    = "NORMAL"
	defaultWebhookBody   = "1MiB"
	defaultWebhookRetain = "720h"
	defaultAdminURL      = "/backroom-admin/"
	defaultAdminAllow    = "127.0.0.0/8,::1/128"
	defaultWebIdle       = "30m"
	defaultWebMaxAge     = "12h"
	enrollDuration       = 10 * time.Minute
)

// setting documents one configuration value for `serve --help`.
type setting struct {
	env, flag, def, help string
}

// settings lists every setting, in the order help shows them.
func settings() []setting {
	return []setting{
		{envData, flagData, defaultData, "data directory (database, authorized_keys, host key); created 0700"},
		{envSSHAddr, flagSSHAddr, defaultSSHAddr, "SSH console listen address, HOST:PORT"},
		{envHTTPAddr, flagHTTPAddr, defaultHTTPAddr, "HTTP listener (webhooks, health) address, HOST:PORT"},
		{envMasterKey, "", "", "master key: 32 random bytes, standard base64 (openssl rand -base64 32)"},
		{envMasterKeyFile, "", "", "file holding the master key (same text); not together with " + envMasterKey},
		{"", "", "master.key in the data dir", "when neither is set: generated (0600) for a new data directory only"},
		{envStripeKey, "", "unset", "Stripe secret key (sk_/rk_); wins over a stored key"},
		{envStripeAPIBase, "", stripeapi.DefaultAPIBase, "Stripe's API: key checks and client sync (stripe-mock: http://127.0.0.1:12111)"},
		{envUseKeyring, "", "0", "1 = keep the Stripe key in the OS keyring; start-up fails if it is unreachable"},
		{envLogLevel, flagLogLevel, defaultLogLevel, "debug, info, warn or error"},
		{envLockoutAfter, "", defaultLockoutAfter, "consecutive code failures that lock a staff member (1-100)"},
		{envLockoutFor, "", defaultLockoutFor, "how long a lock lasts (1s-24h)"},
		{envMaxStartups, "", defaultMaxStartups, "unauthenticated SSH connections, START:RATE:FULL like OpenSSH"},
		{envPenaltyExempt, "", defaultPenaltyExempt, "CIDRs never penalised for failed logins (comma-separated; empty = none)"},
		{envIdleTimeout, "", defaultIdleTimeout, "idle console sessions end (warned a minute before; 2m-24h)"},
		{envGraceTime, "", defaultGraceTime, "time allowed to finish SSH authentication (1s-10m)"},
		{envCodePrompts, "", defaultCodePrompts, "verification code prompts per connection (1-10)"},
		{envSQLiteSync, "", defaultSQLiteSync, "SQLite synchronous level: NORMAL or FULL"},
		{envWebhookSecret, "", "unset", "Stripe webhook signing secret(s), whsec_…; several comma-separated while rolling; unset = the endpoint answers 503"},
		{envWebhookMaxBody, "", defaultWebhookBody, "largest webhook body: bytes, or with a unit (512KiB, 1MiB, 2MB); 4KiB-64MiB"},
		{envTrustedProxies, "", "empty", "CIDRs of proxies whose X-Forwarded-For is believed (comma-separated; empty = none)"},
		{envWebhookRetain, "", defaultWebhookRetain, "how long webhook events and attempts are kept (at least 72h: Stripe retries for 3 days)"},
		{envAdminURL, "", defaultAdminURL, "the web admin's path, /…/ (production: a long random path, e.g. /$(openssl rand -hex 16)/; never /admin/)"},
		{envAdminAddr, "", "the HTTP listener", "a listener of the web admin's own, HOST:PORT (then the webhook port never serves it)"},
		{envAdminAllow, "", defaultAdminAllow, "CIDRs that may see the web admin, others get a 404 (0.0.0.0/0,::/0 opens it; empty = web admin off)"},
		{envTLSCert, "", "unset", "TLS certificate (PEM) of the listener serving the web admin; with " + envTLSKey},
		{envTLSKey, "", "unset", "its private key (PEM); both or neither"},
		{envCookieSecure, "", "0", "1 = Secure cookies and HSTS behind a TLS proxy (implied by TLS on the listener)"},
		{envPublicURL, "", "http://ADDR", "the web admin's public origin, for console sign-in links (default: http(s):// + the listener's address)"},
		{envWebIdle, "", defaultWebIdle, "web sessions end after this long without a request (1m-24h)"},
		{envWebMaxAge, "", defaultWebMaxAge, "web sessions end this long after sign-in, whatever (5m-720h)"},
	}
}

// settingsTable renders settings() as the table shown by `serve --help`.
func settingsTable() string {
	var b strings.Builder
	b.WriteString("Settings (flags > environment > .env in the working directory > defaults):\n\n")
	rows := [][3]string{{"ENVIRONMENT", "FLAG", "DEFAULT"}}
	for _, s := range settings() {
		flag := "-"
		if s.flag != "" {
			flag = "--" + s.flag
		}
		env := s.env
		if env == "" {
			env = "(neither set)"
		}
		def := s.def
		if def == "" {
			def = "-"
		}
		rows = append(rows, [3]string{env, flag, def})
	}
	w := [3]int{}
	for _, r := range rows {
		for i, c := range r {
			w[i] = max(w[i], len(c))
		}
	}
	for i, r := range rows {
		line := fmt.Sprintf("  %-*s  %-*s  %-*s", w[0], r[0], w[1], r[1], w[2], r[2])
		if i > 0 {
			line += "  " + settings()[i-1].help
		}
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	return b.String()
}

// secret is a string that never prints itself.
type secret string

func (secret) String() string   { return "[redacted]" }
func (secret) GoString() string { return "[redacted]" }

// Config is Backroom's configuration, built by loadConfig from flags, the
// environment, .env and defaults. It holds parsed, validated values.
type Config struct {
	DataDir       string // as configured (relative paths are relative to the working directory)
	DataDirOrigin string // the flag or variable it came from, for messages

	SSHAddr, HTTPAddr             string
	SSHAddrOrigin, HTTPAddrOrigin string

	// MasterKey is set when BACKROOM_MASTER_KEY is; MasterKeyFile when
	// BACKROOM_MASTER_KEY_FILE is. Neither: master.key in the data dir.
	MasterKey     store.MasterKey
	MasterKeyFile string

	StripeKey  secret // STRIPE_API_KEY, validated; "" when unset
	UseKeyring bool

	// StripeAPIBase is where Stripe's API is (STRIPE_API_BASE), validated,
	// without a trailing slash.
	StripeAPIBase, StripeAPIBaseOrigin string

	LogLevel      slog.Level
	LockoutAfter  int
	LockoutFor    time.Duration
	MaxStartups   server.MaxStartups
	PenaltyExempt []netip.Prefix
	IdleTimeout   time.Duration
	GraceTime     time.Duration
	CodePrompts   int
	Synchronous   string

	// WebhookSecrets are STRIPE_WEBHOOK_SECRET's secrets, in order (none
	// when unset); they never print themselves.
	WebhookSecrets   []webhooks.Secret
	WebhookMaxBody   int64
	TrustedProxies   []netip.Prefix
	WebhookRetention time.Duration

	// AdminPath is the web admin's path (ADMIN_URL); "" when the admin is
	// off (BACKROOM_ADMIN_ALLOW_CIDRS empty).
	AdminPath string
	// AdminAddr is the web admin's own listener ("" = the HTTP listener).
	AdminAddr, AdminAddrOrigin string
	AdminAllow                 []netip.Prefix
	// TLSCertFile and TLSKeyFile put TLS on the listener serving the
	// admin (both set, or neither).
	TLSCertFile, TLSKeyFile string
	CookieSecure            bool
	// PublicURL is the admin listener's public origin, without a trailing
	// slash; "" for the default (the bound address).
	PublicURL string
	WebIdle   time.Duration
	WebMaxAge time.Duration

	// Warnings are things worth saying that do not stop start-up (an
	// unknown BACKROOM_ variable, probably a typo).
	Warnings []string
}

// configError lists every bad setting found; it is a usage error (exit 2).
type configError struct{ problems []string }

func (e *configError) Error() string {
	if len(e.problems) == 1 {
		return "configuration error: " + e.problems[0]
	}
	return "configuration errors:\n  " + strings.Join(e.problems, "\n  ")
}

// configSource looks settings up by precedence: flags, then the
// environment, then .env.
type configSource struct {
	flags, env, dotenv map[string]string
}

// lookup returns a setting's raw value and where it came from, or ok false
// for the default. An empty value counts as unset unless emptyIsValue.
func (s configSource) lookup(env, flag string, emptyIsValue bool) (val, origin string, ok bool) {
	if flag != "" {
		if v, ok := s.flags[flag]; ok {
			return v, "--" + flag, true
		}
	}
	if v, ok := s.env[env]; ok && (v != "" || emptyIsValue) {
		return v, env, true
	}
	if v, ok := s.dotenv[env]; ok && (v != "" || emptyIsValue) {
		return v, env + " (from .env)", true
	}
	return "", env, false
}

// loadConfig builds the configuration from the flags that were set (by
// name, without dashes), the environment and the .env file's variables.
// It touches no file: the master key file is read later, by masterKey.
func loadConfig(flags, env, dotenv map[string]string) (*Config, error) {
	src := configSource{flags: flags, env: env, dotenv: dotenv}
	cfg := &Config{}
	var problems []string
	bad := func(origin, format string, args ...any) {
		problems = append(problems, origin+": "+fmt.Sprintf(format, args...))
	}
	get := func(env, flag, def string) (string, string) {
		v, origin, ok := src.lookup(env, flag, false)
		if !ok {
			return def, env
		}
		return v, origin
	}

	// Paths and addresses.
	cfg.DataDir, cfg.DataDirOrigin = get(envData, flagData, defaultData)
	if strings.TrimSpace(cfg.DataDir) == "" {
		bad(cfg.DataDirOrigin, "is empty: give a directory (default %s)", defaultData)
	}
	cfg.SSHAddr, cfg.SSHAddrOrigin = get(envSSHAddr, flagSSHAddr, defaultSSHAddr)
	if err := checkAddr(cfg.SSHAddr); err != nil {
		bad(cfg.SSHAddrOrigin, "%q %v (e.g. %s, :2222, [::1]:2222)", cfg.SSHAddr, err, defaultSSHAddr)
	}
	cfg.HTTPAddr, cfg.HTTPAddrOrigin = get(envHTTPAddr, flagHTTPAddr, defaultHTTPAddr)
	if err := checkAddr(cfg.HTTPAddr); err != nil {
		bad(cfg.HTTPAddrOrigin, "%q %v (e.g. %s, :8080, [::1]:8080)", cfg.HTTPAddr, err, defaultHTTPAddr)
	} else if sameListen(cfg.SSHAddr, cfg.HTTPAddr) {
		bad(cfg.HTTPAddrOrigin, "%q is the same address as %s: give each listener its own port", cfg.HTTPAddr, cfg.SSHAddrOrigin)
	}

	// Secrets: never echoed.
	mk, mkOrigin, mkSet := src.lookup(envMasterKey, "", false)
	mkf, mkfOrigin, mkfSet := src.lookup(envMasterKeyFile, "", false)
	switch {
	case mkSet && mkfSet:
		problems = append(problems, fmt.Sprintf("%s and %s are both set: set only one (the key itself, or the file that holds it)", mkOrigin, mkfOrigin))
	case mkSet:
		k, err := store.ParseMasterKey(mk)
		if err != nil {
			bad(mkOrigin, "%v", err)
		}
		cfg.MasterKey = k
	case mkfSet:
		cfg.MasterKeyFile = mkf
	}
	if v, origin, ok := src.lookup(envStripeKey, "", false); ok {
		key, _, err := store.ParseStripeKey(v)
		if err != nil {
			bad(origin, "%s", store.ErrorMessage(err))
		}
		cfg.StripeKey = secret(key)
	}

	// Stripe's API.
	v, origin := get(envStripeAPIBase, "", stripeapi.DefaultAPIBase)
	cfg.StripeAPIBase, cfg.StripeAPIBaseOrigin = v, origin
	if base, err := stripeapi.ParseAPIBase(v); err != nil {
		bad(origin, "%q is not valid: use an http or https URL with a host and no query, such as %s or http://127.0.0.1:12111 (stripe-mock)", v, stripeapi.DefaultAPIBase)
	} else {
		cfg.StripeAPIBase = base
		if w := cleartextAPIBase(base); w != "" {
			cfg.Warnings = append(cfg.Warnings, origin+": "+w)
		}
	}

	// Switches and levels.
	v, origin = get(envUseKeyring, "", "0")
	switch strings.TrimSpace(v) {
	case "0":
	case "1":
		cfg.UseKeyring = true
	default:
		bad(origin, "%q is not valid: use 0 (the Stripe key is kept in the database) or 1 (in the OS keyring)", v)
	}
	v, origin = get(envLogLevel, flagLogLevel, defaultLogLevel)
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "debug":
		cfg.LogLevel = slog.LevelDebug
	case "info":
		cfg.LogLevel = slog.LevelInfo
	case "warn", "warning":
		cfg.LogLevel = slog.LevelWarn
	case "error":
		cfg.LogLevel = slog.LevelError
	default:
		bad(origin, "%q is not a log level: use debug, info, warn or error", v)
	}
	v, origin = get(envSQLiteSync, "", defaultSQLiteSync)
	cfg.Synchronous = strings.ToUpper(strings.TrimSpace(v))
	if cfg.Synchronous != "NORMAL" && cfg.Synchronous != "FULL" {
		bad(origin, "%q is not valid: use NORMAL (survives a crash) or FULL (also survives power loss)", v)
	}

	// Numbers and durations.
	intIn := func(env, def string, lo, hi int) int {
		v, origin := get(env, "", def)
		n, err := strconv.Atoi(strings.TrimSpace(v))
		switch {
		case err != nil:
			bad(origin, "%q is not a whole number (use %d to %d)", v, lo, hi)
		case n < lo || n > hi:
			bad(origin, "%d is out of range: use %d to %d", n, lo, hi)
		}
		return n
	}
	durIn := func(env, def string, lo, hi time.Duration) time.Duration {
		v, origin := get(env, "", def)
		d, err := time.ParseDuration(strings.TrimSpace(v))
		switch {
		case err != nil:
			bad(origin, "%q is not a duration (examples: 90s, 15m, 1h)", v)
		case d < lo || d > hi:
			bad(origin, "%s is out of range: use %s to %s", v, shortDuration(lo), shortDuration(hi))
		}
		return d
	}
	cfg.LockoutAfter = intIn(envLockoutAfter, defaultLockoutAfter, 1, 100)
	cfg.LockoutFor = durIn(envLockoutFor, defaultLockoutFor, time.Second, 24*time.Hour)
	cfg.IdleTimeout = durIn(envIdleTimeout, defaultIdleTimeout, 2*time.Minute, 24*time.Hour)
	cfg.GraceTime = durIn(envGraceTime, defaultGraceTime, time.Second, 10*time.Minute)
	cfg.CodePrompts = intIn(envCodePrompts, defaultCodePrompts, 1, 10)

	v, origin = get(envMaxStartups, "", defaultMaxStartups)
	ms, err := parseMaxStartups(v)
	if err != nil {
		bad(origin, "%v", err) // the server's message quotes the value
	}
	cfg.MaxStartups = ms

	v, origin, ok := src.lookup(envPenaltyExempt, "", true)
	if !ok {
		v = defaultPenaltyExempt
	}
	cfg.PenaltyExempt, err = parsePrefixes(v)
	if err != nil {
		bad(origin, "%v (use comma-separated CIDRs such as %s, or empty for none)", err, defaultPenaltyExempt)
	}

	// Webhooks.
	if v, origin, ok := src.lookup(envWebhookSecret, "", false); ok {
		secrets, err := webhooks.ParseSecrets(v)
		if err != nil {
			bad(origin, "%v", err) // never quotes the value
		}
		cfg.WebhookSecrets = secrets
	}
	v, origin = get(envWebhookMaxBody, "", defaultWebhookBody)
	cfg.WebhookMaxBody, err = parseByteSize(v)
	switch {
	case err != nil:
		bad(origin, "%q is not a size: give bytes (1048576) or a number with a unit (512KiB, 1MiB, 2MB)", v)
	case cfg.WebhookMaxBody < minWebhookBody || cfg.WebhookMaxBody > maxWebhookBody:
		bad(origin, "%s is out of range: use 4KiB to 64MiB (Stripe's events are a few KiB; default %s)", strings.TrimSpace(v), defaultWebhookBody)
	}
	v, origin, _ = src.lookup(envTrustedProxies, "", true)
	cfg.TrustedProxies, err = parsePrefixes(v)
	if err != nil {
		bad(origin, "%v (use comma-separated CIDRs of your reverse proxies, such as 10.0.0.0/8, or empty for none)", err)
	}
	v, origin = get(envWebhookRetain, "", defaultWebhookRetain)
	if d, err := time.ParseDuration(strings.TrimSpace(v)); err != nil {
		bad(origin, "%q is not a duration (examples: 72h, 720h, 2160h)", v)
	} else if d < webhooks.MinRetention {
		bad(origin, "%s is too short: use 72h or more (Stripe retries an event for up to 3 days, and its id must be kept to recognise the retries)", strings.TrimSpace(v))
	} else {
		cfg.WebhookRetention = d
	}

	// The web admin.
	loadWebConfig(src, cfg, bad, durIn)

	// Unknown BACKROOM_ variables are probably typos.
	known := map[string]bool{}
	for _, s := range settings() {
		known[s.env] = true
	}
	for _, m := range []struct {
		vars  map[string]string
		where string
	}{{env, "the environment"}, {dotenv, ".env"}} {
		var unknown []string
		for k := range m.vars {
			if strings.HasPrefix(k, "BACKROOM_") && !known[k] {
				unknown = append(unknown, k)
			}
		}
		slices.Sort(unknown)
		for _, k := range unknown {
			cfg.Warnings = append(cfg.Warnings, fmt.Sprintf("%s in %s is not a Backroom setting and is ignored (see backroom serve --help)", k, m.where))
		}
	}

	if len(problems) > 0 {
		return nil, &configError{problems: problems}
	}
	return cfg, nil
}

// loadWebConfig reads the web admin's settings.
func loadWebConfig(src configSource, cfg *Config, bad func(origin, format string, args ...any),
	durIn func(env, def string, lo, hi time.Duration) time.Duration) {
	get := func(env, def string) (string, string) {
		if v, origin, ok := src.lookup(env, "", false); ok {
			return v, origin
		}
		return def, env
	}
	v, origin := get(envAdminURL, defaultAdminURL)
	cfg.AdminPath = strings.TrimSpace(v)
	if err := web.ValidPath(cfg.AdminPath); err != nil {
		bad(origin, "%q %v", v, err)
	}
	v, origin, ok := src.lookup(envAdminAllow, "", true)
	if !ok {
		v = defaultAdminAllow
	}
	var err error
	cfg.AdminAllow, err = parsePrefixes(v)
	switch {
	case err != nil:
		bad(origin, "%v (use comma-separated CIDRs such as %s, 0.0.0.0/0,::/0 for everyone, or empty to turn the web admin off)", err, defaultAdminAllow)
	case len(cfg.AdminAllow) == 0:
		cfg.AdminPath = "" // nobody may see it: the web admin is off
	}

	if v, origin, ok := src.lookup(envAdminAddr, "", false); ok {
		cfg.AdminAddr, cfg.AdminAddrOrigin = strings.TrimSpace(v), origin
		switch err := checkAddr(cfg.AdminAddr); {
		case err != nil:
			bad(origin, "%q %v (e.g. 127.0.0.1:8443; unset = the HTTP listener serves the admin)", v, err)
		case sameListen(cfg.AdminAddr, cfg.HTTPAddr):
			bad(origin, "%q is the same address as %s: unset it to serve the admin on the HTTP listener, or give it its own port", v, cfg.HTTPAddrOrigin)
		case sameListen(cfg.AdminAddr, cfg.SSHAddr):
			bad(origin, "%q is the same address as %s: give the admin its own port", v, cfg.SSHAddrOrigin)
		}
	}

	cert, certOrigin, certSet := src.lookup(envTLSCert, "", false)
	key, keyOrigin, keySet := src.lookup(envTLSKey, "", false)
	switch {
	case certSet && !keySet:
		bad(certOrigin, "is set without %s: set both (the certificate and its private key) or neither", envTLSKey)
	case keySet && !certSet:
		bad(keyOrigin, "is set without %s: set both (the certificate and its private key) or neither", envTLSCert)
	case certSet:
		cfg.TLSCertFile, cfg.TLSKeyFile = cert, key
	}

	v, origin = get(envCookieSecure, "0")
	switch strings.TrimSpace(v) {
	case "0":
	case "1":
		cfg.CookieSecure = true
	default:
		bad(origin, "%q is not valid: use 1 (behind a TLS proxy: Secure cookies and HSTS) or 0", v)
	}

	if v, origin, ok := src.lookup(envPublicURL, "", false); ok {
		u, err := url.Parse(strings.TrimSpace(v))
		switch {
		case err == nil && u.User != nil:
			// Never quoted: the user part may hold a password.
			bad(origin, "holds a user name or password: use only the origin browsers reach the admin at, such as https://backroom.example.com")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
			bad(origin, "%q is not valid: use the origin browsers reach the admin at, such as https://backroom.example.com (no path)", v)
		default:
			cfg.PublicURL = u.Scheme + "://" + u.Host
		}
	}

	cfg.WebIdle = durIn(envWebIdle, defaultWebIdle, time.Minute, 24*time.Hour)
	cfg.WebMaxAge = durIn(envWebMaxAge, defaultWebMaxAge, 5*time.Minute, 720*time.Hour)
	if cfg.WebIdle > 0 && cfg.WebMaxAge > 0 && cfg.WebIdle > cfg.WebMaxAge {
		_, origin := get(envWebIdle, defaultWebIdle)
		bad(origin, "%s is longer than %s (%s): a session could never be idle that long", shortDuration(cfg.WebIdle), envWebMaxAge, shortDuration(cfg.WebMaxAge))
	}
}

// Bounds of BACKROOM_WEBHOOK_MAX_BODY.
const (
	minWebhookBody = 4 << 10
	maxWebhookBody = 64 << 20
)

// parseByteSize parses a size in bytes: a whole number, optionally with a
// unit — B, KB/MB/GB (powers of 1000) or KiB/MiB/GiB (powers of 1024),
// in any case, with or without a space.
func parseByteSize(v string) (int64, error) {
	s := strings.TrimSpace(v)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, errors.New("no number")
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, err
	}
	mult := map[string]int64{"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}
	m, ok := mult[strings.ToLower(strings.TrimSpace(s[i:]))]
	if !ok {
		return 0, errors.New("unknown unit")
	}
	if n > (1<<62)/m {
		return 0, errors.New("too large")
	}
	return n * m, nil
}

// cleartextAPIBase warns about an http:// API base that is not on this
// machine: the Stripe key would cross the network unencrypted.
func cleartextAPIBase(base string) string {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" {
		return ""
	}
	host := u.Hostname()
	if host == "localhost" {
		return ""
	}
	if a, err := netip.ParseAddr(host); err == nil && a.IsLoopback() {
		return ""
	}
	return fmt.Sprintf("%q is plain http to another machine: the Stripe key would cross the network unencrypted (use https, or a loopback address for stripe-mock)", base)
}

// checkAddr accepts HOST:PORT with a numeric port (HOST may be empty for
// every interface).
func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("is not an address: use HOST:PORT")
	}
	if strings.ContainsAny(host, " \t") {
		return errors.New("has a space in the host: use HOST:PORT")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return errors.New("has no valid port: use HOST:PORT with PORT from 0 to 65535")
	}
	return nil
}

// sameListen reports whether two listen addresses name the same fixed port
// on the same host.
func sameListen(a, b string) bool {
	ah, ap, err1 := net.SplitHostPort(a)
	bh, bp, err2 := net.SplitHostPort(b)
	return err1 == nil && err2 == nil && ap == bp && ap != "0" && ah == bh
}

// shortDuration writes 10m rather than 10m0s, 24h rather than 24h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// parseMaxStartups parses START:RATE:FULL, or a single number N (refuse
// every unauthenticated connection beyond N), with the server's parser.
func parseMaxStartups(v string) (server.MaxStartups, error) {
	return server.ParseMaxStartups(v)
}

// parsePrefixes parses comma-separated CIDRs; a bare address is a
// single-address prefix. Empty means none.
func parsePrefixes(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR or an address", f)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// readDotenv reads .env in dir into a map; a missing file is an empty map.
// A malformed file is a usage error naming the line; the line itself is not
// shown, since it may hold a secret.
func readDotenv(dir string) (map[string]string, error) {
	path := filepath.Join(dir, dotenvFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, usageErrorf(".env: cannot read %s: %v", path, errors.Unwrap(err))
	}
	m, err := godotenv.UnmarshalBytes(data)
	line := 0
	switch _, noName := m[""]; {
	case err == nil && !noName:
		return m, nil
	case err == nil:
		// A line such as "=value", or a last line with no '=' at all.
		line = namelessDotenvLine(data)
	default:
		// godotenv's own message quotes the rest of the file: never show it.
		line = badDotenvLine(data)
	}
	name := ""
	lines := bytes.Split(data, []byte("\n"))
	if line >= 1 && line <= len(lines) {
		if m := dotenvName.FindSubmatch(lines[line-1]); m != nil {
			name = " (" + string(m[1]) + ")"
		}
	}
	return nil, usageErrorf(".env: line %d%s is not a valid KEY=VALUE line (an unterminated quote, a missing '=', or a bad character in the name); the line is not shown since it may hold a secret", line, name)
}

var dotenvName = regexp.MustCompile(`^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*[=:]`)

// badDotenvLine finds the line where a malformed .env goes wrong: the line
// after the longest run of whole lines that parses.
func badDotenvLine(data []byte) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	good := 0
	for n := 1; n <= len(lines); n++ {
		if _, err := godotenv.UnmarshalBytes(bytes.Join(lines[:n], nil)); err == nil {
			good = n
		}
	}
	return min(good+1, len(lines))
}

// namelessDotenvLine finds the line that gave a variable no name: the first
// starting with '=', or else the last line with text.
func namelessDotenvLine(data []byte) int {
	lines := bytes.Split(data, []byte("\n"))
	last := len(lines)
	for i, l := range lines {
		t := bytes.TrimSpace(l)
		if bytes.HasPrefix(t, []byte("=")) {
			return i + 1
		}
		if len(t) > 0 && t[0] != '#' {
			last = i + 1
		}
	}
	return last
}

// configFlags returns the setting flags that were given on the command line.
func configFlags(c *cobra.Command) map[string]string {
	out := map[string]string{}
	c.Flags().Visit(func(f *pflag.Flag) {
		switch f.Name {
		case flagData, flagLogLevel, flagSSHAddr, flagHTTPAddr:
			out[f.Name] = f.Value.String()
		}
	})
	return out
}

// abs resolves a path against the invocation's working directory.
func (inv *invocation) abs(p string) string {
	if inv.Dir == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(inv.Dir, p)
}

// config loads the configuration for command c.
func (inv *invocation) config(c *cobra.Command) (*Config, error) {
	dir := inv.Dir
	if dir == "" {
		dir = "."
	}
	dotenv, err := readDotenv(dir)
	if err != nil {
		return nil, err
	}
	cfg, err := loadConfig(configFlags(c), inv.Env, dotenv)
	if err != nil {
		var ce *configError
		if errors.As(err, &ce) {
			return nil, usageErrorf("%s", ce.Error())
		}
		return nil, err
	}
	return cfg, nil
}

// masterKeyInfo says where the master key came from.
type masterKeyInfo struct {
	Origin    string // the variable, or the file in the data dir
	Path      string // the file, when the key came from one
	InDataDir bool   // master.key in the data directory (the development default)
	Created   bool   // generated just now
}

// masterKey returns the configured master key. With neither variable set it
// reads master.key in the data dir, generating it (0600) only when the data
// directory holds no database yet: existing data without its key is
// refused, never given a new one.
func (inv *invocation) masterKey(cfg *Config) (store.MasterKey, masterKeyInfo, error) {
	switch {
	case cfg.MasterKey != nil:
		return cfg.MasterKey, masterKeyInfo{Origin: envMasterKey}, nil
	case cfg.MasterKeyFile != "":
		path := inv.abs(cfg.MasterKeyFile)
		k, _, err := store.LoadMasterKeyFile(path, false)
		if err != nil {
			return nil, masterKeyInfo{}, usageErrorf("%s: %v (the file must hold 32 random bytes in standard base64, e.g. from `openssl rand -base64 32`)", envMasterKeyFile, err)
		}
		return k, masterKeyInfo{Origin: envMasterKeyFile, Path: path}, nil
	}
	dir := inv.abs(cfg.DataDir)
	path := filepath.Join(dir, masterKeyDataFile)
	info := masterKeyInfo{Origin: path, Path: path, InDataDir: true}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if store.HasData(dir) {
			return nil, info, usageErrorf("%s: the data directory %s holds a database but no %s, and neither %s nor %s is set: "+
				"give the master key it was created with (a new key cannot read existing data, so none is generated)",
				cfg.DataDirOrigin, dir, masterKeyDataFile, envMasterKey, envMasterKeyFile)
		}
		if err := store.EnsureDir(dir); err != nil {
			return nil, info, usageErrorf("%s: %v", cfg.DataDirOrigin, err)
		}
	}
	k, created, err := store.LoadMasterKeyFile(path, true)
	if err != nil {
		return nil, info, usageErrorf("%s: master key file: %v (or set %s / %s)", cfg.DataDirOrigin, err, envMasterKey, envMasterKeyFile)
	}
	info.Created = created
	return k, info, nil
}
