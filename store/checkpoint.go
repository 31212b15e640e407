package store

import (
	"context"
	"database/sql"
	"time"
)

// Checkpoints run off the writer's path: the write connection never
// checkpoints on its own (wal_autocheckpoint off), and a background
// goroutine copies the WAL into the database file on a connection of its
// own, while the writer goes on committing. Durability is the same: a
// commit is durable once its WAL frames are written (and synced, per the
// synchronous level), whoever copies them later.
//
// The WAL starts over only when a write transaction begins with all of it
// copied, which never happens while the background copies and the writer
// commits side by side. So once the WAL is long, the background asks the
// writer to copy the rest itself between two groups (only what was
// committed since the background pass: a short pause), and the writer's
// next transaction starts the WAL over (cut back to walLimitBytes).

// checkpointEvery is how often the background checkpoint runs (when
// something was committed since the last run). It was 100 ms while the
// writer's share of a WAL restart grew with it (at 1 s the bench's p99
// was 55 ms, at 100 ms 44-51 ms). Since the background syncs the database
// file ahead of a restart (readyWALReset), a longer period copies each hot
// page fewer times without holding the writer up longer: at 300 ms the
// checkpoints' CPU per delivery fell from ~17 to ~11 µs, and the bench's
// rate and p99 beat 100 ms's in five paired runs of five (600 ms was no
// better than 300).
const checkpointEvery = 300 * time.Millisecond

// walResetFrames is the WAL length (pages) from which the writer is asked
// to finish a checkpoint so that the WAL starts over. Each such finish
// holds every writer up for a moment: under the webhook bench's load
// (~20,000 pages a second) 16 MiB made one every 0.2 s, 128 MiB one
// every 1.5 s or so.
const walResetFrames = 64 << 10

// walFinishFrames is how much of the WAL (pages) a catch-up pass may copy
// for the writer to be asked to let the WAL start over (readyWALReset):
// the background passes, each after a sync of the database file, until
// one copies no more than that (at most walCatchUpPasses of them). Each
// pass copies what was committed during the last sync and pass, and so a
// shorter one: the writer's share, copying and syncing what came after,
// shrinks with the last pass. (A pass copies all the WAL it sees: it was
// stopping after the second pass, however much that one copied.)
const (
	walFinishFrames  = 256
	walCatchUpPasses = 8
)

// walLimitBytes is the size the WAL file is cut back to when it starts
// over (journal_size_limit). Above what the WAL grows to under load
// (frames are a page and 24 bytes): walResetFrames, and what is committed
// while the background catches up before the writer's finish (under the
// webhook bench's load 70,000-90,000 frames in all, up to 370 MB), so that
// a busy store never cuts it: freeing and then allocating again the
// file's blocks made the first commit after each restart take ~40 ms more
// in the webhook bench (max latency 124-160 → 65 ms). A quiet store cuts
// it to nothing (walIdleTruncate).
const walLimitBytes = 448 << 20

// walIdleTruncate is how long a store goes without commits before its
// long WAL file (a quarter of walLimitBytes) is cut to nothing.
const walIdleTruncate = 5 * time.Second

// walIdleTuning is when the WAL is cut to nothing: after quiet without
// commits, once it grew to longFrames.
type walIdleTuning struct {
	quiet      time.Duration
	longFrames int64
}

// pageFrameBytes is the size of a WAL frame: a page and its header.
const pageFrameBytes = 4096 + 24

// walRestartFrames is the WAL length (pages) beyond which readers kept
// the WAL from starting over for too long: the background checkpoint then
// waits for them (RESTART, holding back the writer meanwhile) so that the
// WAL cannot grow without bound.
const walRestartFrames = 256 << 10

// runCheckpointer checkpoints every checkpointEvery until quit closes.
func (s *Store) runCheckpointer() {
	defer close(s.checkpointerDone)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	var seen uint64
	var quietSince time.Time
	long := false // the WAL grew past walIdle.longFrames since it was last cut
	for {
		select {
		case <-s.quit:
			return
		case now := <-t.C:
			if n := s.commits.Load(); n == seen {
				// A quiet store gives back the disk a long WAL took.
				if long && now.Sub(quietSince) >= s.walIdle.quiet {
					if _, err := walCheckpoint(context.Background(), s.cdb, "TRUNCATE"); err == nil {
						long = false
					}
				}
				continue
			} else {
				seen, quietSince = n, now
			}
			st, err := s.checkpointWAL(context.Background())
			if err != nil {
				s.log.Warn("background checkpoint", "err", err)
				continue
			}
			if st.frames >= s.walIdle.longFrames {
				long = true
			}
			if st.frames < walResetFrames {
				continue
			}
			s.readyWALReset(context.Background())
			// The writer finishes between its next groups; the next
			// background run comes a whole period later.
			t.Reset(checkpointEvery)
		}
	}
}

// walState is what a checkpoint reports: the WAL's length and how much of
// it is now in the database file, in pages.
type walState struct {
	frames, copied int64
}

// checkpointWAL copies what it can of the WAL into the database file
// without waiting for anyone (PASSIVE); when the WAL is very long, it
// waits for readers and the writer (RESTART).
func (s *Store) checkpointWAL(ctx context.Context) (walState, error) {
	st, err := walCheckpoint(ctx, s.cdb, "PASSIVE")
	if err != nil || st.frames < walRestartFrames {
		return st, err
	}
	return walCheckpoint(ctx, s.cdb, "RESTART")
}

// readyWALReset gets the WAL ready for the writer to start it over and
// then asks the writer to (finishCheckpoint). The writer's share holds
// every caller up, so the background does all it can before: it syncs the
// database file itself (through a descriptor of its own: a sync is of the
// file, whoever wrote it) and copies what was committed meanwhile, in
// passes, until a pass after a sync copies at most walFinishFrames. (Each
// pass syncs the WAL itself before it copies.) A sync costs about 25 µs
// a page written at random on the machines Backroom is measured on, so
// the writer's share is mostly the sync of what it copies itself. Left to
// the writer, the database file's sync took every page the background had
// copied since the last one: the writer's checkpoint took 36-58 ms under
// the webhook bench's load, every two seconds or so; with a sync and a
// pass ahead 8-18 ms, and with passes until one is short 5-7 ms.
func (s *Store) readyWALReset(ctx context.Context) {
	copied := int64(-1)
	for range walCatchUpPasses {
		if err := s.syncDB(); err != nil {
			// A head start only: SQLite syncs the file itself when it must.
			s.log.Debug("syncing the database ahead of a checkpoint", "err", err)
		}
		st, err := s.checkpointWAL(ctx)
		if err != nil {
			break
		}
		pass := st.copied - copied
		if st.copied < copied {
			pass = st.copied // the WAL started over since (a pass had copied it all)
		}
		if copied >= 0 && pass <= walFinishFrames {
			break
		}
		copied = st.copied
	}
	s.walReset.Store(true)
}

// finishCheckpoint is run by the writer between groups when the background
// asked for it: it copies what the background has not, so that the next
// write transaction starts the WAL over.
func (s *Store) finishCheckpoint() {
	if !s.walReset.CompareAndSwap(true, false) {
		return
	}
	if _, err := walCheckpoint(context.Background(), s.wdb, "PASSIVE"); err != nil {
		s.log.Warn("checkpoint", "err", err)
	}
}

func walCheckpoint(ctx context.Context, db *sql.DB, mode string) (walState, error) {
	var busy int
	var st walState
	err := db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(`+mode+`)`).Scan(&busy, &st.frames, &st.copied)
	return st, err
}
