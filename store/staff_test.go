package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"backroom/store/authkeys"
)

// removals records what OnKeysRemoved reports.
type removals struct {
	mu  sync.Mutex
	fps []string
}

func (r *removals) record(fps []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fps = append(r.fps, fps...)
}

func (r *removals) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.fps
	r.fps = nil
	slices.Sort(out)
	return out
}

func watch(s *Store) *removals {
	r := &removals{}
	s.OnKeysRemoved(r.record)
	return r
}

var loopback = net.ParseIP("127.0.0.1")

func keyLine(t *testing.T, s *Store, k ssh.PublicKey) string {
	t.Helper()
	b64 := strings.Fields(string(ssh.MarshalAuthorizedKey(k)))[1]
	for _, l := range strings.Split(keysFile(t, s), "\n") {
		if strings.Contains(l, b64) {
			return l
		}
	}
	t.Fatalf("no line for key %s", ssh.FingerprintSHA256(k))
	return ""
}

func TestAddStaff(t *testing.T) {
	e := newEnv(t)
	ak, _ := newKey(t)
	res, err := e.s.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: "alice", Key: ak, Admin: true, Comment: "alice@laptop"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.NewMember || res.Role != RoleAdmin || res.Name != "alice" || res.Fingerprint != ssh.FingerprintSHA256(ak) || res.Enrollment == nil {
		t.Fatalf("result %+v", res)
	}
	if len(res.Enrollment.RecoveryCodes) != RecoveryCodes || res.Enrollment.Secret == "" || !strings.HasPrefix(res.Enrollment.URI, "otpauth://totp/") {
		t.Fatalf("enrollment incomplete: %d codes", len(res.Enrollment.RecoveryCodes))
	}
	bk, _ := newKey(t)
	if _, err := e.s.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: "bob", Key: bk}); err != nil {
		t.Fatal(err)
	}

	al := keyLine(t, e.s, ak)
	if !strings.Contains(al, `environment="BACKROOM_USER=alice"`) || !strings.Contains(al, `environment="BACKROOM_ROLE=admin"`) || !strings.HasSuffix(al, " alice@laptop") {
		t.Fatalf("alice's line: %s", al)
	}
	bl := keyLine(t, e.s, bk)
	if !strings.Contains(bl, `environment="BACKROOM_USER=bob"`) || strings.Contains(bl, "BACKROOM_ROLE") {
		t.Fatalf("bob's line: %s", bl)
	}
	if st, _ := os.Stat(e.s.AuthorizedKeysPath()); st.Mode().Perm() != 0o600 {
		t.Fatalf("authorized_keys mode %v", st.Mode().Perm())
	}
	f := authkeys.Parse([]byte(keysFile(t, e.s)), authkeys.ParseOptions{})
	if len(f.Problems) != 0 || len(f.Entries) != 2 {
		t.Fatalf("written file: %d entries, problems %v", len(f.Entries), f.Problems)
	}

	ev := lastFor(t, e.s, ActionStaffAdded, "alice")
	d := detail(t, ev)
	if ev.Actor != "root" || ev.Channel != ChannelCLI || d["fingerprint"] != res.Fingerprint || d["role"] != RoleAdmin {
		t.Fatalf("staff.added row %+v", ev)
	}
	if d := detail(t, lastFor(t, e.s, ActionStaffAdded, "bob")); d["role"] != RoleStaff {
		t.Fatalf("bob's staff.added detail %v", d)
	}

	// Usable at once, by this handle and by a handle opened later.
	for _, s := range []*Store{e.s, e.open()} {
		ent, err := s.LookupKey("alice", ak, loopback)
		if err != nil || ent.Role != RoleAdmin || ent.User != "alice" {
			t.Fatalf("LookupKey(alice): %+v %v", ent, err)
		}
		if ent, err := s.LookupKey("bob", bk, loopback); err != nil || ent.Role != RoleStaff {
			t.Fatalf("LookupKey(bob): %+v %v", ent, err)
		}
	}
	list, err := e.s.ListStaff(ctxb)
	if err != nil || len(list) != 2 || list[0].Name != "alice" || list[1].Name != "bob" {
		t.Fatalf("ListStaff: %+v %v", list, err)
	}
	if list[0].Role != RoleAdmin || list[0].TOTP != TOTPEnrolled || !slices.Equal(list[0].Fingerprints(), []string{res.Fingerprint}) {
		t.Fatalf("alice listed as %+v", list[0])
	}
	if n := len(events(t, e.s, ActionAuthorizedKeysChanged)); n != 0 {
		t.Fatalf("%d authorized_keys.changed rows for Backroom's own edits", n)
	}
}

