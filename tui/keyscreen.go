package tui

import (
	"context"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"backroom/store"
)

// keyScreen is the home screen: it shows the Stripe key and updates it,
// issues one-time web sign-in links and sets the member's own web
// password.
type keyScreen struct {
	e       *env
	w, h    int
	form    *keyForm
	pw      *passwordForm
	link    *signInLink // shown until it expires, esc, or the screen is left
	linkGen int
	visible bool
	hasPW   bool // the member has a web password
	pwKnown bool
}

// passwordSetMsg is the outcome of setting the member's own password.
type passwordSetMsg struct{ err error }

// hasPasswordMsg tells whether the member has a web password.
type hasPasswordMsg struct {
	has bool
	err error
}

// Steps of the update form.
const (
	stepKey = iota
	stepLive
	stepCode
	stepSending
)

// keyForm collects a new key, the LIVE confirmation and a fresh code. The
// key is held only until it is submitted; the inputs are cleared as soon
// as their value is taken.
type keyForm struct {
	step   int
	key    textinput.Model
	live   textinput.Model
	code   textinput.Model
	parsed string
	info   store.StripeKeyInfo
	err    string
}

// keySetMsg is the outcome of SetStripeKey.
type keySetMsg struct {
	status store.KeyStatus
	info   store.StripeKeyInfo
	err    error
}

func newKeyScreen(e *env) *keyScreen { return &keyScreen{e: e} }

func (s *keyScreen) title() string   { return "Key" }
func (s *keyScreen) capturing() bool { return s.form != nil || s.pw != nil }

func (s *keyScreen) setSize(w, h int) tea.Cmd { s.w, s.h = w, h; s.sizeInputs(); return nil }

func (s *keyScreen) activate() tea.Cmd {
	s.visible = true
	if !s.pwKnown {
		// The session's first frame: the login already read it.
		s.hasPW, s.pwKnown = s.e.webPW, true
		return nil
	}
	st, name := s.e.store, s.e.actor.Name
	return s.e.call(func(ctx context.Context) tea.Msg {
		has, err := st.HasPassword(ctx, name)
		return hasPasswordMsg{has: has, err: err}
	})
}

// deactivate drops the sign-in link: it is not left on a screen nobody
// looks at.
func (s *keyScreen) deactivate() {
	s.visible = false
	s.dropLink()
}

func (s *keyScreen) dropLink() {
	s.link = nil
	s.linkGen++ // its pending tick is ignored
}

func (s *keyScreen) scheduleLinkTick() tea.Cmd {
	gen := s.linkGen
	return s.e.tick(time.Second, func(time.Time) tea.Msg { return linkTickMsg{gen: gen} })
}

func (s *keyScreen) sizeInputs() {
	if s.pw != nil {
		s.pw.size(s.w)
	}
	if s.form == nil {
		return
	}
	w := max(10, s.w-24)
	s.form.key.Width, s.form.live.Width, s.form.code.Width = w, w, w
}

func (s *keyScreen) newInput(placeholder string, limit int) textinput.Model {
	ti := textinput.New()
	s.e.st.styleInput(&ti)
	ti.Prompt = "> "
	ti.Placeholder = placeholder
	ti.CharLimit = limit
	return ti
}

func (s *keyScreen) openForm() tea.Cmd {
	f := &keyForm{}
	f.key = s.newInput("sk_test_… or rk_live_…", 512)
	f.key.EchoMode = textinput.EchoPassword
	f.key.EchoCharacter = '*'
	f.live = s.newInput("LIVE", 8)
	f.code = s.newInput("6-digit code", 16)
	s.form = f
	s.sizeInputs()
	return f.key.Focus()
}

// closeForm drops the form and everything typed into it.
func (s *keyScreen) closeForm() {
	if s.form != nil {
		s.form.key.Reset()
		s.form.live.Reset()
		s.form.code.Reset()
		s.form.parsed = ""
	}
	s.form = nil
}

