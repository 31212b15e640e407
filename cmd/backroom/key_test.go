package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zalando/go-keyring"

	"backroom/server/stripeapi/stripemock"
	"backroom/store"
	"backroom/store/jsontest"
)

const (
	testKey  = "sk_test_4eC39HqLyjWDarjtT1zdp7dcABCD"
	liveKey  = "sk_live_51HxYzAbCdEfGhIjKlMnOpQrWXYZ"
	envKey   = "rk_live_ZyXwVuTsRqPoNmLkJiHgFeDcBa9876"
	keyJSONs = "source,mode,kind,masked,set_by,set_at,shadowed"
)

func keyStatus(t *testing.T, h *harness, extra map[string]string) (keyStatusJSON, string) {
	t.Helper()
	r := h.runEnv(extra, "", "key", "status", "--json").must(t, 0)
	lines := nonEmptyLines(r.stdout)
	if len(lines) != 1 {
		t.Fatalf("key status --json: want one line:\n%s", r.stdout)
	}
	if got := strings.Join(jsontest.Keys(t, lines[0]), ","); got != keyJSONs {
		t.Errorf("keys %s, want %s", got, keyJSONs)
	}
	var st keyStatusJSON
	if err := json.Unmarshal([]byte(lines[0]), &st); err != nil {
		t.Fatal(err)
	}
	return st, lines[0]
}

func TestKeySetAndStatus(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	st, line := keyStatus(t, h, nil)
	if st.Source != "none" || st.Masked != nil || st.SetAt != nil || st.Shadowed {
		t.Errorf("before any key: %s", line)
	}

	r := h.run("  "+testKey+"\n", "key", "set").must(t, 0)
	if !strings.Contains(r.stdout, "sk_test_...ABCD") {
		t.Errorf("key set does not print the masked key:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout+r.stderr, testKey) {
		t.Fatalf("key set echoes the key:\n%s%s", r.stdout, r.stderr)
	}

	st, line = keyStatus(t, h, nil)
	if st.Source != "database" || *st.Mode != "test" || *st.Kind != "secret" || *st.Masked != "sk_test_...ABCD" ||
		!strings.HasPrefix(*st.SetBy, "cli:") || st.Shadowed {
		t.Errorf("key status: %s", line)
	}
	if _, err := time.Parse(time.RFC3339, *st.SetAt); err != nil {
		t.Errorf("set_at %q is not RFC 3339", *st.SetAt)
	}
	if strings.Contains(line, testKey) {
		t.Fatal("key status shows the key")
	}
	r = h.run("", "key", "status").must(t, 0)
	if !strings.Contains(r.stdout, "sk_test_...ABCD") || strings.Contains(r.stdout, testKey) {
		t.Errorf("key status text:\n%s", r.stdout)
	}

	// A second key, live this time: the CLI needs no confirmation.
	h.run(liveKey, "key", "set").must(t, 0)
	st, _ = keyStatus(t, h, nil)
	if *st.Mode != "live" || *st.Masked != "sk_live_...WXYZ" {
		t.Errorf("after a live key: %+v", st)
	}

	// Neither key is in any file of the data directory (db, -wal, -shm...).
	for _, k := range []string{testKey, liveKey} {
		if hits := filesContaining(t, h.data, k); len(hits) > 0 {
			t.Errorf("plaintext key found in %v", hits)
		}
		if hits := filesContaining(t, h.data, k[8:]); len(hits) > 0 {
			t.Errorf("key body found in %v", hits)
		}
	}

	// The audit row has the masked forms only.
	r = h.run("", "audit", "export", "--action", "key.updated").must(t, 0)
	if !strings.Contains(r.stdout, "sk_test_...ABCD") || !strings.Contains(r.stdout, "sk_live_...WXYZ") || strings.Contains(r.stdout, testKey) {
		t.Errorf("audit of key.updated:\n%s", r.stdout)
	}
}

func TestKeyEnvWinsAndShadows(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.run(testKey, "key", "set").must(t, 0)
	env := map[string]string{envStripeKey: envKey}
	st, line := keyStatus(t, h, env)
	if st.Source != "env" || *st.Kind != "restricted" || *st.Mode != "live" || *st.Masked != "rk_live_...9876" || !st.Shadowed || st.SetAt != nil {
		t.Errorf("with %s: %s", envStripeKey, line)
	}
	r := h.runEnv(env, liveKey, "key", "set").must(t, 0)
	if !strings.Contains(r.stdout, envStripeKey+" is set and wins") {
		t.Errorf("key set under %s does not say the env wins:\n%s", envStripeKey, r.stdout)
	}
	if strings.Contains(r.stdout+r.stderr, envKey) || strings.Contains(r.stdout+r.stderr, liveKey) {
		t.Fatal("a key is echoed")
	}
	if hits := filesContaining(t, h.data, envKey); len(hits) > 0 {
		t.Errorf("the environment's key was written to %v", hits)
	}
}

func TestKeySetRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const pk = "pk_live_51HxYzAbCdEfGhIjKlMnOpQrWXYZ"
	r := h.run(pk+"\n", "key", "set").must(t, 2)
	if !strings.Contains(r.stderr, "publishable key, not a secret key") || strings.Contains(r.stderr, pk) {
		t.Errorf("pk_ key:\n%s", r.stderr)
	}
	r = h.run("sk_test_short\n", "key", "set").must(t, 2)
	if !strings.Contains(r.stderr, "sk_test_, sk_live_, rk_test_ or rk_live_") || strings.Contains(r.stderr, "sk_test_short") {
		t.Errorf("short key:\n%s", r.stderr)
	}
	r = h.run("", "key", "set").must(t, 2)
	if !strings.Contains(r.stderr, "stdin is empty") {
		t.Errorf("empty stdin:\n%s", r.stderr)
	}
	r = h.run(testKey+"\n"+liveKey+"\n", "key", "set").must(t, 2)
	if !strings.Contains(r.stderr, "2 lines") || strings.Contains(r.stderr, testKey) {
		t.Errorf("two lines:\n%s", r.stderr)
	}
	r = h.run("", "key", "set", testKey).must(t, 2)
	if !strings.Contains(r.stderr, "pipe the key in on stdin") || strings.Contains(r.stderr+r.stdout, testKey[8:]) {
		t.Errorf("key in argv:\n%s", r.stderr)
	}
	r = h.run("", "key", "set", "--key", testKey).must(t, 2)
	if strings.Contains(r.stderr+r.stdout, testKey[8:]) {
		t.Errorf("key in a flag is echoed:\n%s", r.stderr)
	}
	st, _ := keyStatus(t, h, nil)
	if st.Source != "none" {
		t.Errorf("a refused key was stored: %+v", st)
	}
}

