package store

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zalando/go-keyring"
)

const (
	body24   = "AbCdEfGhIjKlMnOpQrStUv12" // 24 letters and digits
	testKey  = "sk_test_" + body24 + "wxyz"
	liveKey  = "sk_live_51Hx" + body24 + "Live"
	rTestKey = "rk_test_" + body24
	rLiveKey = "rk_live_" + body24 + body24
)

func TestParseStripeKey(t *testing.T) {
	good := []struct {
		in, key, mode, kind, masked, badge string
	}{
		{testKey, testKey, ModeTest, KindSecret, "sk_test_...wxyz", "TEST"},
		{liveKey, liveKey, ModeLive, KindSecret, "sk_live_...Live", "LIVE"},
		{rTestKey, rTestKey, ModeTest, KindRestricted, "rk_test_...Uv12", "TEST·R"},
		{rLiveKey, rLiveKey, ModeLive, KindRestricted, "rk_live_...Uv12", "LIVE·R"},
		{"  \t" + testKey + "\r\n", testKey, ModeTest, KindSecret, "sk_test_...wxyz", "TEST"},
	}
	for _, tc := range good {
		key, info, err := ParseStripeKey(tc.in)
		if err != nil {
			t.Errorf("ParseStripeKey(%q): %v", tc.in, err)
			continue
		}
		if key != tc.key || info.Mode != tc.mode || info.Kind != tc.kind || info.Masked != tc.masked || info.Badge() != tc.badge {
			t.Errorf("ParseStripeKey(%q) = %q %+v badge %s", tc.in, key, info, info.Badge())
		}
	}

	expected := func(msg string) bool {
		return strings.Contains(msg, "sk_test_") && strings.Contains(msg, "sk_live_") &&
			strings.Contains(msg, "rk_test_") && strings.Contains(msg, "rk_live_") && strings.Contains(msg, "24")
	}
	bad := []struct {
		name, in string
		says     func(string) bool
	}{
		{"23 characters", "sk_test_" + body24[:23], expected},
		{"publishable test", "pk_test_" + body24, func(m string) bool { return strings.Contains(m, "publishable key") }},
		{"publishable live", " pk_live_" + body24 + " ", func(m string) bool { return strings.Contains(m, "publishable key") }},
		{"unknown mode", "sk_prod_" + body24, expected},
		{"webhook secret", "whsec_" + body24, expected},
		{"capitals", "SK_TEST_" + body24, expected},
		{"dash inside", "sk_test_" + body24[:12] + "-" + body24[12:], expected},
		{"space inside", "sk_test_" + body24[:12] + " " + body24[12:], expected},
		{"newline inside", "sk_test_" + body24[:12] + "\n" + body24[12:], expected},
		{"non-ASCII letters", "sk_test_" + strings.Repeat("ä", 24), expected},
		{"NUL", "sk_test_" + body24 + "\x00", expected},
		{"two keys", testKey + " " + liveKey, expected},
		{"empty", "  \n", func(m string) bool { return strings.Contains(m, "empty") }},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			key, info, err := ParseStripeKey(tc.in)
			if err == nil {
				t.Fatalf("accepted as %q %+v", key, info)
			}
			if ErrorCode(err) != CodeInvalid {
				t.Errorf("code %s", ErrorCode(err))
			}
			msg := ErrorMessage(err)
			if !tc.says(msg) {
				t.Errorf("message %q does not say what is expected", msg)
			}
			for _, m := range []string{msg, err.Error()} {
				if strings.Contains(m, body24[:12]) || strings.Contains(m, body24[12:]) || (strings.TrimSpace(tc.in) != "" && strings.Contains(m, strings.TrimSpace(tc.in))) {
					t.Errorf("error reveals the input: %q", m)
				}
			}
		})
	}
}

func TestMaskStripeKey(t *testing.T) {
	for in, want := range map[string]string{
		"sk_live_" + body24 + "abcd": "sk_live_...abcd",
		"rk_test_" + body24:          "rk_test_...Uv12",
		"sk_test_x":                  "...",
		"":                           "...",
		"nounderscoresatallhere":     "...",
		"one_underscore_only":        "one_underscore_...only",
	} {
		got := MaskStripeKey(in)
		if got != want {
			t.Errorf("MaskStripeKey(%q) = %q, want %q", in, got, want)
		}
	}
	if none := (KeyStatus{Source: SourceNone}); none.Badge() != "NONE" {
		t.Fatalf("badge without a key: %s", none.Badge())
	}
}

