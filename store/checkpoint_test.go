package store

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestWriterNeverCheckpoints: commits leave the WAL to the background
// checkpointer, which copies all of it, after which the writer starts the
// WAL over instead of growing it.
func TestWriterNeverCheckpoints(t *testing.T) {
	e := newEnv(t)
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
	st, err := e.s.checkpointWAL(ctxb)
	if err != nil {
		t.Fatal(err)
	}
	if st.frames == 0 || st.copied != st.frames {
		t.Fatalf("checkpoint copied %d of %d frames", st.copied, st.frames)
	}
	// The next commit writes at the start of the WAL again.
	if _, err := e.s.UpsertClients(ctxb, SourceSync, []ClientData{{CustomerID: "cus_Wnext", Name: "Wal Test"}}); err != nil {
		t.Fatal(err)
	}
	st, err = e.s.checkpointWAL(ctxb)
	if err != nil {
		t.Fatal(err)
	}
	if st.frames == 0 || st.frames > 50 {
		t.Errorf("after a full checkpoint, one commit left %d frames in the WAL, want a few", st.frames)
	}
	// When the background finds the WAL long, the writer copies the rest
	// between two groups, and the WAL starts over at the next commit.
	for i := range 1200 {
		if _, err := e.s.UpsertClients(ctxb, SourceSync, []ClientData{{CustomerID: fmt.Sprintf("cus_X%04d", i), Name: "Wal Test"}}); err != nil {
			t.Fatal(err)
		}
	}
	e.s.walReset.Store(true)
	e.s.finishCheckpoint()
	if e.s.walReset.Load() {
		t.Error("the writer's checkpoint did not take up the request")
	}
	if _, err := e.s.UpsertClients(ctxb, SourceSync, []ClientData{{CustomerID: "cus_Y", Name: "Wal Test"}}); err != nil {
		t.Fatal(err)
	}
	if st, err := walCheckpoint(ctxb, e.s.wdb, "PASSIVE"); err != nil || st.frames == 0 || st.frames > 50 {
		t.Errorf("after the writer's checkpoint, one commit left %d frames in the WAL (%v), want a few", st.frames, err)
	}
	// Every commit is still there for another connection (a reopen).
	e.reopen()
	var n int
	if err := e.s.rdb.QueryRow(`SELECT count(*) FROM clients_fts WHERE clients_fts MATCH '"Wal Test"'`).Scan(&n); err != nil || n != 2402 {
		t.Errorf("after reopening: %d clients found (%v), want 2402", n, err)
	}
}

// TestSearchIndexOneSegmentPerCommit: the clients search index takes a
// transaction's changes in one go (one new FTS5 segment), not one segment
// per client written; and what it answers is the same.
func TestSearchIndexOneSegmentPerCommit(t *testing.T) {
	e := newEnv(t)
	segments := func() int {
		t.Helper()
		var n int
		if err := e.s.rdb.QueryRow(`SELECT count(DISTINCT segid) FROM clients_fts_idx`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
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
	if n := segments(); n != 1 {
		t.Errorf("40 clients written in one transaction made %d index segments, want 1", n)
	}
	// Every email changes: old trigrams out, new ones in, one segment more.
	if _, err := e.s.UpsertClients(ctxb, SourceSync, batch(func(i int) string { return fmt.Sprintf("second-%02d@example.org", i) })); err != nil {
		t.Fatal(err)
	}
	if n := segments(); n > 2 {
		t.Errorf("40 clients updated in one transaction: %d index segments, want at most 2", n)
	}
	for q, want := range map[string]int64{"first": 0, "second-": 40, "second-07@": 1, "Segment Client": 40} {
		page, err := e.s.ListClients(ctxb, ClientQuery{Search: q, Limit: 50})
		if err != nil || page.Total != want {
			t.Errorf("search %q: %d clients (%v), want %d", q, page.Total, err, want)
		}
	}
	var queued int
	if err := e.s.rdb.QueryRow(`SELECT count(*) FROM clients_fts_pending`).Scan(&queued); err != nil || queued != 0 {
		t.Errorf("%d search index changes left queued after the commit (%v)", queued, err)
	}
	if _, err := e.s.wdb.Exec(`INSERT INTO clients_fts (clients_fts, rank) VALUES ('integrity-check', 1)`); err != nil {
		t.Errorf("search index integrity check: %v", err)
	}
}
