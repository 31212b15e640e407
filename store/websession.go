package store

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Audit actions of the web admin.
const (
	ActionSignInLinkIssued = "signin_link.issued"
)

// SignInLinkTTL is how long a console-issued sign-in link works.
const SignInLinkTTL = 60 * time.Second

// newToken returns 256 random bits, URL-safe, and the hash that is stored
// in its place (only the hash: a copy of the database gives no session).
func newToken() (token, hash string) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, tokenHash(token)
}

// csrfToken is the form token of the session with this cookie token: an
// HMAC of it, so it needs no storage and is worthless without the session.
func (s *Store) csrfToken(token string) string {
	m := hmac.New(sha256.New, s.csrfMK)
	m.Write([]byte(token))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// WebSession is a signed-in browser.
type WebSession struct {
	ID         string // public id: the start of the token's hash (for listings and ending it)
	Name       string
	Role       string
	CSRF       string // per-session form token
	CreatedAt  time.Time
	LastSeen   time.Time
	ExpiresAt  time.Time // absolute end
	RemoteAddr string
	UserAgent  string
}

// WebSessionLimits are the idle and absolute lifetimes of web sessions.
type WebSessionLimits struct {
	Idle, MaxAge time.Duration
}

// ErrNoWebSession means the cookie names no live session (unknown,
// signed out, expired, or its member lost access).
var ErrNoWebSession = errors.New("no such web session")

// CreateWebSession starts a web session for a.Name after a successful
// sign-in and audits session.start (channel web). It returns the token for
// the cookie; only its hash is stored.
func (s *Store) CreateWebSession(ctx context.Context, a Actor, method, userAgent string, lim WebSessionLimits) (string, WebSession, error) {
	token, hash := newToken()
	now := s.now()
	ws := WebSession{ID: hash[:16], Name: a.Name, Role: a.Role, CSRF: s.csrfToken(token), CreatedAt: now, LastSeen: now,
		ExpiresAt: now.Add(lim.MaxAge), RemoteAddr: a.RemoteAddr, UserAgent: clip(userAgent, 200)}
	err := s.write(ctx, func(tx *wtx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO web_sessions (hash, name, created_at, last_seen, expires_at, remote_addr, user_agent)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, hash, a.Name, now.UnixMilli(), now.UnixMilli(), ws.ExpiresAt.UnixMilli(),
			a.RemoteAddr, ws.UserAgent); err != nil {
			return fmt.Errorf("store: web session: %w", err)
		}
		a.SessionID = ws.ID
		return tx.audit(ctx, a, ActionSessionStart, a.Name, Detail{"channel": ChannelWeb, "method": method, "session_id": ws.ID})
	})
	return token, ws, err
}

// touchEvery is how stale last_seen may get before a request writes it
// again (so that browsing does not write on every request).
const touchEvery = time.Minute

// WebSession returns the live session for a cookie token. It ends (and
// refuses) a session past its idle or absolute limit, or whose member no
// longer has a key in authorized_keys or is locked. The member's role is
// read afresh from authorized_keys.
func (s *Store) WebSession(ctx context.Context, token string, lim WebSessionLimits) (WebSession, error) {
	if token == "" {
		return WebSession{}, ErrNoWebSession
	}
	hash := tokenHash(token)
	var ws WebSession
	var created, seen, expires int64
	err := s.queryRow(ctx, `SELECT name, created_at, last_seen, expires_at, remote_addr, user_agent
		FROM web_sessions WHERE hash = ?`, hash).Scan(&ws.Name, &created, &seen, &expires, &ws.RemoteAddr, &ws.UserAgent)
	if errors.Is(err, sql.ErrNoRows) {
		return WebSession{}, ErrNoWebSession
	}
	if err != nil {
		return WebSession{}, err
	}
	ws.ID, ws.CSRF = hash[:16], s.csrfToken(token)
	ws.CreatedAt, ws.LastSeen, ws.ExpiresAt = time.UnixMilli(created).UTC(), time.UnixMilli(seen).UTC(), time.UnixMilli(expires).UTC()
	now := s.now()
	reason := ""
	entries := s.Keys().UserEntries(ws.Name)
	switch {
	case !now.Before(ws.ExpiresAt):
		reason = "expired (absolute limit)"
	case now.Sub(ws.LastSeen) >= lim.Idle:
		reason = "expired (idle)"
	case len(entries) == 0:
		reason = "member has no key"
	}
	if reason == "" {
		if ls, err := s.LoginState(ctx, ws.Name); err != nil {
			return WebSession{}, err
		} else if !ls.LockedUntil.IsZero() {
			reason = "member locked"
		}
	}
	if reason != "" {
		_ = s.endWebSessions(ctx, System, `hash = ?`, []any{hash}, ActionSessionEnd, reason)
		return WebSession{}, ErrNoWebSession
	}
	ws.Role = entries[0].Role
	if now.Sub(ws.LastSeen) >= touchEvery {
		if err := s.write(ctx, func(tx *wtx) error {
			_, err := tx.ExecContext(ctx, `UPDATE web_sessions SET last_seen = ? WHERE hash = ?`, now.UnixMilli(), hash)
			return err
		}); err != nil {
			return WebSession{}, err
		}
		ws.LastSeen = now
	}
	return ws, nil
}

