package tui

import (
	"slices"
	"strings"

	"github.com/charmbracelet/bubbles/table"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
)

// column describes one column of a grid.
type column struct {
	title string
	min   int  // narrowest useful width
	max   int  // widest it grows to when there is room (0: min)
	prio  int  // columns with a higher prio are dropped first when narrow
	right bool // right-aligned (amounts)
	mid   bool // shortened in the middle when too wide (ids: "evt_1N…Kf3pA")
	// tint, when set, colours a cell by its text (not on the selected
	// row, which has the selection's colours). The text must tell the
	// values apart by itself: without colour it is all there is.
	tint func(text string) (lipgloss.Style, bool)
}

// grid wraps bubbles/table: it picks the columns that fit the width (lowest
// priority dropped first), grows the flexible ones, cleans cell text and
// marks the selected row with a pointer so that the selection shows even
// without colour.
type grid struct {
	st     *styles
	t      table.Model
	cols   []column
	shown  []int
	widths []int
	raw    [][]string
	first  []string // the first shown cell of each row, unmarked
	width  int
	height int
}

const markerWidth = 2

func newGrid(st *styles, cols []column) *grid {
	g := &grid{st: st, cols: cols}
	g.t = table.New(table.WithStyles(st.table))
	g.t.Help.Styles = st.help
	g.t.Focus()
	return g
}

func (g *grid) setSize(w, h int) {
	g.width, g.height = w, max(h, 2)
	cur := g.t.Cursor()
	g.layout()
	g.t.SetWidth(w)
	g.t.SetHeight(g.height)
	g.rebuild(cur)
}

// layout chooses the columns and their widths for the current width.
func (g *grid) layout() {
	order := make([]int, len(g.cols))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return g.cols[a].prio - g.cols[b].prio })
	used := markerWidth
	chosen := make([]bool, len(g.cols))
	for _, i := range order {
		need := g.cols[i].min + 2 // cell padding
		if used+need <= g.width {
			chosen[i] = true
			used += need
		}
	}
	widths := make([]int, len(g.cols))
	for i, c := range g.cols {
		if chosen[i] {
			widths[i] = c.min
		}
	}
	// Share the room left one cell at a time, in priority order, among
	// the columns that can still grow.
	for extra := g.width - used; extra > 0; {
		grew := false
		for _, i := range order {
			if extra > 0 && chosen[i] && widths[i] < g.cols[i].max {
				widths[i]++
				extra--
				grew = true
			}
		}
		if !grew {
			break
		}
	}
	g.shown, g.widths = g.shown[:0], g.widths[:0]
	var tcols []table.Column
	for i, c := range g.cols {
		if !chosen[i] {
			continue
		}
		w := widths[i]
		if len(g.shown) == 0 {
			w += markerWidth
		}
		g.shown = append(g.shown, i)
		g.widths = append(g.widths, w)
		title := c.title
		if len(tcols) == 0 {
			title = "  " + title
		}
		tcols = append(tcols, table.Column{Title: title, Width: w})
	}
	// Rows must be cleared first: the table renders rows against the
	// columns it has.
	g.t.SetRows(nil)
	g.t.SetColumns(tcols)
}

// setRows replaces the rows (raw values, one per column) and puts the
// cursor on row cursor. The table renders once (twice when the cursor
// moves).
func (g *grid) setRows(raw [][]string, cursor int) {
	g.raw = raw
	g.rebuild(cursor)
}

func (g *grid) rebuild(cursor int) {
	cursor = min(max(cursor, 0), len(g.raw)-1)
	ptr := g.pointer()
	rows := make([]table.Row, len(g.raw))
	g.first = g.first[:0]
	for r, vals := range g.raw {
		row := make(table.Row, len(g.shown))
		for j, i := range g.shown {
			if i < len(vals) {
				row[j] = clean(vals[i])
				if g.cols[i].mid {
					row[j] = shortenMiddle(row[j], g.widths[j])
				}
				if g.cols[i].right {
					row[j] = padLeft(row[j], g.widths[j])
				}
			}
		}
		first := ""
		if len(row) > 0 {
			first = row[0]
			if r == cursor {
				row[0] = ptr + first
			} else {
				row[0] = "  " + first
			}
		}
		g.first = append(g.first, first)
		rows[r] = row
	}
	g.t.SetRows(rows)
	if g.t.Cursor() != cursor {
		g.t.SetCursor(cursor)
	}
}

