package tui

import (
	"context"
	"strconv"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"backroom/store"
	"backroom/store/authkeys"
)

// staffListMsg is a fresh staff list.
type staffListMsg struct {
	seq   int
	staff []store.Staff
	err   error
}

// staffDoneMsg is the outcome of a staff change.
type staffDoneMsg struct {
	text       string // what was done, for the status line
	enrollment *store.Enrollment
	err        error
}

// promptKind is the kind of question a prompt asks.
type promptKind int

const (
	promptYesNo  promptKind = iota // y confirms
	promptName                     // the member's name must be typed
	promptChoice                   // reset TOTP: e or s
)

// prompt is a confirmation asked on the last lines of the body.
type prompt struct {
	kind promptKind
	text string
	name string // promptName: what must be typed
	ti   textinput.Model
	err  string
	yes  func() tea.Cmd
}

// addForm adds a member (or another key of a member).
type addForm struct {
	field  int // 0 name, 1 key, 2 admin, 3 enroll at login
	name   textinput.Model
	key    textinput.Model
	admin  bool
	enroll bool
	err    string
	busy   bool
}

const addFields = 4

// staffScreen manages staff (admins only).
type staffScreen struct {
	e       *env
	w, h    int
	grid    *grid
	keys    *grid
	staff   []store.Staff
	shown   []store.Staff // after the search
	loaded  bool
	seq     int
	detail  string // the member shown in detail, "" for the list
	prompt  *prompt
	form    *addForm
	enr     *enrollment
	enrName string
	search  *textinput.Model
	query   string
}

func newStaffScreen(e *env) *staffScreen {
	s := &staffScreen{e: e}
	s.grid = newGrid(e.st, []column{
		{title: "name", min: 10, max: 24, prio: 0},
		{title: "role", min: 5, prio: 1},
		{title: "keys", min: 4, prio: 3},
		{title: "TOTP", min: 8, prio: 2},
		{title: "locked until (UTC)", min: 19, prio: 4},
	})
	s.keys = newGrid(e.st, []column{
		{title: "fingerprint", min: 22, max: 50, prio: 0},
		{title: "type", min: 11, max: 19, prio: 1},
		{title: "comment", min: 12, max: 32, prio: 2},
		{title: "from", min: 8, max: 24, prio: 4},
		{title: "expires (UTC)", min: 19, prio: 3},
	})
	return s
}

func (s *staffScreen) title() string { return "Staff" }
func (s *staffScreen) deactivate()   {}

func (s *staffScreen) capturing() bool {
	return s.prompt != nil || s.form != nil || s.enr != nil || s.search != nil
}

func (s *staffScreen) activate() tea.Cmd { return s.load() }

func (s *staffScreen) setSize(w, h int) tea.Cmd {
	s.w, s.h = w, h
	s.grid.setSize(w, max(2, h-3))
	s.keys.setSize(w, max(2, h-6))
	if s.form != nil {
		s.form.name.Width, s.form.key.Width = max(10, w-22), max(10, w-22)
	}
	return nil
}

func (s *staffScreen) load() tea.Cmd {
	s.seq++
	seq := s.seq
	st := s.e.store
	return s.e.call(func(ctx context.Context) tea.Msg {
		staff, err := st.ListStaff(ctx)
		return staffListMsg{seq: seq, staff: staff, err: err}
	})
}

// selected is the member the actions apply to.
func (s *staffScreen) selected() (store.Staff, bool) {
	if s.detail != "" {
		for _, m := range s.staff {
			if m.Name == s.detail {
				return m, true
			}
		}
		return store.Staff{}, false
	}
	i := s.grid.cursor()
	if i < 0 || i >= len(s.shown) {
		return store.Staff{}, false
	}
	return s.shown[i], true
}

