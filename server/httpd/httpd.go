// Package httpd is Backroom's HTTP listener: health checks, the Stripe
// webhook endpoint and, when it is served here, the web admin.
package httpd

import (
	"context"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"
)

// Pinger reports whether the store can write.
type Pinger interface {
	Ping(ctx context.Context) error
}

// WebhookPath is where Stripe delivers events.
const WebhookPath = "/webhooks/stripe"

// Routes are the handlers mounted beside the health checks.
type Routes struct {
	// Webhook receives POST /webhooks/stripe (other methods: 405 with
	// Allow: POST). Nil leaves the path a 404.
	Webhook http.Handler
	// Admin receives every request whose escaped path starts with
	// AdminPath exactly (another case or a percent-encoded spelling is an
	// unknown path). Nil: the listener serves no admin.
	Admin     http.Handler
	AdminPath string
}

// Handler serves the HTTP routes. Everything not routed is a plain 404, and
// no request is ever redirected (not even to a cleaned path).
func Handler(store Pinger, log *slog.Logger, routes Routes) http.Handler {
	mux := http.NewServeMux()
	if routes.Webhook != nil {
		mux.Handle("POST "+WebhookPath, routes.Webhook)
		mux.HandleFunc(WebhookPath, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", "POST")
			plain(w, http.StatusMethodNotAllowed, "405 method not allowed: use POST")
		})
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		plain(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := store.Ping(ctx); err != nil {
			log.Error("readiness check failed", "err", err)
			plain(w, http.StatusServiceUnavailable, "store not writable")
			return
		}
		plain(w, http.StatusOK, "ready")
	})
	mux.HandleFunc("/", NotFound)
	var h http.Handler = mux
	if routes.Admin != nil && routes.AdminPath != "" {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.EscapedPath(), routes.AdminPath) {
				routes.Admin.ServeHTTP(w, r)
				return
			}
			mux.ServeHTTP(w, r)
		})
	}
	return securityHeaders(noRedirects(h))
}

// NotFound is the listener's one 404: a plain line, the same for every
// unknown path (the web admin answers it too, to whoever may not see it).
func NotFound(w http.ResponseWriter, r *http.Request) {
	plain(w, http.StatusNotFound, "404 page not found")
}

// noRedirects answers 404 for a request whose path ServeMux would redirect
// to its cleaned form (//x, /a/../b, an empty CONNECT path): Stripe must
// never be told to go elsewhere, and nothing else needs it.
func noRedirects(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.EscapedPath(); p != cleanPath(p) {
			NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// cleanPath is ServeMux's canonical form of a path.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

func plain(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg + "\n"))
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

// NewServer wraps h in an http.Server with timeouts that keep a slow client
// from holding the server.
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
