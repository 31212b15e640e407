// Package authkeys reads and writes Backroom's authorized_keys file.
//
// The file uses OpenSSH authorized_keys syntax with one public key per line,
// plus a Backroom rule: every line names the staff member it belongs to with
// environment="BACKROOM_USER=<name>". A line may also carry
// environment="BACKROOM_ROLE=admin" (or "=staff", the default), a from="..."
// address list and an expiry-time="...". Any other option makes the line a
// Problem. Options are never read and then ignored, so a restriction someone
// wrote is never silently dropped.
//
// A line that is not fully understood grants nothing. It becomes a Problem
// with its 1-based line number and does not become an Entry.
//
// The package does no I/O and has no package-level mutable state.
package authkeys

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Roles a staff member can have. An entry with no BACKROOM_ROLE is RoleStaff.
const (
	RoleStaff = "staff"
	RoleAdmin = "admin"
)

// utf8BOM is skipped at the start of the input.
const utf8BOM = "\ufeff"

// Environment variables that Backroom reads from the environment= option.
const (
	envUser = "BACKROOM_USER"
	envRole = "BACKROOM_ROLE"
)

// Entry is one accepted line of the file: a key and what it grants.
type Entry struct {
	Line        int           // 1-based line number in the parsed file; 0 for entries built by hand
	User        string        // staff member, from BACKROOM_USER
	Role        string        // RoleStaff or RoleAdmin
	Key         ssh.PublicKey // the public key
	Fingerprint string        // ssh.FingerprintSHA256(Key), "SHA256:..."
	Comment     string        // text after the key, trimmed; may be empty
	From        []string      // from= patterns as written (with any "!"); nil when there is no from= option
	ExpiresAt   time.Time     // from expiry-time=; zero when there is none
}

// Expired reports whether the entry has an expiry time and now is after it.
// As in OpenSSH, the key is still valid at the exact expiry instant.
func (e Entry) Expired(now time.Time) bool {
	return !e.ExpiresAt.IsZero() && now.After(e.ExpiresAt)
}

