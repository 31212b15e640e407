package tui

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/textarea"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"backroom/store"
)

// clientAuditRows is how many audit rows about a client the detail shows.
const clientAuditRows = 50

// clientBillingRows is how many billing events of a client the detail
// shows (newest first).
const clientBillingRows = 20

// clientDetail is a client shown in detail. Only its customer id is
// known until ViewClient (audited as client.viewed) answers.
type clientDetail struct {
	id     string
	seq    int
	loaded bool
	c      store.Client
	events []store.Event
	evErr  string
	// billing is the client's recent billing activity (from webhooks).
	billing []store.BillingEvent
	billErr string

	notes    *textarea.Model // open while the notes are edited
	notesErr string
	saving   bool
}

// openDetail shows a client: the record is read, and the access audited,
// in a Cmd.
func (s *clientsScreen) openDetail(id string) tea.Cmd {
	s.detailSeq++
	seq := s.detailSeq
	s.detail = &clientDetail{id: id, seq: seq}
	s.vp.SetContent("")
	s.vp.GotoTop()
	st, a := s.e.store, s.e.actor
	return s.e.call(func(ctx context.Context) tea.Msg {
		c, err := st.ViewClient(ctx, a, id)
		if err != nil {
			return clientDetailMsg{seq: seq, err: err}
		}
		billing, billErr := st.BillingEvents(ctx, id, clientBillingRows)
		events, evErr := st.ClientAudit(ctx, id, clientAuditRows)
		return clientDetailMsg{seq: seq, c: c, billing: billing, billingErr: billErr, events: events, eventsErr: evErr}
	})
}

func (s *clientsScreen) gotDetail(msg clientDetailMsg) tea.Cmd {
	d := s.detail
	if d == nil || d.seq != msg.seq {
		return nil // closed, or another client opened since
	}
	if msg.err != nil {
		s.detail = nil
		s.e.fail(msg.err)
		return nil
	}
	d.c, d.events, d.evErr, d.loaded = msg.c, msg.events, store.ErrorMessage(msg.eventsErr), true
	d.billing, d.billErr = msg.billing, store.ErrorMessage(msg.billingErr)
	s.vp.SetContent(s.detailContent(d))
	s.vp.GotoTop()
	return nil
}

// refreshDetail renders the detail again, keeping the scroll position.
func (s *clientsScreen) refreshDetail() {
	if d := s.detail; d != nil && d.loaded {
		off := s.vp.YOffset
		s.vp.SetContent(s.detailContent(d))
		s.vp.SetYOffset(off)
	}
}

// reloadEvents reads the audit rows about the client again (no personal
// data: not an audited view).
func (s *clientsScreen) reloadEvents() tea.Cmd {
	d := s.detail
	if d == nil {
		return nil
	}
	st, id, seq := s.e.store, d.id, d.seq
	return s.e.call(func(ctx context.Context) tea.Msg {
		events, err := st.ClientAudit(ctx, id, clientAuditRows)
		return clientEventsMsg{seq: seq, events: events, err: err}
	})
}

func (s *clientsScreen) detailKey(k tea.KeyMsg) tea.Cmd {
	d := s.detail
	if d.notes != nil {
		return s.notesKey(k)
	}
	keys := s.e.keys
	switch {
	case keyMatches(k, keys.Back):
		s.detail = nil
	case keyMatches(k, keys.Down):
		s.vp.ScrollDown(1)
	case keyMatches(k, keys.Up):
		s.vp.ScrollUp(1)
	case keyMatches(k, keys.PageDown):
		s.vp.PageDown()
	case keyMatches(k, keys.PageUp):
		s.vp.PageUp()
	case keyMatches(k, keys.Top):
		s.vp.GotoTop()
	case keyMatches(k, keys.Bottom):
		s.vp.GotoBottom()
	case keyMatches(k, keys.ClientNotes):
		if !d.loaded {
			return nil
		}
		if d.c.Forgotten() {
			s.e.setStatus(statusErr, d.id+" was forgotten: no personal data, notes included, may be stored for it.")
			return nil
		}
		return s.openNotes()
	default:
		return s.actionKey(k)
	}
	return nil
}

// --- notes -------------------------------------------------------------------

func (s *clientsScreen) notesHeight() int {
	return max(3, min(12, s.h-s.syncLines()-5))
}

func (s *clientsScreen) openNotes() tea.Cmd {
	d := s.detail
	ta := textarea.New()
	s.e.st.styleTextarea(&ta)
	ta.Placeholder = "Notes for staff (kept here only, never sent to Stripe)"
	ta.CharLimit = store.MaxNotes
	ta.SetWidth(max(10, s.w))
	ta.SetHeight(s.notesHeight())
	ta.SetValue(d.c.Notes)
	d.notes, d.notesErr, d.saving = &ta, "", false
	return d.notes.Focus()
}

