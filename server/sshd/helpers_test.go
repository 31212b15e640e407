package sshd

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"backroom/store"
	"backroom/store/clocktest"
)

type clock = clocktest.Clock

func newClock() *clock { return clocktest.New(time.Date(2026, 11, 27, 12, 0, 5, 0, time.UTC)) }

var cliActor = store.Actor{Name: "test", Role: store.RoleAdmin, Channel: store.ChannelCLI}

type env struct {
	mu     sync.Mutex // guards stop
	t      *testing.T
	dir    string
	key    store.MasterKey
	clock  *clock
	store  *store.Store
	srv    *Server
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
}

type envOption func(*Config)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), key: store.NewMasterKey(), clock: newClock()}
	e.openStore()
	e.start(opts...)
	return e
}

func (e *env) openStore() {
	st, err := store.Open(context.Background(), store.Options{Dir: e.dir, MasterKey: e.key, Now: e.clock.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	e.store = st
}

func (e *env) start(opts ...envOption) {
	e.t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	host, _ := gossh.NewSignerFromKey(priv)
	cfg := Config{
		Store:      e.store,
		Now:        e.clock.Now,
		HostSigner: host,
		// Tests connect from loopback; penalties are tested with their own
		// setting.
		Penalties: Penalties{Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}},
		FPS:       60,
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	e.srv, e.addr = srv, ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan struct{})
	go func() { e.store.WatchAuthorizedKeys(ctx, 100*time.Millisecond) }()
	go func() {
		defer close(e.done)
		_ = srv.Serve(ln)
	}()
	e.t.Cleanup(e.stop)
}

// stop shuts the server down and closes the store (idempotent).
func (e *env) stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv == nil {
		return
	}
	e.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = e.srv.Shutdown(ctx)
	<-e.done
	_ = e.store.Close()
	e.srv = nil
}

// restart stops the server, reopens the store on the same directory and
// starts a new server: a process restart.
func (e *env) restart(opts ...envOption) {
	e.stop()
	e.openStore()
	e.start(opts...)
}

type member struct {
	name   string
	signer gossh.Signer
	secret string
	codes  []string
	fp     string
}

func (e *env) addStaff(name string, admin bool) member {
	e.t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := gossh.NewSignerFromKey(priv)
	res, err := e.store.AddStaff(context.Background(), cliActor, store.AddStaffRequest{Name: name, Key: signer.PublicKey(), Admin: admin})
	if err != nil {
		e.t.Fatal(err)
	}
	return member{name: name, signer: signer, secret: res.Enrollment.Secret, codes: res.Enrollment.RecoveryCodes, fp: res.Fingerprint}
}

func newSigner(t *testing.T) gossh.Signer {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// code is the member's TOTP code at the test clock's time plus offset.
func (e *env) code(m member, offset time.Duration) string {
	c, err := store.CodeFor(m.secret, e.clock.Now().Add(offset))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// answer is a keyboard-interactive callback that answers every question
// with the next code in codes (and records the prompts and instructions).
type answer struct {
	mu           sync.Mutex
	codes        []string
	prompts      []string
	instructions []string
}

func (a *answer) callback(name, instruction string, questions []string, echos []bool) ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.instructions = append(a.instructions, instruction)
	out := make([]string, len(questions))
	for i, q := range questions {
		a.prompts = append(a.prompts, q)
		if len(a.codes) == 0 {
			return nil, errors.New("no more codes")
		}
		out[i], a.codes = a.codes[0], a.codes[1:]
	}
	return out, nil
}

type dialResult struct {
	client  *gossh.Client
	err     error
	banners []string
}

func (r dialResult) bannerText() string { return strings.Join(r.banners, "") }

func (e *env) dial(user string, auth ...gossh.AuthMethod) dialResult {
	var mu sync.Mutex
	var r dialResult
	cfg := &gossh.ClientConfig{
		User:            user,
		Auth:            auth,
		HostKeyCallback: gossh.InsecureIgnoreHostKey(),
		Timeout:         5 * time.Second,
		BannerCallback: func(msg string) error {
			mu.Lock()
			r.banners = append(r.banners, msg)
			mu.Unlock()
			return nil
		},
	}
	r.client, r.err = gossh.Dial("tcp", e.addr, cfg)
	if r.client != nil {
		e.t.Cleanup(func() { r.client.Close() })
	}
	return r
}

// login dials with the member's key and the given codes.
func (e *env) login(m member, codes ...string) dialResult {
	a := &answer{codes: codes}
	return e.dial(m.name, gossh.PublicKeys(m.signer), gossh.KeyboardInteractive(a.callback))
}

// screen is the output of an interactive console session.
type screen struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// waitFor waits until the output contains want, or fails after d.
func (s *screen) waitFor(t *testing.T, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if strings.Contains(stripANSI(s.String()), want) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("output never contained %q; got:\n%s", want, stripANSI(s.String()))
}

// console opens a PTY shell session on client and returns its output and
// input.
func console(t *testing.T, c *gossh.Client, w, h int) (*gossh.Session, *screen, io.WriteCloser) {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out := &screen{}
	sess.Stdout = out
	sess.Stderr = out
	in, err := sess.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.RequestPty("xterm-256color", h, w, gossh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	return sess, out, in
}

// stripANSI removes escape sequences so tests can look for words.
func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != 0x1b {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(s) {
			break
		}
		switch s[i+1] {
		case '[':
			j := i + 2
			for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
				j++
			}
			i = j
		case ']':
			j := i + 2
			for j < len(s) && s[j] != 0x07 && !(s[j] == 0x1b && j+1 < len(s) && s[j+1] == '\\') {
				j++
			}
			if j < len(s) && s[j] == 0x1b {
				j++
			}
			i = j
		default:
			i++
		}
	}
	return b.String()
}

// auditActions lists the actions of the audit log, oldest first.
func (e *env) audit(action string) []store.Event {
	e.t.Helper()
	evs, err := e.store.ListAudit(context.Background(), store.AuditQuery{ActionPrefix: action, Limit: 1000, Oldest: true})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
