package store

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestTOTPCodeRFC6238(t *testing.T) {
	// RFC 6238 appendix B, SHA-1, truncated to 6 digits.
	secret := []byte("12345678901234567890")
	for _, tc := range []struct {
		unix int64
		want string
	}{{59, "287082"}, {1111111109, "081804"}, {1234567890, "005924"}, {2000000000, "279037"}} {
		got, err := TOTPCode(secret, TOTPStep(time.Unix(tc.unix, 0)))
		if err != nil || got != tc.want {
			t.Errorf("TOTPCode at %d = %q %v, want %s", tc.unix, got, err, tc.want)
		}
		got, err = CodeFor(b32.EncodeToString(secret), time.Unix(tc.unix, 0))
		if err != nil || got != tc.want {
			t.Errorf("CodeFor at %d = %q %v, want %s", tc.unix, got, err, tc.want)
		}
	}
}

func TestVerifyCodeWindow(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		steps int
		want  Verdict
	}{{-3, CodeWrong}, {-2, CodeWrong}, {-1, CodeAccepted}, {0, CodeAccepted}, {1, CodeAccepted}, {2, CodeWrong}, {3, CodeWrong}} {
		t.Run(fmt.Sprintf("T%+d", tc.steps), func(t *testing.T) {
			m := e.add(fmt.Sprintf("m%d", tc.steps+3), false)
			res := e.verify(m, e.code(m, tc.steps))
			if res.Verdict != tc.want {
				t.Fatalf("code of T%+d: %v, want %v", tc.steps, res.Verdict, tc.want)
			}
			if tc.want == CodeAccepted {
				ev := lastFor(t, e.s, ActionLoginSuccess, m.name)
				d := detail(t, ev)
				if d["step"] != float64(TOTPStep(e.clock.Now())+int64(tc.steps)) {
					t.Errorf("login.success step %v, want T%+d", d["step"], tc.steps)
				}
				if d["method"] != "totp" {
					t.Errorf("method %v", d["method"])
				}
			}
		})
	}
}

// lastFor is the newest row with action and target.
func lastFor(t *testing.T, s *Store, action, target string) Event {
	t.Helper()
	evs := events(t, s, action)
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Target == target {
			return evs[i]
		}
	}
	t.Fatalf("no %s row for %s", action, target)
	return Event{}
}

func TestVerifyCodeAuditsEveryOutcome(t *testing.T) {
	e := newEnv(t)
	alice := e.add("alice", true)
	check := func(ev Event, action, reason string) {
		t.Helper()
		if ev.Action != action || ev.Actor != "alice" || ev.Target != "alice" || ev.Channel != ChannelSSH ||
			ev.RemoteAddr != "203.0.113.7:40022" || ev.SessionID != "sess-alice" {
			t.Errorf("row %+v: want %s by alice over ssh from 203.0.113.7:40022", ev, action)
		}
		d := detail(t, ev)
		if d["fingerprint"] != alice.fp {
			t.Errorf("%s detail fingerprint %v, want %s", action, d["fingerprint"], alice.fp)
		}
		if reason != "" && d["reason"] != reason {
			t.Errorf("%s detail reason %v, want %q", action, d["reason"], reason)
		}
		if action != ActionLoginLocked && d["purpose"] != PurposeLogin {
			t.Errorf("%s detail purpose %v", action, d["purpose"])
		}
	}
	good := e.code(alice, 0)
	e.verify(alice, good)
	all := allEvents(t, e.s)
	check(all[len(all)-1], ActionLoginSuccess, "")

	e.verify(alice, good)
	all = allEvents(t, e.s)
	check(all[len(all)-1], ActionLoginFailure, "replayed code")

	e.verify(alice, e.wrongCode(alice))
	all = allEvents(t, e.s)
	check(all[len(all)-1], ActionLoginFailure, "wrong code")

	e.verify(alice, "not a code")
	all = allEvents(t, e.s)
	check(all[len(all)-1], ActionLoginFailure, "wrong code")

	// Replayed, wrong, not a code: three failures; a fourth, then the
	// fifth locks.
	e.verify(alice, e.wrongCode(alice))
	if r := e.verify(alice, e.wrongCode(alice)); r.Verdict != CodeLocked {
		t.Fatalf("5th failure: %v", r.Verdict)
	}
	all = allEvents(t, e.s)
	check(all[len(all)-2], ActionLoginFailure, "wrong code")
	check(all[len(all)-1], ActionLoginLocked, "")
	if d := detail(t, all[len(all)-1]); d["until"] != e.clock.Now().Add(15*time.Minute).Format(TimeFormat) || d["failures"] != float64(5) {
		t.Errorf("login.locked detail %v", d)
	}

	e.clock.Add(TOTPPeriod)
	e.verify(alice, e.code(alice, 0))
	all = allEvents(t, e.s)
	check(all[len(all)-1], ActionLoginFailure, "locked")

	// Not enrolled: a member waiting to enroll, and a name nobody has.
	k := mustKey(t)
	if _, err := e.s.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: "bob", Key: k, EnrollAtLogin: true}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bob", "nobody"} {
		res, err := e.s.VerifyCode(ctxb, sshActor(name), "SHA256:x", "123456", PurposeLogin)
		if err != nil || res.Verdict != CodeNotEnrolled || res.Verdict.OK() {
			t.Fatalf("%s: %v %v, want CodeNotEnrolled", name, res.Verdict, err)
		}
		ev := lastFor(t, e.s, ActionLoginFailure, name)
		if d := detail(t, ev); d["reason"] != "no second factor enrolled" || d["fingerprint"] != "SHA256:x" || ev.RemoteAddr == "" {
			t.Errorf("%s: login.failure %+v", name, ev)
		}
	}
	mustVerifyAudit(t, e.s)
}

