package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mdp/qrterminal/v3"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"
	"golang.org/x/term"

	"backroom/store"
	"backroom/store/authkeys"
)

// maxKeyFile bounds what --key reads: a public key is a few KiB at most.
const maxKeyFile = 64 << 10

func newStaffCmd(inv *invocation) *cobra.Command {
	c := groupCmd("staff", "Manage staff: their SSH keys, second factor, role and web password")
	c.AddCommand(
		newStaffAddCmd(inv),
		newStaffListCmd(inv),
		newStaffRemoveCmd(inv),
		newStaffRemoveKeyCmd(inv),
		newStaffResetTOTPCmd(inv),
		newStaffUnlockCmd(inv),
		newStaffSetRoleCmd(inv),
		newStaffSetPasswordCmd(inv),
	)
	return c
}

// enrollmentJSON is the --json output of `staff add` and `staff reset-totp`.
type enrollmentJSON struct {
	Name          string   `json:"name"`
	Role          string   `json:"role"`
	Fingerprint   string   `json:"fingerprint,omitempty"`
	OTPAuthURI    string   `json:"otpauth_uri,omitempty"`
	RecoveryCodes []string `json:"recovery_codes,omitempty"`
}

func newStaffAddCmd(inv *invocation) *cobra.Command {
	var keyArg string
	var admin, enrollAtLogin, asJSON bool
	c := &cobra.Command{
		Use:   "add NAME --key FILE|-",
		Short: "Add a staff member (or another key of an existing one) and print their enrollment",
		Long: `Add a staff member with their SSH public key, or another key to an existing member.

A new member gets a TOTP secret and 10 recovery codes, printed once: a QR code
(when stdout is a terminal), the otpauth:// URI and the base32 secret, then the
recovery codes. With --enroll-at-login nothing is printed and the member sets
up their authenticator at their first login instead.

When there is no admin yet, the member added becomes admin even without
--admin: otherwise nobody could manage staff.

--key reads the public key (the .pub file) from FILE, or from stdin with -.
Accepted key types: ed25519, ecdsa, and RSA of at least 3072 bits.`,
		Example: `  backroom staff add alice --key ~/.ssh/id_ed25519.pub
  backroom staff add bob --key - --enroll-at-login < bob.pub
  backroom staff add carol --key carol.pub --admin --json`,
		Args: exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			name := args[0]
			if keyArg == "" {
				return usageErrorf("--key is required: give the public key file (e.g. --key ~/.ssh/id_ed25519.pub), or - to read it from stdin")
			}
			if err := authkeys.ValidUser(name); err != nil {
				return usageErrorf("%v", err)
			}
			// The configuration is checked before stdin is read.
			cfg, err := inv.config(c)
			if err != nil {
				return err
			}
			key, comment, err := inv.readPublicKey(keyArg)
			if err != nil {
				return err
			}
			e, err := inv.openStore(cfg, openOptions{})
			if err != nil {
				return err
			}
			defer e.close()

			req := store.AddStaffRequest{Name: name, Key: key, Comment: comment, Admin: admin, EnrollAtLogin: enrollAtLogin}
			firstAdmin := false
			keys := e.st.Keys()
			if !admin && len(keys.UserEntries(name)) == 0 && !hasAdmin(keys) {
				req.Admin, firstAdmin = true, true
			}
			res, err := e.st.AddStaff(inv.Ctx, inv.actor(), req)
			if err != nil {
				return e.storeError(err)
			}
			if firstAdmin {
				fmt.Fprintf(inv.Stderr, "note: %s is admin because there was no admin yet (someone must be able to manage staff)\n", name)
			}
			if !res.NewMember && enrollAtLogin {
				fmt.Fprintf(inv.Stderr, "note: --enroll-at-login applies to new members only; %s keeps their authenticator\n", name)
			}
			e.warnKeyProblems()
			if asJSON {
				out := enrollmentJSON{Name: res.Name, Role: res.Role, Fingerprint: res.Fingerprint}
				if res.Enrollment != nil {
					out.OTPAuthURI, out.RecoveryCodes = res.Enrollment.URI, res.Enrollment.RecoveryCodes
				}
				return writeJSON(inv.Stdout, out)
			}
			w := inv.Stdout
			ssh := sshCommand(e.cfg.SSHAddr, name)
			switch {
			case !res.NewMember:
				fmt.Fprintf(w, "Added key %s to %s (%s). Their authenticator and recovery codes are unchanged.\n", res.Fingerprint, name, res.Role)
				fmt.Fprintf(w, "They can log in with it now: %s\n", ssh)
			case res.Enrollment == nil:
				fmt.Fprintf(w, "Added %s as %s with key %s.\n", name, res.Role, res.Fingerprint)
				fmt.Fprintf(w, "%s sets up their authenticator at their first login: %s\n", name, ssh)
				fmt.Fprintf(w, "(after the key, the console shows a QR code and asks for a code from it).\n")
			default:
				fmt.Fprintf(w, "Added %s as %s with key %s.\n\n", name, res.Role, res.Fingerprint)
				printEnrollment(w, res.Enrollment, isTerminal(inv.Stdout))
				fmt.Fprintf(w, "\nNext: %s\n", ssh)
				fmt.Fprintf(w, "  (the key first, then \"Verification code:\" from the authenticator app)\n")
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&keyArg, "key", "", "public key file (.pub), or - for stdin (required)")
	f.BoolVar(&admin, "admin", false, "make the member an admin (may manage staff and sessions)")
	f.BoolVar(&enrollAtLogin, "enroll-at-login", false, "print no enrollment: the member sets up TOTP at their first login")
	f.BoolVar(&asJSON, "json", false, "print one JSON object: name, role, fingerprint, otpauth_uri, recovery_codes")
	return c
}

// hasAdmin reports whether any staff member in f is an admin.
func hasAdmin(f *authkeys.File) bool {
	for _, e := range f.Entries {
		if e.Role == store.RoleAdmin {
			return true
		}
	}
	return false
}

// printEnrollment shows a TOTP enrollment: a QR code when qr, the URI, the
// secret and the recovery codes.
func printEnrollment(w io.Writer, enr *store.Enrollment, qr bool) {
	fmt.Fprintf(w, "Set up the authenticator app now (this is shown only once):\n")
	if qr {
		fmt.Fprintln(w)
		qrterminal.GenerateWithConfig(enr.URI, qrterminal.Config{
			Level:          qrterminal.L,
			Writer:         w,
			HalfBlocks:     true,
			BlackChar:      qrterminal.BLACK_BLACK,
			WhiteBlackChar: qrterminal.WHITE_BLACK,
			WhiteChar:      qrterminal.WHITE_WHITE,
			BlackWhiteChar: qrterminal.BLACK_WHITE,
			QuietZone:      2,
		})
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  URI:     %s\n", enr.URI)
	fmt.Fprintf(w, "  Secret:  %s   (to type in by hand: TOTP, SHA-1, 6 digits, 30 seconds)\n", enr.Secret)
	fmt.Fprintf(w, "\nRecovery codes (each works once, in place of a code; keep them offline):\n")
	for i, c := range enr.RecoveryCodes {
		if i%2 == 0 {
			fmt.Fprintf(w, "  %s", c)
		} else {
			fmt.Fprintf(w, "    %s\n", c)
		}
	}
	if len(enr.RecoveryCodes)%2 == 1 {
		fmt.Fprintln(w)
	}
}

// sshCommand is the command a staff member runs to log in.
func sshCommand(addr, name string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "ssh " + name + "@localhost"
	}
	ip := net.ParseIP(host)
	if host == "" || host == "localhost" || ip != nil && (ip.IsLoopback() || ip.IsUnspecified()) {
		host = "localhost"
	}
	if port == "22" {
		return fmt.Sprintf("ssh %s@%s", name, host)
	}
	return fmt.Sprintf("ssh -p %s %s@%s", port, name, host)
}

// readPublicKey reads and parses the key named by --key: a file, or stdin
// for "-". A private key or a refused key type is a usage error; the data
// read is never shown.
func (inv *invocation) readPublicKey(arg string) (ssh.PublicKey, string, error) {
	var data []byte
	where := "--key " + arg
	if arg == "-" {
		where = "--key - (stdin)"
		if isTerminal(inv.Stdin) {
			fmt.Fprint(inv.Stderr, "Paste the public key (one line, from the .pub file), then press Enter: ")
			line, err := bufio.NewReader(inv.Stdin).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, "", usageErrorf("%s: %v", where, err)
			}
			data = []byte(line)
		} else {
			b, err := io.ReadAll(io.LimitReader(inv.Stdin, maxKeyFile+1))
			if err != nil {
				return nil, "", usageErrorf("%s: %v", where, err)
			}
			data = b
		}
	} else {
		path := inv.abs(expandHome(arg, inv.Env))
		st, err := os.Stat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, "", usageErrorf("%s: no such file: give your SSH public key (e.g. ~/.ssh/id_ed25519.pub; create one with ssh-keygen -t ed25519)", where)
		case err != nil:
			return nil, "", usageErrorf("%s: cannot read it: %v", where, errors.Unwrap(err))
		case st.IsDir():
			return nil, "", usageErrorf("%s: is a directory: give the public key file (.pub)", where)
		case st.Size() > maxKeyFile:
			return nil, "", usageErrorf("%s: is %d bytes, too large for a public key: give the .pub file", where, st.Size())
		}
		data, err = os.ReadFile(path)
		if err != nil {
			return nil, "", usageErrorf("%s: cannot read it: %v", where, errors.Unwrap(err))
		}
	}
	if len(data) > maxKeyFile {
		return nil, "", usageErrorf("%s: more than %d KiB: give one public key line", where, maxKeyFile>>10)
	}
	if bytes.Contains(data, []byte("PRIVATE KEY")) || bytes.HasPrefix(bytes.TrimSpace(data), []byte("PuTTY-User-Key-File")) {
		hint := ""
		if arg != "-" {
			if _, err := os.Stat(inv.abs(expandHome(arg, inv.Env)) + ".pub"); err == nil {
				hint = " (--key " + arg + ".pub)"
			}
		}
		return nil, "", usageErrorf("%s: that is a private key; give the .pub file%s. The private key never leaves your machine", where, hint)
	}
	key, comment, err := authkeys.ParseKey(data)
	if err != nil {
		return nil, "", usageErrorf("%s: %v", where, err)
	}
	return key, comment, nil
}

