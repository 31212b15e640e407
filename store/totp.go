package store

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
)

// TOTP parameters (RFC 6238 as authenticator apps implement it).
const (
	TOTPPeriod    = 30 * time.Second
	TOTPDigits    = 6
	TOTPSkew      = 1 // steps accepted either side of now
	RecoveryCodes = 10
	issuer        = "Backroom"
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Enrollment is what a staff member needs to set up their authenticator:
// show it once, to them only. It holds secrets; never log it.
type Enrollment struct {
	Name          string
	Secret        string // base32, no padding
	URI           string // otpauth://totp/...
	RecoveryCodes []string
}

// String hides the secrets.
func (e Enrollment) String() string { return "[enrollment for " + e.Name + "]" }

// GoString hides the secrets from %#v too.
func (e Enrollment) GoString() string { return e.String() }

// LogValue hides the secrets from log/slog, whose JSON handler would
// otherwise marshal every field.
func (e Enrollment) LogValue() slog.Value { return slog.StringValue(e.String()) }

// NewEnrollment makes a fresh secret and recovery codes for name without
// storing anything (for enrollment at login, stored on confirmation).
func NewEnrollment(name string) *Enrollment {
	secret := make([]byte, 20) // 160 bits, as RFC 4226 recommends
	if _, err := rand.Read(secret); err != nil {
		panic(err)
	}
	e := &Enrollment{Name: name, Secret: b32.EncodeToString(secret)}
	v := url.Values{}
	v.Set("secret", e.Secret)
	v.Set("issuer", issuer)
	v.Set("algorithm", "SHA1")
	v.Set("digits", fmt.Sprint(TOTPDigits))
	v.Set("period", fmt.Sprint(int(TOTPPeriod/time.Second)))
	e.URI = (&url.URL{Scheme: "otpauth", Host: "totp", Path: "/" + issuer + ":" + name, RawQuery: v.Encode()}).String()
	for range RecoveryCodes {
		e.RecoveryCodes = append(e.RecoveryCodes, newRecoveryCode())
	}
	return e
}

// newRecoveryCode returns ten base32 characters (50 bits) as "xxxxx-xxxxx".
func newRecoveryCode() string {
	b := make([]byte, 7)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	c := strings.ToLower(b32.EncodeToString(b))[:10]
	return c[:5] + "-" + c[5:]
}

func normalizeCode(code string) string {
	r := strings.NewReplacer(" ", "", "-", "", "\t", "")
	return strings.ToLower(r.Replace(strings.TrimSpace(code)))
}

func (s *Store) recoveryHash(name, code string) string {
	m := hmac.New(sha256.New, s.recoveryMK)
	m.Write([]byte(name + "\x00" + normalizeCode(code)))
	return hex.EncodeToString(m.Sum(nil))
}

// enroll stores a TOTP secret and fresh recovery codes for name (a new
// enrollment unless e is given).
func (tx *wtx) enroll(ctx context.Context, name string, e *Enrollment) (*Enrollment, error) {
	if e == nil {
		e = NewEnrollment(name)
	}
	secret, err := b32.DecodeString(e.Secret)
	if err != nil {
		return nil, errorf(CodeInvalid, "the TOTP secret is not valid base32")
	}
	sealed := tx.s.sealer.seal(secret, adTOTP(name))
	r, err := tx.ExecContext(ctx, `UPDATE staff SET totp_secret = ?, enroll_at_login = 0, last_step = 0, failures = 0,
		locked_until = NULL, enrolled_at = ? WHERE name = ?`, sealed, tx.s.now().UnixMilli(), name)
	if err != nil {
		return nil, fmt.Errorf("store: enroll: %w", err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return nil, errorf(CodeNotFound, "no staff member named %q", name)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE staff = ?`, name); err != nil {
		return nil, err
	}
	for _, c := range e.RecoveryCodes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO recovery_codes (staff, hash) VALUES (?, ?)`, name, tx.s.recoveryHash(name, c)); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// ResetTOTP replaces a member's TOTP secret and recovery codes. With
// enrollAtLogin the member has none until they enroll at their next login
// (their key alone then opens only the enrollment screen).
func (s *Store) ResetTOTP(ctx context.Context, a Actor, name string, enrollAtLogin bool) (*Enrollment, error) {
	if err := a.requireAdmin("reset TOTP"); err != nil {
		return nil, err
	}
	var enr *Enrollment
	err := s.write(ctx, func(tx *wtx) error {
		ok, err := tx.staffExists(ctx, name)
		if err != nil {
			return err
		}
		if !ok {
			if len(s.Keys().UserEntries(name)) == 0 {
				return errorf(CodeNotFound, "no staff member named %q", name)
			}
			// Listed in authorized_keys by hand: create their state.
			if _, err := tx.ExecContext(ctx, `INSERT INTO staff (name, created_at) VALUES (?, ?)`, name, s.now().UnixMilli()); err != nil {
				return err
			}
		}
		if enrollAtLogin {
			if _, err := tx.ExecContext(ctx, `UPDATE staff SET totp_secret = NULL, enroll_at_login = 1, last_step = 0,
				failures = 0, locked_until = NULL, enrolled_at = NULL WHERE name = ?`, name); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE staff = ?`, name); err != nil {
				return err
			}
		} else if enr, err = tx.enroll(ctx, name, nil); err != nil {
			return err
		}
		return tx.audit(ctx, a, ActionTOTPReset, name, Detail{"enroll_at_login": enrollAtLogin})
	})
	return enr, err
}

// LoginState is what the SSH server needs to know about a member before it
// asks for a code.
type LoginState struct {
	Exists        bool
	Enrolled      bool
	EnrollAtLogin bool
	LockedUntil   time.Time
	// WebPassword tells whether the member has a web admin password (the
	// console shows it on its home screen without a query of its own).
	WebPassword bool
}

// LoginState returns the member's second-factor state.
func (s *Store) LoginState(ctx context.Context, name string) (LoginState, error) {
	var st LoginState
	var locked sql.NullInt64
	err := s.queryRow(ctx, `SELECT totp_secret IS NOT NULL, enroll_at_login, locked_until, password_hash IS NOT NULL FROM staff WHERE name = ?`, name).
		Scan(&st.Enrolled, &st.EnrollAtLogin, &locked, &st.WebPassword)
	if errors.Is(err, sql.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	st.Exists = true
	if locked.Valid && locked.Int64 > s.now().UnixMilli() {
		st.LockedUntil = time.UnixMilli(locked.Int64).UTC()
	}
	return st, nil
}

// Verdict is the outcome of a code check.
type Verdict int

// Verdicts of VerifyCode.
const (
	CodeAccepted    Verdict = iota + 1 // a fresh TOTP code
	CodeRecovery                       // an unused recovery code (now used)
	CodeWrong                          // neither
	CodeReplayed                       // a TOTP code of a step already used (or older)
	CodeLocked                         // the member is locked (the code was not even checked)
	CodeNotEnrolled                    // the member has no TOTP secret
)

// OK reports whether the verdict lets the member in.
func (v Verdict) OK() bool { return v == CodeAccepted || v == CodeRecovery }

func (v Verdict) String() string {
	switch v {
	case CodeAccepted:
		return "accepted"
	case CodeRecovery:
		return "recovery code"
	case CodeWrong:
		return "wrong code"
	case CodeReplayed:
		return "replayed code"
	case CodeLocked:
		return "locked"
	case CodeNotEnrolled:
		return "no second factor enrolled"
	}
	return "unknown"
}

// CodeResult is what VerifyCode decided.
type CodeResult struct {
	Verdict      Verdict
	LockedUntil  time.Time // set when the member is (now) locked
	RecoveryLeft int       // unused recovery codes left, after CodeRecovery
}

// Purposes of a code check.
const (
	PurposeLogin  = "login"
	PurposeStepUp = "step-up"
)

// VerifyCode checks a TOTP or recovery code typed by member a.Name (key
// fingerprint fp) and records the outcome in one transaction: a TOTP step
// once accepted is never accepted again (nor any older one), a recovery code
// works once, and consecutive failures lock the member. Every outcome is
// audited with the fingerprint and the remote address.
func (s *Store) VerifyCode(ctx context.Context, a Actor, fp, code, purpose string) (CodeResult, error) {
	var res CodeResult
	// Re-runnable: the closure sets res afresh, and everything a check
	// changes (the step, failures, the lock, spent recovery codes, ended
	// web sessions, audit rows) is in the transaction.
	err := s.writeRerunnable(ctx, func(tx *wtx) error {
		var err error
		res, err = tx.verifyCode(ctx, a, fp, code, purpose)
		return err
	})
	if err != nil {
		// Whatever a rolled-back run had found is not the answer.
		return CodeResult{}, err
	}
	return res, nil
}

func (tx *wtx) verifyCode(ctx context.Context, a Actor, fp, code, purpose string) (CodeResult, error) {
	s := tx.s
	now := s.now()
	name := a.Name
	detail := Detail{"purpose": purpose}
	if fp != "" {
		// A web sign-in has no key: its rows carry no fingerprint.
		detail["fingerprint"] = fp
	}
	fail := func(v Verdict) (CodeResult, error) {
		detail["reason"] = v.String()
		return CodeResult{Verdict: v}, tx.audit(ctx, a, ActionLoginFailure, name, detail)
	}

	var sealed []byte
	var lastStep int64
	var failures int
	var locked sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT totp_secret, last_step, failures, locked_until FROM staff WHERE name = ?`, name).
		Scan(&sealed, &lastStep, &failures, &locked)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && sealed == nil) {
		return fail(CodeNotEnrolled)
	}
	if err != nil {
		return CodeResult{}, err
	}
	if locked.Valid && locked.Int64 > now.UnixMilli() {
		res, err := fail(CodeLocked)
		res.LockedUntil = time.UnixMilli(locked.Int64).UTC()
		return res, err
	}
	secret, err := s.sealer.open(sealed, adTOTP(name))
	if err != nil {
		return CodeResult{}, err
	}

	c := normalizeCode(code)
	verdict := CodeWrong
	switch {
	case len(c) == TOTPDigits && isDigits(c):
		step, ok := matchTOTP(secret, c, now)
		switch {
		case !ok:
		case step <= lastStep:
			verdict = CodeReplayed
		default:
			// The conditional update is what makes one code win exactly
			// once, whoever else is checking it at the same moment.
			r, err := tx.ExecContext(ctx, `UPDATE staff SET last_step = ?, failures = 0 WHERE name = ? AND last_step < ?`, step, name, step)
			if err != nil {
				return CodeResult{}, err
			}
			if n, _ := r.RowsAffected(); n == 1 {
				verdict = CodeAccepted
				detail["step"] = step
			} else {
				verdict = CodeReplayed
			}
		}
	case len(c) == 10:
		r, err := tx.ExecContext(ctx, `UPDATE recovery_codes SET used_at = ? WHERE staff = ? AND hash = ? AND used_at IS NULL`,
			now.UnixMilli(), name, s.recoveryHash(name, c))
		if err != nil {
			return CodeResult{}, err
		}
		if n, _ := r.RowsAffected(); n == 1 {
			verdict = CodeRecovery
			if _, err := tx.ExecContext(ctx, `UPDATE staff SET failures = 0 WHERE name = ?`, name); err != nil {
				return CodeResult{}, err
			}
		}
	}

	if verdict.OK() {
		res := CodeResult{Verdict: verdict}
		if verdict == CodeRecovery {
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM recovery_codes WHERE staff = ? AND used_at IS NULL`, name).Scan(&res.RecoveryLeft); err != nil {
				return res, err
			}
			rd := Detail{"purpose": purpose, "remaining": res.RecoveryLeft}
			if fp != "" {
				rd["fingerprint"] = fp
			}
			if err := tx.audit(ctx, a, ActionLoginRecoveryCode, name, rd); err != nil {
				return res, err
			}
			detail["method"] = "recovery_code"
		} else {
			detail["method"] = "totp"
		}
		if purpose == PurposeLogin {
			if err := tx.audit(ctx, a, ActionLoginSuccess, name, detail); err != nil {
				return res, err
			}
		}
		return res, nil
	}

	failures++
	if failures >= s.lockoutAfter {
		// Millisecond precision, as stored: LockedUntil then equals what
		// LoginState and ListStaff report later.
		until := now.Add(s.lockoutFor).Truncate(time.Millisecond)
		if _, err := tx.ExecContext(ctx, `UPDATE staff SET failures = 0, locked_until = ? WHERE name = ?`, until.UnixMilli(), name); err != nil {
			return CodeResult{}, err
		}
		res, err := fail(verdict)
		if err != nil {
			return res, err
		}
		res.Verdict = CodeLocked
		res.LockedUntil = until.UTC()
		locked := Detail{"failures": s.lockoutAfter, "until": until.UTC().Format(TimeFormat)}
		if fp != "" {
			locked["fingerprint"] = fp
		}
		if err := tx.audit(ctx, a, ActionLoginLocked, name, locked); err != nil {
			return res, err
		}
		// A locked member keeps no web session: they end in the same
		// transaction as the lock.
		_, err = tx.endWebSessions(ctx, System, `name = ?`, []any{name}, ActionSessionTerminated, "member locked after too many wrong codes")
		return res, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE staff SET failures = ? WHERE name = ?`, failures, name); err != nil {
		return CodeResult{}, err
	}
	return fail(verdict)
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// TOTPStep is the RFC 6238 time step of t.
func TOTPStep(t time.Time) int64 { return t.Unix() / int64(TOTPPeriod/time.Second) }

// matchTOTP returns the step in T-1..T+1 whose code equals code.
func matchTOTP(secret []byte, code string, now time.Time) (int64, bool) {
	t := TOTPStep(now)
	var found int64
	ok := false
	for step := t - TOTPSkew; step <= t+TOTPSkew; step++ {
		want, err := TOTPCode(secret, step)
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			found, ok = step, true
		}
	}
	return found, ok
}

// TOTPCode computes the code of secret at a time step (tests and tools
// use it to play the authenticator app).
func TOTPCode(secret []byte, step int64) (string, error) {
	return hotp.GenerateCodeCustom(b32.EncodeToString(secret), uint64(step), hotp.ValidateOpts{
		Digits:    otp.DigitsSix,
		Algorithm: otp.AlgorithmSHA1,
	})
}

// CodeFor computes the code of a base32 secret at time t.
func CodeFor(secret string, t time.Time) (string, error) {
	raw, err := b32.DecodeString(strings.ToUpper(strings.TrimRight(secret, "=")))
	if err != nil {
		return "", err
	}
	return TOTPCode(raw, TOTPStep(t))
}

// ConfirmEnrollment stores e for a member enrolling at login once they typed
// a valid code for it. The step of that code counts as used.
func (s *Store) ConfirmEnrollment(ctx context.Context, a Actor, fp string, e *Enrollment, code string) error {
	raw, err := b32.DecodeString(e.Secret)
	if err != nil {
		return errorf(CodeInvalid, "the TOTP secret is not valid base32")
	}
	step, ok := matchTOTP(raw, normalizeCode(code), s.now())
	if !ok {
		return errorf(CodeInvalid, "that code does not match: check the authenticator's clock and type the current 6-digit code")
	}
	return s.write(ctx, func(tx *wtx) error {
		var enrollAtLogin bool
		var hasSecret bool
		err := tx.QueryRowContext(ctx, `SELECT enroll_at_login, totp_secret IS NOT NULL FROM staff WHERE name = ?`, a.Name).Scan(&enrollAtLogin, &hasSecret)
		if errors.Is(err, sql.ErrNoRows) {
			return errorf(CodeNotFound, "no staff member named %q", a.Name)
		}
		if err != nil {
			return err
		}
		if !enrollAtLogin || hasSecret {
			return errorf(CodeConflict, "%s is not waiting to enroll", a.Name)
		}
		if _, err := tx.enroll(ctx, a.Name, e); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE staff SET last_step = ? WHERE name = ?`, step, a.Name); err != nil {
			return err
		}
		return tx.audit(ctx, a, ActionTOTPEnrolled, a.Name, Detail{"fingerprint": fp})
	})
}
