package tui

import (
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/progress"
	"github.com/charmbracelet/bubbles/textinput"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"

	"backroom/store"
)

// clientSyncPoll is how often the Clients screen asks for the progress of a
// running sync (only while the screen is visible and a sync runs).
const clientSyncPoll = 250 * time.Millisecond

// clientLoad says which page a load asks for.
type clientLoad int

const (
	loadFirst clientLoad = iota // the first page in the current order
	loadNext                    // the page after the current one
	loadPrev                    // the page before the current one
	loadLast                    // the last page
	loadHere                    // the current page again, from its first row
)

// Live mode filter.
const (
	liveAny = iota
	liveOnly
	testOnly
)

// Deleted (at Stripe) filter.
const (
	deletedAll = iota
	deletedHide
	deletedOnly
)

// clientView is what the list shows: the search, the sort and the filters.
type clientView struct {
	search     string
	sort       string // store.SortName, SortCreated or SortBalance
	desc       bool
	live       int
	delinquent bool
	deleted    int
}

// searchMode mirrors the store's rule: 3 or more characters are a
// substring search (insertion order), 1 or 2 a name prefix (name order).
func (v clientView) searchMode() string {
	switch n := utf8.RuneCountInString(strings.TrimSpace(v.search)); {
	case n == 0:
		return ""
	case n < 3:
		return "prefix"
	}
	return "trigram"
}

// filtered reports whether the query has conditions: then the total is a
// count (exact, or capped), else an estimate of every client.
func (v clientView) filtered() bool {
	return v.searchMode() != "" || v.live != liveAny || v.delinquent || v.deleted != deletedAll
}

// effectiveDesc is the direction the store applies (it ignores Desc while
// searching).
func (v clientView) effectiveDesc() bool { return v.desc && v.searchMode() == "" }

func (v clientView) query() store.ClientQuery {
	q := store.ClientQuery{Search: strings.TrimSpace(v.search), Sort: v.sort, Desc: v.desc}
	yes, no := true, false
	switch v.live {
	case liveOnly:
		q.Livemode = &yes
	case testOnly:
		q.Livemode = &no
	}
	if v.delinquent {
		q.Delinquent = &yes
	}
	switch v.deleted {
	case deletedHide:
		q.Deleted = &no
	case deletedOnly:
		q.Deleted = &yes
	}
	return q
}

// order describes the order of the rows for the status line.
func (v clientView) order() string {
	switch v.searchMode() {
	case "trigram":
		return "insertion order (sort is ignored while searching)"
	case "prefix":
		return "name prefix, by name (sort is ignored while searching)"
	}
	arrow := "↑"
	if v.desc {
		arrow = "↓"
	}
	return "sort " + v.sort + " " + arrow
}

func (v clientView) filters() []string {
	var f []string
	switch v.live {
	case liveOnly:
		f = append(f, "live only")
	case testOnly:
		f = append(f, "test only")
	}
	if v.delinquent {
		f = append(f, "delinquent")
	}
	switch v.deleted {
	case deletedHide:
		f = append(f, "deleted hidden")
	case deletedOnly:
		f = append(f, "deleted only")
	}
	return f
}

// Messages of the Clients screen.
type (
	// clientsPageMsg is one page of clients and the load it answers.
	clientsPageMsg struct {
		seq      int
		kind     clientLoad
		size     int
		reversed bool // rows came in reverse order (last page)
		page     store.ClientPage
		err      error
	}
	// clientDetailMsg is a client opened in detail (audited as viewed)
	// with its recent billing events and the audit rows about it.
	clientDetailMsg struct {
		seq        int
		c          store.Client
		billing    []store.BillingEvent
		billingErr error
		events     []store.Event
		err        error
		eventsErr  error
	}
	// clientEventsMsg refreshes the audit rows of the detail.
	clientEventsMsg struct {
		seq    int
		events []store.Event
		err    error
	}
	// clientNotesMsg is the outcome of saving the notes.
	clientNotesMsg struct {
		id    string
		notes string
		err   error
	}
	// clientDoneMsg is the outcome of an add, link or forget.
	clientDoneMsg struct {
		op   clientOp
		id   string
		text string
		err  error
	}
	// clientSyncMsg is the sync's progress; gen tells whether the screen
	// visit that asked is still on.
	clientSyncMsg struct {
		gen int
		p   store.SyncProgress
	}
	// clientSyncTickMsg asks for the progress again.
	clientSyncTickMsg struct{ gen int }
	// clientSyncStartMsg is the outcome of starting a sync.
	clientSyncStartMsg struct{ err error }
)

