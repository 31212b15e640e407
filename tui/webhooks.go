package tui

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"backroom/store"
)

// webhookFilter is what the events list is narrowed to.
type webhookFilter struct {
	status string // "", or store.WebhookFailed, WebhookProcessed, WebhookIgnored
	typ    string // an exact type, or a prefix: customer. or customer.subscription.*
	search string // an event id or a customer id (or a prefix of one)
}

func (f webhookFilter) empty() bool { return f.status == "" && f.typ == "" && f.search == "" }

func (f webhookFilter) describe() string {
	var parts []string
	if f.status != "" {
		parts = append(parts, "status="+f.status)
	}
	if f.typ != "" {
		parts = append(parts, "type="+f.typ)
	}
	if f.search != "" {
		parts = append(parts, "search="+strconv.Quote(f.search))
	}
	return clean(strings.Join(parts, " "))
}

func (f webhookFilter) query() store.WebhookQuery {
	return store.WebhookQuery{Status: f.status, Type: f.typ, Search: strings.TrimSpace(f.search)}
}

// NextWebhookStatus is the Webhooks screen's status filter after the
// status key is pressed on s: any ("") → failed → processed → ignored →
// any.
func NextWebhookStatus(s string) string {
	switch s {
	case "":
		return store.WebhookFailed
	case store.WebhookFailed:
		return store.WebhookProcessed
	case store.WebhookProcessed:
		return store.WebhookIgnored
	}
	return ""
}

// outcomeText is a status or an attempt's outcome with a marker, so that
// it reads without colour too.
func outcomeText(s string) string {
	switch s {
	case store.WebhookProcessed:
		return "✓ " + s
	case store.WebhookIgnored:
		return "· " + s
	case store.WebhookFailed, store.WebhookRejected:
		return "✗ " + s
	case store.WebhookDuplicate:
		return "= " + s
	}
	return clean(s)
}

// outcomeStyle colours an outcomeText: processed green, failed and
// rejected red, ignored and duplicate dim.
func (s *styles) outcomeStyle(text string) (lipgloss.Style, bool) {
	switch {
	case strings.HasPrefix(text, "✓"):
		return s.ok, true
	case strings.HasPrefix(text, "✗"):
		return s.err, true
	case strings.HasPrefix(text, "·"), strings.HasPrefix(text, "="):
		return s.dim, true
	}
	return lipgloss.Style{}, false
}

func (s *styles) outcome(status string) string {
	text := outcomeText(status)
	if st, ok := s.outcomeStyle(text); ok {
		return st.Render(text)
	}
	return text
}

// Messages of the Webhooks screen.
type (
	// webhooksPageMsg is one page of events and the load it answers.
	webhooksPageMsg = keysetPageMsg[store.WebhookEvent]
	// webhookDetailMsg is an event opened in detail with its attempts.
	webhookDetailMsg struct {
		seq      int
		ev       store.WebhookEvent
		attempts []store.WebhookAttempt
		err      error
		attErr   error
	}
	// webhookReplayMsg is the outcome of a replay and the event as it is
	// afterwards.
	webhookReplayMsg struct {
		id       string
		outcome  string
		err      error
		ev       store.WebhookEvent
		attempts []store.WebhookAttempt
		loadErr  error
	}
	// rejectedPageMsg is one page of rejected attempts and the count of
	// those only counted.
	rejectedPageMsg struct {
		seq        int
		pages      []rejectedPage // the page stack once this page shows
		size       int
		rows       []store.WebhookAttempt
		err        error
		dropped    int64
		droppedErr error
	}
)

func isWebhooksMsg(msg tea.Msg) bool {
	switch msg.(type) {
	case webhooksPageMsg, webhookDetailMsg, webhookReplayMsg, rejectedPageMsg:
		return true
	}
	return false
}

// Inputs of the Webhooks screen.
const (
	whSearch = iota
	whType
)

type webhookInput struct {
	kind int
	ti   textinput.Model
}

// webhooksScreen lists the stored webhook events newest first, one keyset
// page at a time, filters and searches them, shows one in detail (every
// attempt, the headers, the payload) and replays it; a second list shows
// the rejected attempts.
type webhooksScreen struct {
	keysetList[store.WebhookEvent]
	e      *env
	w, h   int
	filter webhookFilter

	input   *webhookInput
	replay  string // the event a replay is asked for (y/n)
	running string // the event being replayed

	detail    *webhookDetail
	detailSeq int
	vp        pane

	rejected *rejectedView
}

