package tui

import (
	"strconv"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/progress"
	"github.com/charmbracelet/bubbles/table"
	"github.com/charmbracelet/bubbles/textarea"
	"github.com/charmbracelet/bubbles/textinput"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// styles are built once per session from its renderer, so that colour
// profile and background come from the client's terminal (as decided by the
// server), never from the server's own.
type styles struct {
	r     *lipgloss.Renderer
	ascii bool // no colour: mark things with brackets and symbols instead

	title     lipgloss.Style
	user      lipgloss.Style
	dim       lipgloss.Style
	label     lipgloss.Style
	value     lipgloss.Style
	heading   lipgloss.Style
	ok        lipgloss.Style
	err       lipgloss.Style
	warn      lipgloss.Style
	alert     lipgloss.Style // header counters that need attention
	tab       lipgloss.Style
	tabActive lipgloss.Style
	notice    lipgloss.Style
	plain     lipgloss.Style

	badgeTest lipgloss.Style
	badgeLive lipgloss.Style
	badgeNone lipgloss.Style

	table  table.Styles
	help   help.Styles
	prompt lipgloss.Style
	input  lipgloss.Style
	holder lipgloss.Style
	cursor lipgloss.Style

	qrDark  lipgloss.CompleteColor
	qrLight lipgloss.CompleteColor

	// Progress bar colours (bubbles/progress takes hex strings, not
	// adaptive colours): resolved when drawn, since the server may learn
	// the terminal's background after the first frame.
	barFull  lipgloss.CompleteAdaptiveColor
	barEmpty lipgloss.CompleteAdaptiveColor
}

// shade is one colour as each colour profile shows it: the 256- and
// 16-colour forms are the ones termenv would derive from the hex value
// (a test keeps them so), written out because deriving them costs a
// colour-distance search on every render of every session.
func shade(hex string, ansi256, ansi int) lipgloss.CompleteColor {
	return lipgloss.CompleteColor{TrueColor: hex, ANSI256: strconv.Itoa(ansi256), ANSI: strconv.Itoa(ansi)}
}

// adaptive picks light or dark by the terminal's background.
func adaptive(light, dark lipgloss.CompleteColor) lipgloss.CompleteAdaptiveColor {
	return lipgloss.CompleteAdaptiveColor{Light: light, Dark: dark}
}

func newStyles(r *lipgloss.Renderer) *styles {
	// Colours: each is legible on dark and light terminals; with colour
	// off the styles still tell things apart by bold, brackets and markers.
	var (
		colAccent = adaptive(shade("#4B2FB0", 55, 12), shade("#A594FF", 141, 13))
		colDim    = adaptive(shade("#5F5F5F", 59, 8), shade("#9A9A9A", 102, 8))
		colOK     = adaptive(shade("#146C2E", 22, 2), shade("#6BD88A", 78, 10))
		colErr    = adaptive(shade("#B00020", 124, 1), shade("#FF7070", 203, 9))
		colWarn   = adaptive(shade("#7A4F00", 94, 3), shade("#FFC857", 221, 11))
		colSelBg  = adaptive(shade("#DCD5FA", 189, 13), shade("#3C3366", 59, 8))
		colSelFg  = adaptive(shade("#1A1A1A", 232, 0), shade("#FFFFFF", 231, 15))
		colTabBg  = colAccent
		colTabFg  = adaptive(shade("#FFFFFF", 231, 15), shade("#14102A", 232, 0))
		// Badges: white on a saturated background reads on both.
		badgeWhite = shade("#FFFFFF", 231, 15)
		badgeTest  = shade("#1F7A3A", 29, 2)
		badgeLive  = shade("#C8001E", 160, 9)
		badgeNone  = shade("#6B6B6B", 59, 8)
	)
	s := &styles{r: r, ascii: r.ColorProfile() == termenv.Ascii}
	n := r.NewStyle
	s.plain = n()
	s.title = n().Bold(true).Foreground(colAccent)
	s.user = n().Bold(true)
	s.dim = n().Foreground(colDim)
	s.label = n().Foreground(colDim)
	s.value = n()
	s.heading = n().Bold(true).Foreground(colAccent)
	s.ok = n().Foreground(colOK)
	s.err = n().Bold(true).Foreground(colErr)
	s.warn = n().Bold(true).Foreground(colWarn)
	s.alert = n().Bold(true).Foreground(colWarn)
	s.tab = n().Foreground(colDim)
	s.tabActive = n().Bold(true).Foreground(colTabFg).Background(colTabBg)
	s.notice = n().Bold(true).Reverse(true).Foreground(colWarn)

	badge := n().Bold(true).Foreground(badgeWhite)
	s.badgeTest = badge.Background(badgeTest)
	s.badgeLive = badge.Background(badgeLive).Blink(false)
	s.badgeNone = badge.Background(badgeNone)

	s.table = table.Styles{
		Header:   n().Bold(true).Foreground(colAccent).Padding(0, 1),
		Cell:     n().Padding(0, 1),
		Selected: n().Bold(true).Foreground(colSelFg).Background(colSelBg),
	}
	key := n().Foreground(colAccent)
	desc := n().Foreground(colDim)
	sep := n().Foreground(colDim)
	s.help = help.Styles{
		Ellipsis:       sep,
		ShortKey:       key,
		ShortDesc:      desc,
		ShortSeparator: sep,
		FullKey:        key,
		FullDesc:       desc,
		FullSeparator:  sep,
	}
	s.prompt = n().Bold(true).Foreground(colAccent)
	s.input = n()
	s.holder = n().Foreground(colDim)
	s.cursor = n()

	s.qrDark = shade("#000000", 16, 0)
	s.qrLight = shade("#FFFFFF", 231, 15)
	s.barFull, s.barEmpty = colAccent, colDim
	return s
}

// badge renders the Stripe key's mode badge. Without colour it is bracketed
// and a live key is flagged with exclamation marks.
func (s *styles) badge(text string) string {
	live := len(text) >= 4 && text[:4] == "LIVE"
	if s.ascii {
		if live {
			return "[!" + text + "!]"
		}
		return "[" + text + "]"
	}
	switch {
	case live:
		return s.badgeLive.Render(" ● " + text + " ")
	case text == "NONE" || text == "…":
		return s.badgeNone.Render(" " + text + " ")
	default:
		return s.badgeTest.Render(" " + text + " ")
	}
}

// styleInput applies the session's styles to a text input, turns the
// cursor's blinking off (a blinking cursor is a timer per session) and
// unbinds the clipboard paste key (it would read the server's clipboard;
// terminal paste still works).
func (s *styles) styleInput(ti *textinput.Model) {
	ti.PromptStyle = s.prompt
	ti.TextStyle = s.input
	ti.PlaceholderStyle = s.holder
	ti.CompletionStyle = s.holder
	ti.Cursor.Style = s.cursor
	ti.Cursor.TextStyle = s.input
	ti.Cursor.SetMode(cursor.CursorStatic)
	ti.KeyMap.Paste.Unbind()
}

// styleTextarea applies the session's styles to a text area (its defaults
// come from the process-wide renderer), turns the cursor's blinking off
// and unbinds the clipboard paste key, as styleInput does.
func (s *styles) styleTextarea(ta *textarea.Model) {
	focused := textarea.Style{
		Base:             s.plain,
		CursorLine:       s.plain,
		CursorLineNumber: s.dim,
		EndOfBuffer:      s.dim,
		LineNumber:       s.dim,
		Placeholder:      s.holder,
		Prompt:           s.prompt,
		Text:             s.input,
	}
	blurred := focused
	blurred.Text, blurred.CursorLine = s.dim, s.dim
	ta.FocusedStyle, ta.BlurredStyle = focused, blurred
	ta.Cursor.Style = s.cursor
	ta.Cursor.TextStyle = s.input
	ta.Cursor.SetMode(cursor.CursorStatic)
	ta.KeyMap.Paste.Unbind()
	ta.ShowLineNumbers = false
	ta.Prompt = "│ "
	if s.ascii {
		ta.Prompt = "| "
	}
}

// progressBar is a static bubbles/progress bar in the session's colour
// profile. It is drawn with ViewAs: no animation frames, no timers.
func (s *styles) progressBar(width int) progress.Model {
	p := progress.New(
		progress.WithColorProfile(s.r.ColorProfile()),
		progress.WithWidth(max(10, width)),
	)
	p.PercentageStyle = s.plain
	if s.ascii {
		p.Full, p.Empty = '#', '.'
	}
	return p
}

// viewBar draws p at percent in the colours for the session's background
// as it is known now.
func (s *styles) viewBar(p progress.Model, percent float64) string {
	p.FullColor, p.EmptyColor = s.barFull.Light.TrueColor, s.barEmpty.Light.TrueColor
	if s.r.HasDarkBackground() {
		p.FullColor, p.EmptyColor = s.barFull.Dark.TrueColor, s.barEmpty.Dark.TrueColor
	}
	return p.ViewAs(percent)
}

// secretWarning says that no Stripe webhook secret is configured (the
// endpoint then refuses every event).
func (s *styles) secretWarning() string {
	if s.ascii {
		return "! webhook secret not set"
	}
	return s.err.Render("⚠ webhook secret not set")
}
