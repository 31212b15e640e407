package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"backroom/store/authkeys"
)

// TOTP states shown by staff listings.
const (
	TOTPEnrolled = "enrolled"
	TOTPPending  = "pending"
)

// Staff is one staff member: who they are (from authorized_keys) and the
// state the store keeps for them.
type Staff struct {
	Name          string
	Role          string
	Keys          []authkeys.Entry
	TOTP          string // TOTPEnrolled or TOTPPending
	EnrollAtLogin bool
	Failures      int
	LockedUntil   time.Time // zero when not locked
	CreatedAt     time.Time
}

// Fingerprints lists the SHA256 fingerprints of the member's keys.
func (st Staff) Fingerprints() []string {
	out := make([]string, 0, len(st.Keys))
	for _, k := range st.Keys {
		out = append(out, k.Fingerprint)
	}
	return out
}

// Locked reports whether the member is locked at time now.
func (st Staff) Locked(now time.Time) bool { return now.Before(st.LockedUntil) }

// AuthorizedKeysPath is where the authorized_keys file lives.
func (s *Store) AuthorizedKeysPath() string { return filepath.Join(s.dir, AuthorizedKeysFile) }

// Keys returns the current authorized_keys snapshot.
func (s *Store) Keys() *authkeys.File {
	if f := s.keys.Load(); f != nil {
		return f
	}
	return authkeys.Parse(nil, authkeys.ParseOptions{})
}

// OnKeysRemoved registers fn to be called with the fingerprints that left
// authorized_keys, or whose owner or role changed (by any edit, in this
// process or another).
func (s *Store) OnKeysRemoved(fn func(fingerprints []string)) {
	s.removedMu.Lock()
	defer s.removedMu.Unlock()
	s.onRemoved = append(s.onRemoved, fn)
}

// OnKeyOwnersRemoved registers fn to be called with the names of the
// members who lost a key in authorized_keys, or whose key changed owner,
// role or restrictions (by any edit, in this process or another): their
// web sessions, which belong to no key, end with it.
func (s *Store) OnKeyOwnersRemoved(fn func(names []string)) {
	s.removedMu.Lock()
	defer s.removedMu.Unlock()
	s.onOwnersRemoved = append(s.onOwnersRemoved, fn)
}

// Key lookup failures, for the SSH server's audit reasons.
var (
	ErrUnknownKey     = errors.New("unknown key")
	ErrKeyOtherUser   = errors.New("key belongs to another staff member")
	ErrKeyExpired     = errors.New("key expired (expiry-time)")
	ErrKeyFromRefused = errors.New("connection address not allowed for this key (from=)")
)

// LookupKey finds the authorized_keys entry that lets user log in with key
// from ip. It only says whether the key is acceptable; identity is
// established later, from the key that signed.
func (s *Store) LookupKey(user string, key ssh.PublicKey, ip net.IP) (authkeys.Entry, error) {
	f := s.Keys()
	e, ok := f.ByFingerprint(ssh.FingerprintSHA256(key))
	if !ok || !bytes.Equal(e.Key.Marshal(), key.Marshal()) {
		return authkeys.Entry{}, ErrUnknownKey
	}
	if e.User != user {
		return authkeys.Entry{}, ErrKeyOtherUser
	}
	if e.Expired(s.now()) {
		return authkeys.Entry{}, ErrKeyExpired
	}
	if !e.AllowsFrom(ip) {
		return authkeys.Entry{}, ErrKeyFromRefused
	}
	return e, nil
}

// GetStaff returns one staff member.
func (s *Store) GetStaff(ctx context.Context, name string) (Staff, error) {
	all, err := s.ListStaff(ctx)
	if err != nil {
		return Staff{}, err
	}
	for _, st := range all {
		if st.Name == name {
			return st, nil
		}
	}
	return Staff{}, errorf(CodeNotFound, "no staff member named %q", name)
}