func TestVerifyCodeReplay(t *testing.T) {
	e := newEnv(t)
	alice := e.add("alice", true)
	now := e.code(alice, 0)
	older := e.code(alice, -1)
	newer := e.code(alice, 1)
	if r := e.verify(alice, now); r.Verdict != CodeAccepted {
		t.Fatalf("fresh code: %v", r.Verdict)
	}
	if r := e.verify(alice, now); r.Verdict != CodeReplayed {
		t.Fatalf("same code again: %v, want CodeReplayed", r.Verdict)
	}
	// An older step, never used, is still refused once a newer one was.
	if r := e.verify(alice, older); r.Verdict != CodeReplayed {
		t.Fatalf("older step after a newer one: %v, want CodeReplayed", r.Verdict)
	}
	// The same code 30 s later (now step T-1) is still the same step.
	e.clock.Add(TOTPPeriod)
	if r := e.verify(alice, now); r.Verdict != CodeReplayed {
		t.Fatalf("same code one step later: %v, want CodeReplayed", r.Verdict)
	}
	if r := e.verify(alice, newer); r.Verdict != CodeAccepted {
		t.Fatalf("next step's code: %v", r.Verdict)
	}
	// Survives a restart: the last step is persisted.
	e.reopen()
	if r := e.verify(alice, newer); r.Verdict != CodeReplayed {
		t.Fatalf("replay after reopen: %v", r.Verdict)
	}
	if n := len(events(t, e.s, ActionLoginSuccess)); n != 2 {
		t.Fatalf("%d login.success rows, want 2", n)
	}
}

func TestVerifyCodeNormalises(t *testing.T) {
	e := newEnv(t)
	alice := e.add("alice", true)
	c := e.code(alice, -1)
	if r := e.verify(alice, " "+c[:3]+" "+c[3:]+"\t"); r.Verdict != CodeAccepted {
		t.Fatalf("code with spaces: %v", r.Verdict)
	}
	c = e.code(alice, 0)
	if r := e.verify(alice, c[:3]+"-"+c[3:]); r.Verdict != CodeAccepted {
		t.Fatalf("code with a dash: %v", r.Verdict)
	}
	c = e.code(alice, 1)
	for _, bad := range []string{c[:5], c + "0", "0" + c, c[:5] + "x"} {
		if r := e.verify(alice, bad); r.Verdict != CodeWrong {
			t.Fatalf("code %q: %v, want CodeWrong", bad, r.Verdict)
		}
	}
}

// TestVerifyCodeConcurrent: one code, 50 concurrent checks, exactly one
// winner; on one handle and across two handles (two processes).
func TestVerifyCodeConcurrent(t *testing.T) {
	for _, handles := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d handles", handles), func(t *testing.T) {
			lots := func(o *Options) { o.LockoutAfter = 1000 }
			e := newEnv(t, lots)
			alice := e.add("alice", true)
			stores := []*Store{e.s}
			if handles == 2 {
				stores = append(stores, e.open(lots))
			}
			code := e.code(alice, 0)
			var wg sync.WaitGroup
			results := make(chan Verdict, 50)
			start := make(chan struct{})
			for i := range 50 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					res, err := stores[i%len(stores)].VerifyCode(ctxb, sshActor("alice"), alice.fp, code, PurposeLogin)
					if err != nil {
						t.Error(err)
						return
					}
					results <- res.Verdict
				}()
			}
			close(start)
			wg.Wait()
			close(results)
			count := map[Verdict]int{}
			for v := range results {
				count[v]++
			}
			if count[CodeAccepted] != 1 || count[CodeReplayed] != 49 {
				t.Fatalf("verdicts %v, want 1 accepted and 49 replayed", count)
			}
			if n := len(events(t, e.s, ActionLoginSuccess)); n != 1 {
				t.Fatalf("%d login.success rows", n)
			}
			mustVerifyAudit(t, e.s)
		})
	}
}

