package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"backroom/store"
)

// Cookie names; with Secure they carry the __Host- prefix, which the
// browser accepts only from a secure origin, with Path=/ and no Domain.
const (
	sessionCookie = "backroom_session"
	signInCookie  = "backroom_signin"
)

// signInCookieAge is how long a sign-in form stays usable.
const signInCookieAge = time.Hour

// storeTimeout bounds the store calls of one request, within the HTTP
// server's 15 s write timeout.
const storeTimeout = 10 * time.Second

// maxForm bounds a form's body.
const maxForm = 64 << 10

// request is a signed-in request: the session and who acts through it.
type request struct {
	ws    store.WebSession
	token string
	actor store.Actor
}

func (h *Handler) cookieName(base string) string {
	if h.cfg.Secure {
		return "__Host-" + base
	}
	return base
}

// setCookie sets a cookie: HttpOnly, SameSite=Strict, Path=/, Secure
// when configured. maxAge 0 makes a browser-session cookie; <0 deletes it.
//
// Strict rather than Lax: no page of the admin needs its cookie on a
// request that starts on another site. A sign-in link works with Strict
// because it is redeemed by a POST from the admin's own link page (a
// same-site request); a link opened from another site's page only shows
// that page. What Strict costs: following a bookmark-like link to the
// admin from another site shows the sign-in page until the next click.
func (h *Handler) setCookie(w http.ResponseWriter, base, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name:     h.cookieName(base),
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   h.cfg.Secure,
		SameSite: http.SameSiteStrictMode,
	})
}

func (h *Handler) cookie(r *http.Request, base string) string {
	c, err := r.Cookie(h.cookieName(base))
	if err != nil {
		return ""
	}
	return c.Value
}

func (h *Handler) actor(r *http.Request) store.Actor {
	a := store.Actor{Channel: store.ChannelWeb}
	if ip := h.clientIP(r); ip.IsValid() {
		a.RemoteAddr = ip.String()
	}
	return a
}

// session returns the request's live session, if any.
func (h *Handler) session(ctx context.Context, r *http.Request) (*request, error) {
	token := h.cookie(r, sessionCookie)
	if token == "" {
		return nil, nil
	}
	ws, err := h.st.WebSession(ctx, token, h.cfg.Limits)
	if errors.Is(err, store.ErrNoWebSession) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	a := h.actor(r)
	a.Name, a.Role, a.SessionID = ws.Name, ws.Role, ws.ID
	return &request{ws: ws, token: token, actor: a}, nil
}

// handlerFunc is a page or action of a signed-in member. An error becomes
// the error page: its status from the store error's code, its message the
// store's safe message (internal errors are logged, not shown).
type handlerFunc func(w http.ResponseWriter, r *http.Request, req *request) error

// page wraps a GET page: without a session it sends the browser to the
// sign-in page (303), never any data.
func (h *Handler) page(fn handlerFunc, adminOnly bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
		defer cancel()
		r = r.WithContext(ctx)
		req, err := h.session(ctx, r)
		switch {
		case err != nil:
			h.fail(w, r, nil, err)
			return
		case req == nil:
			h.clearSessionCookie(w, r)
			http.Redirect(w, r, h.base+"signin", http.StatusSeeOther)
			return
		case adminOnly && !req.actor.IsAdmin():
			h.fail(w, r, req, errAdminOnly)
			return
		}
		if err := fn(w, r, req); err != nil {
			h.fail(w, r, req, err)
		}
	}
}

// errAdminOnly answers a staff member on an admin's page.
var errAdminOnly = &store.Error{Code: store.CodeForbidden, Msg: "only an admin may see this page"}

// errCSRF is the answer to a state-changing request that fails the
// cross-origin check or the form token.
var errCSRF = &store.Error{Code: store.CodeForbidden, Msg: "request refused: it did not come from a form of this admin, or the form is stale (reload the page and try again)"}

// errNoSession answers a form sent after the session ended.
var errNoSession = &store.Error{Code: store.CodeForbidden, Msg: "your session has ended: sign in again"}

// action wraps a state-changing request (POST): the cross-origin check,
// the session and its form token (constant-time compare), then fn. Any
// failure of the first three is 403.
func (h *Handler) action(fn handlerFunc, adminOnly bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h.cop.Check(r); err != nil {
			h.fail(w, r, nil, errCSRF)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
		defer cancel()
		r = r.WithContext(ctx)
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		req, err := h.session(ctx, r)
		switch {
		case err != nil:
			h.fail(w, r, nil, err)
			return
		case req == nil:
			h.clearSessionCookie(w, r)
			h.fail(w, r, nil, errNoSession)
			return
		case !sameToken(r.PostFormValue("csrf"), req.ws.CSRF):
			h.fail(w, r, req, errCSRF)
			return
		case adminOnly && !req.actor.IsAdmin():
			h.fail(w, r, req, &store.Error{Code: store.CodeForbidden, Msg: "only an admin may do this"})
			return
		}
		if err := fn(w, r, req); err != nil {
			h.fail(w, r, req, err)
		}
	}
}