type clientOp int

const (
	opAdd clientOp = iota
	opLink
	opForget
)

func isClientsMsg(msg tea.Msg) bool {
	switch msg.(type) {
	case clientsPageMsg, clientDetailMsg, clientEventsMsg, clientNotesMsg, clientDoneMsg,
		clientSyncMsg, clientSyncTickMsg, clientSyncStartMsg:
		return true
	}
	return false
}

// clientsScreen browses the clients one keyset page at a time (only the
// visible page is held), searches them as the staff member types, shows a
// client in detail, edits notes and, for admins, forgets, adds and links
// clients and starts syncs with Stripe.
type clientsScreen struct {
	e       *env
	w, h    int
	grid    *grid
	listing clientView

	rows         []store.Client // the visible page
	hasPrev      bool
	hasNext      bool
	offset       int // rows before the page, when known
	offsetKnown  bool
	total        int64
	totalExact   bool
	totalListing clientView // the view the total counts
	loading      bool
	loaded       bool
	started      bool
	seq          int
	cancel       context.CancelFunc
	wantCursor   int // where the cursor goes when the page arrives (-1: last row)

	search *textinput.Model
	prompt *clientPrompt
	form   *clientForm

	detail    *clientDetail
	detailSeq int
	vp        viewport.Model

	// Sync with Stripe: progress is polled only while the screen is
	// visible and a sync runs.
	sync        store.SyncProgress
	reported    time.Time // FinishedAt of the last outcome shown
	watching    bool      // a sync was seen running: refresh when it ends
	visible     bool
	gen         int // bumped on every show and hide: older ticks lapse
	tickPending bool
	bar         progress.Model
}

func newClientsScreen(e *env) *clientsScreen {
	s := &clientsScreen{e: e, offsetKnown: true, listing: clientView{sort: store.SortName}}
	s.grid = newGrid(e.st, []column{
		{title: "customer", min: 18, max: 22, prio: 0},
		{title: "name", min: 12, max: 28, prio: 1},
		{title: "email", min: 14, max: 34, prio: 3},
		{title: "balance", min: 13, max: 16, prio: 2, right: true},
		{title: "flags", min: 11, max: 22, prio: 4},
		{title: "created", min: 10, prio: 5},
	})
	s.vp = viewport.New(0, 0)
	s.vp.Style = e.st.plain
	s.bar = e.st.progressBar(40)
	return s
}

func (s *clientsScreen) title() string { return "Clients" }

func (s *clientsScreen) capturing() bool {
	return s.search != nil || s.prompt != nil || s.form != nil || (s.detail != nil && s.detail.notes != nil)
}

func (s *clientsScreen) activate() tea.Cmd {
	s.visible = true
	s.gen++
	s.tickPending = false
	var cmds []tea.Cmd
	switch {
	case !s.started:
		s.started = true
		cmds = append(cmds, s.load(loadFirst))
	case !s.loading:
		cmds = append(cmds, s.refresh()) // show what changed meanwhile
	}
	cmds = append(cmds, s.pollSync())
	return tea.Batch(cmds...)
}

func (s *clientsScreen) deactivate() {
	s.visible = false
	s.gen++ // a pending tick lapses and is not renewed
	s.tickPending = false
}

// syncLines is how many lines the sync's progress takes.
func (s *clientsScreen) syncLines() int {
	if s.sync.Running {
		return 2
	}
	return 0
}

// pageSize is the number of rows a page holds: what the table shows.
func (s *clientsScreen) pageSize() int { return s.grid.pageRows() }

