package sshd

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/charmbracelet/ssh"
	gossh "golang.org/x/crypto/ssh"

	"backroom/store"
	"backroom/store/authkeys"
)

// Permission extensions that carry the staff identity from authentication to
// the session. They are only ever set on the final Permissions, which
// x/crypto returns for the key whose signature verified.
const (
	extUser        = "backroom-user"
	extRole        = "backroom-role"
	extFingerprint = "backroom-fingerprint"
	extMode        = "backroom-mode"
	extWebPassword = "backroom-web-password" // "1": the member has a web password
	extSessionID   = "backroom-session"
	// extPublicKey is where charmbracelet/ssh looks for the key it reports
	// as sess.PublicKey().
	extPublicKey = "gliderlabs/ssh.PublicKey"
)

// Session modes.
const (
	modeConsole = "console"
	modeEnroll  = "enroll"
)

type connStateKey struct{}

// connState is what the server knows about one connection while it
// authenticates. It lives in the connection's context.
type connState struct {
	id     string
	ip     netip.Addr
	remote string
	conn   net.Conn

	mu          sync.Mutex
	preauth     gossh.ServerPreAuthConn
	prompts     int  // code prompts shown
	authFailed  bool // at least one real failure (not the first "none")
	authed      bool
	released    bool
	banner      bool // the "code required" banner was sent
	graceExpiry bool
	grace       *time.Timer
}

func newSessionID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// connCallback admits or drops a new TCP connection before any SSH
// traffic (MaxStartups, per-source penalties) and arms the login grace
// deadline.
func (s *Server) connCallback(ctx ssh.Context, conn net.Conn) net.Conn {
	ip := sourceAddr(conn.RemoteAddr())
	ok, why := s.gate.admit(ip)
	if !ok {
		s.log.Warn("ssh connection refused before authentication", "remote", conn.RemoteAddr().String(), "reason", why)
		return nil
	}
	st := &connState{id: newSessionID(), ip: ip, remote: conn.RemoteAddr().String(), conn: conn}
	ctx.SetValue(connStateKey{}, st)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.grace = time.AfterFunc(s.cfg.GraceTime, func() {
		st.mu.Lock()
		expired := !st.authed
		st.graceExpiry = expired
		st.mu.Unlock()
		if expired {
			s.log.Info("ssh login grace time exceeded", "remote", st.remote, "session", st.id)
			conn.Close()
		}
	})
	return &trackedConn{Conn: conn, onClose: func() { s.finishAuth(st) }}
}

// finishAuth releases the connection's unauthenticated slot once, and
// penalises its source when it ended without authenticating.
func (s *Server) finishAuth(st *connState) {
	st.mu.Lock()
	if st.released {
		st.mu.Unlock()
		return
	}
	st.released = true
	if st.grace != nil {
		st.grace.Stop()
	}
	authed, failed, grace := st.authed, st.authFailed, st.graceExpiry
	st.mu.Unlock()
	switch {
	case authed:
	case grace:
		s.gate.penalise(st.ip, s.cfg.Penalties.Grace)
	case failed:
		s.gate.penalise(st.ip, s.cfg.Penalties.AuthFail)
	default:
		s.gate.penalise(st.ip, s.cfg.Penalties.NoAuth)
	}
	s.gate.release()
}

// trackedConn calls onClose once when the connection closes.
type trackedConn struct {
	net.Conn
	once    sync.Once
	onClose func()
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.onClose)
	return err
}