func (s *keyScreen) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case hasPasswordMsg:
		if msg.err == nil {
			s.hasPW, s.pwKnown = msg.has, true
		}
		return nil
	case linkMsg:
		if msg.err != nil {
			s.e.fail(msg.err)
			return nil
		}
		if !s.visible || s.form != nil || s.pw != nil {
			return nil // left meanwhile: the link is not shown
		}
		s.dropLink()
		s.link = &msg.link
		s.e.good("Sign-in link issued: it works once, for 60 seconds.")
		return s.scheduleLinkTick()
	case linkTickMsg:
		if msg.gen != s.linkGen || s.link == nil {
			return nil
		}
		if !s.e.now().Before(s.link.expires) {
			s.dropLink()
			s.e.info("The sign-in link expired: press w for a new one.")
			return nil
		}
		return s.scheduleLinkTick()
	case passwordSetMsg:
		if msg.err != nil {
			s.e.fail(msg.err)
			if s.pw != nil {
				return s.pw.failed(msg.err)
			}
			return nil
		}
		s.pw = nil
		s.hasPW, s.pwKnown = true, true
		s.e.good("New web password set: sign in to the web admin with it and a code from your app.")
		return nil
	case keySetMsg:
		if msg.err != nil {
			s.e.fail(msg.err)
			if s.form != nil {
				s.form.err = store.ErrorMessage(msg.err)
				s.form.step = stepKey
				s.form.live.Blur()
				s.form.code.Blur()
				return s.form.key.Focus()
			}
			return nil
		}
		s.closeForm()
		s.e.keyStatus, s.e.keyLoaded, s.e.keyErr = msg.status, true, ""
		text := "Stripe key updated: " + msg.info.Masked + " (" + msg.info.Badge() + ")"
		if msg.status.Source == store.SourceEnv {
			text += "; STRIPE_API_KEY still wins until it is unset"
		}
		s.e.good(text)
		return s.e.reloadHeader()
	case tea.KeyMsg:
		switch {
		case s.form != nil:
			return s.formKey(msg)
		case s.pw != nil:
			return s.pw.key(s.e.keys, msg, func(pw string) tea.Cmd {
				return s.e.setPassword(s.e.actor.Name, pw, func(err error) tea.Msg { return passwordSetMsg{err: err} })
			}, func() {
				s.pw = nil
				s.e.info("Web password not changed.")
			})
		}
		return s.homeKey(msg)
	}
	return nil
}

// homeKey handles a key on the home screen (no form open).
func (s *keyScreen) homeKey(k tea.KeyMsg) tea.Cmd {
	keys := s.e.keys
	switch {
	case keyMatches(k, keys.KeyUpdate):
		s.dropLink()
		return s.openForm()
	case keyMatches(k, keys.WebLink):
		if s.e.webURL == nil {
			s.e.setStatus(statusErr, webOffText)
			return nil
		}
		s.e.info("Issuing a sign-in link…")
		return s.e.issueLink()
	case keyMatches(k, keys.WebPassword):
		s.dropLink()
		var cmd tea.Cmd
		s.pw, cmd = newPasswordForm(s.e.st, s.e.actor.Name, true, s.w)
		return cmd
	case keyMatches(k, keys.Back) && s.link != nil:
		s.dropLink()
		s.e.info("Sign-in link hidden; unused, it stops working 60 seconds after it was issued.")
	}
	return nil
}

func (s *keyScreen) formKey(k tea.KeyMsg) tea.Cmd {
	f := s.form
	if f.step == stepSending {
		return nil
	}
	switch {
	case keyMatches(k, s.e.keys.Cancel):
		s.closeForm()
		s.e.info("Key update cancelled.")
		return nil
	case keyMatches(k, s.e.keys.Submit):
		return s.advance()
	}
	var cmd tea.Cmd
	switch f.step {
	case stepKey:
		f.key, cmd = f.key.Update(k)
	case stepLive:
		f.live, cmd = f.live.Update(k)
	case stepCode:
		f.code, cmd = f.code.Update(k)
	}
	return cmd
}

