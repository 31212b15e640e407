package tui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"backroom/store"
)

// auditFilter is what the audit list is narrowed to.
type auditFilter struct {
	actor    string
	action   string
	since    time.Time
	until    time.Time
	timeText string // the range as typed, for the status line
	search   string
}

func (f auditFilter) empty() bool {
	return f.actor == "" && f.action == "" && f.since.IsZero() && f.until.IsZero() && f.search == ""
}

func (f auditFilter) describe() string {
	var parts []string
	if f.actor != "" {
		parts = append(parts, "actor="+f.actor)
	}
	if f.action != "" {
		parts = append(parts, "action="+f.action)
	}
	if f.timeText != "" {
		parts = append(parts, "time="+f.timeText)
	}
	if f.search != "" {
		parts = append(parts, "search="+strconv.Quote(f.search))
	}
	return clean(strings.Join(parts, " "))
}

func (f auditFilter) query() store.AuditQuery {
	return store.AuditQuery{Actor: f.actor, ActionPrefix: f.action, Since: f.since, Until: f.until, Search: f.search}
}

// auditPageMsg is one page of audit rows and the load it answers.
type auditPageMsg = keysetPageMsg[store.Event]

// auditActionsMsg lists the actions present, for the action filter.
type auditActionsMsg struct {
	actions []string
	err     error
}

// Filter inputs.
type inputKind int

const (
	inActor inputKind = iota
	inAction
	inTime
	inSearch
)

type auditInput struct {
	kind inputKind
	ti   textinput.Model
	err  string
}

// auditScreen lists the audit log newest first, one keyset page at a time.
type auditScreen struct {
	keysetList[store.Event]
	e      *env
	w, h   int
	filter auditFilter

	input          *auditInput
	actions        []string
	actionsLoading bool
	actionIdx      int

	detail *store.Event
	vp     pane
}

func newAuditScreen(e *env) *auditScreen {
	s := &auditScreen{e: e, vp: newPane(e.st)}
	g := newGrid(e.st, []column{
		{title: "time (UTC)", min: 19, prio: 0},
		{title: "actor", min: 8, max: 16, prio: 1},
		{title: "action", min: 14, max: 24, prio: 2},
		{title: "target", min: 10, max: 32, prio: 4},
		{title: "channel", min: 7, prio: 5},
		{title: "remote address", min: 15, max: 39, prio: 3},
	})
	s.keysetList = newKeysetList(e, g, func(ev store.Event) int64 { return ev.ID }, func(ev store.Event) []string {
		return []string{fmtTime(ev.Time), ev.Actor, ev.Action, ev.Target, ev.Channel, hostOnly(ev.RemoteAddr)}
	}, s.reader)
	return s
}

func (s *auditScreen) title() string   { return "Audit" }
func (s *auditScreen) capturing() bool { return s.input != nil }
func (s *auditScreen) deactivate()     {}

func (s *auditScreen) activate() tea.Cmd {
	if s.detail != nil {
		return nil
	}
	return s.visit()
}

func (s *auditScreen) setSize(w, h int) tea.Cmd {
	s.w, s.h = w, h
	s.vp.Width, s.vp.Height = w, max(1, h-1)
	if s.input != nil {
		s.input.ti.Width = max(10, w-20)
	}
	if s.detail != nil {
		s.vp.SetContent(s.detailContent(*s.detail))
	}
	return s.resize(w, max(2, h-1))
}

// reader reads pages with the filter as it is now.
func (s *auditScreen) reader() keysetReader[store.Event] {
	st, q := s.e.store, s.filter.query()
	return func(ctx context.Context, p keysetQuery) ([]store.Event, error) {
		q.BeforeID, q.AfterID, q.Limit, q.Oldest = p.before, p.after, p.limit, p.kind == pageOldest
		rows, err := st.ListAudit(ctx, q)
		if q.Oldest {
			slices.Reverse(rows) // newest first, as every page
		}
		return rows, err
	}
}

func (s *auditScreen) loadActions() tea.Cmd {
	if s.actions != nil || s.actionsLoading {
		return nil
	}
	s.actionsLoading = true
	st := s.e.store
	return s.e.call(func(ctx context.Context) tea.Msg {
		a, err := st.AuditActions(ctx)
		return auditActionsMsg{actions: a, err: err}
	})
}

func (s *auditScreen) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case auditPageMsg:
		return s.gotPage(msg)
	case auditActionsMsg:
		s.actionsLoading = false
		if msg.err != nil {
			s.e.fail(msg.err)
			return nil
		}
		s.actions = cycleOptions(msg.actions)
		return nil
	case tea.KeyMsg:
		switch {
		case s.input != nil:
			return s.inputKey(msg)
		case s.detail != nil:
			return s.detailKey(msg)
		}
		return s.listKey(msg)
	}
	return nil
}

