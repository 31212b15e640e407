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

	"backroom/store"
)

// sessionsRefresh is how often the Sessions screen refreshes while it is
// visible (and only then).
const sessionsRefresh = 2 * time.Second

// sessionsMsg is a fresh list of live sessions: SSH from the registry, web
// from the store.
type sessionsMsg struct {
	seq    int
	list   []SessionInfo
	web    []store.WebSession
	webErr error
}

// sessionsTickMsg asks for a refresh; gen tells whether the screen is
// still the one that scheduled it.
type sessionsTickMsg struct{ gen int }

// sessionEndMsg is the outcome of ending sessions.
type sessionEndMsg struct {
	text string // what was done, for the status line
	err  error
}

// Channels of a session row.
const (
	viaSSH = "ssh"
	viaWeb = "web"
)

// sessionRow is one live session, SSH or web.
type sessionRow struct {
	via     string // viaSSH or viaWeb
	id      string
	user    string
	detail  string // the key's fingerprint (SSH) or the browser (web)
	agent   string // the full User-Agent (web)
	remote  string
	started time.Time
	last    time.Time // last input (SSH) or request (web)
}

func (r sessionRow) ref() string { return r.via + ":" + r.id }

// sessionConfirm is a question about ending sessions: one row, or every
// session of the row's member.
type sessionConfirm struct {
	row sessionRow
	all bool
}

// sessionsScreen lists live SSH and web sessions and ends them (admins
// only).
type sessionsScreen struct {
	e       *env
	w, h    int
	grid    *grid
	list    []sessionRow // every live session, oldest first
	shown   []sessionRow // after the search
	search  *textinput.Model
	query   string
	loaded  bool
	visible bool
	gen     int
	seq     int
	confirm *sessionConfirm
}