func newWebhooksScreen(e *env) *webhooksScreen {
	s := &webhooksScreen{e: e, vp: newPane(e.st)}
	g := newGrid(e.st, []column{
		{title: "received (UTC)", min: 19, prio: 0},
		{title: "event", min: 12, max: 30, prio: 2, mid: true},
		{title: "type", min: 16, max: 34, prio: 3, mid: true},
		{title: "customer", min: 10, max: 20, prio: 4, mid: true},
		{title: "status", min: 11, prio: 1, tint: e.st.outcomeStyle},
		{title: "attempts", min: 8, prio: 5, right: true},
		{title: "api version", min: 11, prio: 6},
	})
	s.keysetList = newKeysetList(e, g, func(ev store.WebhookEvent) int64 { return ev.ID }, webhookCells, s.reader)
	return s
}

// webhookCells is an event's row in the list.
func webhookCells(ev store.WebhookEvent) []string {
	cus := ev.CustomerID
	if cus == "" {
		cus = "—"
	}
	return []string{fmtTime(ev.ReceivedAt), ev.EventID, ev.Type, cus, outcomeText(ev.Status),
		strconv.Itoa(ev.Attempts), ev.APIVersion}
}

func (s *webhooksScreen) title() string { return "Webhooks" }
func (s *webhooksScreen) deactivate()   {}

func (s *webhooksScreen) capturing() bool { return s.input != nil || s.replay != "" }

func (s *webhooksScreen) activate() tea.Cmd {
	switch {
	case s.rejected != nil:
		return s.rejected.activate(s)
	case s.detail != nil:
		return nil
	}
	return s.visit()
}

func (s *webhooksScreen) setSize(w, h int) tea.Cmd {
	s.w, s.h = w, h
	list := s.resize(w, max(2, h-1))
	s.vp.Width, s.vp.Height = w, max(1, h-2)
	if s.input != nil {
		s.input.ti.Width = s.inputWidth(s.input.kind)
	}
	s.refreshDetail()
	var rejected tea.Cmd
	if r := s.rejected; r != nil {
		rejected = r.setSize(s, w, h)
	}
	return tea.Batch(rejected, list)
}

// reader reads pages with the filter as it is now.
func (s *webhooksScreen) reader() keysetReader[store.WebhookEvent] {
	st, q := s.e.store, s.filter.query()
	return func(ctx context.Context, p keysetQuery) ([]store.WebhookEvent, error) {
		q.BeforeID, q.AfterID, q.Limit = p.before, p.after, p.limit
		if p.kind != pageOldest {
			return st.ListWebhooks(ctx, q)
		}
		// The store pages up from an id (AfterID, which must be
		// positive): the rows above id 1, plus row 1 itself.
		q.AfterID = 1
		rows, err := st.ListWebhooks(ctx, q)
		if err == nil {
			first := q
			first.AfterID, first.BeforeID, first.Limit = 0, 2, 1
			var one []store.WebhookEvent
			one, err = st.ListWebhooks(ctx, first)
			rows = append(rows, one...)
		}
		return rows, err
	}
}

// refreshList loads the page shown again (after a replay changed a row).
func (s *webhooksScreen) refreshList() tea.Cmd {
	if !s.started {
		return nil
	}
	s.wantCursor = s.grid.cursor()
	return s.here()
}

func (s *webhooksScreen) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case webhooksPageMsg:
		return s.gotPage(msg)
	case webhookDetailMsg:
		return s.gotDetail(msg)
	case webhookReplayMsg:
		return s.gotReplay(msg)
	case rejectedPageMsg:
		if s.rejected != nil {
			s.rejected.gotPage(s, msg)
		}
		return nil
	case tea.KeyMsg:
		switch {
		case s.replay != "":
			return s.replayKey(msg)
		case s.input != nil:
			return s.inputKey(msg)
		case s.detail != nil:
			return s.detailKey(msg)
		case s.rejected != nil:
			return s.rejected.key(s, msg)
		}
		return s.listKey(msg)
	}
	return nil
}

