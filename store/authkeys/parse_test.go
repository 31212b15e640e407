package authkeys

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

const (
	optAlice = `environment="BACKROOM_USER=alice"`
	optBob   = `environment="BACKROOM_USER=bob"`
	optAdmin = `environment="BACKROOM_ROLE=admin"`
)

type wantEntry struct {
	line    int
	user    string
	role    string
	key     ssh.PublicKey
	comment string
	from    []string
	expires time.Time
}

type wantProblem struct {
	line int
	msg  string // substring of Problem.Msg
}

type parseCase struct {
	name     string
	input    string
	loc      *time.Location
	entries  []wantEntry
	problems []wantProblem
}

// parseCases is shared by TestParse and the seed corpus of FuzzParse.
func parseCases(tb testing.TB) []parseCase {
	k := keys(tb)
	plus2 := time.FixedZone("UTC+2", 2*60*60)
	lines := func(ls ...string) string { return strings.Join(ls, "\n") + "\n" }
	good := optAlice + " " + ak(k.ed1) + " alice@laptop"
	goodEntry := func(line int) wantEntry {
		return wantEntry{line: line, user: "alice", role: RoleStaff, key: k.ed1, comment: "alice@laptop"}
	}
	// refused builds a case whose line 2 is bad, after a good line 1.
	refused := func(name, bad, msg string) parseCase {
		return parseCase{
			name:     name,
			input:    lines(good, bad),
			entries:  []wantEntry{goodEntry(1)},
			problems: []wantProblem{{2, msg}},
		}
	}
	truncated := k.ed2.Marshal()
	truncated = truncated[:len(truncated)-5]
	withJunk := append(k.ed2.Marshal(), 0, 0, 0, 1, 'x')
	unsupported := "is not supported by Backroom (supported: environment, from, expiry-time)"

	cases := []parseCase{
		{name: "empty", input: ""},
		{name: "only comments and blanks", input: "# one\n\n   \n\t# two\n"},
		{
			name:    "ed25519",
			input:   good + "\n",
			entries: []wantEntry{goodEntry(1)},
		},
		{
			name:    "ecdsa p256",
			input:   lines(optAlice + " " + ak(k.p256) + " p256"),
			entries: []wantEntry{{line: 1, user: "alice", role: RoleStaff, key: k.p256, comment: "p256"}},
		},
		{
			name:    "ecdsa p384",
			input:   lines(optAlice + " " + ak(k.p384) + " p384"),
			entries: []wantEntry{{line: 1, user: "alice", role: RoleStaff, key: k.p384, comment: "p384"}},
		},
		{
			name:    "ecdsa p521",
			input:   lines(optAlice + " " + ak(k.p521) + " p521"),
			entries: []wantEntry{{line: 1, user: "alice", role: RoleStaff, key: k.p521, comment: "p521"}},
		},
		{
			name:    "sk ed25519",
			input:   lines(optAlice + " " + ak(k.skEd) + " yubikey"),
			entries: []wantEntry{{line: 1, user: "alice", role: RoleStaff, key: k.skEd, comment: "yubikey"}},
		},
		{
			name:    "sk ecdsa p256",
			input:   lines(optAlice + " " + ak(k.skP256) + " yubikey"),
			entries: []wantEntry{{line: 1, user: "alice", role: RoleStaff, key: k.skP256, comment: "yubikey"}},
		},
		{
			name:    "rsa 3072",
			input:   lines(optAlice + " " + ak(k.rsa3072) + " old laptop"),
			entries: []wantEntry{{line: 1, user: "alice", role: RoleStaff, key: k.rsa3072, comment: "old laptop"}},
		},
		{
			name:    "admin role, no comment",
			input:   lines(optAlice + "," + optAdmin + " " + ak(k.ed1)),
			entries: []wantEntry{{line: 1, user: "alice", role: RoleAdmin, key: k.ed1}},
		},
		{
			name:    "explicit staff role",
			input:   lines(`environment="BACKROOM_ROLE=staff",` + optAlice + " " + ak(k.ed1)),
			entries: []wantEntry{{line: 1, user: "alice", role: RoleStaff, key: k.ed1}},
		},
		{
			name: "several keys for one user",
			input: lines(
				optAlice+" "+ak(k.ed1)+" one",
				optBob+" "+ak(k.ed2)+" bob",
				optAlice+" "+ak(k.p256)+" two",
				optAlice+" "+ak(k.rsa3072)+" three",
			),
			entries: []wantEntry{
				{line: 1, user: "alice", role: RoleStaff, key: k.ed1, comment: "one"},
				{line: 2, user: "bob", role: RoleStaff, key: k.ed2, comment: "bob"},
				{line: 3, user: "alice", role: RoleStaff, key: k.p256, comment: "two"},
				{line: 4, user: "alice", role: RoleStaff, key: k.rsa3072, comment: "three"},
			},
		},
		{
			name:    "comments and blank lines keep line numbers",
			input:   "# managed\n\n   \n  # indented comment\n" + good + "\n\n# " + optBob + " " + ak(k.ed2) + "\n",
			entries: []wantEntry{goodEntry(5)},
		},
		{
			name:  "CRLF line endings",
			input: "# header\r\n" + good + "\r\n\r\n" + optBob + " " + ak(k.ed2) + "\r\n",
			entries: []wantEntry{
				goodEntry(2),
				{line: 4, user: "bob", role: RoleStaff, key: k.ed2},
			},
		},
		{
			name:    "no final newline, leading white space, tabs",
			input:   "\n \t" + optAlice + "\t" + k.ed1.Type() + "\t " + b64(k.ed1) + "\talice@laptop  ",
			entries: []wantEntry{goodEntry(2)},
		},
		{
			name:    "UTF-8 byte order mark",
			input:   "\ufeff" + good + "\r\n",
			entries: []wantEntry{goodEntry(1)},
		},
		{
			name:    "comment with spaces and hash",
			input:   lines(optAlice + " " + ak(k.ed1) + " alice's key # 2  (work)"),
			entries: []wantEntry{{line: 1, user: "alice", role: RoleStaff, key: k.ed1, comment: "alice's key # 2  (work)"}},
		},
		{
			name:  "option names are case-insensitive",
			input: lines(`ENVIRONMENT="BACKROOM_USER=alice",Environment="BACKROOM_ROLE=admin",FROM="10.0.0.0/8",Expiry-Time="20300101Z" ` + ak(k.ed1)),
			entries: []wantEntry{{line: 1, user: "alice", role: RoleAdmin, key: k.ed1,
				from: []string{"10.0.0.0/8"}, expires: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}},
		},
		{
			name:  "from with negation, CIDR v6 and wildcard; commas inside quotes",
			input: lines(optAlice + `,from="10.0.0.0/8,!10.0.0.5,fd00::/8,192.168.1.*,2001:db8::1" ` + ak(k.ed1)),
			entries: []wantEntry{{line: 1, user: "alice", role: RoleStaff, key: k.ed1,
				from: []string{"10.0.0.0/8", "!10.0.0.5", "fd00::/8", "192.168.1.*", "2001:db8::1"}}},
		},
		{
			name: "expiry forms",
			input: lines(
				optAlice+`,expiry-time="20270101" `+ak(k.ed1),
				optAlice+`,expiry-time="202701021530" `+ak(k.ed2),
				optAlice+`,expiry-time="20270103153045Z" `+ak(k.ed3),
			),
			loc: plus2,
			entries: []wantEntry{
				{line: 1, user: "alice", role: RoleStaff, key: k.ed1, expires: time.Date(2027, 1, 1, 0, 0, 0, 0, plus2)},
				{line: 2, user: "alice", role: RoleStaff, key: k.ed2, expires: time.Date(2027, 1, 2, 15, 30, 0, 0, plus2)},
				{line: 3, user: "alice", role: RoleStaff, key: k.ed3, expires: time.Date(2027, 1, 3, 15, 30, 45, 0, time.UTC)},
			},
		},
		{
			name:    "expiry without Z defaults to UTC",
			input:   lines(optAlice + `,expiry-time="202701021530" ` + ak(k.ed1)),
			entries: []wantEntry{{line: 1, user: "alice", role: RoleStaff, key: k.ed1, expires: time.Date(2027, 1, 2, 15, 30, 0, 0, time.UTC)}},
		},
		{
			name:    "expired entry still parses",
			input:   lines(optAlice + `,expiry-time="20000101Z" ` + ak(k.ed1)),
			entries: []wantEntry{{line: 1, user: "alice", role: RoleStaff, key: k.ed1, expires: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		},

		// Key type policy.
		refused("ssh-dss", optBob+" "+k.dss, "ssh-dss (DSA) keys are refused: use ed25519, ecdsa, or RSA of at least 3072 bits"),
		refused("rsa 2048", optBob+" "+ak(k.rsa2048), "ssh-rsa key of 2048 bits is too weak: use ed25519, ecdsa, or RSA of at least 3072 bits"),
		refused("certificate", optBob+" "+ak(k.cert), "ssh-ed25519-cert-v01@openssh.com is a certificate; certificates are not accepted"),
		refused("unknown key type", optBob+" "+k.unknown, "key type ssh-foo is not supported: use ed25519"),
		refused("unknown key type without options", k.unknown, `missing environment="BACKROOM_USER=<name>"`),
		refused("type field does not match data", optBob+" ssh-rsa "+b64(k.ed2), "key type field says ssh-rsa but the key data is ssh-ed25519"),
		refused("signature algorithm as type", optBob+" rsa-sha2-512 "+b64(k.rsa3072), "rsa-sha2-512 is a signature algorithm, not a key type"),

		// Options Backroom does not support.
		refused("no-pty", optBob+",no-pty "+ak(k.ed2), "option no-pty "+unsupported),
		refused("restrict first", "restrict,"+optBob+" "+ak(k.ed2), "option restrict "+unsupported),
		refused("command", optBob+`,command="/bin/date" `+ak(k.ed2), "option command "+unsupported),
		refused("permitopen", optBob+`,permitopen="localhost:80" `+ak(k.ed2), "option permitopen "+unsupported),
		refused("cert-authority", "cert-authority,"+optBob+" "+ak(k.ed2), "option cert-authority "+unsupported),
		refused("upper-case unsupported option", optBob+",No-Port-Forwarding "+ak(k.ed2), "option No-Port-Forwarding "+unsupported),
		refused("unsupported option alone", "no-pty "+ak(k.ed2), "option no-pty "+unsupported),
		refused("garbage words", "hello world", "option hello "+unsupported),
		refused("other environment variable", optBob+`,environment="PATH=/tmp" `+ak(k.ed2), "environment variable PATH is not supported by Backroom (supported: BACKROOM_USER, BACKROOM_ROLE)"),
		refused("environment without =", `environment="BACKROOM_USER" `+ak(k.ed2), "is not NAME=VALUE"),
		refused("environment without value", `environment,`+optBob+" "+ak(k.ed2), "option environment needs a quoted value"),
		refused("bad role", optBob+`,environment="BACKROOM_ROLE=root" `+ak(k.ed2), "BACKROOM_ROLE=root is not a role (use admin or staff)"),
		refused("role value is case-sensitive", optBob+`,environment="BACKROOM_ROLE=Admin" `+ak(k.ed2), "BACKROOM_ROLE=Admin is not a role"),
		refused("role twice", optBob+","+optAdmin+","+optAdmin+" "+ak(k.ed2), "BACKROOM_ROLE is set more than once"),
		refused("missing BACKROOM_USER", optAdmin+" "+ak(k.ed2), `missing environment="BACKROOM_USER=<name>"`),
		refused("key without options", ak(k.ed2)+" bob", `missing environment="BACKROOM_USER=<name>"`),
		refused("BACKROOM_USER twice", optBob+","+optAlice+" "+ak(k.ed2), "BACKROOM_USER is set more than once"),
		refused("upper-case name", `environment="BACKROOM_USER=Bob" `+ak(k.ed2), "user name Bob is not valid"),
		refused("name starting with digit", `environment="BACKROOM_USER=1bob" `+ak(k.ed2), "user name 1bob is not valid"),
		refused("name too long", `environment="BACKROOM_USER=`+strings.Repeat("b", 33)+`" `+ak(k.ed2), "is not valid: a name is 1 to 32 characters"),
		refused("empty name", `environment="BACKROOM_USER=" `+ak(k.ed2), `user name "" is not valid`),
		refused("name with space inside quotes", `environment="BACKROOM_USER=bob smith" `+ak(k.ed2), `user name "bob smith" is not valid`),
		refused("escaped quote in name", `environment="BACKROOM_USER=bo\"b" `+ak(k.ed2), `user name "bo\"b" is not valid`),
		refused("escaped quotes and comma inside an unsupported option", `command="echo \"hi, there\" ok",`+optBob+" "+ak(k.ed2), "option command "+unsupported),
		refused("escaped quotes inside an environment value", `environment="X=\"a, b\"",`+optBob+" "+ak(k.ed2), "environment variable X is not supported"),
		refused("unterminated quote", `environment="BACKROOM_USER=bob `+ak(k.ed2), "option environment: unterminated quote"),
		refused("escaped final quote leaves the value open", `environment="BACKROOM_USER=bob\" `+ak(k.ed2), "option environment: unterminated quote"),
		refused("unquoted value", optBob+`,from=10.0.0.1 `+ak(k.ed2), "option from: the value must be in double quotes"),
		refused("only options, no key", optBob+","+optAdmin, "options are not followed by a key"),
		refused("only options and spaces, no key", optBob+"   ", "options are not followed by a key"),
		refused("garbage after a quoted value", optBob+`x `+ak(k.ed2), "unexpected x after option environment"),
		refused("quote in the middle of an option name", `env"x" `+ak(k.ed2), `unexpected "\"" after option env`),
		refused("stray comma", optBob+",,"+optAdmin+" "+ak(k.ed2), "empty option at column"),
		refused("leading comma", ","+optBob+" "+ak(k.ed2), "does not start with options or a key type"),
		refused("missing key data", optBob+" ssh-ed25519", "ssh-ed25519 key has no base64 key data after the type"),
		refused("bad base64", optBob+" ssh-ed25519 AAAA!!!!", "ssh-ed25519 key data is not valid base64"),
		refused("garbage after base64", optBob+" ssh-ed25519 "+b64(k.ed2)+"junk", "ssh-ed25519 key data is not a valid key: ssh: trailing junk"),
		refused("garbage after padded base64", optBob+" ssh-ed25519 "+b64(k.ed2)+"=", "ssh-ed25519 key data is not valid base64"),
		refused("truncated key data", optBob+" ssh-ed25519 "+base64.StdEncoding.EncodeToString(truncated), "ssh-ed25519 key data is not a valid key"),
		refused("trailing garbage inside key data", optBob+" ssh-ed25519 "+base64.StdEncoding.EncodeToString(withJunk), "ssh-ed25519 key data is not a valid key"),

		// from= patterns.
		refused("from host name", optBob+`,from="*.example.com" `+ak(k.ed2), "from pattern *.example.com is not an address wildcard (host name patterns are not supported)"),
		refused("from plain host name", optBob+`,from="10.0.0.1,bastion.example.com" `+ak(k.ed2), "from pattern bastion.example.com is not an IP address, CIDR block or address wildcard"),
		refused("from negated host name", optBob+`,from="10.0.0.0/8,!evil" `+ak(k.ed2), "from pattern !evil is not an IP address"),
		refused("from CIDR with host bits", optBob+`,from="10.0.0.1/8" `+ak(k.ed2), "from pattern 10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)"),
		refused("from bad CIDR", optBob+`,from="10.0.0.0/33" `+ak(k.ed2), "from pattern 10.0.0.0/33 is not a valid CIDR block"),
		refused("from empty pattern", optBob+`,from="10.0.0.1," `+ak(k.ed2), `from pattern "" is empty`),
		refused("from empty list", optBob+`,from="" `+ak(k.ed2), `from pattern "" is empty`),
		refused("from zone", optBob+`,from="fe80::1%eth0" `+ak(k.ed2), "is not an IP address"),
		refused("from twice", optBob+`,from="10.0.0.1",from="10.0.0.2" `+ak(k.ed2), "option from is given more than once"),

		// expiry-time.
		refused("expiry too short", optBob+`,expiry-time="2027011" `+ak(k.ed2), "expiry-time 2027011 is not YYYYMMDD[HHMM[SS]][Z]"),
		refused("expiry with dashes", optBob+`,expiry-time="2027-01-01" `+ak(k.ed2), "is not YYYYMMDD[HHMM[SS]][Z]"),
		refused("expiry Feb 30", optBob+`,expiry-time="20270230" `+ak(k.ed2), "expiry-time 20270230 is not a valid date and time"),
		refused("expiry month 13", optBob+`,expiry-time="20271301" `+ak(k.ed2), "is not a valid date and time"),
		refused("expiry hour 24", optBob+`,expiry-time="202701012400" `+ak(k.ed2), "is not a valid date and time"),
		refused("expiry year 1 would look like no expiry", optBob+`,expiry-time="00010101Z" `+ak(k.ed2), "expiry-time 00010101Z is before 1970"),
		refused("expiry twice", optBob+`,expiry-time="20300101",expiry-time="20310101" `+ak(k.ed2), "option expiry-time is given more than once"),

		{
			name: "duplicate fingerprint: the later line grants nothing",
			input: lines(
				good,
				optBob+" "+ak(k.ed2),
				optBob+","+optAdmin+" "+ak(k.ed1)+" stolen",
			),
			entries: []wantEntry{
				goodEntry(1),
				{line: 2, user: "bob", role: RoleStaff, key: k.ed2},
			},
			problems: []wantProblem{{3, "key " + ssh.FingerprintSHA256(k.ed1) + " already listed on line 1"}},
		},
		{
			name: "duplicate of a refused line is not a duplicate",
			input: lines(
				optBob+",no-pty "+ak(k.ed2),
				optBob+" "+ak(k.ed2),
			),
			entries:  []wantEntry{{line: 2, user: "bob", role: RoleStaff, key: k.ed2}},
			problems: []wantProblem{{1, "option no-pty " + unsupported}},
		},
		{
			name: "role disagreement makes every entry of the user staff",
			input: lines(
				optAlice+","+optAdmin+" "+ak(k.ed1),
				optBob+","+optAdmin+" "+ak(k.ed2),
				"# comment",
				optAlice+" "+ak(k.p256),
				optAlice+","+optAdmin+" "+ak(k.p384),
			),
			entries: []wantEntry{
				{line: 1, user: "alice", role: RoleStaff, key: k.ed1},
				{line: 2, user: "bob", role: RoleAdmin, key: k.ed2},
				{line: 4, user: "alice", role: RoleStaff, key: k.p256},
				{line: 5, user: "alice", role: RoleStaff, key: k.p384},
			},
			problems: []wantProblem{{4, "user alice has conflicting roles (admin on lines 1, 5; staff on line 4): every key of alice is treated as staff"}},
		},
		{
			name: "problems are sorted by line",
			input: lines(
				optAlice+","+optAdmin+" "+ak(k.ed1),
				"no-pty "+ak(k.ed2),
				optAlice+" "+ak(k.p256),
				optAlice+" "+ak(k.ed1),
			),
			entries: []wantEntry{
				{line: 1, user: "alice", role: RoleStaff, key: k.ed1},
				{line: 3, user: "alice", role: RoleStaff, key: k.p256},
			},
			problems: []wantProblem{
				{2, "option no-pty"},
				{3, "conflicting roles (admin on line 1; staff on line 3)"},
				{4, "already listed on line 1"},
			},
		},
	}
	return cases
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			f := Parse([]byte(tc.input), ParseOptions{Location: tc.loc})
			if f == nil {
				t.Fatal("Parse returned nil")
			}
			if len(f.Entries) != len(tc.entries) {
				t.Errorf("got %d entries, want %d", len(f.Entries), len(tc.entries))
			}
			for i := 0; i < min(len(f.Entries), len(tc.entries)); i++ {
				checkEntry(t, f.Entries[i], tc.entries[i])
			}
			if len(f.Problems) != len(tc.problems) {
				t.Errorf("got %d problems, want %d: %v", len(f.Problems), len(tc.problems), f.Problems)
			}
			for i := 0; i < min(len(f.Problems), len(tc.problems)); i++ {
				got, want := f.Problems[i], tc.problems[i]
				if got.Line != want.line || !strings.Contains(got.Msg, want.msg) {
					t.Errorf("problem %d = %q, want line %d containing %q", i, got.Error(), want.line, want.msg)
				}
			}
		})
	}
}