func TestAddStaffSecondKeyAndConflicts(t *testing.T) {
	e := newEnv(t)
	alice := e.add("alice", true)
	bob := e.add("bob", false)

	k2, _ := newKey(t)
	res, err := e.s.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: "alice", Key: k2})
	if err != nil {
		t.Fatal(err)
	}
	if res.NewMember || res.Enrollment != nil || res.Role != RoleAdmin {
		t.Fatalf("second key: %+v", res)
	}
	ev := lastFor(t, e.s, ActionStaffKeyAdded, "alice")
	if detail(t, ev)["fingerprint"] != res.Fingerprint {
		t.Fatalf("staff.key_added row %+v", ev)
	}
	if len(events(t, e.s, ActionStaffAdded)) != 2 {
		t.Fatal("a second key was audited as staff.added")
	}
	if ent, err := e.s.LookupKey("alice", k2, loopback); err != nil || ent.Role != RoleAdmin {
		t.Fatalf("second key: %+v %v", ent, err)
	}
	if !strings.Contains(keyLine(t, e.s, k2), "BACKROOM_ROLE=admin") {
		t.Fatal("an admin's second key line lacks the admin role")
	}
	if r := e.verify(alice, e.code(alice, 0)); r.Verdict != CodeAccepted {
		t.Fatalf("alice's TOTP after adding a key: %v", r.Verdict)
	}

	file := keysFile(t, e.s)
	n := auditCount(t, e.s)
	unchanged := func(what string) {
		t.Helper()
		if keysFile(t, e.s) != file {
			t.Fatalf("%s changed authorized_keys", what)
		}
		if auditCount(t, e.s) != n {
			t.Fatalf("%s wrote an audit row", what)
		}
	}

	_, err = e.s.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: "alice", Key: alice.key})
	wantCode(t, err, CodeConflict)
	unchanged("the same key twice")
	_, err = e.s.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: "carol", Key: bob.key})
	wantCode(t, err, CodeConflict)
	unchanged("another member's key")
	if _, err := e.s.GetStaff(ctxb, "carol"); ErrorCode(err) != CodeNotFound {
		t.Fatalf("carol exists after a refused add: %v", err)
	}
	_, err = e.s.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: "bob", Key: mustKey(t), Admin: true})
	wantCode(t, err, CodeConflict)
	unchanged("promoting through AddStaff")

	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub, _ := ssh.NewPublicKey(&rk.PublicKey)
	_, err = e.s.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: "dave", Key: rsaPub})
	wantCode(t, err, CodeInvalid)
	if !strings.Contains(ErrorMessage(err), "3072") {
		t.Fatalf("RSA 2048 refusal does not say what is allowed: %q", ErrorMessage(err))
	}
	unchanged("an RSA 2048 key")

	for _, name := range []string{"", "Alice", "a b", "-x", "../etc", "root\n", strings.Repeat("a", 33), `x"y`} {
		_, err = e.s.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: name, Key: mustKey(t)})
		wantCode(t, err, CodeInvalid)
	}
	_, err = e.s.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: "erin"})
	wantCode(t, err, CodeInvalid)
	unchanged("invalid requests")
}

func TestAdminMethodsForbidden(t *testing.T) {
	e := newEnv(t)
	alice := e.add("alice", true)
	e.add("bob", false)
	file := keysFile(t, e.s)
	n := auditCount(t, e.s)
	for _, a := range []Actor{
		sshActor("bob"),
		{Name: "bob", Channel: ChannelCLI},                    // no role
		{Name: "bob", Role: "Admin", Channel: ChannelSSH},     // not the exact role
		{Name: "alice", Role: RoleStaff, Channel: ChannelWeb}, // an admin's name is not enough
	} {
		calls := map[string]error{}
		_, calls["AddStaff"] = e.s.AddStaff(ctxb, a, AddStaffRequest{Name: "mallory", Key: mustKey(t), Admin: true})
		calls["RemoveStaff"] = e.s.RemoveStaff(ctxb, a, "alice")
		calls["RemoveKey"] = e.s.RemoveKey(ctxb, a, "alice", alice.fp)
		calls["SetRole"] = e.s.SetRole(ctxb, a, "bob", RoleAdmin)
		calls["Unlock"] = e.s.Unlock(ctxb, a, "bob")
		_, calls["ResetTOTP"] = e.s.ResetTOTP(ctxb, a, "alice", true)
		var buf bytes.Buffer
		_, calls["ExportAudit"] = e.s.ExportAudit(ctxb, a, &buf, FormatJSONL, AuditQuery{})
		for name, err := range calls {
			if ErrorCode(err) != CodeForbidden {
				t.Errorf("%s by %+v: %v, want forbidden", name, a, err)
			}
		}
		if buf.Len() != 0 {
			t.Errorf("forbidden export wrote %d bytes", buf.Len())
		}
	}
	if keysFile(t, e.s) != file || auditCount(t, e.s) != n {
		t.Fatal("a forbidden call changed something")
	}
	if ls, _ := e.s.LoginState(ctxb, "alice"); !ls.Enrolled {
		t.Fatal("a forbidden ResetTOTP took effect")
	}
}

