package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Lease names.
const LeaseClientSync = "clients.sync"

// ErrLeaseHeld is returned by AcquireLease when someone else holds it.
var ErrLeaseHeld = errors.New("held by someone else")

// AcquireLease takes the named lease for holder until ttl from now, unless
// another holder has it and it has not expired. Leases make "one at a time"
// hold across processes (a console and the CLI), through a constraint in
// the database rather than a lock in one process.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) error {
	now := s.now()
	return s.write(ctx, func(tx *wtx) error {
		r, err := tx.ExecContext(ctx, `INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
			WHERE leases.expires_at < ? OR leases.holder = excluded.holder`,
			name, holder, now.Add(ttl).UnixMilli(), now.UnixMilli())
		if err != nil {
			return fmt.Errorf("store: lease %s: %w", name, err)
		}
		if n, _ := r.RowsAffected(); n == 0 {
			var other string
			var until int64
			_ = tx.QueryRowContext(ctx, `SELECT holder, expires_at FROM leases WHERE name = ?`, name).Scan(&other, &until)
			return &Error{Code: CodeConflict, Msg: fmt.Sprintf("already running (started by %s)", other), Err: ErrLeaseHeld}
		}
		return nil
	})
}

// ReleaseLease gives the lease up (only its holder can).
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	return s.write(ctx, func(tx *wtx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE name = ? AND holder = ?`, name, holder)
		return err
	})
}

// LeaseHolder reports who holds the lease now ("" when nobody).
func (s *Store) LeaseHolder(ctx context.Context, name string) (string, error) {
	var holder string
	err := s.rdb.QueryRowContext(ctx, `SELECT holder FROM leases WHERE name = ? AND expires_at >= ?`, name, s.now().UnixMilli()).Scan(&holder)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return holder, err
}

// SyncProgress is the state of a sync of clients with Stripe, as the
// console and the CLI show it.
type SyncProgress struct {
	Running   bool
	StartedBy string
	StartedAt time.Time
	// Fetched is how many customers Stripe returned so far; Total, when
	// known (>0), how many it will.
	Fetched, Total int
	UpsertResult
	// Skipped counts customers whose data Backroom's checks refused (an
	// email or currency it cannot store): they are neither written nor
	// marked deleted, and the log names them by customer id.
	Skipped       int
	MarkedDeleted int
	FinishedAt    time.Time
	// Err is why the last sync stopped early, in words a staff member can
	// act on ("" when it finished or runs).
	Err string
}