func (s *clientsScreen) setSize(w, h int) tea.Cmd {
	s.w, s.h = w, h
	return s.layout()
}

// layout sizes the parts for the body and the sync lines; a page of
// another size is loaded again from its first row.
func (s *clientsScreen) layout() tea.Cmd {
	old := s.pageSize()
	hv := max(3, s.h-s.syncLines())
	s.grid.setSize(s.w, max(2, hv-1))
	s.vp.Width, s.vp.Height = s.w, max(1, hv-1)
	s.bar.Width = max(10, s.w-len("Stripe sync "))
	if s.search != nil {
		s.search.Width = max(10, min(30, s.w/3))
	}
	if s.prompt != nil {
		s.prompt.ti.Width = max(10, s.w-4)
	}
	if s.form != nil {
		s.form.size(s.w)
	}
	if d := s.detail; d != nil {
		if d.notes != nil {
			d.notes.SetWidth(max(10, s.w))
			d.notes.SetHeight(s.notesHeight())
		}
		if d.loaded {
			off := s.vp.YOffset
			s.vp.SetContent(s.detailContent(d))
			s.vp.SetYOffset(off)
		}
	}
	if !s.started || s.pageSize() == old || len(s.rows) == 0 {
		return nil
	}
	s.wantCursor = min(s.grid.cursor(), s.pageSize()-1)
	return s.load(loadHere)
}

// load asks for a page in a Cmd. A newer load cancels and supersedes any
// older one still running: its result is dropped when it arrives.
func (s *clientsScreen) load(kind clientLoad) tea.Cmd {
	if len(s.rows) == 0 && (kind == loadNext || kind == loadPrev || kind == loadHere) {
		kind = loadFirst
	}
	s.seq++
	seq := s.seq
	if s.cancel != nil {
		s.cancel()
	}
	ctx, cancel := context.WithCancel(s.e.ctx)
	s.cancel = cancel
	size := s.pageSize()
	q := s.listing.query()
	q.Limit = size
	reversed := false
	switch kind {
	case loadNext:
		last := s.rows[len(s.rows)-1]
		q.After = &last
	case loadPrev:
		first := s.rows[0]
		q.Before = &first
	case loadHere:
		// A cursor just before the first row: (value, id-1) in ascending
		// order, (value, id+1) in descending order. No row lies between
		// it and the first row, whatever the sort.
		at := s.rows[0]
		if s.listing.effectiveDesc() {
			at.ID++
		} else {
			at.ID--
		}
		q.After = &at
	case loadLast:
		switch s.listing.searchMode() {
		case "":
			// The first page of the reversed order, turned around.
			q.Desc = !q.Desc
			reversed = true
		case "trigram":
			q.Before = &store.Client{ID: math.MaxInt64}
		case "prefix":
			q.Before = &store.Client{Name: "\U0010FFFF", ID: math.MaxInt64}
		}
	}
	s.loading = true
	st := s.e.store
	return func() tea.Msg {
		ctx, stop := context.WithTimeout(ctx, storeTimeout)
		defer stop()
		page, err := st.ListClients(ctx, q)
		return clientsPageMsg{seq: seq, kind: kind, size: size, reversed: reversed, page: page, err: err}
	}
}

// refresh loads the page shown again, keeping the cursor: from the top
// when it is the first page (new rows may sort before its first row),
// else from its first row.
func (s *clientsScreen) refresh() tea.Cmd {
	s.wantCursor = s.grid.cursor()
	if len(s.rows) == 0 || (s.offsetKnown && s.offset == 0) {
		return s.load(loadFirst)
	}
	return s.load(loadHere)
}