func TestLockout(t *testing.T) {
	e := newEnv(t)
	alice := e.add("alice", true)
	start := e.clock.Now()
	for i := 1; i <= 4; i++ {
		if r := e.verify(alice, e.wrongCode(alice)); r.Verdict != CodeWrong {
			t.Fatalf("failure %d: %v", i, r.Verdict)
		}
		st, _ := e.s.GetStaff(ctxb, "alice")
		if st.Failures != i || !st.LockedUntil.IsZero() {
			t.Fatalf("after %d failures: %+v", i, st)
		}
	}
	r := e.verify(alice, e.wrongCode(alice))
	until := start.Add(15 * time.Minute)
	if r.Verdict != CodeLocked || !r.LockedUntil.Equal(until) {
		t.Fatalf("5th failure: %v until %v, want CodeLocked until %v", r.Verdict, r.LockedUntil, until)
	}
	ls, _ := e.s.LoginState(ctxb, "alice")
	if !ls.LockedUntil.Equal(until) {
		t.Fatalf("LoginState.LockedUntil %v, want %v", ls.LockedUntil, until)
	}
	if st, _ := e.s.GetStaff(ctxb, "alice"); !st.Locked(e.clock.Now()) || !st.LockedUntil.Equal(until) {
		t.Fatalf("GetStaff: %+v", st)
	}
	one(t, e.s, ActionLoginLocked)

	// A right code while locked is refused without being looked at.
	e.clock.Add(TOTPPeriod)
	r = e.verify(alice, e.code(alice, 0))
	if r.Verdict != CodeLocked || !r.LockedUntil.Equal(until) {
		t.Fatalf("right code while locked: %v %v", r.Verdict, r.LockedUntil)
	}
	if r.Verdict.OK() {
		t.Fatal("CodeLocked lets the member in")
	}
	// Attempts while locked do not extend the lock.
	if ls, _ := e.s.LoginState(ctxb, "alice"); !ls.LockedUntil.Equal(until) {
		t.Fatalf("lock moved to %v", ls.LockedUntil)
	}

	// Still locked a second before the end, free at the end.
	e.clock.Set(until.Add(-time.Second))
	if r := e.verify(alice, e.code(alice, 0)); r.Verdict != CodeLocked {
		t.Fatalf("1 s before the end: %v", r.Verdict)
	}
	e.clock.Set(until)
	if ls, _ := e.s.LoginState(ctxb, "alice"); !ls.LockedUntil.IsZero() {
		t.Fatalf("LoginState at the end of the lock: %+v", ls)
	}
	if r := e.verify(alice, e.code(alice, 0)); r.Verdict != CodeAccepted {
		t.Fatalf("fresh code after the lock: %v", r.Verdict)
	}
	if n := len(events(t, e.s, ActionLoginLocked)); n != 1 {
		t.Fatalf("%d login.locked rows", n)
	}
}

// TestLockedCodeNotConsumed: a right code typed during a short lock still
// works once the lock is over.
func TestLockedCodeNotConsumed(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.LockoutAfter = 2; o.LockoutFor = 40 * time.Second })
	alice := e.add("alice", true)
	e.verify(alice, e.wrongCode(alice))
	r := e.verify(alice, e.wrongCode(alice))
	if r.Verdict != CodeLocked || !r.LockedUntil.Equal(e.clock.Now().Add(40*time.Second)) {
		t.Fatalf("LockoutAfter=2: %v until %v", r.Verdict, r.LockedUntil)
	}
	next := e.code(alice, 1) // T+1: valid now, and still valid (as T) after the lock
	if r := e.verify(alice, next); r.Verdict != CodeLocked {
		t.Fatalf("during the lock: %v", r.Verdict)
	}
	e.clock.Add(40 * time.Second)
	if r := e.verify(alice, next); r.Verdict != CodeAccepted {
		t.Fatalf("the code typed during the lock, after it: %v, want CodeAccepted", r.Verdict)
	}
}