func (s *staffScreen) applySearch() {
	s.shown = s.shown[:0]
	for _, m := range s.staff {
		if s.query == "" || strings.Contains(m.Name, strings.ToLower(s.query)) {
			s.shown = append(s.shown, m)
		}
	}
	now := s.e.now()
	raw := make([][]string, len(s.shown))
	for i, m := range s.shown {
		locked := "—"
		if m.Locked(now) {
			locked = fmtTime(m.LockedUntil)
		}
		raw[i] = []string{m.Name, m.Role, strconv.Itoa(len(m.Keys)), m.TOTP, locked}
	}
	s.grid.setRows(raw, s.grid.cursor())
}

func (s *staffScreen) fillKeys() {
	m, ok := s.selected()
	if !ok {
		s.keys.setRows(nil, 0)
		return
	}
	raw := make([][]string, len(m.Keys))
	for i, k := range m.Keys {
		typ := ""
		if k.Key != nil {
			typ = k.Key.Type()
		}
		exp := "—"
		if !k.ExpiresAt.IsZero() {
			exp = fmtTime(k.ExpiresAt)
		}
		raw[i] = []string{k.Fingerprint, typ, k.Comment, strings.Join(k.From, ","), exp}
	}
	s.keys.setRows(raw, s.keys.cursor())
}

func (s *staffScreen) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case staffListMsg:
		if msg.seq != s.seq {
			return nil
		}
		if msg.err != nil {
			s.e.fail(msg.err)
			return nil
		}
		s.staff, s.loaded = msg.staff, true
		now := s.e.now()
		s.e.locked = 0
		for _, m := range s.staff {
			if m.Locked(now) {
				s.e.locked++
			}
		}
		s.applySearch()
		if s.detail != "" {
			if _, ok := s.selected(); !ok {
				s.detail = ""
			} else {
				s.fillKeys()
			}
		}
		return nil
	case staffDoneMsg:
		if s.form != nil {
			s.form.busy = false
		}
		if msg.err != nil {
			s.e.fail(msg.err)
			if s.form != nil {
				s.form.err = store.ErrorMessage(msg.err)
			}
			return tea.Batch(s.load(), s.e.reloadHeader())
		}
		s.form = nil
		s.e.good(msg.text)
		if msg.enrollment != nil {
			s.enr = newEnrollment(s.e.st, msg.enrollment)
			s.enrName = msg.enrollment.Name
		}
		return tea.Batch(s.load(), s.e.reloadHeader())
	case tea.KeyMsg:
		switch {
		case s.enr != nil:
			if keyMatches(msg, s.e.keys.Submit, s.e.keys.Cancel) {
				s.enr, s.enrName = nil, "" // shown once
			}
			return nil
		case s.form != nil:
			return s.formKey(msg)
		case s.prompt != nil:
			return s.promptKey(msg)
		case s.search != nil:
			return s.searchKey(msg)
		case s.detail != "":
			return s.detailKey(msg)
		}
		return s.listKey(msg)
	}
	return nil
}

func (s *staffScreen) listKey(k tea.KeyMsg) tea.Cmd {
	keys := s.e.keys
	switch {
	case keyMatches(k, keys.Up):
		s.grid.up(1)
	case keyMatches(k, keys.Down):
		s.grid.down(1)
	case keyMatches(k, keys.PageUp):
		s.grid.up(s.grid.pageRows())
	case keyMatches(k, keys.PageDown):
		s.grid.down(s.grid.pageRows())
	case keyMatches(k, keys.Top):
		s.grid.top()
	case keyMatches(k, keys.Bottom):
		s.grid.bottom()
	case keyMatches(k, keys.Open):
		if m, ok := s.selected(); ok {
			s.detail = m.Name
			s.fillKeys()
			s.keys.top()
		}
	case keyMatches(k, keys.Search):
		ti := textinput.New()
		s.e.st.styleInput(&ti)
		ti.Prompt = "/"
		ti.Placeholder = "name"
		ti.CharLimit = 40
		ti.SetValue(s.query)
		ti.CursorEnd()
		s.search = &ti
		return s.search.Focus()
	case keyMatches(k, keys.Back):
		if s.query != "" {
			s.query = ""
			s.applySearch()
		}
	case keyMatches(k, keys.StaffAdd):
		return s.openForm()
	default:
		return s.memberKey(k)
	}
	return nil
}