func (g *grid) pointer() string {
	if g.st.ascii {
		return "> "
	}
	return "▸ "
}

// mark puts the pointer on the selected row.
func (g *grid) mark() {
	rows := g.t.Rows()
	cur := g.t.Cursor()
	ptr := g.pointer()
	for i, row := range rows {
		if len(row) == 0 || i >= len(g.first) {
			continue
		}
		if i == cur {
			row[0] = ptr + g.first[i]
		} else {
			row[0] = "  " + g.first[i]
		}
	}
	g.t.UpdateViewport()
}

func (g *grid) len() int    { return len(g.raw) }
func (g *grid) cursor() int { return g.t.Cursor() }

// view renders the table, with the tinted columns coloured.
func (g *grid) view() string {
	v := g.t.View()
	if g.st.ascii || !slices.ContainsFunc(g.shown, func(i int) bool { return g.cols[i].tint != nil }) {
		return v
	}
	lines := strings.Split(v, "\n")
	for i := 1; i < len(lines); i++ { // line 0 is the header
		lines[i] = g.tintLine(lines[i])
	}
	return strings.Join(lines, "\n")
}

// tintLine colours the tinted cells of one rendered row. Rows other than
// the selected one are plain text (cells have padding only), so cells
// are found by their offsets; the selected row starts with its style's
// escape sequence and is left as it is.
func (g *grid) tintLine(line string) string {
	if strings.HasPrefix(line, "\x1b") || strings.TrimSpace(line) == "" {
		return line
	}
	off := 0
	for j, i := range g.shown {
		w := g.widths[j]
		start := off + 1 // the cell's left padding
		off += w + 2
		tint := g.cols[i].tint
		if tint == nil {
			continue
		}
		cell := ansi.Cut(line, start, start+w)
		style, ok := tint(strings.TrimSpace(cell))
		if !ok {
			continue
		}
		line = ansi.Cut(line, 0, start) + style.Render(cell) + ansi.Cut(line, start+w, lipgloss.Width(line))
	}
	return line
}

// shortenMiddle cuts s to width w by leaving out its middle, so that both
// ends of an id stay readable.
func shortenMiddle(s string, w int) string {
	if w <= 0 || lipgloss.Width(s) <= w {
		return s
	}
	if w < 5 {
		return ansi.Truncate(s, w, "…")
	}
	head := w / 2
	tail := w - 1 - head
	n := lipgloss.Width(s)
	return ansi.Cut(s, 0, head) + "…" + ansi.Cut(s, n-tail, n)
}

// pageRows is how many rows are visible.
func (g *grid) pageRows() int { return max(1, g.height-1) }

func (g *grid) up(n int) {
	g.t.MoveUp(n)
	g.mark()
}

func (g *grid) down(n int) {
	g.t.MoveDown(n)
	g.mark()
}

func (g *grid) top() {
	g.t.GotoTop()
	g.mark()
}

func (g *grid) bottom() {
	g.t.GotoBottom()
	g.mark()
}

func (g *grid) setCursor(i int) {
	g.t.SetCursor(i)
	g.mark()
}

// moveKey moves the cursor of a list held whole with the list keys; it
// reports whether k was one.
func (g *grid) moveKey(keys *keyMap, k tea.KeyMsg) bool {
	switch {
	case keyMatches(k, keys.Up):
		g.up(1)
	case keyMatches(k, keys.Down):
		g.down(1)
	case keyMatches(k, keys.PageUp):
		g.up(g.pageRows())
	case keyMatches(k, keys.PageDown):
		g.down(g.pageRows())
	case keyMatches(k, keys.Top):
		g.top()
	case keyMatches(k, keys.Bottom):
		g.bottom()
	default:
		return false
	}
	return true
}
