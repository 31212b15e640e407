package tui

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"backroom/store"
)

// enrollment is an Enrollment being shown, with its QR code drawn once in
// both quiet-zone sizes.
type enrollment struct {
	e   *store.Enrollment
	qr  [2][]string // quiet zone 2, then 1
	qrW [2]int
}

func newEnrollment(st *styles, e *store.Enrollment) *enrollment {
	en := &enrollment{e: e}
	text := qrCompact(e.URI)
	for i, quiet := range []int{2, 1} {
		en.qr[i] = qrLines(st, text, quiet)
		if len(en.qr[i]) > 0 {
			en.qrW[i] = lipgloss.Width(en.qr[i][0])
		}
	}
	return en
}

// groupSecret writes a base32 secret in groups of four, perLine groups a
// line.
func groupSecret(secret string, perLine int) []string {
	var groups []string
	for i := 0; i < len(secret); i += 4 {
		groups = append(groups, secret[i:min(i+4, len(secret))])
	}
	var lines []string
	for i := 0; i < len(groups); i += perLine {
		lines = append(lines, strings.Join(groups[i:min(i+perLine, len(groups))], " "))
	}
	return lines
}

// render lays the QR code out on the left and the text on the right, in w
// by h cells. head and tail are text lines around the secret and the
// recovery codes.
func (en *enrollment) render(st *styles, w, h int, head, tail []string, showURI bool) string {
	// The largest QR that fits the height with at least 28 columns of text.
	pick := -1
	for i := range en.qr {
		if len(en.qr[i]) <= h && en.qrW[i]+2+28 <= w {
			pick = i
			break
		}
	}
	textW := w
	if pick >= 0 {
		textW = w - en.qrW[pick] - 2
	}
	var lines []string
	lines = append(lines, head...)
	perLine := 8
	if textW < 39 {
		perLine = 4
	}
	lines = append(lines, st.label.Render("Secret (base32):"))
	for _, l := range groupSecret(en.e.Secret, perLine) {
		lines = append(lines, st.user.Render(l))
	}
	lines = append(lines, "", st.label.Render("Recovery codes: write these down;"), st.label.Render("each works once."))
	codes := en.e.RecoveryCodes
	for i := 0; i < len(codes); i += 2 {
		l := codes[i]
		if i+1 < len(codes) {
			l += "  " + codes[i+1]
		}
		lines = append(lines, l)
	}
	if showURI {
		lines = append(lines, "", st.label.Render("otpauth URI:"))
		lines = append(lines, strings.Split(ansiHardWrap(en.e.URI, textW), "\n")...)
	}
	if pick < 0 {
		lines = append(lines, "", st.warn.Render(wrap("Enlarge the terminal (80x24 or more) to see the QR code.", textW)))
	}
	lines = append(lines, tail...)
	for i, l := range lines {
		lines[i] = truncate(l, textW)
	}
	if pick < 0 {
		return strings.Join(lines, "\n")
	}
	qr := en.qr[pick]
	n := max(len(qr), len(lines))
	var b strings.Builder
	for i := 0; i < n; i++ {
		left := strings.Repeat(" ", en.qrW[pick])
		if i < len(qr) {
			left = qr[i]
		}
		right := ""
		if i < len(lines) {
			right = lines[i]
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(left + "  " + right)
	}
	return b.String()
}

// ansiHardWrap cuts plain text into lines of w cells.
func ansiHardWrap(s string, w int) string {
	if w <= 0 || len(s) <= w {
		return s
	}
	var parts []string
	for len(s) > w {
		parts = append(parts, s[:w])
		s = s[w:]
	}
	return strings.Join(append(parts, s), "\n")
}

// enrollScreen is the only screen of a session confined to enrollment: the
// member scans the code, types a code from the app, and logs in again.
type enrollScreen struct {
	e        *env
	w, h     int
	deadline time.Time
	en       *enrollment
	code     textinput.Model
	err      string
	busy     bool
	done     bool
}

// enrollDoneMsg is the outcome of ConfirmEnrollment.
type enrollDoneMsg struct{ err error }

// enrollTickMsg updates the time left.
type enrollTickMsg struct{}

func newEnrollScreen(e *env, deadline time.Time) *enrollScreen {
	s := &enrollScreen{e: e, deadline: deadline}
	s.en = newEnrollment(e.st, store.NewEnrollment(e.actor.Name))
	s.code = textinput.New()
	e.st.styleInput(&s.code)
	s.code.Prompt = "> "
	s.code.Placeholder = "123456"
	s.code.CharLimit = 8
	s.code.Width = 10
	return s
}

func (s *enrollScreen) title() string            { return "Enrollment" }
func (s *enrollScreen) capturing() bool          { return false }
func (s *enrollScreen) deactivate()              {}
func (s *enrollScreen) setSize(w, h int) tea.Cmd { s.w, s.h = w, h; return nil }

func (s *enrollScreen) activate() tea.Cmd {
	return tea.Batch(s.code.Focus(), s.scheduleTick())
}

func (s *enrollScreen) scheduleTick() tea.Cmd {
	if s.deadline.IsZero() {
		return nil
	}
	return s.e.tick(time.Second, func(time.Time) tea.Msg { return enrollTickMsg{} })
}

func (s *enrollScreen) expired() bool {
	return !s.deadline.IsZero() && !s.e.now().Before(s.deadline)
}

// timeLeft is shown in the header.
func (s *enrollScreen) timeLeft() string {
	if s.done || s.deadline.IsZero() {
		return ""
	}
	left := s.deadline.Sub(s.e.now())
	if left <= 0 {
		return s.e.st.err.Render("time is up")
	}
	left = left.Truncate(time.Second)
	return s.e.st.warn.Render(fmt.Sprintf("time left %d:%02d", int(left/time.Minute), int(left%time.Minute/time.Second)))
}

func quitCmd() tea.Msg { return quitMsg{} }

func (s *enrollScreen) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case enrollTickMsg:
		if s.done || s.expired() {
			return nil
		}
		return s.scheduleTick()
	case enrollDoneMsg:
		s.busy = false
		if msg.err != nil {
			s.err = store.ErrorMessage(msg.err)
			s.e.fail(msg.err)
			s.code.Reset()
			return nil
		}
		s.done = true
		s.err = ""
		s.en = nil // the secret and recovery codes leave memory
		s.code.Reset()
		s.code.Blur()
		s.e.good("Enrolled. Log in again with your key and a code from your app.")
		return s.e.tick(5*time.Second, func(time.Time) tea.Msg { return quitMsg{} })
	case tea.KeyMsg:
		if s.done || s.expired() {
			return quitCmd
		}
		if s.busy {
			return nil
		}
		if keyMatches(msg, s.e.keys.Submit) {
			return s.submit()
		}
		if msg.Type == tea.KeyRunes {
			for _, r := range msg.Runes {
				if (r < '0' || r > '9') && r != ' ' {
					return nil // codes are digits
				}
			}
		}
		var cmd tea.Cmd
		s.code, cmd = s.code.Update(msg)
		s.err = ""
		return cmd
	}
	return nil
}

