package tui

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
)

// sessionsRefresh is how often the Sessions screen refreshes while it is
// visible (and only then).
const sessionsRefresh = 2 * time.Second

// sessionsMsg is a fresh list of live sessions.
type sessionsMsg struct {
	seq  int
	list []SessionInfo
}

// sessionsTickMsg asks for a refresh; gen tells whether the screen is
// still the one that scheduled it.
type sessionsTickMsg struct{ gen int }

// sessionEndMsg is the outcome of ending a session.
type sessionEndMsg struct {
	user string
	err  error
}

// sessionsScreen lists live SSH sessions and ends them (admins only).
type sessionsScreen struct {
	e       *env
	w, h    int
	grid    *grid
	list    []SessionInfo // every live session, oldest first
	shown   []SessionInfo // after the search
	search  *textinput.Model
	query   string
	loaded  bool
	visible bool
	gen     int
	seq     int
	confirm *SessionInfo
}

func newSessionsScreen(e *env) *sessionsScreen {
	s := &sessionsScreen{e: e}
	s.grid = newGrid(e.st, []column{
		{title: "user", min: 10, max: 18, prio: 0},
		{title: "key", min: 16, max: 20, prio: 3},
		{title: "remote address", min: 21, max: 48, prio: 2},
		{title: "since (UTC)", min: 11, prio: 4},
		{title: "idle", min: 7, prio: 1},
	})
	return s
}

func (s *sessionsScreen) title() string   { return "Sessions" }
func (s *sessionsScreen) capturing() bool { return s.confirm != nil || s.search != nil }

func (s *sessionsScreen) setSize(w, h int) tea.Cmd {
	s.w, s.h = w, h
	s.grid.setSize(w, max(2, h-1))
	return nil
}

func (s *sessionsScreen) activate() tea.Cmd {
	s.visible = true
	s.gen++
	return tea.Batch(s.fetch(), s.schedule())
}

func (s *sessionsScreen) deactivate() {
	s.visible = false
	s.gen++ // the pending tick is ignored and not renewed
}

func (s *sessionsScreen) schedule() tea.Cmd {
	gen := s.gen
	return s.e.tick(sessionsRefresh, func(time.Time) tea.Msg { return sessionsTickMsg{gen: gen} })
}

func (s *sessionsScreen) fetch() tea.Cmd {
	s.seq++
	seq := s.seq
	reg := s.e.sessions
	return func() tea.Msg { return sessionsMsg{seq: seq, list: reg.List()} }
}

func shortFingerprint(fp string) string {
	const keep = 7 + 8 // "SHA256:" and eight characters
	if len(fp) <= keep {
		return fp
	}
	return fp[:keep] + "…"
}

func (s *sessionsScreen) fill(cursor int) {
	now := s.e.now()
	q := strings.ToLower(s.query)
	s.shown = s.shown[:0]
	for _, si := range s.list {
		if q == "" || strings.Contains(strings.ToLower(si.User+" "+si.RemoteAddr+" "+si.Fingerprint), q) {
			s.shown = append(s.shown, si)
		}
	}
	raw := make([][]string, len(s.shown))
	for i, si := range s.shown {
		user := si.User
		if si.ID == s.e.actor.SessionID && si.ID != "" {
			user += " (you)"
		}
		last := si.LastInput
		if last.IsZero() {
			last = si.Started
		}
		started := "—"
		if !si.Started.IsZero() {
			started = si.Started.UTC().Format("01-02 15:04")
		}
		raw[i] = []string{user, shortFingerprint(si.Fingerprint), si.RemoteAddr, started, fmtDuration(now.Sub(last))}
	}
	s.grid.setRows(raw, cursor)
}