// expandHome expands a leading ~ or ~/ (the shell does not after --key=).
func expandHome(p string, env map[string]string) string {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p
	}
	home := env["HOME"]
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return p
		}
		home = h
	}
	return filepath.Join(home, strings.TrimPrefix(p, "~"))
}

// warnKeyProblems prints the authorized_keys lines that grant nothing (or
// less than they ask for).
func (e *cmdEnv) warnKeyProblems() {
	for _, p := range e.st.Keys().Problems {
		fmt.Fprintf(e.inv.Stderr, "warning: %s %s\n", e.st.AuthorizedKeysPath(), p.Error())
	}
}

// staffJSON is one line of `staff list --json`.
type staffJSON struct {
	Name         string   `json:"name"`
	Role         string   `json:"role"`
	Fingerprints []string `json:"fingerprints"`
	TOTP         string   `json:"totp"`
	LockedUntil  *string  `json:"locked_until"`
}

func newStaffListCmd(inv *invocation) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "list",
		Short: "List staff: role, keys, second factor, lock",
		Long: `List staff members with their role, key fingerprints, TOTP state and lock.
--json prints one object per line: name, role, fingerprints, totp ("enrolled" or
"pending"), locked_until (RFC 3339 or null). Problems in authorized_keys are
printed to stderr.`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := inv.openEnv(c, openOptions{})
			if err != nil {
				return err
			}
			defer e.close()
			all, err := e.st.ListStaff(inv.Ctx)
			if err != nil {
				return e.storeError(err)
			}
			e.warnKeyProblems()
			if asJSON {
				for _, st := range all {
					out := staffJSON{Name: st.Name, Role: st.Role, Fingerprints: st.Fingerprints(), TOTP: st.TOTP}
					if !st.LockedUntil.IsZero() {
						s := st.LockedUntil.UTC().Format(time.RFC3339)
						out.LockedUntil = &s
					}
					if err := writeJSON(inv.Stdout, out); err != nil {
						return err
					}
				}
				return nil
			}
			if len(all) == 0 {
				fmt.Fprintf(inv.Stderr, "No staff yet. Add someone: %s staff add NAME --key ~/.ssh/id_ed25519.pub\n", inv.Prog)
				return nil
			}
			tw := tabwriter.NewWriter(inv.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROLE\tTOTP\tLOCKED UNTIL\tKEYS")
			for _, st := range all {
				locked := "-"
				if !st.LockedUntil.IsZero() {
					locked = st.LockedUntil.UTC().Format(time.RFC3339)
				}
				keys := []string{"(none)"}
				if len(st.Keys) > 0 {
					keys = keys[:0]
					for _, k := range st.Keys {
						s := k.Fingerprint
						if k.Comment != "" {
							s += " " + k.Comment
						}
						keys = append(keys, s)
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", st.Name, st.Role, st.TOTP, locked, keys[0])
				for _, k := range keys[1:] {
					fmt.Fprintf(tw, "\t\t\t\t%s\n", k)
				}
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON lines")
	return c
}

func newStaffRemoveCmd(inv *invocation) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a staff member: every key, their second factor; their sessions end",
		Args:  exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := inv.openEnv(c, openOptions{})
			if err != nil {
				return err
			}
			defer e.close()
			name := args[0]
			n := len(e.st.Keys().UserEntries(name))
			if err := e.st.RemoveStaff(inv.Ctx, inv.actor(), name); err != nil {
				return e.storeError(err)
			}
			fmt.Fprintf(inv.Stdout, "Removed %s (%d %s). Their live sessions end within 2 seconds.\n", name, n, plural(n, "key", "keys"))
			e.warnKeyProblems()
			return nil
		},
	}
}