func (s *clientsScreen) gotPage(msg clientsPageMsg) tea.Cmd {
	if msg.seq != s.seq {
		return nil // stale: a newer load superseded it
	}
	s.loading = false
	if s.cancel != nil {
		s.cancel()
		s.cancel = nil
	}
	if msg.err != nil {
		s.e.fail(msg.err)
		return nil
	}
	rows := msg.page.Clients
	if msg.reversed {
		rows = slices.Clone(rows)
		slices.Reverse(rows)
	}
	s.total, s.totalExact, s.totalListing = msg.page.Total, msg.page.TotalExact, s.listing
	switch msg.kind {
	case loadFirst:
		s.hasPrev, s.hasNext = false, msg.page.More
		s.offset, s.offsetKnown = 0, true
	case loadHere:
		if len(rows) == 0 {
			return s.load(loadFirst)
		}
		s.hasNext = msg.page.More
	case loadNext:
		if len(rows) == 0 {
			s.hasNext = false
			s.grid.bottom()
			s.e.info("This is the last page.")
			return nil
		}
		s.offset += len(s.rows)
		s.hasPrev, s.hasNext = true, msg.page.More
	case loadPrev:
		if !msg.page.More && len(rows) < msg.size {
			// Reached the top with a short page: show a full first page.
			return s.load(loadFirst)
		}
		s.offset = max(0, s.offset-len(rows))
		s.hasPrev, s.hasNext = msg.page.More, true
		if !msg.page.More {
			s.offset, s.offsetKnown = 0, true
		}
	case loadLast:
		s.hasPrev, s.hasNext = msg.page.More, false
		switch {
		case !msg.page.More:
			s.offset, s.offsetKnown = 0, true
		case msg.page.TotalExact || !s.listing.filtered():
			s.offset, s.offsetKnown = max(0, int(msg.page.Total)-len(rows)), true
		default:
			s.offsetKnown = false
		}
	}
	s.rows = rows
	s.loaded = true
	s.fill()
	return nil
}

// fill shows s.rows in the table.
func (s *clientsScreen) fill() {
	raw := make([][]string, len(s.rows))
	for i, c := range s.rows {
		name := c.Name
		switch {
		case c.Forgotten():
			name = "(forgotten)"
		case name == "":
			name = "—"
		}
		raw[i] = []string{c.CustomerID, name, c.Email, fmtMoney(c.Balance, c.Currency), clientFlags(c), fmtDate(c.StripeCreated)}
	}
	cur := s.wantCursor
	if cur < 0 || cur >= len(s.rows) {
		cur = len(s.rows) - 1
	}
	s.grid.setRows(raw, cur)
	s.wantCursor = 0
}

// clientFlags is the flags column: mode, delinquent, deleted, forgotten.
func clientFlags(c store.Client) string {
	f := "test"
	if c.Livemode {
		f = "LIVE"
	}
	if c.Forgotten() {
		f += " forgotten"
	}
	if c.Deleted {
		f += " deleted"
	}
	if c.Delinquent {
		f += " delinq"
	}
	return f
}

func (s *clientsScreen) selected() (store.Client, bool) {
	i := s.grid.cursor()
	if i < 0 || i >= len(s.rows) {
		return store.Client{}, false
	}
	return s.rows[i], true
}

func (s *clientsScreen) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case clientsPageMsg:
		return s.gotPage(msg)
	case clientDetailMsg:
		return s.gotDetail(msg)
	case clientEventsMsg:
		if d := s.detail; d != nil && d.seq == msg.seq {
			d.events, d.evErr = msg.events, store.ErrorMessage(msg.err)
			s.refreshDetail()
		}
		return nil
	case clientNotesMsg:
		return s.gotNotes(msg)
	case clientDoneMsg:
		return s.gotDone(msg)
	case clientSyncMsg:
		return s.gotSync(msg)
	case clientSyncTickMsg:
		if msg.gen != s.gen || !s.visible {
			return nil // left the screen: the polling stops here
		}
		s.tickPending = false
		return s.pollSync()
	case clientSyncStartMsg:
		if msg.err != nil {
			s.e.fail(msg.err)
			return nil
		}
		s.watching = true
		s.e.good("Stripe sync started; it goes on if you leave this screen.")
		return s.pollSync()
	case tea.KeyMsg:
		switch {
		case s.prompt != nil:
			return s.promptKey(msg)
		case s.form != nil:
			return s.formKey(msg)
		case s.search != nil:
			return s.searchKey(msg)
		case s.detail != nil:
			return s.detailKey(msg)
		}
		return s.listKey(msg)
	}
	return nil
}

