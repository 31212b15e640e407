package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"backroom/server"
	"backroom/store"
)

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		DataDir: "./data", SSHAddr: "127.0.0.1:2222", HTTPAddr: "127.0.0.1:8080",
		LogLevel: slog.LevelInfo, LockoutAfter: 5, LockoutFor: 15 * time.Minute,
		MaxStartups: server.MaxStartups{Start: 64, Rate: 30, Full: 256},
		IdleTimeout: 15 * time.Minute, GraceTime: 60 * time.Second, CodePrompts: 3, Synchronous: "NORMAL",
	}
	if cfg.DataDir != want.DataDir || cfg.SSHAddr != want.SSHAddr || cfg.HTTPAddr != want.HTTPAddr ||
		cfg.LogLevel != want.LogLevel || cfg.LockoutAfter != want.LockoutAfter || cfg.LockoutFor != want.LockoutFor ||
		cfg.MaxStartups != want.MaxStartups || cfg.IdleTimeout != want.IdleTimeout || cfg.GraceTime != want.GraceTime ||
		cfg.CodePrompts != want.CodePrompts || cfg.Synchronous != want.Synchronous || cfg.UseKeyring ||
		cfg.MasterKey != nil || cfg.MasterKeyFile != "" || cfg.StripeKey != "" {
		t.Errorf("defaults:\n got %+v\nwant %+v", *cfg, want)
	}
	if cfg.WebhookSecrets != nil || cfg.WebhookMaxBody != 1<<20 || len(cfg.TrustedProxies) != 0 || cfg.WebhookRetention != 720*time.Hour {
		t.Errorf("webhook defaults: secrets %d, max body %d, trusted proxies %v, retention %s",
			len(cfg.WebhookSecrets), cfg.WebhookMaxBody, cfg.TrustedProxies, cfg.WebhookRetention)
	}
	wantExempt := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	if len(cfg.PenaltyExempt) != 2 || cfg.PenaltyExempt[0] != wantExempt[0] || cfg.PenaltyExempt[1] != wantExempt[1] {
		t.Errorf("PenaltyExempt = %v, want %v", cfg.PenaltyExempt, wantExempt)
	}
}