func TestSetStripeKeyFromCLI(t *testing.T) {
	e := newEnv(t)
	st, err := e.s.KeyStatus(ctxb)
	if err != nil || st.Source != SourceNone || st.Badge() != "NONE" || st.Storage != SourceDatabase {
		t.Fatalf("status with no key: %+v %v", st, err)
	}
	if _, ok, err := e.s.StripeKey(ctxb); ok || err != nil {
		t.Fatalf("StripeKey with none set: ok=%v err=%v", ok, err)
	}

	st, err = e.s.SetStripeKey(ctxb, cliAdmin, SetKeyRequest{Key: "\n" + testKey + "  \n"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Source != SourceDatabase || st.Mode != ModeTest || st.Kind != KindSecret || st.Masked != "sk_test_...wxyz" ||
		st.SetBy != "root" || !st.SetAt.Equal(e.clock.Now()) || st.Shadowed || st.Badge() != "TEST" {
		t.Fatalf("status after set: %+v", st)
	}
	if got, ok, err := e.s.StripeKey(ctxb); err != nil || !ok || got != testKey {
		t.Fatalf("StripeKey: ok=%v err=%v (trimmed=%v)", ok, err, got == testKey)
	}
	ev := one(t, e.s, ActionKeyUpdated)
	d := detail(t, ev)
	if ev.Actor != "root" || ev.Channel != ChannelCLI || d["new"] != "sk_test_...wxyz" || d["old"] != nil ||
		d["mode"] != ModeTest || d["storage"] != SourceDatabase || d["step_up"] != nil {
		t.Fatalf("key.updated row %+v", ev)
	}

	// A live key from the CLI needs no confirmation; the old masked key is
	// recorded.
	e.clock.Add(time.Minute)
	st, err = e.s.SetStripeKey(ctxb, cliAdmin, SetKeyRequest{Key: liveKey})
	if err != nil || st.Mode != ModeLive || st.Badge() != "LIVE" || !st.SetAt.Equal(e.clock.Now()) {
		t.Fatalf("live key from the CLI: %+v %v", st, err)
	}
	evs := events(t, e.s, ActionKeyUpdated)
	if d := detail(t, evs[1]); d["old"] != "sk_test_...wxyz" || d["new"] != "sk_live_...Live" {
		t.Fatalf("second key.updated detail %v", d)
	}
	for _, ev := range allEvents(t, e.s) {
		row := strings.Join([]string{ev.Actor, ev.Action, ev.Target, ev.Detail, ev.RemoteAddr, ev.SessionID}, "|")
		if strings.Contains(row, body24) || strings.Contains(row, testKey) || strings.Contains(row, liveKey) {
			t.Fatalf("audit row %d holds the key", ev.ID)
		}
	}
	// Reopen: still there.
	e.reopen()
	if got, ok, err := e.s.StripeKey(ctxb); err != nil || !ok || got != liveKey {
		t.Fatalf("StripeKey after reopen: ok=%v err=%v", ok, err)
	}

	_, err = e.s.SetStripeKey(ctxb, cliAdmin, SetKeyRequest{Key: "pk_live_" + body24})
	wantCode(t, err, CodeInvalid)
	if len(events(t, e.s, ActionKeyUpdated)) != 2 {
		t.Fatal("a refused key was audited as updated")
	}
}

func TestSetStripeKeyStepUp(t *testing.T) {
	e := newEnv(t)
	e.add("admin", true)
	alice := e.add("alice", false) // staff may update the key
	actor := sshActor("alice")
	unchanged := func(what string) {
		t.Helper()
		if st, _ := e.s.KeyStatus(ctxb); st.Source != SourceNone {
			t.Fatalf("%s stored a key: %+v", what, st)
		}
		if n := len(events(t, e.s, ActionKeyUpdated)); n != 0 {
			t.Fatalf("%s: %d key.updated rows", what, n)
		}
	}

	_, err := e.s.SetStripeKey(ctxb, actor, SetKeyRequest{Key: testKey, Fingerprint: alice.fp})
	wantCode(t, err, CodeForbidden)
	unchanged("no code")

	_, err = e.s.SetStripeKey(ctxb, actor, SetKeyRequest{Key: testKey, Code: e.wrongCode(alice), Fingerprint: alice.fp})
	wantCode(t, err, CodeForbidden)
	unchanged("a wrong code")
	if st, _ := e.s.GetStaff(ctxb, "alice"); st.Failures != 2 {
		t.Fatalf("failed step-ups count %d failures, want 2", st.Failures)
	}
	ev := lastFor(t, e.s, ActionLoginFailure, "alice")
	if d := detail(t, ev); d["purpose"] != PurposeStepUp || d["fingerprint"] != alice.fp {
		t.Fatalf("step-up failure row %+v", ev)
	}

	// A live key without LIVE typed is refused before the code is looked
	// at, so the code stays usable.
	code := e.code(alice, 0)
	_, err = e.s.SetStripeKey(ctxb, actor, SetKeyRequest{Key: liveKey, Code: code, Fingerprint: alice.fp})
	wantCode(t, err, CodeInvalid)
	if !strings.Contains(ErrorMessage(err), "LIVE") {
		t.Fatalf("message %q does not ask for LIVE", ErrorMessage(err))
	}
	unchanged("a live key without confirmation")
	web := Actor{Name: "alice", Role: RoleStaff, Channel: ChannelWeb}
	_, err = e.s.SetStripeKey(ctxb, web, SetKeyRequest{Key: rLiveKey, Code: code})
	wantCode(t, err, CodeInvalid)

	st, err := e.s.SetStripeKey(ctxb, actor, SetKeyRequest{Key: liveKey, ConfirmLive: true, Code: code, Fingerprint: alice.fp})
	if err != nil {
		t.Fatal(err)
	}
	if st.Source != SourceDatabase || st.Mode != ModeLive || st.SetBy != "alice" {
		t.Fatalf("status %+v", st)
	}
	ev = one(t, e.s, ActionKeyUpdated)
	if d := detail(t, ev); d["step_up"] != true || ev.Channel != ChannelSSH || ev.RemoteAddr != actor.RemoteAddr || ev.SessionID != actor.SessionID {
		t.Fatalf("key.updated row %+v", ev)
	}
	if n := len(events(t, e.s, ActionLoginSuccess)); n != 0 {
		t.Fatalf("a step-up was audited as %d login.success rows", n)
	}
	if st, _ := e.s.GetStaff(ctxb, "alice"); st.Failures != 0 {
		t.Fatalf("failures after a good step-up: %d", st.Failures)
	}

	// The step-up code is spent: not for another update, not for a login.
	_, err = e.s.SetStripeKey(ctxb, actor, SetKeyRequest{Key: testKey, Code: code, Fingerprint: alice.fp})
	wantCode(t, err, CodeForbidden)
	if r := e.verify(alice, code); r.Verdict != CodeReplayed {
		t.Fatalf("login with the step-up code: %v", r.Verdict)
	}
	// The web channel needs a code too, and so does an actor whose channel
	// is unset or unknown (fail closed).
	for _, a := range []Actor{web, {Name: "alice", Role: RoleStaff}, {Name: "alice", Role: RoleAdmin, Channel: "api"}} {
		_, err = e.s.SetStripeKey(ctxb, a, SetKeyRequest{Key: testKey})
		wantCode(t, err, CodeForbidden)
		_, err = e.s.SetStripeKey(ctxb, a, SetKeyRequest{Key: rLiveKey, Code: e.code(alice, 1)})
		wantCode(t, err, CodeInvalid)
	}
	if got, _, _ := e.s.StripeKey(ctxb); got != liveKey {
		t.Fatal("the key changed without a step-up")
	}

	// Locked: told so, and nothing stored even with a right code.
	for range 5 {
		e.verify(alice, e.wrongCode(alice))
	}
	_, err = e.s.SetStripeKey(ctxb, actor, SetKeyRequest{Key: testKey, Code: e.code(alice, 1), Fingerprint: alice.fp})
	wantCode(t, err, CodeForbidden)
	if !strings.Contains(ErrorMessage(err), "locked") {
		t.Fatalf("locked step-up message %q", ErrorMessage(err))
	}
	if got, _, _ := e.s.StripeKey(ctxb); got != liveKey {
		t.Fatal("a locked member changed the key")
	}

	// Not enrolled: no step-up possible.
	if _, err := e.s.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: "bob", Key: mustKey(t), EnrollAtLogin: true}); err != nil {
		t.Fatal(err)
	}
	_, err = e.s.SetStripeKey(ctxb, sshActor("bob"), SetKeyRequest{Key: testKey, Code: "123456"})
	wantCode(t, err, CodeForbidden)
}

