package tui

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"backroom/store"
)

// webhookDetail is an event shown in detail. Only its id is known until
// the event and its attempts are read.
type webhookDetail struct {
	id       string
	seq      int
	loaded   bool
	ev       store.WebhookEvent
	attempts []store.WebhookAttempt
	attErr   string
}

// openDetail shows an event: it and its attempts are read in a Cmd.
func (s *webhooksScreen) openDetail(id string) tea.Cmd {
	s.detail = &webhookDetail{id: id}
	s.vp.reset("")
	return s.loadDetail()
}

// loadDetail reads the detail's event again; a later load supersedes it.
func (s *webhooksScreen) loadDetail() tea.Cmd {
	d := s.detail
	s.detailSeq++
	d.seq = s.detailSeq
	seq, id, st := d.seq, d.id, s.e.store
	return s.e.call(func(ctx context.Context) tea.Msg {
		ev, err := st.GetWebhook(ctx, id)
		if err != nil {
			return webhookDetailMsg{seq: seq, err: err}
		}
		attempts, attErr := st.WebhookAttempts(ctx, id)
		return webhookDetailMsg{seq: seq, ev: ev, attempts: attempts, attErr: attErr}
	})
}

func (s *webhooksScreen) gotDetail(msg webhookDetailMsg) tea.Cmd {
	d := s.detail
	if d == nil || d.seq != msg.seq {
		return nil // closed, or another event opened since
	}
	if msg.err != nil {
		s.detail = nil
		s.e.fail(msg.err)
		return nil
	}
	s.showDetail(msg.ev, msg.attempts, msg.attErr)
	return nil
}

// showDetail puts the event in the detail, keeping the scroll position
// when it is the same event read again.
func (s *webhooksScreen) showDetail(ev store.WebhookEvent, attempts []store.WebhookAttempt, attErr error) {
	d := s.detail
	keep := d.loaded
	d.ev, d.attempts, d.attErr, d.loaded = ev, attempts, store.ErrorMessage(attErr), true
	if keep {
		s.refreshDetail()
		return
	}
	s.vp.reset(s.detailContent(d))
}

// refreshDetail renders the detail again (new width, new data), keeping
// the scroll position.
func (s *webhooksScreen) refreshDetail() {
	if d := s.detail; d != nil && d.loaded {
		s.vp.refresh(s.detailContent(d))
	}
}

func (s *webhooksScreen) detailKey(k tea.KeyMsg) tea.Cmd {
	keys := s.e.keys
	switch {
	case keyMatches(k, keys.Back):
		s.detail = nil
	case keyMatches(k, keys.WebhookReplay):
		if s.detail.loaded {
			s.askReplay(s.detail.id)
		}
	default:
		s.vp.scroll(keys, k)
	}
	return nil
}

// --- replay --------------------------------------------------------------------

// askReplay asks whether to replay an event (y/n).
func (s *webhooksScreen) askReplay(id string) {
	switch {
	case s.e.replay == nil:
		s.e.setStatus(statusErr, "Replay is not available in this session.")
	case s.running != "":
		s.e.info("A replay of " + clean(s.running) + " is running.")
	default:
		s.replay = id
	}
}

func (s *webhooksScreen) replayPrompt() string {
	st := s.e.st
	return st.warn.Render("Replay "+clean(s.replay)+"? Its stored payload is processed again.") + st.dim.Render("  y/n")
}

func (s *webhooksScreen) replayKey(k tea.KeyMsg) tea.Cmd {
	keys := s.e.keys
	switch {
	case keyMatches(k, keys.Yes):
		id := s.replay
		s.replay, s.running = "", id
		s.e.info("Replaying " + clean(id) + "…")
		st, a, proc := s.e.store, s.e.actor, s.e.replay
		return s.e.call(func(ctx context.Context) tea.Msg {
			msg := webhookReplayMsg{id: id}
			msg.outcome, msg.err = st.ReplayWebhook(ctx, a, id, proc)
			if msg.err == nil {
				msg.ev, msg.loadErr = st.GetWebhook(ctx, id)
				if msg.loadErr == nil {
					msg.attempts, msg.loadErr = st.WebhookAttempts(ctx, id)
				}
			}
			return msg
		})
	case keyMatches(k, keys.No):
		s.replay = ""
		s.e.info("Nothing replayed.")
	}
	return nil
}

func (s *webhooksScreen) gotReplay(msg webhookReplayMsg) tea.Cmd {
	if s.running == msg.id {
		s.running = ""
	}
	if msg.err != nil {
		s.e.fail(msg.err)
		return nil
	}
	id := clean(msg.id)
	switch msg.outcome {
	case store.WebhookFailed:
		text := "Replayed " + id + ": failed again"
		if msg.loadErr == nil && msg.ev.Error != "" {
			text += ": " + msg.ev.Error
		}
		s.e.setStatus(statusErr, text)
	case store.WebhookIgnored:
		s.e.good("Replayed " + id + ": ignored (Backroom does not act on this type).")
	default:
		s.e.good("Replayed " + id + ": " + msg.outcome + ".")
	}
	if d := s.detail; d != nil && d.id == msg.id {
		if msg.loadErr != nil {
			return tea.Batch(s.loadDetail(), s.e.reloadHeader(), s.refreshList())
		}
		s.detailSeq++ // a detail load still in flight is older
		d.seq = s.detailSeq
		s.showDetail(msg.ev, msg.attempts, nil)
	}
	return tea.Batch(s.e.reloadHeader(), s.refreshList())
}

