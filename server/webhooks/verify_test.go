package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseSigHeader(t *testing.T) {
	for _, tc := range []struct {
		h      string
		reason string
		t      int64
		v1, v0 int
	}{
		{"t=1700000000,v1=ab", "", 1700000000, 1, 0},
		{"t=1700000000,v1=ab,v1=cd,v0=ef", "", 1700000000, 2, 1},
		{"v1=ab,t=1700000000", "", 1700000000, 1, 0},
		{"t=1700000000,v1=ab,scheme=future", "", 1700000000, 1, 0},
		{"", ReasonNoSignature, 0, 0, 0},
		{"t=1700000000", ReasonNoV1, 1700000000, 0, 0},
		{"t=1700000000,v0=ab", ReasonNoV1, 1700000000, 0, 1},
		{"v1=ab", ReasonNoTimestamp, 0, 1, 0},
		{"t=abc,v1=ab", ReasonBadTimestamp, 0, 0, 0},
		{"t=,v1=ab", ReasonBadTimestamp, 0, 0, 0},
		{"t=99999999999999999999,v1=ab", ReasonBadTimestamp, 0, 0, 0},
		{"t=1,t=2,v1=ab", ReasonBadHeader, 0, 0, 0},
		{"t=1700000000,v1", ReasonBadHeader, 0, 0, 0},
		{"t=1700000000,v1=a=b", ReasonBadHeader, 0, 0, 0},
		{"t=1700000000,,v1=ab", ReasonBadHeader, 0, 0, 0},
		{"t=1700000000, v1=ab", ReasonNoV1, 1700000000, 0, 0}, // " v1" is another key, as stripe-go reads it
	} {
		sh, reason := parseSigHeader(tc.h)
		if reason != tc.reason || (reason == "" || reason == ReasonNoV1 || reason == ReasonNoTimestamp) && (sh.t != tc.t || sh.v1 != tc.v1 || sh.v0 != tc.v0) {
			t.Errorf("parseSigHeader(%q) = %+v %q, want t=%d v1=%d v0=%d %q", tc.h, sh, reason, tc.t, tc.v1, tc.v0, tc.reason)
		}
	}
	sh, _ := parseSigHeader("t=1700000000,v1=ab,v1=cd,v0=ef")
	if got := sh.summary(); got != "t=1700000000; v1 signatures: 2; v0 signatures: 1" {
		t.Errorf("summary %q", got)
	}
}

func TestParseSecrets(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		err  string
		leak string
	}{
		{"", 0, "", ""},
		{"  ", 0, "", ""},
		{"whsec_abc", 1, "", ""},
		{"whsec_old, whsec_new", 2, "", ""},
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIK2LWVZTd", 1, "", ""},
		{"sk_test_hunter2hunter2", 0, "the secret is an API key, not a webhook signing secret", "hunter2"},
		{"whsec_ok,rk_live_hunter2", 0, "secret 2 of 2 is an API key", "hunter2"},
		{"hunter2", 0, "the secret is not a webhook signing secret", "hunter2"},
		{"whsec_", 0, "the secret is not a webhook signing secret", ""},
		{"whsec_a,", 0, "secret 2 of 2 is empty", ""},
		{"whsec_hunter2!", 0, "has a character other than letters and digits", "hunter2"},
		{"whsec_hun ter2", 0, "has a character other than", "hun"},
	} {
		got, err := ParseSecrets(tc.in)
		switch {
		case tc.err == "" && (err != nil || len(got) != tc.n):
			t.Errorf("ParseSecrets(%q) = %d secrets, %v; want %d", tc.in, len(got), err, tc.n)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseSecrets(%q) error %v, want %q", tc.in, err, tc.err)
		case tc.err != "" && tc.leak != "" && strings.Contains(err.Error(), tc.leak):
			t.Errorf("ParseSecrets(%q) error quotes the value: %v", tc.in, err)
		}
	}
}

// TestSecretNeverPrints: fmt and slog show a Secret as [redacted].
func TestSecretNeverPrints(t *testing.T) {
	s := Secret("whsec_hunter2hunter2")
	cfg := Config{Secrets: []Secret{s}}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("x", "secret", s, "secrets", cfg.Secrets)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "secret", s)
	js, _ := json.Marshal(cfg.Secrets)
	out := fmt.Sprintf("%v %+v %#v %s %q %v", s, cfg, cfg, s, s, []Secret{s}) + buf.String() + string(js)
	if strings.Contains(out, "hunter2") {
		t.Errorf("a secret printed itself: %s", out)
	}
	if string(s) != "whsec_hunter2hunter2" {
		t.Error("the value is lost")
	}
}