// serverConfig builds the per-connection SSH server configuration: public
// key first, then a TOTP code over keyboard-interactive on the same
// connection. No other path leads in.
func (s *Server) serverConfig(ctx ssh.Context) *gossh.ServerConfig {
	st, _ := ctx.Value(connStateKey{}).(*connState)
	if st == nil {
		// Not admitted through connCallback: nothing may authenticate.
		st = &connState{id: newSessionID()}
	}
	return &gossh.ServerConfig{
		ServerVersion: "SSH-2.0-Backroom",
		// charmbracelet/ssh turns NoClientAuth on when no handler of its
		// own is set; the "none" method must still get nobody in.
		NoClientAuth: true,
		NoClientAuthCallback: func(gossh.ConnMetadata) (*gossh.Permissions, error) {
			return nil, errors.New("authentication required")
		},
		PublicKeyCallback: func(c gossh.ConnMetadata, key gossh.PublicKey) (*gossh.Permissions, error) {
			return s.publicKey(st, c, key)
		},
		PreAuthConnCallback: func(pc gossh.ServerPreAuthConn) {
			st.mu.Lock()
			st.preauth = pc
			st.mu.Unlock()
		},
		AuthLogCallback: func(c gossh.ConnMetadata, method string, err error) {
			s.authLog(st, c, method, err)
		},
	}
}

// publicKey runs when a key is offered — before the client proves it
// holds the private key. It keeps no state: for a known key it returns a
// PartialSuccessError whose next step is bound to this member and this key,
// and x/crypto uses it only if this key's signature verifies.
func (s *Server) publicKey(st *connState, c gossh.ConnMetadata, key gossh.PublicKey) (*gossh.Permissions, error) {
	user := c.User()
	fp := gossh.FingerprintSHA256(key)
	actor := store.Actor{Name: user, Channel: store.ChannelSSH, RemoteAddr: st.remote, SessionID: st.id}
	refuse := func(reason string, err error) (*gossh.Permissions, error) {
		st.failed()
		s.auditBG(actor, store.ActionLoginFailure, user, store.Detail{"fingerprint": fp, "reason": reason, "method": "publickey"})
		return nil, err
	}
	entry, err := s.store.LookupKey(user, key, net.IP(st.ip.AsSlice()))
	if err != nil {
		return refuse(err.Error(), errors.New("permission denied"))
	}
	ls, err := s.store.LoginState(context.Background(), user)
	if err != nil {
		s.log.Error("ssh login state", "user", user, "err", err)
		return nil, errors.New("permission denied")
	}
	switch {
	case !ls.Enrolled && ls.EnrollAtLogin:
		// The one key-only path: a session confined to enrollment.
		return identity(entry, key, modeEnroll, st.id, ls.WebPassword), nil
	case !ls.Enrolled:
		return refuse("no second factor enrolled (an admin must run `backroom staff reset-totp "+user+"`)", errors.New("permission denied"))
	}
	return nil, &gossh.PartialSuccessError{Next: gossh.ServerAuthCallbacks{
		KeyboardInteractiveCallback: func(c gossh.ConnMetadata, challenge gossh.KeyboardInteractiveChallenge) (*gossh.Permissions, error) {
			return s.verificationCode(st, entry, key, ls.WebPassword, challenge)
		},
	}}
}

// identity is the final Permissions of an authenticated connection.
func identity(e authkeys.Entry, key gossh.PublicKey, mode, sessionID string, webPassword bool) *gossh.Permissions {
	wp := ""
	if webPassword {
		wp = "1"
	}
	return &gossh.Permissions{Extensions: map[string]string{
		extUser:        e.User,
		extRole:        e.Role,
		extFingerprint: e.Fingerprint,
		extMode:        mode,
		extSessionID:   sessionID,
		extWebPassword: wp,
		extPublicKey:   base64.StdEncoding.EncodeToString(key.Marshal()),
	}}
}

// Texts the client sees.
const (
	codePrompt      = "Verification code: "
	codeRetry       = "That code was not accepted. Try again."
	codeRequiredMsg = "Backroom: key accepted. A verification code from your authenticator app is required next.\r\n" +
		"(Clients that cannot prompt for it, such as ssh -o BatchMode=yes, cannot log in.)\r\n"
	lockedMsg     = "Backroom: this account is temporarily locked after too many failed codes. Try again later or ask an admin.\r\n"
	tooManyMsg    = "Backroom: too many code attempts on this connection.\r\n"
	permissionMsg = "permission denied"
)