func newStaffRemoveKeyCmd(inv *invocation) *cobra.Command {
	return &cobra.Command{
		Use:   "remove-key NAME FINGERPRINT",
		Short: "Remove one key of a staff member (see staff list for fingerprints)",
		Args:  exactArgs("NAME", "FINGERPRINT"),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := inv.openEnv(c, openOptions{})
			if err != nil {
				return err
			}
			defer e.close()
			name, fp := args[0], args[1]
			if !strings.HasPrefix(fp, "SHA256:") {
				fp = "SHA256:" + fp
			}
			if err := e.st.RemoveKey(inv.Ctx, inv.actor(), name, fp); err != nil {
				return e.storeError(err)
			}
			fmt.Fprintf(inv.Stdout, "Removed key %s of %s. Sessions opened with it end within 2 seconds.\n", fp, name)
			e.warnKeyProblems()
			return nil
		},
	}
}

func newStaffResetTOTPCmd(inv *invocation) *cobra.Command {
	var enrollAtLogin, asJSON bool
	c := &cobra.Command{
		Use:   "reset-totp NAME",
		Short: "Give a staff member a new TOTP secret and recovery codes",
		Long: `Replace a staff member's TOTP secret and recovery codes (the old ones stop
working) and print the new enrollment, as staff add does. With --enroll-at-login
nothing is printed: the member sets up a new authenticator at their next login.`,
		Args: exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := inv.openEnv(c, openOptions{})
			if err != nil {
				return err
			}
			defer e.close()
			name := args[0]
			enr, err := e.st.ResetTOTP(inv.Ctx, inv.actor(), name, enrollAtLogin)
			if err != nil {
				return e.storeError(err)
			}
			role := store.RoleStaff
			if st, err := e.st.GetStaff(inv.Ctx, name); err == nil {
				role = st.Role
			}
			if asJSON {
				out := enrollmentJSON{Name: name, Role: role}
				if enr != nil {
					out.OTPAuthURI, out.RecoveryCodes = enr.URI, enr.RecoveryCodes
				}
				return writeJSON(inv.Stdout, out)
			}
			ssh := sshCommand(e.cfg.SSHAddr, name)
			if enr == nil {
				fmt.Fprintf(inv.Stdout, "Reset %s's second factor: the old secret and recovery codes no longer work.\n", name)
				fmt.Fprintf(inv.Stdout, "%s sets up a new authenticator at their next login: %s\n", name, ssh)
				return nil
			}
			fmt.Fprintf(inv.Stdout, "Reset %s's second factor: the old secret and recovery codes no longer work.\n\n", name)
			printEnrollment(inv.Stdout, enr, isTerminal(inv.Stdout))
			fmt.Fprintf(inv.Stdout, "\nNext: %s\n", ssh)
			return nil
		},
	}
	c.Flags().BoolVar(&enrollAtLogin, "enroll-at-login", false, "print no enrollment: the member sets up TOTP at their next login")
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON object: name, role, otpauth_uri, recovery_codes")
	return c
}

