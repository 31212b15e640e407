package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestWriterNeverCheckpoints: commits leave the WAL to the background
// checkpointer, which copies all of it, after which the writer starts the
// WAL over instead of growing it.
func TestWriterNeverCheckpoints(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.searchDelay = time.Hour }) // no timed search flushes in between
	var auto int
	if err := e.s.wdb.QueryRow(`PRAGMA wal_autocheckpoint`).Scan(&auto); err != nil || auto != 0 {
		t.Fatalf("write connection wal_autocheckpoint = %d (%v), want 0", auto, err)
	}
	// More commits than SQLite's automatic checkpoint would let through
	// (1000 pages): the WAL holds them all.
	for i := range 1200 {
		if _, err := e.s.UpsertClients(ctxb, SourceSync, []ClientData{{CustomerID: fmt.Sprintf("cus_W%04d", i), Name: "Wal Test"}}); err != nil {
			t.Fatal(err)
		}
	}
	walPath := filepath.Join(e.dir, DBFile+"-wal")
	before, err := os.Stat(walPath)
	if err != nil {
		t.Fatal(err)
	}
	if before.Size() < 1000*4096 {
		t.Fatalf("WAL is %d bytes after 1200 commits: the writer checkpointed", before.Size())
	}
	// The next commit after a full checkpoint writes at the start of the
	// WAL again. (Unless the background checkpointer held the WAL at that
	// very moment, which a loaded machine may see: then try again.)
	wrote := 1200
	startsOver := func(what string, checkpoint func() error) {
		t.Helper()
		var frames int64
		for range 5 {
			if err := checkpoint(); err != nil {
				t.Fatal(err)
			}
			if _, err := e.s.UpsertClients(ctxb, SourceSync, []ClientData{{CustomerID: fmt.Sprintf("cus_Wnext%d", wrote), Name: "Wal Test"}}); err != nil {
				t.Fatal(err)
			}
			wrote++
			st, err := walCheckpoint(ctxb, e.s.wdb, "PASSIVE")
			for i := 0; err == nil && st.frames < 0 && i < 100; i++ { // the background's checkpoint is running
				time.Sleep(10 * time.Millisecond)
				st, err = walCheckpoint(ctxb, e.s.wdb, "PASSIVE")
			}
			if err != nil {
				t.Fatal(err)
			}
			if frames = st.frames; frames > 0 && frames <= 50 {
				return
			}
		}
		t.Errorf("after %s, one commit left %d frames in the WAL, want a few", what, frames)
	}
	startsOver("a full checkpoint", func() error {
		st, err := e.s.checkpointWAL(ctxb)
		if err == nil && (st.frames == 0 || st.copied != st.frames) {
			t.Fatalf("checkpoint copied %d of %d frames", st.copied, st.frames)
		}
		return err
	})
	// When the background finds the WAL long, the writer copies the rest
	// between two groups, and the WAL starts over at the next commit.
	for i := range 1200 {
		if _, err := e.s.UpsertClients(ctxb, SourceSync, []ClientData{{CustomerID: fmt.Sprintf("cus_X%04d", i), Name: "Wal Test"}}); err != nil {
			t.Fatal(err)
		}
	}
	wrote += 1200
	startsOver("the writer's checkpoint", func() error {
		e.s.walReset.Store(true)
		e.s.finishCheckpoint()
		if e.s.walReset.Load() {
			t.Error("the writer's checkpoint did not take up the request")
		}
		return nil
	})
	// Every commit is still there for another connection (a reopen).
	e.reopen()
	var n int
	if err := e.s.rdb.QueryRow(`SELECT count(*) FROM clients_fts WHERE clients_fts MATCH '"Wal Test"'`).Scan(&n); err != nil || n != wrote {
		t.Errorf("after reopening: %d clients found (%v), want %d", n, err, wrote)
	}
}