func (s *webhooksScreen) listKey(k tea.KeyMsg) tea.Cmd {
	if cmd, ok := s.pageKey(s.e, k, s.moves()); ok {
		return cmd
	}
	keys := s.e.keys
	switch {
	case keyMatches(k, keys.Open):
		if ev, ok := s.selected(); ok {
			return s.openDetail(ev.EventID)
		}
	case keyMatches(k, keys.WebhookReplay):
		if ev, ok := s.selected(); ok {
			s.askReplay(ev.EventID)
		}
	case keyMatches(k, keys.WebhookStatus):
		s.filter.status = NextWebhookStatus(s.filter.status)
		return s.reload()
	case keyMatches(k, keys.WebhookType):
		return s.openInput(whType, s.filter.typ)
	case keyMatches(k, keys.Search):
		return s.openInput(whSearch, s.filter.search)
	case keyMatches(k, keys.WebhookRejected):
		s.rejected = newRejectedView(s)
		return s.rejected.load(s, []rejectedPage{{}})
	case keyMatches(k, keys.Back):
		if s.filter.search != "" {
			s.filter.search = ""
			s.e.info("Search cleared.")
			return s.reload()
		}
		fallthrough
	case keyMatches(k, keys.ClearFilters):
		if s.filter.empty() {
			return nil
		}
		s.filter = webhookFilter{}
		s.e.info("Filters cleared.")
		return s.reload()
	}
	return nil
}

func (s *webhooksScreen) openInput(kind int, value string) tea.Cmd {
	ti := s.e.st.textInput("/", "event id or customer id", 200)
	if kind == whType {
		ti.Prompt, ti.Placeholder = "type: ", "exact, or a prefix: customer. / customer.subscription.*"
	}
	ti.Width = s.inputWidth(kind)
	ti.SetValue(value)
	ti.CursorEnd()
	s.input = &webhookInput{kind: kind, ti: ti}
	return s.input.ti.Focus()
}

// inputWidth is the width of an input: the search leaves room for its
// results on the same line.
func (s *webhooksScreen) inputWidth(kind int) int {
	if kind == whSearch {
		return max(10, min(30, s.w/3))
	}
	return max(10, s.w-8)
}

func (s *webhooksScreen) inputKey(k tea.KeyMsg) tea.Cmd {
	keys := s.e.keys
	in := s.input
	switch {
	case keyMatches(k, keys.Cancel):
		s.input = nil
		if in.kind == whSearch && s.filter.search != "" {
			s.filter.search = ""
			return s.reload()
		}
		return nil
	case keyMatches(k, keys.Submit):
		s.input = nil
		if in.kind == whType {
			if v := strings.TrimSpace(in.ti.Value()); v != s.filter.typ {
				s.filter.typ = v
				return s.reload()
			}
		}
		return nil // a search is applied as it is typed
	}
	var cmd tea.Cmd
	in.ti, cmd = in.ti.Update(k)
	if in.kind == whSearch {
		// Incremental: every change runs the query again; results of
		// earlier keystrokes are dropped when they arrive late.
		if v := in.ti.Value(); strings.TrimSpace(v) != strings.TrimSpace(s.filter.search) {
			s.filter.search = v
			return tea.Batch(cmd, s.reload())
		}
		s.filter.search = in.ti.Value()
	}
	return cmd
}

// --- view --------------------------------------------------------------------

func (s *webhooksScreen) infoLine() string {
	st := s.e.st
	if s.replay != "" {
		return s.replayPrompt()
	}
	if s.input != nil && s.input.kind == whType {
		return s.input.ti.View()
	}
	var parts []string
	switch {
	case !s.loaded:
		parts = append(parts, "loading…")
	case len(s.rows) == 0 && s.filter.empty():
		parts = append(parts, "no webhook events yet")
	case len(s.rows) == 0:
		parts = append(parts, "no events match")
	case s.offsetKnown:
		parts = append(parts, fmt.Sprintf("events %d–%d", s.offset+1, s.offset+len(s.rows)))
	default:
		parts = append(parts, fmt.Sprintf("last %d events (oldest)", len(s.rows)))
	}
	if !s.filter.empty() {
		parts = append(parts, "filter: "+s.filter.describe())
	}
	if s.loaded && s.loading {
		parts = append(parts, "loading…")
	} else if s.hasNext {
		parts = append(parts, "pgdn older")
	}
	line := st.dim.Render(strings.Join(parts, " · "))
	if !s.e.secret {
		line = st.secretWarning() + st.dim.Render(" · ") + line
	}
	if s.input != nil { // the search, with its results beside it
		line = s.input.ti.View() + "  " + line
	}
	return line
}

func (s *webhooksScreen) view() string {
	switch {
	case s.detail != nil:
		return s.detailView()
	case s.rejected != nil:
		return s.rejected.view(s)
	}
	return s.grid.view() + "\n" + s.infoLine()
}