func TestConfigPrecedence(t *testing.T) {
	t.Parallel()
	type maps struct{ flags, env, dotenv map[string]string }
	tests := []struct {
		name       string
		in         maps
		get        func(*Config) string
		want       string
		wantOrigin func(*Config) string
		origin     string
	}{
		{"data default", maps{}, func(c *Config) string { return c.DataDir }, "./data", func(c *Config) string { return c.DataDirOrigin }, "BACKROOM_DATA"},
		{"data dotenv", maps{dotenv: map[string]string{envData: "/d"}}, func(c *Config) string { return c.DataDir }, "/d",
			func(c *Config) string { return c.DataDirOrigin }, "BACKROOM_DATA (from .env)"},
		{"data env over dotenv", maps{env: map[string]string{envData: "/e"}, dotenv: map[string]string{envData: "/d"}},
			func(c *Config) string { return c.DataDir }, "/e", func(c *Config) string { return c.DataDirOrigin }, "BACKROOM_DATA"},
		{"data flag over env", maps{flags: map[string]string{flagData: "/f"}, env: map[string]string{envData: "/e"}, dotenv: map[string]string{envData: "/d"}},
			func(c *Config) string { return c.DataDir }, "/f", func(c *Config) string { return c.DataDirOrigin }, "--data"},
		{"empty env falls through to dotenv", maps{env: map[string]string{envData: ""}, dotenv: map[string]string{envData: "/d"}},
			func(c *Config) string { return c.DataDir }, "/d", nil, ""},
		{"ssh addr dotenv", maps{dotenv: map[string]string{envSSHAddr: "127.0.0.1:2200"}}, func(c *Config) string { return c.SSHAddr }, "127.0.0.1:2200", nil, ""},
		{"ssh addr env", maps{env: map[string]string{envSSHAddr: "127.0.0.1:2201"}, dotenv: map[string]string{envSSHAddr: "127.0.0.1:2200"}},
			func(c *Config) string { return c.SSHAddr }, "127.0.0.1:2201", nil, ""},
		{"ssh addr flag", maps{flags: map[string]string{flagSSHAddr: "127.0.0.1:2202"}, env: map[string]string{envSSHAddr: "127.0.0.1:2201"}},
			func(c *Config) string { return c.SSHAddr }, "127.0.0.1:2202", func(c *Config) string { return c.SSHAddrOrigin }, "--ssh-addr"},
		{"http addr env", maps{env: map[string]string{envHTTPAddr: ":9000"}}, func(c *Config) string { return c.HTTPAddr }, ":9000", nil, ""},
		{"log level dotenv", maps{dotenv: map[string]string{envLogLevel: "debug"}}, func(c *Config) string { return c.LogLevel.String() }, "DEBUG", nil, ""},
		{"log level env", maps{env: map[string]string{envLogLevel: "error"}, dotenv: map[string]string{envLogLevel: "debug"}},
			func(c *Config) string { return c.LogLevel.String() }, "ERROR", nil, ""},
		{"log level flag", maps{flags: map[string]string{flagLogLevel: "warn"}, env: map[string]string{envLogLevel: "error"}},
			func(c *Config) string { return c.LogLevel.String() }, "WARN", nil, ""},
		{"lockout after dotenv", maps{dotenv: map[string]string{envLockoutAfter: "7"}}, func(c *Config) string { return itoa(c.LockoutAfter) }, "7", nil, ""},
		{"lockout after env", maps{env: map[string]string{envLockoutAfter: "8"}, dotenv: map[string]string{envLockoutAfter: "7"}},
			func(c *Config) string { return itoa(c.LockoutAfter) }, "8", nil, ""},
		{"idle timeout", maps{env: map[string]string{envIdleTimeout: "1h"}}, func(c *Config) string { return c.IdleTimeout.String() }, "1h0m0s", nil, ""},
		{"grace time", maps{dotenv: map[string]string{envGraceTime: "90s"}}, func(c *Config) string { return c.GraceTime.String() }, "1m30s", nil, ""},
		{"code prompts", maps{env: map[string]string{envCodePrompts: "1"}}, func(c *Config) string { return itoa(c.CodePrompts) }, "1", nil, ""},
		{"max startups", maps{env: map[string]string{envMaxStartups: "10:50:20"}}, func(c *Config) string {
			return itoa(c.MaxStartups.Start) + ":" + itoa(c.MaxStartups.Rate) + ":" + itoa(c.MaxStartups.Full)
		}, "10:50:20", nil, ""},
		{"penalty exempt empty env means none, over dotenv", maps{env: map[string]string{envPenaltyExempt: ""}, dotenv: map[string]string{envPenaltyExempt: "10.0.0.0/8"}},
			func(c *Config) string { return itoa(len(c.PenaltyExempt)) }, "0", nil, ""},
		{"penalty exempt list", maps{dotenv: map[string]string{envPenaltyExempt: "10.0.0.0/8, 192.0.2.7"}},
			func(c *Config) string { return c.PenaltyExempt[0].String() + " " + c.PenaltyExempt[1].String() }, "10.0.0.0/8 192.0.2.7/32", nil, ""},
		{"synchronous", maps{env: map[string]string{envSQLiteSync: "full"}}, func(c *Config) string { return c.Synchronous }, "FULL", nil, ""},
		{"keyring", maps{dotenv: map[string]string{envUseKeyring: "1"}}, func(c *Config) string {
			if c.UseKeyring {
				return "1"
			}
			return "0"
		}, "1", nil, ""},
		{"master key file", maps{env: map[string]string{envMasterKeyFile: "/k"}}, func(c *Config) string { return c.MasterKeyFile }, "/k", nil, ""},
		{"webhook secret", maps{dotenv: map[string]string{envWebhookSecret: "whsec_abc123"}}, func(c *Config) string {
			return itoa(len(c.WebhookSecrets)) + " " + string(c.WebhookSecrets[0])
		}, "1 whsec_abc123", nil, ""},
		{"webhook secrets rolled", maps{env: map[string]string{envWebhookSecret: "whsec_old, whsec_new"}, dotenv: map[string]string{envWebhookSecret: "whsec_x"}},
			func(c *Config) string { return string(c.WebhookSecrets[0]) + " " + string(c.WebhookSecrets[1]) }, "whsec_old whsec_new", nil, ""},
		{"webhook secret empty is unset", maps{env: map[string]string{envWebhookSecret: ""}}, func(c *Config) string { return itoa(len(c.WebhookSecrets)) }, "0", nil, ""},
		{"webhook max body bytes", maps{env: map[string]string{envWebhookMaxBody: "65536"}}, func(c *Config) string { return itoa(int(c.WebhookMaxBody)) }, "65536", nil, ""},
		{"webhook max body KiB", maps{env: map[string]string{envWebhookMaxBody: "512KiB"}}, func(c *Config) string { return itoa(int(c.WebhookMaxBody)) }, "524288", nil, ""},
		{"webhook max body MB", maps{dotenv: map[string]string{envWebhookMaxBody: "2 mb"}}, func(c *Config) string { return itoa(int(c.WebhookMaxBody)) }, "2000000", nil, ""},
		{"webhook max body MiB", maps{env: map[string]string{envWebhookMaxBody: "64MiB"}}, func(c *Config) string { return itoa(int(c.WebhookMaxBody)) }, "67108864", nil, ""},
		{"trusted proxies", maps{env: map[string]string{envTrustedProxies: "10.0.0.0/8, 192.0.2.7, 2001:db8::/32"}}, func(c *Config) string {
			var out []string
			for _, p := range c.TrustedProxies {
				out = append(out, p.String())
			}
			return strings.Join(out, " ")
		}, "10.0.0.0/8 192.0.2.7/32 2001:db8::/32", nil, ""},
		{"webhook retention", maps{env: map[string]string{envWebhookRetain: "72h"}}, func(c *Config) string { return c.WebhookRetention.String() }, "72h0m0s", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(tt.in.flags, tt.in.env, tt.in.dotenv)
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.get(cfg); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if tt.wantOrigin != nil {
				if got := tt.wantOrigin(cfg); got != tt.origin {
					t.Errorf("origin %q, want %q", got, tt.origin)
				}
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestConfigPrecedenceEndToEnd runs a command with .env, the environment and
// a flag naming three different data directories.
func TestConfigPrecedenceEndToEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	delete(h.env, envData)
	fromDotenv, fromEnv, fromFlag := filepath.Join(h.dir, "d1"), filepath.Join(h.dir, "d2"), filepath.Join(h.dir, "d3")
	h.writeFile(".env", "# settings\nBACKROOM_DATA="+fromDotenv+"\n")

	h.run("", "staff", "list").must(t, 0)
	if _, err := os.Stat(filepath.Join(fromDotenv, store.DBFile)); err != nil {
		t.Fatalf(".env data dir not used: %v", err)
	}
	h.runEnv(map[string]string{envData: fromEnv}, "", "staff", "list").must(t, 0)
	if _, err := os.Stat(filepath.Join(fromEnv, store.DBFile)); err != nil {
		t.Fatalf("environment data dir not used: %v", err)
	}
	h.runEnv(map[string]string{envData: fromEnv}, "", "staff", "list", "--data", fromFlag).must(t, 0)
	if _, err := os.Stat(filepath.Join(fromFlag, store.DBFile)); err != nil {
		t.Fatalf("--data not used: %v", err)
	}
	// No .env, no variable, no flag: ./data relative to the working directory.
	h2 := newHarness(t)
	delete(h2.env, envData)
	h2.run("", "staff", "list").must(t, 0)
	if _, err := os.Stat(filepath.Join(h2.dir, "data", store.DBFile)); err != nil {
		t.Fatalf("default ./data not used: %v", err)
	}
}

func TestConfigBadValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		env    map[string]string
		args   []string
		want   []string // substrings of stderr
		secret string   // must not appear in stderr
	}{
		{"idle timeout not a duration", map[string]string{envIdleTimeout: "abc"}, nil,
			[]string{`BACKROOM_SSH_IDLE_TIMEOUT: "abc" is not a duration (examples: 90s, 15m, 1h)`}, ""},
		{"idle timeout too short", map[string]string{envIdleTimeout: "30s"}, nil, []string{envIdleTimeout, "out of range", "2m to 24h"}, ""},
		{"grace time zero", map[string]string{envGraceTime: "0s"}, nil, []string{envGraceTime + ": 0s is out of range: use 1s to 10m"}, ""},
		{"lockout for negative", map[string]string{envLockoutFor: "-5m"}, nil, []string{envLockoutFor, "out of range"}, ""},
		{"lockout after zero", map[string]string{envLockoutAfter: "0"}, nil, []string{envLockoutAfter + ": 0 is out of range: use 1 to 100"}, ""},
		{"lockout after text", map[string]string{envLockoutAfter: "five"}, nil, []string{envLockoutAfter + `: "five" is not a whole number`}, ""},
		{"code prompts", map[string]string{envCodePrompts: "11"}, nil, []string{envCodePrompts, "1 to 10"}, ""},
		{"ssh addr", map[string]string{envSSHAddr: "localhost"}, nil, []string{envSSHAddr + `: "localhost" is not an address: use HOST:PORT`}, ""},
		{"http addr port", map[string]string{envHTTPAddr: "127.0.0.1:99999"}, nil, []string{envHTTPAddr, "PORT from 0 to 65535"}, ""},
		{"same addr", map[string]string{envSSHAddr: "127.0.0.1:7000", envHTTPAddr: "127.0.0.1:7000"}, nil, []string{envHTTPAddr, "same address"}, ""},
		{"ssh addr flag", nil, []string{"--ssh-addr", "nope"}, []string{`--ssh-addr: "nope" is not an address`}, ""},
		{"max startups order", map[string]string{envMaxStartups: "100:30:10"}, nil, []string{envMaxStartups, `"100:30:10"`, "start"}, ""},
		{"max startups rate", map[string]string{envMaxStartups: "10:300:100"}, nil, []string{envMaxStartups, "rate"}, ""},
		{"max startups text", map[string]string{envMaxStartups: "lots"}, nil, []string{envMaxStartups, `"lots"`}, ""},
		{"penalty exempt", map[string]string{envPenaltyExempt: "10.0.0.0/33"}, nil, []string{envPenaltyExempt, `"10.0.0.0/33" is not a CIDR`}, ""},
		{"synchronous", map[string]string{envSQLiteSync: "OFF"}, nil, []string{envSQLiteSync, "NORMAL", "FULL"}, ""},
		{"keyring", map[string]string{envUseKeyring: "yes"}, nil, []string{envUseKeyring + `: "yes" is not valid: use 0`}, ""},
		{"log level env", map[string]string{envLogLevel: "loud"}, nil, []string{envLogLevel, "debug, info, warn or error"}, ""},
		{"log level flag", nil, []string{"--log-level", "loud"}, []string{"--log-level", "debug, info, warn or error"}, ""},
		{"stripe key malformed", map[string]string{envStripeKey: "sk_live_tooShort"}, nil, []string{envStripeKey, "sk_test_"}, "sk_live_tooShort"},
		{"stripe key publishable", map[string]string{envStripeKey: "pk_live_abcdefghijklmnopqrstuvwxyz0123"}, nil,
			[]string{envStripeKey, "publishable key"}, "abcdefghijklmnopqrstuvwxyz0123"},
		{"stripe key garbage", map[string]string{envStripeKey: "hunter2-not-a-key"}, nil, []string{envStripeKey}, "hunter2-not-a-key"},
		{"master key not base64", map[string]string{envMasterKey: "not!base64?secret"}, nil, []string{envMasterKey, "base64"}, "not!base64?secret"},
		{"master key short", map[string]string{envMasterKey: "c2hvcnRzZWNyZXQ="}, nil, []string{envMasterKey, "32 bytes"}, "c2hvcnRzZWNyZXQ="},
		{"stripe api base scheme", map[string]string{envStripeAPIBase: "ftp://files.example"}, nil,
			[]string{envStripeAPIBase + `: "ftp://files.example" is not valid: use an http or https URL`}, ""},
		{"stripe api base query", map[string]string{envStripeAPIBase: "https://api.stripe.com?x=1"}, nil, []string{envStripeAPIBase, "no query"}, ""},
		{"stripe api base no host", map[string]string{envStripeAPIBase: "http://"}, nil, []string{envStripeAPIBase}, ""},
		{"master key and file", map[string]string{envMasterKey: store.EncodeMasterKey(store.NewMasterKey()), envMasterKeyFile: "/nonexistent"}, nil,
			[]string{envMasterKey + " and " + envMasterKeyFile + " are both set", "set only one"}, ""},
		{"webhook secret is an API key", map[string]string{envWebhookSecret: "sk_live_abcdefghijklmnopqrstuvwx1234"}, nil,
			[]string{envWebhookSecret + ": the secret is an API key, not a webhook signing secret", "whsec_"}, "abcdefghijklmnopqrstuvwx1234"},
		{"webhook secret second malformed", map[string]string{envWebhookSecret: "whsec_goodSecret1,whsec-hunter2secret"}, nil,
			[]string{envWebhookSecret + ": secret 2 of 2 is not a webhook signing secret"}, "hunter2secret"},
		{"webhook secret bad character", map[string]string{envWebhookSecret: "whsec_hunter2/secret"}, nil,
			[]string{envWebhookSecret, "letters and digits"}, "hunter2"},
		{"webhook secret empty item", map[string]string{envWebhookSecret: "whsec_hunter2secret,"}, nil,
			[]string{envWebhookSecret + ": secret 2 of 2 is empty"}, "hunter2secret"},
		{"webhook secret prefix only", map[string]string{envWebhookSecret: "whsec_"}, nil, []string{envWebhookSecret, "not a webhook signing secret"}, ""},
		{"webhook max body text", map[string]string{envWebhookMaxBody: "lots"}, nil, []string{envWebhookMaxBody + `: "lots" is not a size`}, ""},
		{"webhook max body unit", map[string]string{envWebhookMaxBody: "1 parsec"}, nil, []string{envWebhookMaxBody, "is not a size"}, ""},
		{"webhook max body small", map[string]string{envWebhookMaxBody: "1KiB"}, nil, []string{envWebhookMaxBody + ": 1KiB is out of range: use 4KiB to 64MiB"}, ""},
		{"webhook max body large", map[string]string{envWebhookMaxBody: "1GiB"}, nil, []string{envWebhookMaxBody, "out of range"}, ""},
		{"webhook max body overflow", map[string]string{envWebhookMaxBody: "99999999999999999999"}, nil, []string{envWebhookMaxBody, "is not a size"}, ""},
		{"trusted proxies", map[string]string{envTrustedProxies: "10.0.0.0/33"}, nil, []string{envTrustedProxies, `"10.0.0.0/33" is not a CIDR`}, ""},
		{"trusted proxies word", map[string]string{envTrustedProxies: "cloudflare"}, nil, []string{envTrustedProxies, `"cloudflare" is not a CIDR or an address`}, ""},
		{"webhook retention short", map[string]string{envWebhookRetain: "24h"}, nil, []string{envWebhookRetain + ": 24h is too short: use 72h or more"}, ""},
		{"webhook retention text", map[string]string{envWebhookRetain: "a month"}, nil, []string{envWebhookRetain + `: "a month" is not a duration`}, ""},
		{"admin url no slashes", map[string]string{envAdminURL: "backroom"}, nil, []string{envAdminURL + `: "backroom" must start and end with /`}, ""},
		{"admin url admin", map[string]string{envAdminURL: "/Admin/"}, nil, []string{envAdminURL, "must not be /admin/"}, ""},
		{"admin url webhooks", map[string]string{envAdminURL: "/webhooks/x/"}, nil, []string{envAdminURL, "must not start with /webhooks"}, ""},
		{"admin url characters", map[string]string{envAdminURL: "/a%20b/"}, nil, []string{envAdminURL, "only letters, digits"}, ""},
		{"admin url dot segment", map[string]string{envAdminURL: "/a/../b/"}, nil, []string{envAdminURL, ". or .. segment"}, ""},
		{"admin allow", map[string]string{envAdminAllow: "everyone"}, nil, []string{envAdminAllow, `"everyone" is not a CIDR`, "0.0.0.0/0,::/0"}, ""},
		{"admin addr", map[string]string{envAdminAddr: "8443"}, nil, []string{envAdminAddr + `: "8443" is not an address`}, ""},
		{"admin addr same as http", map[string]string{envAdminAddr: "127.0.0.1:8080"}, nil, []string{envAdminAddr, "same address as " + envHTTPAddr}, ""},
		{"tls cert alone", map[string]string{envTLSCert: "/etc/cert.pem"}, nil, []string{envTLSCert + ": is set without " + envTLSKey}, ""},
		{"tls key alone", map[string]string{envTLSKey: "/etc/key.pem"}, nil, []string{envTLSKey + ": is set without " + envTLSCert}, ""},
		{"cookie secure", map[string]string{envCookieSecure: "yes"}, nil, []string{envCookieSecure + `: "yes" is not valid`}, ""},
		{"public url path", map[string]string{envPublicURL: "https://ops.example.com/backroom"}, nil, []string{envPublicURL, "no path"}, ""},
		{"public url scheme", map[string]string{envPublicURL: "ops.example.com"}, nil, []string{envPublicURL, "is not valid"}, ""},
		{"public url credentials", map[string]string{envPublicURL: "https://user:hunter2@ops.example.com"}, nil, []string{envPublicURL, "user name or password"}, "hunter2"},
		{"web idle", map[string]string{envWebIdle: "10s"}, nil, []string{envWebIdle + ": 10s is out of range: use 1m to 24h"}, ""},
		{"web max age", map[string]string{envWebMaxAge: "forever"}, nil, []string{envWebMaxAge + `: "forever" is not a duration`}, ""},
		{"web idle over max age", map[string]string{envWebIdle: "2h", envWebMaxAge: "1h"}, nil, []string{envWebIdle, "longer than " + envWebMaxAge}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			cmd := []string{"staff", "list"}
			if len(tt.args) > 0 {
				cmd = []string{"serve"} // --ssh-addr is a flag of serve
			}
			r := h.runEnv(tt.env, "", append(cmd, tt.args...)...).must(t, 2)
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if tt.secret != "" && strings.Contains(r.stderr+r.stdout, tt.secret) {
				t.Errorf("output echoes the secret value:\n%s", r.stderr)
			}
			if tt.env[envMasterKey] != "" && strings.Contains(r.stderr, tt.env[envMasterKey]) {
				t.Errorf("output echoes the master key:\n%s", r.stderr)
			}
			if _, err := os.Stat(h.data); err == nil {
				t.Errorf("the data directory was created despite the bad configuration")
			}
		})
	}
}

func TestConfigReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := loadConfig(nil, map[string]string{envIdleTimeout: "x", envCodePrompts: "0"}, map[string]string{envUseKeyring: "2"})
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{envIdleTimeout, envCodePrompts, envUseKeyring + " (from .env)"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
}

func TestConfigUnknownVariableWarns(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.runEnv(map[string]string{"BACKROOM_SSH_ADR": "x"}, "", "staff", "list").must(t, 0)
	if !strings.Contains(r.stderr, "BACKROOM_SSH_ADR in the environment is not a Backroom setting") {
		t.Errorf("no warning for a misspelt variable:\n%s", r.stderr)
	}
}

func TestDotenvMalformed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, content string
		line          string
	}{
		{"unterminated quote", "BACKROOM_LOG_LEVEL=info\n# comment\nSTRIPE_API_KEY=\"sk_test_secretvalue0123456789abcd\nBACKROOM_DATA=x\n", "line 3 (STRIPE_API_KEY)"},
		{"no equals", "BACKROOM_LOG_LEVEL=info\njust some words sk_test_secretvalue0123456789abcd\nBACKROOM_DATA=x\n", "line 2"},
		{"bad name", "A=1\nB=2\nBAD-NAME=sk_test_secretvalue0123456789abcd\n", "line 3"},
		{"value with no name", "A=1\n=sk_test_secretvalue0123456789abcd\n", "line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.writeFile(".env", tt.content)
			r := h.run("", "staff", "list").must(t, 2)
			if !strings.Contains(r.stderr, ".env: "+tt.line) {
				t.Errorf("stderr does not name %q:\n%s", tt.line, r.stderr)
			}
			if strings.Contains(r.stderr, "secretvalue") {
				t.Errorf("stderr shows the line's content:\n%s", r.stderr)
			}
		})
	}
}

