package tui

import (
	"strconv"
	"testing"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// The palette spells out each colour's 256- and 16-colour forms; they must
// be the ones termenv derives from the hex value, or a terminal would show
// another colour than the one designed.
func TestPaletteShadesMatchTermenv(t *testing.T) {
	s := newStyles(testRenderer(false))
	var colours []lipgloss.TerminalColor
	for _, st := range []lipgloss.Style{s.title, s.dim, s.ok, s.err, s.warn, s.tab, s.tabActive, s.notice,
		s.table.Selected, s.badgeTest, s.badgeLive, s.badgeNone} {
		colours = append(colours, st.GetForeground(), st.GetBackground())
	}
	colours = append(colours, s.barFull, s.barEmpty, s.qrDark, s.qrLight)
	checked := 0
	check := func(c lipgloss.CompleteColor) {
		t.Helper()
		checked++
		want256 := int(termenv.ANSI256.Color(c.TrueColor).(termenv.ANSI256Color))
		want16 := int(termenv.ANSI.Color(c.TrueColor).(termenv.ANSIColor))
		if c.ANSI256 != strconv.Itoa(want256) || c.ANSI != strconv.Itoa(want16) {
			t.Errorf("%s: written as 256-colour %s and 16-colour %s; termenv derives %d and %d", c.TrueColor, c.ANSI256, c.ANSI, want256, want16)
		}
	}
	for _, c := range colours {
		switch c := c.(type) {
		case lipgloss.CompleteAdaptiveColor:
			check(c.Light)
			check(c.Dark)
		case lipgloss.CompleteColor:
			check(c)
		case lipgloss.NoColor:
		default:
			t.Errorf("colour %#v is not spelled out for each profile (it would be converted on every render)", c)
		}
	}
	if checked < 20 {
		t.Fatalf("only %d colours checked", checked)
	}
}

// Each profile gets its own form of a colour: a 256-colour terminal the
// 256-colour index, a 16-colour one a basic colour, no colour none.
func TestPaletteRendersPerProfile(t *testing.T) {
	for _, tc := range []struct {
		profile termenv.Profile
		colour  termenv.Color // the accent on a dark background, as that profile shows it
	}{
		{termenv.TrueColor, termenv.TrueColor.Color("#A594FF")},
		{termenv.ANSI256, termenv.ANSI256Color(141)},
		{termenv.ANSI, termenv.ANSIColor(13)},
		{termenv.Ascii, nil},
	} {
		r := lipgloss.NewRenderer(nil)
		r.SetColorProfile(tc.profile)
		r.SetHasDarkBackground(true)
		want := "B"
		if tc.colour != nil {
			want = "\x1b[1;" + tc.colour.Sequence(false) + "mB"
		}
		got := newStyles(r).title.Render("B")
		if len(got) < len(want) || got[:len(want)] != want {
			t.Errorf("profile %v: title renders %q, want it to start %q", tc.profile, got, want)
		}
	}
}