func (s *clientsScreen) notesKey(k tea.KeyMsg) tea.Cmd {
	d := s.detail
	keys := s.e.keys
	if d.saving {
		return nil
	}
	switch {
	case keyMatches(k, keys.Cancel):
		d.notes, d.notesErr = nil, ""
		s.e.info("Notes unchanged.")
		return nil
	case keyMatches(k, keys.Save):
		text := d.notes.Value()
		if text == d.c.Notes {
			d.notes = nil
			s.e.info("Notes unchanged.")
			return nil
		}
		d.saving = true
		st, a, id := s.e.store, s.e.actor, d.id
		s.e.info("Saving the notes…")
		return s.e.call(func(ctx context.Context) tea.Msg {
			return clientNotesMsg{id: id, notes: text, err: st.SetClientNotes(ctx, a, id, text)}
		})
	}
	var cmd tea.Cmd
	*d.notes, cmd = d.notes.Update(k)
	d.notesErr = ""
	return cmd
}

func (s *clientsScreen) gotNotes(msg clientNotesMsg) tea.Cmd {
	d := s.detail
	if d == nil || d.id != msg.id {
		if msg.err != nil {
			s.e.fail(msg.err)
		}
		return nil
	}
	d.saving = false
	if msg.err != nil {
		s.e.fail(msg.err)
		d.notesErr = store.ErrorMessage(msg.err)
		return nil
	}
	d.c.Notes, d.notes, d.notesErr = msg.notes, nil, ""
	s.e.good("Notes of " + d.id + " saved.")
	s.refreshDetail()
	return s.reloadEvents()
}

// --- detail view -------------------------------------------------------------

// detailSection is one part of the detail: a heading and its text.
type detailSection struct {
	title string
	body  string
}