func checkEntry(t *testing.T, got Entry, want wantEntry) {
	t.Helper()
	if got.Line != want.line || got.User != want.user || got.Role != want.role || got.Comment != want.comment {
		t.Errorf("entry = line %d user %q role %q comment %q; want line %d user %q role %q comment %q",
			got.Line, got.User, got.Role, got.Comment, want.line, want.user, want.role, want.comment)
	}
	if got.Key == nil || !bytes.Equal(got.Key.Marshal(), want.key.Marshal()) {
		t.Errorf("line %d: wrong key", got.Line)
	} else if got.Fingerprint != ssh.FingerprintSHA256(want.key) {
		t.Errorf("line %d: fingerprint %q, want %q", got.Line, got.Fingerprint, ssh.FingerprintSHA256(want.key))
	}
	if !slices.Equal(got.From, want.from) || (got.From == nil) != (want.from == nil) {
		t.Errorf("line %d: From = %#v, want %#v", got.Line, got.From, want.from)
	}
	if !got.ExpiresAt.Equal(want.expires) || got.ExpiresAt.Location().String() != want.expires.Location().String() {
		t.Errorf("line %d: ExpiresAt = %v, want %v", got.Line, got.ExpiresAt, want.expires)
	}
}

func TestParseNilAndDigest(t *testing.T) {
	f := Parse(nil, ParseOptions{})
	if f == nil || len(f.Entries) != 0 || len(f.Problems) != 0 {
		t.Fatalf("Parse(nil) = %+v", f)
	}
	empty := sha256.Sum256(nil)
	if f.Digest != hex.EncodeToString(empty[:]) {
		t.Errorf("Digest of empty input = %q", f.Digest)
	}

	k := keys(t)
	data := []byte(optAlice + " " + ak(k.ed1) + "\n")
	sum := sha256.Sum256(data)
	if got := Parse(data, ParseOptions{}).Digest; got != hex.EncodeToString(sum[:]) {
		t.Errorf("Digest = %q, want %x", got, sum)
	}
	crlf := bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n"))
	if Parse(crlf, ParseOptions{}).Digest == Parse(data, ParseOptions{}).Digest {
		t.Error("Digest ignores CR bytes: it must cover the exact bytes")
	}
}