func (s *webhooksScreen) help() helpKeys {
	k := s.e.keys
	scroll := []key.Binding{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom}
	switch {
	case s.replay != "":
		return flatHelp(k.Yes, k.No, k.ForceQuit)
	case s.input != nil && s.input.kind == whSearch:
		return flatHelp(k.Submit, k.ClearIn, k.ForceQuit)
	case s.input != nil:
		return flatHelp(k.Submit, k.Cancel, k.ForceQuit)
	case s.detail != nil:
		return helpKeys{
			short: []key.Binding{k.Back, k.WebhookReplay, k.Down, k.PageDown},
			full:  [][]key.Binding{{k.Back, k.WebhookReplay}, scroll},
		}
	case s.rejected != nil && s.rejected.detail != nil:
		return helpKeys{
			short: []key.Binding{k.Back, k.Down, k.PageDown},
			full:  [][]key.Binding{{k.Back}, scroll},
		}
	case s.rejected != nil:
		return helpKeys{
			short: []key.Binding{k.Open, k.PageDown, k.WebhookEvents},
			full:  [][]key.Binding{scroll, {k.Open, k.WebhookEvents}},
		}
	}
	return helpKeys{
		short: []key.Binding{k.Open, k.Search, k.WebhookStatus, k.WebhookType, k.WebhookReplay, k.WebhookRejected, k.ClearFilters},
		full: [][]key.Binding{
			scroll,
			{k.Open, k.Back, k.Search, k.WebhookStatus, k.WebhookType, k.ClearFilters},
			{k.WebhookReplay, k.WebhookRejected},
		},
	}
}

// --- rejected attempts ---------------------------------------------------------

// rejectedPage is one page of the rejected list: the id it starts below
// (0: the newest) and the rows above it.
type rejectedPage struct {
	before int64
	offset int
}

// rejectedView lists the rejected attempts (forged or stale signatures,
// malformed bodies), newest first.
type rejectedView struct {
	pager
	rows       []store.WebhookAttempt
	pages      []rejectedPage // from the newest page to the one shown
	dropped    int64
	droppedErr string
	detail     *store.WebhookAttempt
}

// rejectedWindow is how far back the count of attempts not stored goes.
const rejectedWindow = 24 * time.Hour

func newRejectedView(s *webhooksScreen) *rejectedView {
	r := &rejectedView{}
	r.grid = newGrid(s.e.st, []column{
		{title: "received (UTC)", min: 19, prio: 0},
		{title: "remote address", min: 15, max: 47, prio: 1},
		{title: "reason", min: 20, max: 200, prio: 0},
	})
	r.grid.setSize(s.w, max(2, s.h-1))
	return r
}

func (r *rejectedView) current() rejectedPage {
	if len(r.pages) == 0 {
		return rejectedPage{}
	}
	return r.pages[len(r.pages)-1]
}

func (r *rejectedView) setSize(s *webhooksScreen, w, h int) tea.Cmd {
	old := r.pageSize()
	r.grid.setSize(w, max(2, h-1))
	if r.detail != nil {
		s.vp.refresh(s.rejectedContent(*r.detail))
	}
	if r.pageSize() == old || !r.loaded {
		return nil
	}
	r.wantCursor = min(r.grid.cursor(), r.pageSize()-1)
	return r.load(s, r.pages)
}

func (r *rejectedView) activate(s *webhooksScreen) tea.Cmd {
	if r.detail != nil || r.loading || r.current().before != 0 {
		return nil
	}
	r.wantCursor = r.grid.cursor()
	return r.load(s, r.pages)
}

// load asks for the last page of pages (and the count of attempts only
// counted) in a Cmd; a newer load supersedes it.
func (r *rejectedView) load(s *webhooksScreen, pages []rejectedPage) tea.Cmd {
	size := r.pageSize()
	before := pages[len(pages)-1].before
	since := s.e.now().Add(-rejectedWindow)
	st := s.e.store
	return r.fetch(s.e.ctx, func(ctx context.Context, seq int) tea.Msg {
		msg := rejectedPageMsg{seq: seq, pages: pages, size: size}
		msg.rows, msg.err = st.ListRejected(ctx, before, size+1)
		if msg.err == nil {
			msg.dropped, msg.droppedErr = st.RejectedDropped(ctx, since)
		}
		return msg
	})
}

