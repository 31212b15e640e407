package tui

import (
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
)

// textInput is a text input in the session's styles.
func (s *styles) textInput(prompt, placeholder string, limit int) textinput.Model {
	ti := textinput.New()
	s.styleInput(&ti)
	ti.Prompt = prompt
	ti.Placeholder = placeholder
	ti.CharLimit = limit
	return ti
}

// searchInput is a list's "/" search holding value, the cursor at its end
// (width 0: as wide as the value).
func (s *styles) searchInput(placeholder string, limit, width int, value string) *textinput.Model {
	ti := s.textInput("/", placeholder, limit)
	ti.Width = width
	ti.SetValue(value)
	ti.CursorEnd()
	return &ti
}

// promptKind is the kind of question a prompt asks.
type promptKind int

const (
	promptYesNo  promptKind = iota // y confirms
	promptTyped                    // confirmed by typing want exactly
	promptInput                    // a value handed to done
	promptChoice                   // keys of the screen's own (the screen handles them)
)

// prompt is a question asked on the last lines of a screen's body.
type prompt struct {
	kind     promptKind
	text     string
	want     string // promptTyped: what must be typed
	mismatch string // promptTyped: the error when it is not
	ti       textinput.Model
	err      string
	// done acts on the answer ("" for y); a non-empty message keeps the
	// prompt open and shows it.
	done func(value string) (tea.Cmd, string)
}

// open readies p to be shown: its text cleaned and, when the answer is
// typed, an input of limit characters focused.
func (p *prompt) open(st *styles, w, limit int) tea.Cmd {
	p.text = clean(p.text)
	if p.kind != promptTyped && p.kind != promptInput {
		return nil
	}
	p.ti = st.textInput("> ", "", limit)
	p.ti.Width = max(10, w-4)
	return p.ti.Focus()
}

// key answers p with k; it reports whether p is closed (answered, declined
// or cancelled).
func (p *prompt) key(e *env, k tea.KeyMsg) (tea.Cmd, bool) {
	keys := e.keys
	if p.kind == promptYesNo {
		switch {
		case keyMatches(k, keys.Yes):
			cmd, _ := p.done("")
			return cmd, true
		case keyMatches(k, keys.No):
			e.info("Nothing changed.")
			return nil, true
		}
		return nil, false
	}
	switch {
	case keyMatches(k, keys.Cancel):
		e.info("Nothing changed.")
		return nil, true
	case keyMatches(k, keys.Submit):
		v := strings.TrimSpace(p.ti.Value())
		if p.kind == promptTyped && v != p.want {
			p.err = p.mismatch
			p.ti.Reset()
			return nil, false
		}
		cmd, msg := p.done(v)
		if msg != "" {
			p.err = msg
			return nil, false
		}
		return cmd, true
	}
	var cmd tea.Cmd
	p.ti, cmd = p.ti.Update(k)
	p.err = ""
	return cmd, false
}

// lines renders p for the bottom of the body, the question wrapped at w
// (0: not wrapped).
func (p *prompt) lines(st *styles, w int) []string {
	lines := strings.Split(st.warn.Render(wrap(p.text, w)), "\n")
	switch p.kind {
	case promptYesNo:
		lines[len(lines)-1] += st.dim.Render("  y/n")
	case promptTyped, promptInput:
		lines = append(lines, p.ti.View())
	}
	if p.err != "" {
		lines = append(lines, st.err.Render(clean(p.err)))
	}
	return lines
}

func (p *prompt) help(k *keyMap) helpKeys {
	if p.kind == promptYesNo {
		return flatHelp(k.Yes, k.No, k.ForceQuit)
	}
	return flatHelp(k.Submit, k.Cancel, k.ForceQuit)
}

// formField is one line of a form: a text input, or a toggle between two
// options (the first when on).
type formField struct {
	label   string
	ti      textinput.Model
	options [2]string // empty for a text input
	on      bool
}

func inputField(st *styles, label, placeholder string, limit int) formField {
	return formField{label: label, ti: st.textInput("> ", placeholder, limit)}
}

