package web

import (
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestNotFoundVariants: every spelling of a path that is not exactly the
// admin's — /admin, another case, percent-encoding, no trailing slash, an
// uncleaned path, an unknown page, a known page with another method — gets
// the listener's one plain 404: same status, body and type as any unknown
// path, no redirect, nothing that names the real path.
func TestNotFoundVariants(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	a := e.add("alice", true, "")
	b := e.browser()
	b.signInLink(a) // signed in: a session opens nothing more

	want := b.get("/no-such-thing")
	if want.code != 404 || want.body != "404 page not found\n" {
		t.Fatalf("baseline 404 = %d %q", want.code, want.body)
	}
	p := strings.Trim(testPath, "/") // ops-7f3kq9
	for _, path := range []string{
		"/admin", "/admin/", "/admin/signin", "/ADMIN/",
		"/" + p, // no trailing slash: no redirect to it
		"/" + strings.ToUpper(p) + "/", "/Ops-7f3kq9/", "/Ops-7f3kq9/signin",
		"/%6Fps-7f3kq9/", "/ops%2D7f3kq9/", "/ops-7f3kq9%2F", "/ops-7f3kq9%2fsignin",
		"/" + p + "//", "/" + p + "/./", "/" + p + "/../" + p + "/", "//" + p + "/",
		"/x/../" + p + "/signin",
		"/" + p + "/nope", "/" + p + "/signin/", "/" + p + "/static/", "/" + p + "/static/other.css",
		"/" + p + "/clients/", "/" + p + "/%73ignin",
		"/backroom-admin/", // the default path is not served when another is set
	} {
		r := b.get(path)
		if r.code != 404 || r.body != want.body || r.location() != "" ||
			r.hdr.Get("Content-Type") != want.hdr.Get("Content-Type") {
			t.Errorf("GET %s = %d %q (Location %q, type %q), want the plain 404", path, r.code, r.body, r.location(), r.hdr.Get("Content-Type"))
		}
	}
	for _, c := range []struct{ method, rel string }{
		{"GET", "signout"}, {"PUT", "key"}, {"DELETE", ""}, {"GET", "audit/export"}, {"PATCH", "signin"},
	} {
		r := b.do(c.method, c.rel, nil, nil)
		if r.code != 404 || r.body != want.body {
			t.Errorf("%s %s = %d %q, want the plain 404", c.method, c.rel, r.code, r.body)
		}
	}
}

// TestAllowCIDRs: a client outside BACKROOM_ADMIN_ALLOW_CIDRS gets the
// plain 404 for every admin path, the sign-in page included;
// X-Forwarded-For counts only from a trusted proxy, and then its last
// untrusted hop is the client.
func TestAllowCIDRs(t *testing.T) {
	t.Parallel()
	only := func(allow, trusted string) options {
		return options{cfg: func(c *Config) {
			c.Allow = []netip.Prefix{netip.MustParsePrefix(allow)}
			if trusted != "" {
				c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix(trusted)}
			}
		}}
	}
	t.Run("loopback refused", func(t *testing.T) {
		e := newEnv(t, only("10.0.0.0/8", ""))
		b := e.browser()
		for _, rel := range []string{"", "signin", "static/style.css", "link/abc"} {
			if r := b.get(rel); r.code != 404 || r.body != "404 page not found\n" {
				t.Errorf("GET %q from outside = %d %q", rel, r.code, r.body)
			}
		}
		// A forged X-Forwarded-For from a peer that is not a trusted proxy
		// changes nothing.
		b.header.Set("X-Forwarded-For", "10.1.2.3")
		if r := b.get("signin"); r.code != 404 {
			t.Errorf("X-Forwarded-For from an untrusted peer was believed: %d", r.code)
		}
		// Not even a form gets through.
		if r := b.post("signin", url.Values{"name": {"x"}}); r.code != 404 {
			t.Errorf("POST from outside = %d", r.code)
		}
	})
	t.Run("through a trusted proxy", func(t *testing.T) {
		e := newEnv(t, only("10.0.0.0/8", "127.0.0.1/32"))
		b := e.browser()
		b.header.Set("X-Forwarded-For", "10.1.2.3")
		if r := b.get("signin"); r.code != 200 {
			t.Errorf("client 10.1.2.3 through a trusted proxy = %d", r.code)
		}
		// The client put an allowed address first; the proxy appended the
		// real one, which is not allowed.
		b.header.Set("X-Forwarded-For", "10.1.2.3, 192.0.2.77")
		if r := b.get("signin"); r.code != 404 {
			t.Errorf("a forged first hop was believed: %d", r.code)
		}
		b.header.Del("X-Forwarded-For")
		if r := b.get("signin"); r.code != 404 {
			t.Errorf("the proxy itself (127.0.0.1) is not allowed, got %d", r.code)
		}
	})
	t.Run("opened to everyone", func(t *testing.T) {
		e := newEnv(t, options{cfg: func(c *Config) {
			c.Allow = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
		}})
		if r := e.browser().get("signin"); r.code != 200 {
			t.Errorf("0.0.0.0/0 = %d", r.code)
		}
	})
}

