// Package tui is Backroom's console: the Bubble Tea program for one SSH
// session. It shows the Stripe key, the clients, the audit log, Stripe's
// webhook events and (for admins) staff and live sessions, or, for a member
// enrolling at login, only the enrollment screen.
//
// Every store call runs in a tea.Cmd; Update and View never do I/O. Styles
// and key bindings are built per session from the session's renderer, and
// the package keeps no package-level mutable state.
package tui

import (
	"context"
	"io"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"

	"backroom/store"
)

// Store is what the console needs from the store; *store.Store satisfies
// it.
type Store interface {
	KeyStatus(ctx context.Context) (store.KeyStatus, error)
	CountLocked(ctx context.Context) (int, error)
	SetStripeKey(ctx context.Context, a store.Actor, req store.SetKeyRequest) (store.KeyStatus, error)
	ListAudit(ctx context.Context, q store.AuditQuery) ([]store.Event, error)
	AuditActions(ctx context.Context) ([]string, error)
	ListStaff(ctx context.Context) ([]store.Staff, error)
	AddStaff(ctx context.Context, a store.Actor, req store.AddStaffRequest) (store.AddStaffResult, error)
	RemoveStaff(ctx context.Context, a store.Actor, name string) error
	RemoveKey(ctx context.Context, a store.Actor, name, fingerprint string) error
	SetRole(ctx context.Context, a store.Actor, name, role string) error
	Unlock(ctx context.Context, a store.Actor, name string) error
	ResetTOTP(ctx context.Context, a store.Actor, name string, enrollAtLogin bool) (*store.Enrollment, error)
	ConfirmEnrollment(ctx context.Context, a store.Actor, fp string, e *store.Enrollment, code string) error

	ListClients(ctx context.Context, q store.ClientQuery) (store.ClientPage, error)
	ViewClient(ctx context.Context, a store.Actor, customerID string) (store.Client, error)
	ClientAudit(ctx context.Context, customerID string, limit int) ([]store.Event, error)
	SetClientNotes(ctx context.Context, a store.Actor, customerID, notes string) error
	AddClient(ctx context.Context, a store.Actor, d store.ClientData) (store.Client, error)
	ForgetClient(ctx context.Context, a store.Actor, customerID string) error
	BillingEvents(ctx context.Context, customerID string, limit int) ([]store.BillingEvent, error)

	ListWebhooks(ctx context.Context, q store.WebhookQuery) ([]store.WebhookEvent, error)
	GetWebhook(ctx context.Context, eventID string) (store.WebhookEvent, error)
	WebhookAttempts(ctx context.Context, eventID string) ([]store.WebhookAttempt, error)
	CountFailedWebhooks(ctx context.Context) (int, error)
	ReplayWebhook(ctx context.Context, a store.Actor, eventID string, process store.Processor) (string, error)
	ListRejected(ctx context.Context, beforeID int64, limit int) ([]store.WebhookAttempt, error)
	RejectedDropped(ctx context.Context, since time.Time) (int64, error)

	CreateSignInLink(ctx context.Context, a store.Actor) (string, time.Time, error)
	SetPassword(ctx context.Context, a store.Actor, name, pw string) error
	HasPassword(ctx context.Context, name string) (bool, error)
	ListWebSessions(ctx context.Context) ([]store.WebSession, error)
	EndWebSession(ctx context.Context, a store.Actor, id string) error
	EndWebSessionsOf(ctx context.Context, a store.Actor, name, reason string) (int, error)
}

var _ Store = (*store.Store)(nil)

// SessionInfo describes one live SSH session for the admin Sessions screen.
type SessionInfo struct {
	ID          string
	User        string
	Role        string
	Fingerprint string
	RemoteAddr  string
	Started     time.Time
	LastInput   time.Time
}

// Sessions is the registry of live SSH sessions (kept by the SSH server).
type Sessions interface {
	// List returns the live sessions.
	List() []SessionInfo
	// End terminates session id on behalf of by (audited by the server).
	End(ctx context.Context, by store.Actor, id string) error
}

