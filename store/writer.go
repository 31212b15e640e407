package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// The writer: every write transaction of the store goes through one
// goroutine that commits them in groups. Callers that arrive while a group
// commits are gathered into the next group, which runs as one SQLite
// transaction with a savepoint per caller: each caller's changes still
// succeed or fail alone, but a busy store pays for one BEGIN/COMMIT and one
// write of each shared page (the audit chain's last page, say) per group
// instead of per caller.

// maxGroup bounds how many callers share one transaction.
const maxGroup = 64

// errStoreClosed is returned by writes after Close.
var errStoreClosed = errors.New("store: closed")

type writeReq struct {
	ctx  context.Context
	fn   func(tx *wtx) error
	done chan error
}

// write runs fn in a write transaction (BEGIN IMMEDIATE) and returns once
// its changes are committed, or fn's error (its changes undone). A ctx
// that ends before fn starts stops it; once started, fn runs to the end
// (its statements ignore cancellation, so that one caller's cancellation
// cannot abort the group's transaction).
func (s *Store) write(ctx context.Context, fn func(tx *wtx) error) error {
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case s.writes <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.quit:
		return errStoreClosed
	}
	return <-req.done
}

// runWriter commits groups of writes until the store closes.
func (s *Store) runWriter() {
	defer close(s.writerDone)
	for {
		var first *writeReq
		select {
		case first = <-s.writes:
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
	gather:
		for len(group) < maxGroup {
			select {
			case r := <-s.writes:
				group = append(group, r)
			default:
				break gather
			}
		}
		s.commitGroup(group)
	}
}

func (s *Store) commitGroup(group []*writeReq) {
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
		return
	}
	tx := &wtx{Tx: sqltx, s: s}
	single := len(group) == 1
	ran := 0
	for i, r := range group {
		if err := r.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		if single {
			results[i] = r.fn(tx)
			if results[i] != nil {
				_ = sqltx.Rollback()
				finish(nil)
				return
			}
			ran++
			continue
		}
		headID, headHash := tx.headID, tx.headHash
		if _, err := sqltx.Exec(`SAVEPOINT caller`); err != nil {
			_ = sqltx.Rollback()
			finish(fmt.Errorf("store: savepoint: %w", err))
			return
		}
		if err := r.fn(tx); err != nil {
			results[i] = err
			tx.headID, tx.headHash = headID, headHash
			if _, rerr := sqltx.Exec(`ROLLBACK TO caller`); rerr != nil {
				_ = sqltx.Rollback()
				finish(fmt.Errorf("store: rollback to savepoint: %w", rerr))
				return
			}
		} else {
			ran++
		}
		if _, err := sqltx.Exec(`RELEASE caller`); err != nil {
			_ = sqltx.Rollback()
			finish(fmt.Errorf("store: release savepoint: %w", err))
			return
		}
	}
	if ran == 0 {
		_ = sqltx.Rollback()
		finish(nil)
		return
	}
	if err := sqltx.Commit(); err != nil {
		err = fmt.Errorf("store: commit: %w", err)
		for i := range results {
			if results[i] == nil {
				results[i] = err
			}
		}
		finish(nil)
		return
	}
	if tx.headID > 0 {
		if err := s.advanceHead(tx.headID, tx.headHash); err != nil {
			s.log.Error("audit head file not updated", "err", err)
		}
	}
	finish(nil)
}

// wtx is a write transaction. It remembers the audit head so that the head
// file is advanced after the commit, and runs every statement to the end
// whatever happens to the caller's context.
type wtx struct {
	*sql.Tx
	s        *Store
	headID   int64
	headHash string
}

// ExecContext runs a statement, ignoring cancellation (see write).
func (tx *wtx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return tx.Tx.ExecContext(context.WithoutCancel(ctx), query, args...)
}

// QueryContext runs a query, ignoring cancellation (see write).
func (tx *wtx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return tx.Tx.QueryContext(context.WithoutCancel(ctx), query, args...)
}

// QueryRowContext runs a query, ignoring cancellation (see write).
func (tx *wtx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return tx.Tx.QueryRowContext(context.WithoutCancel(ctx), query, args...)
}

// PrepareContext prepares a statement, ignoring cancellation (see write).
func (tx *wtx) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return tx.Tx.PrepareContext(context.WithoutCancel(ctx), query)
}

// stmt binds one of the store's prepared statements to the transaction.
func (tx *wtx) stmt(ctx context.Context, st *sql.Stmt) *sql.Stmt {
	return tx.Tx.StmtContext(context.WithoutCancel(ctx), st)
}
