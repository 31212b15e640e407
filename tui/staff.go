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

// Fields of the add form.
const (
	addName = iota
	addKey
	addAdmin
	addEnroll
)

// staffChange is a change to staff made in a Cmd.
type staffChange func(ctx context.Context, st Store, a store.Actor) (*store.Enrollment, error)

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
	detail  string  // the member shown in detail, "" for the list
	prompt  *prompt // reset TOTP is a promptChoice: e or s
	form    *form   // adds a member (or another key of a member)
	pw      *passwordForm
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
	return s.prompt != nil || s.form != nil || s.pw != nil || s.enr != nil || s.search != nil
}

func (s *staffScreen) activate() tea.Cmd { return s.load() }

func (s *staffScreen) setSize(w, h int) tea.Cmd {
	s.w, s.h = w, h
	s.grid.setSize(w, max(2, h-3))
	s.keys.setSize(w, max(2, h-6))
	if s.form != nil {
		s.form.size(w - 22)
	}
	if s.pw != nil {
		s.pw.size(w)
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
			var again tea.Cmd
			if s.form != nil {
				s.form.err = store.ErrorMessage(msg.err)
			}
			if s.pw != nil {
				again = s.pw.failed(msg.err)
			}
			return tea.Batch(again, s.load(), s.e.reloadHeader())
		}
		s.form, s.pw = nil, nil
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
		case s.pw != nil:
			return s.pwKey(msg)
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
	if s.grid.moveKey(keys, k) {
		return nil
	}
	switch {
	case keyMatches(k, keys.Open):
		if m, ok := s.selected(); ok {
			s.detail = m.Name
			s.fillKeys()
			s.keys.top()
		}
	case keyMatches(k, keys.Search):
		s.search = s.e.st.searchInput("name", 40, 0, s.query)
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
		return s.ask(&prompt{kind: promptYesNo, text: "Remove key " + fp + " of " + name + "?",
			done: s.change("Removed key "+fp+" of "+name+".", func(ctx context.Context, st Store, a store.Actor) (*store.Enrollment, error) {
				return nil, st.RemoveKey(ctx, a, name, fp)
			})})
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
		return s.ask(&prompt{kind: promptTyped, want: name, mismatch: "the name does not match; nothing was removed",
			text: "Remove " + name + " and all their keys? Type the name to confirm:",
			done: s.change("Removed "+name+".", func(ctx context.Context, st Store, a store.Actor) (*store.Enrollment, error) {
				return nil, st.RemoveStaff(ctx, a, name)
			})})
	case keyMatches(k, keys.StaffResetTOTP):
		return s.ask(&prompt{kind: promptChoice, text: "Reset the TOTP of " + name + ":  e  enroll at next login  ·  s  new secret shown now  ·  esc  cancel"})
	case keyMatches(k, keys.StaffUnlock):
		return s.ask(&prompt{kind: promptYesNo, text: "Unlock " + name + " (clears the lock and the failure count)?",
			done: s.change("Unlocked "+name+".", func(ctx context.Context, st Store, a store.Actor) (*store.Enrollment, error) {
				return nil, st.Unlock(ctx, a, name)
			})})
	case keyMatches(k, keys.StaffPassword):
		var cmd tea.Cmd
		s.pw, cmd = newPasswordForm(s.e.st, name, name == s.e.actor.Name, s.w)
		return cmd
	case keyMatches(k, keys.StaffRole):
		role, text := store.RoleAdmin, "Make "+name+" an admin?"
		if m.Role == store.RoleAdmin {
			role, text = store.RoleStaff, "Make "+name+" staff (no longer admin)?"
		}
		return s.ask(&prompt{kind: promptYesNo, text: text,
			done: s.change(name+" is now "+role+".", func(ctx context.Context, st Store, a store.Actor) (*store.Enrollment, error) {
				return nil, st.SetRole(ctx, a, name, role)
			})})
	}
	return nil
}

func (s *staffScreen) ask(p *prompt) tea.Cmd {
	s.prompt = p
	return p.open(s.e.st, s.w, 64)
}

// change is a prompt's answer that runs fn.
func (s *staffScreen) change(text string, fn staffChange) func(string) (tea.Cmd, string) {
	return func(string) (tea.Cmd, string) { return s.run(text, fn), "" }
}