func TestStripeKeyFromEnv(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.EnvStripeKey = " " + rLiveKey + "\n" })
	st, err := e.s.KeyStatus(ctxb)
	if err != nil || st.Source != SourceEnv || st.Mode != ModeLive || st.Kind != KindRestricted || st.Badge() != "LIVE·R" ||
		st.SetBy != "STRIPE_API_KEY" || st.Shadowed || st.StoredMasked != "" {
		t.Fatalf("env key status: %+v %v", st, err)
	}
	if got, ok, err := e.s.StripeKey(ctxb); err != nil || !ok || got != rLiveKey {
		t.Fatalf("StripeKey from env: ok=%v err=%v untrimmed=%v", ok, err, got != rLiveKey)
	}
	if _, err := e.s.SetStripeKey(ctxb, cliAdmin, SetKeyRequest{Key: testKey}); err != nil {
		t.Fatal(err)
	}
	st, err = e.s.KeyStatus(ctxb)
	if err != nil || st.Source != SourceEnv || !st.Shadowed || st.StoredMasked != "sk_test_...wxyz" || st.Masked != MaskStripeKey(rLiveKey) {
		t.Fatalf("env key with a stored key: %+v %v", st, err)
	}
	if got, _, _ := e.s.StripeKey(ctxb); got != rLiveKey {
		t.Fatal("the stored key won over STRIPE_API_KEY")
	}
	if d := detail(t, one(t, e.s, ActionKeyUpdated)); d["shadowed_by_env"] != true {
		t.Fatalf("key.updated detail %v", d)
	}
	// Without the env var the stored key is active.
	e.reopen(func(o *Options) { o.EnvStripeKey = "" })
	if st, _ := e.s.KeyStatus(ctxb); st.Source != SourceDatabase || st.Shadowed || st.Masked != "sk_test_...wxyz" {
		t.Fatalf("status without env: %+v", st)
	}
}

