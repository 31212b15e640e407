package tui

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"
	"golang.org/x/crypto/ssh"

	"backroom/store"
	"backroom/store/clocktest"
)

type clock = clocktest.Clock

var cliActor = store.Actor{Name: "root", Role: store.RoleAdmin, Channel: store.ChannelCLI}

// openStore opens a real store on a temp directory with a test clock.
func openStore(t testing.TB, opts ...func(*store.Options)) (*store.Store, *clock) {
	t.Helper()
	c := clocktest.New(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	o := store.Options{Dir: t.TempDir(), MasterKey: store.NewMasterKey(), Now: c.Now}
	for _, f := range opts {
		f(&o)
	}
	st, err := store.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, c
}

// member is a staff member added for a test.
type member struct {
	name   string
	secret string // base32 TOTP secret ("" when enrolling at login)
	fp     string
	line   string // the public key as an authorized_keys line
}

func newKeyLine(t testing.TB, comment string) (ssh.PublicKey, string) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + " " + comment
}

func addMember(t testing.TB, st *store.Store, name string, admin, enrollAtLogin bool) member {
	t.Helper()
	k, line := newKeyLine(t, name+"@laptop")
	res, err := st.AddStaff(context.Background(), cliActor, store.AddStaffRequest{Name: name, Key: k, Admin: admin, EnrollAtLogin: enrollAtLogin})
	if err != nil {
		t.Fatal(err)
	}
	m := member{name: name, fp: res.Fingerprint, line: line}
	if res.Enrollment != nil {
		m.secret = res.Enrollment.Secret
	}
	return m
}

func sshActor(name, role string) store.Actor {
	return store.Actor{Name: name, Role: role, Channel: store.ChannelSSH, RemoteAddr: "198.51.100.7:50022", SessionID: "sess-" + name}
}

// testTick is what a timer command yields in tests: the harness records
// it instead of waiting.
type testTick struct {
	d  time.Duration
	fn func(time.Time) tea.Msg
}

// harness drives a Model: it runs the commands synchronously until
// nothing is left, records timers and every frame.
type harness struct {
	t      testing.TB
	m      *Model
	clock  *clock
	ticks  []testTick
	quit   bool
	frames []string
	// forget drops frames instead of keeping them (benchmarks).
	forget bool
}

func testRenderer(colour bool) *lipgloss.Renderer {
	r := lipgloss.NewRenderer(io.Discard)
	if colour {
		r.SetColorProfile(termenv.TrueColor)
	} else {
		r.SetColorProfile(termenv.Ascii)
	}
	r.SetHasDarkBackground(true)
	return r
}

func newHarness(t testing.TB, c *clock, o Options) *harness {
	t.Helper()
	if o.Now == nil && c != nil {
		o.Now = c.Now
	}
	if o.Renderer == nil {
		o.Renderer = testRenderer(false)
	}
	h := &harness{t: t, clock: c}
	h.m = New(o)
	h.m.e.tick = func(d time.Duration, fn func(time.Time) tea.Msg) tea.Cmd {
		return func() tea.Msg { return testTick{d: d, fn: fn} }
	}
	h.frame()
	h.run(h.m.Init())
	return h
}

func (h *harness) frame() string {
	v := h.m.View()
	if !h.forget {
		h.frames = append(h.frames, v)
	}
	return v
}

var cmdType = reflect.TypeOf((tea.Cmd)(nil))

// run executes cmd and everything that follows from it.
func (h *harness) run(cmd tea.Cmd) {
	h.t.Helper()
	queue := []tea.Cmd{cmd}
	for n := 0; len(queue) > 0; n++ {
		if n > 10000 {
			h.t.Fatal("commands never settle")
		}
		c := queue[0]
		queue = queue[1:]
		if c == nil {
			continue
		}
		switch msg := c().(type) {
		case nil:
		case tea.BatchMsg:
			queue = append(queue, msg...)
		case testTick:
			h.ticks = append(h.ticks, msg)
		case tea.QuitMsg:
			h.quit = true
		default:
			if v := reflect.ValueOf(msg); v.Kind() == reflect.Slice && v.Type().Elem() == cmdType {
				for i := range v.Len() {
					queue = append(queue, v.Index(i).Interface().(tea.Cmd))
				}
				continue
			}
			queue = append(queue, h.update(msg))
		}
	}
}

func (h *harness) update(msg tea.Msg) tea.Cmd {
	_, cmd := h.m.Update(msg)
	h.frame()
	return cmd
}

// send delivers msg and runs what follows.
func (h *harness) send(msg tea.Msg) {
	h.t.Helper()
	h.run(h.update(msg))
}

func keyMsg(s string) tea.KeyMsg {
	types := map[string]tea.KeyType{
		"enter": tea.KeyEnter, "esc": tea.KeyEsc, "tab": tea.KeyTab, "shift+tab": tea.KeyShiftTab,
		"up": tea.KeyUp, "down": tea.KeyDown, "left": tea.KeyLeft, "right": tea.KeyRight,
		"pgup": tea.KeyPgUp, "pgdown": tea.KeyPgDown, "backspace": tea.KeyBackspace,
		"ctrl+c": tea.KeyCtrlC, "home": tea.KeyHome, "end": tea.KeyEnd,
	}
	if t, ok := types[s]; ok {
		return tea.KeyMsg{Type: t}
	}
	if s == " " {
		return tea.KeyMsg{Type: tea.KeySpace, Runes: []rune{' '}}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)}
}

// keys presses each key in turn.
func (h *harness) keys(ks ...string) {
	h.t.Helper()
	for _, k := range ks {
		h.send(keyMsg(k))
	}
}

// typeText types s one character at a time.
func (h *harness) typeText(s string) {
	h.t.Helper()
	for _, r := range s {
		h.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
}

// paste delivers s as a bracketed paste.
func (h *harness) paste(s string) {
	h.t.Helper()
	h.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s), Paste: true})
}

// view is the current frame without ANSI styles.
func (h *harness) view() string { return ansi.Strip(h.frame()) }

func (h *harness) mustSee(parts ...string) {
	h.t.Helper()
	v := h.view()
	for _, p := range parts {
		if !strings.Contains(v, p) {
			h.t.Fatalf("view lacks %q:\n%s", p, v)
		}
	}
}

func (h *harness) mustNotSee(parts ...string) {
	h.t.Helper()
	v := h.view()
	for _, p := range parts {
		if strings.Contains(v, p) {
			h.t.Fatalf("view shows %q:\n%s", p, v)
		}
	}
}

// checkFits asserts the frame is exactly the terminal's height and no line
// is wider than it.
func (h *harness) checkFits(w, ht int) {
	h.t.Helper()
	v := h.frame()
	lines := strings.Split(v, "\n")
	if len(lines) != ht {
		h.t.Errorf("%dx%d: frame has %d lines:\n%s", w, ht, len(lines), ansi.Strip(v))
	}
	for i, l := range lines {
		if lw := lipgloss.Width(l); lw > w {
			h.t.Errorf("%dx%d: line %d is %d wide: %q", w, ht, i+1, lw, ansi.Strip(l))
		}
	}
}

// statusLine is the frame's status line (second to last).
func (h *harness) statusLine() string {
	lines := strings.Split(h.view(), "\n")
	return lines[len(lines)-2]
}
