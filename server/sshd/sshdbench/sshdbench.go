// Package sshdbench is the client side of Backroom's SSH benchmarks (those
// of server/sshd and cmd/backroom): the staff members they create and log
// in, key then TOTP code, and the figures they report about the runs.
//
// It exists for benchmarks only.
package sshdbench

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"backroom/store"
)

// Member is a staff member as a benchmark client plays them.
type Member struct {
	Name   string
	Signer gossh.Signer
	Secret string // TOTP secret, base32
	// LastStep is the TOTP step of their last login: a server takes each
	// step once per member. Only the goroutine logging them in touches it.
	LastStep int64
}

// AddMember adds a staff member called name (role staff) with a fresh
// ed25519 key to st, and returns them.
func AddMember(tb testing.TB, st *store.Store, name string) *Member {
	tb.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := gossh.NewSignerFromKey(priv)
	actor := store.Actor{Name: "cli:bench", Role: store.RoleAdmin, Channel: store.ChannelCLI}
	res, err := st.AddStaff(context.Background(), actor, store.AddStaffRequest{Name: name, Key: signer.PublicKey()})
	if err != nil {
		tb.Fatal(err)
	}
	return &Member{Name: name, Signer: signer, Secret: res.Enrollment.Secret}
}

// ClientConfig logs m in: their key, then the TOTP code of now's step
// (which becomes m.LastStep). It accepts any host key and ignores banners.
func (m *Member) ClientConfig(now func() time.Time) *gossh.ClientConfig {
	return &gossh.ClientConfig{
		User: m.Name,
		Auth: []gossh.AuthMethod{
			gossh.PublicKeys(m.Signer),
			gossh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				if len(questions) == 0 {
					return nil, nil
				}
				t := now()
				code, err := store.CodeFor(m.Secret, t)
				if err != nil {
					return nil, err
				}
				m.LastStep = store.TOTPStep(t)
				return []string{code}, nil
			}),
		},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(),
		BannerCallback:  func(string) error { return nil },
	}
}

// ReadUntil reads r until what it read contains want.
func ReadUntil(r io.Reader, want string) error {
	var seen []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		seen = append(seen, buf[:n]...)
		if bytes.Contains(seen, []byte(want)) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("output ended before %q (%v): %q", want, err, seen)
		}
	}
}

// Percentile is the p-th percentile (nearest rank) of ds; 0 for none.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(float64(len(s))*p/100+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// ProcessCPU is the CPU time (user + system) process pid has used, from
// /proc/PID/stat (Linux).
func ProcessCPU(pid int) (time.Duration, error) {
	path := fmt.Sprintf("/proc/%d/stat", pid)
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// utime and stime are fields 14 and 15; the command name (field 2)
	// may hold spaces, so count from the last ')'.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("cannot read %s: %q", path, s)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("cannot read %s: %q", path, s)
	}
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clkTck, nil
}
