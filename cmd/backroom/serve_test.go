package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/zalando/go-keyring"
)

// served is a `backroom serve` running in the test.
type served struct {
	stderr *syncBuffer
	stdout *syncBuffer
	cancel context.CancelFunc
	done   chan int
}

// startServe runs serve on loopback ports chosen by the kernel and waits
// until it logs its addresses (or ends).
func startServe(t *testing.T, h *harness) *served {
	t.Helper()
	env := map[string]string{}
	for k, v := range h.env {
		env[k] = v
	}
	env[envSSHAddr], env[envHTTPAddr] = "127.0.0.1:0", "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{stderr: &syncBuffer{}, stdout: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() {
		defer func() {
			if p := recover(); p != nil {
				t.Errorf("serve panicked: %v", p)
				s.done <- -1
			}
		}()
		s.done <- invocation{Args: []string{"serve"}, Env: env, Dir: h.dir, Stdout: s.stdout, Stderr: s.stderr, Ctx: ctx, Prog: "backroom"}.run()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop within 10s")
		}
	})
	deadline := time.After(15 * time.Second)
	for !strings.Contains(s.stderr.String(), "msg=listening") {
		select {
		case code := <-s.done:
			s.done <- code
			t.Fatalf("serve ended with %d before listening:\n%s", code, s.stderr.String())
		case <-deadline:
			t.Fatalf("serve did not listen within 15s:\n%s", s.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return s
}

// stop ends serve and returns its exit status.
func (s *served) stop(t *testing.T) int {
	t.Helper()
	s.cancel()
	select {
	case code := <-s.done:
		s.done <- code
		return code
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop within 10s")
		return -1
	}
}

// logValue returns the value of key in the first log line whose message is
// msg.
func (s *served) logValue(t *testing.T, msg, key string) string {
	t.Helper()
	for _, line := range strings.Split(s.stderr.String(), "\n") {
		if !strings.Contains(line, "msg="+msg) && !strings.Contains(line, `msg="`+msg) {
			continue
		}
		if m := regexp.MustCompile(`\s` + key + `=(\S+)`).FindStringSubmatch(line); m != nil {
			return m[1]
		}
	}
	t.Fatalf("no %s= in a %q log line:\n%s", key, msg, s.stderr.String())
	return ""
}

func TestServeFirstRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	s := startServe(t, h)
	sshAddr := s.logValue(t, "listening", "ssh")
	_, port, _ := net.SplitHostPort(sshAddr)
	fp := s.logValue(t, "SSH host key", "fingerprint")
	if !strings.HasPrefix(fp, "SHA256:") {
		t.Errorf("host key fingerprint %q", fp)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(s.stderr.String(), "YOURNAME@localhost") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	out := s.stderr.String()
	for _, w := range []string{
		"No staff yet",
		"backroom staff add YOURNAME --key ~/.ssh/id_ed25519.pub --admin --data " + h.data,
		"ssh -p " + port + " YOURNAME@localhost",
		"master key is kept in the data directory",
		"back up the data directory together with its master key",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("stderr lacks %q:\n%s", w, out)
		}
	}
	if s.stdout.String() != "" {
		t.Errorf("serve wrote to stdout: %q", s.stdout.String())
	}
	resp, err := http.Get("http://" + s.logValue(t, "listening", "http") + "/healthz")
	if err != nil {
		t.Fatalf("healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz: %s", resp.Status)
	}
	if code := s.stop(t); code != 0 {
		t.Fatalf("serve exited %d after cancel:\n%s", code, s.stderr.String())
	}
	// Every file in the data directory is private.
	entries, _ := os.ReadDir(h.data)
	for _, e := range entries {
		info, _ := e.Info()
		if !e.IsDir() && info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %o, want 600", e.Name(), info.Mode().Perm())
		}
	}

	// A second start keeps the host key and, with staff, prints no hint.
	key, _ := h.pubKeyFile("alice")
	h.run("", "staff", "add", "alice", "--key", key).must(t, 0)
	s2 := startServe(t, h)
	if fp2 := s2.logValue(t, "SSH host key", "fingerprint"); fp2 != fp {
		t.Errorf("host key changed across restarts: %s then %s", fp, fp2)
	}
	if strings.Contains(s2.stderr.String(), "No staff yet") {
		t.Error("the first-run hint is shown although staff exist")
	}
	if code := s2.stop(t); code != 0 {
		t.Fatalf("second serve exited %d", code)
	}
}