func newStaffUnlockCmd(inv *invocation) *cobra.Command {
	return &cobra.Command{
		Use:   "unlock NAME",
		Short: "Lift a staff member's lock after too many wrong codes",
		Args:  exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := inv.openEnv(c, openOptions{})
			if err != nil {
				return err
			}
			defer e.close()
			if err := e.st.Unlock(inv.Ctx, inv.actor(), args[0]); err != nil {
				return e.storeError(err)
			}
			fmt.Fprintf(inv.Stdout, "Unlocked %s (failure count cleared).\n", args[0])
			return nil
		},
	}
}

func newStaffSetRoleCmd(inv *invocation) *cobra.Command {
	return &cobra.Command{
		Use:   "set-role NAME admin|staff",
		Short: "Make a staff member admin or staff (the last admin cannot be demoted)",
		Args:  exactArgs("NAME", "ROLE"),
		RunE: func(c *cobra.Command, args []string) error {
			name, role := args[0], strings.ToLower(args[1])
			if role != store.RoleAdmin && role != store.RoleStaff {
				return usageErrorf("role %q is not valid: use admin or staff", args[1])
			}
			e, err := inv.openEnv(c, openOptions{})
			if err != nil {
				return err
			}
			defer e.close()
			st, err := e.st.GetStaff(inv.Ctx, name)
			if err != nil {
				return e.storeError(err)
			}
			if st.Role == role && len(st.Keys) > 0 {
				fmt.Fprintf(inv.Stdout, "%s is already %s.\n", name, role)
				return nil
			}
			if err := e.st.SetRole(inv.Ctx, inv.actor(), name, role); err != nil {
				return e.storeError(err)
			}
			fmt.Fprintf(inv.Stdout, "%s is now %s.\n", name, role)
			return nil
		},
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func newStaffSetPasswordCmd(inv *invocation) *cobra.Command {
	c := &cobra.Command{
		Use:   "set-password NAME",
		Short: "Set a staff member's web admin password, read from stdin (never from the command line)",
		Long: `Set the password a staff member signs in to the web admin with (followed by a
code from their authenticator). The password is read from stdin: the first line,
or typed twice at a hidden prompt when stdin is a terminal. It is never taken
from the command line, where other users of the machine could see it, and it is
never printed.

It must have at least 12 characters, not be all digits, not be too similar to
the user name and not be in the list of common passwords; a refusal names the
rule (exit 2). An unknown member is exit 1. Staff can also set their own
password from the SSH console (p on the Key screen).`,
		Example: `  backroom staff set-password alice < alice.pw
  pass show backroom/alice | backroom staff set-password alice
  backroom staff set-password alice      # prompts twice, input hidden`,
		Args: exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			name := args[0]
			e, err := inv.openEnv(c, openOptions{})
			if err != nil {
				return err
			}
			defer e.close()
			// Unknown members are refused before anything is typed.
			if _, err := e.st.GetStaff(inv.Ctx, name); err != nil {
				return e.storeError(err)
			}
			pw, err := inv.readNewPassword(name)
			if err != nil {
				return err
			}
			if err := e.st.SetPassword(inv.Ctx, inv.actor(), name, pw); err != nil {
				return e.storeError(err)
			}
			fmt.Fprintf(inv.Stdout, "Set the web password of %s. They sign in to the web admin with it and a code from their authenticator.\n", name)
			return nil
		},
	}
	c.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		// A flag error could quote a password typed as a flag: say nothing of it.
		return usageErrorf("staff set-password takes NAME and no flags but the global ones: pipe the password in on stdin (%s staff set-password NAME < FILE)", inv.Prog)
	})
	return c
}

