package sshd

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// syncWriter collects what frames writes.
type syncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// take returns what was written since the last take.
func (w *syncWriter) take() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.b.String()
	w.b.Reset()
	return s
}

func TestFramesFirstViewAtOnceThenAtMostFPS(t *testing.T) {
	out := &syncWriter{}
	f := newFrames(out, 1, 20, 3) // one frame a second: the second view must wait
	f.start()
	if got := out.take(); !strings.Contains(got, "\x1b[?1049h") || !strings.Contains(got, "\x1b[?25l") {
		t.Fatalf("start did not enter the alternate screen with the cursor hidden: %q", got)
	}
	f.show("Backroom\nline two\nline three")
	if got := stripANSI(out.take()); !strings.Contains(got, "Backroom") || !strings.Contains(got, "line three") {
		t.Fatalf("the first view was not drawn at once: %q", got)
	}
	f.show("Backroom\nline 2\nline three")
	f.show("Backroom\nline TWO\nline three")
	if got := out.take(); got != "" {
		t.Fatalf("a second view within the frame interval was drawn at once: %q", got)
	}
	f.stop(nil)
	got := out.take()
	plain := stripANSI(got)
	if !strings.Contains(plain, "line TWO") || strings.Contains(plain, "line 2") {
		t.Fatalf("stop did not draw the latest view (only): %q", got)
	}
	if strings.Contains(plain, "Backroom") || strings.Contains(plain, "line three") {
		t.Fatalf("unchanged lines were drawn again: %q", got)
	}
	if !strings.Contains(got, "\x1b[?1049l") || !strings.Contains(got, "\x1b[?25h") {
		t.Fatalf("stop did not leave the alternate screen with the cursor shown: %q", got)
	}
	f.show("after the end")
	if got := out.take(); got != "" {
		t.Fatalf("drew after stop: %q", got)
	}
}

func TestFramesDeferredViewIsDrawnAndIdleHasNoTimer(t *testing.T) {
	out := &syncWriter{}
	f := newFrames(out, 50, 20, 2)
	f.start()
	f.show("one")
	f.show("two") // within 20 ms of the first: deferred
	deadline := time.Now().Add(5 * time.Second)
	var seen string
	for time.Now().Before(deadline) && !strings.Contains(seen, "two") {
		time.Sleep(5 * time.Millisecond)
		seen += stripANSI(out.take())
	}
	if !strings.Contains(seen, "two") {
		t.Fatal("the deferred view was never drawn")
	}
	f.mu.Lock()
	idle := f.timer == nil && !f.pending
	f.mu.Unlock()
	if !idle {
		t.Fatal("frames keeps a timer while nothing changes")
	}
	f.show("two") // the same view again: nothing to draw
	if got := out.take(); got != "" {
		t.Fatalf("an unchanged view was drawn again: %q", got)
	}
	f.stop(nil)
}

func TestFramesResizeRedrawsEveryLine(t *testing.T) {
	out := &syncWriter{}
	f := newFrames(out, 1000, 20, 2)
	f.show("header\nbody")
	out.take()
	time.Sleep(5 * time.Millisecond)
	f.resize(10, 2)
	f.show("header\nbody")
	if got := stripANSI(out.take()); !strings.Contains(got, "header") || !strings.Contains(got, "body") {
		t.Fatalf("after a resize the frame was not drawn whole: %q", got)
	}
	time.Sleep(5 * time.Millisecond)
	f.show("a line longer than ten columns\nbody")
	if got := stripANSI(out.take()); !strings.Contains(got, "a line lon") || strings.Contains(got, "longer") {
		t.Fatalf("a line wider than the terminal was not cut: %q", got)
	}
}