func (s *staffScreen) searchKey(k tea.KeyMsg) tea.Cmd {
	switch {
	case keyMatches(k, s.e.keys.Cancel):
		s.search, s.query = nil, ""
		s.applySearch()
		return nil
	case keyMatches(k, s.e.keys.Submit):
		s.search = nil
		return nil
	}
	var cmd tea.Cmd
	*s.search, cmd = s.search.Update(k)
	s.query = s.search.Value()
	s.applySearch()
	return cmd
}

func (s *staffScreen) detailKey(k tea.KeyMsg) tea.Cmd {
	keys := s.e.keys
	switch {
	case keyMatches(k, keys.Back):
		s.detail = ""
	case keyMatches(k, keys.Up):
		s.keys.up(1)
	case keyMatches(k, keys.Down):
		s.keys.down(1)
	case keyMatches(k, keys.Top):
		s.keys.top()
	case keyMatches(k, keys.Bottom):
		s.keys.bottom()
	case keyMatches(k, keys.StaffRemoveKey):
		m, ok := s.selected()
		i := s.keys.cursor()
		if !ok || i < 0 || i >= len(m.Keys) {
			return nil
		}
		name, fp := m.Name, m.Keys[i].Fingerprint
		s.ask(promptYesNo, "Remove key "+fp+" of "+name+"?", func() tea.Cmd {
			return s.run("Removed key "+fp+" of "+name+".", func(ctx context.Context, st Store, a store.Actor) (*store.Enrollment, error) {
				return nil, st.RemoveKey(ctx, a, name, fp)
			})
		})
	default:
		return s.memberKey(k)
	}
	return nil
}

// memberKey handles the actions on the selected member (list or detail).
func (s *staffScreen) memberKey(k tea.KeyMsg) tea.Cmd {
	keys := s.e.keys
	m, ok := s.selected()
	if !ok {
		return nil
	}
	name := m.Name
	switch {
	case keyMatches(k, keys.StaffRemove):
		s.ask(promptName, "Remove "+name+" and all their keys? Type the name to confirm:", func() tea.Cmd {
			return s.run("Removed "+name+".", func(ctx context.Context, st Store, a store.Actor) (*store.Enrollment, error) {
				return nil, st.RemoveStaff(ctx, a, name)
			})
		})
		s.prompt.name = name
	case keyMatches(k, keys.StaffResetTOTP):
		s.ask(promptChoice, "Reset the TOTP of "+name+":  e  enroll at next login  ·  s  new secret shown now  ·  esc  cancel", nil)
	case keyMatches(k, keys.StaffUnlock):
		s.ask(promptYesNo, "Unlock "+name+" (clears the lock and the failure count)?", func() tea.Cmd {
			return s.run("Unlocked "+name+".", func(ctx context.Context, st Store, a store.Actor) (*store.Enrollment, error) {
				return nil, st.Unlock(ctx, a, name)
			})
		})
	case keyMatches(k, keys.StaffRole):
		role, text := store.RoleAdmin, "Make "+name+" an admin?"
		if m.Role == store.RoleAdmin {
			role, text = store.RoleStaff, "Make "+name+" staff (no longer admin)?"
		}
		s.ask(promptYesNo, text, func() tea.Cmd {
			return s.run(name+" is now "+role+".", func(ctx context.Context, st Store, a store.Actor) (*store.Enrollment, error) {
				return nil, st.SetRole(ctx, a, name, role)
			})
		})
	}
	return nil
}

