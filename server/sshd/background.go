package sshd

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// queryBackground asks the terminal for its background colour (OSC 11).
// Nothing waits for the answer: the console starts with a dark background
// assumed, and switches when (if) the terminal answers.
const queryBackground = "\x1b]11;?\x07"

// backgroundReader passes input through, taking out the terminal's answer
// to queryBackground (when it comes within the window) and reporting
// whether the background is dark.
type backgroundReader struct {
	r      io.Reader
	until  time.Time
	report func(dark bool)
	once   sync.Once
	done   bool
}

func (b *backgroundReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n == 0 || b.done {
		return n, err
	}
	if time.Now().After(b.until) {
		b.done = true
		return n, err
	}
	start := bytes.Index(p[:n], []byte("\x1b]11;"))
	if start < 0 {
		return n, err
	}
	rest := p[start:n]
	end, termLen := bytes.IndexByte(rest, 0x07), 1
	if st := bytes.Index(rest, []byte("\x1b\\")); st >= 0 && (end < 0 || st < end) {
		end, termLen = st, 2
	}
	if end < 0 {
		return n, err
	}
	if dark, ok := parseOSCColor(string(rest[len("\x1b]11;"):end])); ok {
		b.once.Do(func() { b.report(dark) })
	}
	b.done = true
	m := copy(p[start:], p[start+end+termLen:n])
	return start + m, err
}

// parseOSCColor reads "rgb:RRRR/GGGG/BBBB" (1 to 4 hex digits a channel)
// and reports whether the colour is dark.
func parseOSCColor(s string) (dark, ok bool) {
	s, found := strings.CutPrefix(s, "rgb:")
	if !found {
		return false, false
	}
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return false, false
	}
	var c [3]float64
	for i, h := range parts {
		if len(h) == 0 || len(h) > 4 {
			return false, false
		}
		v, err := strconv.ParseUint(h, 16, 16)
		if err != nil {
			return false, false
		}
		c[i] = float64(v) / float64(uint64(1)<<(4*len(h))-1)
	}
	lum := 0.2126*c[0] + 0.7152*c[1] + 0.0722*c[2]
	return lum < 0.5, true
}
