package browsertest_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"backroom/server/web/browsertest"
)

// TestHarness drives the real browser against a page with a stylesheet
// and one whose stylesheet is missing: the check must tell them apart.
func TestHarness(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/style.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		io.WriteString(w, "body { color: #123456 }")
	})
	page := func(css string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, `<!doctype html><html><head><title>t</title><link rel="stylesheet" href="`+css+`"></head><body><p id="p">hello browser</p></body></html>`)
		}
	}
	mux.HandleFunc("/good", page("/style.css"))
	mux.HandleFunc("/bad", page("/missing.css"))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx := browsertest.Start(t)
	browsertest.Do(t, ctx, chromedp.Navigate(srv.URL+"/good"), chromedp.WaitVisible("#p"))
	if got := browsertest.BodyText(t, ctx); !strings.Contains(got, "hello browser") {
		t.Fatalf("body text %q", got)
	}
	browsertest.RequireStylesheet(t, ctx, "good")
	shot := browsertest.Screenshot(t, ctx, t.TempDir(), "good page")
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 100 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}

	browsertest.Do(t, ctx, chromedp.Navigate(srv.URL+"/bad"), chromedp.WaitVisible("#p"))
	ft := &fakeT{TB: t}
	func() {
		defer func() { recover() }()
		browsertest.RequireStylesheet(ft, ctx, "bad")
	}()
	if !ft.failed {
		t.Fatal("a page whose stylesheet 404s passed the stylesheet check")
	}
}

// fakeT records a Fatalf instead of ending the test.
type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(string, ...any) {
	f.failed = true
	panic("fatal")
}
