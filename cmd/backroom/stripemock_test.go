package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// stripeMockPath finds stripe-mock on PATH or in $(go env GOPATH)/bin.
// Without it the test is skipped, except under CI=true where it fails.
func stripeMockPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("stripe-mock"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			p := filepath.Join(dir, "bin", "stripe-mock")
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	const install = "go install github.com/stripe/stripe-mock@v0.203.0"
	if os.Getenv("CI") == "true" {
		t.Fatalf("stripe-mock is required (CI=true): %s (.ci/run does)", install)
	}
	t.Skipf("stripe-mock is not installed (%s)", install)
	return ""
}

// startStripeMock runs stripe-mock with both its HTTP and HTTPS listeners
// on free loopback ports, waits until this process (not another test's)
// answers, and kills it when the test ends. It returns the HTTP base URL,
// for STRIPE_API_BASE.
func startStripeMock(t *testing.T) string {
	t.Helper()
	bin := stripeMockPath(t)
	var tail bytes.Buffer
	for range 5 {
		httpAddr, httpsAddr := freePort(t), freePort(t)
		cmd := exec.Command(bin, "-http-addr", httpAddr, "-https-addr", httpsAddr)
		pr, pw := io.Pipe()
		cmd.Stdout, cmd.Stderr = pw, pw
		if err := cmd.Start(); err != nil {
			t.Fatalf("start stripe-mock: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); pw.Close(); close(exited) }()
		// It says where it listens once both listeners are bound.
		ready := make(chan bool, 1)
		tail.Reset()
		go func() {
			sc := bufio.NewScanner(pr)
			var h, hs bool
			for sc.Scan() {
				line := sc.Text()
				if tail.Len() < 4096 {
					tail.WriteString(line + "\n")
				}
				h = h || strings.Contains(line, "Listening for HTTP at address: "+httpAddr)
				hs = hs || strings.Contains(line, "Listening for HTTPS at address: "+httpsAddr)
				if h && hs {
					ready <- true
					break
				}
			}
			if !h || !hs {
				ready <- false
			}
			_, _ = io.Copy(io.Discard, pr) // its request log
		}()
		ok := false
		select {
		case ok = <-ready:
		case <-time.After(30 * time.Second):
		}
		if ok && stripeMockAnswers("http://"+httpAddr) {
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
			})
			return "http://" + httpAddr
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	t.Fatalf("stripe-mock did not start:\n%s", tail.String())
	return ""
}

// stripeMockAnswers waits until base answers GET /v1/balance as
// stripe-mock does.
func stripeMockAnswers(base string) bool {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", base+"/v1/balance", nil)
		req.Header.Set("Authorization", "Bearer "+testKey)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && resp.Header.Get("Stripe-Mock-Version") != "" {
				return true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// stripeErrorJSON is an error body the way Stripe writes one.
func stripeErrorJSON(typ, msg string) string {
	return fmt.Sprintf(`{"error":{"message":%q,"type":%q}}`, msg, typ)
}
