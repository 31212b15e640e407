package tui

import (
	"context"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"backroom/store"
)

// keyScreen shows the Stripe key and updates it.
type keyScreen struct {
	e    *env
	w, h int
	form *keyForm
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

func (s *keyScreen) title() string            { return "Key" }
func (s *keyScreen) activate() tea.Cmd        { return nil }
func (s *keyScreen) deactivate()              {}
func (s *keyScreen) capturing() bool          { return s.form != nil }
func (s *keyScreen) setSize(w, h int) tea.Cmd { s.w, s.h = w, h; s.sizeInputs(); return nil }

func (s *keyScreen) sizeInputs() {
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
		if s.form == nil {
			if keyMatches(msg, s.e.keys.KeyUpdate) {
				return s.openForm()
			}
			return nil
		}
		return s.formKey(msg)
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
	if s.form != nil {
		b := []key.Binding{k.Submit, k.Cancel, k.ForceQuit}
		return helpKeys{short: b, full: [][]key.Binding{b}}
	}
	return helpKeys{short: []key.Binding{k.KeyUpdate}, full: [][]key.Binding{{k.KeyUpdate}}}
}

func sourceText(src string) string {
	switch src {
	case store.SourceEnv:
		return "environment (STRIPE_API_KEY)"
	case store.SourceKeyring:
		return "OS keyring"
	case store.SourceDatabase:
		return "database (encrypted)"
	}
	return "none"
}

func (s *keyScreen) view() string {
	st := s.e.st
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
	rows := [][2]string{{"Source", sourceText(ks.Source)}}
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
	rows = append(rows, [2]string{"Updates go to", sourceText(ks.Storage)})
	b.WriteString(st.kv(rows) + "\n\n")
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
