// Package sshd is Backroom's SSH server: two-step authentication (public
// key, then a TOTP code on the same connection), pre-authentication limits,
// the channel policy, and one Bubble Tea console per session.
package sshd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/ssh"
	"github.com/charmbracelet/wish"
	"github.com/muesli/termenv"
	gossh "golang.org/x/crypto/ssh"

	"backroom/store"
	"backroom/tui"
)

// Config configures the SSH server. Zero durations and counts take the
// documented defaults.
type Config struct {
	Store      *store.Store
	Logger     *slog.Logger
	Now        func() time.Time
	HostSigner gossh.Signer

	MaxStartups    MaxStartups   // default 64:30:256
	Penalties      Penalties     // default DefaultPenalties; Exempt as given
	GraceTime      time.Duration // to finish authentication (default 60s)
	CodePrompts    int           // code prompts per connection (default 3)
	IdleTimeout    time.Duration // console idle timeout (default 15m)
	IdleWarning    time.Duration // warning before the idle end (default 1m)
	EnrollDuration time.Duration // life of an enrollment-only session (default 10m)
	FPS            int           // console frame rate cap (default 30)
	// ClientSync syncs clients with Stripe from the console; nil makes the
	// console say sync is not available.
	ClientSync tui.ClientSync
	// WebhookProcessor reprocesses stored webhook events replayed from the
	// console; nil makes the console say replay is not available.
	WebhookProcessor store.Processor
	// WebhookSecretSet tells the console whether a webhook secret is
	// configured (without one it says "webhook secret not set").
	WebhookSecretSet bool
	// WebSignInURL builds the web admin's sign-in link for a token (nil:
	// the web admin is off).
	WebSignInURL func(token string) string
}

// Server is the SSH server.
type Server struct {
	cfg   Config
	store *store.Store
	log   *slog.Logger
	gate  *gate
	srv   *ssh.Server
	reg   *Registry

	mu     sync.Mutex
	ln     net.Listener
	closed bool
}

// New builds the server. It does not listen; call Serve.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.HostSigner == nil {
		return nil, errors.New("sshd: a store and a host key are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxStartups == (MaxStartups{}) {
		cfg.MaxStartups = MaxStartups{Start: 64, Rate: 30, Full: 256}
	}
	p := cfg.Penalties
	if p.AuthFail == 0 && p.NoAuth == 0 && p.Grace == 0 && p.Min == 0 && p.Max == 0 {
		exempt := p.Exempt
		p = DefaultPenalties
		p.Exempt = exempt
	}
	cfg.Penalties = p
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.GraceTime, 60*time.Second)
	def(&cfg.IdleTimeout, 15*time.Minute)
	def(&cfg.IdleWarning, time.Minute)
	def(&cfg.EnrollDuration, 10*time.Minute)
	if cfg.IdleWarning >= cfg.IdleTimeout {
		cfg.IdleWarning = cfg.IdleTimeout / 2
	}
	if cfg.CodePrompts <= 0 {
		cfg.CodePrompts = 3
	}
	if cfg.FPS <= 0 {
		cfg.FPS = 30
	}

	s := &Server{
		cfg:   cfg,
		store: cfg.Store,
		log:   cfg.Logger,
		gate:  newGate(cfg.Now, cfg.MaxStartups, cfg.Penalties),
		reg:   newRegistry(cfg.Store, cfg.Now),
	}
	srv, err := wish.NewServer(
		func(srv *ssh.Server) error {
			srv.AddHostKey(cfg.HostSigner)
			srv.ConnCallback = s.connCallback
			srv.ServerConfigCallback = s.serverConfig
			srv.ChannelHandlers = map[string]ssh.ChannelHandler{
				"session":      s.sessionChannel,
				"direct-tcpip": refuseChannel("port forwarding is disabled on Backroom"),
				"default":      refuseChannel("only the interactive console is available on Backroom"),
			}
			srv.SubsystemHandlers = map[string]ssh.SubsystemHandler{"default": s.refuseSubsystem}
			srv.RequestHandlers = map[string]ssh.RequestHandler{} // no tcpip-forward, no anything
			return nil
		},
		// Runs last to first: identity backstop, channel policy, console.
		wish.WithMiddleware(s.console, s.channelPolicy, s.requireIdentity),
	)
	if err != nil {
		return nil, err
	}
	s.srv = srv
	cfg.Store.OnKeysRemoved(func(fps []string) {
		if n := s.reg.endByFingerprint(fps); n > 0 {
			s.log.Info("ended sessions of removed keys", "sessions", n, "fingerprints", strings.Join(fps, ","))
		}
	})
	return s, nil
}