// ClientSync runs syncs of the clients with Stripe and links single
// customers; the server's Stripe sync satisfies it. The console polls
// Status only while the Clients screen is visible and a sync runs.
type ClientSync interface {
	// Start begins a sync in the background (it goes on when the console
	// moves on or closes) and returns at once. A store.Error with
	// CodeConflict says one runs already; without a Stripe key the
	// error's message says so. Errors are shown with store.ErrorMessage.
	Start(ctx context.Context, a store.Actor) error
	// Status is the progress of the running sync, or the outcome of the
	// last one. It must be cheap (no I/O): it is polled every 250 ms.
	Status() store.SyncProgress
	// Link fetches one customer from Stripe and stores it (audited by the
	// implementation).
	Link(ctx context.Context, a store.Actor, customerID string) (store.Client, error)
}

// NoticeMsg is sent by the server to show a notice on every screen: an idle
// warning stays until the next key; with Quit the program shows the text and
// ends.
type NoticeMsg struct {
	Text string
	Quit bool
}

// Options configure one session's console.
type Options struct {
	// Store is the data the console shows and changes.
	Store Store
	// Sessions lists and ends live sessions (admin screen); nil hides the
	// Sessions screen.
	Sessions Sessions
	// ClientSync syncs clients with Stripe and links customers; nil makes
	// those actions say that sync is not available in this session.
	ClientSync ClientSync
	// WebhookProcessor reprocesses a stored webhook event when staff
	// replay it (the server passes its processors registry); nil makes
	// replay say it is not available in this session.
	WebhookProcessor store.Processor
	// WebhookSecretSet tells whether a Stripe webhook secret is
	// configured; without one the console says "webhook secret not set"
	// (the endpoint refuses every event).
	WebhookSecretSet bool
	// WebSignInURL builds the web admin's one-time sign-in URL for a token
	// issued by the store; nil when the web admin is off (the console
	// then says so instead of issuing a link).
	WebSignInURL func(token string) string
	// WebPasswordSet tells whether the member had a web password when the
	// session began (read with the login), so the home screen shows it
	// without a query of its own; it is read afresh when the screen is
	// shown again.
	WebPasswordSet bool
	// Actor is the staff member of this session.
	Actor store.Actor
	// Fingerprint is the SHA256 fingerprint of the key they signed with.
	Fingerprint string
	// Renderer is the session's lipgloss renderer; every style is built
	// from it. The caller must set its colour profile (SetColorProfile) and
	// background (SetHasDarkBackground) explicitly, or lipgloss would ask
	// the terminal. Nil means no colour, dark background.
	Renderer *lipgloss.Renderer
	// Width and Height are the initial terminal size (default 80x24).
	Width, Height int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Enroll confines the session to the enrollment screen (a member added
	// with --enroll-at-login who has no TOTP secret yet).
	Enroll bool
	// EnrollDeadline is when the enrollment session ends.
	EnrollDeadline time.Time
	// Context is the session's context: store calls stop when it ends. Nil
	// means context.Background().
	Context context.Context
}

// storeTimeout bounds every store call made by the console.
const storeTimeout = 15 * time.Second

type statusKind int

const (
	statusInfo statusKind = iota
	statusOK
	statusErr
)

// env is what every screen of one session shares.
type env struct {
	ctx      context.Context
	store    Store
	sessions Sessions
	sync     ClientSync
	replay   store.Processor
	secret   bool                      // a webhook secret is configured
	webURL   func(token string) string // nil: the web admin is off
	webPW    bool                      // the member had a web password at login
	actor    store.Actor
	fp       string
	now      func() time.Time
	st       *styles
	keys     *keyMap
	// tick schedules a timer message (tea.Tick; tests replace it).
	tick func(d time.Duration, fn func(time.Time) tea.Msg) tea.Cmd

	keyStatus store.KeyStatus
	keyLoaded bool
	keyErr    string
	locked    int
	failed    int // failed webhook events awaiting review
	headerSeq int

	statusText string
	statusKind statusKind
}

func (e *env) admin() bool { return e.actor.IsAdmin() }

// call runs fn in a tea.Cmd with a bounded context.
func (e *env) call(fn func(ctx context.Context) tea.Msg) tea.Cmd { return callIn(e.ctx, fn) }

// callIn runs fn in a tea.Cmd under parent, bounded by storeTimeout.
func callIn(parent context.Context, fn func(ctx context.Context) tea.Msg) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(parent, storeTimeout)
		defer cancel()
		return fn(ctx)
	}
}