func (s *auditScreen) listKey(k tea.KeyMsg) tea.Cmd {
	if cmd, ok := s.pageKey(s.e, k, s.moves()); ok {
		return cmd
	}
	keys := s.e.keys
	switch {
	case keyMatches(k, keys.Open):
		if ev, ok := s.selected(); ok {
			s.detail = &ev
			s.vp.reset(s.detailContent(ev))
		}
	case keyMatches(k, keys.FilterActor):
		return s.openInput(inActor, s.filter.actor)
	case keyMatches(k, keys.FilterAction):
		return tea.Batch(s.openInput(inAction, s.filter.action), s.loadActions())
	case keyMatches(k, keys.FilterTime):
		return s.openInput(inTime, s.filter.timeText)
	case keyMatches(k, keys.Search):
		return s.openInput(inSearch, s.filter.search)
	case keyMatches(k, keys.ClearFilters, keys.Back):
		if s.filter.empty() {
			return nil
		}
		s.filter = auditFilter{}
		s.e.info("Filters cleared.")
		return s.reload()
	}
	return nil
}

func (s *auditScreen) detailKey(k tea.KeyMsg) tea.Cmd {
	if keyMatches(k, s.e.keys.Back) {
		s.detail = nil
		return nil
	}
	s.vp.scroll(s.e.keys, k)
	return nil
}

// text is the prompt and the placeholder of a filter input.
func (k inputKind) text() (prompt, placeholder string) {
	switch k {
	case inActor:
		return "actor: ", "exact staff name (empty clears)"
	case inAction:
		return "action: ", "prefix like login. or an action; ←/→ cycle (empty clears)"
	case inTime:
		return "time: ", "since[..until]: 1h, 24h, 7d, 2026-11-01, RFC 3339 (empty clears)"
	}
	return "/", "search actor, action, target, detail, address"
}

func (s *auditScreen) openInput(kind inputKind, value string) tea.Cmd {
	prompt, placeholder := kind.text()
	ti := s.e.st.textInput(prompt, placeholder, 200)
	ti.Width = max(10, s.w-20)
	ti.SetValue(value)
	ti.CursorEnd()
	s.input = &auditInput{kind: kind, ti: ti}
	s.actionIdx = -1
	return s.input.ti.Focus()
}

func (s *auditScreen) inputKey(k tea.KeyMsg) tea.Cmd {
	keys := s.e.keys
	in := s.input
	switch {
	case keyMatches(k, keys.Cancel):
		s.input = nil
		if in.kind == inSearch && s.filter.search != "" {
			s.filter.search = ""
			return s.reload()
		}
		return nil
	case keyMatches(k, keys.Submit):
		return s.applyInput()
	case in.kind == inAction && keyMatches(k, keys.Cycle):
		if len(s.actions) == 0 {
			return nil
		}
		if k.Type == tea.KeyRight {
			s.actionIdx = (s.actionIdx + 1) % len(s.actions)
		} else {
			s.actionIdx = (s.actionIdx - 1 + len(s.actions)) % len(s.actions)
		}
		in.ti.SetValue(s.actions[s.actionIdx])
		in.ti.CursorEnd()
		return nil
	}
	var cmd tea.Cmd
	in.ti, cmd = in.ti.Update(k)
	in.err = ""
	if in.kind == inSearch {
		// Incremental: every change runs the query again; results of
		// earlier keystrokes are dropped when they arrive late.
		if v := in.ti.Value(); v != s.filter.search {
			s.filter.search = v
			return tea.Batch(cmd, s.reload())
		}
	}
	return cmd
}

func (s *auditScreen) applyInput() tea.Cmd {
	in := s.input
	v := strings.TrimSpace(in.ti.Value())
	switch in.kind {
	case inActor:
		s.filter.actor = v
	case inAction:
		s.filter.action = v
	case inTime:
		since, until, err := parseRange(v, s.e.now())
		if err != nil {
			in.err = err.Error()
			s.e.setStatus(statusErr, in.err)
			return nil
		}
		s.filter.since, s.filter.until, s.filter.timeText = since, until, v
	case inSearch:
		s.input = nil
		return nil // already applied as typed
	}
	s.input = nil
	return s.reload()
}

// hostOnly drops the port from an address for the list (the detail view
// shows it whole).
func hostOnly(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// cycleOptions is what ←/→ offers in the action filter: every family
// prefix (login., staff., …) then every action present.
func cycleOptions(actions []string) []string {
	var prefixes []string
	for _, a := range actions {
		if i := strings.IndexByte(a, '.'); i > 0 {
			p := a[:i+1]
			if !slices.Contains(prefixes, p) {
				prefixes = append(prefixes, p)
			}
		}
	}
	slices.Sort(prefixes)
	return append(prefixes, actions...)
}

// parseRange reads "since[..until]" (or "since until"): each side a
// duration before now (30m, 24h, 7d, 2w) or a time (2026-11-01,
// 2026-11-01T15:04, RFC 3339). Either side may be empty.
func parseRange(text string, now time.Time) (since, until time.Time, err error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return since, until, nil
	}
	a, b, ok := strings.Cut(text, "..")
	if !ok {
		f := strings.Fields(text)
		switch len(f) {
		case 1:
			a = f[0]
		case 2:
			a, b = f[0], f[1]
		default:
			return since, until, fmt.Errorf("time range %q: use since or since..until, e.g. 24h or 2026-11-01..2026-11-02", clean(text))
		}
	}
	if since, err = parseWhen(a, now); err != nil {
		return
	}
	if until, err = parseWhen(b, now); err != nil {
		return
	}
	if !since.IsZero() && !until.IsZero() && !since.Before(until) {
		return time.Time{}, time.Time{}, fmt.Errorf("time range %q: the start must be before the end", clean(text))
	}
	return since, until, nil
}