// CheckAccess returns nil when the entry may be used at time now by a
// client connecting from ip. Otherwise it returns an error saying why not
// (expired, or address not allowed by from=). It combines Expired and
// AllowsFrom so that a caller cannot forget one of them.
func (e Entry) CheckAccess(now time.Time, ip net.IP) error {
	if e.Expired(now) {
		return fmt.Errorf("key %s of %s expired at %s", e.Fingerprint, e.User, e.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if !e.AllowsFrom(ip) {
		return fmt.Errorf("key %s of %s may not be used from %s", e.Fingerprint, e.User, ip)
	}
	return nil
}

// Problem is a line of the file that grants nothing (or less than it
// asks for), with the reason.
type Problem struct {
	Line int    // 1-based line number
	Msg  string // what is wrong, without the line number
}

// Error returns the problem as "line N: message".
func (p Problem) Error() string {
	return "line " + strconv.Itoa(p.Line) + ": " + p.Msg
}

// File is the result of parsing an authorized_keys file. Treat it as
// read-only: its methods only read, so one File may be shared by many
// goroutines, but Entries (and their From slices) are not copied for callers.
type File struct {
	Entries  []Entry   // accepted lines, in file order
	Problems []Problem // rejected or downgraded lines, sorted by line
	Digest   string    // hex SHA-256 of the exact bytes that were parsed
}

// ParseOptions controls Parse.
type ParseOptions struct {
	// Location is the time zone for an expiry-time that has no trailing
	// "Z". Nil means UTC. An expiry-time ending in "Z" is always UTC.
	Location *time.Location
}

// Parse reads an authorized_keys file. It never returns nil and never
// panics. Lines may end in LF or CRLF, and a leading UTF-8 byte order mark
// is skipped. Every line that is not blank, not a comment and not fully
// accepted is reported in Problems, with the first thing wrong on it. If a key appears on more than one
// line, only the first line counts. If one user's lines disagree on the
// role, all of that user's entries get RoleStaff.
func Parse(data []byte, opts ParseOptions) *File {
	loc := opts.Location
	if loc == nil {
		loc = time.UTC
	}
	sum := sha256.Sum256(data)
	f := &File{Digest: hex.EncodeToString(sum[:])}

	seen := make(map[string]int) // fingerprint -> line of the entry that has it
	for i, raw := range bytes.Split(data, []byte("\n")) {
		lineNo := i + 1
		if i == 0 {
			raw = bytes.TrimPrefix(raw, []byte(utf8BOM)) // as some Windows editors write
		}
		text := strings.Trim(string(raw), " \t\r")
		if text == "" || text[0] == '#' {
			continue
		}
		e, err := parseLine(text, loc)
		if err != nil {
			f.Problems = append(f.Problems, Problem{Line: lineNo, Msg: err.Error()})
			continue
		}
		e.Line = lineNo
		if first, dup := seen[e.Fingerprint]; dup {
			f.Problems = append(f.Problems, Problem{
				Line: lineNo,
				Msg:  fmt.Sprintf("key %s already listed on line %d", e.Fingerprint, first),
			})
			continue
		}
		seen[e.Fingerprint] = lineNo
		f.Entries = append(f.Entries, e)
	}

	f.Problems = append(f.Problems, settleRoles(f.Entries)...)
	slices.SortStableFunc(f.Problems, func(a, b Problem) int { return a.Line - b.Line })
	return f
}

// settleRoles sets every entry of a user whose lines disagree on the role
// to RoleStaff and returns one Problem per such user.
func settleRoles(entries []Entry) []Problem {
	byUser := make(map[string][]int)
	var users []string
	for i, e := range entries {
		if _, ok := byUser[e.User]; !ok {
			users = append(users, e.User)
		}
		byUser[e.User] = append(byUser[e.User], i)
	}
	var problems []Problem
	for _, user := range users {
		idx := byUser[user]
		firstRole := entries[idx[0]].Role
		var admin, staff []string
		conflictLine := 0
		for _, i := range idx {
			e := entries[i]
			if e.Role == RoleAdmin {
				admin = append(admin, strconv.Itoa(e.Line))
			} else {
				staff = append(staff, strconv.Itoa(e.Line))
			}
			if conflictLine == 0 && e.Role != firstRole {
				conflictLine = e.Line
			}
		}
		if conflictLine == 0 {
			continue
		}
		for _, i := range idx {
			entries[i].Role = RoleStaff
		}
		problems = append(problems, Problem{
			Line: conflictLine,
			Msg: fmt.Sprintf("user %s has conflicting roles (admin on %s %s; staff on %s %s): every key of %s is treated as staff",
				user, plural("line", len(admin)), strings.Join(admin, ", "),
				plural("line", len(staff)), strings.Join(staff, ", "), user),
		})
	}
	return problems
}

func plural(word string, n int) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// Lookup returns the entry of user whose key is exactly key (compared by
// its wire encoding). It does not check expiry or from=: use
// Entry.CheckAccess on the result.
func (f *File) Lookup(user string, key ssh.PublicKey) (Entry, bool) {
	if f == nil || key == nil {
		return Entry{}, false
	}
	want := key.Marshal()
	for _, e := range f.Entries {
		if e.User == user && e.Key != nil && bytes.Equal(e.Key.Marshal(), want) {
			return e, true
		}
	}
	return Entry{}, false
}

// ByFingerprint returns the entry whose Fingerprint is exactly fp
// (the "SHA256:..." form).
func (f *File) ByFingerprint(fp string) (Entry, bool) {
	if f == nil {
		return Entry{}, false
	}
	for _, e := range f.Entries {
		if e.Fingerprint == fp {
			return e, true
		}
	}
	return Entry{}, false
}

// UserEntries returns the entries of user in file order, or nil.
func (f *File) UserEntries(user string) []Entry {
	if f == nil {
		return nil
	}
	var out []Entry
	for _, e := range f.Entries {
		if e.User == user {
			out = append(out, e)
		}
	}
	return out
}

// Users returns the names of all users that have at least one entry,
// sorted and without duplicates.
func (f *File) Users() []string {
	if f == nil {
		return nil
	}
	var out []string
	for _, e := range f.Entries {
		out = append(out, e.User)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Fingerprints returns the fingerprints of all entries, sorted.
func (f *File) Fingerprints() []string {
	if f == nil {
		return nil
	}
	var out []string
	for _, e := range f.Entries {
		out = append(out, e.Fingerprint)
	}
	slices.Sort(out)
	return out
}

// ValidUser returns nil when name is a valid Backroom user name, and
// otherwise an error that says what a valid name looks like.
func ValidUser(name string) error {
	ok := name != "" && len(name) <= 32
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || c == '.' || c == '-'):
		default:
			ok = false
		}
	}
	if ok {
		return nil
	}
	return fmt.Errorf("user name %s is not valid: a name is 1 to 32 characters, starts with a lowercase letter or '_', and has only lowercase letters, digits, '_', '.' and '-'", show(name))
}

// show returns s as is when it is plain printable ASCII without spaces or
// quotes, and quoted otherwise, so that messages stay on one line.
func show(s string) string {
	if s == "" {
		return `""`
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return strconv.Quote(s)
		}
	}
	return s
}