// ListStaff returns every staff member named in authorized_keys or known to
// the store, sorted by name.
func (s *Store) ListStaff(ctx context.Context) ([]Staff, error) {
	f := s.Keys()
	byName := map[string]*Staff{}
	for _, e := range f.Entries {
		st := byName[e.User]
		if st == nil {
			st = &Staff{Name: e.User, Role: e.Role, TOTP: TOTPPending}
			byName[e.User] = st
		}
		st.Keys = append(st.Keys, e)
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT name, totp_secret IS NOT NULL, enroll_at_login, failures, locked_until, created_at FROM staff`)
	if err != nil {
		return nil, fmt.Errorf("store: list staff: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var enrolled, enrollAtLogin bool
		var failures int
		var locked sql.NullInt64
		var created int64
		if err := rows.Scan(&name, &enrolled, &enrollAtLogin, &failures, &locked, &created); err != nil {
			return nil, err
		}
		st := byName[name]
		if st == nil {
			st = &Staff{Name: name, Role: RoleStaff}
			byName[name] = st
		}
		st.TOTP = TOTPPending
		if enrolled {
			st.TOTP = TOTPEnrolled
		}
		st.EnrollAtLogin = enrollAtLogin
		st.Failures = failures
		if locked.Valid && locked.Int64 > s.now().UnixMilli() {
			st.LockedUntil = time.UnixMilli(locked.Int64).UTC()
		}
		st.CreatedAt = time.UnixMilli(created).UTC()
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]Staff, 0, len(byName))
	for _, st := range byName {
		out = append(out, *st)
	}
	slices.SortFunc(out, func(a, b Staff) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// CountLocked is how many staff members are locked now (for the console's
// header).
func (s *Store) CountLocked(ctx context.Context) (int, error) {
	var n int
	err := s.queryRow(ctx, `SELECT count(*) FROM staff WHERE locked_until > ?`, s.now().UnixMilli()).Scan(&n)
	return n, err
}

// AddStaffRequest is the input of AddStaff.
type AddStaffRequest struct {
	Name          string
	Key           ssh.PublicKey
	Comment       string
	Admin         bool
	EnrollAtLogin bool
}

// AddStaffResult is what AddStaff did.
type AddStaffResult struct {
	Name        string
	Role        string
	Fingerprint string
	NewMember   bool
	Enrollment  *Enrollment // nil for another key of an existing member, or with EnrollAtLogin
}

// AddStaff adds a staff member with their first key, or another key to an
// existing member. A new member gets a TOTP secret and recovery codes at
// once, unless EnrollAtLogin defers enrollment to their first login.
func (s *Store) AddStaff(ctx context.Context, a Actor, req AddStaffRequest) (AddStaffResult, error) {
	if err := a.requireAdmin("add staff"); err != nil {
		return AddStaffResult{}, err
	}
	if err := authkeys.ValidUser(req.Name); err != nil {
		return AddStaffResult{}, &Error{Code: CodeInvalid, Msg: err.Error()}
	}
	if req.Key == nil {
		return AddStaffResult{}, errorf(CodeInvalid, "a public key is required")
	}
	if err := authkeys.CheckKeyType(req.Key); err != nil {
		return AddStaffResult{}, &Error{Code: CodeInvalid, Msg: err.Error()}
	}
	fp := ssh.FingerprintSHA256(req.Key)
	role := RoleStaff
	if req.Admin {
		role = RoleAdmin
	}
	res := AddStaffResult{Name: req.Name, Fingerprint: fp}
	err := s.editKeys(ctx, func(tx *wtx, f *authkeys.File) (*keysEdit, error) {
		if e, ok := f.ByFingerprint(fp); ok {
			return nil, errorf(CodeConflict, "key %s is already listed for %s (line %d)", fp, e.User, e.Line)
		}
		existing := f.UserEntries(req.Name)
		hasRow, err := tx.staffExists(ctx, req.Name)
		if err != nil {
			return nil, err
		}
		res.NewMember = len(existing) == 0 && !hasRow
		if len(existing) > 0 {
			current := existing[0].Role
			if req.Admin && current != RoleAdmin {
				return nil, errorf(CodeConflict, "%s is already staff with role %s; change the role with `backroom staff set-role %s admin`", req.Name, current, req.Name)
			}
			role = current
		}
		res.Role = role
		entry := authkeys.Entry{User: req.Name, Role: role, Key: req.Key, Fingerprint: fp, Comment: req.Comment}
		if !hasRow {
			if _, err := tx.ExecContext(ctx, `INSERT INTO staff (name, enroll_at_login, created_at) VALUES (?, ?, ?)`,
				req.Name, req.EnrollAtLogin, s.now().UnixMilli()); err != nil {
				return nil, fmt.Errorf("store: add staff: %w", err)
			}
		}
		if res.NewMember {
			if !req.EnrollAtLogin {
				enr, err := tx.enroll(ctx, req.Name, nil)
				if err != nil {
					return nil, err
				}
				res.Enrollment = enr
			}
			if err := tx.audit(ctx, a, ActionStaffAdded, req.Name, Detail{
				"role": role, "fingerprint": fp, "enroll_at_login": req.EnrollAtLogin,
			}); err != nil {
				return nil, err
			}
		} else if err := tx.audit(ctx, a, ActionStaffKeyAdded, req.Name, Detail{"fingerprint": fp}); err != nil {
			return nil, err
		}
		return &keysEdit{add: []authkeys.Entry{entry}}, nil
	})
	return res, err
}

// RemoveStaff removes a member: every key line and the state the store
// keeps for them. Their live sessions end (see OnKeysRemoved).
func (s *Store) RemoveStaff(ctx context.Context, a Actor, name string) error {
	if err := a.requireAdmin("remove staff"); err != nil {
		return err
	}
	return s.editKeys(ctx, func(tx *wtx, f *authkeys.File) (*keysEdit, error) {
		entries := f.UserEntries(name)
		hasRow, err := tx.staffExists(ctx, name)
		if err != nil {
			return nil, err
		}
		if len(entries) == 0 && !hasRow {
			return nil, errorf(CodeNotFound, "no staff member named %q", name)
		}
		if len(entries) > 0 && entries[0].Role == RoleAdmin && countAdmins(f, "") <= 1 {
			return nil, errorf(CodeConflict, "%s is the last admin and cannot be removed; make another member admin first", name)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM staff WHERE name = ?`, name); err != nil {
			return nil, fmt.Errorf("store: remove staff: %w", err)
		}
		fps := make([]string, 0, len(entries))
		lines := make([]int, 0, len(entries))
		for _, e := range entries {
			fps = append(fps, e.Fingerprint)
			lines = append(lines, e.Line)
		}
		if err := tx.audit(ctx, a, ActionStaffRemoved, name, Detail{"fingerprints": fps}); err != nil {
			return nil, err
		}
		return &keysEdit{removeLines: lines}, nil
	})
}

