package tui

import (
	"net/url"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/mdp/qrterminal/v3"
)

// qrCompact drops the otpauth parameters that only restate the defaults
// of every authenticator app (SHA1, 6 digits, 30 s), so that the code is a
// size smaller and fits an 80x24 terminal beside its text.
func qrCompact(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "otpauth" {
		return uri
	}
	q := u.Query()
	for k, def := range map[string]string{"algorithm": "SHA1", "digits": "6", "period": "30"} {
		if q.Get(k) == def {
			q.Del(k)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// qrCell is one character cell: two modules, top and bottom. A half that
// lies outside the code (and its quiet zone) is left to the terminal.
type qrCell struct{ top, bottom, topOut, bottomOut bool } // true: dark module

// qrLines renders text as a QR code (low error correction) in half blocks
// with a quiet zone of quiet modules. With colour it is drawn explicitly
// black on white so it scans on dark and light terminals alike; without
// colour, light modules use the terminal's own background or foreground,
// whichever is light.
func qrLines(st *styles, text string, quiet int) []string {
	// qrterminal lays the code out; single letters mark the cells so they
	// can be drawn here with the session's styles.
	var sb strings.Builder
	qrterminal.GenerateWithConfig(text, qrterminal.Config{
		Level:          qrterminal.L,
		Writer:         &sb,
		HalfBlocks:     true,
		WhiteChar:      "W",
		BlackChar:      "B",
		WhiteBlackChar: "U", // top light, bottom dark
		BlackWhiteChar: "L", // top dark, bottom light
		QuietZone:      quiet,
	})
	raw := strings.Split(strings.TrimRight(sb.String(), "\n"), "\n")
	out := make([]string, 0, len(raw))
	for i, line := range raw {
		cells := make([]qrCell, 0, len(line))
		for _, c := range line {
			var cell qrCell
			switch c {
			case 'B':
				cell = qrCell{top: true, bottom: true}
			case 'U':
				cell = qrCell{bottom: true}
			case 'L':
				cell = qrCell{top: true}
			}
			// An odd quiet zone starts with a half line whose top is
			// outside; an even one ends with a half line whose bottom is.
			if quiet%2 == 1 && i == 0 {
				cell.topOut = true
			}
			if quiet%2 == 0 && i == len(raw)-1 {
				cell.bottomOut = true
			}
			cells = append(cells, cell)
		}
		out = append(out, st.qrRow(cells))
	}
	return out
}

// qrRow draws one row of cells, merging runs of equal cells into one
// styled span.
func (s *styles) qrRow(cells []qrCell) string {
	var b strings.Builder
	for i := 0; i < len(cells); {
		j := i
		for j < len(cells) && cells[j] == cells[i] {
			j++
		}
		b.WriteString(s.qrSpan(cells[i], j-i))
		i = j
	}
	return b.String()
}

func (s *styles) qrSpan(c qrCell, n int) string {
	if !s.ascii {
		col := func(dark bool) lipgloss.CompleteColor {
			if dark {
				return s.qrDark
			}
			return s.qrLight
		}
		st := s.r.NewStyle()
		switch {
		case c.topOut:
			return st.Foreground(col(c.bottom)).Render(strings.Repeat("▄", n))
		case c.bottomOut:
			return st.Foreground(col(c.top)).Render(strings.Repeat("▀", n))
		}
		return st.Foreground(col(c.top)).Background(col(c.bottom)).Render(strings.Repeat("▀", n))
	}
	// No colour: draw the light modules in the foreground on a dark
	// terminal, and the dark ones on a light terminal.
	lightFg := s.r.HasDarkBackground()
	ink := func(dark, out bool) bool {
		if out {
			return false
		}
		if lightFg {
			return !dark
		}
		return dark
	}
	top, bottom := ink(c.top, c.topOut), ink(c.bottom, c.bottomOut)
	var ch string
	switch {
	case top && bottom:
		ch = "█"
	case top:
		ch = "▀"
	case bottom:
		ch = "▄"
	default:
		ch = " "
	}
	return strings.Repeat(ch, n)
}