// TestStripeKeyInKeyring uses go-keyring's in-memory mock (package-level
// state: this test must not run in parallel with another keyring test).
func TestStripeKeyInKeyring(t *testing.T) {
	keyring.MockInit()
	t.Cleanup(keyring.MockInit)
	if err := CheckKeyring(OSKeyring{}); err != nil {
		t.Fatalf("CheckKeyring on an empty keyring: %v", err)
	}
	e := newEnv(t, func(o *Options) { o.Keyring = OSKeyring{} })
	if st, _ := e.s.KeyStatus(ctxb); st.Storage != SourceKeyring || st.Source != SourceNone {
		t.Fatalf("status: %+v", st)
	}
	st, err := e.s.SetStripeKey(ctxb, cliAdmin, SetKeyRequest{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	if st.Source != SourceKeyring || st.Masked != "sk_test_...wxyz" || st.SetBy != "root" {
		t.Fatalf("status: %+v", st)
	}
	if v, err := keyring.Get(KeyringService, stripeKeyName); err != nil || v != testKey {
		t.Fatalf("keyring holds %v, err %v", v == testKey, err)
	}
	var value []byte
	var storage string
	if err := rawDB(t, e.dir).QueryRow(`SELECT value, storage FROM secrets WHERE name = ?`, stripeKeyName).Scan(&value, &storage); err != nil {
		t.Fatal(err)
	}
	if value != nil || storage != SourceKeyring {
		t.Fatalf("database row: %d bytes, storage %s", len(value), storage)
	}
	if d := detail(t, one(t, e.s, ActionKeyUpdated)); d["storage"] != SourceKeyring {
		t.Fatalf("key.updated detail %v", d)
	}
	if got, ok, err := e.s.StripeKey(ctxb); err != nil || !ok || got != testKey {
		t.Fatalf("StripeKey: ok=%v err=%v", ok, err)
	}
	assertNotInFiles(t, e.dir, "keyring mode", []byte(testKey), []byte(body24))

	// Started without USE_KEYRING: says where the key is.
	e.reopen(func(o *Options) { o.Keyring = nil })
	_, err = e.s.KeyStatus(ctxb)
	wantCode(t, err, CodeInvalid)
	if !strings.Contains(ErrorMessage(err), "USE_KEYRING=1") {
		t.Fatalf("message %q", ErrorMessage(err))
	}
	if _, ok, err := e.s.StripeKey(ctxb); ok || err == nil {
		t.Fatalf("StripeKey without the keyring: ok=%v err=%v", ok, err)
	}

	// An unreachable keyring fails loudly.
	keyring.MockInitWithError(errors.New("org.freedesktop.secrets was not provided by any .service files"))
	err = CheckKeyring(OSKeyring{})
	if err == nil || !strings.Contains(err.Error(), "USE_KEYRING=1") || !strings.Contains(err.Error(), "org.freedesktop.secrets") {
		t.Fatalf("CheckKeyring on a broken keyring: %v", err)
	}
	e.reopen(func(o *Options) { o.Keyring = OSKeyring{} })
	if _, err := e.s.SetStripeKey(ctxb, cliAdmin, SetKeyRequest{Key: liveKey}); err == nil {
		t.Fatal("SetStripeKey with a broken keyring succeeded")
	}
	if n := len(events(t, e.s, ActionKeyUpdated)); n != 1 {
		t.Fatalf("%d key.updated rows after a keyring failure", n)
	}
}

// failingKeyring reads fine but refuses to store.
type failingKeyring struct{ value string }

func (k *failingKeyring) Get(service, user string) (string, error) {
	if k.value == "" {
		return "", ErrKeyringNotFound
	}
	return k.value, nil
}

func (k *failingKeyring) Set(service, user, secret string) error {
	return errors.New("dbus: the user cancelled the prompt")
}

func TestStripeKeyKeyringSetFailureRollsBack(t *testing.T) {
	kr := &failingKeyring{value: testKey}
	e := newEnv(t, func(o *Options) { o.Keyring = kr })
	db := rawDB(t, e.dir)
	mustExec(t, db, `INSERT INTO secrets (name, value, masked, storage, set_by, set_at) VALUES (?, NULL, 'sk_test_...wxyz', 'keyring', 'root', 1)`, stripeKeyName)
	before, err := e.s.KeyStatus(ctxb)
	if err != nil || before.Masked != "sk_test_...wxyz" {
		t.Fatalf("status: %+v %v", before, err)
	}
	_, err = e.s.SetStripeKey(ctxb, cliAdmin, SetKeyRequest{Key: liveKey})
	if err == nil {
		t.Fatal("SetStripeKey succeeded although the keyring refused")
	}
	if strings.Contains(err.Error(), liveKey) || strings.Contains(ErrorMessage(err), body24) {
		t.Fatalf("error reveals the key: %v", err)
	}
	after, err := e.s.KeyStatus(ctxb)
	if err != nil || after != before {
		t.Fatalf("status changed: %+v → %+v (%v)", before, after, err)
	}
	if n := len(events(t, e.s, ActionKeyUpdated)); n != 0 {
		t.Fatalf("%d key.updated rows for a failed update", n)
	}
}

// TestStripeKeyNotInFiles greps every file of the data dir, the WAL and
// shared memory included, for the plaintext key.
func TestStripeKeyNotInFiles(t *testing.T) {
	e := newEnv(t)
	e.add("alice", true)
	for _, k := range []string{testKey, liveKey} {
		if _, err := e.s.SetStripeKey(ctxb, cliAdmin, SetKeyRequest{Key: k}); err != nil {
			t.Fatal(err)
		}
	}
	needles := [][]byte{[]byte(testKey), []byte(liveKey), []byte(body24)}
	files := dirFiles(t, e.dir)
	if len(files[DBFile+"-wal"]) == 0 {
		t.Fatal("the WAL is empty before the checkpoint: the test would prove nothing about it")
	}
	assertNotInFiles(t, e.dir, "before checkpoint", needles...)
	if err := e.s.Checkpoint(ctxb); err != nil {
		t.Fatal(err)
	}
	assertNotInFiles(t, e.dir, "after checkpoint", needles...)
	e.reopen()
	if _, ok, _ := e.s.StripeKey(ctxb); !ok {
		t.Fatal("key gone after reopen")
	}
	assertNotInFiles(t, e.dir, "after reopen", needles...)
}