func TestLockoutOptions(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.LockoutAfter = 3; o.LockoutFor = time.Hour })
	alice := e.add("alice", true)
	for range 2 {
		if r := e.verify(alice, e.wrongCode(alice)); r.Verdict != CodeWrong {
			t.Fatalf("%v", r.Verdict)
		}
	}
	r := e.verify(alice, e.wrongCode(alice))
	if r.Verdict != CodeLocked || !r.LockedUntil.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("3rd failure with LockoutAfter=3, LockoutFor=1h: %v until %v", r.Verdict, r.LockedUntil)
	}
	e.clock.Add(59 * time.Minute)
	if r := e.verify(alice, e.code(alice, 0)); r.Verdict != CodeLocked {
		t.Fatalf("after 59m: %v", r.Verdict)
	}
	e.clock.Add(time.Minute)
	if r := e.verify(alice, e.code(alice, 0)); r.Verdict != CodeAccepted {
		t.Fatalf("after 1h: %v", r.Verdict)
	}
}

func TestLockSurvivesRestartAndUnlock(t *testing.T) {
	e := newEnv(t)
	alice := e.add("alice", true)
	for range 5 {
		e.verify(alice, e.wrongCode(alice))
	}
	e.reopen()
	ls, err := e.s.LoginState(ctxb, "alice")
	if err != nil || ls.LockedUntil.IsZero() {
		t.Fatalf("after reopen: %+v %v, want locked", ls, err)
	}
	if r := e.verify(alice, e.code(alice, 0)); r.Verdict != CodeLocked {
		t.Fatalf("right code after reopen: %v", r.Verdict)
	}

	if err := e.s.Unlock(ctxb, sshActor("alice"), "alice"); ErrorCode(err) != CodeForbidden {
		t.Fatalf("staff unlocking: %v", err)
	}
	admin := Actor{Name: "boss", Role: RoleAdmin, Channel: ChannelSSH, RemoteAddr: "198.51.100.1:1", SessionID: "s1"}
	if err := e.s.Unlock(ctxb, admin, "alice"); err != nil {
		t.Fatal(err)
	}
	ev := one(t, e.s, ActionStaffUnlocked)
	if ev.Actor != "boss" || ev.Target != "alice" || ev.RemoteAddr != "198.51.100.1:1" {
		t.Fatalf("staff.unlocked row %+v", ev)
	}
	if ls, _ := e.s.LoginState(ctxb, "alice"); !ls.LockedUntil.IsZero() {
		t.Fatalf("still locked after Unlock: %+v", ls)
	}
	if r := e.verify(alice, e.code(alice, 0)); r.Verdict != CodeAccepted {
		t.Fatalf("after Unlock: %v", r.Verdict)
	}
	if err := e.s.Unlock(ctxb, cliAdmin, "nobody"); ErrorCode(err) != CodeNotFound {
		t.Fatalf("Unlock(nobody): %v", err)
	}

	// Unlock also clears the failure count.
	for range 4 {
		e.verify(alice, e.wrongCode(alice))
	}
	if err := e.s.Unlock(ctxb, cliAdmin, "alice"); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.s.GetStaff(ctxb, "alice"); st.Failures != 0 {
		t.Fatalf("failures after Unlock: %d", st.Failures)
	}
	if r := e.verify(alice, e.wrongCode(alice)); r.Verdict != CodeWrong {
		t.Fatalf("first failure after Unlock: %v", r.Verdict)
	}
}

func TestSuccessResetsFailures(t *testing.T) {
	e := newEnv(t)
	alice := e.add("alice", true)
	for range 4 {
		e.verify(alice, e.wrongCode(alice))
	}
	if r := e.verify(alice, e.code(alice, 0)); r.Verdict != CodeAccepted {
		t.Fatal(r.Verdict)
	}
	if st, _ := e.s.GetStaff(ctxb, "alice"); st.Failures != 0 {
		t.Fatalf("failures after a success: %d", st.Failures)
	}
	for i := range 4 {
		if r := e.verify(alice, e.wrongCode(alice)); r.Verdict != CodeWrong {
			t.Fatalf("failure %d after the success: %v (the count was not reset)", i+1, r.Verdict)
		}
	}
	if r := e.verify(alice, e.wrongCode(alice)); r.Verdict != CodeLocked {
		t.Fatalf("5th consecutive failure: %v", r.Verdict)
	}
}