func TestRemoveStaff(t *testing.T) {
	e := newEnv(t)
	e.add("alice", true)
	bob := e.add("bob", false)
	k2, _ := newKey(t)
	res2, err := e.s.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: "bob", Key: k2})
	if err != nil {
		t.Fatal(err)
	}
	rm := watch(e.s)
	if err := e.s.RemoveStaff(ctxb, cliAdmin, "bob"); err != nil {
		t.Fatal(err)
	}
	want := []string{bob.fp, res2.Fingerprint}
	slices.Sort(want)
	ev := one(t, e.s, ActionStaffRemoved)
	var fps []string
	for _, v := range detail(t, ev)["fingerprints"].([]any) {
		fps = append(fps, v.(string))
	}
	slices.Sort(fps)
	if ev.Target != "bob" || !slices.Equal(fps, want) {
		t.Fatalf("staff.removed row %+v", ev)
	}
	if got := rm.take(); !slices.Equal(got, want) {
		t.Fatalf("OnKeysRemoved got %v, want %v", got, want)
	}
	if strings.Contains(keysFile(t, e.s), "BACKROOM_USER=bob") {
		t.Fatal("bob still in authorized_keys")
	}
	for _, k := range []ssh.PublicKey{bob.key, k2} {
		if _, err := e.s.LookupKey("bob", k, loopback); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("removed key: %v", err)
		}
	}
	if ls, _ := e.s.LoginState(ctxb, "bob"); ls.Exists {
		t.Fatal("bob's state survived RemoveStaff")
	}
	var codes int
	if err := rawDB(t, e.dir).QueryRow(`SELECT count(*) FROM recovery_codes WHERE staff = 'bob'`).Scan(&codes); err != nil || codes != 0 {
		t.Fatalf("bob's recovery codes left: %d %v", codes, err)
	}
	if r := e.verify(bob, e.code(bob, 0)); r.Verdict != CodeNotEnrolled {
		t.Fatalf("removed member's code: %v", r.Verdict)
	}
	wantCode(t, e.s.RemoveStaff(ctxb, cliAdmin, "bob"), CodeNotFound)
	if n := len(events(t, e.s, ActionAuthorizedKeysChanged)); n != 0 {
		t.Fatalf("%d authorized_keys.changed rows", n)
	}
	// Re-adding bob makes a new member with a new secret.
	res, err := e.s.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: "bob", Key: bob.key})
	if err != nil || !res.NewMember || res.Enrollment == nil || res.Enrollment.Secret == bob.enr.Secret {
		t.Fatalf("re-adding bob: %+v %v", res, err)
	}
}

func TestRemoveKey(t *testing.T) {
	e := newEnv(t)
	alice := e.add("alice", true)
	bob := e.add("bob", false)
	k2, _ := newKey(t)
	res2, err := e.s.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: "bob", Key: k2})
	if err != nil {
		t.Fatal(err)
	}
	rm := watch(e.s)
	wantCode(t, e.s.RemoveKey(ctxb, cliAdmin, "alice", bob.fp), CodeNotFound)
	wantCode(t, e.s.RemoveKey(ctxb, cliAdmin, "bob", "SHA256:nope"), CodeNotFound)
	if err := e.s.RemoveKey(ctxb, cliAdmin, "bob", bob.fp); err != nil {
		t.Fatal(err)
	}
	ev := one(t, e.s, ActionStaffKeyRemoved)
	if ev.Target != "bob" || detail(t, ev)["fingerprint"] != bob.fp {
		t.Fatalf("staff.key_removed row %+v", ev)
	}
	if got := rm.take(); !slices.Equal(got, []string{bob.fp}) {
		t.Fatalf("OnKeysRemoved got %v", got)
	}
	if _, err := e.s.LookupKey("bob", bob.key, loopback); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("removed key: %v", err)
	}
	if _, err := e.s.LookupKey("bob", k2, loopback); err != nil {
		t.Fatalf("other key of bob: %v", err)
	}
	if st, _ := e.s.GetStaff(ctxb, "bob"); !slices.Equal(st.Fingerprints(), []string{res2.Fingerprint}) {
		t.Fatalf("bob's keys: %v", st.Fingerprints())
	}
	// Bob's second factor is untouched.
	if r := e.verify(bob, e.code(bob, 0)); r.Verdict != CodeAccepted {
		t.Fatalf("bob's code after a key removal: %v", r.Verdict)
	}
	// The last key of the last admin stays.
	wantCode(t, e.s.RemoveKey(ctxb, cliAdmin, "alice", alice.fp), CodeConflict)
	if _, err := e.s.LookupKey("alice", alice.key, loopback); err != nil {
		t.Fatal(err)
	}
}

