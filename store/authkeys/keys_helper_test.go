package authkeys

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"math/big"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

// testKeySet holds keys generated once per test binary (RSA generation is
// slow).
type testKeySet struct {
	ed1, ed2, ed3    ssh.PublicKey
	p256, p384, p521 ssh.PublicKey
	skEd, skP256     ssh.PublicKey
	rsa3072, rsa2048 ssh.PublicKey
	cert             ssh.PublicKey // an ssh-ed25519 user certificate
	dss              string        // "ssh-dss <base64>"; x/crypto no longer parses DSA
	unknown          string        // "ssh-foo <base64>" whose blob says ssh-foo
}

var (
	testKeysOnce sync.Once
	testKeysVal  *testKeySet
	testKeysErr  error
)

// keys returns the shared test keys.
func keys(tb testing.TB) *testKeySet {
	tb.Helper()
	testKeysOnce.Do(func() { testKeysVal, testKeysErr = makeKeys() })
	if testKeysErr != nil {
		tb.Fatalf("generating test keys: %v", testKeysErr)
	}
	return testKeysVal
}

func makeKeys() (*testKeySet, error) {
	var ks testKeySet
	var err error
	newEd := func() (ssh.PublicKey, ed25519.PrivateKey, error) {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		k, err := ssh.NewPublicKey(pub)
		return k, priv, err
	}
	var caPriv ed25519.PrivateKey
	if ks.ed1, _, err = newEd(); err != nil {
		return nil, err
	}
	if ks.ed2, _, err = newEd(); err != nil {
		return nil, err
	}
	if ks.ed3, caPriv, err = newEd(); err != nil {
		return nil, err
	}
	for _, c := range []struct {
		curve elliptic.Curve
		dst   *ssh.PublicKey
	}{{elliptic.P256(), &ks.p256}, {elliptic.P384(), &ks.p384}, {elliptic.P521(), &ks.p521}} {
		priv, err := ecdsa.GenerateKey(c.curve, rand.Reader)
		if err != nil {
			return nil, err
		}
		if *c.dst, err = ssh.NewPublicKey(&priv.PublicKey); err != nil {
			return nil, err
		}
	}
	for _, c := range []struct {
		bits int
		dst  *ssh.PublicKey
	}{{3072, &ks.rsa3072}, {2048, &ks.rsa2048}} {
		priv, err := rsa.GenerateKey(rand.Reader, c.bits)
		if err != nil {
			return nil, err
		}
		if *c.dst, err = ssh.NewPublicKey(&priv.PublicKey); err != nil {
			return nil, err
		}
	}

	// Security-key types cannot be generated without hardware, but their
	// public form is simple: build the wire encoding by hand.
	skPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if ks.skEd, err = ssh.ParsePublicKey(ssh.Marshal(struct {
		Name        string
		Key         []byte
		Application string
	}{ssh.KeyAlgoSKED25519, skPub, "ssh:"})); err != nil {
		return nil, err
	}
	var ec struct {
		Name  string
		Curve string
		Point []byte
	}
	if err := ssh.Unmarshal(ks.p256.Marshal(), &ec); err != nil {
		return nil, err
	}
	if ks.skP256, err = ssh.ParsePublicKey(ssh.Marshal(struct {
		Name        string
		Curve       string
		Point       []byte
		Application string
	}{ssh.KeyAlgoSKECDSA256, "nistp256", ec.Point, "ssh:"})); err != nil {
		return nil, err
	}

	signer, err := ssh.NewSignerFromKey(caPriv)
	if err != nil {
		return nil, err
	}
	cert := &ssh.Certificate{
		Key:             ks.ed1,
		CertType:        ssh.UserCert,
		KeyId:           "alice",
		ValidPrincipals: []string{"alice"},
		ValidBefore:     ssh.CertTimeInfinity,
	}
	if err := cert.SignCert(rand.Reader, signer); err != nil {
		return nil, err
	}
	ks.cert = cert

	one := big.NewInt(1)
	ks.dss = "ssh-dss " + base64.StdEncoding.EncodeToString(ssh.Marshal(struct {
		Name       string
		P, Q, G, Y *big.Int
	}{"ssh-dss", big.NewInt(23), big.NewInt(11), big.NewInt(4), one}))
	ks.unknown = "ssh-foo " + base64.StdEncoding.EncodeToString(ssh.Marshal(struct {
		Name string
		Data []byte
	}{"ssh-foo", []byte("whatever")}))
	return &ks, nil
}

// ak returns "<type> <base64>" for k.
func ak(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// b64 returns the base64 field of k.
func b64(k ssh.PublicKey) string {
	return base64.StdEncoding.EncodeToString(k.Marshal())
}