func TestDotenvDoesNotTouchProcessEnvironment(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.writeFile(".env", "BACKROOM_TEST_ONLY_MARKER=1\nBACKROOM_LOG_LEVEL=debug\n")
	h.run("", "staff", "list").must(t, 0)
	if _, ok := os.LookupEnv("BACKROOM_TEST_ONLY_MARKER"); ok {
		t.Fatal(".env was loaded into the process environment")
	}
}

func TestServeHelpListsEverySetting(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.run("", "serve", "--help").must(t, 0)
	for _, s := range settings() {
		if s.env != "" && !strings.Contains(r.stdout, s.env) {
			t.Errorf("serve --help lacks %s", s.env)
		}
		if s.def != "" && !strings.Contains(r.stdout, s.def) {
			t.Errorf("serve --help lacks the default %q of %s", s.def, s.env)
		}
		if s.flag != "" && !strings.Contains(r.stdout, "--"+s.flag) {
			t.Errorf("serve --help lacks --%s", s.flag)
		}
	}
	for _, env := range []string{envData, envSSHAddr, envHTTPAddr, envMasterKey, envMasterKeyFile, envStripeKey, envUseKeyring,
		envLogLevel, envLockoutAfter, envLockoutFor, envMaxStartups, envPenaltyExempt, envIdleTimeout, envGraceTime,
		envCodePrompts, envSQLiteSync, envStripeAPIBase, envWebhookSecret, envWebhookMaxBody, envTrustedProxies, envWebhookRetain} {
		if !strings.Contains(r.stdout, env) {
			t.Errorf("serve --help lacks %s", env)
		}
	}
}

