package tui

import (
	"context"
	"strings"

	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"backroom/store"
)

// clientPromptKind is the kind of question a prompt asks.
type clientPromptKind int

const (
	askYesNo clientPromptKind = iota // y confirms
	askTyped                         // the answer must be typed exactly (want)
	askInput                         // a value handed to done
)

// clientPrompt is a question asked on the last lines of the body.
type clientPrompt struct {
	kind clientPromptKind
	text string
	want string
	ti   textinput.Model
	err  string
	// done acts on the answer; a non-empty message keeps the prompt open
	// and shows it.
	done func(value string) (tea.Cmd, string)
}

func (s *clientsScreen) ask(p *clientPrompt) tea.Cmd {
	p.text = clean(p.text)
	s.prompt = p
	if p.kind == askYesNo {
		return nil
	}
	p.ti = textinput.New()
	s.e.st.styleInput(&p.ti)
	p.ti.Prompt = "> "
	p.ti.CharLimit = 80
	p.ti.Width = max(10, s.w-4)
	return p.ti.Focus()
}

func (s *clientsScreen) promptKey(k tea.KeyMsg) tea.Cmd {
	p := s.prompt
	keys := s.e.keys
	if p.kind == askYesNo {
		switch {
		case keyMatches(k, keys.Yes):
			s.prompt = nil
			cmd, _ := p.done("")
			return cmd
		case keyMatches(k, keys.No):
			s.prompt = nil
			s.e.info("Nothing changed.")
		}
		return nil
	}
	switch {
	case keyMatches(k, keys.Cancel):
		s.prompt = nil
		s.e.info("Nothing changed.")
		return nil
	case keyMatches(k, keys.Submit):
		v := strings.TrimSpace(p.ti.Value())
		if p.kind == askTyped && v != p.want {
			p.err = "that is not " + p.want + "; type the customer id exactly (esc cancels)"
			p.ti.Reset()
			return nil
		}
		cmd, msg := p.done(v)
		if msg != "" {
			p.err = msg
			return nil
		}
		s.prompt = nil
		return cmd
	}
	var cmd tea.Cmd
	p.ti, cmd = p.ti.Update(k)
	p.err = ""
	return cmd
}

// promptLines renders the open prompt for the bottom of the body.
func (s *clientsScreen) promptLines() []string {
	p := s.prompt
	if p == nil {
		return nil
	}
	st := s.e.st
	lines := strings.Split(st.warn.Render(wrap(p.text, max(20, s.w))), "\n")
	if p.kind == askYesNo {
		lines[len(lines)-1] += st.dim.Render("  y/n")
	} else {
		lines = append(lines, p.ti.View())
	}
	if p.err != "" {
		lines = append(lines, st.err.Render(clean(p.err)))
	}
	return lines
}

// askForget asks an admin to type the customer id before erasing.
func (s *clientsScreen) askForget(id string) tea.Cmd {
	return s.ask(&clientPrompt{
		kind: askTyped,
		want: id,
		text: "Forget " + id + "? This erases its name, email, phone, description, metadata and notes here for good " +
			"(the audit trail stays). Type the customer id to confirm:",
		done: func(string) (tea.Cmd, string) {
			st, a := s.e.store, s.e.actor
			s.e.info("Forgetting " + id + "…")
			return s.e.call(func(ctx context.Context) tea.Msg {
				err := st.ForgetClient(ctx, a, id)
				return clientDoneMsg{op: opForget, id: id, text: "Forgot " + id + ": its personal data is erased.", err: err}
			}), ""
		},
	})
}

// askLink asks for a customer id to fetch from Stripe.
func (s *clientsScreen) askLink() tea.Cmd {
	return s.ask(&clientPrompt{
		kind: askInput,
		text: "Link a Stripe customer: its record is fetched from Stripe and stored here. Customer id:",
		done: func(id string) (tea.Cmd, string) {
			if err := store.ValidCustomerID(id); err != nil {
				return nil, store.ErrorMessage(err)
			}
			sy, a := s.e.sync, s.e.actor
			s.e.info("Fetching " + id + " from Stripe…")
			return s.e.call(func(ctx context.Context) tea.Msg {
				c, err := sy.Link(ctx, a, id)
				text := "Linked " + id + " from Stripe"
				if c.Name != "" {
					text += " (" + clean(c.Name) + ")"
				}
				return clientDoneMsg{op: opLink, id: id, text: text + ".", err: err}
			}), ""
		},
	})
}

func (s *clientsScreen) gotDone(msg clientDoneMsg) tea.Cmd {
	if msg.err != nil {
		s.e.fail(msg.err)
		if msg.op == opAdd && s.form != nil {
			s.form.busy = false
			s.form.err = store.ErrorMessage(msg.err)
		}
		return nil
	}
	s.e.good(msg.text)
	var cmds []tea.Cmd
	switch msg.op {
	case opAdd:
		s.form = nil
	case opForget:
		if d := s.detail; d != nil && d.id == msg.id && d.loaded {
			// What ForgetClient erased; the tombstone keeps the rest.
			now := s.e.now()
			d.c.Name, d.c.Email, d.c.Phone, d.c.Description, d.c.Metadata, d.c.Notes = "", "", "", "", nil, ""
			d.c.ForgottenAt, d.c.UpdatedAt = now, now
			d.notes = nil
			s.refreshDetail()
			cmds = append(cmds, s.reloadEvents())
		}
	}
	if s.started {
		cmds = append(cmds, s.refresh())
	}
	return tea.Batch(cmds...)
}