func (r *rejectedView) gotPage(s *webhooksScreen, msg rejectedPageMsg) {
	if !r.answered(msg.seq) {
		return
	}
	if msg.err != nil {
		s.e.fail(msg.err)
		return
	}
	r.dropped, r.droppedErr = msg.dropped, store.ErrorMessage(msg.droppedErr)
	rows := msg.rows
	if len(rows) == 0 && len(msg.pages) > 1 {
		r.hasNext = false
		s.e.info("This is the oldest page.")
		return
	}
	r.hasNext = len(rows) > msg.size
	if r.hasNext {
		rows = rows[:msg.size]
	}
	r.pages, r.rows, r.loaded = msg.pages, rows, true
	r.hasPrev = len(r.pages) > 1
	raw := make([][]string, len(rows))
	for i, a := range rows {
		raw[i] = []string{fmtTime(a.ReceivedAt), a.RemoteAddr, a.Reason}
	}
	r.show(raw)
}

// moves are the loads behind the list keys: the page stack grows going
// older and shrinks going newer.
func (r *rejectedView) moves(s *webhooksScreen) pageMoves {
	return pageMoves{
		next: func() tea.Cmd {
			cur := r.current()
			return r.load(s, append(append([]rejectedPage(nil), r.pages...),
				rejectedPage{before: r.rows[len(r.rows)-1].ID, offset: cur.offset + len(r.rows)}))
		},
		prev:  func() tea.Cmd { return r.load(s, append([]rejectedPage(nil), r.pages[:len(r.pages)-1]...)) },
		first: func() tea.Cmd { return r.load(s, []rejectedPage{{}}) },
		end:   "This is the oldest page.",
	}
}

func (r *rejectedView) key(s *webhooksScreen, k tea.KeyMsg) tea.Cmd {
	keys := s.e.keys
	if r.detail != nil {
		if keyMatches(k, keys.Back) {
			r.detail = nil
			return nil
		}
		s.vp.scroll(keys, k)
		return nil
	}
	if keyMatches(k, keys.WebhookEvents) {
		r.stop()
		s.rejected = nil
		return s.activate()
	}
	if cmd, ok := r.pageKey(s.e, k, r.moves(s)); ok {
		return cmd
	}
	if keyMatches(k, keys.Open) {
		if cur := r.grid.cursor(); cur >= 0 && cur < len(r.rows) {
			a := r.rows[cur]
			r.detail = &a
			s.vp.reset(s.rejectedContent(a))
		}
	}
	return nil
}

func (r *rejectedView) infoLine(s *webhooksScreen) string {
	st := s.e.st
	var parts []string
	switch {
	case !r.loaded:
		parts = append(parts, "loading…")
	case len(r.rows) == 0:
		parts = append(parts, "no rejected attempts stored")
	default:
		off := r.current().offset
		parts = append(parts, fmt.Sprintf("rejected attempts %d–%d", off+1, off+len(r.rows)))
	}
	if r.loaded && r.loading {
		parts = append(parts, "loading…")
	} else if r.hasNext {
		parts = append(parts, "pgdn older")
	}
	// Then the attempts only counted (before the paging hint, which is
	// the first to go when the line is cut).
	line := st.dim.Render(parts[0])
	switch {
	case r.droppedErr != "":
		line += st.dim.Render(" · ") + st.err.Render(clean(r.droppedErr))
	case r.dropped > 0:
		line += st.dim.Render(" · ") + st.warn.Render(fmtInt(r.dropped)+" more were counted but not stored") +
			st.dim.Render(" (last 24 h)")
	}
	if len(parts) > 1 {
		line += st.dim.Render(" · " + strings.Join(parts[1:], " · "))
	}
	return line
}

func (r *rejectedView) view(s *webhooksScreen) string {
	st := s.e.st
	if r.detail != nil {
		title := st.heading.Render("Rejected attempt #"+strconv.FormatInt(r.detail.ID, 10)) + s.vp.backHint(st)
		return truncate(title, s.w) + "\n" + s.vp.View()
	}
	return r.grid.view() + "\n" + r.infoLine(s)
}

// rejectedContent is a rejected attempt in full: when, from where, why,
// and its selected headers.
func (s *webhooksScreen) rejectedContent(a store.WebhookAttempt) string {
	st := s.e.st
	w := max(20, s.w)
	rows := [][2]string{
		{"Received", a.ReceivedAt.UTC().Format(timeFormatL)},
		{"Remote address", clean(a.RemoteAddr)},
		{"Outcome", st.outcome(a.Outcome)},
		{"Reason", clean(a.Reason)},
	}
	var b strings.Builder
	b.WriteString(st.kvWrap(rows, w) + "\n\n")
	b.WriteString(st.heading.Render("Headers") + "\n")
	b.WriteString(headersText(st, a.Headers, "", w))
	return b.String()
}