// RemoveKey removes one key of a member. The last key of the last admin
// cannot be removed. A member left without keys keeps their state until
// removed.
func (s *Store) RemoveKey(ctx context.Context, a Actor, name, fingerprint string) error {
	if err := a.requireAdmin("remove keys"); err != nil {
		return err
	}
	return s.editKeys(ctx, func(tx *wtx, f *authkeys.File) (*keysEdit, error) {
		e, ok := f.ByFingerprint(fingerprint)
		if !ok || e.User != name {
			return nil, errorf(CodeNotFound, "%s has no key %s (see `backroom staff list`)", name, fingerprint)
		}
		if len(f.UserEntries(name)) == 1 {
			if e.Role == RoleAdmin && countAdmins(f, "") <= 1 {
				return nil, errorf(CodeConflict, "that is the last key of the last admin; add another admin first")
			}
		}
		if err := tx.audit(ctx, a, ActionStaffKeyRemoved, name, Detail{"fingerprint": fingerprint}); err != nil {
			return nil, err
		}
		return &keysEdit{removeLines: []int{e.Line}}, nil
	})
}

// SetRole makes a member admin or staff. The last admin cannot be demoted.
func (s *Store) SetRole(ctx context.Context, a Actor, name, role string) error {
	if err := a.requireAdmin("change roles"); err != nil {
		return err
	}
	if role != RoleAdmin && role != RoleStaff {
		return errorf(CodeInvalid, "role %q is not valid (use admin or staff)", role)
	}
	return s.editKeys(ctx, func(tx *wtx, f *authkeys.File) (*keysEdit, error) {
		entries := f.UserEntries(name)
		if len(entries) == 0 {
			return nil, errorf(CodeNotFound, "no staff member named %q with a key", name)
		}
		old := entries[0].Role
		if old == role {
			return nil, errorf(CodeConflict, "%s already has role %s", name, role)
		}
		if old == RoleAdmin && countAdmins(f, "") <= 1 {
			return nil, errorf(CodeConflict, "%s is the last admin and cannot be demoted; make another member admin first", name)
		}
		edit := &keysEdit{}
		for _, e := range entries {
			e.Role = role
			edit.removeLines = append(edit.removeLines, e.Line)
			edit.add = append(edit.add, e)
		}
		if err := tx.audit(ctx, a, ActionStaffRoleChanged, name, Detail{"from": old, "to": role}); err != nil {
			return nil, err
		}
		return edit, nil
	})
}