func TestReplaysCountAsFailures(t *testing.T) {
	e := newEnv(t)
	alice := e.add("alice", true)
	c := e.code(alice, 0)
	e.verify(alice, c)
	for range 4 {
		if r := e.verify(alice, c); r.Verdict != CodeReplayed {
			t.Fatal(r.Verdict)
		}
	}
	if r := e.verify(alice, c); r.Verdict != CodeLocked {
		t.Fatalf("5th replay: %v, want CodeLocked", r.Verdict)
	}
}

func TestRecoveryCodes(t *testing.T) {
	e := newEnv(t)
	alice := e.add("alice", true)
	codes := alice.enr.RecoveryCodes
	if len(codes) != RecoveryCodes {
		t.Fatalf("%d recovery codes", len(codes))
	}
	seen := map[string]bool{}
	for _, c := range codes {
		if len(c) != 11 || c[5] != '-' || seen[c] {
			t.Fatalf("recovery code %q malformed or repeated", c)
		}
		seen[c] = true
	}

	res := e.verify(alice, codes[0])
	if res.Verdict != CodeRecovery || !res.Verdict.OK() || res.RecoveryLeft != 9 {
		t.Fatalf("first use: %+v", res)
	}
	rc := one(t, e.s, ActionLoginRecoveryCode)
	if d := detail(t, rc); d["remaining"] != float64(9) || d["fingerprint"] != alice.fp || rc.RemoteAddr == "" {
		t.Fatalf("login.recovery_code row %+v", rc)
	}
	if strings.Contains(rc.Detail, codes[0]) || strings.Contains(rc.Detail, strings.ReplaceAll(codes[0], "-", "")) {
		t.Fatal("audit detail holds the recovery code")
	}
	if d := detail(t, lastFor(t, e.s, ActionLoginSuccess, "alice")); d["method"] != "recovery_code" {
		t.Fatalf("login.success method %v", d["method"])
	}

	if r := e.verify(alice, codes[0]); r.Verdict != CodeWrong {
		t.Fatalf("second use: %v, want CodeWrong", r.Verdict)
	}
	if st, _ := e.s.GetStaff(ctxb, "alice"); st.Failures != 1 {
		t.Fatalf("a used recovery code does not count as a failure: %d", st.Failures)
	}
	// Typed in capitals without the dash, with spaces around.
	typed := " " + strings.ToUpper(strings.ReplaceAll(codes[1], "-", "")) + " "
	res = e.verify(alice, typed)
	if res.Verdict != CodeRecovery || res.RecoveryLeft != 8 {
		t.Fatalf("second code as typed %q: %+v", typed, res)
	}
	if st, _ := e.s.GetStaff(ctxb, "alice"); st.Failures != 0 {
		t.Fatalf("a recovery code did not reset failures: %d", st.Failures)
	}
	// Bob's codes are not Alice's.
	bob := e.add("bob", false)
	if r := e.verify(alice, bob.enr.RecoveryCodes[0]); r.Verdict != CodeWrong {
		t.Fatalf("bob's recovery code for alice: %v", r.Verdict)
	}
	if r := e.verify(bob, bob.enr.RecoveryCodes[0]); r.Verdict != CodeRecovery || r.RecoveryLeft != 9 {
		t.Fatalf("bob's own code: %+v", r)
	}
	if n := len(events(t, e.s, ActionLoginRecoveryCode)); n != 3 {
		t.Fatalf("%d login.recovery_code rows", n)
	}
	// A recovery code works while not locked only.
	for range 5 {
		e.verify(alice, e.wrongCode(alice))
	}
	if r := e.verify(alice, codes[2]); r.Verdict != CodeLocked {
		t.Fatalf("recovery code while locked: %v", r.Verdict)
	}
	e.clock.Add(15 * time.Minute)
	if r := e.verify(alice, codes[2]); r.Verdict != CodeRecovery || r.RecoveryLeft != 7 {
		t.Fatalf("recovery code typed during the lock, after it: %+v", r)
	}
}