func TestLastAdmin(t *testing.T) {
	e := newEnv(t)
	alice := e.add("alice", true)
	bob := e.add("bob", false)
	file := keysFile(t, e.s)

	wantCode(t, e.s.RemoveStaff(ctxb, cliAdmin, "alice"), CodeConflict)
	wantCode(t, e.s.SetRole(ctxb, cliAdmin, "alice", RoleStaff), CodeConflict)
	wantCode(t, e.s.RemoveKey(ctxb, cliAdmin, "alice", alice.fp), CodeConflict)
	if keysFile(t, e.s) != file {
		t.Fatal("a refused last-admin change edited authorized_keys")
	}
	wantCode(t, e.s.SetRole(ctxb, cliAdmin, "bob", "root"), CodeInvalid)
	wantCode(t, e.s.SetRole(ctxb, cliAdmin, "bob", RoleStaff), CodeConflict)
	wantCode(t, e.s.SetRole(ctxb, cliAdmin, "nobody", RoleAdmin), CodeNotFound)

	if err := e.s.SetRole(ctxb, cliAdmin, "bob", RoleAdmin); err != nil {
		t.Fatal(err)
	}
	ev := one(t, e.s, ActionStaffRoleChanged)
	if d := detail(t, ev); ev.Target != "bob" || d["from"] != RoleStaff || d["to"] != RoleAdmin {
		t.Fatalf("staff.role_changed row %+v", ev)
	}
	if !strings.Contains(keyLine(t, e.s, bob.key), "BACKROOM_ROLE=admin") {
		t.Fatal("bob's line lacks the admin role")
	}
	if ent, err := e.s.LookupKey("bob", bob.key, loopback); err != nil || ent.Role != RoleAdmin {
		t.Fatalf("bob after SetRole: %+v %v", ent, err)
	}
	// Two admins: either can now be demoted, not both.
	if err := e.s.SetRole(ctxb, cliAdmin, "alice", RoleStaff); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(keyLine(t, e.s, alice.key), "BACKROOM_ROLE") {
		t.Fatal("alice's line still has a role after demotion")
	}
	wantCode(t, e.s.RemoveStaff(ctxb, cliAdmin, "bob"), CodeConflict)
	if err := e.s.SetRole(ctxb, cliAdmin, "alice", RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if err := e.s.RemoveStaff(ctxb, cliAdmin, "bob"); err != nil {
		t.Fatalf("removing one of two admins: %v", err)
	}
	if err := e.s.RemoveStaff(ctxb, cliAdmin, "alice"); ErrorCode(err) != CodeConflict {
		t.Fatalf("removing the last admin again: %v", err)
	}
	if n := len(events(t, e.s, ActionAuthorizedKeysChanged)); n != 0 {
		t.Fatalf("%d authorized_keys.changed rows", n)
	}
	// Roles rewritten by SetRole kept the comment.
	if !strings.HasSuffix(keyLine(t, e.s, alice.key), " alice@laptop") {
		t.Fatalf("alice's line lost its comment: %s", keyLine(t, e.s, alice.key))
	}
}

func TestHandEdits(t *testing.T) {
	e := newEnv(t)
	e.add("alice", true)
	bob := e.add("bob", false)
	rm := watch(e.s)

	ck, _ := newKey(t)
	data := keysFile(t, e.s)
	bobLine := keyLine(t, e.s, bob.key)
	data = strings.Replace(data, bobLine+"\n", "", 1)
	data += authLine("carol", ck) + "\n"
	if err := os.WriteFile(e.s.AuthorizedKeysPath(), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	// Until reloaded, the snapshot stands.
	if _, err := e.s.LookupKey("carol", ck, loopback); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("carol before reload: %v", err)
	}
	if err := e.s.ReloadAuthorizedKeys(ctxb); err != nil {
		t.Fatal(err)
	}
	ev := one(t, e.s, ActionAuthorizedKeysChanged)
	if ev.Actor != System.Name || ev.Channel != ChannelSystem || ev.Target != AuthorizedKeysFile {
		t.Fatalf("authorized_keys.changed row %+v", ev)
	}
	d := detail(t, ev)
	cfp := ssh.FingerprintSHA256(ck)
	wantAdded := []any{map[string]any{"user": "carol", "role": "staff", "fingerprint": cfp}}
	wantRemoved := []any{map[string]any{"user": "bob", "role": "staff", "fingerprint": bob.fp}}
	if !equalJSON(d["added"], wantAdded) || !equalJSON(d["removed"], wantRemoved) || len(d["problems"].([]any)) != 0 {
		t.Fatalf("detail %s", ev.Detail)
	}
	if got := rm.take(); !slices.Equal(got, []string{bob.fp}) {
		t.Fatalf("OnKeysRemoved got %v, want bob's key", got)
	}
	if _, err := e.s.LookupKey("carol", ck, loopback); err != nil {
		t.Fatalf("carol after reload: %v", err)
	}
	if _, err := e.s.LookupKey("bob", bob.key, loopback); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("bob after reload: %v", err)
	}
	// Reloading again, or reopening, reports nothing new.
	if err := e.s.ReloadAuthorizedKeys(ctxb); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	one(t, e.s, ActionAuthorizedKeysChanged)

	// A member added by hand has no second factor until an admin resets it.
	if ls, _ := e.s.LoginState(ctxb, "carol"); ls.Exists || ls.Enrolled {
		t.Fatalf("carol's state: %+v", ls)
	}
	if st, err := e.s.GetStaff(ctxb, "carol"); err != nil || st.TOTP != TOTPPending || st.Role != RoleStaff {
		t.Fatalf("carol listed as %+v %v", st, err)
	}
	enr, err := e.s.ResetTOTP(ctxb, cliAdmin, "carol", false)
	if err != nil || enr == nil {
		t.Fatalf("ResetTOTP(carol): %v", err)
	}
	carol := member{name: "carol", key: ck, fp: cfp, enr: enr}
	if r := e.verify(carol, e.code(carol, 0)); r.Verdict != CodeAccepted {
		t.Fatalf("carol's code: %v", r.Verdict)
	}

	// Backroom's own edits after that are not hand edits.
	e.add("dave", false)
	one(t, e.s, ActionAuthorizedKeysChanged)

	// Deleting the file removes everyone, audited.
	if err := os.Remove(e.s.AuthorizedKeysPath()); err != nil {
		t.Fatal(err)
	}
	rm = watch(e.s)
	if err := e.s.ReloadAuthorizedKeys(ctxb); err != nil {
		t.Fatal(err)
	}
	evs := events(t, e.s, ActionAuthorizedKeysChanged)
	if len(evs) != 2 || len(detail(t, evs[1])["removed"].([]any)) != 3 {
		t.Fatalf("after deleting the file: %d rows, last %s", len(evs), evs[len(evs)-1].Detail)
	}
	if got := rm.take(); len(got) != 3 {
		t.Fatalf("OnKeysRemoved after deleting the file: %v", got)
	}
	if st, _ := os.Stat(e.s.AuthorizedKeysPath()); st == nil || st.Mode().Perm() != 0o600 {
		t.Fatal("authorized_keys not recreated 0600")
	}
	mustVerifyAudit(t, e.s)
}

