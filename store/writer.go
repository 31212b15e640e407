package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The writer: every write transaction of the store goes through one
// goroutine that commits them in groups. Callers that arrive while a group
// commits are gathered into the next group, which runs as one SQLite
// transaction with a savepoint per caller: each caller's changes still
// succeed or fail alone, but a busy store pays for one BEGIN/COMMIT and one
// write of each shared page (the audit chain's last page, say) per group
// instead of per caller.
//
// Callers that may run twice (writeRerunnable: the webhook endpoint's,
// code checks, audit rows written on their own) go first and without
// savepoints: a savepoint copies each page its caller changes to a
// statement journal first, and opening or releasing one makes the clients
// search index (FTS5) write out what it has pending, as a new index
// segment. When one of them fails, the whole transaction is rolled back
// and the group runs again with a savepoint per caller; nothing of it has
// been committed, and no other caller of the group has run yet.
//
// The writer also keeps the statements it runs prepared (parsing a
// statement costs about as much as running a small one): a statement seen
// in a transaction is prepared after it, on the then idle connection, and
// reused by the transactions that follow.

// maxGroup bounds how many callers share one transaction.
const maxGroup = 64

// A group that a re-runnable caller (a webhook delivery, a code check, an
// audit row of its own) opens waits up to lingerFor for more callers while
// it has fewer than lingerGroup: a commit's fixed costs (BEGIN and COMMIT,
// the pages every such caller touches: the ends of the audit chain, of the
// event and attempt tables and of their indexes) are then shared. Under
// the webhook bench's load this took the writer from ~3,300 to ~4,000
// events a second at the same p50; under the login bench's (three such
// writes per login) from ~2.6 to ~1.1 commits per login, and the CPU per
// login down by ~7%. A lone caller waits 0.3 ms more.
const (
	lingerGroup = 12
	lingerFor   = 300 * time.Microsecond
)

// maxPrepared bounds how many statements the writer keeps prepared.
const maxPrepared = 256

// writerCacheKiB is the page cache of the write connection: twice
// SQLite's default, which holds the b-trees' inner pages and the pages
// new rows go to. A bigger cache saves reads of the pages a delivery
// touches at random (its client, its event id), but costs every commit
// that split a b-tree page a walk over the whole cache: SQLite renumbers
// split pages through a temporary page number past the end of the
// database, and its page cache then drops "pages past the end" at commit
// by visiting every cached page. At 32 MiB that walk took about 0.5 ms a
// commit (~10 % of the writer's time under the webhook bench's load);
// the reads a 4 MiB cache adds cost about a quarter of what it saves
// (0.13 s against 0.55 s of CPU in a 10 s bench run).
const writerCacheKiB = 4 << 10

// errStoreClosed is returned by writes after Close.
var errStoreClosed = errors.New("store: closed")

type writeReq struct {
	ctx   context.Context
	fn    func(tx *wtx) error
	rerun bool // fn may run again after a rollback: it needs no savepoint
	done  chan error
}

// write runs fn in a write transaction (BEGIN IMMEDIATE) and returns once
// its changes are committed, or fn's error (its changes undone). A ctx
// that ends before fn starts stops it; once started, fn runs to the end
// (its statements ignore cancellation, so that one caller's cancellation
// cannot abort the group's transaction).
func (s *Store) write(ctx context.Context, fn func(tx *wtx) error) error {
	return s.submit(&writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)})
}

// writeRerunnable is write for a fn that may run more than once: when it
// or another re-runnable caller of its group fails, the group's changes
// are rolled back and fn runs again, in a savepoint of its own. fn must
// therefore set, never accumulate, what it reports to its caller, and
// leave its inputs as it found them. In exchange it shares the group's
// transaction without a savepoint (see tx.fast).
func (s *Store) writeRerunnable(ctx context.Context, fn func(tx *wtx) error) error {
	return s.submit(&writeReq{ctx: ctx, fn: fn, rerun: true, done: make(chan error, 1)})
}

func (s *Store) submit(req *writeReq) error {
	select {
	case s.writes <- req:
	case <-req.ctx.Done():
		return req.ctx.Err()
	case <-s.quit:
		return errStoreClosed
	}
	return <-req.done
}