func TestEnrollAtLogin(t *testing.T) {
	e := newEnv(t)
	e.add("admin", true)
	k := mustKey(t)
	res, err := e.s.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: "bob", Key: k, EnrollAtLogin: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Enrollment != nil || !res.NewMember {
		t.Fatalf("AddStaff with EnrollAtLogin: %+v", res)
	}
	ls, err := e.s.LoginState(ctxb, "bob")
	if err != nil || !ls.Exists || !ls.EnrollAtLogin || ls.Enrolled {
		t.Fatalf("LoginState: %+v %v", ls, err)
	}
	if d := detail(t, lastFor(t, e.s, ActionStaffAdded, "bob")); d["enroll_at_login"] != true {
		t.Fatalf("staff.added detail %v", d)
	}
	if st, _ := e.s.GetStaff(ctxb, "bob"); st.TOTP != TOTPPending || !st.EnrollAtLogin {
		t.Fatalf("GetStaff: %+v", st)
	}

	enr := NewEnrollment("bob")
	if !strings.HasPrefix(enr.URI, "otpauth://totp/Backroom:bob?") || !strings.Contains(enr.URI, "secret="+enr.Secret) {
		t.Fatalf("enrollment URI %q", enr.URI)
	}
	bob := member{name: "bob", key: k, fp: res.Fingerprint, enr: enr}
	actor := sshActor("bob")

	before := auditCount(t, e.s)
	err = e.s.ConfirmEnrollment(ctxb, actor, bob.fp, enr, e.wrongCode(bob))
	wantCode(t, err, CodeInvalid)
	if ls, _ := e.s.LoginState(ctxb, "bob"); ls.Enrolled || !ls.EnrollAtLogin {
		t.Fatalf("a wrong confirmation code enrolled bob: %+v", ls)
	}
	if auditCount(t, e.s) != before {
		t.Fatal("a refused confirmation wrote an audit row")
	}

	code := e.code(bob, 0)
	if err := e.s.ConfirmEnrollment(ctxb, actor, bob.fp, enr, code); err != nil {
		t.Fatal(err)
	}
	ls, _ = e.s.LoginState(ctxb, "bob")
	if !ls.Enrolled || ls.EnrollAtLogin {
		t.Fatalf("after confirmation: %+v", ls)
	}
	ev := one(t, e.s, ActionTOTPEnrolled)
	if ev.Actor != "bob" || ev.Target != "bob" || detail(t, ev)["fingerprint"] != bob.fp {
		t.Fatalf("totp.enrolled row %+v", ev)
	}
	if strings.Contains(ev.Detail, enr.Secret) {
		t.Fatal("totp.enrolled detail holds the secret")
	}
	// The confirming code is spent.
	if r := e.verify(bob, code); r.Verdict != CodeReplayed {
		t.Fatalf("confirming code replayed at login: %v, want CodeReplayed", r.Verdict)
	}
	if r := e.verify(bob, e.code(bob, 1)); r.Verdict != CodeAccepted {
		t.Fatalf("next code: %v", r.Verdict)
	}
	// The recovery codes shown at enrollment are stored.
	if r := e.verify(bob, enr.RecoveryCodes[3]); r.Verdict != CodeRecovery {
		t.Fatalf("recovery code from the confirmed enrollment: %v", r.Verdict)
	}
	// Confirming again (e.g. a second session racing) is refused.
	e.clock.Add(time.Minute)
	err = e.s.ConfirmEnrollment(ctxb, actor, bob.fp, NewEnrollment("bob"), e.code(bob, 0))
	if ErrorCode(err) == "" {
		t.Fatal("a second ConfirmEnrollment succeeded")
	}
	// A member enrolled by the CLI cannot be re-enrolled by a session.
	alice := e.add("alice", false)
	other := NewEnrollment("alice")
	c, _ := CodeFor(other.Secret, e.clock.Now())
	wantCode(t, e.s.ConfirmEnrollment(ctxb, sshActor("alice"), alice.fp, other, c), CodeConflict)
	if r := e.verify(alice, e.code(alice, 0)); r.Verdict != CodeAccepted {
		t.Fatalf("alice's own secret after a refused re-enrollment: %v", r.Verdict)
	}
}

