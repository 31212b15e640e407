package sshd

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestBackgroundReader(t *testing.T) {
	cases := []struct {
		in, out string
		dark    *bool
	}{
		{"jk", "jk", nil},
		{"\x1b]11;rgb:ffff/ffff/ffff\x07q", "q", ptr(false)},
		{"a\x1b]11;rgb:1e1e/1e1e/2e2e\x1b\\b", "ab", ptr(true)},
		{"\x1b]11;rgb:ff/ff/ff\x07", "", ptr(false)},
		{"\x1b]11;garbage\x07x", "x", nil},
	}
	for _, c := range cases {
		var got *bool
		r := &backgroundReader{r: strings.NewReader(c.in), until: time.Now().Add(time.Minute), report: func(d bool) { got = &d }}
		b, _ := io.ReadAll(r)
		if string(b) != c.out {
			t.Errorf("%q: passed %q, want %q", c.in, b, c.out)
		}
		if (got == nil) != (c.dark == nil) || (got != nil && *got != *c.dark) {
			t.Errorf("%q: dark = %v, want %v", c.in, deref(got), deref(c.dark))
		}
	}
}

func TestBackgroundReaderAfterWindowPassesEverything(t *testing.T) {
	in := "\x1b]11;rgb:ffff/ffff/ffff\x07"
	r := &backgroundReader{r: strings.NewReader(in), until: time.Now().Add(-time.Second), report: func(bool) { t.Error("reported after the window") }}
	b, _ := io.ReadAll(r)
	if string(b) != in {
		t.Fatalf("got %q", b)
	}
}

func ptr(b bool) *bool { return &b }

func deref(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}