// Sessions is the live-session registry.
func (s *Server) Sessions() *Registry { return s.reg }

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.ln = ln
	s.mu.Unlock()
	err := s.srv.Serve(ln)
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed || errors.Is(err, ssh.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections, says goodbye to every console and
// waits for them until ctx ends, then closes every connection. (It does not
// use the library's Shutdown, whose wait races with a Serve that is just
// starting.)
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	ln := s.ln
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	s.reg.endAll(ctx, "Backroom is shutting down. Goodbye.")
	// The library closes the listener again: that second close's
	// "use of closed network connection" is not a shutdown failure.
	if err := s.srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// Unauthenticated is the number of connections still authenticating.
func (s *Server) Unauthenticated() int { return s.gate.unauthenticated() }

// --- channel policy ----------------------------------------------------------

func refuseChannel(reason string) ssh.ChannelHandler {
	return func(_ *ssh.Server, _ *gossh.ServerConn, ch gossh.NewChannel, _ ssh.Context) {
		_ = ch.Reject(gossh.Prohibited, reason)
	}
}

// sessionChannel is charmbracelet/ssh's session handler with agent and X11
// forwarding requests refused (the library would accept agent requests).
func (s *Server) sessionChannel(srv *ssh.Server, conn *gossh.ServerConn, ch gossh.NewChannel, ctx ssh.Context) {
	ssh.DefaultSessionHandler(srv, conn, filteredChannel{NewChannel: ch}, ctx)
}

type filteredChannel struct{ gossh.NewChannel }

// Accept accepts the channel and drops forwarding requests before the
// session sees them.
func (f filteredChannel) Accept() (gossh.Channel, <-chan *gossh.Request, error) {
	ch, reqs, err := f.NewChannel.Accept()
	if err != nil {
		return ch, reqs, err
	}
	out := make(chan *gossh.Request)
	go func() {
		defer close(out)
		for r := range reqs {
			switch r.Type {
			case "auth-agent-req@openssh.com", "x11-req":
				if r.WantReply {
					_ = r.Reply(false, nil)
				}
				fmt.Fprintf(ch.Stderr(), "backroom: %s refused: forwarding is disabled on Backroom\r\n", forwardingName(r.Type))
				continue
			}
			out <- r
		}
	}()
	return ch, out, nil
}

func forwardingName(t string) string {
	if t == "x11-req" {
		return "X11 forwarding"
	}
	return "agent forwarding"
}

func (s *Server) refuseSubsystem(sess ssh.Session) {
	fmt.Fprintf(sess.Stderr(), "backroom: subsystem %q refused: Backroom offers only its interactive console (no sftp or scp)\r\n", sess.Subsystem())
	_ = sess.Exit(1)
}

// requireIdentity is the backstop: no session without a staff identity,
// whatever path led here.
func (s *Server) requireIdentity(next ssh.Handler) ssh.Handler {
	return func(sess ssh.Session) {
		w, ok := identityOf(sess)
		// The key the session reports must be the one that signed.
		if ok && (sess.PublicKey() == nil || gossh.FingerprintSHA256(sess.PublicKey()) != w.fingerprint) {
			ok = false
		}
		if !ok {
			s.log.Error("ssh session without a staff identity refused", "remote", sess.RemoteAddr().String())
			wish.Fatalln(sess, "backroom: no staff identity on this connection; refused")
			return
		}
		next(sess)
	}
}

// channelPolicy lets only an interactive shell with a terminal through.
func (s *Server) channelPolicy(next ssh.Handler) ssh.Handler {
	return func(sess ssh.Session) {
		if sess.RawCommand() != "" {
			wish.Fatalln(sess, "backroom: commands are not available; connect without a command to open the console (e.g. ssh -p PORT name@host)")
			return
		}
		if _, _, ok := sess.Pty(); !ok {
			wish.Fatalln(sess, "backroom: the console needs a terminal; connect with an interactive ssh (add -t if you passed -T)")
			return
		}
		next(sess)
	}
}

// who is the staff identity of a session, from its final Permissions.
type who struct {
	user, role, fingerprint, mode, sessionID string
	webPassword                              bool // the member has a web password
}

func identityOf(sess ssh.Session) (who, bool) {
	p := sess.Permissions()
	if p.Permissions == nil || p.Extensions == nil {
		return who{}, false
	}
	w := who{
		user:        p.Extensions[extUser],
		role:        p.Extensions[extRole],
		fingerprint: p.Extensions[extFingerprint],
		mode:        p.Extensions[extMode],
		sessionID:   p.Extensions[extSessionID],
		webPassword: p.Extensions[extWebPassword] == "1",
	}
	if w.user == "" || w.fingerprint == "" || (w.mode != modeConsole && w.mode != modeEnroll) ||
		(w.role != store.RoleAdmin && w.role != store.RoleStaff) {
		return who{}, false
	}
	return w, true
}

// --- the console -------------------------------------------------------------

func (s *Server) console(next ssh.Handler) ssh.Handler {
	return func(sess ssh.Session) {
		defer next(sess)
		w, _ := identityOf(sess)
		pty, winCh, _ := sess.Pty()
		now := s.cfg.Now()
		actor := store.Actor{Name: w.user, Role: w.role, Channel: store.ChannelSSH,
			RemoteAddr: sess.RemoteAddr().String(), SessionID: w.sessionID}
		ls := &liveSession{sess: sess, info: tui.SessionInfo{
			ID: w.sessionID, User: w.user, Role: w.role, Fingerprint: w.fingerprint,
			RemoteAddr: actor.RemoteAddr, Started: now,
		}}
		ls.lastInput.Store(time.Now().UnixNano())
		s.reg.add(ls)
		defer s.reg.remove(ls)
		s.auditBG(actor, store.ActionSessionStart, w.user, store.Detail{"fingerprint": w.fingerprint, "mode": w.mode, "term": pty.Term})

		opts := tui.Options{
			Store:       s.store,
			Sessions:    s.reg,
			ClientSync:  s.cfg.ClientSync,
			Actor:       actor,
			Fingerprint: w.fingerprint,
			Renderer:    newRenderer(sess, pty),
			Width:       pty.Window.Width,
			Height:      pty.Window.Height,
			Now:         s.cfg.Now,
			Context:     sess.Context(),

			WebhookProcessor: s.cfg.WebhookProcessor,
			WebhookSecretSet: s.cfg.WebhookSecretSet,
			WebSignInURL:     s.cfg.WebSignInURL,
			WebPasswordSet:   w.webPassword,
		}
		if w.mode == modeEnroll {
			opts.Enroll = true
			opts.EnrollDeadline = now.Add(s.cfg.EnrollDuration)
		}
		var p *tea.Program
		input := &backgroundReader{
			r:     &activityReader{r: sess, last: &ls.lastInput},
			until: time.Now().Add(5 * time.Second),
			report: func(dark bool) {
				opts.Renderer.SetHasDarkBackground(dark)
				p.Send(backgroundMsg{}) // redraw with the right colours
			},
		}
		_, _ = io.WriteString(sess, queryBackground)
		screen := newFrames(sess, s.cfg.FPS, pty.Window.Width, pty.Window.Height)
		p = tea.NewProgram(framedModel{Model: tui.New(opts), f: screen},
			tea.WithInput(input),
			tea.WithOutput(sess),
			tea.WithoutRenderer(), // screen draws the frames (see frames)
			tea.WithoutSignalHandler(),
			tea.WithContext(sess.Context()),
		)
		screen.poke = func() { go p.Send(redrawMsg{}) }
		ls.mu.Lock()
		ls.program = p
		ending := ls.ending
		ls.mu.Unlock()
		if ending { // ended before the program existed
			closeConn(sess)
			return
		}

		go func() {
			for {
				select {
				case <-sess.Context().Done():
					return
				case win, ok := <-winCh:
					if !ok {
						return
					}
					p.Send(tea.WindowSizeMsg{Width: win.Width, Height: win.Height})
				}
			}
		}()
		stopIdle := s.watchIdle(ls, w.mode == modeEnroll)
		defer stopIdle()

		start := time.Now()
		screen.start()
		final, err := p.Run()
		p.Kill()
		var lastView func() string
		if sess.Context().Err() == nil {
			// Nobody would see the last view of a client that is gone.
			lastView = func() string {
				if fm, ok := final.(framedModel); ok {
					return fm.Model.View()
				}
				return ""
			}
		}
		screen.stop(lastView)
		reason := ls.endReason()
		if reason == "" {
			reason = "quit"
			if err != nil && sess.Context().Err() != nil {
				reason = "disconnected"
			}
		}
		// The console's last frame, which showed why Backroom ended the
		// session, vanished with the alternate screen: say it again on the
		// terminal's normal screen, where it stays. (Before the audit
		// write, so that the connection closing soon after cannot cut it.)
		bye := "Goodbye from Backroom."
		if msg := ls.endMessage(); msg != "" {
			bye = msg
		}
		_, _ = io.WriteString(sess, "\r\n"+bye+"\r\n")
		s.auditBG(actor, store.ActionSessionEnd, w.user, store.Detail{
			"fingerprint": w.fingerprint, "reason": reason, "seconds": int(time.Since(start).Seconds()),
		})
	}
}

// watchIdle warns a session IdleWarning before its idle timeout and ends it
// at the timeout; an enrollment session also ends at its deadline. It costs
// one timer per session and no work while nothing happens.
func (s *Server) watchIdle(ls *liveSession, enroll bool) (stop func()) {
	var mu sync.Mutex
	var timer *time.Timer
	stopped := false
	warned := false
	var check func()
	check = func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		idle := time.Since(time.Unix(0, ls.lastInput.Load()))
		switch {
		case idle >= s.cfg.IdleTimeout:
			stopped = true
			ls.end(fmt.Sprintf("This session ended after %s without input.", s.cfg.IdleTimeout), "idle")
			return
		case idle >= s.cfg.IdleTimeout-s.cfg.IdleWarning:
			if !warned {
				warned = true
				ls.mu.Lock()
				p := ls.program
				ls.mu.Unlock()
				if p != nil {
					p.Send(tui.NoticeMsg{Text: fmt.Sprintf("Idle: this session ends in %s — press any key to stay.", roundDuration(s.cfg.IdleTimeout-idle))})
				}
			}
			timer = time.AfterFunc(s.cfg.IdleTimeout-idle, check)
		default:
			warned = false
			timer = time.AfterFunc(s.cfg.IdleTimeout-s.cfg.IdleWarning-idle, check)
		}
	}
	mu.Lock()
	timer = time.AfterFunc(s.cfg.IdleTimeout-s.cfg.IdleWarning, check)
	var deadline *time.Timer
	if enroll {
		deadline = time.AfterFunc(s.cfg.EnrollDuration, func() {
			ls.end("The enrollment window has closed. Ask an admin to let you enroll again.", "enrollment window closed")
		})
	}
	mu.Unlock()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		timer.Stop()
		if deadline != nil {
			deadline.Stop()
		}
	}
}

