package httpd

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"backroom/store"
)

// pinger fails when told to.
type pinger struct{ fail atomic.Bool }

func (p *pinger) Ping(context.Context) error {
	if p.fail.Load() {
		return errors.New("disk full")
	}
	return nil
}

func serve(t *testing.T, p Pinger) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(Handler(p, slog.New(slog.DiscardHandler)), slog.New(slog.DiscardHandler))
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, method, url string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestHealthAndReadiness(t *testing.T) {
	p := &pinger{}
	base := serve(t, p)
	if code, body, _ := get(t, "GET", base+"/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	if code, _, _ := get(t, "GET", base+"/readyz"); code != 200 {
		t.Fatalf("/readyz = %d", code)
	}
	p.fail.Store(true)
	code, body, _ := get(t, "GET", base+"/readyz")
	if code != http.StatusServiceUnavailable || strings.Contains(body, "disk full") {
		t.Fatalf("/readyz with a failing store = %d %q: want 503 without internal detail", code, body)
	}
	// The process is still up.
	if code, _, _ := get(t, "GET", base+"/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
}

func TestReadinessWithRealStore(t *testing.T) {
	st, err := store.Open(context.Background(), store.Options{Dir: t.TempDir(), MasterKey: store.NewMasterKey()})
	if err != nil {
		t.Fatal(err)
	}
	base := serve(t, st)
	if code, _, _ := get(t, "GET", base+"/readyz"); code != 200 {
		t.Fatalf("/readyz = %d", code)
	}
	st.Close()
	if code, _, _ := get(t, "GET", base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with a closed store = %d, want 503", code)
	}
}

func TestEverythingElseIsNotFound(t *testing.T) {
	base := serve(t, &pinger{})
	for _, path := range []string{"/", "/admin/", "/admin", "/healthz/x", "/webhooks/stripe", "/%2e%2e/etc/passwd"} {
		code, body, h := get(t, "GET", base+path)
		if code != 404 || h.Get("Location") != "" || !strings.Contains(body, "404") {
			t.Errorf("GET %s = %d %q (Location %q): want a plain 404", path, code, body, h.Get("Location"))
		}
	}
	if code, _, _ := get(t, "POST", base+"/healthz"); code == 200 {
		t.Errorf("POST /healthz = %d: only GET is routed", code)
	}
	_, _, h := get(t, "GET", base+"/healthz")
	if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", h)
	}
}

func TestServerTimeouts(t *testing.T) {
	srv := NewServer(http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	if srv.ReadHeaderTimeout != 5*time.Second || srv.ReadTimeout != 15*time.Second || srv.WriteTimeout != 15*time.Second ||
		srv.IdleTimeout != 60*time.Second || srv.MaxHeaderBytes != 32<<10 {
		t.Fatalf("timeouts %+v", srv)
	}
}

// TestSlowHeaderIsCut: a client that never finishes its headers is
// disconnected (ReadHeaderTimeout), so it cannot hold the server.
func TestSlowHeaderIsCut(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := NewServer(Handler(&pinger{}, slog.New(slog.DiscardHandler)), slog.New(slog.DiscardHandler))
	srv.ReadHeaderTimeout = 200 * time.Millisecond
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")) // never the blank line
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, _ = io.ReadAll(c)
	if time.Since(start) > 4*time.Second {
		t.Fatal("a slow client held its connection past the header timeout")
	}
}