func (e *env) setStatus(kind statusKind, text string) {
	e.statusKind, e.statusText = kind, clean(text)
}

func (e *env) info(text string) { e.setStatus(statusInfo, text) }
func (e *env) good(text string) { e.setStatus(statusOK, text) }

// fail shows err in words a staff member can act on (never a raw internal
// error).
func (e *env) fail(err error) { e.setStatus(statusErr, store.ErrorMessage(err)) }

// headerMsg carries the header's data: the key status and the counters.
type headerMsg struct {
	seq       int
	status    store.KeyStatus
	statusErr error
	locked    int
	lockedErr error
	failed    int
	failedErr error
}

// reloadHeader loads the key status and the attention counters: failed
// webhooks for everyone, locked accounts for admins. Older loads still in
// flight are discarded.
func (e *env) reloadHeader() tea.Cmd {
	e.headerSeq++
	seq := e.headerSeq
	st, admin := e.store, e.admin()
	return e.call(func(ctx context.Context) tea.Msg {
		msg := headerMsg{seq: seq}
		msg.status, msg.statusErr = st.KeyStatus(ctx)
		msg.failed, msg.failedErr = st.CountFailedWebhooks(ctx)
		if admin {
			msg.locked, msg.lockedErr = st.CountLocked(ctx)
		}
		return msg
	})
}

// screen is one screen of the console.
type screen interface {
	// title is the tab's name.
	title() string
	// activate is called when the screen becomes visible.
	activate() tea.Cmd
	// deactivate is called when another screen becomes visible.
	deactivate()
	// setSize gives the body's size.
	setSize(w, h int) tea.Cmd
	// update handles keys (when visible) and the screen's own messages.
	update(msg tea.Msg) tea.Cmd
	// view renders the body.
	view() string
	// capturing reports whether an input or prompt has the keyboard: then
	// global keys (q, tab, digits, ?) go to the screen.
	capturing() bool
	// help is the current context's key help.
	help() helpKeys
}

// Model is the console of one SSH session; it implements tea.Model.
type Model struct {
	e        *env
	help     help.Model
	width    int
	height   int
	screens  []screen
	active   int
	unsized  []bool // screens whose size changed while hidden
	enroll   *enrollScreen
	showHelp bool
	notice   string
	quitting bool
}

// New builds the console. Its first View is complete (header, screen
// skeleton, help bar) before any query has answered.
func New(o Options) *Model {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Context == nil {
		o.Context = context.Background()
	}
	r := o.Renderer
	if r == nil {
		r = lipgloss.NewRenderer(io.Discard)
		r.SetColorProfile(termenv.Ascii)
		r.SetHasDarkBackground(true)
	}
	if o.Width <= 0 {
		o.Width = 80
	}
	if o.Height <= 0 {
		o.Height = 24
	}
	e := &env{
		ctx:      o.Context,
		store:    o.Store,
		sessions: o.Sessions,
		sync:     o.ClientSync,
		replay:   o.WebhookProcessor,
		secret:   o.WebhookSecretSet,
		webURL:   o.WebSignInURL,
		webPW:    o.WebPasswordSet,
		actor:    o.Actor,
		fp:       o.Fingerprint,
		now:      o.Now,
		st:       newStyles(r),
		keys:     newKeyMap(),
		tick:     tea.Tick,
	}
	m := &Model{e: e, help: help.New()}
	m.help.Styles = e.st.help
	if o.Enroll {
		m.enroll = newEnrollScreen(e, o.EnrollDeadline)
		m.screens = []screen{m.enroll}
	} else {
		// Everyone's screens first, so that their numbers are the same
		// for staff and admins.
		m.screens = []screen{newKeyScreen(e), newClientsScreen(e), newAuditScreen(e), newWebhooksScreen(e)}
		if e.admin() {
			m.screens = append(m.screens, newStaffScreen(e))
			if o.Sessions != nil {
				m.screens = append(m.screens, newSessionsScreen(e))
			}
		}
	}
	if n := len(m.screens); n > 1 {
		digits := make([]string, n)
		for i := range digits {
			digits[i] = itoa(i + 1)
		}
		e.keys.Screens = key.NewBinding(key.WithKeys(digits...), key.WithHelp("1-"+itoa(n), "go to screen"))
	}
	m.resize(o.Width, o.Height)
	return m
}