func (s *clientsScreen) listKey(k tea.KeyMsg) tea.Cmd {
	keys := s.e.keys
	n := len(s.rows)
	cur := s.grid.cursor()
	switch {
	case keyMatches(k, keys.Down):
		if cur >= n-1 && s.hasNext && n > 0 {
			s.wantCursor = 0
			return s.load(loadNext)
		}
		s.grid.down(1)
	case keyMatches(k, keys.Up):
		if cur <= 0 && s.hasPrev && n > 0 {
			s.wantCursor = -1
			return s.load(loadPrev)
		}
		s.grid.up(1)
	case keyMatches(k, keys.PageDown):
		if s.hasNext && n > 0 {
			s.wantCursor = cur
			return s.load(loadNext)
		}
		s.grid.bottom()
		if s.loaded {
			s.e.info("This is the last page.")
		}
	case keyMatches(k, keys.PageUp):
		if s.hasPrev && n > 0 {
			s.wantCursor = cur
			return s.load(loadPrev)
		}
		s.grid.top()
	case keyMatches(k, keys.Top):
		s.wantCursor = 0
		return s.load(loadFirst)
	case keyMatches(k, keys.Bottom):
		s.wantCursor = -1
		return s.load(loadLast)
	case keyMatches(k, keys.Open):
		if c, ok := s.selected(); ok {
			return s.openDetail(c.CustomerID)
		}
	case keyMatches(k, keys.Search):
		ti := textinput.New()
		s.e.st.styleInput(&ti)
		ti.Prompt = "/"
		ti.Placeholder = "name, email or customer id"
		ti.CharLimit = 100
		ti.Width = max(10, min(30, s.w/3))
		ti.SetValue(s.listing.search)
		ti.CursorEnd()
		s.search = &ti
		return s.search.Focus()
	case keyMatches(k, keys.Back):
		if s.listing.search != "" {
			s.listing.search = ""
			s.wantCursor = 0
			s.e.info("Search cleared.")
			return s.load(loadFirst)
		}
	case keyMatches(k, keys.ClientSort):
		switch s.listing.sort {
		case store.SortName:
			s.listing.sort = store.SortCreated
		case store.SortCreated:
			s.listing.sort = store.SortBalance
		default:
			s.listing.sort = store.SortName
		}
		return s.reorder()
	case keyMatches(k, keys.ClientSortDir):
		s.listing.desc = !s.listing.desc
		return s.reorder()
	case keyMatches(k, keys.ClientLive):
		s.listing.live = (s.listing.live + 1) % 3
		return s.reload()
	case keyMatches(k, keys.ClientDelinquent):
		s.listing.delinquent = !s.listing.delinquent
		return s.reload()
	case keyMatches(k, keys.ClientDeleted):
		s.listing.deleted = (s.listing.deleted + 1) % 3
		return s.reload()
	default:
		return s.actionKey(k)
	}
	return nil
}

// reorder applies a new sort; while searching the store ignores it, so
// the rows stay as they are until the search is cleared.
func (s *clientsScreen) reorder() tea.Cmd {
	if mode := s.listing.searchMode(); mode != "" {
		order := "insertion order"
		if mode == "prefix" {
			order = "name order"
		}
		s.e.info("Sorting is ignored while searching (results come in " + order + "); sort " + s.listing.sort + " applies when the search is cleared.")
		return nil
	}
	return s.reload()
}

func (s *clientsScreen) reload() tea.Cmd {
	s.wantCursor = 0
	return s.load(loadFirst)
}