func TestResetTOTP(t *testing.T) {
	e := newEnv(t)
	e.add("admin", true)
	alice := e.add("alice", false)

	if _, err := e.s.ResetTOTP(ctxb, sshActor("alice"), "alice", false); ErrorCode(err) != CodeForbidden {
		t.Fatalf("staff resetting TOTP: %v", err)
	}
	if _, err := e.s.ResetTOTP(ctxb, cliAdmin, "nobody", false); ErrorCode(err) != CodeNotFound {
		t.Fatalf("ResetTOTP(nobody): %v", err)
	}

	// Lock alice first: a reset clears the lock too.
	for range 5 {
		e.verify(alice, e.wrongCode(alice))
	}
	enr, err := e.s.ResetTOTP(ctxb, cliAdmin, "alice", false)
	if err != nil || enr == nil || enr.Secret == alice.enr.Secret {
		t.Fatalf("ResetTOTP: %v %v", enr, err)
	}
	if d := detail(t, lastFor(t, e.s, ActionTOTPReset, "alice")); d["enroll_at_login"] != false {
		t.Fatalf("totp.reset detail %v", d)
	}
	if r := e.verify(alice, e.code(alice, 0)); r.Verdict != CodeWrong {
		t.Fatalf("old secret after reset: %v", r.Verdict)
	}
	if r := e.verify(alice, alice.enr.RecoveryCodes[0]); r.Verdict != CodeWrong {
		t.Fatalf("old recovery code after reset: %v", r.Verdict)
	}
	fresh := alice
	fresh.enr = enr
	if r := e.verify(fresh, e.code(fresh, 0)); r.Verdict != CodeAccepted {
		t.Fatalf("new secret: %v", r.Verdict)
	}
	if r := e.verify(fresh, enr.RecoveryCodes[0]); r.Verdict != CodeRecovery || r.RecoveryLeft != 9 {
		t.Fatalf("new recovery code: %+v", r)
	}

	// With enrollAtLogin: no secret until the member enrolls at login.
	enr2, err := e.s.ResetTOTP(ctxb, cliAdmin, "alice", true)
	if err != nil || enr2 != nil {
		t.Fatalf("ResetTOTP(enrollAtLogin): %v %v", enr2, err)
	}
	ls, _ := e.s.LoginState(ctxb, "alice")
	if !ls.Exists || !ls.EnrollAtLogin || ls.Enrolled {
		t.Fatalf("LoginState after reset with enrollAtLogin: %+v", ls)
	}
	e.clock.Add(TOTPPeriod)
	for _, c := range []string{e.code(fresh, 0), enr.RecoveryCodes[1]} {
		if r := e.verify(fresh, c); r.Verdict != CodeNotEnrolled {
			t.Fatalf("code after reset with enrollAtLogin: %v, want CodeNotEnrolled", r.Verdict)
		}
	}
	if d := detail(t, lastFor(t, e.s, ActionTOTPReset, "alice")); d["enroll_at_login"] != true {
		t.Fatalf("totp.reset detail %v", d)
	}
	if st, _ := e.s.GetStaff(ctxb, "alice"); st.TOTP != TOTPPending {
		t.Fatalf("staff list TOTP %q", st.TOTP)
	}
	// And the member can enroll at login again.
	enr3 := NewEnrollment("alice")
	c, _ := CodeFor(enr3.Secret, e.clock.Now())
	if err := e.s.ConfirmEnrollment(ctxb, sshActor("alice"), alice.fp, enr3, c); err != nil {
		t.Fatal(err)
	}
	if ls, _ := e.s.LoginState(ctxb, "alice"); !ls.Enrolled {
		t.Fatalf("after re-enrollment: %+v", ls)
	}
}

func TestEnrollmentHidesSecrets(t *testing.T) {
	enr := NewEnrollment("alice")
	if len(enr.Secret) != 32 {
		t.Fatalf("secret of %d base32 characters, want 32 (160 bits)", len(enr.Secret))
	}
	var outs []string
	for _, f := range []string{"%v", "%s", "%+v", "%#v", "%q"} {
		outs = append(outs, fmt.Sprintf(f, enr), fmt.Sprintf(f, *enr))
	}
	outs = append(outs, enr.String())
	for _, h := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var buf bytes.Buffer
		slog.New(h(&buf)).Info("enrolled", "enrollment", enr, "value", *enr)
		outs = append(outs, buf.String())
	}
	for _, o := range outs {
		if !strings.Contains(o, "alice") {
			t.Errorf("%q does not name the member", o)
		}
		for _, secret := range append([]string{enr.Secret, enr.URI}, enr.RecoveryCodes...) {
			if strings.Contains(o, secret) {
				t.Errorf("formatted enrollment reveals a secret: %q", o)
			}
		}
	}
}

// TestLockedUntilPrecision: with a clock finer than a millisecond, the lock
// VerifyCode reports is the one stored and reported later.
func TestLockedUntilPrecision(t *testing.T) {
	e := newEnv(t)
	e.clock.Add(123456789 * time.Nanosecond)
	alice := e.add("alice", true)
	var r CodeResult
	for range 5 {
		r = e.verify(alice, e.wrongCode(alice))
	}
	ls, _ := e.s.LoginState(ctxb, "alice")
	st, _ := e.s.GetStaff(ctxb, "alice")
	if r.Verdict != CodeLocked || !r.LockedUntil.Equal(ls.LockedUntil) || !st.LockedUntil.Equal(ls.LockedUntil) {
		t.Fatalf("VerifyCode %v, LoginState %v, GetStaff %v", r.LockedUntil, ls.LockedUntil, st.LockedUntil)
	}
	if d := e.clock.Now().Add(15 * time.Minute).Sub(r.LockedUntil); d < 0 || d >= time.Millisecond {
		t.Fatalf("LockedUntil %v is not now+15m", r.LockedUntil)
	}
	if again := e.verify(alice, e.code(alice, 0)); !again.LockedUntil.Equal(r.LockedUntil) {
		t.Fatalf("LockedUntil while locked %v, at the lock %v", again.LockedUntil, r.LockedUntil)
	}
}