// Init starts the first loads.
func (m *Model) Init() tea.Cmd {
	if m.enroll != nil {
		return m.screens[0].activate()
	}
	return tea.Batch(m.e.reloadHeader(), m.screens[m.active].activate())
}

// chrome is the number of lines around the body: header, tab bar (not in
// enrollment), status line and help line.
func (m *Model) chrome() int {
	if m.enroll != nil {
		return 3
	}
	return 4
}

func (m *Model) bodyHeight() int { return max(1, m.height-m.chrome()) }

func (m *Model) resize(w, h int) tea.Cmd {
	w, h = max(w, 20), max(h, 6)
	if w == m.width && h == m.height {
		return nil // the size the console already has (SSH repeats it)
	}
	m.width, m.height = w, h
	m.help.Width = m.width
	// Only the visible screen is laid out now; the others when they are
	// shown (a session that never visits a screen never lays it out).
	if len(m.unsized) != len(m.screens) {
		m.unsized = make([]bool, len(m.screens))
	}
	for i := range m.unsized {
		m.unsized[i] = i != m.active
	}
	return m.screens[m.active].setSize(m.width, m.bodyHeight())
}

// quitMsg ends the program (after the enrollment's closing message).
type quitMsg struct{}

// Update handles a message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		return m, m.resize(msg.Width, msg.Height)
	case NoticeMsg:
		m.notice = clean(msg.Text)
		if msg.Quit {
			m.quitting = true
			return m, tea.Quit
		}
		return m, nil
	case quitMsg:
		m.quitting = true
		return m, tea.Quit
	case headerMsg:
		if msg.seq != m.e.headerSeq {
			return m, nil
		}
		if msg.statusErr != nil {
			m.e.keyErr = store.ErrorMessage(msg.statusErr)
			m.e.fail(msg.statusErr)
		} else {
			m.e.keyStatus, m.e.keyLoaded, m.e.keyErr = msg.status, true, ""
		}
		if msg.lockedErr == nil {
			m.e.locked = msg.locked
		}
		if msg.failedErr == nil {
			m.e.failed = msg.failed
		}
		return m, nil
	case tea.KeyMsg:
		return m, m.key(msg)
	}
	return m, m.route(msg)
}

// route hands a screen's own message to that screen, visible or not.
func (m *Model) route(msg tea.Msg) tea.Cmd {
	for _, s := range m.screens {
		if owns(s, msg) {
			return s.update(msg)
		}
	}
	return nil
}

func owns(s screen, msg tea.Msg) bool {
	switch s.(type) {
	case *keyScreen:
		switch msg.(type) {
		case keySetMsg, linkMsg, linkTickMsg, passwordSetMsg, hasPasswordMsg:
			return true
		}
	case *clientsScreen:
		return isClientsMsg(msg)
	case *auditScreen:
		switch msg.(type) {
		case auditPageMsg, auditActionsMsg:
			return true
		}
	case *webhooksScreen:
		return isWebhooksMsg(msg)
	case *staffScreen:
		switch msg.(type) {
		case staffListMsg, staffDoneMsg:
			return true
		}
	case *sessionsScreen:
		switch msg.(type) {
		case sessionsMsg, sessionsTickMsg, sessionEndMsg:
			return true
		}
	case *enrollScreen:
		switch msg.(type) {
		case enrollDoneMsg, enrollTickMsg:
			return true
		}
	}
	return false
}

