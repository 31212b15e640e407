package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"backroom/store"
)

// view is what the layout renders around a page.
type view struct {
	Title  string
	Notice string // a result worth saying (from a fixed list, never echoed input)
	Error  string // a store error's safe message, or the web's own
	Data   any    // the page's own data

	// Filled by render for a signed-in member.
	Base       string
	Nav        string
	Member     string
	Role       string
	Admin      bool
	CSRF       string
	Badge      string
	BadgeClass string
	Failed     int
	SecretSet  bool
}

// httpError is an answer of the web's own (throttled, busy).
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// statusOf maps a store error's code to an HTTP status.
func statusOf(err error) int {
	if he, ok := err.(*httpError); ok {
		return he.status
	}
	switch store.ErrorCode(err) {
	case store.CodeInvalid:
		return http.StatusBadRequest
	case store.CodeNotFound:
		return http.StatusNotFound
	case store.CodeConflict:
		return http.StatusConflict
	case store.CodeForbidden:
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

// fail renders err as the error page: its status and safe message.
// Internal errors are logged with their detail, and shown as a generic
// line.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, req *request, err error) {
	status := statusOf(err)
	msg := store.ErrorMessage(err)
	if he, ok := err.(*httpError); ok {
		msg = he.msg
	}
	if status == http.StatusInternalServerError {
		h.log.Error("web admin request failed", "route", h.route(r), "err", err)
	}
	h.render(w, r, req, status, "error", view{Title: http.StatusText(status), Error: msg})
}

// route names a request's page for the log: its pattern with the admin's
// path left out (the path is secret, and a link's path holds its token).
func (h *Handler) route(r *http.Request) string {
	return strings.Replace(r.Pattern, h.base, "ADMIN_URL/", 1)
}

// render executes a page in the layout into a buffer, then writes it: a
// template error never leaves half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, req *request, status int, name string, v view) {
	v.Base = h.base
	if v.Nav == "" {
		v.Nav = name
	}
	if req != nil {
		v.Member, v.Role, v.Admin, v.CSRF = req.ws.Name, req.ws.Role, req.actor.IsAdmin(), req.ws.CSRF
		v.SecretSet = h.cfg.WebhookSecretSet
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), storeTimeout)
		defer cancel()
		if ks, err := h.st.KeyStatus(ctx); err == nil {
			v.Badge, v.BadgeClass = ks.Badge(), badgeClass(ks)
		} else {
			v.Badge, v.BadgeClass = "?", "none"
		}
		v.Failed, _ = h.st.CountFailedWebhooks(ctx)
	}
	t := h.pages[name]
	var buf bytes.Buffer
	if t == nil {
		h.log.Error("web admin: no such template", "name", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		h.log.Error("web admin: rendering failed", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// badgeClass is the mode badge's style: test, live or none.
func badgeClass(ks store.KeyStatus) string {
	switch {
	case ks.Source == store.SourceNone:
		return "none"
	case ks.Mode == store.ModeLive:
		return "live"
	}
	return "test"
}

// doneText is the notice named by the request's done parameter: a
// redirect after a form names its result, and the page shows the text from
// this fixed list (never the parameter itself).
func doneText(r *http.Request) string {
	switch r.URL.Query().Get("done") {
	case "signed-out":
		return "You are signed out."
	case "key-updated":
		return "Stripe key updated."
	case "key-unchecked":
		return "Stripe key stored, but Stripe could not be reached to check it: it is not known to work yet."
	case "session-ended":
		return "Session ended."
	case "member-sessions-ended":
		return "Every session of that member ended."
	case "replay-processed":
		return "Replayed: the event was processed."
	case "replay-ignored":
		return "Replayed: the event is of a type Backroom does not act on."
	case "replay-failed":
		return "Replayed: processing failed again (the error is below)."
	}
	return ""
}

// funcMap are the templates' helpers (a new map for each parse: nothing
// shared is mutable).
func funcMap() template.FuncMap {
	return template.FuncMap{
		"time": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04:05")
		},
		"money": func(minor int64, currency string) string {
			sign := ""
			if minor < 0 {
				sign, minor = "-", -minor
			}
			return fmt.Sprintf("%s%d.%02d %s", sign, minor/100, minor%100, strings.ToUpper(currency))
		},
		"detail": func(d string) string {
			var m map[string]any
			if json.Unmarshal([]byte(d), &m) != nil || len(m) == 0 {
				return ""
			}
			b, _ := json.Marshal(m)
			return string(b)
		},
		"dash": func(s string) string {
			if s == "" {
				return "—"
			}
			return s
		},
		"short": func(s string, n int) string {
			r := []rune(s)
			if len(r) <= n {
				return s
			}
			return string(r[:n]) + "…"
		},
	}
}