// verificationCode is the second step: ask for a code (up to CodePrompts
// times per connection) for the member whose key signed.
func (s *Server) verificationCode(st *connState, e authkeys.Entry, key gossh.PublicKey, webPassword bool, challenge gossh.KeyboardInteractiveChallenge) (*gossh.Permissions, error) {
	actor := store.Actor{Name: e.User, Role: e.Role, Channel: store.ChannelSSH, RemoteAddr: st.remote, SessionID: st.id}
	instruction := ""
	for {
		st.mu.Lock()
		if st.prompts >= s.cfg.CodePrompts {
			st.mu.Unlock()
			s.banner(st, tooManyMsg)
			go st.closeSoon()
			return nil, errors.New(permissionMsg)
		}
		st.prompts++
		st.mu.Unlock()

		answers, err := challenge("", instruction, []string{codePrompt}, []bool{false})
		if err != nil {
			return nil, err
		}
		code := ""
		if len(answers) == 1 {
			code = answers[0]
		}
		res, err := s.store.VerifyCode(context.Background(), actor, e.Fingerprint, code, store.PurposeLogin)
		if err != nil {
			s.log.Error("ssh code check", "user", e.User, "err", err)
			return nil, errors.New(permissionMsg)
		}
		switch res.Verdict {
		case store.CodeAccepted, store.CodeRecovery:
			s.markAuthed(st)
			return identity(e, key, modeConsole, st.id, webPassword), nil
		case store.CodeLocked:
			st.failed()
			s.banner(st, lockedMsg)
			return nil, errors.New(permissionMsg)
		case store.CodeNotEnrolled:
			return nil, errors.New(permissionMsg)
		}
		st.failed()
		instruction = codeRetry
	}
}

// failed records a real authentication failure (a refused key or code)
// for the source penalty.
func (st *connState) failed() {
	st.mu.Lock()
	st.authFailed = true
	st.mu.Unlock()
}

// markAuthed ends the connection's pre-authentication life: the grace
// deadline stops and its MaxStartups slot is freed.
func (s *Server) markAuthed(st *connState) {
	st.mu.Lock()
	st.authed = true
	st.mu.Unlock()
	s.finishAuth(st)
}

// closeSoon drops the connection after the client had a moment to read
// the banner.
func (st *connState) closeSoon() {
	time.Sleep(100 * time.Millisecond)
	if st.conn != nil {
		st.conn.Close()
	}
}

func (s *Server) banner(st *connState, msg string) {
	st.mu.Lock()
	pc := st.preauth
	st.mu.Unlock()
	if pc != nil {
		_ = pc.SendAuthBanner(msg)
	}
}

// authLog sees every authentication attempt: it records failures for the
// source penalty, tells clients that stop after the key that a code is
// needed, and marks success.
func (s *Server) authLog(st *connState, c gossh.ConnMetadata, method string, err error) {
	var partial *gossh.PartialSuccessError
	switch {
	case err == nil:
		s.markAuthed(st)
		s.log.Info("ssh authenticated", "user", c.User(), "method", method, "remote", st.remote, "session", st.id)
	case errors.As(err, &partial):
		st.mu.Lock()
		send := !st.banner
		st.banner = true
		st.mu.Unlock()
		if send {
			s.banner(st, codeRequiredMsg)
		}
	case errors.Is(err, gossh.ErrNoAuth):
	default:
		st.mu.Lock()
		if method != "none" || st.authFailed {
			st.authFailed = true
		}
		st.mu.Unlock()
		s.log.Debug("ssh auth attempt failed", "user", c.User(), "method", method, "remote", st.remote, "err", err)
	}
}

// auditBG writes an audit row for an event outside any change (a refused
// key). It runs synchronously: the row must exist before the client hears
// back, and failures are logged.
func (s *Server) auditBG(a store.Actor, action, target string, d store.Detail) {
	if err := s.store.Audit(context.Background(), a, action, target, d); err != nil {
		s.log.Error("audit write failed", "action", action, "err", err)
	}
}