// sameToken compares a form token with the expected one in constant time.
func sameToken(got, want string) bool {
	return got != "" && want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func (h *Handler) clearSessionCookie(w http.ResponseWriter, r *http.Request) {
	if h.cookie(r, sessionCookie) != "" {
		h.setCookie(w, sessionCookie, "", -1)
	}
}

// --- before a session: the sign-in forms -------------------------------------

// newNonce is 256 random bits, URL-safe.
func newNonce() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// signInToken returns the form token of a sign-in form, setting the
// browser's sign-in cookie when it has none (a signed double submit: the
// token is an HMAC of the cookie's nonce).
func (h *Handler) signInToken(w http.ResponseWriter, r *http.Request) string {
	nonce := h.cookie(r, signInCookie)
	if len(nonce) != 43 {
		nonce = newNonce()
		h.setCookie(w, signInCookie, nonce, int(signInCookieAge/time.Second))
	}
	return h.st.SignInFormToken(nonce)
}

// preSession wraps the sign-in forms' POSTs: the cross-origin check and
// the sign-in form token (403 on either), then the source throttle (429).
func (h *Handler) preSession(fn http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		nonce := h.cookie(r, signInCookie)
		if err := h.cop.Check(r); err != nil || nonce == "" || !sameToken(r.PostFormValue("csrf"), h.st.SignInFormToken(nonce)) {
			h.fail(w, r, nil, errCSRF)
			return
		}
		if until, refused := h.box.Refused(h.clientIP(r)); refused {
			secs := int(until.Sub(h.now()).Seconds()) + 1
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			h.fail(w, r, nil, &httpError{status: http.StatusTooManyRequests,
				msg: "too many failed sign-ins from your address: try again in " + strconv.Itoa(secs) + " seconds"})
			return
		}
		fn(w, r)
	}
}

// signInData is the sign-in page's data.
type signInData struct {
	CSRF string
	Name string
}

func (h *Handler) signInPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	switch req, err := h.session(ctx, r); {
	case err == nil && req != nil:
		http.Redirect(w, r, h.base, http.StatusSeeOther)
		return
	case err == nil:
		h.clearSessionCookie(w, r) // it names no live session
	}
	h.render(w, r, nil, http.StatusOK, "signin", view{Title: "Sign in", Notice: doneText(r), Data: signInData{CSRF: h.signInToken(w, r)}})
}

// errSignIn is the one answer to a failed sign-in, whatever failed.
const errSignIn = "sign-in failed: the name, password or code is not right (or the account cannot sign in now)"

func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	pw, code := r.PostFormValue("password"), r.PostFormValue("code")
	a := h.actor(r)
	a.Name = clip(name, 64)
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	actor, ok, err := h.st.SignInWithPassword(ctx, a, pw, code, h.cfg.HashWait)
	switch {
	case errors.Is(err, store.ErrHashBusy):
		w.Header().Set("Retry-After", "2")
		h.fail(w, r, nil, &httpError{status: http.StatusServiceUnavailable, msg: store.ErrHashBusy.Error()})
		return
	case err != nil:
		h.fail(w, r, nil, err)
		return
	case !ok:
		h.box.Penalise(h.clientIP(r), h.cfg.Penalty)
		h.render(w, r, nil, http.StatusUnauthorized, "signin", view{Title: "Sign in", Error: errSignIn,
			Data: signInData{CSRF: h.signInToken(w, r), Name: name}})
		return
	}
	h.startSession(w, r, actor, "password")
}

// linkData is the link page's data.
type linkData struct {
	CSRF   string
	Action string
}

// linkPage shows the sign-in link's button. A GET never uses the link, so
// that previewers and scanners that fetch it cannot burn it.
func (h *Handler) linkPage(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, nil, http.StatusOK, "link", view{Title: "Sign in with a link",
		Data: linkData{CSRF: h.signInToken(w, r), Action: h.base + "link/" + r.PathValue("token")}})
}

func (h *Handler) redeemLink(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	actor, err := h.st.RedeemSignInLink(ctx, h.actor(r), r.PathValue("token"))
	if err != nil {
		if store.ErrorCode(err) == store.CodeForbidden {
			h.box.Penalise(h.clientIP(r), h.cfg.Penalty)
		}
		h.fail(w, r, nil, err)
		return
	}
	h.startSession(w, r, actor, "link")
}

// startSession ends the browser's previous session, if any (the session
// id rotates at every sign-in), starts a new one and sends the browser to
// the dashboard.
func (h *Handler) startSession(w http.ResponseWriter, r *http.Request, a store.Actor, method string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), storeTimeout)
	defer cancel()
	if old := h.cookie(r, sessionCookie); old != "" {
		if err := h.st.SignOut(ctx, a, old); err != nil {
			h.fail(w, r, nil, err)
			return
		}
	}
	token, _, err := h.st.CreateWebSession(ctx, a, method, r.UserAgent(), h.cfg.Limits)
	if err != nil {
		h.fail(w, r, nil, err)
		return
	}
	h.setCookie(w, sessionCookie, token, 0)
	h.setCookie(w, signInCookie, "", -1)
	http.Redirect(w, r, h.base, http.StatusSeeOther)
}

// signOut ends the session server-side: the cookie is worthless afterwards
// even if a copy survives.
func (h *Handler) signOut(w http.ResponseWriter, r *http.Request, req *request) error {
	if err := h.st.SignOut(r.Context(), req.actor, req.token); err != nil {
		return err
	}
	h.setCookie(w, sessionCookie, "", -1)
	http.Redirect(w, r, h.base+"signin?done=signed-out", http.StatusSeeOther)
	return nil
}

// clip shortens s to n bytes at most, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