func equalJSON(got any, want []any) bool {
	g, ok := got.([]any)
	if !ok || len(g) != len(want) {
		return false
	}
	for i := range g {
		gm, _ := g[i].(map[string]any)
		wm := want[i].(map[string]any)
		if len(gm) != len(wm) {
			return false
		}
		for k, v := range wm {
			if gm[k] != v {
				return false
			}
		}
	}
	return true
}

// TestEditsBySecondHandle: the CLI (a second handle, i.e. another process)
// edits the file; the server's handle picks it up without calling it a hand
// edit, and still reports removed keys.
func TestEditsBySecondHandle(t *testing.T) {
	e := newEnv(t)
	e.add("alice", true)
	server := e.s
	rm := watch(server)
	cli := e.open()

	bk, _ := newKey(t)
	if _, err := cli.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: "bob", Key: bk}); err != nil {
		t.Fatal(err)
	}
	if err := server.ReloadAuthorizedKeys(ctxb); err != nil {
		t.Fatal(err)
	}
	if _, err := server.LookupKey("bob", bk, loopback); err != nil {
		t.Fatalf("bob on the server after the CLI added him: %v", err)
	}
	if err := cli.RemoveStaff(ctxb, cliAdmin, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := server.ReloadAuthorizedKeys(ctxb); err != nil {
		t.Fatal(err)
	}
	if _, err := server.LookupKey("bob", bk, loopback); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("bob on the server after the CLI removed him: %v", err)
	}
	if got := rm.take(); !slices.Equal(got, []string{ssh.FingerprintSHA256(bk)}) {
		t.Fatalf("server's OnKeysRemoved got %v", got)
	}
	if n := len(events(t, server, ActionAuthorizedKeysChanged)); n != 0 {
		t.Fatalf("%d authorized_keys.changed rows for CLI edits", n)
	}

	// A CLI edit followed by a hand edit: only the hand edit is reported.
	ck, _ := newKey(t)
	if _, err := cli.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: "carol", Key: ck}); err != nil {
		t.Fatal(err)
	}
	hk, _ := newKey(t)
	f, err := os.OpenFile(server.AuthorizedKeysPath(), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(authLine("henry", hk) + "\n")
	f.Close()
	if err := server.ReloadAuthorizedKeys(ctxb); err != nil {
		t.Fatal(err)
	}
	ev := one(t, server, ActionAuthorizedKeysChanged)
	d := detail(t, ev)
	if !equalJSON(d["added"], []any{map[string]any{"user": "henry", "role": "staff", "fingerprint": ssh.FingerprintSHA256(hk)}}) || len(d["removed"].([]any)) != 0 {
		t.Fatalf("detail %s: want only henry added", ev.Detail)
	}
	// The CLI handle, editing next, does not report the hand edit again.
	if _, err := cli.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: "ivan", Key: mustKey(t)}); err != nil {
		t.Fatal(err)
	}
	one(t, server, ActionAuthorizedKeysChanged)
	mustVerifyAudit(t, server)
}

