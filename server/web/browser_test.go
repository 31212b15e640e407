package web_test

// The web admin in a real browser: Debian's headless chromium, driven with
// chromedp, against the real server (server.New on loopback ports, a real
// store in a temp dir, stripe-mock as Stripe's API, the real SSH console
// for sign-in links). One browser and one server for the whole walk; each
// step is a subtest that needs the ones before it.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stripe/stripe-go/v76/webhook"
	gossh "golang.org/x/crypto/ssh"

	"backroom/server"
	"backroom/server/stripeapi"
	"backroom/server/stripeapi/stripemock"
	"backroom/server/web/browsertest"
	"backroom/server/webhooks"
	"backroom/store"
	"backroom/store/clocktest"
)

// adminPath is the web admin's path in these tests (not the default, so
// nothing can lean on it).
const adminPath = "/ops-q7x2k9-admin/"

// webhookSecret signs the test's webhook delivery.
const webhookSecret = "whsec_browserTestSecret0123456789"

// cliActor adds the test's staff members, as `backroom staff add` does.
var cliActor = store.Actor{Name: "root", Role: store.RoleAdmin, Channel: store.ChannelCLI}

// logBuf keeps everything the server and the store log, to check that no
// secret reaches it.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// member is a staff member with their SSH key and TOTP secret.
type member struct {
	name   string
	signer gossh.Signer
	secret string
}

// browserEnv is the server, its store and the browser of the walk.
type browserEnv struct {
	t     *testing.T       // the running step: each subtest sets it first
	ctx   context.Context  // the browser's tab
	clock *clocktest.Clock // each TOTP code is used once: a step that needs a fresh code moves it on a period
	st    *store.Store
	srv   *server.Server
	logs  *logBuf
	admin string // the admin's URL: http://127.0.0.1:port + adminPath
	shots string // where screenshots go
	n     int    // screenshots taken, for their order
}