// readNewPassword reads a new web password for name: typed twice at a
// hidden prompt when stdin is a terminal, otherwise the first line of
// stdin (its line ending removed, nothing else). An empty one is refused.
func (inv *invocation) readNewPassword(name string) (string, error) {
	if f, ok := inv.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		read := func(prompt string) (string, error) {
			fmt.Fprint(inv.Stderr, prompt)
			b, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(inv.Stderr)
			if err != nil {
				return "", usageErrorf("reading the password from the terminal: %v", err)
			}
			return string(b), nil
		}
		pw, err := read("New web password for " + name + " (input hidden): ")
		if err != nil {
			return "", err
		}
		if pw == "" {
			return "", usageErrorf("no password typed; nothing was changed")
		}
		again, err := read("Type it again: ")
		if err != nil {
			return "", err
		}
		if again != pw {
			return "", usageErrorf("the two passwords do not match; nothing was changed")
		}
		return pw, nil
	}
	line, err := bufio.NewReader(io.LimitReader(inv.Stdin, maxSecretInput)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", usageErrorf("reading the password from stdin: %v", err)
	}
	pw := strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if pw == "" {
		return "", usageErrorf("no password on stdin: pipe it in on the first line (%s staff set-password %s < FILE), or run it at a terminal to type it at a hidden prompt; never put it on the command line", inv.Prog, name)
	}
	return pw, nil
}