// TestTOTPSecretsNotInFiles greps every file of the data dir for the TOTP
// secret (base32 and raw) and the recovery codes.
func TestTOTPSecretsNotInFiles(t *testing.T) {
	e := newEnv(t)
	alice := e.add("alice", true)
	k := mustKey(t)
	if _, err := e.s.AddStaff(ctxb, cliAdmin, AddStaffRequest{Name: "bob", Key: k, EnrollAtLogin: true}); err != nil {
		t.Fatal(err)
	}
	bobEnr := NewEnrollment("bob")
	c, _ := CodeFor(bobEnr.Secret, e.clock.Now())
	if err := e.s.ConfirmEnrollment(ctxb, sshActor("bob"), ssh.FingerprintSHA256(k), bobEnr, c); err != nil {
		t.Fatal(err)
	}
	e.verify(alice, alice.enr.RecoveryCodes[0])
	var needles [][]byte
	for _, enr := range []*Enrollment{alice.enr, bobEnr} {
		raw, err := b32.DecodeString(enr.Secret)
		if err != nil {
			t.Fatal(err)
		}
		needles = append(needles, []byte(enr.Secret), []byte(strings.ToLower(enr.Secret)), raw)
		for _, rc := range enr.RecoveryCodes {
			needles = append(needles, []byte(rc), []byte(strings.ReplaceAll(rc, "-", "")), []byte(strings.ToUpper(rc)))
		}
	}
	assertNotInFiles(t, e.dir, "before checkpoint", needles...)
	if err := e.s.Checkpoint(ctxb); err != nil {
		t.Fatal(err)
	}
	assertNotInFiles(t, e.dir, "after checkpoint", needles...)
	e.reopen()
	assertNotInFiles(t, e.dir, "after reopen", needles...)
	for _, ev := range allEvents(t, e.s) {
		for _, n := range needles {
			if strings.Contains(ev.Detail, string(n)) {
				t.Fatalf("audit row %d (%s) holds a secret", ev.ID, ev.Action)
			}
		}
	}
}

// TestErrorMessagesCarryNoSecrets collects the errors that reach staff and
// checks that neither the safe message nor the full text holds a secret.
func TestErrorMessagesCarryNoSecrets(t *testing.T) {
	e := newEnv(t)
	alice := e.add("alice", true)
	bob := e.add("bob", false)
	secrets := []string{alice.enr.Secret, bob.enr.Secret, EncodeMasterKey(e.mk), body24}
	secrets = append(secrets, alice.enr.RecoveryCodes...)
	var errs []error
	keep := func(_ any, err error) { errs = append(errs, err) }

	_, _, err := ParseStripeKey("sk_live_" + body24 + "!")
	errs = append(errs, err)
	keep(e.s.SetStripeKey(ctxb, sshActor("alice"), SetKeyRequest{Key: testKey, Code: alice.enr.RecoveryCodes[0][:6]}))
	keep(e.s.SetStripeKey(ctxb, sshActor("alice"), SetKeyRequest{Key: "pk_live_" + body24}))
	errs = append(errs, e.s.ConfirmEnrollment(ctxb, sshActor("alice"), alice.fp, alice.enr, "000000"))
	_, err = ParseMasterKey(EncodeMasterKey(e.mk)[:20])
	errs = append(errs, err)
	db := rawDB(t, e.dir)
	mustExec(t, db, `UPDATE staff SET totp_secret = (SELECT totp_secret FROM staff WHERE name = 'alice') WHERE name = 'bob'`)
	keep(e.s.VerifyCode(ctxb, sshActor("bob"), bob.fp, e.code(alice, 0), PurposeLogin))
	_, err = Open(ctxb, Options{Dir: e.dir, MasterKey: NewMasterKey()})
	errs = append(errs, err)

	for i, err := range errs {
		if err == nil {
			t.Fatalf("case %d: no error", i)
		}
		for _, msg := range []string{ErrorMessage(err), err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			for _, s := range secrets {
				if strings.Contains(msg, s) {
					t.Errorf("case %d: %q holds a secret", i, msg)
				}
			}
		}
	}
}