func TestMasterKeyGeneratedThenReused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	key, _ := h.pubKeyFile("alice")
	r := h.run("", "staff", "add", "alice", "--key", key, "--json").must(t, 0)
	if !strings.Contains(r.stderr, "generated a new master key") {
		t.Errorf("no notice of the generated key:\n%s", r.stderr)
	}
	path := filepath.Join(h.data, store.MasterKeyFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("master.key mode %o, want 600", st.Mode().Perm())
	}
	before, _ := os.ReadFile(path)
	if _, err := store.ParseMasterKey(string(before)); err != nil {
		t.Fatalf("master.key is not a key: %v", err)
	}
	r = h.run("", "staff", "list", "--json").must(t, 0)
	if strings.Contains(r.stderr, "generated") {
		t.Errorf("a second key was generated:\n%s", r.stderr)
	}
	if !strings.Contains(r.stdout, `"alice"`) {
		t.Errorf("data not readable with the reused key:\n%s", r.stdout)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("master.key changed")
	}
}

func TestMasterKeyWrongForExistingData(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.run("", "staff", "list").must(t, 0)
	path := filepath.Join(h.data, store.MasterKeyFile)
	before, _ := os.ReadFile(path)
	stBefore, _ := os.Stat(path)

	other := store.EncodeMasterKey(store.NewMasterKey())
	r := h.runEnv(map[string]string{envMasterKey: other}, "", "staff", "list").must(t, 2)
	if !strings.Contains(r.stderr, envMasterKey) || !strings.Contains(r.stderr, "does not match") {
		t.Errorf("message does not name the variable and the mismatch:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, other) {
		t.Error("the master key is echoed")
	}
	// Same through a file.
	kf := h.writeFile("other.key", other+"\n")
	r = h.runEnv(map[string]string{envMasterKeyFile: kf}, "", "staff", "list").must(t, 2)
	if !strings.Contains(r.stderr, envMasterKeyFile) {
		t.Errorf("message does not name %s:\n%s", envMasterKeyFile, r.stderr)
	}
	after, _ := os.ReadFile(path)
	stAfter, _ := os.Stat(path)
	if !bytes.Equal(before, after) || !stAfter.ModTime().Equal(stBefore.ModTime()) {
		t.Error("master.key was touched")
	}
	h.run("", "staff", "list").must(t, 0)
}

func TestMasterKeyMissingForExistingData(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.run("", "staff", "list").must(t, 0)
	path := filepath.Join(h.data, store.MasterKeyFile)
	saved, _ := os.ReadFile(path)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	r := h.run("", "staff", "list").must(t, 2)
	for _, w := range []string{"no master.key", envMasterKey, envMasterKeyFile} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
		}
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("a new master.key was generated for existing data")
	}
	// The original key, from the environment, opens the data again.
	h.runEnv(map[string]string{envMasterKey: strings.TrimSpace(string(saved))}, "", "staff", "list").must(t, 0)
	if _, err := os.Stat(path); err == nil {
		t.Fatal("master.key was written although the key came from the environment")
	}
}