// SignOut ends the session of a cookie token (audited session.end).
func (s *Store) SignOut(ctx context.Context, a Actor, token string) error {
	return s.endWebSessions(ctx, a, `hash = ?`, []any{tokenHash(token)}, ActionSessionEnd, "signed out")
}

// EndWebSession ends a session by its public id (admins; audited
// session.terminated).
func (s *Store) EndWebSession(ctx context.Context, a Actor, id string) error {
	if err := a.requireAdmin("end sessions"); err != nil {
		return err
	}
	if len(id) != 16 {
		return errorf(CodeNotFound, "that session has already ended")
	}
	n := 0
	err := s.write(ctx, func(tx *wtx) error {
		var err error
		n, err = tx.endWebSessions(ctx, a, `substr(hash, 1, 16) = ?`, []any{id}, ActionSessionTerminated, "ended by "+a.Name)
		return err
	})
	if err == nil && n == 0 {
		return errorf(CodeNotFound, "that session has already ended")
	}
	return err
}

// EndWebSessionsOf ends every web session of a member (their key was
// removed, they were locked, or an admin ended their sessions): admins and
// Backroom itself only, audited session.terminated.
func (s *Store) EndWebSessionsOf(ctx context.Context, a Actor, name, reason string) (int, error) {
	if err := a.requireAdmin("end sessions"); err != nil {
		return 0, err
	}
	n := 0
	err := s.write(ctx, func(tx *wtx) error {
		var err error
		n, err = tx.endWebSessions(ctx, a, `name = ?`, []any{name}, ActionSessionTerminated, reason)
		return err
	})
	return n, err
}

func (s *Store) endWebSessions(ctx context.Context, a Actor, where string, args []any, action, reason string) error {
	return s.write(ctx, func(tx *wtx) error {
		_, err := tx.endWebSessions(ctx, a, where, args, action, reason)
		return err
	})
}

func (tx *wtx) endWebSessions(ctx context.Context, a Actor, where string, args []any, action, reason string) (int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT hash, name FROM web_sessions WHERE `+where, args...)
	if err != nil {
		return 0, err
	}
	type victim struct{ hash, name string }
	var vs []victim
	for rows.Next() {
		var v victim
		if err := rows.Scan(&v.hash, &v.name); err != nil {
			rows.Close()
			return 0, err
		}
		vs = append(vs, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, v := range vs {
		if _, err := tx.ExecContext(ctx, `DELETE FROM web_sessions WHERE hash = ?`, v.hash); err != nil {
			return 0, err
		}
		if err := tx.audit(ctx, a, action, v.name, Detail{"channel": ChannelWeb, "session_id": v.hash[:16], "reason": reason}); err != nil {
			return 0, err
		}
	}
	return len(vs), nil
}

// ListWebSessions lists live web sessions, oldest first (admins' Sessions
// screen).
func (s *Store) ListWebSessions(ctx context.Context) ([]WebSession, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT hash, name, created_at, last_seen, expires_at, remote_addr, user_agent
		FROM web_sessions WHERE expires_at > ? ORDER BY created_at`, s.now().UnixMilli())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []WebSession
	for rows.Next() {
		var ws WebSession
		var hash string
		var created, seen, expires int64
		if err := rows.Scan(&hash, &ws.Name, &created, &seen, &expires, &ws.RemoteAddr, &ws.UserAgent); err != nil {
			return nil, err
		}
		ws.ID = hash[:16]
		ws.CreatedAt, ws.LastSeen, ws.ExpiresAt = time.UnixMilli(created).UTC(), time.UnixMilli(seen).UTC(), time.UnixMilli(expires).UTC()
		out = append(out, ws)
	}
	return out, rows.Err()
}

