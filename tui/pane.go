package tui

import (
	"fmt"

	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"
)

// pane is the scrolling viewport of a detail view.
type pane struct{ viewport.Model }

func newPane(st *styles) pane {
	p := pane{viewport.New(0, 0)}
	p.Style = st.plain
	return p
}

// reset shows new content from the top.
func (p *pane) reset(content string) {
	p.SetContent(content)
	p.GotoTop()
}

// refresh shows the content again (new width, new data), keeping the
// scroll position.
func (p *pane) refresh(content string) {
	off := p.YOffset
	p.SetContent(content)
	p.SetYOffset(off)
}

// scroll scrolls with the list keys; it reports whether k was one.
func (p *pane) scroll(keys *keyMap, k tea.KeyMsg) bool {
	switch {
	case keyMatches(k, keys.Down):
		p.ScrollDown(1)
	case keyMatches(k, keys.Up):
		p.ScrollUp(1)
	case keyMatches(k, keys.PageDown):
		p.PageDown()
	case keyMatches(k, keys.PageUp):
		p.PageUp()
	case keyMatches(k, keys.Top):
		p.GotoTop()
	case keyMatches(k, keys.Bottom):
		p.GotoBottom()
	default:
		return false
	}
	return true
}

// backHint is the title's "  esc back · 42%".
func (p *pane) backHint(st *styles) string {
	return st.dim.Render(fmt.Sprintf("  esc back · %d%%", int(p.ScrollPercent()*100)))
}