func TestMasterKeyFromFile(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	kf := h.writeFile("prod.key", store.EncodeMasterKey(store.NewMasterKey())+"\n")
	r := h.runEnv(map[string]string{envMasterKeyFile: kf}, "", "staff", "list").must(t, 0)
	if strings.Contains(r.stderr, "generated") {
		t.Errorf("a key was generated although %s is set:\n%s", envMasterKeyFile, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(h.data, store.MasterKeyFile)); err == nil {
		t.Error("master.key written in the data dir although the key comes from a file")
	}
	r = h.runEnv(map[string]string{envMasterKeyFile: filepath.Join(h.dir, "missing.key")}, "", "staff", "list").must(t, 2)
	if !strings.Contains(r.stderr, envMasterKeyFile) || !strings.Contains(r.stderr, "no such file") {
		t.Errorf("unreadable key file not reported:\n%s", r.stderr)
	}
	bad := h.writeFile("bad.key", "c2hvcnQ=\n")
	r = h.runEnv(map[string]string{envMasterKeyFile: bad}, "", "staff", "list").must(t, 2)
	if !strings.Contains(r.stderr, envMasterKeyFile) || !strings.Contains(r.stderr, "32 bytes") {
		t.Errorf("short key file not reported:\n%s", r.stderr)
	}
}

func TestRedactsStripeKeysInUsageErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const k = "sk_live_abcdefghijklmnopqrstuvwx1234"
	for _, args := range [][]string{
		{k},
		{"key", "set", k},
		{"key", "set", "--key=" + k},
		{"key", "set", "-x" + k},
		{"staff", "list", "--bogus=" + k},
	} {
		r := h.run("", args...).must(t, 2)
		if strings.Contains(r.stdout+r.stderr, "abcdefghijklmnopqrstuvwx1234") {
			t.Errorf("%q: output echoes the key:\n%s%s", args, r.stdout, r.stderr)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, args := range [][]string{
		{"nonsense"},
		{"staff"},
		{"staff", "frobnicate"},
		{"staff", "remove"},
		{"staff", "remove", "a", "b"},
		{"staff", "list", "--no-such-flag"},
		{"audit", "export", "--format", "xml"},
		{"audit", "export", "--since", "yesterday"},
		{"staff", "set-role", "alice", "boss"},
	} {
		h.run("", args...).must(t, 2)
	}
	r := h.run("", "version").must(t, 0)
	if !strings.HasPrefix(r.stdout, "backroom ") {
		t.Errorf("version: %q", r.stdout)
	}
}

func TestConfigStripeAPIBase(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env, dotenv map[string]string
		want        string
		origin      string
		warn        string
	}{
		{nil, nil, "https://api.stripe.com", envStripeAPIBase, ""},
		{map[string]string{envStripeAPIBase: ""}, nil, "https://api.stripe.com", envStripeAPIBase, ""},
		{map[string]string{envStripeAPIBase: " http://127.0.0.1:12111/ "}, nil, "http://127.0.0.1:12111", envStripeAPIBase, ""},
		{nil, map[string]string{envStripeAPIBase: "http://localhost:12111"}, "http://localhost:12111", envStripeAPIBase + " (from .env)", ""},
		{map[string]string{envStripeAPIBase: "https://stripe-proxy.internal/v1"}, nil, "https://stripe-proxy.internal/v1", envStripeAPIBase, ""},
		{map[string]string{envStripeAPIBase: "http://stripe-proxy.internal"}, nil, "http://stripe-proxy.internal", envStripeAPIBase, "unencrypted"},
	}
	for _, tt := range tests {
		cfg, err := loadConfig(nil, tt.env, tt.dotenv)
		if err != nil {
			t.Errorf("%v %v: %v", tt.env, tt.dotenv, err)
			continue
		}
		if cfg.StripeAPIBase != tt.want || cfg.StripeAPIBaseOrigin != tt.origin {
			t.Errorf("%v %v: base %q from %q, want %q from %q", tt.env, tt.dotenv, cfg.StripeAPIBase, cfg.StripeAPIBaseOrigin, tt.want, tt.origin)
		}
		warned := strings.Join(cfg.Warnings, "\n")
		if (tt.warn == "") != (warned == "") || !strings.Contains(warned, tt.warn) {
			t.Errorf("%v: warnings %q, want %q", tt.env, warned, tt.warn)
		}
	}
}

// TestServeWebhookSettings: serve wires the webhook settings. Without a
// secret it warns at start-up and the endpoint answers 503; with two, an
// event signed with either is stored with the label of the one that
// verified, the body limit holds, and no log line shows a secret.
func TestServeWebhookSettings(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	s := startServe(t, h)
	if !strings.Contains(s.stderr.String(), "webhook secret not set") || !strings.Contains(s.stderr.String(), envWebhookSecret) {
		t.Errorf("no start-up warning about the missing webhook secret:\n%s", s.stderr.String())
	}
	url := "http://" + s.logValue(t, "listening", "http") + "/webhooks/stripe"
	body := []byte(`{"id":"evt_serve1","object":"event","type":"customer.created","created":` + strconv.FormatInt(time.Now().Unix(), 10) +
		`,"livemode":false,"api_version":"2023-10-16","data":{"object":{"id":"cus_Serve1","object":"customer","email":"a@example.com","created":1700000000}}}`)
	post := func(body []byte, secret string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		if secret != "" {
			req.Header.Set("Stripe-Signature", webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret}).Header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, msg := post(body, "whsec_newSecret2"); code != http.StatusServiceUnavailable || !strings.Contains(msg, "webhook secret not set") {
		t.Errorf("without a secret: %d %q, want 503 webhook secret not set", code, msg)
	}
	if code := s.stop(t); code != 0 {
		t.Fatalf("serve exited %d", code)
	}

	h.env[envWebhookSecret] = "whsec_oldSecret1,whsec_newSecret2"
	h.env[envWebhookMaxBody] = "8KiB"
	s = startServe(t, h)
	url = "http://" + s.logValue(t, "listening", "http") + "/webhooks/stripe"
	if strings.Contains(s.stderr.String(), "webhook secret not set") {
		t.Errorf("warned about a missing secret that is set:\n%s", s.stderr.String())
	}
	if code, msg := post(body, "whsec_newSecret2"); code != http.StatusOK {
		t.Errorf("signed with the second secret: %d %q, want 200", code, msg)
	}
	if code, msg := post(bytes.Repeat([]byte(" "), 9<<10), "whsec_oldSecret1"); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a 9 KiB body with an 8 KiB limit: %d %q, want 413", code, msg)
	}
	if code, _ := post(body, "whsec_wrongSecret"); code != http.StatusBadRequest {
		t.Errorf("signed with a wrong secret: %d, want 400", code)
	}
	if code := s.stop(t); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	if strings.Contains(s.stderr.String(), "Secret1") || strings.Contains(s.stderr.String(), "Secret2") {
		t.Errorf("a log line shows a webhook secret:\n%s", s.stderr.String())
	}
	st := h.openStore()
	ev, err := st.GetWebhook(context.Background(), "evt_serve1")
	if err != nil {
		t.Fatal(err)
	}
	if ev.Status != store.WebhookProcessed || ev.Secret != "secret 2 of 2" {
		t.Errorf("stored event: status %q, secret %q; want processed by secret 2 of 2", ev.Status, ev.Secret)
	}
	if c, err := st.GetClient(context.Background(), "cus_Serve1"); err != nil || c.Email != "a@example.com" {
		t.Errorf("client from the event: %+v, %v", c, err)
	}
}

// TestConfigWebAdmin: the web admin's settings, their defaults and
// precedence; an empty allow list turns the admin off.
func TestConfigWebAdmin(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AdminPath != "/backroom-admin/" || cfg.AdminAddr != "" || cfg.TLSCertFile != "" || cfg.CookieSecure ||
		cfg.PublicURL != "" || cfg.WebIdle != 30*time.Minute || cfg.WebMaxAge != 12*time.Hour ||
		len(cfg.AdminAllow) != 2 || cfg.AdminAllow[0].String() != "127.0.0.0/8" || cfg.AdminAllow[1].String() != "::1/128" {
		t.Errorf("defaults: %+v", cfg)
	}
	cfg, err = loadConfig(nil, map[string]string{
		envAdminURL: "/Ops-9f8e7d/", envAdminAddr: "127.0.0.1:8443", envAdminAllow: "10.0.0.0/8, 192.0.2.7",
		envTLSCert: "cert.pem", envTLSKey: "key.pem", envCookieSecure: "1", envPublicURL: "https://ops.example.com/",
		envWebIdle: "10m",
	}, map[string]string{envAdminURL: "/from-dotenv/", envWebIdle: "1h", envWebMaxAge: "2h"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AdminPath != "/Ops-9f8e7d/" || cfg.AdminAddr != "127.0.0.1:8443" || cfg.AdminAddrOrigin != envAdminAddr ||
		len(cfg.AdminAllow) != 2 || cfg.AdminAllow[1].String() != "192.0.2.7/32" || cfg.TLSCertFile != "cert.pem" ||
		cfg.TLSKeyFile != "key.pem" || !cfg.CookieSecure || cfg.PublicURL != "https://ops.example.com" ||
		cfg.WebIdle != 10*time.Minute || cfg.WebMaxAge != 2*time.Hour {
		t.Errorf("set: %+v", cfg)
	}
	cfg, err = loadConfig(nil, map[string]string{envAdminAllow: ""}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AdminPath != "" {
		t.Errorf("an empty allow list leaves the admin on at %q", cfg.AdminPath)
	}
}