// actionKey handles the actions on clients, from the list or the detail.
func (s *clientsScreen) actionKey(k tea.KeyMsg) tea.Cmd {
	keys := s.e.keys
	switch {
	case keyMatches(k, keys.ClientForget):
		if !s.requireAdmin("forget clients") {
			return nil
		}
		id := ""
		if s.detail != nil {
			id = s.detail.id
		} else if c, ok := s.selected(); ok {
			id = c.CustomerID
		}
		if id == "" {
			return nil
		}
		return s.askForget(id)
	case keyMatches(k, keys.ClientAdd):
		if !s.requireAdmin("add clients") {
			return nil
		}
		return s.openForm()
	case keyMatches(k, keys.ClientLink):
		if !s.requireAdmin("link clients") || !s.requireSync() {
			return nil
		}
		return s.askLink()
	case keyMatches(k, keys.ClientSync):
		if !s.requireAdmin("start a sync with Stripe; its progress shows here while one runs") || !s.requireSync() {
			return nil
		}
		if s.sync.Running {
			s.e.info("A sync with Stripe is running (started by " + clean(s.sync.StartedBy) + ").")
			return nil
		}
		s.ask(&clientPrompt{kind: askYesNo, text: "Start a sync with Stripe now? It fetches every customer and runs in the background.",
			done: func(string) (tea.Cmd, string) { return s.startSync(), "" }})
	}
	return nil
}

// requireAdmin refuses an admin-only action to staff (the store refuses
// it as well).
func (s *clientsScreen) requireAdmin(what string) bool {
	if s.e.admin() {
		return true
	}
	s.e.setStatus(statusErr, "Only an admin may "+what+".")
	return false
}

func (s *clientsScreen) requireSync() bool {
	if s.e.sync != nil {
		return true
	}
	s.e.setStatus(statusErr, "Sync is not available in this session.")
	return false
}

func (s *clientsScreen) searchKey(k tea.KeyMsg) tea.Cmd {
	keys := s.e.keys
	switch {
	case keyMatches(k, keys.Cancel):
		s.search = nil
		if s.listing.search != "" {
			s.listing.search = ""
			s.wantCursor = 0
			return s.load(loadFirst)
		}
		return nil
	case keyMatches(k, keys.Submit):
		s.search = nil
		return nil
	}
	var cmd tea.Cmd
	*s.search, cmd = s.search.Update(k)
	// Incremental: every change runs the query again; the query of an
	// earlier keystroke is cancelled and its result dropped.
	v := s.search.Value()
	changed := strings.TrimSpace(v) != strings.TrimSpace(s.listing.search)
	s.listing.search = v
	if changed {
		s.wantCursor = 0
		return tea.Batch(cmd, s.load(loadFirst))
	}
	return cmd
}

// --- sync with Stripe --------------------------------------------------------

// pollSync asks the sync for its progress (in a Cmd, as every call out of
// Update).
func (s *clientsScreen) pollSync() tea.Cmd {
	if s.e.sync == nil {
		return nil
	}
	gen, sy := s.gen, s.e.sync
	return func() tea.Msg { return clientSyncMsg{gen: gen, p: sy.Status()} }
}

func (s *clientsScreen) startSync() tea.Cmd {
	sy, a := s.e.sync, s.e.actor
	s.e.info("Starting a sync with Stripe…")
	return s.e.call(func(ctx context.Context) tea.Msg { return clientSyncStartMsg{err: sy.Start(ctx, a)} })
}

func (s *clientsScreen) gotSync(msg clientSyncMsg) tea.Cmd {
	current := msg.gen == s.gen && s.visible
	wasRunning := s.sync.Running
	s.sync = msg.p
	var cmds []tea.Cmd
	if msg.p.Running {
		s.watching = true
	}
	if wasRunning != msg.p.Running {
		cmds = append(cmds, s.layout()) // the progress lines come or go
	}
	if !msg.p.Running && !msg.p.FinishedAt.IsZero() && !msg.p.FinishedAt.Equal(s.reported) && current {
		s.reported = msg.p.FinishedAt
		s.reportSync(msg.p)
		if s.watching && s.started {
			// The sync changed the clients: show them (this load
			// supersedes the layout's).
			s.watching = false
			cmds = append(cmds, s.refresh())
		}
	}
	if msg.p.Running && current && !s.tickPending {
		s.tickPending = true
		gen := s.gen
		cmds = append(cmds, s.e.tick(clientSyncPoll, func(time.Time) tea.Msg { return clientSyncTickMsg{gen: gen} }))
	}
	return tea.Batch(cmds...)
}

