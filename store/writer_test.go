package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestGroupCommitIsolatesCallers: callers that share a group transaction
// still succeed or fail alone, and the audit chain stays valid.
func TestGroupCommitIsolatesCallers(t *testing.T) {
	e := newEnv(t)
	const n = 200
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.s.write(ctxb, func(tx *wtx) error {
				if err := tx.audit(ctxb, System, "test.row", fmt.Sprint(i), nil); err != nil {
					return err
				}
				if i%3 == 0 {
					return errors.New("refused")
				}
				return nil
			})
		}()
	}
	wg.Wait()
	want := 0
	for i, err := range errs {
		switch {
		case i%3 == 0 && (err == nil || err.Error() != "refused"):
			t.Fatalf("caller %d: %v, want its own error", i, err)
		case i%3 != 0 && err != nil:
			t.Fatalf("caller %d: %v", i, err)
		case i%3 != 0:
			want++
		}
	}
	evs, err := e.s.ListAudit(ctxb, AuditQuery{ActionPrefix: "test.row", Limit: 1000})
	if err != nil || len(evs) != want {
		t.Fatalf("%d rows committed, want %d (%v)", len(evs), want, err)
	}
	for _, ev := range evs {
		var i int
		fmt.Sscan(ev.Target, &i)
		if i%3 == 0 {
			t.Fatalf("the row of failed caller %d was committed", i)
		}
	}
	mustVerifyAudit(t, e.s)
	if head, err := readHead(e.s.headPath()); err != nil || head.ID != evs[0].ID {
		t.Fatalf("head %+v %v, want row %d", head, err, evs[0].ID)
	}
}

// TestWriteCancelledBeforeStart: a caller whose context has ended does not
// run; once started, a write finishes even if the caller gives up.
func TestWriteCancelledBeforeStart(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(ctxb)
	cancel()
	ran := false
	err := e.s.write(ctx, func(tx *wtx) error { ran = true; return nil })
	if !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("cancelled write: ran=%v err=%v", ran, err)
	}
	ctx, cancel = context.WithCancel(ctxb)
	err = e.s.write(ctx, func(tx *wtx) error {
		cancel()
		return tx.audit(ctx, System, "test.row", "late", nil)
	})
	if err != nil {
		t.Fatalf("a started write was cut short: %v", err)
	}
	mustVerifyAudit(t, e.s)
}

func TestWriteAfterClose(t *testing.T) {
	e := newEnv(t)
	e.s.Close()
	if err := e.s.Audit(ctxb, System, "test.row", "x", nil); !errors.Is(err, errStoreClosed) {
		t.Fatalf("write after Close: %v", err)
	}
}

// TestRerunnableCallersShareTheGroup: re-runnable callers run without
// savepoints; when one fails, the group runs again with a savepoint per
// caller, so that the others still commit and the failed one's changes
// do not. Callers of write (not re-runnable) run exactly once.
func TestRerunnableCallersShareTheGroup(t *testing.T) {
	e := newEnv(t)
	mustExecStore(t, e.s, `CREATE TABLE rr (k TEXT PRIMARY KEY)`)
	const n = 120
	var mu sync.Mutex
	runs := map[string]int{}
	ran := func(k string) {
		mu.Lock()
		runs[k]++
		mu.Unlock()
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := fmt.Sprint("k", i)
			insert := func(tx *wtx) error {
				ran(k)
				if _, err := tx.ExecContext(ctxb, `INSERT INTO rr (k) VALUES (?)`, k); err != nil {
					return err
				}
				if i%10 == 0 {
					return errors.New("refused")
				}
				return nil
			}
			if i%4 == 3 {
				errs[i] = e.s.write(ctxb, insert)
			} else {
				errs[i] = e.s.writeRerunnable(ctxb, insert)
			}
		}()
	}
	wg.Wait()
	rows, err := e.s.wdb.Query(`SELECT k FROM rr`)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for rows.Next() {
		var k string
		rows.Scan(&k)
		stored[k] = true
	}
	rows.Close()
	reran := 0
	for i, err := range errs {
		k := fmt.Sprint("k", i)
		switch {
		case i%10 == 0 && (err == nil || err.Error() != "refused" || stored[k]):
			t.Errorf("caller %d: err %v, stored %v; want its own error and nothing stored", i, err, stored[k])
		case i%10 != 0 && (err != nil || !stored[k]):
			t.Errorf("caller %d: err %v, stored %v", i, err, stored[k])
		}
		if i%4 == 3 && runs[k] != 1 {
			t.Errorf("caller %d (write) ran %d times, want once", i, runs[k])
		}
		if runs[k] > 1 {
			reran++
		}
	}
	if reran == 0 {
		t.Log("no group held a failing re-runnable caller with others (timing): the fallback was not exercised")
	}
}

