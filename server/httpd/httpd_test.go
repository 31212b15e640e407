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
	return serveRoutes(t, p, Routes{})
}

func serveRoutes(t *testing.T, p Pinger, routes Routes) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(Handler(p, slog.New(slog.DiscardHandler), routes), slog.New(slog.DiscardHandler))
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// noFollow is a client that shows redirects instead of following them.
var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func get(t *testing.T, method, url string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := noFollow.Do(req)
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

// TestWebhookRoute: POST /webhooks/stripe reaches the webhook handler;
// every other method is 405 with Allow: POST; neighbouring paths stay 404.
func TestWebhookRoute(t *testing.T) {
	var hits atomic.Int32
	base := serveRoutes(t, &pinger{}, Routes{Webhook: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusTeapot)
	})})
	if code, _, _ := get(t, "POST", base+"/webhooks/stripe"); code != http.StatusTeapot || hits.Load() != 1 {
		t.Fatalf("POST /webhooks/stripe = %d (%d hits): not routed to the handler", code, hits.Load())
	}
	for _, m := range []string{"GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		code, body, h := get(t, m, base+"/webhooks/stripe")
		if code != http.StatusMethodNotAllowed || h.Get("Allow") != "POST" || (m != "HEAD" && !strings.Contains(body, "405")) {
			t.Errorf("%s /webhooks/stripe = %d %q (Allow %q): want 405 with Allow: POST", m, code, body, h.Get("Allow"))
		}
	}
	for _, p := range []string{"/webhooks/stripe/", "/webhooks", "/webhooks/", "/webhooks/stripe/x", "/webhooks/Stripe"} {
		if code, _, _ := get(t, "POST", base+p); code != http.StatusNotFound {
			t.Errorf("POST %s = %d, want 404", p, code)
		}
	}
	if hits.Load() != 1 {
		t.Errorf("the handler ran %d times, want 1", hits.Load())
	}
}

// TestNeverRedirects: paths that ServeMux would redirect to their cleaned
// form are 404s instead; nothing answers 3xx.
func TestNeverRedirects(t *testing.T) {
	base := serveRoutes(t, &pinger{}, Routes{Webhook: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	})})
	for _, p := range []string{"//webhooks/stripe", "/webhooks//stripe", "/webhooks/./stripe", "/x/../webhooks/stripe",
		"/webhooks/stripe/.", "//healthz", "/healthz/../healthz", "/%2e%2e/etc/passwd", "/./"} {
		for _, m := range []string{"GET", "POST"} {
			code, _, h := get(t, m, base+p)
			if code/100 == 3 || h.Get("Location") != "" {
				t.Errorf("%s %s = %d (Location %q): redirected", m, p, code, h.Get("Location"))
			}
			if code != http.StatusNotFound {
				t.Errorf("%s %s = %d, want 404", m, p, code)
			}
		}
	}
	// The raw request line, as a client that does not clean paths sends it.
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("POST /webhooks/../webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(resp), "HTTP/1.1 404") {
		t.Errorf("raw dot-dot path: %q", strings.SplitN(string(resp), "\r\n", 2)[0])
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
	srv := NewServer(Handler(&pinger{}, slog.New(slog.DiscardHandler), Routes{}), slog.New(slog.DiscardHandler))
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

// TestAdminMount: the admin handler gets every request whose escaped path
// starts with its path, exactly; other spellings are the plain 404 and
// the other routes are unchanged.
func TestAdminMount(t *testing.T) {
	admin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("admin " + r.URL.Path)) })
	base := serveRoutes(t, &pinger{}, Routes{Admin: admin, AdminPath: "/ops-x1/"})
	for path, want := range map[string]string{
		"/ops-x1/":        "admin /ops-x1/",
		"/ops-x1/signin":  "admin /ops-x1/signin",
		"/ops-x1":         "404 page not found\n",
		"/OPS-x1/":        "404 page not found\n",
		"/ops%2Dx1/":      "404 page not found\n",
		"/ops-x1/../x":    "404 page not found\n",
		"/admin/":         "404 page not found\n",
		"/healthz":        "ok\n",
		"/elsewhere/deep": "404 page not found\n",
	} {
		code, body, h := get(t, "GET", base+path)
		if body != want || h.Get("Location") != "" {
			t.Errorf("GET %s = %d %q, want %q", path, code, body, want)
		}
	}
	// Without an admin, its path is an unknown path like any other.
	base = serve(t, &pinger{})
	if code, body, _ := get(t, "GET", base+"/ops-x1/"); code != 404 || body != "404 page not found\n" {
		t.Errorf("no admin: %d %q", code, body)
	}
}