// reportSync shows a finished sync's outcome on the status line.
func (s *clientsScreen) reportSync(p store.SyncProgress) {
	text := "fetched " + fmtInt(int64(p.Fetched)) + " · " + syncCounts(p)
	if p.Err != "" {
		s.e.setStatus(statusErr, "Stripe sync stopped: "+p.Err+" ("+text+")")
		return
	}
	s.e.good("Stripe sync finished " + fmtTime(p.FinishedAt) + " UTC: " + text)
}

func syncCounts(p store.SyncProgress) string {
	text := fmtInt(int64(p.Created)) + " created · " + fmtInt(int64(p.Updated)) + " updated · " +
		fmtInt(int64(p.Unchanged)) + " unchanged"
	if p.MarkedDeleted > 0 {
		text += " · " + fmtInt(int64(p.MarkedDeleted)) + " marked deleted"
	}
	return text
}

// syncView is the running sync's progress: a bar when the total is known,
// and the counts.
func (s *clientsScreen) syncView() []string {
	p := s.sync
	if !p.Running {
		return nil
	}
	st := s.e.st
	var bar string
	counts := "fetched " + fmtInt(int64(p.Fetched))
	if p.Total > 0 {
		pct := min(1, max(0, float64(p.Fetched)/float64(p.Total)))
		bar = st.heading.Render("Stripe sync ") + st.viewBar(s.bar, pct)
		counts += " of " + fmtInt(int64(p.Total))
	} else {
		bar = st.heading.Render("Stripe sync ") + st.dim.Render("running; the total is not known yet")
	}
	counts += " · " + syncCounts(p)
	if p.StartedBy != "" {
		counts += " · started by " + clean(p.StartedBy)
	}
	return []string{bar, st.dim.Render(counts)}
}

// --- view --------------------------------------------------------------------

// rangeText is "1–40 of about 1,000,000" and the like.
func (s *clientsScreen) rangeText() string {
	n := len(s.rows)
	if n == 0 {
		if s.listing.filtered() {
			return "no clients match"
		}
		return "no clients yet"
	}
	var of string
	switch {
	case s.totalExact:
		of = "of " + fmtInt(s.total)
	case !s.totalListing.filtered():
		of = "of about " + fmtInt(max(s.total, int64(s.offset+n)))
	default:
		of = "of more than " + fmtInt(s.total)
	}
	if !s.offsetKnown {
		return "last " + itoa(n) + " " + of
	}
	return itoa(s.offset+1) + "–" + itoa(s.offset+n) + " " + of
}

func (s *clientsScreen) infoLine() string {
	st := s.e.st
	if !s.loaded {
		return st.dim.Render("loading…")
	}
	parts := []string{s.rangeText()}
	if s.loading {
		parts = append(parts, "loading…")
	}
	if q := strings.TrimSpace(s.listing.search); q != "" && s.search == nil {
		parts = append(parts, "search "+strconv.Quote(clean(q)))
	}
	parts = append(parts, s.listing.order())
	if f := s.listing.filters(); len(f) > 0 {
		parts = append(parts, "filter: "+strings.Join(f, ", "))
	}
	text := st.dim.Render(strings.Join(parts, " · "))
	if s.search != nil {
		return s.search.View() + "  " + text
	}
	return text
}

func (s *clientsScreen) view() string {
	hv := max(3, s.h-s.syncLines())
	var body string
	switch {
	case s.form != nil:
		body = s.formView()
	case s.detail != nil:
		body = s.detailView()
	default:
		body = s.grid.view() + "\n" + s.infoLine()
	}
	lines := strings.Split(body, "\n")
	bottom := s.promptLines()
	keep := max(0, hv-len(bottom))
	if len(lines) > keep {
		lines = lines[:keep]
	}
	for len(lines) < keep {
		lines = append(lines, "")
	}
	lines = append(lines, bottom...)
	lines = append(lines, s.syncView()...)
	return strings.Join(lines, "\n")
}