// TestHandEditBeforeBackroomEdit: a hand edit that nobody reloaded yet is
// reported by the next Backroom edit, in its transaction.
func TestHandEditBeforeBackroomEdit(t *testing.T) {
	e := newEnv(t)
	e.add("alice", true)
	hk, _ := newKey(t)
	f, _ := os.OpenFile(e.s.AuthorizedKeysPath(), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(authLine("henry", hk, `environment="BACKROOM_ROLE=admin"`) + "\n")
	f.Close()
	e.add("bob", false)
	ev := one(t, e.s, ActionAuthorizedKeysChanged)
	if !equalJSON(detail(t, ev)["added"], []any{map[string]any{"user": "henry", "role": "admin", "fingerprint": ssh.FingerprintSHA256(hk)}}) {
		t.Fatalf("detail %s", ev.Detail)
	}
	// The hand-added admin counts as an admin.
	if err := e.s.SetRole(ctxb, cliAdmin, "alice", RoleStaff); err != nil {
		t.Fatalf("demoting alice with henry as admin: %v", err)
	}
}

func TestMalformedLinesGrantNothing(t *testing.T) {
	e := newEnv(t)
	e.add("alice", true)
	keys := make([]ssh.PublicKey, 5)
	for i := range keys {
		keys[i], _ = newKey(t)
	}
	b64 := func(k ssh.PublicKey) string { return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) }
	before := strings.Count(keysFile(t, e.s), "\n")
	bad := []string{
		`environment="BACKROOM_USER=mallory",command="/bin/sh" ` + b64(keys[0]),
		b64(keys[1]) + " trudy@nowhere",
		`environment="BACKROOM_USER=eve",environment="BACKROOM_ROLE=root" ` + b64(keys[2]),
		`environment="BACKROOM_USER=oscar",no-pty ` + b64(keys[3]),
		`environment="BACKROOM_USER=peggy",from="example.com" ` + b64(keys[4]),
	}
	f, _ := os.OpenFile(e.s.AuthorizedKeysPath(), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(strings.Join(bad, "\n") + "\n")
	f.Close()
	if err := e.s.ReloadAuthorizedKeys(ctxb); err != nil {
		t.Fatal(err)
	}
	users := []string{"mallory", "trudy", "eve", "oscar", "peggy"}
	for i, k := range keys {
		if _, err := e.s.LookupKey(users[i], k, loopback); !errors.Is(err, ErrUnknownKey) {
			t.Errorf("malformed line %d grants %s: %v", i+1, users[i], err)
		}
	}
	ev := one(t, e.s, ActionAuthorizedKeysChanged)
	d := detail(t, ev)
	problems := d["problems"].([]any)
	if len(problems) != len(bad) || len(d["added"].([]any)) != 0 {
		t.Fatalf("detail %s", ev.Detail)
	}
	for i, p := range problems {
		if want := "line " + strconv.Itoa(before+i+1) + ":"; !strings.HasPrefix(p.(string), want) {
			t.Errorf("problem %q does not start with %q", p, want)
		}
	}
	if !strings.Contains(problems[0].(string), "command") {
		t.Errorf("problem for command= does not name it: %q", problems[0])
	}
	list, _ := e.s.ListStaff(ctxb)
	if len(list) != 1 {
		t.Fatalf("ListStaff after malformed lines: %+v", list)
	}
}

func TestCommentsSurviveEdits(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := EnsureDir(dir); err != nil {
		t.Fatal(err)
	}
	ak, _ := newKey(t)
	zk, _ := newKey(t)
	original := "# Our staff keys: edit with care\n" +
		"\n" +
		"   \n" +
		"# alice (laptop)\n" +
		`environment="BACKROOM_USER=alice",environment="BACKROOM_ROLE=admin"   ` + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ak))) + "   alice@laptop  \n" +
		"\t# indented comment, then a line that grants nothing\n" +
		"this line is garbage\r\n" +
		authLine("zed", zk) + "\n"
	path := filepath.Join(dir, AuthorizedKeysFile)
	if err := os.WriteFile(path, []byte(original), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, mk: NewMasterKey(), clock: newClock()}
	e.s = e.open()
	if _, err := e.s.LookupKey("alice", ak, loopback); err != nil {
		t.Fatalf("hand-written alice: %v", err)
	}

	bk, _ := newKey(t)
	if _, err := e.s.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: "bob", Key: bk}); err != nil {
		t.Fatal(err)
	}
	got := keysFile(t, e.s)
	if !strings.HasPrefix(got, original) {
		t.Fatalf("AddStaff did not keep the file byte for byte:\n%q\nthen\n%q", original, got)
	}
	if err := e.s.RemoveStaff(ctxb, cliAdmin, "bob"); err != nil {
		t.Fatal(err)
	}
	if got := keysFile(t, e.s); got != original {
		t.Fatalf("add then remove did not restore the file:\n%q\n%q", original, got)
	}
	if err := e.s.RemoveStaff(ctxb, cliAdmin, "zed"); err != nil {
		t.Fatal(err)
	}
	if got, want := keysFile(t, e.s), strings.Replace(original, authLine("zed", zk)+"\n", "", 1); got != want {
		t.Fatalf("removing zed touched other lines:\n%q\n%q", want, got)
	}

	// A file whose last line has no newline.
	noNL := strings.TrimSuffix(keysFile(t, e.s), "\n") + "\n# trailing comment without newline"
	if err := os.WriteFile(path, []byte(noNL), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: "carol", Key: mustKey(t)}); err != nil {
		t.Fatal(err)
	}
	got = keysFile(t, e.s)
	if !strings.HasPrefix(got, noNL+"\n") || strings.Count(got, "BACKROOM_USER=carol") != 1 {
		t.Fatalf("edit of a file without a final newline:\n%q", got)
	}
	if ent, err := e.s.LookupKey("carol", keysOf(t, e.s, "carol")[0].Key, loopback); err != nil || ent.User != "carol" {
		t.Fatalf("carol: %v", err)
	}
}

