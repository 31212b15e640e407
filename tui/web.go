package tui

// The console's side of the web admin: one-time sign-in links, web
// passwords, and a browser's short name for the Sessions screen.

import (
	"context"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"backroom/store"
)

// webOffText is what the console says when the web admin is not served.
const webOffText = "the web admin is off in this server's configuration: there is no sign-in link to issue"

// signInLink is a one-time sign-in link on screen. It is a credential
// until it expires: the screen drops it when it expires, is closed or is
// left.
type signInLink struct {
	url     string
	expires time.Time
}

// linkMsg is the outcome of CreateSignInLink.
type linkMsg struct {
	link signInLink
	err  error
}

// linkTickMsg redraws the link's countdown; gen tells whether the link
// that scheduled it is still the one shown.
type linkTickMsg struct{ gen int }

// issueLink asks the store for a sign-in link for the session's member
// (audited by the store) and builds its URL. The web admin must be on.
func (e *env) issueLink() tea.Cmd {
	st, a, build := e.store, e.actor, e.webURL
	return e.call(func(ctx context.Context) tea.Msg {
		token, expires, err := st.CreateSignInLink(ctx, a)
		if err != nil {
			return linkMsg{err: err}
		}
		return linkMsg{link: signInLink{url: clean(build(token)), expires: expires}}
	})
}

// fmtCountdown renders what is left of d as m:ss, rounded up (a fresh
// 60-second link shows 1:00).
func fmtCountdown(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	secs := int((d + time.Second - 1) / time.Second)
	return itoa(secs/60) + ":" + pad2(secs%60)
}

// urlLines lays url out at width w: whole on one line when it fits, else
// cut into full-width lines with nothing else on them, so that selecting
// the lines copies the URL and nothing more. With colour, each line is
// also an OSC 8 hyperlink to the whole URL, one link id for all lines
// (terminals that know it make it clickable; the others ignore it).
func (s *styles) urlLines(url string, w int) []string {
	lines := strings.Split(ansi.Hardwrap(url, max(1, w), true), "\n")
	if s.ascii {
		return lines
	}
	for i, l := range lines {
		lines[i] = ansi.SetHyperlink(url, "id=backroom-link") + l + ansi.ResetHyperlink()
	}
	return lines
}

// passwordForm sets a web password: typed twice in masked inputs. What is
// typed is cleared as soon as it is taken.
type passwordForm struct {
	name string // whose password
	self bool   // the session's own member
	f    *form
}

// Fields of the password form.
const (
	pwNew = iota
	pwAgain
)

func newPasswordForm(st *styles, name string, self bool, w int) (*passwordForm, tea.Cmd) {
	f := newForm(
		inputField(st, "New password", "at least 12 characters", 1024),
		inputField(st, "Type it again", "", 1024),
	)
	for i := range f.fields {
		f.fields[i].ti.EchoMode = textinput.EchoPassword
		f.fields[i].ti.EchoCharacter = '*'
	}
	f.busyText = "Setting the password…"
	p := &passwordForm{name: name, self: self, f: f}
	p.size(w)
	return p, f.focus(pwNew)
}

func (p *passwordForm) size(w int) { p.f.size(w - 22) }

// clear drops everything typed.
func (p *passwordForm) clear() {
	for i := range p.f.fields {
		p.f.fields[i].ti.Reset()
	}
}

// key handles a key while the form is open: esc cancels, enter moves on
// and, on the last field, hands the password to set when both match.
func (p *passwordForm) key(keys *keyMap, k tea.KeyMsg, set func(pw string) tea.Cmd, cancel func()) tea.Cmd {
	return p.f.key(keys, k, func() tea.Cmd {
		pw, again := p.f.fields[pwNew].ti.Value(), p.f.fields[pwAgain].ti.Value()
		p.clear()
		switch {
		case pw == "":
			p.f.err = "type the new password (esc cancels)"
			return p.f.focus(pwNew)
		case pw != again:
			p.f.err = "the two passwords do not match: type them again"
			return p.f.focus(pwNew)
		}
		p.f.busy = true
		return set(pw)
	}, func() {
		p.clear()
		cancel()
	})
}

// failed shows the store's refusal (a strength rule names itself) and
// starts over.
func (p *passwordForm) failed(err error) tea.Cmd {
	p.f.busy = false
	p.f.err = store.ErrorMessage(err)
	return p.f.focus(pwNew)
}

func (p *passwordForm) view(st *styles, w int) string {
	head := st.heading.Render("Your web password")
	if !p.self {
		head = st.heading.Render("Web password for " + clean(p.name))
	}
	hint := "With a code from the authenticator app it signs in to the web admin. At least 12 characters, " +
		"not all digits, not like the user name, not a common password: a few unrelated words work well."
	return p.f.view(st, w, head, hint)
}

// setPassword sets name's web password in a Cmd; done builds the message.
func (e *env) setPassword(name, pw string, done func(err error) tea.Msg) tea.Cmd {
	st, a := e.store, e.actor
	return e.call(func(ctx context.Context) tea.Msg { return done(st.SetPassword(ctx, a, name, pw)) })
}

// browserName shortens a User-Agent to the browser, its major version and
// the system ("Firefox 128 (Linux)"); an unknown one is returned as is.
func browserName(ua string) string {
	ua = clean(ua)
	if ua == "" {
		return "—"
	}
	for _, b := range []struct{ token, name string }{
		{"Edg/", "Edge"}, {"OPR/", "Opera"}, {"Firefox/", "Firefox"}, {"HeadlessChrome/", "Headless Chrome"},
		{"Chromium/", "Chromium"}, {"Chrome/", "Chrome"}, {"CriOS/", "Chrome"}, {"Version/", "Safari"},
		{"curl/", "curl"},
	} {
		i := strings.Index(ua, b.token)
		if i < 0 {
			continue
		}
		name := b.name
		v := ua[i+len(b.token):]
		if n := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }); n != 0 {
			if n < 0 {
				n = len(v)
			}
			name += " " + v[:n]
		}
		if sys := systemName(ua); sys != "" {
			name += " (" + sys + ")"
		}
		return name
	}
	return ua
}

func systemName(ua string) string {
	for _, s := range []struct{ token, name string }{
		{"Android", "Android"}, {"iPhone", "iOS"}, {"iPad", "iPadOS"}, {"Windows", "Windows"},
		{"Mac OS X", "macOS"}, {"CrOS", "ChromeOS"}, {"Linux", "Linux"},
	} {
		if strings.Contains(ua, s.token) {
			return s.name
		}
	}
	return ""
}
