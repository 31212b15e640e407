// Package browsertest runs Debian's headless chromium for the web admin's
// browser tests: one browser per test with a fresh profile, helpers to
// screenshot a page and to check that it rendered with its stylesheet.
//
// Without chromium the test is skipped, except under CI=true, where a
// missing browser fails it.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Path finds the chromium binary (BACKROOM_CHROMIUM, then chromium on
// PATH), failing the test under CI=true and skipping it otherwise when
// there is none.
func Path(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("BACKROOM_CHROMIUM"); p != "" {
		return p
	}
	p, err := exec.LookPath("chromium")
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("chromium not found (install Debian's chromium: apt-get install chromium, as .ci/run does): %v", err)
	}
	t.Skip("chromium not installed (apt-get install chromium); CI=true makes this a failure")
	return ""
}

// Start launches headless chromium with a fresh user-data dir and returns
// the context of its first tab. The browser stops when the test ends.
// Every action run on the context is bounded by a generous timeout so a
// hung page fails the test instead of stalling the suite.
func Start(t testing.TB) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(Path(t)),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(func(string, ...any) {}))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// Timeout is how long one step of a browser test may take.
const Timeout = 20 * time.Second

// Do runs steps on the tab ctx with Timeout, failing the test on error.
func Do(t testing.TB, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// Run runs one action returning a value on the tab ctx with Timeout,
// failing the test on error.
func Run[T any](t testing.TB, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return v
}

// BodyText is the visible text of the page.
func BodyText(t testing.TB, ctx context.Context) string {
	t.Helper()
	return Run(t, ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// Screenshot saves a full-page PNG of the tab as dir/name.png and returns
// its path.
func Screenshot(t testing.TB, ctx context.Context, dir, name string) string {
	t.Helper()
	png := Run(t, ctx, chromedp.FullScreenshot(100))
	if len(png) == 0 {
		t.Fatalf("screenshot %s: empty image", name)
	}
	p := filepath.Join(dir, unsafeName.ReplaceAllString(name, "_")+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// styleCheck reports, for the page in the tab, how many stylesheets it
// links and how many of them loaded with rules (a stylesheet that 404s
// or that the Content-Security-Policy blocks has no sheet).
const styleCheck = `(() => {
	const links = Array.from(document.querySelectorAll('link[rel~="stylesheet"]'));
	const loaded = links.filter(l => { try { return l.sheet && l.sheet.cssRules.length > 0 } catch (e) { return false } });
	return links.length + "/" + loaded.length;
})()`

// RequireStylesheet fails the test when the page in the tab links no
// stylesheet or any linked stylesheet did not load with rules: a page
// that renders as bare HTML.
func RequireStylesheet(t testing.TB, ctx context.Context, page string) {
	t.Helper()
	got := Run(t, ctx, chromedp.Evaluate[string](styleCheck))
	links, loaded, _ := strings.Cut(got, "/")
	if links == "0" || links != loaded {
		t.Fatalf("%s rendered without its stylesheet: %s stylesheet links, %s loaded", page, links, loaded)
	}
}