// --- detail view -----------------------------------------------------------------

func (s *webhooksScreen) detailView() string {
	st, d := s.e.st, s.detail
	title := st.heading.Render("Webhook " + clean(d.id))
	if !d.loaded {
		return truncate(title, s.w) + "\n" + st.dim.Render("loading…")
	}
	title += "  " + st.outcome(d.ev.Status) + s.vp.backHint(st)
	foot := st.dim.Render("r replay (processes the stored payload again) · ↑↓ pgup pgdn scroll")
	switch {
	case s.replay != "":
		foot = s.replayPrompt()
	case s.running == d.id:
		foot = st.dim.Render("replaying…")
	}
	return truncate(title, s.w) + "\n" + s.vp.View() + "\n" + foot
}

// detailContent lays the event out: its fields, the error, every attempt
// with its headers, and the payload, pretty-printed.
func (s *webhooksScreen) detailContent(d *webhookDetail) string {
	st, ev := s.e.st, d.ev
	w := max(20, s.w)
	or := func(v string) string {
		if v == "" {
			return st.dim.Render("—")
		}
		return clean(v)
	}
	mode := "test"
	if ev.Livemode {
		mode = "LIVE"
	}
	created := "—"
	if !ev.Created.IsZero() {
		created = fmtTime(ev.Created) + " UTC" + st.dim.Render("  (at Stripe)")
	}
	rows := [][2]string{
		{"Event", clean(ev.EventID)},
		{"Type", clean(ev.Type)},
		{"Status", st.outcome(ev.Status)},
		{"Customer", or(ev.CustomerID)},
		{"API version", or(ev.APIVersion)},
		{"Mode", mode},
		{"Created", created},
		{"Received", ev.ReceivedAt.UTC().Format(timeFormatL) + st.dim.Render("  (first delivery)")},
		{"Updated", ev.UpdatedAt.UTC().Format(timeFormatL) + st.dim.Render("  (last delivery or replay)")},
		{"Deliveries", strconv.Itoa(ev.Attempts)},
		{"Verified by", or(ev.Secret)},
	}
	var b strings.Builder
	b.WriteString(st.kvWrap(rows, w))
	if ev.Error != "" {
		b.WriteString("\n\n" + st.heading.Render("Error") + "\n")
		b.WriteString(st.err.Render(wrap(clean(ev.Error), w)))
	}
	b.WriteString("\n\n" + st.heading.Render("Attempts ("+itoa(len(d.attempts))+")") + "\n")
	switch {
	case d.attErr != "":
		b.WriteString(st.err.Render(clean(d.attErr)))
	case len(d.attempts) == 0:
		b.WriteString(st.dim.Render("—"))
	}
	for i, a := range d.attempts {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(truncate("#"+itoa(i+1)+"  "+a.ReceivedAt.UTC().Format(timeFormatL)+"  "+
			clean(a.RemoteAddr)+"  "+st.outcome(a.Outcome), w) + "\n")
		if a.Reason != "" {
			b.WriteString(wrapIndented(st.label.Render("reason: ")+clean(a.Reason), "    ", w) + "\n")
		}
		if a.Error != "" {
			b.WriteString(wrapIndented(st.label.Render("error: ")+st.err.Render(clean(a.Error)), "    ", w) + "\n")
		}
		b.WriteString(headersText(st, a.Headers, "    ", w))
	}
	b.WriteString("\n\n" + st.heading.Render("Payload"))
	payload, ok := prettyJSON(ev.Payload)
	if !ok {
		b.WriteString(st.warn.Render("  not valid JSON: shown as stored"))
	}
	b.WriteString("\n" + wrap(cleanLines(payload), w))
	return b.String()
}

// headersText lists headers sorted by name, one a line, long values
// wrapped under the indent.
func headersText(st *styles, headers map[string]string, indent string, w int) string {
	if len(headers) == 0 {
		return indent + st.dim.Render("(no headers recorded)")
	}
	names := make([]string, 0, len(headers))
	for k := range headers {
		names = append(names, k)
	}
	slices.Sort(names)
	lines := make([]string, len(names))
	for i, k := range names {
		// Cut at the width (values are long tokens, like signatures).
		text := ansi.Hardwrap(st.label.Render(clean(k)+": ")+clean(headers[k]), max(10, w-len(indent)), true)
		lines[i] = indent + strings.ReplaceAll(text, "\n", "\n"+indent)
	}
	return strings.Join(lines, "\n")
}

// wrapIndented wraps text to w with every line indented.
func wrapIndented(text, indent string, w int) string {
	inner := max(10, w-len(indent))
	return indent + strings.ReplaceAll(wrap(text, inner), "\n", "\n"+indent)
}

// prettyJSON indents a JSON payload; a payload that is not JSON comes back
// as it is, with ok false.
func prettyJSON(payload []byte) (string, bool) {
	if len(bytes.TrimSpace(payload)) == 0 {
		return "", true
	}
	var b bytes.Buffer
	if err := json.Indent(&b, payload, "", "  "); err != nil {
		return string(payload), false
	}
	return b.String(), true
}