func TestServePortInUse(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	h := newHarness(t)
	r := h.runEnv(map[string]string{envSSHAddr: busy.Addr().String(), envHTTPAddr: "127.0.0.1:0"}, "", "serve").must(t, 2)
	if !strings.Contains(r.stderr, envSSHAddr+": cannot listen on "+busy.Addr().String()) {
		t.Errorf("port in use not reported with %s:\n%s", envSSHAddr, r.stderr)
	}
	r = h.runEnv(map[string]string{envSSHAddr: "127.0.0.1:0"}, "", "serve", "--http-addr", busy.Addr().String()).must(t, 2)
	if !strings.Contains(r.stderr, "--http-addr: cannot listen on") {
		t.Errorf("port in use not reported with --http-addr:\n%s", r.stderr)
	}
}

func TestServeRefusesBadStripeKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const bad = "sk_live_notlongenough"
	r := h.runEnv(map[string]string{envStripeKey: bad, envSSHAddr: "127.0.0.1:0", envHTTPAddr: "127.0.0.1:0"}, "", "serve").must(t, 2)
	if !strings.Contains(r.stderr, envStripeKey) || strings.Contains(r.stderr, bad) {
		t.Errorf("bad %s:\n%s", envStripeKey, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(h.data, "backroom.db")); !errors.Is(err, os.ErrNotExist) {
		t.Error("serve created the database despite the bad configuration")
	}
}

func TestServeRefusesUnreachableKeyring(t *testing.T) {
	keyring.MockInitWithError(errors.New("no secret service"))
	t.Cleanup(keyring.MockInit)
	h := newHarness(t)
	r := h.runEnv(map[string]string{envUseKeyring: "1", envSSHAddr: "127.0.0.1:0", envHTTPAddr: "127.0.0.1:0"}, "", "serve").must(t, 2)
	if !strings.Contains(r.stderr, envUseKeyring) || !strings.Contains(r.stderr, "cannot be reached") {
		t.Errorf("unreachable keyring:\n%s", r.stderr)
	}
}

// TestServeWebAdmin: serve puts the web admin at ADMIN_URL on a listener of
// its own when BACKROOM_ADMIN_ADDR is set (with TLS from the certificate
// files), the HTTP listener never serves it, and the logs never show the
// secret path; a certificate that does not load stops start-up (exit 2).
func TestServeWebAdmin(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	certPEM, keyPEM, pool := testCertificate(t)
	h.env[envAdminURL] = "/ops-5d1c9a7e/"
	h.env[envAdminAddr] = "127.0.0.1:0"
	h.env[envTLSCert] = h.writeFile("cert.pem", string(certPEM))
	h.env[envTLSKey] = h.writeFile("key.pem", string(keyPEM))
	s := startServe(t, h)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(s.stderr.String(), "web admin listening") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	addr := s.logValue(t, "web admin listening", "addr")
	if s.logValue(t, "web admin listening", "tls") != "true" {
		t.Error("the admin is not on TLS")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get("https://" + addr + "/ops-5d1c9a7e/signin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Set-Cookie"), "__Host-") {
		t.Errorf("admin sign-in page = %d (%q)", resp.StatusCode, resp.Header.Get("Set-Cookie"))
	}
	resp, err = http.Get("http://" + s.logValue(t, "listening", "http") + "/ops-5d1c9a7e/signin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("the webhook listener serves the admin: %d", resp.StatusCode)
	}
	if code := s.stop(t); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	if strings.Contains(s.stderr.String(), "ops-5d1c9a7e") || strings.Contains(s.stderr.String(), "is the default") {
		t.Errorf("the log shows the admin path, or warns about the default:\n%s", s.stderr.String())
	}

	// The default path is served on the HTTP listener, with a warning.
	d := newHarness(t)
	s = startServe(t, d)
	http1 := s.logValue(t, "listening", "http")
	resp, err = http.Get("http://" + http1 + "/backroom-admin/signin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("default admin = %d", resp.StatusCode)
	}
	s.stop(t)
	if !strings.Contains(s.stderr.String(), "ADMIN_URL is the default /backroom-admin/") {
		t.Errorf("no warning about the default path:\n%s", s.stderr.String())
	}

	h.env[envTLSKey] = h.writeFile("key.pem", "not a key")
	r := h.runEnv(map[string]string{envSSHAddr: "127.0.0.1:0", envHTTPAddr: "127.0.0.1:0"}, "", "serve").must(t, 2)
	if !strings.Contains(r.stderr, envTLSCert+" / "+envTLSKey+": cannot load") {
		t.Errorf("bad key file:\n%s", r.stderr)
	}
}

// testCertificate is a self-signed certificate for 127.0.0.1 (PEM) and a
// pool that trusts it.
func testCertificate(t *testing.T) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "backroom serve test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(leaf)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), pool
}