// detailContent lays the detail out section by section.
func (s *clientsScreen) detailContent(d *clientDetail) string {
	sections := []detailSection{
		s.fieldsSection(d),
		s.metadataSection(d),
		s.notesSection(d),
		s.billingSection(d),
		s.auditSection(d),
	}
	st := s.e.st
	var parts []string
	for _, sec := range sections {
		if sec.title == "" && sec.body == "" {
			continue
		}
		p := sec.body
		if sec.title != "" {
			p = st.heading.Render(sec.title) + "\n" + p
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "\n\n")
}

func (s *clientsScreen) fieldsSection(d *clientDetail) detailSection {
	st, c := s.e.st, d.c
	or := func(v string) string {
		if v == "" {
			return st.dim.Render("—")
		}
		return clean(v)
	}
	balance := fmtMoney(c.Balance, c.Currency)
	switch {
	case c.Balance > 0:
		balance += st.dim.Render("  (owed by the client)")
	case c.Balance < 0:
		balance += st.dim.Render("  (credit)")
	}
	mode := "test"
	if c.Livemode {
		mode = "LIVE"
	}
	yn := "no"
	if c.Delinquent {
		yn = st.warn.Render("yes")
	}
	status := st.ok.Render("active")
	switch {
	case c.Forgotten():
		status = st.warn.Render("forgotten " + fmtTime(c.ForgottenAt) + " UTC: personal data erased")
	case c.Deleted:
		status = st.warn.Render("deleted at Stripe")
	}
	if c.Forgotten() && c.Deleted {
		status += st.warn.Render("; deleted at Stripe")
	}
	version := strconv.FormatInt(c.Version, 10)
	if c.Version > 1_000_000_000 { // a Stripe time (unix seconds)
		version += st.dim.Render("  (" + fmtTime(time.Unix(c.Version, 0)) + " UTC)")
	}
	created := "—"
	if !c.StripeCreated.IsZero() {
		created = fmtTime(c.StripeCreated) + " UTC"
	}
	rows := [][2]string{
		{"Customer", clean(c.CustomerID)},
		{"Status", status},
		{"Name", or(c.Name)},
		{"Email", or(c.Email)},
		{"Phone", or(c.Phone)},
		{"Description", or(c.Description)},
		{"Currency", or(strings.ToUpper(c.Currency))},
		{"Balance", balance},
		{"Delinquent", yn},
		{"Mode", mode},
		{"Created", created},
		{"Updated", fmtTime(c.UpdatedAt) + " UTC"},
		{"Source", or(c.Source)},
		{"Version", version},
	}
	return detailSection{body: st.kvWrap(rows, max(20, s.w))}
}

func (s *clientsScreen) metadataSection(d *clientDetail) detailSection {
	st := s.e.st
	keys := make([]string, 0, len(d.c.Metadata))
	for k := range d.c.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var lines []string
	for _, k := range keys {
		lines = append(lines, wrap(clean(k)+"="+clean(d.c.Metadata[k]), max(20, s.w)))
	}
	body := strings.Join(lines, "\n")
	if body == "" {
		body = st.dim.Render("—")
	}
	return detailSection{title: "Metadata", body: body}
}

func (s *clientsScreen) notesSection(d *clientDetail) detailSection {
	st := s.e.st
	title := "Notes"
	body := st.dim.Render("—")
	if d.c.Notes != "" {
		body = wrap(cleanLines(d.c.Notes), max(20, s.w))
	}
	if !d.c.Forgotten() {
		title += st.dim.Render("  e edit")
	}
	return detailSection{title: title, body: body}
}

// billingSection is the client's recent billing activity, newest first:
// date, type, summary and amount, one line each.
func (s *clientsScreen) billingSection(d *clientDetail) detailSection {
	st := s.e.st
	if d.billErr != "" {
		return detailSection{title: "Billing events", body: st.err.Render(clean(d.billErr))}
	}
	title := "Billing events (" + itoa(len(d.billing)) + ")"
	if len(d.billing) >= clientBillingRows {
		title = "Billing events (newest " + itoa(clientBillingRows) + ")"
	}
	if len(d.billing) == 0 {
		return detailSection{title: title, body: st.dim.Render("— none received from Stripe yet")}
	}
	typeW, amountW := 0, 0
	amounts := make([]string, len(d.billing))
	for i, b := range d.billing {
		typeW = max(typeW, lipgloss.Width(clean(b.Type)))
		if b.Amount != 0 || b.Currency != "" {
			amounts[i] = fmtMoney(b.Amount, b.Currency)
		}
		amountW = max(amountW, lipgloss.Width(amounts[i]))
	}
	// date  type  summary  amount: the summary takes the room left, the
	// type giving some up (shortened in the middle) when it is narrow.
	typeW = min(typeW, 30)
	room := max(20, s.w) - 10 - 2 - 2 - 2 - amountW
	if room-typeW < 30 {
		typeW = min(typeW, max(16, room-30))
	}
	sumW := max(10, room-typeW)
	rows := make([]string, len(d.billing))
	for i, b := range d.billing {
		when := fmtDate(b.Created)
		summary := clean(b.Summary)
		if summary == "" {
			summary = clean(b.ObjectID)
			if b.Status != "" {
				summary += " " + clean(b.Status)
			}
		}
		line := when + "  " + padRight(shortenMiddle(clean(b.Type), typeW), typeW) + "  " +
			padRight(truncate(summary, sumW), sumW) + "  " + padLeft(amounts[i], amountW)
		rows[i] = strings.TrimRight(line, " ")
	}
	return detailSection{title: title, body: strings.Join(rows, "\n")}
}

func (s *clientsScreen) auditSection(d *clientDetail) detailSection {
	st := s.e.st
	title := "Audit (" + itoa(len(d.events)) + ")"
	if len(d.events) >= clientAuditRows {
		title = "Audit (newest " + itoa(clientAuditRows) + ")"
	}
	if d.evErr != "" {
		return detailSection{title: "Audit", body: st.err.Render(clean(d.evErr))}
	}
	rows := make([]string, len(d.events))
	for i, ev := range d.events {
		rows[i] = fmtTime(ev.Time) + "  " + padRight(clean(ev.Actor), 10) + "  " + padRight(clean(ev.Action), 20) + "  " + clean(ev.Channel)
	}
	body := strings.Join(rows, "\n")
	if body == "" {
		body = st.dim.Render("—")
	}
	return detailSection{title: title, body: body}
}

func (s *clientsScreen) detailView() string {
	st, d := s.e.st, s.detail
	name := ""
	if d.loaded && d.c.Name != "" {
		name = " · " + clean(d.c.Name)
	}
	if d.notes != nil {
		var b strings.Builder
		b.WriteString(st.heading.Render("Notes of "+clean(d.id)+name) + "\n")
		b.WriteString(d.notes.View() + "\n")
		b.WriteString(st.dim.Render(fmt.Sprintf("ctrl+s save · esc cancel · enter new line · %d/%d bytes", len(d.notes.Value()), store.MaxNotes)))
		if d.saving {
			b.WriteString("\n" + st.dim.Render("Saving…"))
		}
		if d.notesErr != "" {
			b.WriteString("\n" + st.err.Render(wrap(clean(d.notesErr), s.w)))
		}
		return b.String()
	}
	title := st.heading.Render("Client " + clean(d.id) + name)
	if !d.loaded {
		return title + "\n" + st.dim.Render("loading…")
	}
	title += st.dim.Render(fmt.Sprintf("  esc back · %d%%", int(s.vp.ScrollPercent()*100)))
	return truncate(title, s.w) + "\n" + s.vp.View()
}

// kvWrap renders "label  value" rows with the labels aligned and long
// values wrapped under their start.
func (s *styles) kvWrap(rows [][2]string, w int) string {
	lw := 0
	for _, r := range rows {
		lw = max(lw, lipgloss.Width(r[0]))
	}
	vw := max(10, w-lw-2)
	indent := strings.Repeat(" ", lw+2)
	var b strings.Builder
	for i, r := range rows {
		if i > 0 {
			b.WriteByte('\n')
		}
		v := r[1]
		if lipgloss.Width(v) > vw {
			v = strings.ReplaceAll(wrap(v, vw), "\n", "\n"+indent)
		}
		b.WriteString(s.label.Render(padRight(r[0], lw)) + "  " + v)
	}
	return b.String()
}