func (s *clientsScreen) help() helpKeys {
	k := s.e.keys
	admin := s.e.admin()
	switch {
	case s.prompt != nil && s.prompt.kind == askYesNo:
		b := []key.Binding{k.Yes, k.No, k.ForceQuit}
		return helpKeys{short: b, full: [][]key.Binding{b}}
	case s.prompt != nil:
		b := []key.Binding{k.Submit, k.Cancel, k.ForceQuit}
		return helpKeys{short: b, full: [][]key.Binding{b}}
	case s.form != nil:
		b := []key.Binding{k.Submit, k.NextField, k.PrevField, k.Toggle, k.Cancel, k.ForceQuit}
		return helpKeys{short: b, full: [][]key.Binding{b}}
	case s.search != nil:
		b := []key.Binding{k.Submit, k.ClearIn, k.ForceQuit}
		return helpKeys{short: b, full: [][]key.Binding{b}}
	case s.detail != nil && s.detail.notes != nil:
		newline := key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "new line"))
		b := []key.Binding{k.Save, k.Cancel, newline, k.ForceQuit}
		return helpKeys{short: b, full: [][]key.Binding{b}}
	case s.detail != nil:
		short := []key.Binding{k.Back, k.ClientNotes, k.Down, k.PageDown}
		acts := []key.Binding{k.Back, k.ClientNotes}
		if admin {
			short = append(short, k.ClientForget)
			acts = append(acts, k.ClientForget)
		}
		return helpKeys{short: short, full: [][]key.Binding{acts, {k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom}}}
	}
	short := []key.Binding{k.Open, k.Search, k.ClientSort, k.ClientSortDir, k.ClientLive, k.ClientDelinquent, k.ClientDeleted}
	full := [][]key.Binding{
		{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom},
		{k.Open, k.Search, k.Back},
		{k.ClientSort, k.ClientSortDir, k.ClientLive, k.ClientDelinquent, k.ClientDeleted},
	}
	if admin {
		short = append(short, k.ClientAdd, k.ClientForget, k.ClientLink, k.ClientSync)
		full = append(full, []key.Binding{k.ClientAdd, k.ClientLink, k.ClientForget, k.ClientSync})
	}
	return helpKeys{short: short, full: full}
}

// --- formatting ----------------------------------------------------------------

// fmtInt groups digits by thousands: 1,234,567.
func fmtInt(n int64) string {
	if n < 0 {
		if n == math.MinInt64 {
			return "-9,223,372,036,854,775,808"
		}
		return "-" + fmtInt(-n)
	}
	s := strconv.FormatInt(n, 10)
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	head := len(s) % 3
	if head > 0 {
		b.WriteString(s[:head])
	}
	for i := head; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// currencyDecimals is how many decimals an amount in minor units has, as
// Stripe counts them: zero-decimal currencies (JPY, KRW, …) have none,
// a few have three, the rest two.
func currencyDecimals(currency string) int {
	switch strings.ToLower(currency) {
	case "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf":
		return 0
	case "bhd", "jod", "kwd", "omr", "tnd":
		return 3
	}
	return 2
}

// fmtMoney renders minor units with the currency: "USD 1,234.56",
// "JPY 5,000", "EUR -12.00". Without a currency a zero balance is "—"
// and any other is shown in minor units.
func fmtMoney(minor int64, currency string) string {
	if currency == "" {
		if minor == 0 {
			return "—"
		}
		return fmtInt(minor) + " (minor units)"
	}
	dec := currencyDecimals(currency)
	neg := minor < 0
	abs := uint64(minor)
	if neg {
		abs = uint64(-(minor + 1)) + 1
	}
	unit := uint64(1)
	for range dec {
		unit *= 10
	}
	whole, frac := abs/unit, abs%unit
	var s string
	if whole > math.MaxInt64 {
		s = strconv.FormatUint(whole, 10)
	} else {
		s = fmtInt(int64(whole))
	}
	if dec > 0 {
		f := strconv.FormatUint(frac, 10)
		s += "." + strings.Repeat("0", dec-len(f)) + f
	}
	if neg {
		s = "-" + s
	}
	return strings.ToUpper(clean(currency)) + " " + s
}

func fmtDate(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02")
}