func roundDuration(d time.Duration) time.Duration {
	if d > time.Minute {
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}

// backgroundMsg asks the console to redraw after the terminal told its
// background colour.
type backgroundMsg struct{}

// activityReader records the time of the last input, for the idle timeout.
type activityReader struct {
	r    io.Reader
	last *atomic.Int64
}

func (a *activityReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// newRenderer makes the session's lipgloss renderer without asking the
// client's terminal anything: the colour profile comes from TERM and the
// environment the client sent, and the background is assumed dark, so the
// first frame never waits for an answer that may not come.
func newRenderer(sess ssh.Session, pty ssh.Pty) *lipgloss.Renderer {
	profile := colorProfile(pty.Term, sess.Environ())
	r := lipgloss.NewRenderer(sess, termenv.WithProfile(profile), termenv.WithColorCache(true))
	r.SetColorProfile(profile)
	r.SetHasDarkBackground(true)
	return r
}

func colorProfile(term string, env []string) termenv.Profile {
	get := func(k string) string {
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, k+"="); ok {
				return v
			}
		}
		return ""
	}
	switch {
	case get("NO_COLOR") != "":
		return termenv.Ascii
	case term == "" || term == "dumb":
		return termenv.Ascii
	case get("COLORTERM") == "truecolor" || get("COLORTERM") == "24bit" || strings.Contains(term, "direct"):
		return termenv.TrueColor
	case strings.Contains(term, "256color"):
		return termenv.ANSI256
	default:
		return termenv.ANSI
	}
}
