package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestStoreKeepsSQLiteLocks: in WAL mode each of the store's connections
// holds a shared lock on the database file for as long as it is open, so
// that no other process changes the journal mode or deletes the WAL under
// it. Closing any descriptor of the file would drop those locks (POSIX
// locks belong to the process): the store's own descriptor, used to sync
// the file ahead of a WAL restart, stays open, and Open's first touch of
// an existing file does not open it. A conflicting lock of another owner
// (an OFD lock) is still refused after both.
func TestStoreKeepsSQLiteLocks(t *testing.T) {
	e := newEnv(t)
	for i := range 300 {
		if _, err := e.s.UpsertClients(ctxb, SourceSync, []ClientData{{CustomerID: fmt.Sprintf("cus_L%04d", i), Name: "Lock Test"}}); err != nil {
			t.Fatal(err)
		}
	}
	e.s.readyWALReset(ctxb)
	e.s.finishCheckpoint()
	// What Open does to the file first must not open it either.
	if err := touch0600(filepath.Join(e.dir, DBFile)); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(e.dir, DBFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Closed after the store (closing it drops the process's locks too).
	t.Cleanup(func() { f.Close() })
	const ofdSetLock = 37 // F_OFD_SETLK
	// An exclusive lock on SQLite's shared range (the pending byte + 2).
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 1<<30 + 2, Len: 510}
	err = syscall.FcntlFlock(f.Fd(), ofdSetLock, &lk)
	if err == nil {
		t.Fatal("an exclusive lock on the database's shared range was granted while the store is open: SQLite's locks were dropped")
	}
	if !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EACCES) {
		t.Fatalf("locking the database's shared range: %v, want it refused as held", err)
	}
}
