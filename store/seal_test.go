package store

import (
	"bytes"
	"strings"
	"testing"
)

func TestSealerBindsAdditionalData(t *testing.T) {
	mk := NewMasterKey()
	s1, err := newSealer(mk)
	if err != nil {
		t.Fatal(err)
	}
	sealed := s1.seal([]byte("top secret"), adTOTP("alice"))
	if pt, err := s1.open(sealed, adTOTP("alice")); err != nil || string(pt) != "top secret" {
		t.Fatalf("round trip: %q %v", pt, err)
	}
	if bytes.Contains(sealed, []byte("top secret")) {
		t.Fatal("sealed value holds the plaintext")
	}
	if again := s1.seal([]byte("top secret"), adTOTP("alice")); bytes.Equal(again, sealed) {
		t.Fatal("two seals of one value are identical (nonce reused?)")
	}
	for _, ad := range []string{adTOTP("bob"), adSecret("alice"), adTOTP("alice "), adKeyCheck, ""} {
		if _, err := s1.open(sealed, ad); err == nil {
			t.Errorf("opened with additional data %q", ad)
		}
	}
	s2, _ := newSealer(NewMasterKey())
	if _, err := s2.open(sealed, adTOTP("alice")); err == nil {
		t.Error("opened with another master key")
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x01
		if _, err := s1.open(bad, adTOTP("alice")); err == nil {
			t.Fatalf("opened with byte %d flipped", i)
		}
	}
	for _, n := range []int{0, 1, 13, len(sealed) - 1} {
		if _, err := s1.open(sealed[:n], adTOTP("alice")); err == nil {
			t.Fatalf("opened a value truncated to %d bytes", n)
		}
	}
}

// TestTOTPSecretSwap copies alice's sealed secret into bob's row: bob's
// codes must not verify with it (it does not decrypt under bob's additional
// data), and alice's codes must not work for bob either.
func TestTOTPSecretSwap(t *testing.T) {
	e := newEnv(t)
	alice := e.add("alice", true)
	bob := e.add("bob", false)
	db := rawDB(t, e.dir)
	mustExec(t, db, `UPDATE staff SET totp_secret = (SELECT totp_secret FROM staff WHERE name = 'alice') WHERE name = 'bob'`)
	before := auditCount(t, e.s)

	for _, code := range []string{e.code(alice, 0), e.code(bob, 0)} {
		res, err := e.s.VerifyCode(ctxb, sshActor("bob"), bob.fp, code, PurposeLogin)
		if err == nil {
			t.Fatalf("bob's verification with alice's sealed secret: %v, want an error", res.Verdict)
		}
		if res.Verdict.OK() {
			t.Fatal("verdict lets bob in")
		}
		if msg := ErrorMessage(err); strings.Contains(msg, alice.enr.Secret) || strings.Contains(msg, bob.enr.Secret) {
			t.Fatalf("error message reveals a secret: %q", msg)
		}
	}
	if n := len(events(t, e.s, ActionLoginSuccess)); n != 0 {
		t.Fatalf("%d login.success rows", n)
	}
	if got := auditCount(t, e.s); got != before {
		t.Fatalf("audit rows %d → %d: a failed verification committed something", before, got)
	}
	// Alice is unaffected.
	if r := e.verify(alice, e.code(alice, 0)); r.Verdict != CodeAccepted {
		t.Fatalf("alice: %v", r.Verdict)
	}
}

func TestTOTPSecretTampered(t *testing.T) {
	e := newEnv(t)
	alice := e.add("alice", true)
	db := rawDB(t, e.dir)
	var sealed []byte
	if err := db.QueryRow(`SELECT totp_secret FROM staff WHERE name = 'alice'`).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	sealed[len(sealed)-5] ^= 0x80
	mustExec(t, db, `UPDATE staff SET totp_secret = ? WHERE name = 'alice'`, sealed)
	if res, err := e.s.VerifyCode(ctxb, sshActor("alice"), alice.fp, e.code(alice, 0), PurposeLogin); err == nil || res.Verdict.OK() {
		t.Fatalf("tampered secret: verdict %v err %v, want an error", res.Verdict, err)
	}
}

// TestStripeKeySealSwap puts ciphertexts sealed for other rows into the
// stripe_api_key row: neither decrypts.
func TestStripeKeySealSwap(t *testing.T) {
	e := newEnv(t)
	e.add("alice", true)
	key := "sk_test_" + strings.Repeat("Ab3", 9)
	if _, err := e.s.SetStripeKey(ctxb, cliAdmin, SetKeyRequest{Key: key}); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, e.dir)
	var good []byte
	if err := db.QueryRow(`SELECT value FROM secrets WHERE name = ?`, stripeKeyName).Scan(&good); err != nil {
		t.Fatal(err)
	}

	// The same plaintext sealed for another secret's row name.
	other := e.s.sealer.seal([]byte(key), adSecret("stripe_webhook_secret"))
	mustExec(t, db, `UPDATE secrets SET value = ? WHERE name = ?`, other, stripeKeyName)
	if _, ok, err := e.s.StripeKey(ctxb); err == nil || ok {
		t.Fatalf("StripeKey with a value sealed for another row: ok=%v err=%v", ok, err)
	}
	if _, err := e.s.KeyStatus(ctxb); err == nil {
		t.Fatal("KeyStatus with a value sealed for another row succeeded")
	}

	// Alice's sealed TOTP secret in the key's row.
	mustExec(t, db, `UPDATE secrets SET value = (SELECT totp_secret FROM staff WHERE name = 'alice') WHERE name = ?`, stripeKeyName)
	if _, _, err := e.s.StripeKey(ctxb); err == nil {
		t.Fatal("StripeKey with a TOTP ciphertext succeeded")
	}

	// The key's own ciphertext, tampered.
	bad := bytes.Clone(good)
	bad[len(bad)/2] ^= 0x01
	mustExec(t, db, `UPDATE secrets SET value = ? WHERE name = ?`, bad, stripeKeyName)
	if _, _, err := e.s.StripeKey(ctxb); err == nil {
		t.Fatal("StripeKey with a tampered ciphertext succeeded")
	}

	// And the original again.
	mustExec(t, db, `UPDATE secrets SET value = ? WHERE name = ?`, good, stripeKeyName)
	if got, ok, err := e.s.StripeKey(ctxb); err != nil || !ok || got != key {
		t.Fatalf("original ciphertext restored: ok=%v err=%v", ok, err)
	}
}