// run performs a change in a Cmd and reports it with text.
func (s *staffScreen) run(text string, fn staffChange) tea.Cmd {
	st, a := s.e.store, s.e.actor
	s.e.info("working…")
	return s.e.call(func(ctx context.Context) tea.Msg {
		enr, err := fn(ctx, st, a)
		return staffDoneMsg{text: text, enrollment: enr, err: err}
	})
}

func (s *staffScreen) promptKey(k tea.KeyMsg) tea.Cmd {
	if s.prompt.kind == promptChoice {
		return s.resetKey(k)
	}
	cmd, closed := s.prompt.key(s.e, k)
	if closed {
		s.prompt = nil
	}
	return cmd
}

// resetKey answers the reset TOTP prompt: e enroll at next login, s a new
// secret shown now.
func (s *staffScreen) resetKey(k tea.KeyMsg) tea.Cmd {
	m, ok := s.selected()
	if !ok {
		s.prompt = nil
		return nil
	}
	name := m.Name
	switch {
	case keyMatches(k, s.e.keys.Cancel):
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
	return nil
}

func (s *staffScreen) openForm() tea.Cmd {
	st := s.e.st
	s.form = newForm(
		inputField(st, "Name", "e.g. alice", 32),
		inputField(st, "Public key", "ssh-ed25519 AAAA… comment (paste the .pub line)", 16384),
		toggleField("Admin", "yes", "no", false),
		toggleField("Enroll at login", "yes", "no", true),
	)
	s.form.size(s.w - 22)
	return s.form.focus(addName)
}

func (s *staffScreen) formKey(k tea.KeyMsg) tea.Cmd {
	return s.form.key(s.e.keys, k, s.submitForm, func() {
		s.form = nil
		s.e.info("Nothing added.")
	})
}

// pwKey handles a key in the web password form: the password goes to the
// store in a Cmd and is not kept.
func (s *staffScreen) pwKey(k tea.KeyMsg) tea.Cmd {
	name := s.pw.name
	return s.pw.key(s.e.keys, k, func(pw string) tea.Cmd {
		s.e.info("working…")
		return s.e.setPassword(name, pw, func(err error) tea.Msg {
			return staffDoneMsg{text: "New web password set for " + name + ".", err: err}
		})
	}, func() {
		s.pw = nil
		s.e.info("Web password not changed.")
	})
}

func (s *staffScreen) submitForm() tea.Cmd {
	f := s.form
	name := f.value(addName)
	if name == "" {
		f.err = "a name is required"
		return f.focus(addName)
	}
	pub, comment, err := authkeys.ParseKey([]byte(f.fields[addKey].ti.Value()))
	if err != nil {
		f.err = "public key: " + err.Error()
		return f.focus(addKey)
	}
	admin, enroll := f.fields[addAdmin].on, f.fields[addEnroll].on
	req := store.AddStaffRequest{Name: name, Key: pub, Comment: comment, Admin: admin, EnrollAtLogin: enroll}
	role := store.RoleStaff
	if admin {
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
		return flatHelp(k.Submit, k.NextField, k.PrevField, k.Toggle, k.Cancel, k.ForceQuit)
	case s.pw != nil:
		return flatHelp(k.Submit, k.NextField, k.Cancel, k.ForceQuit)
	case s.prompt != nil:
		return s.prompt.help(k)
	case s.search != nil:
		return flatHelp(k.Submit, k.ClearIn, k.ForceQuit)
	}
	actions := []key.Binding{k.StaffAdd, k.StaffRemove, k.StaffResetTOTP, k.StaffUnlock, k.StaffRole, k.StaffPassword}
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
	case s.pw != nil:
		return s.pw.view(st, max(20, s.w))
	case s.form != nil:
		hint := "Their QR code, secret and recovery codes are shown once after adding."
		if s.form.fields[addEnroll].on {
			hint = "They scan their QR code at their first login (key only, 10 minutes)."
		}
		return s.form.view(st, max(20, s.w),
			st.heading.Render("Add a staff member")+st.dim.Render("  (or another key of an existing one)"), hint)
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
		bottom = s.prompt.lines(st, 0) // one line, cut at the width
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