func newSessionsScreen(e *env) *sessionsScreen {
	s := &sessionsScreen{e: e}
	s.grid = newGrid(e.st, []column{
		{title: "user", min: 10, max: 18, prio: 0},
		{title: "via", min: 3, prio: 1},
		{title: "key / browser", min: 16, max: 28, prio: 4},
		{title: "remote address", min: 19, max: 48, prio: 3},
		{title: "since (UTC)", min: 11, prio: 5},
		{title: "idle", min: 6, prio: 2},
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
	reg, st := s.e.sessions, s.e.store
	return s.e.call(func(ctx context.Context) tea.Msg {
		msg := sessionsMsg{seq: seq, list: reg.List()}
		msg.web, msg.webErr = st.ListWebSessions(ctx)
		return msg
	})
}

func shortFingerprint(fp string) string {
	const keep = 7 + 8 // "SHA256:" and eight characters
	if len(fp) <= keep {
		return fp
	}
	return fp[:keep] + "…"
}

// rows merges the two kinds of session, oldest first.
func rows(ssh []SessionInfo, web []store.WebSession) []sessionRow {
	out := make([]sessionRow, 0, len(ssh)+len(web))
	for _, si := range ssh {
		last := si.LastInput
		if last.IsZero() {
			last = si.Started
		}
		out = append(out, sessionRow{via: viaSSH, id: si.ID, user: si.User, detail: si.Fingerprint,
			remote: si.RemoteAddr, started: si.Started, last: last})
	}
	for _, ws := range web {
		out = append(out, sessionRow{via: viaWeb, id: ws.ID, user: ws.Name, detail: browserName(ws.UserAgent),
			agent: ws.UserAgent, remote: ws.RemoteAddr, started: ws.CreatedAt, last: ws.LastSeen})
	}
	slices.SortStableFunc(out, func(a, b sessionRow) int { return a.started.Compare(b.started) })
	return out
}

func (s *sessionsScreen) fill(cursor int) {
	now := s.e.now()
	q := strings.ToLower(s.query)
	s.shown = s.shown[:0]
	for _, r := range s.list {
		if q == "" || strings.Contains(strings.ToLower(strings.Join([]string{r.user, r.via, r.remote, r.detail, r.agent}, " ")), q) {
			s.shown = append(s.shown, r)
		}
	}
	raw := make([][]string, len(s.shown))
	for i, r := range s.shown {
		user := r.user
		if r.via == viaSSH && r.id == s.e.actor.SessionID && r.id != "" {
			user += " (you)"
		}
		started := "—"
		if !r.started.IsZero() {
			started = r.started.UTC().Format("01-02 15:04")
		}
		detail := r.detail
		if r.via == viaSSH {
			detail = shortFingerprint(detail)
		}
		raw[i] = []string{user, r.via, detail, r.remote, started, fmtDuration(now.Sub(r.last))}
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
		if msg.webErr != nil {
			s.e.fail(msg.webErr)
		}
		// Keep the cursor on the same session across refreshes.
		var cur string
		at := s.grid.cursor()
		if at >= 0 && at < len(s.shown) {
			cur = s.shown[at].ref()
		}
		s.list, s.loaded = rows(msg.list, msg.web), true
		s.fill(at)
		for i, r := range s.shown {
			if r.ref() == cur && i != s.grid.cursor() {
				s.grid.setCursor(i)
			}
		}
		return nil
	case sessionEndMsg:
		if msg.err != nil {
			s.e.fail(msg.err)
		} else {
			s.e.good(msg.text)
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
		if s.grid.moveKey(keys, msg) {
			return nil
		}
		switch {
		case keyMatches(msg, keys.Search):
			s.search = s.e.st.searchInput("user, address, key or browser", 60, 0, s.query)
			return s.search.Focus()
		case keyMatches(msg, keys.Back):
			if s.query != "" {
				s.query = ""
				s.fill(0)
			}
		case keyMatches(msg, keys.SessionEnd, keys.SessionEndAll):
			if i := s.grid.cursor(); i >= 0 && i < len(s.shown) {
				s.confirm = &sessionConfirm{row: s.shown[i], all: keyMatches(msg, keys.SessionEndAll)}
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
		c := *s.confirm
		s.confirm = nil
		if c.all {
			return s.endAll(c.row.user)
		}
		return s.end(c.row)
	case keyMatches(k, keys.No):
		s.confirm = nil
		s.e.info("Nothing changed.")
	}
	return nil
}

// end ends one session: an SSH one through the registry, a web one
// through the store (both audited).
func (s *sessionsScreen) end(r sessionRow) tea.Cmd {
	reg, st, a := s.e.sessions, s.e.store, s.e.actor
	user := clean(r.user)
	return s.e.call(func(ctx context.Context) tea.Msg {
		if r.via == viaWeb {
			return sessionEndMsg{text: "Ended the web session of " + user + ".", err: st.EndWebSession(ctx, a, r.id)}
		}
		return sessionEndMsg{text: "Ended the session of " + user + ".", err: reg.End(ctx, a, r.id)}
	})
}

// endAll ends every session of a member: each live SSH session, then all
// their web sessions.
func (s *sessionsScreen) endAll(name string) tea.Cmd {
	reg, st, a := s.e.sessions, s.e.store, s.e.actor
	return s.e.call(func(ctx context.Context) tea.Msg {
		var first error
		nSSH := 0
		for _, si := range reg.List() {
			if si.User != name {
				continue
			}
			err := reg.End(ctx, a, si.ID)
			switch {
			case err == nil:
				nSSH++
			case store.ErrorCode(err) == store.CodeNotFound: // it ended meanwhile
			case first == nil:
				first = err
			}
		}
		nWeb, err := st.EndWebSessionsOf(ctx, a, name, "all sessions ended by "+a.Name)
		if first == nil {
			first = err
		}
		text := "Ended every session of " + clean(name) + ": " + itoa(nSSH) + " SSH, " + itoa(nWeb) + " web."
		return sessionEndMsg{text: text, err: first}
	})
}

func (s *sessionsScreen) help() helpKeys {
	k := s.e.keys
	switch {
	case s.confirm != nil:
		return flatHelp(k.Yes, k.No, k.ForceQuit)
	case s.search != nil:
		return flatHelp(k.Submit, k.ClearIn, k.ForceQuit)
	}
	return helpKeys{
		short: []key.Binding{k.SessionEnd, k.SessionEndAll, k.Search, k.Up, k.Down},
		full:  [][]key.Binding{{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom}, {k.SessionEnd, k.SessionEndAll, k.Search, k.Back}},
	}
}

// counts is how many listed sessions of name ("" for everyone) are SSH
// and web.
func (s *sessionsScreen) counts(name string) (ssh, web int) {
	for _, r := range s.list {
		if name != "" && r.user != name {
			continue
		}
		if r.via == viaWeb {
			web++
		} else {
			ssh++
		}
	}
	return ssh, web
}

func (s *sessionsScreen) confirmText() string {
	c := s.confirm
	r := c.row
	if c.all {
		nSSH, nWeb := s.counts(r.user)
		q := "End every session of " + clean(r.user) + " (" + itoa(nSSH) + " SSH, " + itoa(nWeb) + " web)?"
		if r.user == s.e.actor.Name {
			q = "End every session of yours (" + itoa(nSSH) + " SSH, " + itoa(nWeb) + " web), this one too?"
		}
		return q
	}
	switch {
	case r.via == viaWeb:
		return "End the web session of " + clean(r.user) + " from " + clean(r.remote) + "?"
	case r.id == s.e.actor.SessionID:
		return "End your own session?"
	}
	return "End the session of " + clean(r.user) + " from " + clean(r.remote) + "?"
}

func (s *sessionsScreen) view() string {
	st := s.e.st
	if !s.loaded {
		return s.grid.view() + "\n" + st.dim.Render("loading…")
	}
	var last string
	switch {
	case s.confirm != nil:
		last = st.warn.Render(s.confirmText()) + st.dim.Render("  y/n")
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
		if _, nWeb := s.counts(""); nWeb > 0 {
			text += " (" + itoa(n-nWeb) + " SSH, " + itoa(nWeb) + " web)"
		}
		if s.query != "" {
			text += " · " + itoa(len(s.shown)) + " match " + strconv.Quote(clean(s.query)) + " (esc clears)"
		}
		last = st.dim.Render(text + " · refreshed every 2 s")
	}
	return s.grid.view() + "\n" + last
}
