package store

// Roles.
const (
	RoleStaff = "staff"
	RoleAdmin = "admin"
)

// Channels through which an actor acts.
const (
	ChannelSSH    = "ssh"
	ChannelCLI    = "cli"
	ChannelWeb    = "web"
	ChannelSystem = "system"
)

// Actor is who does something, and through what. Every method that changes
// something takes one: it decides what is allowed and fills the audit row.
type Actor struct {
	Name       string // staff name, or the OS user for the CLI
	Role       string // RoleStaff or RoleAdmin
	Channel    string // ChannelSSH, ChannelCLI, ChannelWeb or ChannelSystem
	RemoteAddr string
	SessionID  string
}

// IsAdmin reports whether the actor may manage staff, sessions and exports.
// The CLI runs with access to the data directory and is trusted as admin.
func (a Actor) IsAdmin() bool { return a.Role == RoleAdmin }

// System is the actor for what Backroom does on its own (file watcher,
// start-up).
var System = Actor{Name: "backroom", Role: RoleAdmin, Channel: ChannelSystem}

func (a Actor) requireAdmin(what string) error {
	if !a.IsAdmin() {
		return errorf(CodeForbidden, "only an admin may %s", what)
	}
	return nil
}
