package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/zalando/go-keyring"
)

// Where the active Stripe key comes from.
const (
	SourceEnv      = "env"
	SourceKeyring  = "keyring"
	SourceDatabase = "database"
	SourceNone     = "none"
)

// SourceLabel names a key source (SourceEnv, …) for people, as the
// console and the web admin show it.
func SourceLabel(src string) string {
	switch src {
	case SourceEnv:
		return "environment (STRIPE_API_KEY)"
	case SourceKeyring:
		return "OS keyring"
	case SourceDatabase:
		return "database (encrypted)"
	}
	return "none"
}

// Stripe key modes and kinds.
const (
	ModeTest       = "test"
	ModeLive       = "live"
	KindSecret     = "secret"
	KindRestricted = "restricted"
)

const stripeKeyName = "stripe_api_key"

// Keyring stores one secret per (service, user), like the OS keyring.
type Keyring interface {
	Get(service, user string) (string, error)
	Set(service, user, secret string) error
}

// KeyringService is the service name Backroom uses in the OS keyring.
const KeyringService = "backroom"

// OSKeyring is the operating system's keyring (Secret Service on Linux,
// Keychain on macOS) through zalando/go-keyring.
type OSKeyring struct{}

// Get reads a secret; a missing one is ErrKeyringNotFound.
func (OSKeyring) Get(service, user string) (string, error) {
	v, err := keyring.Get(service, user)
	if errors.Is(err, keyring.ErrNotFound) {
		return "", ErrKeyringNotFound
	}
	return v, err
}

// Set writes a secret.
func (OSKeyring) Set(service, user, secret string) error { return keyring.Set(service, user, secret) }

// ErrKeyringNotFound is returned by a Keyring that holds no such secret.
var ErrKeyringNotFound = errors.New("no such secret in the keyring")

// CheckKeyring makes sure the keyring can be reached (a missing secret is
// fine). Start-up calls it so that USE_KEYRING=1 never falls back silently.
func CheckKeyring(k Keyring) error {
	_, err := k.Get(KeyringService, stripeKeyName)
	if err == nil || errors.Is(err, ErrKeyringNotFound) {
		return nil
	}
	return fmt.Errorf("the OS keyring cannot be reached (USE_KEYRING=1): %s", keyringReason(err))
}

// keyringReason shortens a keyring error to its cause without any value.
func keyringReason(err error) string {
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return msg
}

// StripeKeyInfo describes a Stripe key without revealing it.
type StripeKeyInfo struct {
	Mode   string // ModeTest or ModeLive
	Kind   string // KindSecret or KindRestricted
	Masked string // e.g. sk_live_...abcd
}

// Badge is the short mode label shown in headers: TEST, LIVE, TEST·R,
// LIVE·R (restricted).
func (i StripeKeyInfo) Badge() string {
	b := strings.ToUpper(i.Mode)
	if i.Kind == KindRestricted {
		b += "·R"
	}
	return b
}

var stripeKeyRE = regexp.MustCompile(`^(sk|rk)_(test|live)_[A-Za-z0-9]{24,}$`)

// ParseStripeKey validates a Stripe secret or restricted key (surrounding
// white space is trimmed) and returns the trimmed key and what it is. The
// error never contains the key.
func ParseStripeKey(raw string) (string, StripeKeyInfo, error) {
	key := strings.TrimSpace(raw)
	switch {
	case key == "":
		return "", StripeKeyInfo{}, errorf(CodeInvalid, "the key is empty: paste a Stripe secret key (sk_test_…, sk_live_…) or restricted key (rk_test_…, rk_live_…)")
	case strings.HasPrefix(key, "pk_"):
		return "", StripeKeyInfo{}, errorf(CodeInvalid, "that is a publishable key, not a secret key: use the secret key (sk_…) or a restricted key (rk_…) from the Stripe dashboard")
	case !stripeKeyRE.MatchString(key):
		return "", StripeKeyInfo{}, errorf(CodeInvalid, "not a Stripe secret key: expected sk_test_, sk_live_, rk_test_ or rk_live_ followed by at least 24 letters and digits")
	}
	info := StripeKeyInfo{Mode: ModeTest, Kind: KindSecret, Masked: MaskStripeKey(key)}
	if strings.HasPrefix(key[3:], "live_") {
		info.Mode = ModeLive
	}
	if strings.HasPrefix(key, "rk_") {
		info.Kind = KindRestricted
	}
	return key, info, nil
}

// MaskStripeKey shows a key's prefix and last four characters only:
// sk_live_...abcd.
func MaskStripeKey(key string) string {
	i := strings.Index(key, "_")
	if i < 0 || len(key) < 12 {
		return "..."
	}
	j := strings.Index(key[i+1:], "_")
	if j < 0 {
		return "..."
	}
	prefix := key[:i+1+j+1]
	return prefix + "..." + key[len(key)-4:]
}