func newBrowserEnv(t *testing.T) *browserEnv {
	t.Helper()
	e := &browserEnv{t: t, clock: clocktest.New(time.Now()), logs: &logBuf{}}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	stripe := stripeapi.New(stripeapi.Config{APIBase: stripemock.Start(t), MaxNetworkRetries: -1})
	dir := t.TempDir()
	st, err := store.Open(context.Background(), store.Options{Dir: dir, MasterKey: store.NewMasterKey(),
		Now: e.clock.Now, Logger: log, KeyChecker: stripe})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.st = st
	e.srv, err = server.New(server.Config{
		Store: st, Logger: log, Now: e.clock.Now,
		SSHAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", HostKeyPath: filepath.Join(dir, "host_key"),
		WebhookSecrets: []webhooks.Secret{webhookSecret},
		AdminPath:      adminPath,
		AdminAllow:     []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	e.admin = "http://" + e.srv.HTTPAddr() + adminPath
	if got := e.srv.AdminURL(); got != e.admin {
		t.Fatalf("admin URL %q, want %q", got, e.admin)
	}
	e.shots = os.Getenv("BACKROOM_SCREENSHOTS")
	if e.shots == "" {
		e.shots = t.TempDir()
	} else if err := os.MkdirAll(e.shots, 0o755); err != nil {
		t.Fatal(err)
	}
	e.ctx = browsertest.Start(t)
	return e
}

// addStaff adds a member with a fresh ed25519 key; enrolled in TOTP at once.
func (e *browserEnv) addStaff(name string, admin bool) member {
	e.t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := e.st.AddStaff(context.Background(), cliActor, store.AddStaffRequest{Name: name, Key: signer.PublicKey(), Admin: admin})
	if err != nil || res.Enrollment == nil {
		e.t.Fatalf("add %s: %v", name, err)
	}
	return member{name: name, signer: signer, secret: res.Enrollment.Secret}
}

// code moves the clock to the next TOTP period and returns m's code there
// (a code is accepted once).
func (e *browserEnv) code(m member) string {
	e.t.Helper()
	e.clock.Advance(store.TOTPPeriod)
	c, err := store.CodeFor(m.secret, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// --- the browser ---------------------------------------------------------------

// visit opens url, checks the status of the page it ends on, and returns
// that page's text (after any redirect).
func (e *browserEnv) visit(url string, status int64) string {
	e.t.Helper()
	resp := browsertest.Run(e.t, e.ctx, chromedp.NavigateResponse(url))
	e.checkResponse(url, resp, status)
	return browsertest.BodyText(e.t, e.ctx)
}

// submit clicks the button sel and waits for the page its form leads to;
// it checks that page's status (after redirects) and returns its text.
func (e *browserEnv) submit(sel string, status int64) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, browsertest.Timeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		e.t.Fatalf("submit %s: %v", sel, err)
	}
	e.checkResponse(sel, resp, status)
	return browsertest.BodyText(e.t, e.ctx)
}

// checkResponse checks a page's status and, for the admin's pages, the
// headers every page must carry.
func (e *browserEnv) checkResponse(what string, resp *network.Response, status int64) {
	e.t.Helper()
	if resp == nil {
		e.t.Fatalf("%s: no response", what)
	}
	if resp.Status != status {
		e.t.Fatalf("%s: ended on %s with %d, want %d; page:\n%s", what, resp.URL, resp.Status, status, browsertest.BodyText(e.t, e.ctx))
	}
	if !strings.HasPrefix(resp.URL, e.admin) {
		return
	}
	for name, want := range map[string]string{
		"Cache-Control":           "no-store",
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"Content-Security-Policy": "default-src 'self'",
	} {
		if got := header(resp, name); !strings.Contains(got, want) {
			e.t.Errorf("%s (%s): %s = %q, want %q", what, resp.URL, name, got, want)
		}
	}
	if csp := header(resp, "Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
		e.t.Errorf("%s: Content-Security-Policy %q", what, csp)
	}
}

func header(resp *network.Response, name string) string {
	for k, v := range resp.Headers {
		if strings.EqualFold(k, name) {
			s, _ := v.(string)
			return s
		}
	}
	return ""
}

// location is the tab's URL.
func (e *browserEnv) location() string {
	e.t.Helper()
	return browsertest.Run(e.t, e.ctx, chromedp.Location())
}

// page checks the page in the tab: it shows every text in wants, it
// rendered with its stylesheet, and a screenshot of it is saved.
func (e *browserEnv) page(name, body string, wants ...string) {
	e.t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			e.t.Errorf("%s page: no %q in:\n%s", name, w, body)
		}
	}
	e.n++
	browsertest.Screenshot(e.t, e.ctx, e.shots, fmt.Sprintf("%02d-%s", e.n, name))
	browsertest.RequireStylesheet(e.t, e.ctx, name)
}

// fill types text into the input sel (cleared first).
func (e *browserEnv) fill(sel, text string) {
	e.t.Helper()
	browsertest.Do(e.t, e.ctx, chromedp.Clear(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), text))
}

// eval evaluates a JavaScript expression in the tab.
func (e *browserEnv) eval(js string) string {
	e.t.Helper()
	return browsertest.Run(e.t, e.ctx, chromedp.Evaluate[string](js))
}

// who is the signed-in member and role the page's header names.
func (e *browserEnv) who() string {
	e.t.Helper()
	return strings.Join(strings.Fields(e.eval(`(document.querySelector("header .who") || {}).textContent || ""`)), " ")
}

// html is the page's whole markup (hidden inputs and attributes included).
func (e *browserEnv) html() string {
	e.t.Helper()
	return e.eval(`document.documentElement.outerHTML`)
}

// cookie is the browser's cookie name for the admin, if it holds one.
func (e *browserEnv) cookie(name string) (network.Cookie, bool) {
	e.t.Helper()
	cookies := browsertest.Run(e.t, e.ctx, func(ctx context.Context, t *chromedp.Target) ([]network.Cookie, error) {
		res, err := cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{URLs: []string{e.admin}})
		var out []network.Cookie
		for _, c := range res.Cookies {
			if c != nil {
				out = append(out, *c)
			}
		}
		return out, err
	})
	for _, c := range cookies {
		if c.Name == name {
			return c, true
		}
	}
	return network.Cookie{}, false
}