func (m *Model) key(k tea.KeyMsg) tea.Cmd {
	keys := m.e.keys
	if m.quitting {
		return nil
	}
	if keyMatches(k, keys.ForceQuit) {
		m.quitting = true
		return tea.Quit
	}
	if m.notice != "" {
		// "Press any key to stay": the key only dismisses the notice.
		m.notice = ""
		return nil
	}
	s := m.screens[m.active]
	if m.showHelp {
		switch {
		case keyMatches(k, keys.Quit) && !s.capturing():
			m.quitting = true
			return tea.Quit
		case keyMatches(k, keys.Help, keys.Back, keys.Quit):
			m.showHelp = false
		}
		return nil
	}
	if s.capturing() {
		return s.update(k)
	}
	switch {
	case keyMatches(k, keys.Quit):
		m.quitting = true
		return tea.Quit
	case keyMatches(k, keys.Help):
		m.showHelp = true
		return nil
	case m.enroll != nil:
		return s.update(k)
	case keyMatches(k, keys.Next):
		return m.switchTo((m.active + 1) % len(m.screens))
	case keyMatches(k, keys.Prev):
		return m.switchTo((m.active + len(m.screens) - 1) % len(m.screens))
	case k.Type == tea.KeyRunes && len(k.Runes) == 1 && !k.Paste && k.Runes[0] >= '1' && k.Runes[0] <= '9':
		i := int(k.Runes[0] - '1')
		if i < len(m.screens) {
			return m.switchTo(i)
		}
		return nil
	}
	return s.update(k)
}

func (m *Model) switchTo(i int) tea.Cmd {
	if i == m.active {
		return nil
	}
	m.screens[m.active].deactivate()
	m.active = i
	m.e.setStatus(statusInfo, "")
	var size tea.Cmd
	if m.unsized[i] {
		m.unsized[i] = false
		size = m.screens[i].setSize(m.width, m.bodyHeight())
	}
	return tea.Batch(size, m.e.reloadHeader(), m.screens[i].activate())
}

// View renders the whole frame: never wider than the terminal and exactly
// as tall.
func (m *Model) View() string {
	lines := make([]string, 0, m.height)
	lines = append(lines, m.headerView())
	if m.enroll == nil {
		lines = append(lines, m.tabsView())
	}
	var body string
	if m.showHelp {
		body = m.fullHelpView()
	} else {
		body = m.screens[m.active].view()
	}
	bh := m.bodyHeight()
	bl := strings.Split(body, "\n")
	if len(bl) > bh {
		bl = bl[:bh]
	}
	for len(bl) < bh {
		bl = append(bl, "")
	}
	lines = append(lines, bl...)
	lines = append(lines, m.statusView(), m.helpLine())
	for i, l := range lines {
		if lipgloss.Width(l) > m.width {
			lines[i] = ansi.Truncate(l, m.width, "…")
		}
	}
	if len(lines) > m.height {
		lines = lines[:m.height]
	}
	return strings.Join(lines, "\n")
}

// counter is a header item that needs attention.
type counter struct {
	n     int
	label string
}

// counters lists the header's attention counters, most urgent first.
func (m *Model) counters() []counter {
	var cs []counter
	if m.e.failed > 0 {
		label := "failed webhooks"
		if m.e.failed == 1 {
			label = "failed webhook"
		}
		cs = append(cs, counter{m.e.failed, label})
	}
	if m.e.admin() && m.e.locked > 0 {
		cs = append(cs, counter{m.e.locked, "locked"})
	}
	return cs
}