func (s *keyScreen) advance() tea.Cmd {
	f := s.form
	f.err = ""
	switch f.step {
	case stepKey:
		sk, info, err := store.ParseStripeKey(f.key.Value())
		f.key.Reset()
		if err != nil {
			f.err = store.ErrorMessage(err)
			s.e.fail(err)
			return nil
		}
		f.parsed, f.info = sk, info
		f.key.Blur()
		if info.Mode == store.ModeLive {
			f.step = stepLive
			return f.live.Focus()
		}
		f.step = stepCode
		return f.code.Focus()
	case stepLive:
		ok := strings.TrimSpace(f.live.Value()) == "LIVE"
		f.live.Reset()
		if !ok {
			f.err = "type LIVE in capital letters to confirm a live key (esc cancels)"
			return nil
		}
		f.live.Blur()
		f.step = stepCode
		return f.code.Focus()
	case stepCode:
		code := strings.TrimSpace(f.code.Value())
		if code == "" {
			f.err = "type the current code from your authenticator app"
			return nil
		}
		req := store.SetKeyRequest{
			Key:         f.parsed,
			ConfirmLive: f.info.Mode == store.ModeLive,
			Code:        code,
			Fingerprint: s.e.fp,
		}
		info := f.info
		f.parsed = ""
		f.code.Reset()
		f.code.Blur()
		f.step = stepSending
		st, actor := s.e.store, s.e.actor
		return s.e.call(func(ctx context.Context) tea.Msg {
			status, err := st.SetStripeKey(ctx, actor, req)
			return keySetMsg{status: status, info: info, err: err}
		})
	}
	return nil
}

func (s *keyScreen) help() helpKeys {
	k := s.e.keys
	switch {
	case s.form != nil:
		return flatHelp(k.Submit, k.Cancel, k.ForceQuit)
	case s.pw != nil:
		return flatHelp(k.Submit, k.NextField, k.Cancel, k.ForceQuit)
	case s.link != nil:
		hide := key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "hide link"))
		return helpKeys{short: []key.Binding{hide, k.WebLink, k.KeyUpdate, k.WebPassword},
			full: [][]key.Binding{{k.KeyUpdate}, {k.WebLink, hide, k.WebPassword}}}
	}
	return helpKeys{short: []key.Binding{k.KeyUpdate, k.WebLink, k.WebPassword},
		full: [][]key.Binding{{k.KeyUpdate}, {k.WebLink, k.WebPassword}}}
}

func (s *keyScreen) view() string {
	st := s.e.st
	switch {
	case s.pw != nil:
		return s.pw.view(st, max(20, s.w))
	case s.link != nil:
		return s.linkView()
	}
	var b strings.Builder
	b.WriteString(st.heading.Render("Stripe API key") + "\n\n")
	if s.form != nil {
		b.WriteString(s.formView())
		return b.String()
	}
	switch {
	case s.e.keyErr != "" && !s.e.keyLoaded:
		b.WriteString(st.err.Render(wrap(s.e.keyErr, s.w)) + "\n")
		return s.secretView() + b.String()
	case !s.e.keyLoaded:
		b.WriteString(st.dim.Render("loading…"))
		return s.secretView() + b.String()
	}
	ks := s.e.keyStatus
	rows := [][2]string{{"Source", store.SourceLabel(ks.Source)}}
	if ks.Source != store.SourceNone {
		rows = append(rows,
			[2]string{"Mode", st.badge(ks.Badge()) + " " + ks.Mode},
			[2]string{"Kind", ks.Kind},
			[2]string{"Key", clean(ks.Masked)},
		)
		setBy := clean(ks.SetBy)
		if !ks.SetAt.IsZero() {
			setBy += ", " + fmtTime(ks.SetAt) + " UTC"
		}
		rows = append(rows, [2]string{"Set by", setBy})
	} else {
		rows = append(rows, [2]string{"Mode", st.badge("NONE")})
	}
	rows = append(rows, [2]string{"Updates go to", store.SourceLabel(ks.Storage)})
	b.WriteString(st.kv(rows) + "\n\n")
	b.WriteString(s.webView() + "\n\n")
	if ks.Source == store.SourceNone {
		b.WriteString("No Stripe key is set.\n\n")
	}
	if ks.Source == store.SourceEnv {
		b.WriteString(st.warn.Render(wrap("STRIPE_API_KEY is set in the environment: it wins over any stored key.", s.w)) + "\n")
		if ks.Shadowed {
			b.WriteString(wrap("The stored key "+clean(ks.StoredMasked)+" is shadowed: it is not used while STRIPE_API_KEY is set.", s.w) + "\n")
		}
		b.WriteString("\n")
	}
	b.WriteString(st.dim.Render("Press u to update the key."))
	return s.secretView() + b.String()
}