// waitNavigated waits until the tab has loaded a page whose URL starts
// with prefix (a navigation the page started itself), and returns that
// page's HTTP status.
func (e *browserEnv) waitNavigated(prefix string) int {
	e.t.Helper()
	deadline := time.Now().Add(browsertest.Timeout)
	last := ""
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(e.ctx, 2*time.Second)
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.readyState + " " + location.href`))
		cancel()
		if err == nil {
			last = s
			if strings.HasPrefix(s, "complete "+prefix) {
				return int(browsertest.Run(e.t, e.ctx, chromedp.Evaluate[float64](`performance.getEntriesByType("navigation")[0].responseStatus`)))
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("the tab never loaded %s… (last: %q)", prefix, last)
	return 0
}

// --- the audit log ---------------------------------------------------------------

func (e *browserEnv) audit(action string) []store.Event {
	e.t.Helper()
	evs, err := e.st.ListAudit(context.Background(), store.AuditQuery{ActionPrefix: action, Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

// auditBy counts the rows of action by actor through channel.
func (e *browserEnv) auditBy(action, actor, channel string) int {
	n := 0
	for _, ev := range e.audit(action) {
		if ev.Action == action && ev.Actor == actor && ev.Channel == channel {
			n++
		}
	}
	return n
}

// --- the SSH console -------------------------------------------------------------------

// screen is what a console session wrote.
type screen struct{ logBuf }

// text is the output with the escape sequences removed.
func (s *screen) text() string { return ansi.Strip(s.String()) }

// waitFor waits until ok holds for the console's text.
func (s *screen) waitFor(t *testing.T, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if txt := s.text(); ok(txt) {
			return txt
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the console never showed %s; it showed:\n%s", what, s.text())
	return ""
}

// console logs m in over SSH (key, then the TOTP code) and opens the
// console on a width×height terminal.
func (e *browserEnv) console(m member, width, height int) (*screen, io.Writer) {
	t := e.t
	t.Helper()
	code := e.code(m)
	cfg := &gossh.ClientConfig{
		User: m.name,
		Auth: []gossh.AuthMethod{
			gossh.PublicKeys(m.signer),
			gossh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = code
				}
				return answers, nil
			}),
		},
		HostKeyCallback: func(_ string, _ net.Addr, key gossh.PublicKey) error {
			if gossh.FingerprintSHA256(key) != e.srv.HostKeyFingerprint() {
				return fmt.Errorf("host key %s is not the server's", gossh.FingerprintSHA256(key))
			}
			return nil
		},
		Timeout: 10 * time.Second,
	}
	client, err := gossh.Dial("tcp", e.srv.SSHAddr(), cfg)
	if err != nil {
		t.Fatalf("ssh login as %s: %v", m.name, err)
	}
	t.Cleanup(func() { client.Close() })
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	out := &screen{}
	sess.Stdout, sess.Stderr = out, out
	in, err := sess.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.RequestPty("xterm-256color", height, width, gossh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	return out, in
}

// shownLink reads a URL that starts with prefix off the console's text:
// the line that starts it and, while a line is full (width columns), the
// next one, which continues it.
func shownLink(text, prefix string, width int) string {
	lines := strings.Split(text, "\n")
	for i := range lines {
		line := strings.Trim(lines[i], "\r")
		j := strings.Index(line, prefix)
		if j < 0 {
			continue
		}
		url := line[j:]
		for len(line) == width && i+1 < len(lines) {
			i++
			line = strings.Trim(lines[i], "\r")
			url += line
		}
		return url
	}
	return ""
}

// --- the walk ------------------------------------------------------------------------

// TestBrowser walks the web admin in chromium: password + TOTP sign-in,
// every page (screenshot, stylesheet, security headers), a key update seen
// on the audit page, forged cross-origin forms refused, sign-out that
// leaves nothing behind the back button, and sign-in with a link issued
// from the real SSH console, which works once.
func TestBrowser(t *testing.T) {
	e := newBrowserEnv(t)
	ctx := context.Background()
	alice := e.addStaff("alice", true)
	bob := e.addStaff("bob", false)
	const password = "quiet-harbour-lantern-47"
	if err := e.st.SetPassword(ctx, cliActor, "alice", password); err != nil {
		t.Fatal(err)
	}
	stripeKey := testStripeKey(t)
	_, keyInfo, err := store.ParseStripeKey(stripeKey)
	if err != nil {
		t.Fatal(err)
	}
	evilKey := testStripeKey(t)
	var sessionToken, linkToken string

	// A customer and its event, delivered as Stripe would.
	now := e.clock.Now()
	payload := fmt.Appendf(nil, `{"id":"evt_Browser1","object":"event","type":"customer.created","api_version":"2023-10-16","created":%d,"livemode":false,`+
		`"data":{"object":{"id":"cus_Browser1","object":"customer","name":"Ada Browserfield","email":"ada@example.com","created":%d}}}`, now.Unix(), now.Unix())
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: webhookSecret, Timestamp: now})
	req, _ := http.NewRequest("POST", "http://"+e.srv.HTTPAddr()+"/webhooks/stripe", bytes.NewReader(payload))
	req.Header.Set("Stripe-Signature", signed.Header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("webhook delivery = %d %q", resp.StatusCode, msg)
	}

	ok := t.Run("SignInWithPasswordAndCode", func(t *testing.T) {
		e.t = t
		// A private page without a session is the sign-in page.
		body := e.visit(e.admin, 200)
		if loc := e.location(); loc != e.admin+"signin" {
			t.Fatalf("the dashboard without a session ended on %s", loc)
		}
		e.page("signin", body, "Sign in", "Name", "Password", "Code from your authenticator app")
		if strings.Contains(body, "Recent audit") {
			t.Fatalf("the sign-in page shows the dashboard:\n%s", body)
		}
		e.fill("#name", "alice")
		e.fill("#password", password)
		e.fill("#code", e.code(alice))
		body = e.submit("main form button[type=submit]", 200)
		if loc := e.location(); loc != e.admin {
			t.Fatalf("signed in, the browser is on %s", loc)
		}
		e.page("dashboard", body, "Dashboard", "Recent audit", "Sign out", "Signing secret")
		if who := e.who(); who != "alice admin" {
			t.Errorf("signed in as %q, want alice admin", who)
		}
		c, ok := e.cookie("backroom_session")
		if !ok || c.Value == "" {
			t.Fatal("no session cookie after sign-in")
		}
		if !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict || c.Path != "/" || !c.Session {
			t.Errorf("session cookie: HttpOnly %v, SameSite %q, Path %q, browser-session %v", c.HTTPOnly, c.SameSite, c.Path, c.Session)
		}
		sessionToken = c.Value
		if n := e.auditBy(store.ActionSessionStart, "alice", store.ChannelWeb); n != 1 {
			t.Errorf("%d web session.start rows for alice, want 1", n)
		}
	})
	if !ok {
		t.FailNow()
	}

	ok = t.Run("EveryPage", func(t *testing.T) {
		e.t = t
		e.page("key", e.visit(e.admin+"key", 200), "Stripe API key", "Update the key", "No Stripe key is set")
		e.page("clients", e.visit(e.admin+"clients", 200), "Clients", "cus_Browser1", "Ada Browserfield")
		browsertest.Do(t, e.ctx, chromedp.Click(chromedp.CSS(`a[href$="clients/cus_Browser1"]`)), chromedp.WaitVisible(chromedp.CSS("h1")))
		e.page("client", browsertest.BodyText(t, e.ctx), "cus_Browser1", "Ada Browserfield", "ada@example.com", "recorded in the audit log")
		if n := e.auditBy("client.viewed", "alice", store.ChannelWeb); n != 1 {
			t.Errorf("%d web client.viewed rows for alice, want 1", n)
		}
		e.page("webhooks-failed", e.visit(e.admin+"webhooks", 200), "Webhook events", "No failed events")
		e.page("webhooks-all", e.visit(e.admin+"webhooks?status=all", 200), "evt_Browser1", "customer.created", "processed")
		e.page("webhook", e.visit(e.admin+"webhooks/evt_Browser1", 200), "evt_Browser1", "Deliveries", "Payload", "cus_Browser1")
		body := e.submit("main form button[type=submit]", 200)
		e.page("webhook-replayed", body, "Replayed: the event was processed.")
		if n := e.auditBy(store.ActionWebhookReplayed, "alice", store.ChannelWeb); n != 1 {
			t.Errorf("%d web webhook.replayed rows for alice, want 1", n)
		}
		e.page("audit", e.visit(e.admin+"audit", 200), "Audit log", "client.viewed", "webhook.replayed", "session.start")
		e.page("sessions", e.visit(e.admin+"sessions", 200), "Web sessions", "alice", "you", "SSH sessions")
	})
	if !ok {
		t.FailNow()
	}

	ok = t.Run("UpdateKeyThenAudit", func(t *testing.T) {
		e.t = t
		e.visit(e.admin+"key", 200)
		e.fill("#key", stripeKey)
		e.fill("#code", e.code(alice))
		body := e.submit("main form button[type=submit]", 200)
		if loc := e.location(); loc != e.admin+"key?done=key-updated" {
			t.Errorf("after the update the browser is on %s", loc)
		}
		e.page("key-updated", body, "Stripe key updated.", keyInfo.Masked, "TEST")
		if ks, err := e.st.KeyStatus(ctx); err != nil || ks.Masked != keyInfo.Masked || ks.SetBy != "alice" {
			t.Fatalf("stored key %+v %v, want %s set by alice", ks, err, keyInfo.Masked)
		}
		if strings.Contains(e.html(), stripeKey) {
			t.Error("the key page shows the key itself")
		}
		body = e.visit(e.admin+"audit", 200)
		e.page("audit-key-updated", body, store.ActionKeyUpdated, keyInfo.Masked, "alice", "web")
		if strings.Contains(e.html(), stripeKey) {
			t.Error("the audit page shows the key itself")
		}
		if n := e.auditBy(store.ActionKeyUpdated, "alice", store.ChannelWeb); n != 1 {
			t.Errorf("%d web key.updated rows for alice, want 1", n)
		}
	})
	if !ok {
		t.FailNow()
	}

	ok = t.Run("CrossOriginFormRefused", func(t *testing.T) {
		e.t = t
		// The attacker even knows the session's form token and a valid
		// code: only the origin check stands in the way.
		e.visit(e.admin+"key", 200)
		csrf := e.eval(`document.querySelector('main form input[name="csrf"]').value`)
		code := e.code(alice)
		keyRows := e.auditBy(store.ActionKeyUpdated, "alice", store.ChannelWeb)
		evil := httptest.NewServer(evilSite(e.admin, csrf, code, evilKey))
		t.Cleanup(evil.Close)
		_, port, _ := net.SplitHostPort(evil.Listener.Addr().String())

		for _, attack := range []struct{ name, url string }{
			// Same site (cookies go along), another origin.
			{"key-same-site", evil.URL + "/key"},
			// Another site altogether.
			{"signout-cross-site", "http://localhost:" + port + "/signout"},
		} {
			browsertest.Do(t, e.ctx, chromedp.Navigate(attack.url))
			status := e.waitNavigated(e.admin)
			body := browsertest.BodyText(t, e.ctx)
			if status != http.StatusForbidden || !strings.Contains(body, "request refused") {
				t.Errorf("%s: the forged form got %d:\n%s", attack.name, status, body)
			}
			if strings.Contains(body, "alice") {
				t.Errorf("%s: the refusal shows the member:\n%s", attack.name, body)
			}
			e.page("refused-"+attack.name, body)
		}

		if ks, err := e.st.KeyStatus(ctx); err != nil || ks.Masked != keyInfo.Masked {
			t.Errorf("the forged form changed the key: %+v %v", ks, err)
		}
		if n := e.auditBy(store.ActionKeyUpdated, "alice", store.ChannelWeb); n != keyRows {
			t.Errorf("key.updated rows %d → %d after the forged form", keyRows, n)
		}
		if n := e.auditBy(store.ActionSessionEnd, "alice", store.ChannelWeb); n != 0 {
			t.Errorf("the forged sign-out ended the session (%d session.end rows)", n)
		}
		body := e.visit(e.admin, 200)
		if !strings.Contains(body, "alice") || !strings.Contains(body, "Recent audit") || strings.Contains(body, "evil") {
			t.Errorf("after the forged forms the dashboard is:\n%s", body)
		}
		if c, ok := e.cookie("backroom_session"); !ok || c.Value != sessionToken {
			t.Error("the forged forms changed the session cookie")
		}
	})
	if !ok {
		t.FailNow()
	}

	ok = t.Run("SignOutThenBack", func(t *testing.T) {
		e.t = t
		e.visit(e.admin+"audit", 200)
		body := e.visit(e.admin, 200)
		if !strings.Contains(body, keyInfo.Masked) {
			t.Fatalf("the dashboard does not show the key before sign-out:\n%s", body)
		}
		body = e.submit("form.signout button", 200)
		if loc := e.location(); loc != e.admin+"signin?done=signed-out" {
			t.Errorf("after sign-out the browser is on %s", loc)
		}
		e.page("signed-out", body, "You are signed out.", "Sign in")
		if n := e.auditBy(store.ActionSessionEnd, "alice", store.ChannelWeb); n != 1 {
			t.Errorf("%d web session.end rows for alice, want 1", n)
		}
		if _, ok := e.cookie("backroom_session"); ok {
			t.Error("the session cookie survived sign-out")
		}

		private := []string{"alice", "Recent audit", keyInfo.Masked, store.ActionKeyUpdated, "Ada Browserfield", "Sign out"}
		nothingPrivate := func(what, body string) {
			t.Helper()
			for _, p := range private {
				if strings.Contains(body, p) {
					t.Errorf("%s shows %q:\n%s", what, p, body)
				}
			}
			if !strings.Contains(body, "Sign in") {
				t.Errorf("%s is not the sign-in page:\n%s", what, body)
			}
		}
		browsertest.Do(t, e.ctx, chromedp.NavigateBack())
		body = browsertest.BodyText(t, e.ctx)
		nothingPrivate("the back button ("+e.location()+")", body)
		e.page("back-after-signout", body)
		browsertest.Do(t, e.ctx, chromedp.NavigateBack())
		nothingPrivate("twice back ("+e.location()+")", browsertest.BodyText(t, e.ctx))

		body = e.visit(e.admin+"audit", 200)
		if loc := e.location(); loc != e.admin+"signin" {
			t.Errorf("the audit page after sign-out ended on %s", loc)
		}
		nothingPrivate("the audit page after sign-out", body)

		// The old cookie is worthless: the session is gone server-side.
		req, _ := http.NewRequest("GET", e.admin, nil)
		req.AddCookie(&http.Cookie{Name: "backroom_session", Value: sessionToken})
		noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != adminPath+"signin" || bytes.Contains(page, []byte("alice")) {
			t.Errorf("the signed-out cookie got %d (Location %q)", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	if !ok {
		t.FailNow()
	}

	t.Run("SignInWithConsoleLink", func(t *testing.T) {
		e.t = t
		const width = 80
		out, in := e.console(bob, width, 30)
		out.waitFor(t, "the home screen", func(s string) bool { return strings.Contains(s, "w issues a one-time sign-in link") })
		if _, err := io.WriteString(in, "w"); err != nil {
			t.Fatal(err)
		}
		prefix := e.admin + "link/"
		text := out.waitFor(t, "a sign-in link", func(s string) bool {
			i := strings.Index(s, prefix)
			return i >= 0 && strings.Contains(s[i:], "expires in")
		})
		link := shownLink(text, prefix, width)
		if !regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `[A-Za-z0-9_-]{43}$`).MatchString(link) {
			t.Fatalf("link read off the console: %q; console:\n%s", link, text)
		}
		if len(link) <= width {
			t.Errorf("the link (%d characters) fits on one line: the test does not join wrapped lines", len(link))
		}
		linkToken = strings.TrimPrefix(link, prefix)
		if n := e.auditBy(store.ActionSignInLinkIssued, "bob", store.ChannelSSH); n != 1 {
			t.Errorf("%d signin_link.issued rows for bob, want 1", n)
		}

		e.page("link", e.visit(link, 200), "Sign in with a link", "works once")
		body := e.submit("main form button[type=submit]", 200)
		if loc := e.location(); loc != e.admin {
			t.Fatalf("signed in with the link, the browser is on %s", loc)
		}
		e.page("dashboard-bob", body, "Dashboard", "Recent audit")
		if who := e.who(); who != "bob staff" {
			t.Errorf("signed in as %q, want bob staff", who)
		}
		if n := e.eval(`String(document.querySelectorAll('nav a[href$="sessions"]').length)`); n != "0" {
			t.Errorf("a staff member's menu links the admins' Sessions page (%s links)", n)
		}
		if n := e.auditBy(store.ActionSessionStart, "bob", store.ChannelWeb); n != 1 {
			t.Errorf("%d web session.start rows for bob, want 1", n)
		}

		// The same link again: its page still shows (a GET never uses a
		// link), its button is refused.
		e.visit(link, 200)
		body = e.submit("main form button[type=submit]", http.StatusForbidden)
		e.page("link-reused", body, "not valid")
		if strings.Contains(body, "Recent audit") {
			t.Errorf("a used link signed in again:\n%s", body)
		}
		sessions, err := e.st.ListWebSessions(ctx)
		if err != nil || len(sessions) != 1 || sessions[0].Name != "bob" {
			t.Errorf("web sessions after the reused link: %+v %v", sessions, err)
		}
	})

	// Nothing secret reached the logs.
	logs := e.logs.String()
	for what, secret := range map[string]string{
		"the password": password, "the Stripe key": stripeKey, "the forged key": evilKey,
		"alice's TOTP secret": alice.secret, "bob's TOTP secret": bob.secret, "the webhook secret": webhookSecret,
		"the session token": sessionToken, "the link token": linkToken,
	} {
		if secret != "" && strings.Contains(logs, secret) {
			t.Errorf("the logs hold %s", what)
		}
	}
}

// evilSite is another origin's site whose pages post forged forms to the
// admin as soon as they load (from a script file: no inline script needed).
func evilSite(admin, csrf, code, key string) http.Handler {
	mux := http.NewServeMux()
	form := func(action string, fields map[string]string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var b strings.Builder
			b.WriteString(`<!doctype html><html><head><title>Win a prize</title><script src="/go.js" defer></script></head><body>`)
			fmt.Fprintf(&b, `<form method="post" action="%s">`, html.EscapeString(action))
			for k, v := range fields {
				fmt.Fprintf(&b, `<input type="hidden" name="%s" value="%s">`, html.EscapeString(k), html.EscapeString(v))
			}
			b.WriteString(`</form><p>evil page</p></body></html>`)
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, b.String())
		}
	}
	mux.HandleFunc("GET /key", form(admin+"key", map[string]string{"csrf": csrf, "key": key, "code": code}))
	mux.HandleFunc("GET /signout", form(admin+"signout", map[string]string{"csrf": csrf}))
	mux.HandleFunc("GET /go.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		io.WriteString(w, `window.addEventListener("load", function () { document.forms[0].submit(); });`)
	})
	return mux
}

// testStripeKey is a fresh, valid-looking test secret key.
func testStripeKey(t *testing.T) string {
	t.Helper()
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return "sk_test_" + string(b)
}
