package authkeys

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestFormatLayout(t *testing.T) {
	k := keys(t)
	plus2 := time.FixedZone("UTC+2", 2*60*60)
	out := string(Format([]Entry{
		{User: "alice", Role: RoleAdmin, Key: k.ed1, Comment: "alice@laptop",
			From: []string{"10.0.0.0/8", "!10.0.0.5"}, ExpiresAt: time.Date(2027, 1, 1, 2, 0, 0, 0, plus2)},
		{User: "bob", Role: RoleStaff, Key: k.ed2},
		{User: "carol", Key: k.p256, Comment: "  spaced  "},
		{User: "nokey", Role: RoleAdmin}, // no key: left out
	}))
	lines := strings.Split(out, "\n")
	if len(lines) != 5 || lines[4] != "" {
		t.Fatalf("Format wrote %d lines:\n%s", len(lines), out)
	}
	header := lines[0]
	for _, want := range []string{"# ", "Backroom", `environment="BACKROOM_USER=<name>"`} {
		if !strings.Contains(header, want) || !strings.HasPrefix(header, "#") {
			t.Errorf("header %q does not contain %q", header, want)
		}
	}
	wantLines := []string{
		`environment="BACKROOM_USER=alice",environment="BACKROOM_ROLE=admin",from="10.0.0.0/8,!10.0.0.5",expiry-time="20270101000000Z" ` + ak(k.ed1) + " alice@laptop",
		`environment="BACKROOM_USER=bob" ` + ak(k.ed2),
		`environment="BACKROOM_USER=carol" ` + ak(k.p256) + " spaced",
	}
	for i, want := range wantLines {
		if lines[i+1] != want {
			t.Errorf("line %d:\n got %s\nwant %s", i+2, lines[i+1], want)
		}
	}
}