func TestProblemError(t *testing.T) {
	p := Problem{Line: 4, Msg: "option no-pty is not supported"}
	var err error = p
	if got, want := err.Error(), "line 4: option no-pty is not supported"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestFileAccessors(t *testing.T) {
	k := keys(t)
	input := strings.Join([]string{
		optBob + " " + ak(k.ed2) + " bob",
		optAlice + "," + optAdmin + " " + ak(k.ed1) + " a1",
		`environment="BACKROOM_USER=carol" ` + ak(k.p256),
		optAlice + "," + optAdmin + " " + ak(k.rsa3072) + " a2",
	}, "\n")
	f := Parse([]byte(input), ParseOptions{})
	if len(f.Problems) != 0 {
		t.Fatalf("problems: %v", f.Problems)
	}

	if got, want := f.Users(), []string{"alice", "bob", "carol"}; !slices.Equal(got, want) {
		t.Errorf("Users() = %v, want %v", got, want)
	}
	wantFPs := []string{ssh.FingerprintSHA256(k.ed2), ssh.FingerprintSHA256(k.ed1), ssh.FingerprintSHA256(k.p256), ssh.FingerprintSHA256(k.rsa3072)}
	slices.Sort(wantFPs)
	if got := f.Fingerprints(); !slices.Equal(got, wantFPs) {
		t.Errorf("Fingerprints() = %v, want %v", got, wantFPs)
	}

	ae := f.UserEntries("alice")
	if len(ae) != 2 || ae[0].Line != 2 || ae[1].Line != 4 || ae[0].Comment != "a1" || ae[1].Comment != "a2" {
		t.Errorf("UserEntries(alice) = %+v", ae)
	}
	if got := f.UserEntries("dave"); got != nil {
		t.Errorf("UserEntries(dave) = %v, want nil", got)
	}

	// Lookup compares key bytes: a separately parsed copy of the key matches.
	copyOfEd1, err := ssh.ParsePublicKey(k.ed1.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := f.Lookup("alice", copyOfEd1); !ok || e.Line != 2 || e.Role != RoleAdmin {
		t.Errorf("Lookup(alice, ed1) = %+v, %v", e, ok)
	}
	if _, ok := f.Lookup("bob", k.ed1); ok {
		t.Error("Lookup(bob, alice's key) succeeded")
	}
	if _, ok := f.Lookup("alice", k.ed3); ok {
		t.Error("Lookup(alice, unknown key) succeeded")
	}
	if _, ok := f.Lookup("alice", nil); ok {
		t.Error("Lookup(alice, nil) succeeded")
	}

	if e, ok := f.ByFingerprint(ssh.FingerprintSHA256(k.p256)); !ok || e.User != "carol" || e.Line != 3 {
		t.Errorf("ByFingerprint(p256) = %+v, %v", e, ok)
	}
	if _, ok := f.ByFingerprint(ssh.FingerprintSHA256(k.ed3)); ok {
		t.Error("ByFingerprint(unknown) succeeded")
	}

	var nilFile *File
	if _, ok := nilFile.Lookup("alice", k.ed1); ok || nilFile.Users() != nil || nilFile.Fingerprints() != nil || nilFile.UserEntries("alice") != nil {
		t.Error("methods on a nil *File should find nothing")
	}
	if _, ok := nilFile.ByFingerprint("x"); ok {
		t.Error("ByFingerprint on nil *File found something")
	}
}

func TestValidUser(t *testing.T) {
	for _, name := range []string{"a", "alice", "_svc", "a.b-c_d9", "z" + strings.Repeat("9", 31)} {
		if err := ValidUser(name); err != nil {
			t.Errorf("ValidUser(%q) = %v", name, err)
		}
	}
	for _, name := range []string{"", "Alice", "9lives", "-x", ".x", "a b", "a/b", "é", "a\n", strings.Repeat("a", 33)} {
		err := ValidUser(name)
		if err == nil {
			t.Errorf("ValidUser(%q) = nil", name)
			continue
		}
		if !strings.Contains(err.Error(), "starts with a lowercase letter or '_'") {
			t.Errorf("ValidUser(%q) error %q does not explain the rule", name, err)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("ValidUser(%q) error has a line break: %q", name, err)
		}
	}
}

func TestExpiredAndCheckAccess(t *testing.T) {
	k := keys(t)
	exp := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	e := Entry{User: "alice", Key: k.ed1, Fingerprint: ssh.FingerprintSHA256(k.ed1), ExpiresAt: exp, From: []string{"10.0.0.0/8"}}
	for _, tc := range []struct {
		now  time.Time
		want bool
	}{
		{exp.Add(-time.Second), false},
		{exp, false}, // valid up to and including the instant, as in OpenSSH
		{exp.Add(time.Second), true},
	} {
		if got := e.Expired(tc.now); got != tc.want {
			t.Errorf("Expired(%v) = %v, want %v", tc.now, got, tc.want)
		}
	}
	if (Entry{}).Expired(time.Now()) {
		t.Error("an entry without expiry is expired")
	}

	// Without Z, expiry-time is read in the given location.
	line := []byte(optAlice + `,expiry-time="202701010100" ` + ak(k.ed1))
	plus2 := time.FixedZone("UTC+2", 2*60*60)
	inPlus2 := Parse(line, ParseOptions{Location: plus2}).Entries[0]
	inUTC := Parse(line, ParseOptions{}).Entries[0]
	at := time.Date(2026, 12, 31, 23, 30, 0, 0, time.UTC) // 01:30 in UTC+2
	if !inPlus2.Expired(at) || inUTC.Expired(at) {
		t.Errorf("expiry location not honoured: UTC+2 expired=%v, UTC expired=%v", inPlus2.Expired(at), inUTC.Expired(at))
	}

	ip := []byte{10, 1, 2, 3}
	if err := e.CheckAccess(exp, ip); err != nil {
		t.Errorf("CheckAccess in time from an allowed address: %v", err)
	}
	if err := e.CheckAccess(exp.Add(time.Hour), ip); err == nil || !strings.Contains(err.Error(), "expired at 2027-01-01T00:00:00Z") {
		t.Errorf("CheckAccess after expiry = %v", err)
	}
	if err := e.CheckAccess(exp, []byte{192, 168, 0, 1}); err == nil || !strings.Contains(err.Error(), "may not be used from 192.168.0.1") {
		t.Errorf("CheckAccess from a refused address = %v", err)
	}
}

func TestCheckKeyType(t *testing.T) {
	k := keys(t)
	for _, key := range []ssh.PublicKey{k.ed1, k.p256, k.p384, k.p521, k.skEd, k.skP256, k.rsa3072} {
		if err := CheckKeyType(key); err != nil {
			t.Errorf("CheckKeyType(%s) = %v", key.Type(), err)
		}
	}
	for _, tc := range []struct {
		name string
		key  ssh.PublicKey
		msg  string
	}{
		{"nil", nil, "no key"},
		{"rsa 2048", k.rsa2048, "ssh-rsa key of 2048 bits is too weak: use ed25519, ecdsa, or RSA of at least 3072 bits"},
		{"certificate", k.cert, "is a certificate"},
		{"dsa", fakeKey{typ: "ssh-dss", blob: []byte("x")}, "ssh-dss (DSA) keys are refused: use ed25519, ecdsa, or RSA of at least 3072 bits"},
		{"type lies about data", fakeKey{typ: "ssh-ed25519", blob: k.rsa2048.Marshal()}, "key claims type ssh-ed25519 but its data is ssh-rsa"},
		{"rsa type with undecodable data", fakeKey{typ: "ssh-rsa", blob: []byte{0, 0, 0, 7, 's', 's', 'h', '-', 'r', 's', 'a'}}, "ssh-rsa key cannot be decoded"},
	} {
		err := CheckKeyType(tc.key)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: CheckKeyType = %v, want error containing %q", tc.name, err, tc.msg)
		}
	}
}

// fakeKey is an ssh.PublicKey whose type and wire form are chosen freely.
type fakeKey struct {
	typ  string
	blob []byte
}

func (f fakeKey) Type() string                        { return f.typ }
func (f fakeKey) Marshal() []byte                     { return f.blob }
func (f fakeKey) Verify([]byte, *ssh.Signature) error { return fmt.Errorf("fake key") }

func TestParseKey(t *testing.T) {
	k := keys(t)
	for _, tc := range []struct {
		name, in string
		key      ssh.PublicKey
		comment  string
	}{
		{"pub file", ak(k.ed1) + " alice@laptop\n", k.ed1, "alice@laptop"},
		{"CRLF, no comment", ak(k.p384) + "\r\n", k.p384, ""},
		{"leading comment and blank", "# my key\n\n" + ak(k.rsa3072) + " rsa key\n", k.rsa3072, "rsa key"},
		{"security key", ak(k.skEd) + " yubi", k.skEd, "yubi"},
		{"byte order mark", "\ufeff" + ak(k.ed2) + " bom\r\n", k.ed2, "bom"},
	} {
		key, comment, err := ParseKey([]byte(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !bytes.Equal(key.Marshal(), tc.key.Marshal()) || comment != tc.comment {
			t.Errorf("%s: got %s %q, want %s %q", tc.name, key.Type(), comment, tc.key.Type(), tc.comment)
		}
	}
	for _, tc := range []struct{ name, in, msg string }{
		{"empty", "", "no public key found"},
		{"only a comment", "# nothing\n", "no public key found"},
		{"private key", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n", "this is a private key"},
		{"rfc 4716", "---- BEGIN SSH2 PUBLIC KEY ----\nAAAA\n---- END SSH2 PUBLIC KEY ----\n", "ssh-keygen -i"},
		{"pem public key", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not an OpenSSH public key line"},
		{"two keys", ak(k.ed1) + "\n" + ak(k.ed2) + "\n", "more than one line"},
		{"options", optAlice + " " + ak(k.ed1), "options are not allowed here"},
		{"unsupported option", "no-pty " + ak(k.ed1), "options are not allowed here"},
		{"garbage", "hello world", "key type hello is not supported"},
		{"rsa 2048", ak(k.rsa2048) + " old", "ssh-rsa key of 2048 bits is too weak"},
		{"dsa", k.dss, "ssh-dss (DSA) keys are refused"},
		{"certificate", ak(k.cert), "is a certificate"},
		{"bad base64", "ssh-ed25519 AAAA!!!", "not valid base64"},
		{"type only", "ssh-ed25519", "has no base64 key data"},
		{"type mismatch", "ecdsa-sha2-nistp256 " + b64(k.ed1), "key type field says ecdsa-sha2-nistp256 but the key data is ssh-ed25519"},
	} {
		_, _, err := ParseKey([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: ParseKey error = %v, want one containing %q", tc.name, err, tc.msg)
		}
	}
}