// TestRerunnableFallbackRunsOthersOnce drives the fallback directly: a
// group of re-runnable callers, one failing, and a plain caller.
func TestRerunnableFallbackRunsOthersOnce(t *testing.T) {
	e := newEnv(t)
	mustExecStore(t, e.s, `CREATE TABLE rr (k TEXT PRIMARY KEY)`)
	var seq []string
	req := func(k string, rerun, fail bool) *writeReq {
		return &writeReq{ctx: ctxb, rerun: rerun, done: make(chan error, 1), fn: func(tx *wtx) error {
			seq = append(seq, fmt.Sprintf("%s:%v", k, tx.fast))
			if _, err := tx.ExecContext(ctxb, `INSERT INTO rr (k) VALUES (?)`, k); err != nil {
				return err
			}
			if fail {
				return errNeedsSavepoint
			}
			return nil
		}}
	}
	// The plain caller comes first in the queue; re-runnable ones still go
	// first, without savepoints, until b fails; then all run with them.
	plain, a, b, c := req("plain", false, false), req("a", true, false), req("b", true, true), req("c", true, false)
	e.s.commitGroup([]*writeReq{plain, a, b, c}, &writerState{})
	if got := strings.Join(seq, " "); got != "a:true b:true a:false b:false c:false plain:false" {
		t.Errorf("runs %s", got)
	}
	for _, r := range []*writeReq{plain, a, c} {
		if err := <-r.done; err != nil {
			t.Errorf("a caller that succeeded got %v", err)
		}
	}
	if err := <-b.done; !errors.Is(err, errNeedsSavepoint) {
		t.Errorf("the failing caller got %v, want its own error", err)
	}
	var got []string
	rows, _ := e.s.wdb.Query(`SELECT k FROM rr ORDER BY k`)
	for rows.Next() {
		var k string
		rows.Scan(&k)
		got = append(got, k)
	}
	rows.Close()
	if strings.Join(got, ",") != "a,c,plain" {
		t.Errorf("stored %v, want a, c and plain", got)
	}
}

