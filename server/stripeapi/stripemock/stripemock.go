// Package stripemock runs github.com/stripe/stripe-mock (Stripe's API from
// its OpenAPI fixtures) on free loopback ports for a test or benchmark.
//
// It exists for tests only (server/stripeapi, server/web, cmd/backroom).
package stripemock

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// install is how to get the stripe-mock the tests expect (.ci/run does).
const install = "go install github.com/stripe/stripe-mock@v0.203.0"

// probeKey is a test-mode secret key: stripe-mock takes any.
const probeKey = "sk_test_4eC39HqLyjWDarjtT1zdp7dcPROBE"

// Start runs stripe-mock with both its HTTP and HTTPS listeners on free
// loopback ports, waits until this process (not another test's) answers,
// and kills it when tb's test ends. It returns the HTTP base URL, for
// STRIPE_API_BASE or stripeapi.Config.APIBase.
//
// stripe-mock is looked for on PATH, then in $(go env GOPATH)/bin. Without
// it the test is skipped, except under CI=true where it fails.
func Start(tb testing.TB) string {
	tb.Helper()
	bin := binary(tb)
	var lastErr error
	for range 5 { // a port taken in between: try others
		base, err := start(tb, bin)
		if err == nil {
			return base
		}
		lastErr = err
	}
	tb.Fatal(lastErr)
	return ""
}

// binary finds stripe-mock, or skips or fails tb.
func binary(tb testing.TB) string {
	tb.Helper()
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
	if os.Getenv("CI") == "true" {
		tb.Fatalf("stripe-mock is required (CI=true): %s (.ci/run does)", install)
	}
	tb.Skipf("stripe-mock is not installed (%s)", install)
	return ""
}

// start runs bin once on two free ports and returns its HTTP base URL once
// it answers; otherwise it kills it and says what it printed.
func start(tb testing.TB, bin string) (string, error) {
	httpAddr, httpsAddr := freeAddrs(tb)
	cmd := exec.Command(bin, "-http-addr", httpAddr, "-https-addr", httpsAddr)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start stripe-mock: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); pw.Close(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}

	// It says where it listens once both listeners are bound: on these
	// addresses, it is this process that answers there.
	ready := make(chan bool, 1)
	drained := make(chan struct{})
	var tail bytes.Buffer // the start of its output, for the failure
	go func() {
		defer close(drained)
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
	base := "http://" + httpAddr
	if ok && answers(base) {
		tb.Cleanup(stop)
		return base, nil
	}
	stop()
	<-drained
	return "", fmt.Errorf("stripe-mock did not start on %s:\n%s", httpAddr, tail.String())
}

// freeAddrs returns two distinct loopback addresses whose ports were free a
// moment ago.
func freeAddrs(tb testing.TB) (string, string) {
	tb.Helper()
	var addrs [2]string
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		defer ln.Close() // held until both are chosen, so they differ
		addrs[i] = ln.Addr().String()
	}
	return addrs[0], addrs[1]
}

// answers waits up to 15 s until base answers GET /v1/balance as
// stripe-mock does.
func answers(base string) bool {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", base+"/v1/balance", nil)
		req.Header.Set("Authorization", "Bearer "+probeKey)
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
