package store

import (
	"strings"
	"testing"
	"time"
)

func TestPasswordStrength(t *testing.T) {
	cases := []struct{ name, pw, want string }{
		{"alice", "short pw", "too short"},
		{"alice", "123456789012345", "all digits"},
		{"alice", "alice-the-great!", "too similar to the user name"},
		{"margaret", "margarett12345", "too similar to the user name"},
		{"alice", "Password123!", "too common"},
		{"alice", "qwertyuiopasdf", "too common"},
		{"alice", "zzzzzzzzzzzzzz", "too common"},
		{"alice", "correct horse battery", ""},
		{"bob", "violet-anchor-drums", ""},
	}
	for _, c := range cases {
		err := CheckPasswordStrength(c.name, c.pw)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q for %s refused: %v", c.pw, c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(ErrorMessage(err), c.want)):
			t.Errorf("%q for %s: %v, want %q", c.pw, c.name, err, c.want)
		case err != nil && strings.Contains(ErrorMessage(err), c.pw):
			t.Errorf("the message repeats the password: %v", err)
		}
	}
}

func TestPasswordHashRoundTrip(t *testing.T) {
	start := time.Now()
	h := hashPassword("violet-anchor-drums")
	t.Logf("one argon2id hash: %v", time.Since(start))
	if !strings.HasPrefix(h, "$argon2id$v=19$m=47104,t=2,p=2$") || strings.Contains(h, "violet") {
		t.Fatalf("hash %q", h)
	}
	if !checkPassword(h, "violet-anchor-drums") || checkPassword(h, "violet-anchor-drum") || checkPassword("garbage", "x") {
		t.Fatal("checkPassword")
	}
}