func keysOf(t *testing.T, s *Store, user string) []authkeys.Entry {
	t.Helper()
	es := s.Keys().UserEntries(user)
	if len(es) == 0 {
		t.Fatalf("%s has no keys", user)
	}
	return es
}

func TestLookupKeyErrors(t *testing.T) {
	e := newEnv(t)
	alice := e.add("alice", true)
	stranger, _ := newKey(t)
	if _, err := e.s.LookupKey("alice", stranger, loopback); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := e.s.LookupKey("bob", alice.key, loopback); !errors.Is(err, ErrKeyOtherUser) {
		t.Fatalf("alice's key for bob: %v", err)
	}

	expiry := e.clock.Now().Add(time.Hour)
	dk, _ := newKey(t)
	fk, _ := newKey(t)
	f, _ := os.OpenFile(e.s.AuthorizedKeysPath(), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(authLine("dave", dk, `expiry-time="`+expiry.Format("20060102150405")+`Z"`) + "\n")
	f.WriteString(authLine("fay", fk, `from="10.0.0.0/8,!10.9.9.9,2001:db8::/32"`) + "\n")
	f.Close()
	if err := e.s.ReloadAuthorizedKeys(ctxb); err != nil {
		t.Fatal(err)
	}

	if _, err := e.s.LookupKey("dave", dk, loopback); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	e.clock.Set(expiry)
	if _, err := e.s.LookupKey("dave", dk, loopback); err != nil {
		t.Fatalf("at the expiry instant: %v", err)
	}
	e.clock.Set(expiry.Add(time.Second))
	if _, err := e.s.LookupKey("dave", dk, loopback); !errors.Is(err, ErrKeyExpired) {
		t.Fatalf("after expiry: %v", err)
	}

	for ip, want := range map[string]error{
		"10.1.2.3":    nil,
		"10.9.9.9":    ErrKeyFromRefused,
		"192.0.2.1":   ErrKeyFromRefused,
		"127.0.0.1":   ErrKeyFromRefused,
		"2001:db8::1": nil,
		"2001:db9::1": ErrKeyFromRefused,
	} {
		if _, err := e.s.LookupKey("fay", fk, net.ParseIP(ip)); !errors.Is(err, want) {
			t.Errorf("fay from %s: %v, want %v", ip, err, want)
		}
	}
	if _, err := e.s.LookupKey("fay", fk, nil); !errors.Is(err, ErrKeyFromRefused) {
		t.Errorf("fay from an unknown address: %v", err)
	}
	// The user check comes first: a key of another member is that, wherever from.
	if _, err := e.s.LookupKey("dave", fk, net.ParseIP("10.1.2.3")); !errors.Is(err, ErrKeyOtherUser) {
		t.Errorf("fay's key for dave: %v", err)
	}
}

func TestWatchAuthorizedKeys(t *testing.T) {
	e := newEnv(t)
	bob := e.add("bob", true)
	e.add("alice", true)
	rm := watch(e.s)
	ctx, cancel := context.WithCancel(ctxb)
	done := make(chan struct{})
	go func() { e.s.WatchAuthorizedKeys(ctx, 5*time.Millisecond); close(done) }()

	data := strings.Replace(keysFile(t, e.s), keyLine(t, e.s, bob.key)+"\n", "", 1)
	if err := os.WriteFile(e.s.AuthorizedKeysPath(), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := e.s.LookupKey("bob", bob.key, loopback); errors.Is(err, ErrUnknownKey) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the watcher did not pick up the removal within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if got := rm.take(); !slices.Equal(got, []string{bob.fp}) {
		t.Fatalf("OnKeysRemoved got %v", got)
	}
	one(t, e.s, ActionAuthorizedKeysChanged)
}

// TestCommentCannotAddALine: a comment with line breaks stays one line.
func TestCommentCannotAddALine(t *testing.T) {
	e := newEnv(t)
	e.add("alice", true)
	mk := mustKey(t)
	evil := "bob@laptop\n" + authLine("mallory", mk, `environment="BACKROOM_ROLE=admin"`) + "\r\n# x"
	bk := mustKey(t)
	if _, err := e.s.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: "bob", Key: bk, Comment: evil}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.LookupKey("mallory", mk, loopback); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("a comment smuggled in a key for mallory: %v", err)
	}
	if ent, err := e.s.LookupKey("bob", bk, loopback); err != nil || ent.Role != RoleStaff {
		t.Fatalf("bob: %+v %v", ent, err)
	}
	f := authkeys.Parse([]byte(keysFile(t, e.s)), authkeys.ParseOptions{})
	if len(f.Entries) != 2 || len(f.Problems) != 0 {
		t.Fatalf("file now has %d entries, problems %v", len(f.Entries), f.Problems)
	}
}