// runWriter commits groups of writes until the store closes.
func (s *Store) runWriter() {
	defer close(s.writerDone)
	w := &writerState{prepared: &stmtCache{stmts: map[string]*sql.Stmt{}, failed: map[string]bool{}},
		search: searchBacklog{delay: s.searchDelay}}
	defer w.prepared.close()
	defer w.search.stop()
	if _, err := s.wdb.Exec(fmt.Sprintf(`PRAGMA cache_size = -%d`, writerCacheKiB)); err != nil {
		s.log.Warn("write connection: page cache left at its default", "err", err)
	}
	for {
		var first *writeReq
		select {
		case first = <-s.writes:
		case <-w.search.due():
			first = flushSearchReq()
		case <-s.quit:
			// Drain what is queued, then stop.
			for {
				select {
				case r := <-s.writes:
					r.done <- errStoreClosed
				default:
					return
				}
			}
		}
		group := []*writeReq{first}
		var linger <-chan time.Time
	gather:
		for len(group) < maxGroup {
			select {
			case r := <-s.writes:
				group = append(group, r)
				continue
			default:
			}
			if len(group) >= lingerGroup || !first.rerun {
				break
			}
			if linger == nil {
				linger = time.After(lingerFor)
			}
			select {
			case r := <-s.writes:
				group = append(group, r)
			case <-linger:
				break gather
			}
		}
		s.commitGroup(group, w)
		w.prepared.prepareWanted(s.wdb)
		s.finishCheckpoint()
	}
}

// commitGroup commits a group: re-runnable callers first, without
// savepoints; if one of them fails, the group runs again with a savepoint
// per caller.
func (s *Store) commitGroup(group []*writeReq, w *writerState) {
	slices.SortStableFunc(group, func(a, b *writeReq) int {
		switch {
		case a.rerun == b.rerun:
			return 0
		case a.rerun:
			return -1
		}
		return 1
	})
	if group[0].rerun && !s.runGroup(group, w, true) {
		return
	}
	s.runGroup(group, w, false)
}

// runGroup runs the group in one transaction and tells each caller how it
// went. With fast set, re-runnable callers run without savepoints, and the
// first of them that fails rolls everything back: runGroup then returns
// true, having told no caller anything, for the group to run again
// without fast.
func (s *Store) runGroup(group []*writeReq, w *writerState, fast bool) (again bool) {
	results := make([]error, len(group))
	finish := func(err error) {
		for i, r := range group {
			if results[i] == nil {
				results[i] = err
			}
			r.done <- results[i]
		}
	}
	sqltx, err := s.wdb.BeginTx(context.Background(), nil)
	if err != nil {
		finish(fmt.Errorf("store: begin: %w", err))
		return false
	}
	tx := &wtx{Tx: sqltx, s: s, prepared: w.prepared}
	single := len(group) == 1
	ran := 0
	for i, r := range group {
		if err := r.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		if fast && r.rerun {
			tx.fast = true
			err := r.fn(tx)
			tx.fast = false
			if err != nil {
				_ = sqltx.Rollback()
				return true
			}
			ran++
			continue
		}
		if single {
			results[i] = r.fn(tx)
			if results[i] != nil {
				_ = sqltx.Rollback()
				finish(nil)
				return false
			}
			ran++
			continue
		}
		headID, headHash := tx.headID, tx.headHash
		if _, err := sqltx.Exec(`SAVEPOINT caller`); err != nil {
			_ = sqltx.Rollback()
			finish(fmt.Errorf("store: savepoint: %w", err))
			return false
		}
		if err := r.fn(tx); err != nil {
			results[i] = err
			tx.headID, tx.headHash = headID, headHash
			if _, rerr := sqltx.Exec(`ROLLBACK TO caller`); rerr != nil {
				_ = sqltx.Rollback()
				finish(fmt.Errorf("store: rollback to savepoint: %w", rerr))
				return false
			}
		} else {
			ran++
		}
		if _, err := sqltx.Exec(`RELEASE caller`); err != nil {
			_ = sqltx.Rollback()
			finish(fmt.Errorf("store: release savepoint: %w", err))
			return false
		}
	}
	if ran == 0 {
		_ = sqltx.Rollback()
		finish(nil)
		return false
	}
	if s.searchQueue.Load() {
		if err := tx.settleSearch(&w.search); err != nil {
			_ = sqltx.Rollback()
			finish(fmt.Errorf("store: search index: %w", err))
			return false
		}
	}
	if err := sqltx.Commit(); err != nil {
		err = fmt.Errorf("store: commit: %w", err)
		for i := range results {
			if results[i] == nil {
				results[i] = err
			}
		}
		finish(nil)
		return false
	}
	s.commits.Add(1)
	w.search.committed(s, tx.searchQueued)
	if tx.headID > 0 {
		if err := s.advanceHead(tx.headID, tx.headHash); err != nil {
			s.log.Error("audit head file not updated", "err", err)
		}
	}
	finish(nil)
	return false
}