// TestSecurityHeaders: every page (signed in or not, an error page too)
// carries the CSP, frame, sniffing, referrer and no-store headers, links
// the stylesheet and holds no inline script or style; the stylesheet is
// cacheable and revalidated by its ETag. HSTS only with TLS or Secure.
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	check := func(t *testing.T, e *testEnv, hsts bool) {
		a := e.add("alice", true, "")
		anon := e.browser()
		b := e.browser()
		b.signInLink(a)
		pages := map[string]resp{
			"signin":       anon.get("signin"),
			"link":         anon.get("link/whatever"),
			"bad form":     anon.post("signin", url.Values{"csrf": {"x"}}),
			"dashboard":    b.get(""),
			"key":          b.get("key"),
			"clients":      b.get("clients"),
			"client 404":   b.get("clients/cus_nobody"),
			"webhooks":     b.get("webhooks"),
			"audit":        b.get("audit"),
			"sessions":     b.get("sessions"),
			"redirect":     anon.get("audit"),
			"bad date":     b.get("audit?since=yesterday"),
			"bad customer": b.get("clients/not-a-customer"),
		}
		for name, r := range pages {
			h := r.hdr
			if got := h.Get("Content-Security-Policy"); got != "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'" {
				t.Errorf("%s: CSP %q", name, got)
			}
			if h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" ||
				h.Get("Referrer-Policy") != "no-referrer" || h.Get("Cache-Control") != "no-store" {
				t.Errorf("%s: headers %v", name, h)
			}
			if got := h.Get("Strict-Transport-Security"); (got != "") != hsts {
				t.Errorf("%s: HSTS %q (want it: %v)", name, got, hsts)
			}
			if r.code == http.StatusSeeOther {
				continue
			}
			if !strings.Contains(r.body, `<link rel="stylesheet" href="`+testPath+`static/style.css">`) {
				t.Errorf("%s (%d): no stylesheet link", name, r.code)
			}
			if regexp.MustCompile(`(?i)<script|<style|\sstyle=|\son[a-z]+=|javascript:`).MatchString(r.body) {
				t.Errorf("%s: inline script or style:\n%s", name, r.body)
			}
		}
		css := anon.get("static/style.css")
		if css.code != 200 || !strings.HasPrefix(css.hdr.Get("Content-Type"), "text/css") ||
			css.hdr.Get("Cache-Control") != "private, max-age=3600" || css.hdr.Get("ETag") == "" || !strings.Contains(css.body, ".badge-live") {
			t.Errorf("stylesheet: %d %v", css.code, css.hdr)
		}
		if css.hdr.Get("X-Content-Type-Options") != "nosniff" {
			t.Error("stylesheet without nosniff")
		}
		again := anon.do("GET", "static/style.css", nil, http.Header{"If-None-Match": {css.hdr.Get("ETag")}})
		if again.code != http.StatusNotModified {
			t.Errorf("revalidation = %d, want 304", again.code)
		}
	}
	t.Run("plain", func(t *testing.T) { check(t, newEnv(t, options{}), false) })
	t.Run("cookie secure", func(t *testing.T) {
		check(t, newEnv(t, options{tls: true, cfg: func(c *Config) { c.Secure = true }}), true)
	})
	t.Run("tls without the setting", func(t *testing.T) { check(t, newEnv(t, options{tls: true}), true) })
}

