package web

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"backroom/server/httpd"
	"backroom/store"
	"backroom/store/clocktest"
)

var ctxb = context.Background()

type clock = clocktest.Clock

var cliActor = store.Actor{Name: "root", Role: store.RoleAdmin, Channel: store.ChannelCLI}

// testEnv is a real store on a temp directory and the web admin mounted on
// a real loopback listener, as the server mounts it.
type testEnv struct {
	t     *testing.T
	st    *store.Store
	clock *clock
	h     *Handler
	srv   *httptest.Server
	root  string // the listener's URL, without a path
	path  string // the admin's path
}

// testPath is the admin path of the tests (not the default, to show the
// default is not wired in).
const testPath = "/ops-7f3kq9/"

// options tweak a test env's configuration.
type options struct {
	cfg     func(*Config)
	storeMo func(*store.Options)
	tls     bool
}

func newEnv(t *testing.T, o options) *testEnv {
	t.Helper()
	base := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	step := store.TOTPStep(base)
	c := clocktest.New(time.Unix(step*int64(store.TOTPPeriod/time.Second)+10, 0).UTC())
	so := store.Options{Dir: t.TempDir(), MasterKey: store.NewMasterKey(), Now: c.Now}
	if o.storeMo != nil {
		o.storeMo(&so)
	}
	st, err := store.Open(ctxb, so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := Config{
		Store:            st,
		Path:             testPath,
		Allow:            []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		Limits:           store.WebSessionLimits{Idle: 30 * time.Minute, MaxAge: 12 * time.Hour},
		Now:              c.Now,
		WebhookSecretSet: true,
	}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	mux := httpd.Handler(st, log, httpd.Routes{Admin: h, AdminPath: cfg.Path})
	var srv *httptest.Server
	if o.tls {
		srv = httptest.NewTLSServer(mux)
	} else {
		srv = httptest.NewServer(mux)
	}
	t.Cleanup(srv.Close)
	return &testEnv{t: t, st: st, clock: c, h: h, srv: srv, root: srv.URL, path: cfg.Path}
}

// member is a staff member of a test.
type member struct {
	name, role, secret, fp, password string
}

// add adds a staff member (with a key and a TOTP secret), and a web
// password when pw is set.
func (e *testEnv) add(name string, admin bool, pw string) member {
	e.t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := e.st.AddStaff(ctxb, cliActor, store.AddStaffRequest{Name: name, Key: k, Admin: admin})
	if err != nil {
		e.t.Fatal(err)
	}
	m := member{name: name, role: res.Role, secret: res.Enrollment.Secret, fp: res.Fingerprint, password: pw}
	if pw != "" {
		if err := e.st.SetPassword(ctxb, cliActor, name, pw); err != nil {
			e.t.Fatal(err)
		}
	}
	return m
}

// code is the member's current TOTP code (each step is accepted once:
// advance the clock by a step between two uses).
func (e *testEnv) code(m member) string {
	e.t.Helper()
	c, err := store.CodeFor(m.secret, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// nextStep moves the clock to the next TOTP step.
func (e *testEnv) nextStep() { e.clock.Advance(store.TOTPPeriod) }

// link issues a sign-in link token for m, as the console does.
func (e *testEnv) link(m member) string {
	e.t.Helper()
	tok, _, err := e.st.CreateSignInLink(ctxb, store.Actor{Name: m.name, Role: m.role, Channel: store.ChannelSSH, RemoteAddr: "198.51.100.9", SessionID: "s1"})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// events returns the audit rows with an action, newest first.
func (e *testEnv) events(action string) []store.Event {
	e.t.Helper()
	evs, err := e.st.ListAudit(ctxb, store.AuditQuery{ActionPrefix: action, Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []store.Event
	for _, ev := range evs {
		if ev.Action == action {
			out = append(out, ev)
		}
	}
	return out
}

// browser is a cookie-keeping client that does not follow redirects, and
// sends what a browser sends with a same-origin form.
type browser struct {
	t      *testing.T
	e      *testEnv
	c      *http.Client
	header http.Header // added to every request (X-Forwarded-For, …)
}

func (e *testEnv) browser() *browser {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{
		Transport:     e.srv.Client().Transport, // trusts the TLS server's certificate
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
	return &browser{t: e.t, e: e, c: c, header: http.Header{}}
}

// resp is an answer, read whole.
type resp struct {
	code int
	body string
	hdr  http.Header
}

func (r resp) location() string { return r.hdr.Get("Location") }

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the form token of the page's first form.
func (r resp) csrf(t *testing.T) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("no csrf field in the page (%d):\n%s", r.code, r.body)
	}
	return m[1]
}

// do sends a request to the admin's path + rel (or to an absolute path
// on the listener when rel starts with "/").
func (b *browser) do(method, rel string, body io.Reader, hdr http.Header) resp {
	b.t.Helper()
	u := b.e.root + b.e.path + rel
	if strings.HasPrefix(rel, "/") {
		u = b.e.root + rel
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		b.t.Fatal(err)
	}
	for k, vs := range b.header {
		req.Header[k] = vs
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp{code: res.StatusCode, body: string(data), hdr: res.Header}
}

func (b *browser) get(rel string) resp { b.t.Helper(); return b.do("GET", rel, nil, nil) }

// post sends a form as a browser does from a page of the same origin.
func (b *browser) post(rel string, form url.Values) resp {
	b.t.Helper()
	return b.postWith(rel, form, http.Header{"Origin": {b.e.root}, "Sec-Fetch-Site": {"same-origin"}})
}

func (b *browser) postWith(rel string, form url.Values, hdr http.Header) resp {
	b.t.Helper()
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	for k, vs := range hdr {
		h[k] = vs
	}
	return b.do("POST", rel, strings.NewReader(form.Encode()), h)
}

// signInLink signs the browser in with a console-issued link.
func (b *browser) signInLink(m member) {
	b.t.Helper()
	tok := b.e.link(m)
	page := b.get("link/" + tok)
	if page.code != 200 {
		b.t.Fatalf("link page = %d", page.code)
	}
	r := b.post("link/"+tok, url.Values{"csrf": {page.csrf(b.t)}})
	if r.code != http.StatusSeeOther || r.location() != b.e.path {
		b.t.Fatalf("redeeming a link = %d → %q:\n%s", r.code, r.location(), r.body)
	}
}

// signIn posts the sign-in form (after loading it for its token).
func (b *browser) signIn(name, pw, code string) resp {
	b.t.Helper()
	page := b.get("signin")
	if page.code != 200 {
		b.t.Fatalf("sign-in page = %d", page.code)
	}
	return b.post("signin", url.Values{"csrf": {page.csrf(b.t)}, "name": {name}, "password": {pw}, "code": {code}})
}

// token is the session's form token, read from a signed-in page.
func (b *browser) token() string {
	b.t.Helper()
	r := b.get("")
	if r.code != 200 {
		b.t.Fatalf("dashboard = %d (%s)", r.code, r.location())
	}
	return r.csrf(b.t)
}

// cookie returns the value of a cookie the browser holds for the admin.
func (b *browser) cookie(name string) string {
	u, _ := url.Parse(b.e.root + b.e.path)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}
