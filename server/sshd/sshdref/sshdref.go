// Package sshdref is the reference SSH server that Backroom's benchmarks
// measure Backroom's own server against: a bare golang.org/x/crypto/ssh
// server with the same key-then-code authentication (a PartialSuccessError
// whose Next asks for a TOTP code over keyboard-interactive, checked with
// pquerna/otp's hotp for steps T-1..T+1, each step once per member) and a
// session that writes one fixed line once it has a PTY and a shell, held
// open until the client closes. No database, no audit, no console.
//
// It exists for the benchmarks of server/sshd and cmd/backroom only.
package sshdref

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	gossh "golang.org/x/crypto/ssh"
)

// Line is what a session shows. It contains "Backroom", so that a client
// waits for the same word from both servers.
const Line = "Backroom reference console\r\n"

// Member is a staff member the server lets in.
type Member struct {
	Name   string
	Key    gossh.PublicKey
	Secret string // TOTP secret, base32
}

// Server is the reference server. Its zero value is not usable: call New.
type Server struct {
	cfg     *gossh.ServerConfig
	now     func() time.Time
	members map[string]*member // by marshalled public key
	active  atomic.Int64       // open connections
}

// member is a Member as the server tracks them.
type member struct {
	name   string
	secret string

	mu       sync.Mutex
	lastStep int64 // the last TOTP step taken
}

// New returns a server with a fresh host key that lets members in, on the
// TOTP steps of now.
func New(now func() time.Time, members []Member) *Server {
	s := &Server{now: now, members: map[string]*member{}}
	for _, m := range members {
		s.members[string(m.Key.Marshal())] = &member{name: m.Name, secret: m.Secret}
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	host, _ := gossh.NewSignerFromKey(priv)
	s.cfg = &gossh.ServerConfig{
		PublicKeyCallback: func(c gossh.ConnMetadata, key gossh.PublicKey) (*gossh.Permissions, error) {
			m := s.members[string(key.Marshal())]
			if m == nil || m.name != c.User() {
				return nil, errors.New("permission denied")
			}
			return nil, &gossh.PartialSuccessError{Next: gossh.ServerAuthCallbacks{
				KeyboardInteractiveCallback: func(_ gossh.ConnMetadata, challenge gossh.KeyboardInteractiveChallenge) (*gossh.Permissions, error) {
					answers, err := challenge("", "", []string{"Verification code: "}, []bool{false})
					if err != nil {
						return nil, err
					}
					if len(answers) == 1 && s.checkCode(m, answers[0]) {
						return &gossh.Permissions{Extensions: map[string]string{"user": m.name}}, nil
					}
					return nil, errors.New("permission denied")
				},
			}}
		},
	}
	s.cfg.AddHostKey(host)
	return s
}

// checkCode reports whether code is m's for a step in T-1..T+1 that m has
// not used yet, and takes that step.
func (s *Server) checkCode(m *member, code string) bool {
	t := s.now().Unix() / 30
	opts := hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
	for step := t - 1; step <= t+1; step++ {
		if ok, _ := hotp.ValidateCustom(code, uint64(step), m.secret, opts); ok {
			m.mu.Lock()
			defer m.mu.Unlock()
			if step <= m.lastStep {
				return false // replayed
			}
			m.lastStep = step
			return true
		}
	}
	return false
}

// Serve serves connections accepted on ln until Accept fails, and returns
// that error.
func (s *Server) Serve(ln net.Listener) error {
	for {
		nc, err := ln.Accept()
		if err != nil {
			return err
		}
		go s.handle(nc)
	}
}

// Active is the number of connections open.
func (s *Server) Active() int64 { return s.active.Load() }

func (s *Server) handle(nc net.Conn) {
	s.active.Add(1)
	defer s.active.Add(-1)
	defer nc.Close()
	conn, chans, reqs, err := gossh.NewServerConn(nc, s.cfg)
	if err != nil {
		return
	}
	defer conn.Close()
	go gossh.DiscardRequests(reqs)
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(gossh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		go func() {
			for req := range creqs {
				switch req.Type {
				case "pty-req":
					_ = req.Reply(true, nil)
				case "shell":
					_ = req.Reply(true, nil)
					_, _ = io.WriteString(ch, Line)
				default:
					_ = req.Reply(false, nil)
				}
			}
		}()
		// The Go client sends EOF at once when it has no stdin: the
		// session stays open anyway until the client closes it.
		go func() { _, _ = io.Copy(io.Discard, ch) }()
	}
}