// TestCookieFlags: both cookies are HttpOnly, SameSite=Strict, Path=/;
// with Secure they are Secure and carry the __Host- prefix.
func TestCookieFlags(t *testing.T) {
	t.Parallel()
	for _, secure := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "secure"}[secure], func(t *testing.T) {
			e := newEnv(t, options{tls: secure, cfg: func(c *Config) { c.Secure = secure }})
			a := e.add("alice", false, "")
			b := e.browser()
			page := b.get("signin")
			tok := e.link(a)
			r := b.post("link/"+tok, url.Values{"csrf": {page.csrf(t)}})
			if r.code != http.StatusSeeOther {
				t.Fatalf("sign-in = %d %s", r.code, r.body)
			}
			prefix := ""
			if secure {
				prefix = "__Host-"
			}
			for _, c := range []struct {
				set  []string
				name string
			}{{page.hdr.Values("Set-Cookie"), prefix + "backroom_signin"}, {r.hdr.Values("Set-Cookie"), prefix + "backroom_session"}} {
				var line string
				for _, l := range c.set {
					if strings.HasPrefix(l, c.name+"=") && !strings.HasPrefix(l, c.name+"=;") {
						line = l
					}
				}
				if line == "" {
					t.Fatalf("no %s cookie set in %q", c.name, c.set)
				}
				for _, attr := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
					if !strings.Contains(line, attr) {
						t.Errorf("%s: no %s: %s", c.name, attr, line)
					}
				}
				if strings.Contains(line, "Secure") != secure || strings.Contains(line, "Domain=") {
					t.Errorf("%s: Secure/Domain wrong (secure=%v): %s", c.name, secure, line)
				}
			}
			// The signed-in browser works with these cookies.
			if got := b.get(""); got.code != 200 {
				t.Errorf("dashboard after sign-in = %d", got.code)
			}
		})
	}
}

// TestNotSignedIn: without a session every page sends the browser to the
// sign-in page and shows no data; every form is refused (403).
func TestNotSignedIn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	e.add("alice", true, "")
	b := e.browser()
	for _, rel := range []string{"", "key", "clients", "clients/cus_x1", "webhooks", "webhooks/evt_1", "audit", "sessions"} {
		r := b.get(rel)
		if r.code != http.StatusSeeOther || r.location() != testPath+"signin" || strings.Contains(r.body, "alice") {
			t.Errorf("GET %q without a session = %d → %q", rel, r.code, r.location())
		}
	}
	// A cookie that names no session is no better.
	u, _ := url.Parse(e.root + testPath)
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: "backroom_session", Value: "forged-token-value", Path: "/"}})
	if r := b.get("audit"); r.code != http.StatusSeeOther {
		t.Errorf("a forged session cookie = %d", r.code)
	}
	for _, rel := range []string{"key", "signout", "audit/export", "sessions", "webhooks/evt_1/replay"} {
		r := b.post(rel, url.Values{"csrf": {"anything"}, "key": {"sk_test_" + strings.Repeat("a", 24)}})
		if r.code != http.StatusForbidden {
			t.Errorf("POST %s without a session = %d", rel, r.code)
		}
	}
	if ks, _ := e.st.KeyStatus(ctxb); ks.Source != "none" {
		t.Error("a key was set without a session")
	}
}