func (s *staffScreen) ask(kind promptKind, text string, yes func() tea.Cmd) {
	p := &prompt{kind: kind, text: clean(text), yes: yes}
	if kind == promptName {
		p.ti = textinput.New()
		s.e.st.styleInput(&p.ti)
		p.ti.Prompt = "> "
		p.ti.CharLimit = 64
		p.ti.Width = max(10, s.w-4)
		p.ti.Focus()
	}
	s.prompt = p
}

// run performs a change in a Cmd and reports it with text.
func (s *staffScreen) run(text string, fn func(ctx context.Context, st Store, a store.Actor) (*store.Enrollment, error)) tea.Cmd {
	st, a := s.e.store, s.e.actor
	s.e.info("working…")
	return s.e.call(func(ctx context.Context) tea.Msg {
		enr, err := fn(ctx, st, a)
		return staffDoneMsg{text: text, enrollment: enr, err: err}
	})
}

func (s *staffScreen) promptKey(k tea.KeyMsg) tea.Cmd {
	p := s.prompt
	keys := s.e.keys
	switch p.kind {
	case promptYesNo:
		switch {
		case keyMatches(k, keys.Yes):
			s.prompt = nil
			return p.yes()
		case keyMatches(k, keys.No):
			s.prompt = nil
			s.e.info("Nothing changed.")
		}
	case promptName:
		switch {
		case keyMatches(k, keys.Cancel):
			s.prompt = nil
			s.e.info("Nothing changed.")
		case keyMatches(k, keys.Submit):
			if strings.TrimSpace(p.ti.Value()) != p.name {
				p.err = "the name does not match; nothing was removed"
				p.ti.Reset()
				return nil
			}
			s.prompt = nil
			return p.yes()
		default:
			var cmd tea.Cmd
			p.ti, cmd = p.ti.Update(k)
			p.err = ""
			return cmd
		}
	case promptChoice:
		m, ok := s.selected()
		if !ok {
			s.prompt = nil
			return nil
		}
		name := m.Name
		switch {
		case keyMatches(k, keys.Cancel):
			s.prompt = nil
			s.e.info("Nothing changed.")
		case k.String() == "e":
			s.prompt = nil
			return s.run("Reset the TOTP of "+name+": they enroll at their next login.", func(ctx context.Context, st Store, a store.Actor) (*store.Enrollment, error) {
				return st.ResetTOTP(ctx, a, name, true)
			})
		case k.String() == "s":
			s.prompt = nil
			return s.run("Reset the TOTP of "+name+": hand over the new secret shown now.", func(ctx context.Context, st Store, a store.Actor) (*store.Enrollment, error) {
				return st.ResetTOTP(ctx, a, name, false)
			})
		}
	}
	return nil
}

func (s *staffScreen) openForm() tea.Cmd {
	f := &addForm{enroll: true}
	f.name = textinput.New()
	s.e.st.styleInput(&f.name)
	f.name.Prompt = "> "
	f.name.Placeholder = "e.g. alice"
	f.name.CharLimit = 32
	f.key = textinput.New()
	s.e.st.styleInput(&f.key)
	f.key.Prompt = "> "
	f.key.Placeholder = "ssh-ed25519 AAAA… comment (paste the .pub line)"
	f.key.CharLimit = 16384
	f.name.Width, f.key.Width = max(10, s.w-22), max(10, s.w-22)
	s.form = f
	return f.name.Focus()
}

func (s *staffScreen) focusField(i int) tea.Cmd {
	f := s.form
	f.field = (i + addFields) % addFields
	f.name.Blur()
	f.key.Blur()
	switch f.field {
	case 0:
		return f.name.Focus()
	case 1:
		return f.key.Focus()
	}
	return nil
}