func parseWhen(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if d, ok := parseAgo(s); ok {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration (30m, 24h, 7d) nor a time (2026-11-01, 2026-11-01T15:04:05Z)", clean(s))
}

// parseAgo reads a positive duration, with d (days) and w (weeks) too.
func parseAgo(s string) (time.Duration, bool) {
	if n := len(s); n > 1 && (s[n-1] == 'd' || s[n-1] == 'w') {
		v, err := strconv.Atoi(s[:n-1])
		if err != nil || v <= 0 || v > 100000 {
			return 0, false
		}
		unit := 24 * time.Hour
		if s[n-1] == 'w' {
			unit *= 7
		}
		return time.Duration(v) * unit, true
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, false
	}
	return d, true
}

func (s *auditScreen) detailContent(ev store.Event) string {
	st := s.e.st
	w := max(20, s.w)
	rows := [][2]string{
		{"Row", "#" + strconv.FormatInt(ev.ID, 10)},
		{"Time", ev.Time.UTC().Format(timeFormatL)},
		{"Actor", clean(ev.Actor)},
		{"Action", clean(ev.Action)},
		{"Target", clean(ev.Target)},
		{"Channel", clean(ev.Channel)},
		{"Remote address", clean(ev.RemoteAddr)},
		{"Session", clean(ev.SessionID)},
	}
	var b strings.Builder
	b.WriteString(st.kv(rows) + "\n\n")
	b.WriteString(st.heading.Render("Detail") + "\n")
	var pretty bytes.Buffer
	detail := ev.Detail
	if detail == "" {
		detail = "{}"
	}
	if err := json.Indent(&pretty, []byte(detail), "", "  "); err != nil {
		pretty.Reset()
		pretty.WriteString(detail)
	}
	b.WriteString(wrap(cleanLines(pretty.String()), w) + "\n\n")
	b.WriteString(st.heading.Render("Hash") + st.dim.Render(" (HMAC-SHA256 chained to the previous row)") + "\n")
	b.WriteString(wrap(clean(ev.Hash), w))
	return b.String()
}

func (s *auditScreen) help() helpKeys {
	k := s.e.keys
	switch {
	case s.input != nil:
		b := []key.Binding{k.Submit, k.Cancel}
		if s.input.kind == inAction {
			b = append(b, k.Cycle)
		}
		if s.input.kind == inSearch {
			b[1] = k.ClearIn
		}
		return flatHelp(append(b, k.ForceQuit)...)
	case s.detail != nil:
		return helpKeys{
			short: []key.Binding{k.Back, k.Up, k.Down, k.PageDown},
			full:  [][]key.Binding{{k.Back}, {k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom}},
		}
	}
	return helpKeys{
		short: []key.Binding{k.Open, k.PageDown, k.Search, k.FilterActor, k.FilterAction, k.FilterTime, k.ClearFilters},
		full: [][]key.Binding{
			{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom},
			{k.Open, k.Back, k.Search, k.FilterActor, k.FilterAction, k.FilterTime, k.ClearFilters},
		},
	}
}

func (s *auditScreen) infoLine() string {
	st := s.e.st
	if s.input != nil {
		line := s.input.ti.View()
		if s.input.err != "" {
			line += "  " + st.err.Render(s.input.err)
		}
		return line
	}
	var parts []string
	switch {
	case !s.loaded:
		return st.dim.Render("loading…")
	case len(s.rows) == 0 && s.filter.empty():
		parts = append(parts, "the audit log is empty")
	case len(s.rows) == 0:
		parts = append(parts, "no rows match")
	case s.offsetKnown:
		parts = append(parts, fmt.Sprintf("rows %d–%d", s.offset+1, s.offset+len(s.rows)))
	default:
		parts = append(parts, fmt.Sprintf("rows #%d–#%d (oldest)", s.rows[len(s.rows)-1].ID, s.rows[0].ID))
	}
	if !s.filter.empty() {
		parts = append(parts, "filter: "+s.filter.describe())
	}
	if s.loading {
		parts = append(parts, "loading…")
	} else if s.hasNext {
		parts = append(parts, "pgdn older")
	}
	return st.dim.Render(strings.Join(parts, " · "))
}

func (s *auditScreen) view() string {
	if s.detail != nil {
		title := s.e.st.heading.Render("Audit row #"+strconv.FormatInt(s.detail.ID, 10)) + s.vp.backHint(s.e.st)
		return title + "\n" + s.vp.View()
	}
	return s.grid.view() + "\n" + s.infoLine()
}
