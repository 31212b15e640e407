package tui

import (
	"context"

	tea "github.com/charmbracelet/bubbletea"
)

// pager is what a list shown one page at a time keeps besides its rows:
// the load in flight (a newer one supersedes it), whether there are pages
// before and after, and where the cursor goes when a page arrives. The
// Clients, Audit and Webhooks lists and the rejected attempts embed it.
type pager struct {
	grid       *grid
	hasPrev    bool // a page before this one (newer rows, in a newest-first list)
	hasNext    bool // a page after this one
	loading    bool
	loaded     bool // a page has been shown
	seq        int
	cancel     context.CancelFunc
	wantCursor int // where the cursor goes when the page arrives (-1: last row)
}

// pageSize is the number of rows a page holds: what the table shows.
func (p *pager) pageSize() int { return p.grid.pageRows() }

// fetch runs read in a Cmd as the latest load, under parent and bounded
// by storeTimeout. It cancels the load before it, whose answer is then
// stale (see answered).
func (p *pager) fetch(parent context.Context, read func(ctx context.Context, seq int) tea.Msg) tea.Cmd {
	p.seq++
	seq := p.seq
	p.stop()
	ctx, cancel := context.WithCancel(parent)
	p.cancel = cancel
	p.loading = true
	return callIn(ctx, func(ctx context.Context) tea.Msg { return read(ctx, seq) })
}

// answered reports whether seq answers the latest load, which is then
// over; an older answer is stale and must be dropped.
func (p *pager) answered(seq int) bool {
	if seq != p.seq {
		return false
	}
	p.loading = false
	p.stop()
	return true
}

// stop cancels the load in flight, if any.
func (p *pager) stop() {
	if p.cancel != nil {
		p.cancel()
		p.cancel = nil
	}
}

// show puts a page's cells in the grid, the cursor where wantCursor says.
func (p *pager) show(raw [][]string) {
	c := p.wantCursor
	if c < 0 || c >= len(raw) {
		c = len(raw) - 1
	}
	p.grid.setRows(raw, c)
	p.wantCursor = 0
}

// pageMoves are the loads behind a paged list's keys; wantCursor is set
// when they are called.
type pageMoves struct {
	next, prev  func() tea.Cmd // the page after, before this one
	first, last func() tea.Cmd // last nil: G goes to this page's last row
	end         string         // what pgdn says on the last page
}

// pageKey moves through a paged list: ↑↓ within the page and across its
// edges, pgup/pgdn a page at a time, g/G to the ends. It reports whether
// k was one of those keys.
func (p *pager) pageKey(e *env, k tea.KeyMsg, m pageMoves) (tea.Cmd, bool) {
	keys := e.keys
	n := p.grid.len()
	cur := p.grid.cursor()
	switch {
	case keyMatches(k, keys.Down):
		if cur >= n-1 && p.hasNext && n > 0 {
			p.wantCursor = 0
			return m.next(), true
		}
		p.grid.down(1)
	case keyMatches(k, keys.Up):
		if cur <= 0 && p.hasPrev && n > 0 {
			p.wantCursor = -1
			return m.prev(), true
		}
		p.grid.up(1)
	case keyMatches(k, keys.PageDown):
		if p.hasNext && n > 0 {
			p.wantCursor = cur
			return m.next(), true
		}
		p.grid.bottom()
		if p.loaded {
			e.info(m.end)
		}
	case keyMatches(k, keys.PageUp):
		if p.hasPrev && n > 0 {
			p.wantCursor = cur
			return m.prev(), true
		}
		p.grid.top()
	case keyMatches(k, keys.Top):
		p.wantCursor = 0
		return m.first(), true
	case keyMatches(k, keys.Bottom):
		if m.last == nil {
			p.grid.bottom()
			return nil, true
		}
		p.wantCursor = -1
		return m.last(), true
	default:
		return nil, false
	}
	return nil, true
}

// pageKind says which page of a keysetList a load asks for.
type pageKind int

const (
	pageNewest pageKind = iota // the newest rows
	pageOlder                  // rows older than the current page
	pageNewer                  // rows newer than the current page
	pageOldest                 // the oldest rows
	pageAt                     // the current page again, from its first row
)

// keysetPageMsg is one page of a keysetList and the load it answers. The
// screens tell their pages apart by the row type.
type keysetPageMsg[T any] struct {
	seq  int
	kind pageKind
	size int
	rows []T
	err  error
}

// keysetQuery is the window a keysetList reads: at most limit rows, newest
// first, with ids below before and above after (0: unbounded). For
// pageOldest the reader returns the oldest limit rows, newest first.
type keysetQuery struct {
	kind          pageKind
	before, after int64
	limit         int
}

// keysetReader reads a keysetQuery's rows (in a Cmd).
type keysetReader[T any] func(ctx context.Context, q keysetQuery) ([]T, error)