func (s *staffScreen) formKey(k tea.KeyMsg) tea.Cmd {
	f := s.form
	keys := s.e.keys
	if f.busy {
		return nil
	}
	switch {
	case keyMatches(k, keys.Cancel):
		s.form = nil
		s.e.info("Nothing added.")
		return nil
	case keyMatches(k, keys.Submit):
		if f.field < addFields-1 {
			return s.focusField(f.field + 1)
		}
		return s.submitForm()
	case k.Type == tea.KeyTab || k.Type == tea.KeyDown:
		return s.focusField(f.field + 1)
	case k.Type == tea.KeyShiftTab || k.Type == tea.KeyUp:
		return s.focusField(f.field - 1)
	}
	var cmd tea.Cmd
	switch f.field {
	case 0:
		f.name, cmd = f.name.Update(k)
	case 1:
		f.key, cmd = f.key.Update(k)
	case 2, 3:
		v := &f.admin
		if f.field == 3 {
			v = &f.enroll
		}
		switch k.String() {
		case " ", "left", "right":
			*v = !*v
		case "y", "Y":
			*v = true
		case "n", "N":
			*v = false
		}
	}
	f.err = ""
	return cmd
}

func (s *staffScreen) submitForm() tea.Cmd {
	f := s.form
	name := strings.TrimSpace(f.name.Value())
	if name == "" {
		f.err = "a name is required"
		return s.focusField(0)
	}
	pub, comment, err := authkeys.ParseKey([]byte(f.key.Value()))
	if err != nil {
		f.err = "public key: " + err.Error()
		return s.focusField(1)
	}
	req := store.AddStaffRequest{Name: name, Key: pub, Comment: comment, Admin: f.admin, EnrollAtLogin: f.enroll}
	role := store.RoleStaff
	if f.admin {
		role = store.RoleAdmin
	}
	f.busy = true
	st, a := s.e.store, s.e.actor
	s.e.info("working…")
	return s.e.call(func(ctx context.Context) tea.Msg {
		res, err := st.AddStaff(ctx, a, req)
		if err != nil {
			return staffDoneMsg{err: err}
		}
		fp := shortFingerprint(res.Fingerprint)
		text := "Added " + res.Name + " (" + role + "), key " + fp
		switch {
		case !res.NewMember:
			text = "Added key " + fp + " to " + res.Name
		case res.Enrollment == nil:
			text += "; " + res.Name + " enrolls at first login"
		default:
			text += "; hand over the enrollment now"
		}
		return staffDoneMsg{text: text + ".", enrollment: res.Enrollment}
	})
}

func (s *staffScreen) help() helpKeys {
	k := s.e.keys
	switch {
	case s.enr != nil:
		done := key.NewBinding(key.WithKeys("enter", "esc"), key.WithHelp("enter/esc", "done (not shown again)"))
		return helpKeys{short: []key.Binding{done}, full: [][]key.Binding{{done, k.ForceQuit}}}
	case s.form != nil:
		b := []key.Binding{k.Submit, k.NextField, k.PrevField, k.Toggle, k.Cancel, k.ForceQuit}
		return helpKeys{short: b, full: [][]key.Binding{b}}
	case s.prompt != nil && s.prompt.kind == promptYesNo:
		b := []key.Binding{k.Yes, k.No, k.ForceQuit}
		return helpKeys{short: b, full: [][]key.Binding{b}}
	case s.prompt != nil:
		b := []key.Binding{k.Submit, k.Cancel, k.ForceQuit}
		return helpKeys{short: b, full: [][]key.Binding{b}}
	case s.search != nil:
		b := []key.Binding{k.Submit, k.ClearIn, k.ForceQuit}
		return helpKeys{short: b, full: [][]key.Binding{b}}
	}
	actions := []key.Binding{k.StaffAdd, k.StaffRemove, k.StaffResetTOTP, k.StaffUnlock, k.StaffRole}
	if s.detail != "" {
		return helpKeys{
			short: append([]key.Binding{k.Back, k.StaffRemoveKey}, actions[1:]...),
			full:  [][]key.Binding{{k.Back, k.Up, k.Down, k.StaffRemoveKey}, actions[1:]},
		}
	}
	return helpKeys{
		short: append([]key.Binding{k.Open}, actions...),
		full:  [][]key.Binding{{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom}, {k.Open, k.Search, k.Back}, actions},
	}
}