func (s *sessionsScreen) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case sessionsTickMsg:
		if msg.gen != s.gen || !s.visible {
			return nil
		}
		return tea.Batch(s.fetch(), s.schedule())
	case sessionsMsg:
		if msg.seq != s.seq {
			return nil
		}
		list := slices.Clone(msg.list)
		slices.SortStableFunc(list, func(a, b SessionInfo) int { return a.Started.Compare(b.Started) })
		// Keep the cursor on the same session across refreshes.
		var cur string
		at := s.grid.cursor()
		if at >= 0 && at < len(s.shown) {
			cur = s.shown[at].ID
		}
		s.list, s.loaded = list, true
		s.fill(at)
		for i, si := range s.shown {
			if si.ID == cur && i != s.grid.cursor() {
				s.grid.setCursor(i)
			}
		}
		return nil
	case sessionEndMsg:
		if msg.err != nil {
			s.e.fail(msg.err)
		} else {
			s.e.good("Ended the session of " + msg.user + ".")
		}
		return s.fetch()
	case tea.KeyMsg:
		if s.confirm != nil {
			return s.confirmKey(msg)
		}
		if s.search != nil {
			return s.searchKey(msg)
		}
		keys := s.e.keys
		switch {
		case keyMatches(msg, keys.Search):
			ti := textinput.New()
			s.e.st.styleInput(&ti)
			ti.Prompt = "/"
			ti.Placeholder = "user, address or key"
			ti.CharLimit = 60
			ti.SetValue(s.query)
			ti.CursorEnd()
			s.search = &ti
			return s.search.Focus()
		case keyMatches(msg, keys.Back):
			if s.query != "" {
				s.query = ""
				s.fill(0)
			}
		case keyMatches(msg, keys.Up):
			s.grid.up(1)
		case keyMatches(msg, keys.Down):
			s.grid.down(1)
		case keyMatches(msg, keys.PageUp):
			s.grid.up(s.grid.pageRows())
		case keyMatches(msg, keys.PageDown):
			s.grid.down(s.grid.pageRows())
		case keyMatches(msg, keys.Top):
			s.grid.top()
		case keyMatches(msg, keys.Bottom):
			s.grid.bottom()
		case keyMatches(msg, keys.SessionEnd):
			if i := s.grid.cursor(); i >= 0 && i < len(s.shown) {
				si := s.shown[i]
				s.confirm = &si
			}
		}
	}
	return nil
}

func (s *sessionsScreen) searchKey(k tea.KeyMsg) tea.Cmd {
	switch {
	case keyMatches(k, s.e.keys.Cancel):
		s.search, s.query = nil, ""
		s.fill(0)
		return nil
	case keyMatches(k, s.e.keys.Submit):
		s.search = nil
		return nil
	}
	var cmd tea.Cmd
	*s.search, cmd = s.search.Update(k)
	if v := s.search.Value(); v != s.query {
		s.query = v
		s.fill(0)
	}
	return cmd
}

func (s *sessionsScreen) confirmKey(k tea.KeyMsg) tea.Cmd {
	keys := s.e.keys
	switch {
	case keyMatches(k, keys.Yes):
		si := *s.confirm
		s.confirm = nil
		reg, a := s.e.sessions, s.e.actor
		return s.e.call(func(ctx context.Context) tea.Msg {
			return sessionEndMsg{user: clean(si.User), err: reg.End(ctx, a, si.ID)}
		})
	case keyMatches(k, keys.No):
		s.confirm = nil
		s.e.info("Nothing changed.")
	}
	return nil
}

func (s *sessionsScreen) help() helpKeys {
	k := s.e.keys
	switch {
	case s.confirm != nil:
		b := []key.Binding{k.Yes, k.No, k.ForceQuit}
		return helpKeys{short: b, full: [][]key.Binding{b}}
	case s.search != nil:
		b := []key.Binding{k.Submit, k.ClearIn, k.ForceQuit}
		return helpKeys{short: b, full: [][]key.Binding{b}}
	}
	return helpKeys{
		short: []key.Binding{k.SessionEnd, k.Search, k.Up, k.Down},
		full:  [][]key.Binding{{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom}, {k.SessionEnd, k.Search, k.Back}},
	}
}

func (s *sessionsScreen) view() string {
	st := s.e.st
	if !s.loaded {
		return s.grid.view() + "\n" + st.dim.Render("loading…")
	}
	var last string
	switch {
	case s.confirm != nil:
		q := "End the session of " + clean(s.confirm.User) + " from " + clean(s.confirm.RemoteAddr) + "?"
		if s.confirm.ID == s.e.actor.SessionID {
			q = "End your own session?"
		}
		last = st.warn.Render(q) + st.dim.Render("  y/n")
	case s.search != nil:
		last = s.search.View()
	case len(s.list) == 0:
		last = st.dim.Render("no live sessions")
	default:
		n := len(s.list)
		word := " live sessions"
		if n == 1 {
			word = " live session"
		}
		text := itoa(n) + word
		if s.query != "" {
			text += " · " + itoa(len(s.shown)) + " match " + strconv.Quote(clean(s.query)) + " (esc clears)"
		}
		last = st.dim.Render(text + " · refreshed every 2 s")
	}
	return s.grid.view() + "\n" + last
}