// secretView warns, above everything else, that no webhook secret is
// configured.
func (s *keyScreen) secretView() string {
	if s.e.secret {
		return ""
	}
	return s.e.st.secretWarning() + "\n" +
		s.e.st.dim.Render(wrap("Stripe's webhooks are refused until STRIPE_WEBHOOK_SECRET is set.", max(20, s.w))) + "\n\n"
}

func (s *keyScreen) formView() string {
	st, f := s.e.st, s.form
	var b strings.Builder
	b.WriteString(wrap("Paste a secret key (sk_…) or a restricted key (rk_…). It is never shown. A fresh code from your authenticator is required.", s.w) + "\n")
	if s.e.keyLoaded && s.e.keyStatus.Source == store.SourceEnv {
		b.WriteString(st.warn.Render(wrap("STRIPE_API_KEY is set: the key you store stays shadowed until it is unset.", s.w)) + "\n")
	}
	b.WriteString("\n")
	line := func(label string, ti textinput.Model, active bool, done string) {
		l := st.label.Render(padRight(label, 19))
		switch {
		case active:
			b.WriteString(l + ti.View() + "\n")
		case done != "":
			b.WriteString(l + "  " + done + "\n")
		}
	}
	keyDone := ""
	if f.step > stepKey {
		keyDone = clean(f.info.Masked) + " " + st.badge(f.info.Badge())
	}
	line("Secret key", f.key, f.step == stepKey, keyDone)
	if f.info.Mode == store.ModeLive && f.step >= stepLive {
		liveDone := ""
		if f.step > stepLive {
			liveDone = "confirmed"
		}
		if f.step == stepLive {
			b.WriteString(st.warn.Render("This is a LIVE key: real money moves with it.") + "\n")
		}
		line("Type LIVE", f.live, f.step == stepLive, liveDone)
	}
	if f.step >= stepCode {
		line("Verification code", f.code, f.step == stepCode, "")
	}
	if f.step == stepSending {
		b.WriteString(st.dim.Render("Updating…") + "\n")
	}
	if f.err != "" {
		b.WriteString("\n" + st.err.Render(wrap(clean(f.err), s.w)) + "\n")
	}
	return b.String()
}

// webView is the home screen's web admin section: whether it is on, and
// whether the member has a web password.
func (s *keyScreen) webView() string {
	st := s.e.st
	admin := st.dim.Render("off") + " (not served by this server)"
	if s.e.webURL != nil {
		admin = "on · w issues a one-time sign-in link"
	}
	pw := "…"
	if s.pwKnown {
		pw = "not set · p sets it"
		if s.hasPW {
			pw = "set · p changes it"
		}
	}
	// Labels as wide as the key's table above ("Updates go to").
	lw := len("Updates go to")
	return st.kv([][2]string{{padRight("Web admin", lw), admin}, {padRight("Web password", lw), pw}})
}

// linkView shows the sign-in link, its countdown, and that it works once.
func (s *keyScreen) linkView() string {
	st, l := s.e.st, s.link
	var b strings.Builder
	b.WriteString(st.heading.Render("Web admin sign-in link") + "\n\n")
	left := l.expires.Sub(s.e.now())
	if left <= 0 {
		b.WriteString(st.warn.Render(wrap("The sign-in link expired: press w for a new one.", s.w)) + "\n")
		return b.String()
	}
	b.WriteString(wrap("Open it in your browser: it signs in "+clean(s.e.actor.Name)+" without a password. "+
		"Single use: it works once, and only for 60 seconds. Do not share it.", s.w) + "\n\n")
	b.WriteString(strings.Join(st.urlLines(l.url, s.w), "\n") + "\n\n")
	b.WriteString(st.warn.Render("expires in "+fmtCountdown(left)) + st.dim.Render("  ·  esc hides it  ·  w issues a new one"))
	return b.String()
}