// writerState is what the writer goroutine keeps between groups.
type writerState struct {
	prepared *stmtCache
	search   searchBacklog
}

// wtx is a write transaction. It remembers the audit head so that the head
// file is advanced after the commit, and runs every statement to the end
// whatever happens to the caller's context.
type wtx struct {
	*sql.Tx
	s        *Store
	headID   int64
	headHash string
	// fast is set while a re-runnable caller runs without a savepoint of
	// its own: it must not open savepoints either, and returns an error
	// instead of undoing part of its work (the group then runs again,
	// with savepoints).
	fast     bool
	prepared *stmtCache
	bound    map[*sql.Stmt]*sql.Stmt // prepared statements bound to this transaction
	// flushSearch makes the transaction move the queued search index
	// changes into the index before it commits, eraseSearch edits removed
	// entries out rather than mask them, and mergeSearch merges the whole
	// index afterwards (searchqueue.go); searchQueued reports that it
	// leaves changes queued.
	flushSearch, eraseSearch, mergeSearch, searchQueued bool
}

// errNeedsSavepoint makes a re-runnable caller run again with a savepoint.
var errNeedsSavepoint = errors.New("store: partial undo needs a savepoint")

// ExecContext runs a statement, ignoring cancellation (see write), through
// a prepared statement when the writer has one.
func (tx *wtx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx = context.WithoutCancel(ctx)
	if st := tx.prepared.get(query); st != nil {
		return tx.stmt(ctx, st).ExecContext(ctx, args...)
	}
	return tx.Tx.ExecContext(ctx, query, args...)
}

// QueryContext runs a query, ignoring cancellation (see write).
func (tx *wtx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return tx.Tx.QueryContext(context.WithoutCancel(ctx), query, args...)
}

// QueryRowContext runs a query, ignoring cancellation (see write), through
// a prepared statement when the writer has one.
func (tx *wtx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	ctx = context.WithoutCancel(ctx)
	if st := tx.prepared.get(query); st != nil {
		return tx.stmt(ctx, st).QueryRowContext(ctx, args...)
	}
	return tx.Tx.QueryRowContext(ctx, query, args...)
}

// PrepareContext prepares a statement, ignoring cancellation (see write).
func (tx *wtx) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return tx.Tx.PrepareContext(context.WithoutCancel(ctx), query)
}

// stmt returns one of the store's prepared statements bound to the
// transaction, once per transaction: the callers of a group run the same
// few statements, and binding one anew for each (database/sql registers
// and unregisters every binding) cost the writer a few µs per delivery.
// database/sql closes the bindings when the transaction ends.
func (tx *wtx) stmt(ctx context.Context, st *sql.Stmt) *sql.Stmt {
	if b, ok := tx.bound[st]; ok {
		return b
	}
	b := tx.Tx.StmtContext(context.WithoutCancel(ctx), st)
	if tx.bound == nil {
		tx.bound = map[*sql.Stmt]*sql.Stmt{}
	}
	tx.bound[st] = b
	return b
}

// stmtCache is the writer's prepared statements, by query text. Only the
// writer goroutine uses it. A query first seen in a transaction runs
// unprepared and is prepared once the transaction is over (the single
// write connection is busy until then).
type stmtCache struct {
	stmts  map[string]*sql.Stmt
	failed map[string]bool // did not prepare (a script, say): never tried again
	wanted []string
}

// get returns the prepared statement of query, or nil (and notes that it
// is wanted).
func (c *stmtCache) get(query string) *sql.Stmt {
	if c == nil {
		return nil
	}
	if st, ok := c.stmts[query]; ok {
		return st
	}
	// A script (several statements) is not worth keeping prepared.
	if !c.failed[query] && !strings.Contains(query, ";") && len(c.stmts)+len(c.wanted) < maxPrepared &&
		!slices.Contains(c.wanted, query) {
		c.wanted = append(c.wanted, query)
	}
	return nil
}

// prepareWanted prepares the statements noted since the last call.
func (c *stmtCache) prepareWanted(db *sql.DB) {
	for _, q := range c.wanted {
		st, err := db.Prepare(q)
		if err != nil {
			c.failed[q] = true
			continue
		}
		c.stmts[q] = st
	}
	c.wanted = c.wanted[:0]
}

func (c *stmtCache) close() {
	for _, st := range c.stmts {
		st.Close()
	}
}