// The keyring tests are not parallel: go-keyring's mock is process-wide.

func TestKeyringUnreachable(t *testing.T) {
	keyring.MockInitWithError(errors.New("org.freedesktop.secrets was not provided by any .service files"))
	t.Cleanup(keyring.MockInit)
	h := newHarness(t)
	env := map[string]string{envUseKeyring: "1"}
	for _, args := range [][]string{{"key", "set"}, {"key", "status"}} {
		r := h.runEnv(env, testKey+"\n", args...).must(t, 2)
		if !strings.Contains(r.stderr, envUseKeyring) || !strings.Contains(r.stderr, "keyring cannot be reached") {
			t.Errorf("%v:\n%s", args, r.stderr)
		}
		if strings.Contains(r.stderr, testKey) {
			t.Error("the key is echoed")
		}
	}
	// Nothing fell back to the database.
	st, _ := keyStatus(t, h, nil)
	if st.Source != "none" {
		t.Errorf("a key was stored despite the keyring failure: %+v", st)
	}
}

func TestKeyringStoresKey(t *testing.T) {
	keyring.MockInit()
	h := newHarness(t)
	env := map[string]string{envUseKeyring: "1"}
	r := h.runEnv(env, testKey+"\n", "key", "set").must(t, 0)
	if !strings.Contains(r.stdout, "OS keyring") {
		t.Errorf("key set does not say where the key went:\n%s", r.stdout)
	}
	got, err := keyring.Get(store.KeyringService, "stripe_api_key")
	if err != nil || got != testKey {
		t.Fatalf("keyring holds %q (%v), want the key", got, err)
	}
	if hits := filesContaining(t, h.data, testKey); len(hits) > 0 {
		t.Errorf("the key is in %v although it lives in the keyring", hits)
	}
	st, line := keyStatus(t, h, env)
	if st.Source != "keyring" || *st.Masked != "sk_test_...ABCD" {
		t.Errorf("key status: %s", line)
	}
	// Without USE_KEYRING the stored key cannot be read: a clear error.
	r = h.run("", "key", "status").must(t, 2)
	if !strings.Contains(r.stderr, "USE_KEYRING=1") {
		t.Errorf("key status without the keyring:\n%s", r.stderr)
	}
}