func (m *Model) headerView() string {
	st := m.e.st
	left := st.title.Render("Backroom") + "  " + st.user.Render(clean(m.e.actor.Name)) +
		" " + st.dim.Render("("+clean(m.e.actor.Role)+")")
	var right string
	if m.enroll != nil {
		left += "  " + st.warn.Render("enrollment")
		right = m.enroll.timeLeft()
	} else {
		badge := "…"
		if m.e.keyLoaded {
			badge = m.e.keyStatus.Badge()
		}
		left += "  " + st.dim.Render("Stripe") + " " + st.badge(badge)
		var parts []string
		for _, c := range m.counters() {
			parts = append(parts, st.alert.Render(itoa(c.n)+" "+c.label))
		}
		if !m.e.secret {
			parts = append(parts, st.secretWarning())
		}
		// As many items as fit, most urgent first (the Webhooks and Key
		// screens repeat the missing secret).
		room := m.width - lipgloss.Width(left) - 1
		for _, p := range parts {
			w := lipgloss.Width(p)
			if right != "" {
				w += 2
			}
			if w > room {
				break
			}
			room -= w
			if right != "" {
				right += "  "
			}
			right += p
		}
	}
	return spread(left, right, m.width)
}

func (m *Model) tabsView() string {
	st := m.e.st
	var parts []string
	for i, s := range m.screens {
		label := itoa(i+1) + " " + s.title()
		if i == m.active {
			if st.ascii {
				parts = append(parts, "["+label+"]")
			} else {
				parts = append(parts, st.tabActive.Render(" "+label+" "))
			}
		} else {
			parts = append(parts, st.tab.Render(" "+label+" "))
		}
	}
	return strings.Join(parts, " ")
}

func (m *Model) statusView() string {
	st := m.e.st
	if m.notice != "" {
		text := m.notice
		if st.ascii {
			return "!! " + text + " !!"
		}
		return st.notice.Render(padRight(" ⚠ "+text, m.width))
	}
	switch m.e.statusKind {
	case statusErr:
		if st.ascii {
			return "error: " + m.e.statusText
		}
		return st.err.Render("✗ " + m.e.statusText)
	case statusOK:
		if m.e.statusText == "" {
			return ""
		}
		return st.ok.Render("✓ " + m.e.statusText)
	}
	return st.dim.Render(m.e.statusText)
}

// context returns the help of the current context.
func (m *Model) context() helpKeys {
	keys := m.e.keys
	h := m.screens[m.active].help()
	if m.screens[m.active].capturing() {
		return h
	}
	global := []key.Binding{keys.Help, keys.Quit}
	nav := []key.Binding{}
	if m.enroll == nil && len(m.screens) > 1 {
		nav = []key.Binding{keys.Next, keys.Prev, keys.Screens}
	}
	h.short = append(h.short, global...)
	h.full = append(h.full, append(nav, keys.Help, keys.Quit, keys.ForceQuit))
	return h
}

func (m *Model) helpLine() string {
	if m.showHelp {
		return m.help.ShortHelpView([]key.Binding{m.e.keys.Help, m.e.keys.Back})
	}
	return m.help.ShortHelpView(m.context().short)
}

// fullHelpView lays the full help's columns out in as many rows as the
// width needs, so that no binding is cut off at 80 columns.
func (m *Model) fullHelpView() string {
	groups := m.context().full
	var rows []string
	var row [][]key.Binding
	width := 0
	flush := func() {
		if len(row) > 0 {
			rows = append(rows, m.help.FullHelpView(row))
			row, width = nil, 0
		}
	}
	for _, g := range groups {
		w := lipgloss.Width(m.help.FullHelpView([][]key.Binding{g})) + 4
		if width > 0 && width+w > m.width {
			flush()
		}
		row = append(row, g)
		width += w
	}
	flush()
	title := m.e.st.heading.Render("Keys") + m.e.st.dim.Render("  (? or esc closes)")
	return title + "\n\n" + strings.Join(rows, "\n\n")
}