// PruneWebSessions ends the sessions past their idle or absolute limit
// (each audited session.end, as when the browser comes back too late) and
// deletes sign-in links that expired more than an hour ago.
func (s *Store) PruneWebSessions(ctx context.Context, lim WebSessionLimits) error {
	now := s.now().UnixMilli()
	return s.write(ctx, func(tx *wtx) error {
		if _, err := tx.endWebSessions(ctx, System, `expires_at <= ?`, []any{now}, ActionSessionEnd, "expired (absolute limit)"); err != nil {
			return err
		}
		if lim.Idle > 0 {
			if _, err := tx.endWebSessions(ctx, System, `last_seen <= ?`, []any{now - lim.Idle.Milliseconds()}, ActionSessionEnd, "expired (idle)"); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM signin_links WHERE expires_at <= ?`, s.now().Add(-time.Hour).UnixMilli())
		return err
	})
}

// CreateSignInLink issues a one-time sign-in token for a.Name (from the SSH
// console), valid SignInLinkTTL, and audits it. Only its hash is stored.
func (s *Store) CreateSignInLink(ctx context.Context, a Actor) (string, time.Time, error) {
	if a.Channel != ChannelSSH {
		return "", time.Time{}, errorf(CodeForbidden, "sign-in links are issued from the SSH console only")
	}
	token, hash := newToken()
	expires := s.now().Add(SignInLinkTTL)
	err := s.write(ctx, func(tx *wtx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO signin_links (hash, name, created_at, expires_at) VALUES (?, ?, ?, ?)`,
			hash, a.Name, s.now().UnixMilli(), expires.UnixMilli()); err != nil {
			return fmt.Errorf("store: sign-in link: %w", err)
		}
		return tx.audit(ctx, a, ActionSignInLinkIssued, a.Name, Detail{"expires": expires.UTC().Format(TimeFormat)})
	})
	return token, expires, err
}

// RedeemSignInLink uses a sign-in token for a browser (a gives the
// channel and remote address of the audit rows): once, before it expires,
// for a member who still holds a key and is not locked. It returns the
// actor to start the session for, with the member's name and role. Every
// refusal is the same CodeForbidden error (nothing tells a used link from a
// forged one) and is audited login.failure with its reason; the session
// start is audited by CreateWebSession.
func (s *Store) RedeemSignInLink(ctx context.Context, a Actor, token string) (Actor, error) {
	refused := errorf(CodeForbidden, "this sign-in link is not valid: links work once, for 60 seconds; issue a new one from the console")
	reason := ""
	err := s.write(ctx, func(tx *wtx) error {
		reason = ""
		now := s.now().UnixMilli()
		var name string
		err := tx.QueryRowContext(ctx, `UPDATE signin_links SET used_at = ? WHERE hash = ? AND used_at IS NULL AND expires_at > ?
			RETURNING name`, now, tokenHash(token), now).Scan(&name)
		who, target := a, ""
		switch {
		case errors.Is(err, sql.ErrNoRows):
			reason, who.Name = "unknown, used or expired sign-in link", UnknownActor
		case err != nil:
			return err
		default:
			a.Name, who.Name, target = name, name, name
			var locked sql.NullInt64
			if err := tx.QueryRowContext(ctx, `SELECT locked_until FROM staff WHERE name = ?`, name).Scan(&locked); err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			entries := s.Keys().UserEntries(name)
			switch {
			case len(entries) == 0:
				reason = "member has no key"
			case locked.Valid && locked.Int64 > now:
				reason = "member locked"
			default:
				a.Role = entries[0].Role
				return nil
			}
		}
		return tx.audit(ctx, who, ActionLoginFailure, target, Detail{"method": "link", "reason": reason})
	})
	if err != nil {
		return Actor{}, err
	}
	if reason != "" {
		return Actor{}, refused
	}
	return a, nil
}

// SignInFormToken is the form token of a sign-in form shown to a browser
// that holds nonce in a cookie (a signed double submit: a site that cannot
// read the cookie cannot make the token). It needs no storage and is not a
// session's token: those are HMACs of base64 text, which never holds a NUL.
func (s *Store) SignInFormToken(nonce string) string {
	return s.csrfToken("signin\x00" + nonce)
}