// --- adding a client by hand -------------------------------------------------

// Fields of the add form.
const (
	fieldID = iota
	fieldName
	fieldEmail
	fieldCurrency
	fieldLive
	clientFormFields
)

// clientForm adds a client by hand (admins).
type clientForm struct {
	field int
	in    [fieldLive]textinput.Model
	live  bool
	err   string
	busy  bool
}

func (f *clientForm) size(w int) {
	for i := range f.in {
		f.in[i].Width = max(10, w-24)
	}
}

func (s *clientsScreen) openForm() tea.Cmd {
	f := &clientForm{}
	holders := [fieldLive]string{"cus_NffrFeUfNV2Hib", "as Stripe has it", "name@example.com", "usd"}
	limits := [fieldLive]int{70, 200, 200, 3}
	for i := range f.in {
		ti := textinput.New()
		s.e.st.styleInput(&ti)
		ti.Prompt = "> "
		ti.Placeholder = holders[i]
		ti.CharLimit = limits[i]
		f.in[i] = ti
	}
	f.size(s.w)
	s.form = f
	return f.in[fieldID].Focus()
}

func (s *clientsScreen) focusField(i int) tea.Cmd {
	f := s.form
	f.field = (i + clientFormFields) % clientFormFields
	for j := range f.in {
		f.in[j].Blur()
	}
	if f.field < fieldLive {
		return f.in[f.field].Focus()
	}
	return nil
}

func (s *clientsScreen) formKey(k tea.KeyMsg) tea.Cmd {
	f := s.form
	keys := s.e.keys
	if f.busy {
		return nil
	}
	switch {
	case keyMatches(k, keys.Cancel):
		s.form = nil
		s.e.info("No client added.")
		return nil
	case keyMatches(k, keys.Submit):
		if f.field < clientFormFields-1 {
			return s.focusField(f.field + 1)
		}
		return s.submitForm()
	case k.Type == tea.KeyTab || k.Type == tea.KeyDown:
		return s.focusField(f.field + 1)
	case k.Type == tea.KeyShiftTab || k.Type == tea.KeyUp:
		return s.focusField(f.field - 1)
	}
	var cmd tea.Cmd
	if f.field < fieldLive {
		f.in[f.field], cmd = f.in[f.field].Update(k)
	} else {
		switch k.String() {
		case " ", "left", "right":
			f.live = !f.live
		case "y", "Y":
			f.live = true
		case "n", "N":
			f.live = false
		}
	}
	f.err = ""
	return cmd
}

// isCurrency reports whether c looks like a lower-case ISO 4217 code.
func isCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for i := range len(c) {
		if c[i] < 'a' || c[i] > 'z' {
			return false
		}
	}
	return true
}

// submitForm checks the form (the store checks again) and adds the client.
func (s *clientsScreen) submitForm() tea.Cmd {
	f := s.form
	val := func(i int) string { return strings.TrimSpace(f.in[i].Value()) }
	d := store.ClientData{
		CustomerID: val(fieldID),
		Name:       val(fieldName),
		Email:      val(fieldEmail),
		Currency:   strings.ToLower(val(fieldCurrency)),
		Livemode:   f.live,
		// Version 0: whatever Stripe says next (sync or webhook) wins
		// over what was typed here.
	}
	if err := store.ValidCustomerID(d.CustomerID); err != nil {
		f.err = store.ErrorMessage(err)
		return s.focusField(fieldID)
	}
	if !store.ValidEmail(d.Email) {
		f.err = "\"" + clean(d.Email) + "\" is not an email address (expected name@example.com)"
		return s.focusField(fieldEmail)
	}
	if d.Currency != "" && !isCurrency(d.Currency) {
		f.err = "the currency is a three-letter ISO code, e.g. usd or eur"
		return s.focusField(fieldCurrency)
	}
	f.busy = true
	st, a := s.e.store, s.e.actor
	s.e.info("Adding " + d.CustomerID + "…")
	return s.e.call(func(ctx context.Context) tea.Msg {
		_, err := st.AddClient(ctx, a, d)
		return clientDoneMsg{op: opAdd, id: d.CustomerID, text: "Added " + d.CustomerID + " by hand.", err: err}
	})
}

func (s *clientsScreen) formView() string {
	st, f := s.e.st, s.form
	var b strings.Builder
	b.WriteString(st.heading.Render("Add a client by hand") + st.dim.Render("  (a Stripe customer not synced yet)") + "\n\n")
	label := func(i int, text string) string {
		mark := "  "
		if f.field == i {
			mark = "▸ "
			if st.ascii {
				mark = "> "
			}
		}
		return mark + st.label.Render(padRight(text, 14))
	}
	names := [fieldLive]string{"Customer id", "Name", "Email", "Currency"}
	for i, n := range names {
		b.WriteString(label(i, n) + f.in[i].View() + "\n")
	}
	live := "[ ] live  [x] test"
	if f.live {
		live = "[x] live  [ ] test"
	}
	b.WriteString(label(fieldLive, "Mode") + live + "\n\n")
	b.WriteString(st.dim.Render(wrap("The next sync or webhook from Stripe updates the record. L links a customer from Stripe instead.", max(20, s.w))) + "\n")
	if f.busy {
		b.WriteString(st.dim.Render("Adding…") + "\n")
	}
	if f.err != "" {
		b.WriteString("\n" + st.err.Render(wrap(clean(f.err), max(20, s.w))) + "\n")
	}
	return b.String()
}