// KeyStatus is the state of the Stripe key as shown to staff.
type KeyStatus struct {
	Source string // SourceEnv, SourceKeyring, SourceDatabase or SourceNone
	StripeKeyInfo
	SetBy string
	SetAt time.Time
	// Shadowed is true when STRIPE_API_KEY is set and a stored key exists
	// too: the environment wins.
	Shadowed     bool
	StoredMasked string // the stored key's masked form, when shadowed
	Storage      string // where `key set` writes: SourceKeyring or SourceDatabase
	// Warning is set by SetStripeKey when the key was stored without
	// Stripe's confirmation (Stripe could not be reached).
	Warning string
}

// Badge is TEST, LIVE, TEST·R, LIVE·R or NONE.
func (k KeyStatus) Badge() string {
	if k.Source == SourceNone {
		return "NONE"
	}
	return k.StripeKeyInfo.Badge()
}

type storedKey struct {
	value   []byte
	masked  string
	storage string
	setBy   string
	setAt   int64
}

// readPool runs fixed read queries through prepared statements.
type readPool struct{ s *Store }

func (r readPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return r.s.queryRow(ctx, query, args...)
}

func (s *Store) readStoredKey(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (storedKey, bool, error) {
	var k storedKey
	err := q.QueryRowContext(ctx, `SELECT value, masked, storage, set_by, set_at FROM secrets WHERE name = ?`, stripeKeyName).
		Scan(&k.value, &k.masked, &k.storage, &k.setBy, &k.setAt)
	if errors.Is(err, sql.ErrNoRows) {
		return k, false, nil
	}
	return k, err == nil, err
}

// KeyStatus reports where the active key comes from and what it is.
func (s *Store) KeyStatus(ctx context.Context) (KeyStatus, error) {
	st := KeyStatus{Source: SourceNone, Storage: SourceDatabase}
	if s.keyring != nil {
		st.Storage = SourceKeyring
	}
	stored, ok, err := s.readStoredKey(ctx, readPool{s})
	if err != nil {
		return st, err
	}
	if s.envKey != "" {
		_, info, err := ParseStripeKey(s.envKey)
		if err != nil {
			return st, err
		}
		st.Source, st.StripeKeyInfo, st.SetBy = SourceEnv, info, "STRIPE_API_KEY"
		if ok {
			st.Shadowed, st.StoredMasked = true, stored.masked
		}
		return st, nil
	}
	if !ok {
		return st, nil
	}
	var info StripeKeyInfo
	if stored.storage == SourceKeyring {
		// The masked form says all the status needs: no keyring call (a
		// D-Bus round trip) for every console that opens.
		if s.keyring == nil {
			return st, errorf(CodeInvalid, "the Stripe key is kept in the OS keyring: start with USE_KEYRING=1")
		}
		if info, err = infoFromMasked(stored.masked); err != nil {
			return st, err
		}
	} else {
		// Opening the sealed value (microseconds) proves it is intact.
		key, err := s.storedKeyValue(stored)
		if err != nil {
			return st, err
		}
		if _, info, err = ParseStripeKey(key); err != nil {
			return st, err
		}
	}
	st.Source, st.StripeKeyInfo = stored.storage, info
	st.SetBy, st.SetAt = stored.setBy, time.UnixMilli(stored.setAt).UTC()
	return st, nil
}

// infoFromMasked reads mode and kind back from a masked key
// ("sk_live_...abcd").
func infoFromMasked(masked string) (StripeKeyInfo, error) {
	info := StripeKeyInfo{Masked: masked, Mode: ModeTest, Kind: KindSecret}
	switch {
	case strings.HasPrefix(masked, "sk_test_"):
	case strings.HasPrefix(masked, "sk_live_"):
		info.Mode = ModeLive
	case strings.HasPrefix(masked, "rk_test_"):
		info.Kind = KindRestricted
	case strings.HasPrefix(masked, "rk_live_"):
		info.Mode, info.Kind = ModeLive, KindRestricted
	default:
		return StripeKeyInfo{}, errorf(CodeInternal, "the stored Stripe key's record is damaged; set the key again")
	}
	return info, nil
}

func (s *Store) storedKeyValue(k storedKey) (string, error) {
	if k.storage == SourceKeyring {
		if s.keyring == nil {
			return "", errorf(CodeInvalid, "the Stripe key is kept in the OS keyring: start with USE_KEYRING=1")
		}
		v, err := s.keyring.Get(KeyringService, stripeKeyName)
		if err != nil {
			return "", fmt.Errorf("store: read the Stripe key from the keyring: %s", keyringReason(err))
		}
		return v, nil
	}
	pt, err := s.sealer.open(k.value, adSecret(stripeKeyName))
	return string(pt), err
}

// StripeKey returns the active Stripe key, for talking to Stripe. It is
// empty (and ok false) when none is set.
func (s *Store) StripeKey(ctx context.Context) (key string, ok bool, err error) {
	if s.envKey != "" {
		return s.envKey, true, nil
	}
	stored, found, err := s.readStoredKey(ctx, readPool{s})
	if err != nil || !found {
		return "", false, err
	}
	key, err = s.storedKeyValue(stored)
	return key, err == nil, err
}

// SetKeyRequest is the input of SetStripeKey.
type SetKeyRequest struct {
	Key string
	// ConfirmLive must be true for a live key set from an interactive
	// channel (the staff member typed LIVE).
	ConfirmLive bool
	// Code is a fresh TOTP code (step-up); required from every channel
	// but cli and system.
	Code        string
	Fingerprint string // the session's key, for the audit row
}

// SetStripeKey validates and stores a new Stripe key: in the OS keyring
// when one is configured, otherwise sealed in the database. From the
// console, the web or an unknown channel (anything but cli and system) it
// requires a fresh TOTP code, and a live key needs explicit confirmation.
// The audit row records the old and new masked keys.
func (s *Store) SetStripeKey(ctx context.Context, a Actor, req SetKeyRequest) (KeyStatus, error) {
	key, info, err := ParseStripeKey(req.Key)
	if err != nil {
		return KeyStatus{}, err
	}
	// Fail closed: only the CLI (access to the data directory) and Backroom
	// itself skip the step-up; an actor whose channel is unset or unknown
	// is treated as interactive.
	interactive := a.Channel != ChannelCLI && a.Channel != ChannelSystem
	if interactive && info.Mode == ModeLive && !req.ConfirmLive {
		return KeyStatus{}, errorf(CodeInvalid, "this is a LIVE key: type LIVE to confirm")
	}
	// Ask Stripe before anything is stored: a key it rejects is refused;
	// one that cannot be checked (Stripe unreachable) is stored with a
	// warning.
	warning := ""
	if s.keyChecker != nil {
		switch err := s.keyChecker.CheckKey(ctx, key); {
		case err == nil:
		case errors.Is(err, ErrKeyRejected):
			return KeyStatus{}, &Error{Code: CodeInvalid, Msg: "Stripe rejected this key (" + info.Masked + "): " + keyCheckReason(err) + "; check that it was copied whole and has not been rolled"}
		default:
			warning = "Stripe could not be reached to check the key (" + keyCheckReason(err) + "); it was stored unchecked"
			s.log.Warn("stored a Stripe key without checking it", "masked", info.Masked, "reason", keyCheckReason(err))
		}
	}
	if interactive {
		res, err := s.VerifyCode(ctx, a, req.Fingerprint, req.Code, PurposeStepUp)
		if err != nil {
			return KeyStatus{}, err
		}
		switch {
		case res.Verdict == CodeLocked:
			return KeyStatus{}, errorf(CodeForbidden, "you are temporarily locked after too many wrong codes; try again later or ask an admin")
		case !res.Verdict.OK():
			return KeyStatus{}, errorf(CodeForbidden, "the verification code was not accepted: type the current code from your authenticator")
		}
	}
	err = s.write(ctx, func(tx *wtx) error {
		old, had, err := s.readStoredKey(ctx, tx)
		if err != nil {
			return err
		}
		storage := SourceDatabase
		var value []byte
		if s.keyring != nil {
			storage = SourceKeyring
		} else {
			value = s.sealer.seal([]byte(key), adSecret(stripeKeyName))
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO secrets (name, value, masked, storage, set_by, set_at) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value, masked = excluded.masked, storage = excluded.storage,
			set_by = excluded.set_by, set_at = excluded.set_at`,
			stripeKeyName, value, info.Masked, storage, a.Name, s.now().UnixMilli()); err != nil {
			return fmt.Errorf("store: save the Stripe key: %w", err)
		}
		d := Detail{"new": info.Masked, "mode": info.Mode, "kind": info.Kind, "storage": storage, "old": nil}
		if had {
			d["old"] = old.masked
		}
		if s.envKey != "" {
			d["shadowed_by_env"] = true
		}
		if interactive {
			d["step_up"] = true
		}
		if err := tx.audit(ctx, a, ActionKeyUpdated, stripeKeyName, d); err != nil {
			return err
		}
		if storage == SourceKeyring {
			// Last, so that a keyring failure rolls the row back.
			if err := s.keyring.Set(KeyringService, stripeKeyName, key); err != nil {
				return &Error{Code: CodeInternal, Msg: "the OS keyring refused the key", Err: errors.New(keyringReason(err))}
			}
		}
		return nil
	})
	if err != nil {
		return KeyStatus{}, err
	}
	st, err := s.KeyStatus(ctx)
	st.Warning = warning
	return st, err
}

// KeyChecker asks Stripe whether a key works. It returns an error wrapping
// ErrKeyRejected when Stripe refuses the key, and any other error when
// Stripe could not be asked. Errors never contain the key.
type KeyChecker interface {
	CheckKey(ctx context.Context, key string) error
}

// ErrKeyRejected marks a key Stripe refused (invalid, revoked, expired).
var ErrKeyRejected = errors.New("rejected by Stripe")

// keyCheckReason is the checker's error without the ErrKeyRejected marker.
func keyCheckReason(err error) string {
	msg := err.Error()
	msg = strings.TrimSuffix(msg, ": "+ErrKeyRejected.Error())
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return msg
}
