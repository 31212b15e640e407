package sshd

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/ssh"

	"backroom/store"
	"backroom/tui"
)

// Registry tracks live console sessions. It implements tui.Sessions for the
// admin Sessions screen.
type Registry struct {
	store *store.Store
	now   func() time.Time

	mu       sync.Mutex
	sessions map[string]*liveSession
	wg       sync.WaitGroup
}

// liveSession is one console session.
type liveSession struct {
	info      tui.SessionInfo
	lastInput atomic.Int64 // unix nanoseconds
	sess      ssh.Session

	mu      sync.Mutex
	program *tea.Program
	reason  string // why it ended, when Backroom ended it
	msg     string // what the member was told then
	ending  bool
}

func newRegistry(st *store.Store, now func() time.Time) *Registry {
	return &Registry{store: st, now: now, sessions: map[string]*liveSession{}}
}

func (r *Registry) add(ls *liveSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sessions[ls.info.ID] = ls
	r.wg.Add(1)
}

func (r *Registry) remove(ls *liveSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.sessions[ls.info.ID]; ok {
		delete(r.sessions, ls.info.ID)
		r.wg.Done()
	}
}

// List returns the live sessions, oldest first.
func (r *Registry) List() []tui.SessionInfo {
	r.mu.Lock()
	out := make([]tui.SessionInfo, 0, len(r.sessions))
	for _, ls := range r.sessions {
		info := ls.info
		info.LastInput = time.Unix(0, ls.lastInput.Load())
		out = append(out, info)
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b tui.SessionInfo) int {
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Len is the number of live sessions.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sessions)
}

// End ends a session on an admin's request, audited as session.terminated.
func (r *Registry) End(ctx context.Context, by store.Actor, id string) error {
	if !by.IsAdmin() {
		return &store.Error{Code: store.CodeForbidden, Msg: "only an admin may end sessions"}
	}
	r.mu.Lock()
	ls := r.sessions[id]
	r.mu.Unlock()
	if ls == nil {
		return &store.Error{Code: store.CodeNotFound, Msg: "that session has already ended"}
	}
	if err := r.store.Audit(ctx, by, store.ActionSessionTerminated, ls.info.User, store.Detail{
		"session_id": id, "fingerprint": ls.info.Fingerprint, "remote_addr": ls.info.RemoteAddr,
	}); err != nil {
		return err
	}
	ls.end("Your session was ended by an admin ("+by.Name+").", "terminated by "+by.Name)
	return nil
}

// endByFingerprint ends every session opened with one of fps (their keys
// left authorized_keys).
func (r *Registry) endByFingerprint(fps []string) int {
	r.mu.Lock()
	var hit []*liveSession
	for _, ls := range r.sessions {
		if slices.Contains(fps, ls.info.Fingerprint) {
			hit = append(hit, ls)
		}
	}
	r.mu.Unlock()
	for _, ls := range hit {
		ls.end("Your key was removed from Backroom's authorized_keys; this session has ended.", "key removed")
	}
	return len(hit)
}

// endAll says goodbye to every session (shutdown) and waits, until ctx
// ends, for them to finish.
func (r *Registry) endAll(ctx context.Context, msg string) {
	r.mu.Lock()
	all := make([]*liveSession, 0, len(r.sessions))
	for _, ls := range r.sessions {
		all = append(all, ls)
	}
	r.mu.Unlock()
	for _, ls := range all {
		ls.end(msg, "server shutdown")
	}
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// endGrace is how long a session has to show its last message before its
// connection is closed regardless.
const endGrace = 500 * time.Millisecond

// end shows msg in the console, quits it, and closes the connection shortly
// after whatever the client does.
func (ls *liveSession) end(msg, reason string) {
	ls.mu.Lock()
	if ls.ending {
		ls.mu.Unlock()
		return
	}
	ls.ending = true
	ls.reason = reason
	ls.msg = msg
	p := ls.program
	ls.mu.Unlock()
	if p != nil {
		p.Send(tui.NoticeMsg{Text: msg, Quit: true})
	}
	time.AfterFunc(endGrace, func() { closeConn(ls.sess) })
}

func (ls *liveSession) endReason() string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.reason
}

// endMessage is what the member was told when Backroom ended the session
// ("" when they quit).
func (ls *liveSession) endMessage() string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.msg
}

// closeConn closes the whole SSH connection of sess.
func closeConn(sess ssh.Session) {
	if c, ok := sess.Context().Value(ssh.ContextKeyConn).(interface{ Close() error }); ok {
		_ = c.Close()
	}
	_ = sess.Close()
}