// TestSearchIndexBatches: the clients search index takes queued changes
// in batches (one new FTS5 segment per flush, not one per client or per
// commit), a search first flushes what is queued so that it finds every
// committed change, and a changed email is masked, its client listed as
// having masked entries.
func TestSearchIndexBatches(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.searchDelay = time.Hour }) // only searches flush
	batch := func(email func(i int) string) []ClientData {
		var b []ClientData
		for i := range 40 {
			b = append(b, ClientData{CustomerID: fmt.Sprintf("cus_S%02d", i), Name: fmt.Sprintf("Segment Client %02d", i), Email: email(i), Version: int64(len(email(i)))})
		}
		return b
	}
	if _, err := e.s.UpsertClients(ctxb, SourceSync, batch(func(i int) string { return fmt.Sprintf("first%02d@example.com", i) })); err != nil {
		t.Fatal(err)
	}
	// Every email changes: old trigrams masked, new ones in.
	if _, err := e.s.UpsertClients(ctxb, SourceSync, batch(func(i int) string { return fmt.Sprintf("second-%02d@example.org", i) })); err != nil {
		t.Fatal(err)
	}
	// Both are still queued: no segment yet.
	if n := ftsSegments(t, e.s); n != 0 {
		t.Errorf("two transactions of 40 clients made %d index segments before any search, want none", n)
	}
	for q, want := range map[string]int64{"first": 0, "second-": 40, "second-07@": 1, "Segment Client": 40} {
		page, err := e.s.ListClients(ctxb, ClientQuery{Search: q, Limit: 50})
		if err != nil || page.Total != want {
			t.Errorf("search %q: %d clients (%v), want %d", q, page.Total, err, want)
		}
	}
	if n := ftsSegments(t, e.s); n != 1 {
		t.Errorf("after a search: %d index segments, want 1", n)
	}
	if n := countRows(t, e.s, `clients_fts_pending`); n != 0 {
		t.Errorf("%d search index changes left queued after a search", n)
	}
	if n := countRows(t, e.s, `clients_fts_stale`); n != 40 {
		t.Errorf("%d clients listed with masked index entries, want the 40 whose email changed", n)
	}
	if e.s.searchPending.Load() {
		t.Error("the store still believes changes are queued")
	}
	if _, err := e.s.wdb.Exec(`INSERT INTO clients_fts (clients_fts, rank) VALUES ('integrity-check', 1)`); err != nil {
		t.Errorf("search index integrity check: %v", err)
	}
}

// TestSearchIndexNetChanges: what a batch does to a client several times
// reaches the index as its net change, in one segment, whatever the order
// of the clients' rows: a client created and renamed in the batch is
// found by its last email only, one renamed twice loses its first and
// middle emails.
func TestSearchIndexNetChanges(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.searchDelay = time.Hour }) // only searches flush
	up := func(id, email string, v int64) {
		t.Helper()
		if _, err := e.s.UpsertClients(ctxb, SourceSync, []ClientData{{CustomerID: id, Name: "Net " + id, Email: email, Version: v}}); err != nil {
			t.Fatal(err)
		}
	}
	up("cus_Beta", "beta-zero@example.com", 1)
	for i := range 20 {
		up(fmt.Sprintf("cus_Fill%02d", i), fmt.Sprintf("fill%02d@example.com", i), 1)
	}
	if _, err := e.s.ListClients(ctxb, ClientQuery{Search: "Net", Limit: 5}); err != nil { // flush
		t.Fatal(err)
	}
	before := ftsSegments(t, e.s)
	// One batch: rowids up and down, each client changed more than once.
	up("cus_Alpha", "alpha-one@example.com", 1)
	up("cus_Beta", "beta-one@example.com", 2)
	up("cus_Fill07", "fill-seven@example.com", 2)
	up("cus_Alpha", "alpha-two@example.com", 2)
	up("cus_Beta", "beta-two@example.com", 3)
	for q, want := range map[string]int64{"alpha-one": 0, "alpha-two": 1, "beta-zero": 0, "beta-one": 0, "beta-two": 1,
		"fill07@": 0, "fill-seven": 1, "fill1": 10} {
		page, err := e.s.ListClients(ctxb, ClientQuery{Search: q, Limit: 50})
		if err != nil || page.Total != want {
			t.Errorf("search %q: %d clients (%v), want %d", q, page.Total, err, want)
		}
	}
	if n := ftsSegments(t, e.s); n > before+1 {
		t.Errorf("one flush added %d index segments, want at most 1", n-before)
	}
	if _, err := e.s.wdb.Exec(`INSERT INTO clients_fts (clients_fts, rank) VALUES ('integrity-check', 1)`); err != nil {
		t.Errorf("search index integrity check: %v", err)
	}
}