// TestKeySetWALHasNoPlaintext looks at the database files while the write
// is still in the WAL: a reader holding an older snapshot keeps the
// checkpoint from emptying it.
func TestKeySetWALHasNoPlaintext(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.run("", "staff", "list").must(t, 0)
	db := openRawDB(t, h)
	reader, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := reader.QueryRow(`SELECT count(*) FROM audit`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	done := make(chan result, 1)
	go func() {
		var out, errb strings.Builder
		code := invocation{Args: []string{"key", "set"}, Env: h.env, Dir: h.dir,
			Stdin: strings.NewReader(testKey), Stdout: &out, Stderr: &errb}.run()
		done <- result{code: code, stdout: out.String(), stderr: errb.String()}
	}()
	probe := openRawDB(t, h)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var stored int
		if err := probe.QueryRow(`SELECT count(*) FROM secrets`).Scan(&stored); err == nil && stored == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the key was never committed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	probe.Close()
	wal, err := os.Stat(filepath.Join(h.data, store.DBFile+"-wal"))
	if err != nil || wal.Size() == 0 {
		t.Fatalf("expected the write to sit in the WAL (%v)", err)
	}
	if hits := filesContaining(t, h.data, testKey); len(hits) > 0 {
		t.Errorf("plaintext key in %v", hits)
	}
	reader.Rollback()
	r := <-done
	r.must(t, 0)
	if hits := filesContaining(t, h.data, testKey); len(hits) > 0 {
		t.Errorf("plaintext key in %v", hits)
	}
}

// TestKeySetChecksWithStripe: saving a key asks Stripe (STRIPE_API_BASE)
// first. A key it accepts is stored quietly; one it rejects is refused
// with Stripe's reason and nothing stored; when it cannot be reached the
// key is stored with a warning.
func TestKeySetChecksWithStripe(t *testing.T) {
	t.Parallel()

	t.Run("accepted by stripe-mock", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.env[envStripeAPIBase] = stripemock.Start(t)
		r := h.run(testKey+"\n", "key", "set").must(t, 0)
		if strings.Contains(r.stderr, "warning") || strings.Contains(r.stdout+r.stderr, testKey) {
			t.Errorf("accepted key:\n%s%s", r.stdout, r.stderr)
		}
		if st, _ := keyStatus(t, h, nil); st.Source != "database" || *st.Masked != "sk_test_...ABCD" {
			t.Errorf("not stored: %+v", st)
		}
	})

	t.Run("rejected", func(t *testing.T) {
		t.Parallel()
		var asked []string
		var mu sync.Mutex
		stripe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			asked = append(asked, r.Method+" "+r.URL.Path)
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, stripeErrorJSON("invalid_request_error", "Invalid API Key provided: sk_test_****************************ABCD"))
		}))
		t.Cleanup(stripe.Close)
		h := newHarness(t)
		h.env[envStripeAPIBase] = stripe.URL
		r := h.run(testKey+"\n", "key", "set").must(t, 2)
		if !strings.Contains(r.stderr, "Stripe rejected this key (sk_test_...ABCD): Invalid API Key provided") {
			t.Errorf("refusal does not say why:\n%s", r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, testKey) || strings.Contains(r.stdout+r.stderr, testKey[8:]) {
			t.Fatalf("the key is echoed:\n%s%s", r.stdout, r.stderr)
		}
		mu.Lock()
		if !slices.Equal(asked, []string{"GET /v1/balance"}) {
			t.Errorf("requests to Stripe: %v", asked)
		}
		mu.Unlock()
		if st, _ := keyStatus(t, h, nil); st.Source != "none" {
			t.Errorf("a rejected key was stored: %+v", st)
		}
		r = h.run("", "audit", "export", "--action", store.ActionKeyUpdated).must(t, 0)
		if r.stdout != "" {
			t.Errorf("a rejected key was audited as set:\n%s", r.stdout)
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t) // STRIPE_API_BASE is a closed port
		began := time.Now()
		r := h.run(testKey+"\n", "key", "set").must(t, 0)
		if d := time.Since(began); d > 5*time.Second {
			t.Errorf("key set took %s with Stripe unreachable", d)
		}
		if !strings.Contains(r.stderr, "warning: Stripe could not be reached to check the key") ||
			!strings.Contains(r.stderr, "it was stored unchecked") || !strings.Contains(r.stderr, envStripeAPIBase) {
			t.Errorf("no warning:\n%s", r.stderr)
		}
		if !strings.Contains(r.stdout, "saved") || strings.Contains(r.stdout+r.stderr, testKey) {
			t.Errorf("key set:\n%s%s", r.stdout, r.stderr)
		}
		if st, _ := keyStatus(t, h, nil); st.Source != "database" {
			t.Errorf("an unchecked key was not stored: %+v", st)
		}
	})
}

// stripeErrorJSON is an error body the way Stripe writes one.
func stripeErrorJSON(typ, msg string) string {
	return fmt.Sprintf(`{"error":{"message":%q,"type":%q}}`, msg, typ)
}