func TestClientAddr(t *testing.T) {
	trusted := prefixes("10.0.0.0/8", "::1/128")
	for _, tc := range []struct {
		remote string
		xff    []string
		want   string
	}{
		{"192.0.2.1:5000", []string{"203.0.113.9"}, "192.0.2.1"},
		{"10.1.2.3:5000", []string{"203.0.113.9"}, "203.0.113.9"},
		{"10.1.2.3:5000", []string{"203.0.113.9, 10.9.9.9"}, "203.0.113.9"},
		{"10.1.2.3:5000", []string{"203.0.113.9", "10.9.9.9"}, "203.0.113.9"},
		{"10.1.2.3:5000", nil, "10.1.2.3"},
		{"10.1.2.3:5000", []string{""}, "10.1.2.3"},
		{"10.1.2.3:5000", []string{"bogus"}, "10.1.2.3"},
		{"10.1.2.3:5000", []string{"::ffff:198.51.100.4"}, "198.51.100.4"},
		{"[::1]:5000", []string{"2001:db8::5"}, "2001:db8::5"},
		{"[::ffff:10.0.0.1]:5000", []string{"192.0.2.44:1234"}, "192.0.2.44"},
		{"[fe80::1%eth0]:5000", []string{"192.0.2.44"}, "fe80::1%eth0"},
		{"not an address", nil, "not an address"},
	} {
		r, _ := http.NewRequest("POST", "/", nil)
		r.RemoteAddr = tc.remote
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := clientAddr(r, trusted); got != tc.want {
			t.Errorf("clientAddr(%q, %q) = %q, want %q", tc.remote, tc.xff, got, tc.want)
		}
	}
}

func TestClip(t *testing.T) {
	if got := clip("a\x00b\nc\xffd", 100); got != "abc\uFFFDd" {
		t.Errorf("clip = %q", got)
	}
	if got := clip(strings.Repeat("é", 10), 5); got != "éé…" {
		t.Errorf("clip = %q", got)
	}
}

// countingPruner counts the rounds and what they were asked to prune.
type countingPruner struct {
	rounds atomic.Int32
	last   atomic.Int64
}

func (p *countingPruner) PruneWebhooks(_ context.Context, before time.Time) (int64, error) {
	p.rounds.Add(1)
	p.last.Store(before.Unix())
	return 3, nil
}

func TestRunPrunerTicks(t *testing.T) {
	p := &countingPruner{}
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	ctx, cancel := context.WithCancel(ctxb)
	done := make(chan struct{})
	go func() {
		RunPruner(ctx, PruneConfig{Store: p, Retention: time.Hour, Interval: 20 * time.Millisecond, Now: func() time.Time { return now }})
		close(done)
	}()
	deadline := time.After(5 * time.Second)
	for p.rounds.Load() < 3 {
		select {
		case <-deadline:
			t.Fatalf("%d rounds in 5 s", p.rounds.Load())
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	<-done
	// A retention under 72h is raised to 72h: an event id must outlive
	// Stripe's retries.
	if got := time.Unix(p.last.Load(), 0).UTC(); !got.Equal(now.Add(-MinRetention)) {
		t.Errorf("pruned before %s, want %s", got, now.Add(-MinRetention))
	}
}

// TestRunPrunerOnStore: the first round runs at once and deletes what is
// older than the retention, and only that; the count is logged.
func TestRunPrunerOnStore(t *testing.T) {
	f := newFixture(t)
	real := f.clock.Now()
	old := eventJSON("evt_old", "customer.created", real, customerJSON("cus_Old", "A", ""))
	f.deliver(old).want(t, 200, "processed")
	f.post([]byte("{}"), "").want(t, 400, ReasonNoSignature)
	// A month later, a new delivery.
	f.clock.Set(real.Add(31 * 24 * time.Hour))
	late := eventJSON("evt_new", "customer.created", real, customerJSON("cus_New", "A", ""))
	f.post(late, f.sign(late, testSecret, real)) // stale by Backroom's clock: rejected, recorded now
	var buf bytes.Buffer
	var mu sync.Mutex
	logs := func() string { mu.Lock(); defer mu.Unlock(); return buf.String() }
	ctx, cancel := context.WithCancel(ctxb)
	done := make(chan struct{})
	go func() {
		RunPruner(ctx, PruneConfig{Store: f.st, Now: f.clock.Now, Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil))})
		close(done)
	}()
	deadline := time.After(5 * time.Second)
	for !strings.Contains(logs(), "pruned webhook records") {
		select {
		case <-deadline:
			t.Fatal("no pruning within 5 s")
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	<-done
	f.noEvent("evt_old")
	if n := len(f.attempts("evt_old")); n != 0 {
		t.Errorf("%d attempts of the pruned event left", n)
	}
	if rej := f.rejected(); len(rej) != 1 || rej[0].Reason != ReasonTooOld {
		t.Errorf("rejected attempts after pruning: %+v", rej)
	}
	// The event, its attempt, the old rejected attempt and its minute's
	// counter.
	if !strings.Contains(logs(), "deleted=4") {
		t.Errorf("log: %s", logs())
	}
	// The client the event wrote is not webhook data: it stays.
	if c := f.client("cus_Old"); c.CustomerID != "cus_Old" {
		t.Errorf("client %+v", c)
	}
}