// keysetList is a newest-first list read one keyset page at a time by row
// id (a row more than the page tells whether another follows); only the
// page shown is held. The Audit and Webhooks screens embed it.
type keysetList[T any] struct {
	pager
	e           *env
	rows        []T // the page shown, newest first
	offset      int // rows above the page (when known)
	offsetKnown bool
	started     bool
	id          func(T) int64
	cells       func(T) []string
	// reader returns the reader of the screen's filter as it is now.
	reader func() keysetReader[T]
}

func newKeysetList[T any](e *env, g *grid, id func(T) int64, cells func(T) []string, reader func() keysetReader[T]) keysetList[T] {
	return keysetList[T]{pager: pager{grid: g}, e: e, offsetKnown: true, id: id, cells: cells, reader: reader}
}

// load asks for a page in a Cmd; a newer load cancels and supersedes it.
func (l *keysetList[T]) load(kind pageKind, anchor int64) tea.Cmd {
	size := l.pageSize()
	q := keysetQuery{kind: kind, limit: size + 1}
	switch kind {
	case pageOlder, pageAt:
		q.before = anchor
	case pageNewer:
		q.after = anchor
	}
	read := l.reader()
	return l.fetch(l.e.ctx, func(ctx context.Context, seq int) tea.Msg {
		rows, err := read(ctx, q)
		return keysetPageMsg[T]{seq: seq, kind: kind, size: size, rows: rows, err: err}
	})
}

// reload shows the newest page, the cursor on top (a filter changed).
func (l *keysetList[T]) reload() tea.Cmd {
	l.wantCursor = 0
	return l.load(pageNewest, 0)
}

// here loads the page shown again: the newest page when it is the first
// (rows may have arrived above it), else from its first row.
func (l *keysetList[T]) here() tea.Cmd {
	if len(l.rows) == 0 || (l.offsetKnown && l.offset == 0) {
		return l.load(pageNewest, 0)
	}
	return l.load(pageAt, l.id(l.rows[0])+1)
}

// visit loads the first page on the first visit and, back on the newest
// page, what arrived meanwhile.
func (l *keysetList[T]) visit() tea.Cmd {
	switch {
	case !l.started:
		l.started = true
		return l.load(pageNewest, 0)
	case l.offsetKnown && l.offset == 0 && !l.loading:
		l.wantCursor = l.grid.cursor()
		return l.load(pageNewest, 0)
	}
	return nil
}

// resize sizes the table; a page of another size is loaded again from
// its first row.
func (l *keysetList[T]) resize(w, h int) tea.Cmd {
	old := l.pageSize()
	l.grid.setSize(w, h)
	if !l.started || l.pageSize() == old || len(l.rows) == 0 {
		return nil
	}
	l.wantCursor = min(l.grid.cursor(), l.pageSize()-1)
	return l.here()
}

func (l *keysetList[T]) selected() (T, bool) {
	i := l.grid.cursor()
	if i < 0 || i >= len(l.rows) {
		var zero T
		return zero, false
	}
	return l.rows[i], true
}

// moves are the keyset loads behind the list keys.
func (l *keysetList[T]) moves() pageMoves {
	return pageMoves{
		next:  func() tea.Cmd { return l.load(pageOlder, l.id(l.rows[len(l.rows)-1])) },
		prev:  func() tea.Cmd { return l.load(pageNewer, l.id(l.rows[0])) },
		first: func() tea.Cmd { return l.load(pageNewest, 0) },
		last:  func() tea.Cmd { return l.load(pageOldest, 0) },
		end:   "This is the oldest page.",
	}
}

// gotPage shows a page that answers the latest load.
func (l *keysetList[T]) gotPage(msg keysetPageMsg[T]) tea.Cmd {
	if !l.answered(msg.seq) {
		return nil
	}
	if msg.err != nil {
		l.e.fail(msg.err)
		return nil
	}
	size := msg.size
	rows := msg.rows
	more := len(rows) > size
	switch msg.kind {
	case pageNewest:
		if more {
			rows = rows[:size]
		}
		l.hasNext, l.hasPrev = more, false
		l.offset, l.offsetKnown = 0, true
	case pageAt:
		if len(rows) == 0 {
			return l.load(pageNewest, 0)
		}
		if more {
			rows = rows[:size]
		}
		l.hasNext = more
	case pageOlder:
		if len(rows) == 0 {
			l.hasNext = false
			l.e.info("This is the oldest page.")
			return nil
		}
		if more {
			rows = rows[:size]
		}
		l.offset += len(l.rows)
		l.hasNext, l.hasPrev = more, true
	case pageNewer:
		if !more {
			// Reached the top: show the full newest page.
			return l.load(pageNewest, 0)
		}
		rows = rows[len(rows)-size:]
		l.offset = max(0, l.offset-len(rows))
		l.hasNext, l.hasPrev = true, true
	case pageOldest:
		// Newest first, the oldest row last.
		if more {
			rows = rows[len(rows)-size:]
		}
		l.hasNext, l.hasPrev = false, more
		l.offsetKnown = !more
		l.offset = 0
	}
	l.rows, l.loaded = rows, true
	raw := make([][]string, len(rows))
	for i, r := range rows {
		raw[i] = l.cells(r)
	}
	l.show(raw)
	return nil
}