// TestSetRoleKeepsRestrictions: rewriting a line for a role change keeps
// its from= and expiry-time=.
func TestSetRoleKeepsRestrictions(t *testing.T) {
	e := newEnv(t)
	e.add("alice", true)
	bk := mustKey(t)
	expiry := e.clock.Now().Add(time.Hour)
	f, _ := os.OpenFile(e.s.AuthorizedKeysPath(), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(authLine("bob", bk, `from="10.0.0.0/8"`, `expiry-time="`+expiry.Format("200601021504")+`Z"`) + "\n")
	f.Close()
	if err := e.s.ReloadAuthorizedKeys(ctxb); err != nil {
		t.Fatal(err)
	}
	if err := e.s.SetRole(ctxb, cliAdmin, "bob", RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if ent, err := e.s.LookupKey("bob", bk, net.ParseIP("10.0.0.1")); err != nil || ent.Role != RoleAdmin {
		t.Fatalf("bob from 10.0.0.1: %+v %v", ent, err)
	}
	if _, err := e.s.LookupKey("bob", bk, loopback); !errors.Is(err, ErrKeyFromRefused) {
		t.Fatalf("from= lost by SetRole: %v", err)
	}
	e.clock.Set(expiry.Add(time.Second))
	if _, err := e.s.LookupKey("bob", bk, net.ParseIP("10.0.0.1")); !errors.Is(err, ErrKeyExpired) {
		t.Fatalf("expiry-time lost by SetRole: %v", err)
	}
}

func TestPing(t *testing.T) {
	e := newEnv(t)
	n := auditCount(t, e.s)
	if err := e.s.Ping(ctxb); err != nil {
		t.Fatal(err)
	}
	if auditCount(t, e.s) != n {
		t.Fatal("Ping wrote an audit row")
	}
	e.s.Close()
	if err := e.s.Ping(ctxb); err == nil {
		t.Fatal("Ping on a closed store succeeded")
	}
}

// TestHandEditRoleChange: granting admin by hand is audited as a change,
// and the key counts as removed for live sessions (they carry the old role).
func TestHandEditRoleChange(t *testing.T) {
	e := newEnv(t)
	e.add("alice", true)
	bob := e.add("bob", false)
	rm := &removals{}
	e.s.OnKeysRemoved(rm.record)
	data, err := os.ReadFile(e.s.AuthorizedKeysPath())
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(data), `environment="BACKROOM_USER=bob"`, `environment="BACKROOM_USER=bob",environment="BACKROOM_ROLE=admin"`, 1)
	if edited == string(data) {
		t.Fatal("bob's line not found")
	}
	if err := os.WriteFile(e.s.AuthorizedKeysPath(), []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.s.ReloadAuthorizedKeys(ctxb); err != nil {
		t.Fatal(err)
	}
	d := detail(t, one(t, e.s, ActionAuthorizedKeysChanged))
	if !equalJSON(d["changed"], []any{map[string]any{"user": "bob", "role": "admin", "fingerprint": bob.fp}}) || len(d["added"].([]any)) != 0 {
		t.Fatalf("role change not audited as changed: %v", d)
	}
	if got := rm.take(); !slices.Equal(got, []string{bob.fp}) {
		t.Fatalf("OnKeysRemoved got %v, want bob's key", got)
	}
}
