package store

import (
	"context"
	"database/sql"
	"time"
)

// The clients search index (FTS5) is brought up to date in batches. Its
// triggers queue each change of a client's searchable text in
// clients_fts_pending, in the transaction that makes it (migration 9); the
// writer moves the queue into the index once it is searchFlushDelay old or
// searchFlushRows long, in whatever write transaction is committing then
// (or one of its own when no write comes). A batch costs far less than its
// changes one by one: FTS5 writes one index segment per flush, and removing
// a changed email's trigrams rewrites the index pages of common trigrams
// ("com", "cus", "@ex") once per flush rather than once per client.
//
// Only each client's net change goes in: the delete of what the index held
// (the client's first queued change, when a delete) and the insert of its
// latest text (its last, when an insert); what came and went within the
// batch never reaches the index.
//
// A change normally masks a client's old text in the index (FTS5 leaves
// the old entries in place, behind a delete marker, until its merges drop
// them; migration 11). Forgetting a client cannot leave it at that: the
// forget's flush edits the client's entries out of the index (FTS5's
// secure-delete, for that flush only), and when the client's text had
// changed before (clients_fts_stale), merges the whole index into one
// segment, which drops every masked entry.
//
// Searches stay exact: a search that starts while changes are queued
// first has them flushed (searchIndexCurrent), so what a search finds is
// what was committed before it began. Forgetting a client flushes in its
// own transaction, so that no queued copy of the erased text outlives it.

// searchFlushDelay is how long search index changes may stay queued.
const searchFlushDelay = 100 * time.Millisecond

// searchFlushRows is how many queued changes make a flush due at once.
const searchFlushRows = 4096

// searchBacklog is the writer's view of the queue: since when it holds
// changes. Only the writer goroutine uses it.
type searchBacklog struct {
	delay time.Duration // searchFlushDelay, or a test's
	since time.Time     // zero: the queue is empty
	timer *time.Timer
}

// due is a channel that fires when the queue is due for a flush while no
// write is coming, or nil when the queue is empty.
func (b *searchBacklog) due() <-chan time.Time {
	if b.since.IsZero() {
		return nil
	}
	wait := b.delay - time.Since(b.since)
	if b.timer == nil {
		b.timer = time.NewTimer(wait)
	} else {
		b.timer.Reset(wait)
	}
	return b.timer.C
}

// isDue reports whether the queue has waited long enough.
func (b *searchBacklog) isDue() bool {
	return !b.since.IsZero() && time.Since(b.since) >= b.delay
}

// committed records whether the transaction just committed left changes
// queued, and tells searches (Store.searchPending).
func (b *searchBacklog) committed(s *Store, queued bool) {
	switch {
	case !queued:
		b.since = time.Time{}
	case b.since.IsZero():
		b.since = time.Now()
	}
	s.searchPending.Store(queued)
}

func (b *searchBacklog) stop() {
	if b.timer != nil {
		b.timer.Stop()
	}
}

// flushSearch is a write that only flushes the queue.
func flushSearch(tx *wtx) error {
	tx.flushSearch = true
	return nil
}

// flushSearchReq is the writer's own write that flushes the queue.
func flushSearchReq() *writeReq {
	return &writeReq{ctx: context.Background(), fn: flushSearch, done: make(chan error, 1)}
}

// settleSearch runs just before a commit: it flushes the queue when asked
// to or when due, and notes whether changes stay queued.
func (tx *wtx) settleSearch(b *searchBacklog) error {
	ctx := context.Background()
	var last sql.NullInt64 // seq restarts at 1 once the queue is emptied: about its length
	if err := tx.QueryRowContext(ctx, `SELECT max(seq) FROM clients_fts_pending`).Scan(&last); err != nil {
		return err
	}
	if !last.Valid {
		tx.searchQueued = false
		return nil
	}
	if !tx.flushSearch && last.Int64 < searchFlushRows && !b.isDue() {
		tx.searchQueued = true
		return nil
	}
	steps := []string{
		// The queue's net effect on each client, in rowid order (a client's
		// delete before its insert), in one statement: FTS5 then keeps the
		// lot in memory and writes it out as one segment at the commit. (It
		// writes out what it holds each time a rowid comes that is not
		// above the last, as the queue's own order did all the time: a
		// segment per few clients, and merges to match.)
		`INSERT INTO clients_fts (clients_fts, rowid, name, email, customer_id)
		SELECT p.op, p.id, p.name, p.email, p.customer_id
		FROM (SELECT id, min(seq) AS first, max(seq) AS last FROM clients_fts_pending GROUP BY id) AS n
		JOIN clients_fts_pending AS p ON (p.seq = n.first AND p.op = 'delete') OR (p.seq = n.last AND p.op IS NULL)
		ORDER BY p.id, p.op IS NULL`,
		`DELETE FROM clients_fts_pending`,
	}
	if tx.eraseSearch {
		steps = append(append([]string{`INSERT INTO clients_fts (clients_fts, rank) VALUES ('secure-delete', 1)`}, steps...),
			`INSERT INTO clients_fts (clients_fts, rank) VALUES ('secure-delete', 0)`)
	}
	if tx.mergeSearch {
		steps = append(steps, `INSERT INTO clients_fts (clients_fts) VALUES ('optimize')`, `DELETE FROM clients_fts_stale`)
	}
	for _, q := range steps {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	tx.searchQueued = false
	return nil
}

// eraseFromSearch makes the transaction, which forgets the client of row
// id, leave no entry of the client's text in the search index (see above).
func (tx *wtx) eraseFromSearch(ctx context.Context, id int64) error {
	tx.flushSearch, tx.eraseSearch = true, true
	var stale bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM clients_fts_stale WHERE id = ?)`, id).Scan(&stale); err != nil {
		return err
	}
	tx.mergeSearch = tx.mergeSearch || stale
	return nil
}

// searchIndexCurrent brings the search index up to date before a search
// (see above): a write when changes are queued, nothing otherwise.
func (s *Store) searchIndexCurrent(ctx context.Context) error {
	if !s.searchPending.Load() {
		return nil
	}
	return s.write(ctx, flushSearch)
}