func (s *enrollScreen) submit() tea.Cmd {
	code := strings.TrimSpace(s.code.Value())
	if code == "" {
		s.err = "type the 6-digit code your app shows for Backroom"
		return nil
	}
	s.busy = true
	st, actor, fp, enr := s.e.store, s.e.actor, s.e.fp, s.en.e
	return s.e.call(func(ctx context.Context) tea.Msg {
		return enrollDoneMsg{err: st.ConfirmEnrollment(ctx, actor, fp, enr, code)}
	})
}

func (s *enrollScreen) help() helpKeys {
	k := s.e.keys
	if s.done {
		return helpKeys{short: []key.Binding{}, full: [][]key.Binding{{k.ForceQuit}}}
	}
	submit := key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "confirm code"))
	return helpKeys{short: []key.Binding{submit}, full: [][]key.Binding{{submit}}}
}

func (s *enrollScreen) view() string {
	st := s.e.st
	if s.done {
		return "\n" + st.ok.Render(wrap("Enrolled. Log in again with your key and a code from your app.", s.w)) +
			"\n\n" + st.dim.Render("Press any key to close (it closes by itself in 5 s).")
	}
	if s.expired() {
		return "\n" + st.err.Render(wrap("The time to enroll is over. Log in again with your key to start over.", s.w)) +
			"\n\n" + st.dim.Render("Press any key to close.")
	}
	head := []string{
		st.heading.Render("Set up your authenticator app"),
		"Scan the code, or type the secret.",
		"",
	}
	tail := []string{"", "Code from the app:", s.code.View()}
	switch {
	case s.busy:
		tail = append(tail, st.dim.Render("checking…"))
	case s.err != "":
		tail = append(tail, strings.Split(st.err.Render(wrap(clean(s.err), max(20, s.w-45))), "\n")...)
	}
	return s.en.render(st, s.w, s.h, head, tail, false)
}
