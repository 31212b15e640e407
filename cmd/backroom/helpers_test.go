package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"backroom/store"
)

// result is what one command line did.
type result struct {
	code           int
	stdout, stderr string
}

// harness runs commands in-process against a data directory in a temp dir,
// with .env read from its working directory.
type harness struct {
	t    *testing.T
	dir  string            // working directory (where .env is read)
	data string            // data directory
	env  map[string]string // the environment given to every run
	now  func() time.Time
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	wd := t.TempDir()
	h := &harness{t: t, dir: wd, data: filepath.Join(wd, "data")}
	// No test talks to the real Stripe: key checks go to a closed port
	// (refused at once: the key is stored with a warning) unless a test
	// points STRIPE_API_BASE at stripe-mock or a stand-in.
	h.env = map[string]string{"HOME": wd, envData: h.data, envStripeAPIBase: "http://" + freePort(t)}
	return h
}

// run runs args with stdin and the harness's environment.
func (h *harness) run(stdin string, args ...string) result {
	h.t.Helper()
	return h.runEnv(nil, stdin, args...)
}

// runEnv runs args with extra environment variables on top of the
// harness's.
func (h *harness) runEnv(extra map[string]string, stdin string, args ...string) result {
	h.t.Helper()
	env := map[string]string{}
	for k, v := range h.env {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	var out, errb bytes.Buffer
	code := invocation{
		Args: args, Env: env, Dir: h.dir,
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
		Now: h.now,
	}.run()
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// must fails the test unless r exited with want.
func (r result) must(t *testing.T, want int) result {
	t.Helper()
	if r.code != want {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, want, r.stdout, r.stderr)
	}
	return r
}

// writeFile writes a file in the working directory and returns its path.
func (h *harness) writeFile(name, content string) string {
	h.t.Helper()
	p := filepath.Join(h.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// newEd25519 returns a fresh ed25519 public key and its authorized_keys
// line, and the PEM private key.
func newEd25519(t *testing.T, comment string) (ssh.PublicKey, string, []byte) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + " " + comment + "\n"
	return k, line, pem.EncodeToMemory(block)
}

// pubKeyFile writes a fresh ed25519 public key file and returns its path and
// key.
func (h *harness) pubKeyFile(name string) (string, ssh.PublicKey) {
	h.t.Helper()
	k, line, _ := newEd25519(h.t, name+"@test")
	return h.writeFile(name+".pub", line), k
}

// rsaPubLine returns an authorized_keys line for a new RSA key of bits.
func rsaPubLine(t *testing.T, bits int) string {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(ssh.MarshalAuthorizedKey(k))
}

// openStore opens the harness's data directory directly, with the master
// key the CLI generated.
func (h *harness) openStore() *store.Store {
	h.t.Helper()
	mk, _, err := store.LoadMasterKeyFile(filepath.Join(h.data, store.MasterKeyFile), false)
	if err != nil {
		h.t.Fatal(err)
	}
	s, err := store.Open(context.Background(), store.Options{Dir: h.data, MasterKey: mk, Now: h.now})
	if err != nil {
		h.t.Fatal(err)
	}
	// Closed before the data directory goes: its background work (search
	// index flushes, checkpoints) writes files there.
	h.t.Cleanup(func() { s.Close() })
	return s
}

// nonEmptyLines splits s into its non-empty lines.
func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// filesContaining lists the files under dir whose bytes contain needle.
func filesContaining(t *testing.T, dir, needle string) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(needle)) {
			hits = append(hits, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader in different
// goroutines (serve logs from the servers' goroutines).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var _ io.Writer = (*syncBuffer)(nil)