func toggleField(label, yes, no string, on bool) formField {
	return formField{label: label, options: [2]string{yes, no}, on: on}
}

func (f *formField) isInput() bool { return f.options[0] == "" }

// form is a column of fields: tab/↓ and shift+tab/↑ move between them,
// enter moves on and submits on the last; space, ←/→, y and n set a
// toggle.
type form struct {
	fields []formField
	field  int // the one with the focus
	err    string
	busy   bool
	// busyText is shown while busy ("" means "Adding…").
	busyText string
}

// newForm builds a form; focus(0) starts it.
func newForm(fields ...formField) *form { return &form{fields: fields} }

// size sets the width of the inputs.
func (f *form) size(w int) {
	for i := range f.fields {
		f.fields[i].ti.Width = max(10, w)
	}
}

// value is what field i holds, trimmed.
func (f *form) value(i int) string { return strings.TrimSpace(f.fields[i].ti.Value()) }

// focus moves the focus to field i (wrapping around).
func (f *form) focus(i int) tea.Cmd {
	n := len(f.fields)
	f.field = (i + n) % n
	for j := range f.fields {
		f.fields[j].ti.Blur()
	}
	if fl := &f.fields[f.field]; fl.isInput() {
		return fl.ti.Focus()
	}
	return nil
}

// key handles a key while the form is open: cancel closes it, enter on
// the last field submits, the rest move or edit. Nothing happens while
// it is busy.
func (f *form) key(keys *keyMap, k tea.KeyMsg, submit func() tea.Cmd, cancel func()) tea.Cmd {
	switch {
	case f.busy:
		return nil
	case keyMatches(k, keys.Cancel):
		cancel()
		return nil
	case keyMatches(k, keys.Submit):
		if f.field < len(f.fields)-1 {
			return f.focus(f.field + 1)
		}
		return submit()
	case k.Type == tea.KeyTab || k.Type == tea.KeyDown:
		return f.focus(f.field + 1)
	case k.Type == tea.KeyShiftTab || k.Type == tea.KeyUp:
		return f.focus(f.field - 1)
	}
	var cmd tea.Cmd
	if fl := &f.fields[f.field]; fl.isInput() {
		fl.ti, cmd = fl.ti.Update(k)
	} else {
		switch k.String() {
		case " ", "left", "right":
			fl.on = !fl.on
		case "y", "Y":
			fl.on = true
		case "n", "N":
			fl.on = false
		}
	}
	f.err = ""
	return cmd
}

// view renders the form under head: a field a line (labels aligned, the
// focused one marked), the hint, then "Adding…" while busy and the error.
func (f *form) view(st *styles, w int, head, hint string) string {
	lw := 0
	for _, fl := range f.fields {
		lw = max(lw, lipgloss.Width(fl.label))
	}
	var b strings.Builder
	b.WriteString(head + "\n\n")
	for i, fl := range f.fields {
		mark := "  "
		if f.field == i {
			mark = "▸ "
			if st.ascii {
				mark = "> "
			}
		}
		v := fl.ti.View()
		if !fl.isInput() {
			v = "[ ] " + fl.options[0] + "  [x] " + fl.options[1]
			if fl.on {
				v = "[x] " + fl.options[0] + "  [ ] " + fl.options[1]
			}
		}
		b.WriteString(mark + st.label.Render(padRight(fl.label, lw+3)) + v + "\n")
	}
	b.WriteString("\n" + st.dim.Render(wrap(hint, w)) + "\n")
	if f.busy {
		text := f.busyText
		if text == "" {
			text = "Adding…"
		}
		b.WriteString(st.dim.Render(text) + "\n")
	}
	if f.err != "" {
		b.WriteString("\n" + st.err.Render(wrap(clean(f.err), w)) + "\n")
	}
	return b.String()
}

// flatHelp is the help of a context with a few keys: the same in short
// and in full.
func flatHelp(b ...key.Binding) helpKeys {
	return helpKeys{short: b, full: [][]key.Binding{b}}
}