// TestWriterPreparesStatements: a statement run in a transaction is
// prepared once it is over, and later transactions use the prepared one.
func TestWriterPreparesStatements(t *testing.T) {
	c := &stmtCache{stmts: map[string]*sql.Stmt{}, failed: map[string]bool{}}
	e := newEnv(t)
	defer c.close()
	const q = `SELECT count(*) FROM meta WHERE key = ?`
	for range 2 {
		if c.get(q) != nil {
			t.Fatal("prepared at first sight")
		}
	}
	if len(c.wanted) != 1 {
		t.Fatalf("wanted %v, want the query once", c.wanted)
	}
	if c.get("SELECT 1; SELECT 2") != nil || c.get(`SELECT nonsense FROM nowhere`) != nil {
		t.Fatal("prepared at once")
	}
	c.prepareWanted(e.s.wdb)
	if c.get(q) == nil || c.failed[q] {
		t.Fatal("not prepared after the transaction")
	}
	if !c.failed[`SELECT nonsense FROM nowhere`] || c.get(`SELECT nonsense FROM nowhere`) != nil || len(c.wanted) != 0 {
		t.Errorf("a statement that does not prepare is tried again: %v %v", c.failed, c.wanted)
	}
	if _, ok := c.stmts["SELECT 1; SELECT 2"]; ok {
		t.Error("a script was prepared")
	}
	// The prepared statement runs in the writer's transactions.
	if err := e.s.write(ctxb, func(tx *wtx) error {
		tx.prepared = c
		var n int
		if err := tx.QueryRowContext(ctxb, q, "schema").Scan(&n); err != nil || n != 1 {
			return fmt.Errorf("count %d, %v", n, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func mustExecStore(t *testing.T, s *Store, q string) {
	t.Helper()
	if err := s.write(ctxb, func(tx *wtx) error {
		_, err := tx.ExecContext(ctxb, q)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// Code checks and lone audit rows are re-runnable: when a group they share
// falls back to savepoints, their first run leaves nothing behind (no
// second audit row, no spent step) and the code is accepted exactly once.
func TestCodeCheckAndAuditRerunInAGroup(t *testing.T) {
	e := newEnv(t)
	alice := e.add("alice", false)
	code := e.code(alice, 0)
	before := auditCount(t, e.s)
	var first, second CodeResult
	check := func(res *CodeResult) *writeReq {
		return &writeReq{ctx: ctxb, rerun: true, done: make(chan error, 1), fn: func(tx *wtx) error {
			var err error
			*res, err = tx.verifyCode(ctxb, sshActor("alice"), alice.fp, code, PurposeLogin)
			return err
		}}
	}
	audit := &writeReq{ctx: ctxb, rerun: true, done: make(chan error, 1), fn: func(tx *wtx) error {
		return tx.audit(ctxb, sshActor("alice"), ActionSessionStart, "alice", nil)
	}}
	failing := &writeReq{ctx: ctxb, rerun: true, done: make(chan error, 1), fn: func(tx *wtx) error {
		return errNeedsSavepoint
	}}
	group := []*writeReq{check(&first), audit, failing, check(&second)}
	e.s.commitGroup(group, &writerState{})
	for i, r := range group {
		if err := <-r.done; (err != nil) != (r == failing) {
			t.Errorf("caller %d: %v", i, err)
		}
	}
	if first.Verdict != CodeAccepted || second.Verdict != CodeReplayed {
		t.Errorf("verdicts %v then %v, want accepted then replayed", first.Verdict, second.Verdict)
	}
	if n := auditCount(t, e.s) - before; n != 3 {
		t.Errorf("%d audit rows written, want 3 (login.success, session.start, login.failure)", n)
	}
	one(t, e.s, ActionLoginSuccess)
	one(t, e.s, ActionSessionStart)
	one(t, e.s, ActionLoginFailure)
	mustVerifyAudit(t, e.s)
	if res := e.verify(alice, code); res.Verdict != CodeReplayed {
		t.Errorf("the code again: %v, want replayed", res.Verdict)
	}
}

// The lockout path under the same fallback: a wrong code that locks the
// member and ends their web session, run first without a savepoint and
// then again, leaves one of each audit row and no session.
func TestLockoutRerunInAGroup(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.LockoutAfter = 1 })
	alice := e.add("alice", false)
	if _, _, err := e.s.CreateWebSession(ctxb, Actor{Name: "alice", Role: RoleStaff, Channel: ChannelWeb}, "link", "test", webLimits); err != nil {
		t.Fatal(err)
	}
	var res CodeResult
	check := &writeReq{ctx: ctxb, rerun: true, done: make(chan error, 1), fn: func(tx *wtx) error {
		var err error
		res, err = tx.verifyCode(ctxb, sshActor("alice"), alice.fp, e.wrongCode(alice), PurposeLogin)
		return err
	}}
	failing := &writeReq{ctx: ctxb, rerun: true, done: make(chan error, 1), fn: func(tx *wtx) error {
		return errNeedsSavepoint
	}}
	e.s.commitGroup([]*writeReq{check, failing}, &writerState{})
	if err := <-check.done; err != nil {
		t.Fatal(err)
	}
	<-failing.done
	if res.Verdict != CodeLocked || res.LockedUntil.IsZero() {
		t.Errorf("verdict %v, locked until %v; want locked", res.Verdict, res.LockedUntil)
	}
	one(t, e.s, ActionLoginFailure)
	one(t, e.s, ActionLoginLocked)
	one(t, e.s, ActionSessionTerminated)
	if ws, err := e.s.ListWebSessions(ctxb); err != nil || len(ws) != 0 {
		t.Errorf("web sessions left: %v %v", ws, err)
	}
	if st, err := e.s.LoginState(ctxb, "alice"); err != nil || st.LockedUntil.IsZero() {
		t.Errorf("login state %+v %v: not locked", st, err)
	}
	mustVerifyAudit(t, e.s)
}
