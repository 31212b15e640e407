package tui

import (
	"github.com/charmbracelet/bubbles/key"
)

// keyMap holds every binding of the console, built once per session. The
// short help bar and the full help (?) are both made from it.
type keyMap struct {
	// Everywhere.
	Next, Prev  key.Binding
	Screens     key.Binding // 1-N: help entry only (New sets N)
	Help        key.Binding
	Quit        key.Binding
	ForceQuit   key.Binding
	Up, Down    key.Binding
	PageUp      key.Binding
	PageDown    key.Binding
	Top, Bottom key.Binding
	Open, Back  key.Binding
	Search      key.Binding

	// Key screen (the home screen).
	KeyUpdate   key.Binding
	WebLink     key.Binding // one-time web admin sign-in link
	WebPassword key.Binding // set one's own web password

	// Clients screen.
	ClientSort       key.Binding
	ClientSortDir    key.Binding
	ClientLive       key.Binding
	ClientDelinquent key.Binding
	ClientDeleted    key.Binding
	ClientNotes      key.Binding
	ClientForget     key.Binding // admins
	ClientAdd        key.Binding // admins
	ClientLink       key.Binding // admins
	ClientSync       key.Binding // admins start; everyone sees progress
	Save             key.Binding

	// Audit screen.
	FilterActor  key.Binding
	FilterAction key.Binding
	FilterTime   key.Binding
	ClearFilters key.Binding

	// Webhooks screen.
	WebhookStatus   key.Binding
	WebhookType     key.Binding
	WebhookRejected key.Binding
	WebhookEvents   key.Binding // back from the rejected attempts
	WebhookReplay   key.Binding

	// Staff screen.
	StaffAdd       key.Binding
	StaffRemove    key.Binding
	StaffRemoveKey key.Binding
	StaffResetTOTP key.Binding
	StaffUnlock    key.Binding
	StaffRole      key.Binding
	StaffPassword  key.Binding // set a member's web password

	// Sessions screen.
	SessionEnd    key.Binding
	SessionEndAll key.Binding // every session of the member, SSH and web

	// Forms, prompts and inputs.
	Submit    key.Binding
	Cancel    key.Binding
	NextField key.Binding
	PrevField key.Binding
	Toggle    key.Binding
	Cycle     key.Binding
	Yes, No   key.Binding
	ClearIn   key.Binding
}

func newKeyMap() *keyMap {
	b := func(keys []string, k, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(k, desc))
	}
	return &keyMap{
		Next:      b([]string{"tab"}, "tab", "next screen"),
		Prev:      b([]string{"shift+tab"}, "shift+tab", "previous screen"),
		Screens:   b([]string{"1", "2", "3", "4"}, "1-4", "go to screen"),
		Help:      b([]string{"?"}, "?", "help"),
		Quit:      b([]string{"q"}, "q", "quit"),
		ForceQuit: b([]string{"ctrl+c"}, "ctrl+c", "quit (always)"),
		Up:        b([]string{"up", "k"}, "↑/k", "up"),
		Down:      b([]string{"down", "j"}, "↓/j", "down"),
		PageUp:    b([]string{"pgup"}, "pgup", "previous page"),
		PageDown:  b([]string{"pgdown"}, "pgdn", "next page"),
		Top:       b([]string{"g", "home"}, "g", "top / newest"),
		Bottom:    b([]string{"G", "end"}, "G", "bottom / oldest"),
		Open:      b([]string{"enter"}, "enter", "details"),
		Back:      b([]string{"esc"}, "esc", "back / clear"),
		Search:    b([]string{"/"}, "/", "search"),

		KeyUpdate:   b([]string{"u"}, "u", "update key"),
		WebLink:     b([]string{"w"}, "w", "web sign-in link"),
		WebPassword: b([]string{"p"}, "p", "web password"),

		ClientSort:       b([]string{"s"}, "s", "sort name/created/balance"),
		ClientSortDir:    b([]string{"S"}, "S", "reverse sort"),
		ClientLive:       b([]string{"l"}, "l", "live/test/any"),
		ClientDelinquent: b([]string{"d"}, "d", "delinquent only"),
		ClientDeleted:    b([]string{"x"}, "x", "deleted: all/hide/only"),
		ClientNotes:      b([]string{"e"}, "e", "edit notes"),
		ClientForget:     b([]string{"F"}, "F", "forget (erase)"),
		ClientAdd:        b([]string{"n"}, "n", "add client"),
		ClientLink:       b([]string{"L"}, "L", "link from Stripe"),
		ClientSync:       b([]string{"Y"}, "Y", "sync with Stripe"),
		Save:             b([]string{"ctrl+s"}, "ctrl+s", "save"),

		FilterActor:  b([]string{"a"}, "a", "filter actor"),
		FilterAction: b([]string{"A", "c"}, "A/c", "filter action"),
		FilterTime:   b([]string{"t"}, "t", "time range"),
		ClearFilters: b([]string{"x"}, "x", "clear filters"),

		WebhookStatus:   b([]string{"s"}, "s", "status any/failed/processed/ignored"),
		WebhookType:     b([]string{"t"}, "t", "filter type"),
		WebhookRejected: b([]string{"R"}, "R", "rejected attempts"),
		WebhookEvents:   b([]string{"R", "esc"}, "R/esc", "back to events"),
		WebhookReplay:   b([]string{"r"}, "r", "replay"),

		StaffAdd:       b([]string{"n"}, "n", "add staff"),
		StaffRemove:    b([]string{"d"}, "d", "remove staff"),
		StaffRemoveKey: b([]string{"K"}, "K", "remove key"),
		StaffResetTOTP: b([]string{"r"}, "r", "reset TOTP"),
		StaffUnlock:    b([]string{"u"}, "u", "unlock"),
		StaffRole:      b([]string{"p"}, "p", "admin/staff"),
		StaffPassword:  b([]string{"w"}, "w", "set web password"),

		SessionEnd:    b([]string{"x"}, "x", "end session"),
		SessionEndAll: b([]string{"X"}, "X", "end all of member"),

		Submit:    b([]string{"enter"}, "enter", "ok"),
		Cancel:    b([]string{"esc"}, "esc", "cancel"),
		NextField: b([]string{"tab", "down"}, "tab/↓", "next field"),
		PrevField: b([]string{"shift+tab", "up"}, "shift+tab/↑", "previous field"),
		Toggle:    b([]string{" ", "left", "right", "y", "n"}, "space/y/n", "toggle"),
		Cycle:     b([]string{"left", "right"}, "←/→", "cycle actions"),
		Yes:       b([]string{"y", "Y"}, "y", "yes"),
		No:        b([]string{"n", "N", "esc"}, "n/esc", "no"),
		ClearIn:   b([]string{"esc"}, "esc", "clear"),
	}
}

// helpKeys is one context's help: a short line and full columns.
type helpKeys struct {
	short []key.Binding
	full  [][]key.Binding
}

// ShortHelp implements help.KeyMap.
func (h helpKeys) ShortHelp() []key.Binding { return h.short }

// FullHelp implements help.KeyMap.
func (h helpKeys) FullHelp() [][]key.Binding { return h.full }
