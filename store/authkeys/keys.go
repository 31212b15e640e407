package authkeys

import (
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// MinRSABits is the smallest RSA modulus, in bits, that CheckKeyType accepts.
const MinRSABits = 3072

// allowedAdvice ends every key type refusal.
const allowedAdvice = "use ed25519, ecdsa, or RSA of at least 3072 bits"

// allowedKeyType reports whether name is a key type Backroom accepts
// (ssh-rsa also needs at least MinRSABits).
func allowedKeyType(name string) bool {
	switch name {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256, ssh.KeyAlgoRSA:
		return true
	}
	return false
}

// knownKeyTypeName reports whether name looks like an SSH key type, allowed
// or not. It decides whether a line starts with a key or with options.
func knownKeyTypeName(name string) bool {
	if allowedKeyType(name) {
		return true
	}
	switch name {
	case "ssh-dss", "ssh-rsa1", ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSASHA512:
		return true
	}
	return strings.HasPrefix(name, "ssh-") && !strings.ContainsAny(name, `=",`) ||
		strings.HasPrefix(name, "ecdsa-sha2-") ||
		strings.HasPrefix(name, "sk-") && strings.HasSuffix(name, "@openssh.com") ||
		strings.HasSuffix(name, "-cert-v01@openssh.com")
}

// checkTypeName refuses key types that are never allowed, whatever the key.
func checkTypeName(name string) error {
	if allowedKeyType(name) {
		return nil
	}
	switch {
	case name == "ssh-dss":
		return errors.New("ssh-dss (DSA) keys are refused: " + allowedAdvice)
	case strings.Contains(name, "-cert-"):
		return fmt.Errorf("%s is a certificate; certificates are not accepted, list the plain public key instead (%s)", show(name), allowedAdvice)
	case name == ssh.KeyAlgoRSASHA256 || name == ssh.KeyAlgoRSASHA512:
		return fmt.Errorf("%s is a signature algorithm, not a key type: RSA keys are written as ssh-rsa", name)
	}
	return fmt.Errorf("key type %s is not supported: %s", show(name), allowedAdvice)
}

// CheckKeyType applies Backroom's key policy. It accepts ssh-ed25519,
// ecdsa-sha2-nistp256/384/521, sk-ssh-ed25519@openssh.com,
// sk-ecdsa-sha2-nistp256@openssh.com, and ssh-rsa of at least MinRSABits
// bits. It refuses everything else, certificates included, with an error
// that says what is allowed.
func CheckKeyType(k ssh.PublicKey) error {
	if k == nil {
		return errors.New("no key")
	}
	name := k.Type()
	if err := checkTypeName(name); err != nil {
		return err
	}
	// Decode the wire form again so that the policy looks at what the key
	// really is, not at what its Go type claims.
	parsed, err := ssh.ParsePublicKey(k.Marshal())
	if err != nil {
		return fmt.Errorf("%s key cannot be decoded: %v", name, err)
	}
	if parsed.Type() != name {
		return fmt.Errorf("key claims type %s but its data is %s", name, show(parsed.Type()))
	}
	if name != ssh.KeyAlgoRSA {
		return nil
	}
	var bits int
	if cpk, ok := parsed.(ssh.CryptoPublicKey); ok {
		if rk, ok := cpk.CryptoPublicKey().(*rsa.PublicKey); ok && rk.N != nil {
			bits = rk.N.BitLen()
		}
	}
	if bits < MinRSABits {
		return fmt.Errorf("ssh-rsa key of %d bits is too weak: %s", bits, allowedAdvice)
	}
	return nil
}

// parseKeyFields parses "<type> <base64> [comment]" and applies
// CheckKeyType.
func parseKeyFields(s string) (ssh.PublicKey, string, error) {
	typ, rest := cutField(s)
	if typ == "" {
		return nil, "", errors.New("missing key")
	}
	if err := checkTypeName(typ); err != nil {
		return nil, "", err
	}
	b64, rest := cutField(rest)
	if b64 == "" {
		return nil, "", fmt.Errorf("%s key has no base64 key data after the type", typ)
	}
	blob, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, "", fmt.Errorf("%s key data is not valid base64", typ)
	}
	key, err := ssh.ParsePublicKey(blob)
	if err != nil || key == nil {
		return nil, "", fmt.Errorf("%s key data is not a valid key: %v", typ, err)
	}
	if key.Type() != typ {
		return nil, "", fmt.Errorf("key type field says %s but the key data is %s", typ, show(key.Type()))
	}
	if err := CheckKeyType(key); err != nil {
		return nil, "", err
	}
	return key, strings.Trim(rest, " \t"), nil
}

// ParseKey parses one public key as found in a .pub file:
// "<type> <base64> [comment]", with no options. Blank lines and lines
// starting with # are skipped; more than one key is an error. The key must
// pass CheckKeyType. It returns the key and its comment.
func ParseKey(line []byte) (ssh.PublicKey, string, error) {
	var found string
	for _, raw := range strings.Split(strings.TrimPrefix(string(line), utf8BOM), "\n") {
		l := strings.Trim(raw, " \t\r")
		switch {
		case l == "" || l[0] == '#':
			continue
		case strings.HasPrefix(l, "-----BEGIN") && strings.Contains(l, "PRIVATE KEY"):
			return nil, "", errors.New("this is a private key: give the public key (the .pub file) instead")
		case strings.HasPrefix(l, "---- BEGIN SSH2 PUBLIC KEY"):
			return nil, "", errors.New("this is an RFC 4716 (SSH2) public key: convert it with ssh-keygen -i -f FILE first")
		case strings.HasPrefix(l, "-----BEGIN"):
			return nil, "", errors.New("this is PEM data, not an OpenSSH public key line (\"<type> <base64> [comment]\")")
		case found != "":
			return nil, "", errors.New("more than one line: give exactly one public key")
		}
		found = l
	}
	if found == "" {
		return nil, "", errors.New("no public key found: expected \"<type> <base64> [comment]\"")
	}
	if !startsWithKey(found) {
		first, rest := cutField(found)
		second, _ := cutField(rest)
		if strings.ContainsAny(first, `=",`) || knownKeyTypeName(second) {
			return nil, "", errors.New("options are not allowed here: give a plain public key \"<type> <base64> [comment]\"")
		}
	}
	return parseKeyFields(found)
}
