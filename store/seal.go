package store

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// MasterKeySize is the length of the master key in bytes.
const MasterKeySize = 32

// MasterKey is the root secret: it seals stored secrets and keys the audit
// chain. Its String method never reveals it.
type MasterKey []byte

// String hides the key so that it cannot reach a log by accident.
func (MasterKey) String() string { return "[master key]" }

// GoString hides the key from %#v too.
func (MasterKey) GoString() string { return "[master key]" }

// LogValue hides the key from log/slog too: its handlers print a byte
// slice as raw bytes (text) or base64 (JSON) without calling String.
func (MasterKey) LogValue() slog.Value { return slog.StringValue("[master key]") }

// ErrMasterKeyMismatch is returned by Open when the master key is not the
// one the data was sealed with.
var ErrMasterKeyMismatch = errors.New("the master key does not match the one this data directory was sealed with")

// ParseMasterKey decodes the text form of a master key: 32 bytes in
// standard base64. The error never contains the text.
func ParseMasterKey(text string) (MasterKey, error) {
	text = strings.TrimSpace(text)
	b, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, errors.New("not valid standard base64 (expected 32 random bytes, e.g. from `openssl rand -base64 32`)")
	}
	if len(b) != MasterKeySize {
		return nil, fmt.Errorf("decodes to %d bytes; a master key is exactly %d bytes of standard base64", len(b), MasterKeySize)
	}
	return MasterKey(b), nil
}

// NewMasterKey returns a fresh random master key.
func NewMasterKey() MasterKey {
	b := make([]byte, MasterKeySize)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return MasterKey(b)
}

// EncodeMasterKey is the text form of k (standard base64), as written to a
// master key file.
func EncodeMasterKey(k MasterKey) string { return base64.StdEncoding.EncodeToString(k) }

// LoadMasterKeyFile reads a master key file. When the file is missing and
// create is true, a new key is generated and written 0600; created reports
// that. It never overwrites an existing file.
func LoadMasterKeyFile(path string, create bool) (k MasterKey, created bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		k = NewMasterKey()
		if err := writeFileExclusive(path, []byte(EncodeMasterKey(k)+"\n")); err != nil {
			return nil, false, err
		}
		return k, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	k, err = ParseMasterKey(string(b))
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", path, err)
	}
	return k, false, nil
}

func deriveKey(master MasterKey, purpose string) []byte {
	k, err := hkdf.Key(sha256.New, master, nil, purpose, 32)
	if err != nil {
		panic(err) // only for impossible lengths
	}
	return k
}

// sealer encrypts small secrets with AES-256-GCM. The additional data binds
// each ciphertext to its row and purpose, so a ciphertext copied into
// another row does not decrypt.
type sealer struct{ aead cipher.AEAD }

const sealVersion = 1

func newSealer(master MasterKey) (*sealer, error) {
	block, err := aes.NewCipher(deriveKey(master, "backroom seal v1"))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// seal returns version || nonce || ciphertext.
func (s *sealer) seal(plaintext []byte, ad string) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	out := append([]byte{sealVersion}, nonce...)
	return s.aead.Seal(out, nonce, plaintext, []byte(ad))
}

// errUnseal never says more than that the value could not be opened.
var errUnseal = errors.New("store: a sealed value could not be decrypted (wrong master key or tampered data)")

func (s *sealer) open(sealed []byte, ad string) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, errUnseal
	}
	pt, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(ad))
	if err != nil {
		return nil, errUnseal
	}
	return pt, nil
}

// Additional-data labels: table, column and row.
func adTOTP(name string) string   { return "staff.totp_secret:" + name }
func adSecret(name string) string { return "secrets.value:" + name }

const adKeyCheck = "meta.key_check"

// checkMasterKey makes sure the master key is the one the data was sealed
// with: a fresh database records a check value, an existing one must open it.
func (s *Store) checkMasterKey(ctx context.Context) error {
	return s.write(ctx, func(tx *wtx) error {
		var v string
		err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'key_check'`).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			sealed := s.sealer.seal([]byte("backroom"), adKeyCheck)
			_, err = tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('key_check', ?)`,
				base64.StdEncoding.EncodeToString(sealed))
			return err
		}
		if err != nil {
			return err
		}
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return ErrMasterKeyMismatch
		}
		if _, err := s.sealer.open(b, adKeyCheck); err != nil {
			return ErrMasterKeyMismatch
		}
		return nil
	})
}

// HasData reports whether dir already holds a Backroom database, so that a
// caller can refuse to generate a new master key for existing data.
func HasData(dir string) bool {
	st, err := os.Stat(dir + string(os.PathSeparator) + DBFile)
	return err == nil && st.Size() > 0
}