func TestFormatParseRoundTrip(t *testing.T) {
	k := keys(t)
	plus2 := time.FixedZone("UTC+2", 2*60*60)
	input := strings.Join([]string{
		"# hand-written file",
		`Environment="BACKROOM_USER=alice",environment="BACKROOM_ROLE=admin" ` + ak(k.ed1) + " alice@laptop",
		"",
		`from="10.0.0.0/8,!10.0.0.5,fd00::/8,192.168.1.*",environment="BACKROOM_USER=alice",environment="BACKROOM_ROLE=admin" ` + ak(k.rsa3072),
		`environment="BACKROOM_USER=bob",expiry-time="202701021530" ` + ak(k.p256) + " bob's key",
		`environment="BACKROOM_USER=bob",environment="BACKROOM_ROLE=staff",expiry-time="20270103Z" ` + ak(k.skEd),
		`environment="BACKROOM_USER=carol.d-x_1" ` + ak(k.p384),
		`environment="BACKROOM_USER=_svc" ` + ak(k.p521),
		`environment="BACKROOM_USER=_svc" ` + ak(k.skP256) + " second",
	}, "\r\n")
	first := Parse([]byte(input), ParseOptions{Location: plus2})
	if len(first.Problems) != 0 || len(first.Entries) != 7 {
		t.Fatalf("first parse: %d entries, problems %v", len(first.Entries), first.Problems)
	}

	formatted := Format(first.Entries)
	// Write and read back through a real file, as the store does.
	path := filepath.Join(t.TempDir(), "authorized_keys")
	if err := os.WriteFile(path, formatted, 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The location must not matter: Format writes UTC with Z.
	second := Parse(data, ParseOptions{Location: time.FixedZone("UTC-7", -7*60*60)})
	if len(second.Problems) != 0 {
		t.Fatalf("re-parse problems: %v\n%s", second.Problems, formatted)
	}
	if len(second.Entries) != len(first.Entries) {
		t.Fatalf("re-parse: %d entries, want %d", len(second.Entries), len(first.Entries))
	}
	for i, a := range first.Entries {
		b := second.Entries[i]
		if a.User != b.User || a.Role != b.Role || a.Comment != b.Comment || a.Fingerprint != b.Fingerprint ||
			!bytes.Equal(a.Key.Marshal(), b.Key.Marshal()) || !slices.Equal(a.From, b.From) ||
			(a.From == nil) != (b.From == nil) || !a.ExpiresAt.Equal(b.ExpiresAt) {
			t.Errorf("entry %d changed:\n got %+v\nwant %+v", i, b, a)
		}
		if b.Line != i+2 { // the header is line 1
			t.Errorf("entry %d on line %d, want %d", i, b.Line, i+2)
		}
	}
	// Formatting is stable.
	if again := Format(second.Entries); !bytes.Equal(again, formatted) {
		t.Errorf("Format is not stable:\n%s\n---\n%s", formatted, again)
	}
}

func TestFormatFailsClosed(t *testing.T) {
	k := keys(t)
	injected := `x` + "\n" + `environment="BACKROOM_USER=mallory",environment="BACKROOM_ROLE=admin" ` + ak(k.ed3)
	out := Format([]Entry{
		{User: "alice", Key: k.ed1, Comment: injected},
		{User: `bo"b` + "\n" + "x", Key: k.ed2},
		{User: "carol", Key: k.p256, From: []string{}},
		{User: "dave", Role: "root", Key: k.p384},
		{User: "erin", Key: k.rsa2048},
		{User: "frank", Key: k.p521, From: []string{"10.0.0.1\"", "x"}},
	})
	if n := bytes.Count(out, []byte("\n")); n != 7 {
		t.Fatalf("Format wrote %d lines, want 7 (header + 6):\n%s", n, out)
	}
	f := Parse(out, ParseOptions{})
	if len(f.Entries) != 1 || f.Entries[0].User != "alice" || f.Entries[0].Role != RoleStaff {
		t.Fatalf("entries = %+v, want only alice as staff", f.Entries)
	}
	if !strings.HasPrefix(f.Entries[0].Comment, "x environment=") {
		t.Errorf("comment = %q", f.Entries[0].Comment)
	}
	if _, ok := f.Lookup("mallory", k.ed3); ok {
		t.Error("a comment injected a key")
	}
	wantProblems := []wantProblem{
		{3, `user name "bo\"b x" is not valid`},
		{4, `from pattern "" is empty`},
		{5, "BACKROOM_ROLE=root is not a role"},
		{6, "ssh-rsa key of 2048 bits is too weak"},
		{7, `from pattern "10.0.0.1\"" is not an IP address`},
	}
	if len(f.Problems) != len(wantProblems) {
		t.Fatalf("problems = %v", f.Problems)
	}
	for i, want := range wantProblems {
		if got := f.Problems[i]; got.Line != want.line || !strings.Contains(got.Msg, want.msg) {
			t.Errorf("problem %d = %q, want line %d containing %q", i, got.Error(), want.line, want.msg)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range parseCases(f) {
		f.Add([]byte(tc.input))
	}
	k := keys(f)
	f.Add(Format([]Entry{{User: "alice", Role: RoleAdmin, Key: k.ed1, From: []string{"10.0.0.0/8"}, ExpiresAt: time.Unix(1e9, 0)}}))
	f.Add([]byte(`environment="BACKROOM_USER=a\"`))
	f.Add([]byte("\r\n\r#\n\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file := Parse(data, ParseOptions{Location: time.FixedZone("UTC+2", 2*60*60)})
		if file == nil {
			t.Fatal("Parse returned nil")
		}
		seen := make(map[string]bool)
		for _, e := range file.Entries {
			if e.User == "" || ValidUser(e.User) != nil {
				t.Fatalf("line %d: bad user %q", e.Line, e.User)
			}
			if e.Role != RoleStaff && e.Role != RoleAdmin {
				t.Fatalf("line %d: bad role %q", e.Line, e.Role)
			}
			if err := CheckKeyType(e.Key); err != nil {
				t.Fatalf("line %d: key fails CheckKeyType: %v", e.Line, err)
			}
			if e.Fingerprint != ssh.FingerprintSHA256(e.Key) {
				t.Fatalf("line %d: Fingerprint %q is not the key's", e.Line, e.Fingerprint)
			}
			if seen[e.Fingerprint] {
				t.Fatalf("line %d: fingerprint %s listed twice", e.Line, e.Fingerprint)
			}
			seen[e.Fingerprint] = true
			if e.Line < 1 {
				t.Fatalf("entry with line %d", e.Line)
			}
		}
		for _, p := range file.Problems {
			if p.Line < 1 || p.Msg == "" || strings.ContainsAny(p.Msg, "\r\n") {
				t.Fatalf("bad problem %q", p.Error())
			}
		}
		// Whatever was accepted survives Format and Parse unchanged. Roles
		// were already settled, so the round trip has no problems at all.
		again := Parse(Format(file.Entries), ParseOptions{})
		if len(again.Entries) != len(file.Entries) || len(again.Problems) != 0 {
			t.Fatalf("round trip: %d entries and problems %v, from %d entries", len(again.Entries), again.Problems, len(file.Entries))
		}
		for i, e := range file.Entries {
			b := again.Entries[i]
			if b.User != e.User || b.Role != e.Role || b.Fingerprint != e.Fingerprint ||
				!slices.Equal(b.From, e.From) || !b.ExpiresAt.Equal(e.ExpiresAt) {
				t.Fatalf("round trip changed entry %d: %+v -> %+v", i, e, b)
			}
		}
	})
}