func (s *staffScreen) view() string {
	st := s.e.st
	switch {
	case s.enr != nil:
		head := []string{
			st.heading.Render("Enrollment for " + clean(s.enrName)),
			st.warn.Render("Shown once: hand it over now."),
		}
		return s.enr.render(st, s.w, s.h, head, nil, true)
	case s.form != nil:
		return s.formView()
	}
	var body string
	if s.detail != "" {
		body = s.detailView()
	} else {
		body = s.grid.view()
		if !s.loaded {
			body = st.dim.Render("loading…")
		}
	}
	lines := strings.Split(body, "\n")
	var bottom []string
	switch {
	case s.prompt != nil:
		bottom = append(bottom, st.warn.Render(s.prompt.text))
		if s.prompt.kind == promptName {
			bottom = append(bottom, s.prompt.ti.View())
		}
		if s.prompt.err != "" {
			bottom = append(bottom, st.err.Render(s.prompt.err))
		}
		if s.prompt.kind == promptYesNo {
			bottom[0] += st.dim.Render("  y/n")
		}
	case s.search != nil:
		bottom = append(bottom, s.search.View())
	case s.query != "":
		bottom = append(bottom, st.dim.Render("search: "+clean(s.query)+" · esc clears"))
	}
	keep := max(0, s.h-len(bottom))
	for len(lines) < keep {
		lines = append(lines, "")
	}
	if len(lines) > keep {
		lines = lines[:keep]
	}
	return strings.Join(append(lines, bottom...), "\n")
}

func (s *staffScreen) detailView() string {
	st := s.e.st
	m, ok := s.selected()
	if !ok {
		return st.dim.Render("loading…")
	}
	locked := "not locked"
	if m.Locked(s.e.now()) {
		locked = st.alert.Render("locked until " + fmtTime(m.LockedUntil) + " UTC")
	}
	line1 := st.heading.Render(clean(m.Name)) + "  " + m.Role + " · TOTP " + m.TOTP + " · " + locked
	line2 := st.dim.Render("added " + fmtTime(m.CreatedAt) + " UTC · " + strconv.Itoa(m.Failures) + " failed codes in a row")
	return line1 + "\n" + line2 + "\n" + st.label.Render("Keys ("+strconv.Itoa(len(m.Keys))+")") + "\n" + s.keys.view()
}

func (s *staffScreen) formView() string {
	st, f := s.e.st, s.form
	var b strings.Builder
	b.WriteString(st.heading.Render("Add a staff member") + st.dim.Render("  (or another key of an existing one)") + "\n\n")
	label := func(i int, text string) string {
		mark := "  "
		if f.field == i {
			mark = "▸ "
			if st.ascii {
				mark = "> "
			}
		}
		return mark + st.label.Render(padRight(text, 18))
	}
	yn := func(v bool) string {
		if v {
			return "[x] yes  [ ] no"
		}
		return "[ ] yes  [x] no"
	}
	b.WriteString(label(0, "Name") + f.name.View() + "\n")
	b.WriteString(label(1, "Public key") + f.key.View() + "\n")
	b.WriteString(label(2, "Admin") + yn(f.admin) + "\n")
	b.WriteString(label(3, "Enroll at login") + yn(f.enroll) + "\n\n")
	if f.enroll {
		b.WriteString(st.dim.Render(wrap("They scan their QR code at their first login (key only, 10 minutes).", s.w)) + "\n")
	} else {
		b.WriteString(st.dim.Render(wrap("Their QR code, secret and recovery codes are shown once after adding.", s.w)) + "\n")
	}
	if f.busy {
		b.WriteString(st.dim.Render("Adding…") + "\n")
	}
	if f.err != "" {
		b.WriteString("\n" + st.err.Render(wrap(clean(f.err), s.w)) + "\n")
	}
	return b.String()
}
