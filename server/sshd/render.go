package sshd

import (
	"io"
	"strings"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
)

// frames draws a console on the session's alternate screen, in place of
// Bubble Tea's standard renderer (the program runs with tea.WithoutRenderer).
//
// The standard renderer flushes on a ticker: every session wakes FPS times a
// second for as long as it lives, idle or not (300 idle sessions at 30 FPS
// are 9,000 wake-ups and frame copies a second), and the first frame waits
// for the first tick (1/FPS after start). frames draws when the view
// changes instead: at once when the last frame is at least 1/FPS old, else
// when that interval is up, the latest view winning. An idle session costs
// nothing.
//
// The drawing itself is the standard renderer's, for the alternate screen:
// only the lines that changed are written, lines are cut to the terminal's
// width, and what a shorter line or frame leaves behind is erased.
type frames struct {
	out      io.Writer
	interval time.Duration

	mu       sync.Mutex
	width    int
	height   int
	view     string // the latest view
	pending  bool   // view is not on the screen yet
	timer    *time.Timer
	lastAt   time.Time // when the last frame was drawn
	lines    []string  // the lines on the screen; nil: draw every line
	drawn    int       // how many lines are on the screen
	started  bool
	finished bool
	want     bool   // a view was skipped and is still to be drawn
	poke     func() // asks the program for a view (a redraw message)
}

func newFrames(out io.Writer, fps, width, height int) *frames {
	return &frames{out: out, interval: time.Second / time.Duration(max(fps, 1)), width: width, height: height}
}

// start enters the alternate screen, hides the cursor and turns bracketed
// paste on, as Bubble Tea does at start.
func (f *frames) start() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started = true
	_, _ = io.WriteString(f.out, ansi.HideCursor+ansi.SetModeAltScreenSaveCursor+ansi.EraseEntireScreen+
		ansi.CursorHomePosition+ansi.HideCursor+ansi.SetModeBracketedPaste)
}

// stop draws the latest view if it is not on the screen yet, then leaves
// the alternate screen with the cursor shown, as Bubble Tea does at exit.
// Nothing is drawn afterwards.
func (f *frames) stop(lastView func() string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.finished {
		return
	}
	if f.timer != nil {
		f.timer.Stop()
		f.timer = nil
	}
	if f.want && lastView != nil {
		f.view, f.pending, f.want = lastView(), true, false
	}
	f.draw()
	f.finished = true
	if f.started {
		_, _ = io.WriteString(f.out, ansi.EraseEntireLine+"\r"+ansi.ResetModeBracketedPaste+ansi.ShowCursor+
			ansi.ResetModeAltScreenSaveCursor+ansi.ShowCursor)
	}
}

// resize records the terminal's new size; the next frame draws every line.
func (f *frames) resize(w, h int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if w == f.width && h == f.height {
		return
	}
	f.width, f.height = w, h
	f.lines = nil
}

// show makes view the one to draw: now, or when the frame interval is up.
func (f *frames) show(view string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.finished || (!f.pending && f.lines != nil && view == f.view) {
		return
	}
	f.view, f.pending = view, true
	if f.timer != nil {
		return // a frame is already due
	}
	if wait := f.interval - time.Since(f.lastAt); wait > 0 {
		f.timer = time.AfterFunc(wait, f.due)
		return
	}
	f.draw()
}

func (f *frames) due() {
	f.mu.Lock()
	f.timer = nil
	if f.finished {
		f.mu.Unlock()
		return
	}
	f.draw()
	want, poke := f.want, f.poke
	f.mu.Unlock()
	if want && poke != nil {
		poke() // ask the program for the view it skipped
	}
}

// ready reports whether a view asked for now would be drawn at once. When
// it would not (a frame was drawn less than 1/FPS ago), the view is not
// even built: frames remembers that one is wanted and, when the interval
// is up, pokes the program for it. A burst of updates (a session
// starting, a page loading) then builds one view instead of one each.
func (f *frames) ready() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.finished {
		return false
	}
	if f.timer == nil && time.Since(f.lastAt) >= f.interval {
		f.want = false
		return true
	}
	f.want = true
	if f.timer == nil {
		f.timer = time.AfterFunc(f.interval-time.Since(f.lastAt), f.due)
	}
	return false
}

// draw writes the pending view. f.mu is held.
func (f *frames) draw() {
	if !f.pending {
		return
	}
	f.pending = false
	f.lastAt = time.Now()
	view := f.view
	if view == "" {
		view = " " // as Bubble Tea: clear the screen
	}
	lines := strings.Split(view, "\n")
	if f.height > 0 && len(lines) > f.height {
		lines = lines[len(lines)-f.height:]
	}
	var b strings.Builder
	b.WriteString(ansi.CursorHomePosition)
	whole := f.lines == nil
	for i, line := range lines {
		if !whole && i < len(f.lines) && f.lines[i] == line {
			if i < len(lines)-1 {
				b.WriteByte('\n') // unchanged: move down
			}
			continue
		}
		if i == 0 && whole {
			b.WriteByte('\r')
		}
		if f.width > 0 {
			line = ansi.Truncate(line, f.width, "")
		}
		b.WriteString(line)
		if ansi.StringWidth(line) < f.width {
			b.WriteString(ansi.EraseLineRight)
		}
		if i < len(lines)-1 {
			b.WriteString("\r\n")
		}
	}
	if f.drawn > len(lines) {
		b.WriteString(ansi.EraseScreenBelow)
	}
	b.WriteString(ansi.CursorPosition(0, len(lines)))
	f.drawn = len(lines)
	f.lines = lines
	_, _ = io.WriteString(f.out, b.String())
}

// framedModel hands frames every view Bubble Tea asks the model for (after
// Init and after each update, and the last one at exit), and the terminal's
// size changes.
type framedModel struct {
	tea.Model
	f *frames
}

func (m framedModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if ws, ok := msg.(tea.WindowSizeMsg); ok {
		m.f.resize(ws.Width, ws.Height)
	}
	var cmd tea.Cmd
	m.Model, cmd = m.Model.Update(msg)
	return m, cmd
}

func (m framedModel) View() string {
	if !m.f.ready() {
		return "" // built later, when the frame is due (see frames.ready)
	}
	v := m.Model.View()
	m.f.show(v)
	return v
}

// redrawMsg asks for a view that frames skipped.
type redrawMsg struct{}
