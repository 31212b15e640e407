package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
	gossh "golang.org/x/crypto/ssh"

	"backroom/server/webhooks"
	"backroom/store"
	"backroom/store/clocktest"
)

// TestWebhooksWired: the HTTP listener serves the webhook endpoint with
// the configured secrets, the console is told a secret is set, and Run
// prunes old webhook records as soon as it starts.
func TestWebhooksWired(t *testing.T) {
	dir := t.TempDir()
	clock := clocktest.New(time.Now().Add(-40 * 24 * time.Hour))
	st, err := store.Open(context.Background(), store.Options{Dir: dir, MasterKey: store.NewMasterKey(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// An event received 40 days ago.
	old := store.IncomingEvent{EventID: "evt_old", Type: "ping", Payload: []byte(`{}`)}
	if _, err := st.ReceiveWebhook(context.Background(), store.WebhookAttempt{ReceivedAt: clock.Now()}, old, webhooks.Process); err != nil {
		t.Fatal(err)
	}
	clock.Set(time.Now())

	const secret = "whsec_wiredSecret42"
	srv, err := New(Config{
		Store: st, Now: clock.Now, SSHAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		HostKeyPath:    filepath.Join(dir, "host_key"),
		WebhookSecrets: []webhooks.Secret{secret},
		WebhookMaxBody: 8 << 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !srv.WebhookSecretSet() {
		t.Error("WebhookSecretSet = false with a secret")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := st.GetWebhook(context.Background(), "evt_old"); store.ErrorCode(err) == store.CodeNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the old event was not pruned at start")
		}
		time.Sleep(10 * time.Millisecond)
	}

	url := "http://" + srv.HTTPAddr() + "/webhooks/stripe"
	body := fmt.Appendf(nil, `{"id":"evt_wired","type":"customer.created","created":%d,"data":{"object":{"id":"cus_Wired","object":"customer"}}}`,
		time.Now().Unix())
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Stripe-Signature", webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret}).Header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(msg)) != "processed" {
		t.Fatalf("POST = %d %q", resp.StatusCode, msg)
	}
	if c, err := st.GetClient(context.Background(), "cus_Wired"); err != nil || c.Source != store.SourceWebhook {
		t.Errorf("client %+v %v", c, err)
	}
	resp, err = http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET = %d (Allow %q)", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestWebhookSecretNotSet(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(context.Background(), store.Options{Dir: dir, MasterKey: store.NewMasterKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := New(Config{Store: st, SSHAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", HostKeyPath: filepath.Join(dir, "host_key")})
	if err != nil {
		t.Fatal(err)
	}
	if srv.WebhookSecretSet() {
		t.Error("WebhookSecretSet = true without a secret")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	resp, err := http.Post("http://"+srv.HTTPAddr()+"/webhooks/stripe", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || strings.TrimSpace(string(msg)) != "webhook secret not set" {
		t.Errorf("POST = %d %q", resp.StatusCode, msg)
	}
}

// webServer starts a server with the web admin for a test.
func webServer(t *testing.T, st *store.Store, dir string, mod func(*Config)) *Server {
	t.Helper()
	cfg := Config{
		Store: st, SSHAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", HostKeyPath: filepath.Join(dir, "host_key"),
		AdminPath:  "/ops-4k2m/",
		AdminAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return srv
}

func openStore(t *testing.T, now func() time.Time) (*store.Store, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), store.Options{Dir: dir, MasterKey: store.NewMasterKey(), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, dir
}

func addStaff(t *testing.T, st *store.Store, name string) {
	t.Helper()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	k, _ := gossh.NewPublicKey(pub)
	if _, err := st.AddStaff(context.Background(), store.Actor{Name: "root", Role: store.RoleAdmin, Channel: store.ChannelCLI},
		store.AddStaffRequest{Name: name, Key: k, Admin: true}); err != nil {
		t.Fatal(err)
	}
}

// signInWithLink follows a console sign-in link as a browser does: the
// page, then its button. It returns the browser.
func signInWithLink(t *testing.T, client *http.Client, link string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Transport: client.Transport, Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if resp.StatusCode != 200 || m == nil {
		t.Fatalf("link page %s = %d", link, resp.StatusCode)
	}
	u, _ := url.Parse(link)
	req, _ := http.NewRequest("POST", link, strings.NewReader(url.Values{"csrf": {string(m[1])}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", u.Scheme+"://"+u.Host)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("redeeming %s = %d", link, resp.StatusCode)
	}
	return c
}

// TestWebAdminWired: the web admin is served on the HTTP listener at its
// path only; the console's sign-in URL is the public URL, the path and
// the token, and it signs a browser in; removing a member's key ends their
// web sessions; expired sessions are pruned as Run starts.
func TestWebAdminWired(t *testing.T) {
	clock := clocktest.New(time.Now().Add(-24 * time.Hour))
	st, dir := openStore(t, clock.Now)
	addStaff(t, st, "alice")
	// A session from yesterday, never used since.
	if _, _, err := st.CreateWebSession(context.Background(), store.Actor{Name: "alice", Role: store.RoleAdmin, Channel: store.ChannelWeb}, "link", "", store.WebSessionLimits{Idle: time.Hour, MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	clock.Set(time.Now())

	srv := webServer(t, st, dir, func(c *Config) { c.Now = clock.Now })
	base := "http://" + srv.HTTPAddr()
	if srv.AdminAddr() != srv.HTTPAddr() || srv.AdminURL() != base+"/ops-4k2m/" {
		t.Errorf("admin %q at %q", srv.AdminAddr(), srv.AdminURL())
	}
	for path, want := range map[string]int{"/ops-4k2m/signin": 200, "/admin/": 404, "/ops-4k2m": 404, "/healthz": 200} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s = %d, want %d", path, resp.StatusCode, want)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if list, _ := st.ListWebSessions(context.Background()); len(list) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the expired session was not pruned at start")
		}
		time.Sleep(10 * time.Millisecond)
	}

	tok, _, err := st.CreateSignInLink(context.Background(), store.Actor{Name: "alice", Role: store.RoleAdmin, Channel: store.ChannelSSH})
	if err != nil {
		t.Fatal(err)
	}
	link := srv.SignInURL(tok)
	if link != base+"/ops-4k2m/link/"+tok {
		t.Fatalf("sign-in URL %q", link)
	}
	browser := signInWithLink(t, http.DefaultClient, link)
	resp, err := browser.Get(base + "/ops-4k2m/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("dashboard = %d", resp.StatusCode)
	}
	if list, _ := st.ListWebSessions(context.Background()); len(list) != 1 {
		t.Fatalf("%d sessions", len(list))
	}
	staff, _ := st.GetStaff(context.Background(), "alice")
	addStaff(t, st, "bob") // another admin, so alice's only key may go
	if err := st.RemoveKey(context.Background(), store.Actor{Name: "root", Role: store.RoleAdmin, Channel: store.ChannelCLI}, "alice", staff.Keys[0].Fingerprint); err != nil {
		t.Fatal(err)
	}
	if list, _ := st.ListWebSessions(context.Background()); len(list) != 0 {
		t.Errorf("alice's web session outlived her key: %+v", list)
	}
	found := false
	evs, _ := st.ListAudit(context.Background(), store.AuditQuery{ActionPrefix: store.ActionSessionTerminated})
	for _, ev := range evs {
		found = found || strings.Contains(ev.Detail, "key removed or changed")
	}
	if !found {
		t.Error("no session.terminated row for the removed key")
	}
}

// TestWebAdminOwnListener: with BACKROOM_ADMIN_ADDR the admin is served on
// its own listener (with TLS here: Secure cookies, HSTS) and the HTTP
// listener never serves it; with the admin off nothing is served and no
// sign-in URL is made.
func TestWebAdminOwnListener(t *testing.T) {
	st, dir := openStore(t, nil)
	addStaff(t, st, "alice")
	cert, pool := selfSigned(t)
	srv := webServer(t, st, dir, func(c *Config) {
		c.AdminAddr = "127.0.0.1:0"
		c.TLSCert = &cert
	})
	if srv.AdminAddr() == srv.HTTPAddr() || !strings.HasPrefix(srv.AdminURL(), "https://127.0.0.1:") {
		t.Fatalf("admin at %q (%q), http at %q", srv.AdminAddr(), srv.AdminURL(), srv.HTTPAddr())
	}
	resp, err := http.Get("http://" + srv.HTTPAddr() + "/ops-4k2m/signin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("the HTTP listener serves the admin: %d", resp.StatusCode)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err = client.Get(srv.AdminURL() + "signin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") == "" ||
		!strings.Contains(resp.Header.Get("Set-Cookie"), "__Host-backroom_signin=") || !strings.Contains(resp.Header.Get("Set-Cookie"), "Secure") {
		t.Errorf("TLS admin: %d %v", resp.StatusCode, resp.Header)
	}
	resp, err = client.Get("https://" + srv.AdminAddr() + "/webhooks/stripe")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("the admin listener serves webhooks: %d", resp.StatusCode)
	}
	tok, _, _ := st.CreateSignInLink(context.Background(), store.Actor{Name: "alice", Role: store.RoleAdmin, Channel: store.ChannelSSH})
	signInWithLink(t, client, srv.SignInURL(tok))

	off := webServer(t, st, t.TempDir(), func(c *Config) { c.AdminPath = "" })
	if off.AdminURL() != "" || off.SignInURL("x") != "" {
		t.Error("an admin that is off has URLs")
	}
	resp, err = http.Get("http://" + off.HTTPAddr() + "/ops-4k2m/signin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("an admin that is off answers %d", resp.StatusCode)
	}
}

// selfSigned makes a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "backroom test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}, pool
}