// Unlock clears a member's lock and failure count.
func (s *Store) Unlock(ctx context.Context, a Actor, name string) error {
	if err := a.requireAdmin("unlock staff"); err != nil {
		return err
	}
	return s.write(ctx, func(tx *wtx) error {
		r, err := tx.ExecContext(ctx, `UPDATE staff SET failures = 0, locked_until = NULL WHERE name = ?`, name)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return errorf(CodeNotFound, "no staff member named %q", name)
		}
		return tx.audit(ctx, a, ActionStaffUnlocked, name, nil)
	})
}

func countAdmins(f *authkeys.File, except string) int {
	n := 0
	for _, u := range f.Users() {
		if u == except {
			continue
		}
		if es := f.UserEntries(u); len(es) > 0 && es[0].Role == RoleAdmin {
			n++
		}
	}
	return n
}

func (tx *wtx) staffExists(ctx context.Context, name string) (bool, error) {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM staff WHERE name = ?`, name).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// --- authorized_keys: edits and reloads -----------------------------------

// keysEdit is a change to the authorized_keys file: lines to drop and
// entries to append. Lines not named are kept byte for byte, comments and
// hand formatting included.
type keysEdit struct {
	removeLines []int
	add         []authkeys.Entry
}

func applyEdit(data []byte, edit *keysEdit) []byte {
	var out bytes.Buffer
	if len(bytes.TrimSpace(data)) == 0 {
		out.Write(authkeys.Format(nil))
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i, line := range lines {
		if len(line) == 0 || slices.Contains(edit.removeLines, i+1) {
			continue
		}
		out.Write(line)
		if !bytes.HasSuffix(line, []byte("\n")) {
			out.WriteByte('\n')
		}
	}
	for _, e := range edit.add {
		for _, l := range bytes.SplitAfter(authkeys.Format([]authkeys.Entry{e}), []byte("\n")) {
			if len(l) > 0 && l[0] != '#' {
				out.Write(l)
			}
		}
	}
	return out.Bytes()
}

const (
	metaKeysDigest = "authorized_keys_digest"
	metaKeysFps    = "authorized_keys_fingerprints"
)

// editKeys runs fn with the current file in a write transaction, writes the
// edited file (temp file + rename, 0600) while the transaction still holds
// the database's write lock, records its digest as acknowledged, and commits.
// Holding the lock across the file write serialises editors in every
// process, so no edit is lost, and lets the watcher tell Backroom's own
// writes from hand edits.
func (s *Store) editKeys(ctx context.Context, fn func(tx *wtx, f *authkeys.File) (*keysEdit, error)) error {
	s.keysMu.Lock()
	var next *authkeys.File
	err := s.write(ctx, func(tx *wtx) error {
		data, err := readKeysFile(s.AuthorizedKeysPath())
		if err != nil {
			return err
		}
		f := authkeys.Parse(data, authkeys.ParseOptions{})
		if err := tx.ackHandEdits(ctx, f); err != nil {
			return err
		}
		edit, err := fn(tx, f)
		if err != nil {
			return err
		}
		newData := applyEdit(data, edit)
		next = authkeys.Parse(newData, authkeys.ParseOptions{})
		if err := tx.setKeysAck(ctx, next); err != nil {
			return err
		}
		if err := WriteFileAtomic(s.AuthorizedKeysPath(), newData); err != nil {
			return fmt.Errorf("store: write %s: %w", s.AuthorizedKeysPath(), err)
		}
		return nil
	})
	if err != nil {
		s.keysMu.Unlock()
		return err
	}
	removed, owners := s.installKeys(next)
	s.keysMu.Unlock()
	s.notifyRemoved(removed, owners)
	return nil
}

func readKeysFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: read %s: %w", path, err)
	}
	return data, nil
}

func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// keyState is what an authorized_keys line grants, as acknowledged.
type keyState struct {
	User    string   `json:"user"`
	Role    string   `json:"role"`
	From    []string `json:"from,omitempty"`
	Expires string   `json:"expires,omitempty"`
}

func (k keyState) same(o keyState) bool {
	return k.User == o.User && k.Role == o.Role && k.Expires == o.Expires && slices.Equal(k.From, o.From)
}

func keyStates(f *authkeys.File) map[string]keyState {
	m := make(map[string]keyState, len(f.Entries))
	for _, e := range f.Entries {
		k := keyState{User: e.User, Role: e.Role, From: e.From}
		if !e.ExpiresAt.IsZero() {
			k.Expires = e.ExpiresAt.UTC().Format(time.RFC3339)
		}
		m[e.Fingerprint] = k
	}
	return m
}

// keyChange is one entry of an authorized_keys.changed audit row.
type keyChange struct {
	Fingerprint string `json:"fingerprint"`
	keyState
}

// ackHandEdits audits the difference between the last acknowledged file and
// f when f was edited by hand (keys added, removed, or granted something
// else: role, from=, expiry-time=), and acknowledges f.
func (tx *wtx) ackHandEdits(ctx context.Context, f *authkeys.File) error {
	var ackDigest, ackKeys string
	_ = tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, metaKeysDigest).Scan(&ackDigest)
	if ackDigest == f.Digest {
		return nil
	}
	_ = tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, metaKeysFps).Scan(&ackKeys)
	before := map[string]keyState{}
	_ = json.Unmarshal([]byte(ackKeys), &before)
	after := keyStates(f)
	added, removed, changed := []keyChange{}, []keyChange{}, []keyChange{}
	for fp, k := range after {
		old, ok := before[fp]
		switch {
		case !ok || old.User != k.User:
			added = append(added, keyChange{fp, k})
		case !old.same(k):
			changed = append(changed, keyChange{fp, k})
		}
	}
	for fp, k := range before {
		if now, ok := after[fp]; !ok || now.User != k.User {
			removed = append(removed, keyChange{fp, k})
		}
	}
	for _, l := range [][]keyChange{added, removed, changed} {
		slices.SortFunc(l, func(a, b keyChange) int {
			return strings.Compare(a.User+" "+a.Fingerprint, b.User+" "+b.Fingerprint)
		})
	}
	problems := make([]string, 0, len(f.Problems))
	for _, p := range f.Problems {
		problems = append(problems, p.Error())
	}
	if len(added)+len(removed)+len(changed)+len(problems) > 0 {
		if err := tx.audit(ctx, System, ActionAuthorizedKeysChanged, AuthorizedKeysFile, Detail{
			"added": added, "removed": removed, "changed": changed, "problems": problems,
		}); err != nil {
			return err
		}
	}
	return tx.setKeysAck(ctx, f)
}

func (tx *wtx) setKeysAck(ctx context.Context, f *authkeys.File) error {
	fps, _ := json.Marshal(keyStates(f))
	for k, v := range map[string]string{metaKeysDigest: f.Digest, metaKeysFps: string(fps)} {
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, k, v); err != nil {
			return err
		}
	}
	return nil
}

// ReloadAuthorizedKeys re-reads the authorized_keys file when it changed.
// A change Backroom did not write itself is audited as
// authorized_keys.changed with the fingerprints added and removed. Keys
// that left the file are reported to the OnKeysRemoved callbacks.
func (s *Store) ReloadAuthorizedKeys(ctx context.Context) error {
	data, err := readKeysFile(s.AuthorizedKeysPath())
	if err != nil {
		return err
	}
	if cur := s.keys.Load(); cur != nil && cur.Digest == digest(data) && !s.keysUnacked.Load() {
		return nil
	}
	s.keysMu.Lock()
	var next *authkeys.File
	err = s.write(ctx, func(tx *wtx) error {
		// Re-read under the write lock: an editor in another process
		// writes the file while it holds this lock.
		data, err := readKeysFile(s.AuthorizedKeysPath())
		if err != nil {
			return err
		}
		if data == nil {
			data = authkeys.Format(nil)
			if err := WriteFileAtomic(s.AuthorizedKeysPath(), data); err != nil {
				return err
			}
		}
		next = authkeys.Parse(data, authkeys.ParseOptions{})
		return tx.ackHandEdits(ctx, next)
	})
	if err != nil && next != nil {
		// The file is what grants access: take it even when its audit row
		// could not be written (removals must not wait), and try the
		// audit again at the next reload.
		s.keysUnacked.Store(true)
		s.log.Error("authorized_keys change not audited yet; will retry", "err", err)
	} else if err == nil {
		s.keysUnacked.Store(false)
	}
	var removed, owners []string
	if next != nil {
		for _, p := range next.Problems {
			s.log.Warn("authorized_keys: line grants nothing", "problem", p.Error())
		}
		removed, owners = s.installKeys(next)
	}
	s.keysMu.Unlock()
	s.notifyRemoved(removed, owners)
	return err
}

// installKeys makes f the current snapshot and returns the fingerprints
// that no longer grant what they did: removed keys, and keys whose owner,
// role or restrictions changed (sessions opened with them carry the old
// grant), with the members who held them.
func (s *Store) installKeys(f *authkeys.File) (removed, owners []string) {
	old := s.keys.Swap(f)
	if old == nil {
		return nil, nil
	}
	now := keyStates(f)
	for fp, k := range keyStates(old) {
		if n, ok := now[fp]; !ok || !n.same(k) {
			removed = append(removed, fp)
			if !slices.Contains(owners, k.User) {
				owners = append(owners, k.User)
			}
		}
	}
	slices.Sort(removed)
	slices.Sort(owners)
	return removed, owners
}

// notifyRemoved calls the OnKeysRemoved and OnKeyOwnersRemoved callbacks
// (never with a lock held).
func (s *Store) notifyRemoved(fps, owners []string) {
	if len(fps) == 0 {
		return
	}
	s.removedMu.Lock()
	fns := slices.Clone(s.onRemoved)
	ownerFns := slices.Clone(s.onOwnersRemoved)
	s.removedMu.Unlock()
	for _, fn := range fns {
		fn(fps)
	}
	for _, fn := range ownerFns {
		fn(owners)
	}
}

// WatchAuthorizedKeys polls the authorized_keys file every interval until
// ctx ends, so hand edits take effect without a restart.
func (s *Store) WatchAuthorizedKeys(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.ReloadAuthorizedKeys(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("authorized_keys reload failed", "err", err)
			}
		}
	}
}