// TestSearchIndexFlushesWhenIdle: changes queued by a last write reach the
// index without another write or a search coming.
func TestSearchIndexFlushesWhenIdle(t *testing.T) {
	e := newEnv(t)
	if _, err := e.s.UpsertClients(ctxb, SourceSync, []ClientData{{CustomerID: "cus_Idle", Name: "Idle Flush", Email: "idle@example.com", Version: 1}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for countRows(t, e.s, `clients_fts_pending`) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the queued change never reached the search index")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var n int
	if err := e.s.rdb.QueryRow(`SELECT count(*) FROM clients_fts WHERE clients_fts MATCH '"Idle Flush"'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("the index finds %d clients (%v), want 1", n, err)
	}
}

// TestForgetMergesMaskedEntries: forgetting a client whose text changed
// before merges the search index into one segment (dropping every masked
// entry); forgetting one whose text never changed does not.
func TestForgetMergesMaskedEntries(t *testing.T) {
	e := newEnv(t)
	write := func(id, email string, v int64) {
		t.Helper()
		if _, err := e.s.UpsertClients(ctxb, SourceSync, []ClientData{{CustomerID: id, Name: "Masked " + id, Email: email, Version: v}}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.ListClients(ctxb, ClientQuery{Search: "Masked", Limit: 5}); err != nil { // flushes: a segment each
			t.Fatal(err)
		}
	}
	write("cus_Changed", "old-address@example.com", 1)
	write("cus_Changed", "new-address@example.com", 2)
	write("cus_Steady", "steady@example.com", 1)
	write("cus_Other", "other-old@example.com", 1)
	write("cus_Other", "other-new@example.com", 2)
	if n := ftsSegments(t, e.s); n < 2 {
		t.Fatalf("setup: %d index segments, want several", n)
	}
	if err := e.s.ForgetClient(ctxb, cliAdmin, "cus_Steady"); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, e.s, `clients_fts_stale`); n != 2 {
		t.Errorf("forgetting a client whose text never changed: %d clients still listed with masked entries, want 2 (no merge)", n)
	}
	if err := e.s.ForgetClient(ctxb, cliAdmin, "cus_Changed"); err != nil {
		t.Fatal(err)
	}
	if n := ftsSegments(t, e.s); n != 1 {
		t.Errorf("after forgetting a client with masked entries: %d index segments, want 1 (the whole index merged)", n)
	}
	if n := countRows(t, e.s, `clients_fts_stale`); n != 0 {
		t.Errorf("%d clients still listed with masked entries after the merge", n)
	}
	for q, want := range map[string]int64{"old-address": 0, "new-address": 0, "steady@": 0, "other-new": 1, "other-old": 0} {
		page, err := e.s.ListClients(ctxb, ClientQuery{Search: q, Limit: 5})
		if err != nil || page.Total != want {
			t.Errorf("search %q: %d clients (%v), want %d", q, page.Total, err, want)
		}
	}
	if _, err := e.s.wdb.Exec(`INSERT INTO clients_fts (clients_fts, rank) VALUES ('integrity-check', 1)`); err != nil {
		t.Errorf("search index integrity check: %v", err)
	}
}

func ftsSegments(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.rdb.QueryRow(`SELECT count(DISTINCT segid) FROM clients_fts_idx`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func countRows(t *testing.T, s *Store, table string) int {
	t.Helper()
	var n int
	if err := s.rdb.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLongWALCutWhenQuiet: a WAL that grew long is cut to nothing once the
// store has had no commits for a while, and not while commits go on.
func TestLongWALCutWhenQuiet(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.walIdle = &walIdleTuning{quiet: 2 * time.Second, longFrames: 8} })
	walSize := func() int64 {
		fi, err := os.Stat(filepath.Join(e.dir, DBFile+"-wal"))
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	// Commits every 50 ms for a second: the WAL is long, and never cut.
	deadline := time.Now().Add(time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		if _, err := e.s.UpsertClients(ctxb, SourceSync, []ClientData{{CustomerID: fmt.Sprintf("cus_Q%03d", i), Name: "Quiet Test", Version: 1}}); err != nil {
			t.Fatal(err)
		}
		if i > 4 && walSize() == 0 {
			t.Fatalf("the WAL was cut while commits went on (after %d)", i)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Then quiet: cut to nothing.
	deadline = time.Now().Add(10 * time.Second)
	for walSize() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the WAL is still %d bytes after 10 s without commits", walSize())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Nothing lost.
	page, err := e.s.ListClients(ctxb, ClientQuery{Search: "Quiet Test", Limit: 500})
	if err != nil || page.Total < 10 {
		t.Errorf("after the cut: %d clients (%v)", page.Total, err)
	}
}

// TestWALResetSyncsAhead: before the background asks the writer to let
// the WAL start over, it syncs the database file itself, then copies what
// was committed meanwhile, in at least two rounds, so that the writer's
// own checkpoint (which every caller waits for) has little left to copy
// and to sync. The sync goes through a descriptor the store keeps open:
// closing one would drop SQLite's locks on the file.
func TestWALResetSyncsAhead(t *testing.T) {
	var mu sync.Mutex
	var events []string
	e := newEnv(t, func(o *Options) {
		o.searchDelay = time.Hour
		o.syncDB = func() error {
			mu.Lock()
			events = append(events, "sync")
			mu.Unlock()
			return nil
		}
	})
	for i := range 300 {
		if _, err := e.s.UpsertClients(ctxb, SourceSync, []ClientData{{CustomerID: fmt.Sprintf("cus_R%04d", i), Name: "Reset Test"}}); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	events = nil // what the background did on its own does not count
	mu.Unlock()
	e.s.readyWALReset(ctxb)
	if !e.s.walReset.Load() {
		t.Fatal("the writer was not asked to let the WAL start over")
	}
	mu.Lock()
	synced := len(events)
	mu.Unlock()
	if synced < 2 {
		t.Fatalf("the database file was synced %d times ahead of the writer's checkpoint, want at least two rounds", synced)
	}
	if err := e.s.dbFile.Sync(); err != nil {
		t.Errorf("the store's own descriptor of the database file does not sync: %v", err)
	}
	// The syncing leaves the WAL as it was: the writer's checkpoint
	// copies what is left, and the next commit starts the WAL over
	// (unless the background's checkpoint held the WAL at that moment, as
	// a loaded machine may see: then again).
	var frames int64
	for i := range 5 {
		e.s.walReset.Store(true)
		e.s.finishCheckpoint()
		if _, err := e.s.UpsertClients(ctxb, SourceSync, []ClientData{{CustomerID: fmt.Sprintf("cus_Rnext%d", i), Name: "Reset Next"}}); err != nil {
			t.Fatal(err)
		}
		st, err := walCheckpoint(ctxb, e.s.wdb, "PASSIVE")
		if err != nil {
			t.Fatal(err)
		}
		if frames = st.frames; frames >= 0 && frames <= 50 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if frames < 0 || frames > 50 {
		t.Errorf("after the writer's checkpoint one commit left %d frames in the WAL, want a few (it started over)", frames)
	}
	e.reopen()
	page, err := e.s.ListClients(ctxb, ClientQuery{Search: "Reset Test", Limit: 1})
	if err != nil || page.Total != 300 {
		t.Errorf("after reopening: %d clients found (%v), want 300", page.Total, err)
	}
}

// While commits keep coming during the syncs, the background goes on
// passing until a pass copies little: the writer's share is the copy and
// sync of what the last pass left.
func TestWALResetPassesUntilOneIsShort(t *testing.T) {
	var e *env
	var mu sync.Mutex
	syncs, busy := 0, 3 // the first three syncs see commits meanwhile
	e = newEnv(t, func(o *Options) {
		o.searchDelay = time.Hour
		o.syncDB = func() error {
			mu.Lock()
			syncs++
			n := syncs
			mu.Unlock()
			if n > busy || e == nil {
				return nil
			}
			batch := make([]ClientData, 1500)
			for i := range batch {
				batch[i] = ClientData{CustomerID: fmt.Sprintf("cus_P%dx%04d", n, i), Name: fmt.Sprintf("Pass %d client %d %s", n, i, strings.Repeat("long name ", 15)), Email: fmt.Sprintf("p%d.%d@example.com", n, i)}
			}
			if _, err := e.s.UpsertClients(ctxb, SourceSync, batch); err != nil {
				t.Errorf("commits during a sync: %v", err)
			}
			return nil
		}
	})
	if _, err := e.s.UpsertClients(ctxb, SourceSync, []ClientData{{CustomerID: "cus_Pstart", Name: "Start"}}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	syncs = 0 // what the background did on its own does not count
	mu.Unlock()
	e.s.readyWALReset(ctxb)
	mu.Lock()
	n := syncs
	mu.Unlock()
	// Syncs 1-3 each came with commits; the pass after sync 4 copies
	// only what sync 3's commits left, if anything.
	if n < busy+1 || n > walCatchUpPasses {
		t.Fatalf("the background synced %d times ahead of the writer, want passes until one after a quiet sync (%d) and at most %d", n, busy+1, walCatchUpPasses)
	}
	if !e.s.walReset.Load() {
		t.Fatal("the writer was not asked to let the WAL start over")
	}
}
