package store

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// walTestFile is a file opened through walVFS as SQLite would open a WAL
// file, driven through its methods as SQLite drives them.
type walTestFile struct {
	t    *testing.T
	tls  *libc.TLS
	p    uintptr
	path string
}

// openWALTestFile opens dir/x.db-wal ("": a new directory).
func openWALTestFile(t *testing.T, dir string) *walTestFile {
	t.Helper()
	tls := libc.NewTLS()
	t.Cleanup(tls.Close)
	if dir == "" {
		dir = t.TempDir()
		// SQLite gives a WAL file its database's mode: the database must
		// exist.
		if err := os.WriteFile(filepath.Join(dir, "x.db"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f := openVFSTestFile(t, tls, filepath.Join(dir, "x.db-wal"), sqlite3.SQLITE_OPEN_WAL)
	if walOf(f.p).base == 0 {
		t.Fatal("a WAL file opened through walVFS did not get its methods")
	}
	return f
}

// openDB opens the database file name beside f's WAL file, for the
// connection of tls.
func (f *walTestFile) openDB(name string, tls *libc.TLS) *walTestFile {
	f.t.Helper()
	return openVFSTestFile(f.t, tls, filepath.Join(filepath.Dir(f.path), name), sqlite3.SQLITE_OPEN_MAIN_DB)
}

// openVFSTestFile opens path through walVFS as a file of kind (a
// SQLITE_OPEN_ flag), for the connection of tls.
func openVFSTestFile(t *testing.T, tls *libc.TLS, path string, kind int32) *walTestFile {
	t.Helper()
	if _, err := registerWALVFS(); err != nil {
		t.Fatal(err)
	}
	name, err := libc.CString(walVFSName)
	if err != nil {
		t.Fatal(err)
	}
	defer libc.Xfree(tls, name)
	pVfs := sqlite3.Xsqlite3_vfs_find(tls, name)
	if pVfs == 0 {
		t.Fatal("walVFS is not registered")
	}
	vfs := (*sqlite3.Tsqlite3_vfs)(cptr(pVfs))
	zPath, err := libc.CString(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { libc.Xfree(tls, zPath) }) // SQLite keeps the name while open
	p := libc.Xcalloc(tls, 1, libc.Tsize_t(vfs.FszOsFile))
	t.Cleanup(func() { libc.Xfree(tls, p) })
	flags := kind | sqlite3.SQLITE_OPEN_CREATE | sqlite3.SQLITE_OPEN_READWRITE
	if rc := callOpen(vfs.FxOpen)(tls, pVfs, zPath, p, flags, 0); rc != sqlite3.SQLITE_OK {
		t.Fatalf("open %s: SQLite error %d", path, rc)
	}
	return &walTestFile{t: t, tls: tls, p: p, path: path}
}

func (f *walTestFile) methods() *sqlite3.Tsqlite3_io_methods {
	return (*sqlite3.Tsqlite3_io_methods)(cptr((*sqlite3.Tsqlite3_file)(cptr(f.p)).FpMethods))
}

// cbuf copies b to SQLite's memory.
func (f *walTestFile) cbuf(b []byte) uintptr {
	c := libc.Xmalloc(f.tls, libc.Tsize_t(len(b)+1))
	f.t.Cleanup(func() { libc.Xfree(f.tls, c) })
	copy(unsafe.Slice((*byte)(cptr(c)), len(b)), b)
	return c
}

func (f *walTestFile) write(b []byte, off int64) {
	f.t.Helper()
	if rc := callReadWrite(f.methods().FxWrite)(f.tls, f.p, f.cbuf(b), int32(len(b)), off); rc != sqlite3.SQLITE_OK {
		f.t.Fatalf("write %d bytes at %d: SQLite error %d", len(b), off, rc)
	}
}

func (f *walTestFile) read(n int, off int64) []byte {
	f.t.Helper()
	c := f.cbuf(make([]byte, n))
	rc := callReadWrite(f.methods().FxRead)(f.tls, f.p, c, int32(n), off)
	if rc != sqlite3.SQLITE_OK && rc != sqlite3.SQLITE_IOERR_SHORT_READ {
		f.t.Fatalf("read %d bytes at %d: SQLite error %d", n, off, rc)
	}
	return bytes.Clone(unsafe.Slice((*byte)(cptr(c)), n))
}

func (f *walTestFile) size() int64 {
	f.t.Helper()
	c := f.cbuf(make([]byte, 8))
	if rc := callFileSize(f.methods().FxFileSize)(f.tls, f.p, c); rc != sqlite3.SQLITE_OK {
		f.t.Fatalf("file size: SQLite error %d", rc)
	}
	return *(*int64)(cptr(c))
}

func (f *walTestFile) onDisk() []byte {
	f.t.Helper()
	b, err := os.ReadFile(f.path)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func (f *walTestFile) close() {
	f.t.Helper()
	if rc := callClose(f.methods().FxClose)(f.tls, f.p); rc != sqlite3.SQLITE_OK {
		f.t.Fatalf("close: SQLite error %d", rc)
	}
}

func filled(n int, c byte) []byte { return bytes.Repeat([]byte{c}, n) }

// walHeaderBytes is a WAL file's header for pages of size.
func walHeaderBytes(size uint32) []byte {
	h := filled(walHeader, 'w')
	binary.BigEndian.PutUint32(h[8:12], size)
	return h
}

// frameHeaderBytes is a frame's header: of page pgno, a commit frame when
// commit (the database's size in pages) is not 0.
func frameHeaderBytes(pgno, commit uint32) []byte {
	h := filled(walFrameHeader, 'h')
	binary.BigEndian.PutUint32(h[0:4], pgno)
	binary.BigEndian.PutUint32(h[4:8], commit)
	return h
}

// frameOffset is where frame i (from 0) of a WAL of 4 KiB pages starts.
func frameOffset(i int64) int64 { return walHeader + i*(4096+walFrameHeader) }

// frameBytes is frame i's header and page (4 KiB), a commit frame when
// commit is not 0.
func frameBytes(i int64, commit uint32) (hdr, page []byte) {
	return frameHeaderBytes(uint32(i+2), commit), filled(4096, byte('a'+i%26))
}

// writeFrames writes frames from to to (excluded) as SQLite does, header
// then page, the last a commit frame when commit.
func (f *walTestFile) writeFrames(from, to int64, commit bool) {
	f.t.Helper()
	for i := from; i < to; i++ {
		c := uint32(0)
		if commit && i == to-1 {
			c = uint32(to + 1)
		}
		hdr, page := frameBytes(i, c)
		f.write(hdr, frameOffset(i))
		f.write(page, frameOffset(i)+walFrameHeader)
	}
}

// checkFrames fails unless the file holds frames 0 to n (excluded) as
// writeFrames wrote them, and nothing after them.
func (f *walTestFile) checkFrames(n int64, commit bool, what string) {
	f.t.Helper()
	got := f.onDisk()
	if int64(len(got)) != frameOffset(n) {
		f.t.Fatalf("%s: the file is %d bytes, want %d frames (%d bytes)", what, len(got), n, frameOffset(n))
	}
	for i := range n {
		c := uint32(0)
		if commit && i == n-1 {
			c = uint32(n + 1)
		}
		hdr, page := frameBytes(i, c)
		if !bytes.Equal(got[frameOffset(i):frameOffset(i)+walFrameHeader], hdr) || !bytes.Equal(got[frameOffset(i)+walFrameHeader:frameOffset(i+1)], page) {
			f.t.Fatalf("%s: frame %d is not as written", what, i)
		}
	}
}

// Frames are held from the header of a frame that is not a commit frame,
// at a frame's offset, for as long as SQLite writes on where it left off;
// a commit frame's header writes them out with itself, and the run
// reaches the file before anything else happens to the file.
func TestWALVFSHoldsRunsOfFrames(t *testing.T) {
	t.Run("until a commit frame's header", func(t *testing.T) {
		f := openWALTestFile(t, "")
		f.write(walHeaderBytes(4096), 0) // the WAL's header: not held
		if got := f.onDisk(); !bytes.Equal(got, walHeaderBytes(4096)) {
			t.Fatalf("the WAL's header was not written at once: %q", got)
		}
		f.writeFrames(0, 5, false)
		if got := len(f.onDisk()); got != walHeader {
			t.Fatalf("file is %d bytes after five frames; want them held (%d)", got, walHeader)
		}
		hdr, page := frameBytes(5, 7)
		f.write(hdr, frameOffset(5))
		if got := f.onDisk(); int64(len(got)) != frameOffset(5)+walFrameHeader {
			t.Fatalf("file is %d bytes after a commit frame's header; want the run and the header in it (%d)", len(got), frameOffset(5)+walFrameHeader)
		}
		f.write(page, frameOffset(5)+walFrameHeader)
		f.checkFrames(6, true, "after the commit frame's page")
		f.close()
	})

	t.Run("never longer than one write of the default VFS", func(t *testing.T) {
		f := openWALTestFile(t, "")
		f.write(walHeaderBytes(4096), 0)
		f.writeFrames(0, 100, false)
		held := frameOffset(100) - int64(len(f.onDisk()))
		if held <= 0 || held > walRunBytes || int64(len(f.onDisk())) < frameOffset(62) {
			t.Fatalf("%d bytes held after 100 frames; want a run of at most %d bytes, the runs before it written", held, walRunBytes)
		}
		f.writeFrames(100, 101, true)
		f.checkFrames(101, true, "after the commit")
		f.close()
	})

	// These are written at once: they start no run.
	hdr := frameHeaderBytes(7, 0)
	for _, tc := range []struct {
		name string
		hdr  []byte
		off  int64
		wal  []byte // the WAL's header, written first (nil: none)
	}{
		{"a commit frame's header", frameHeaderBytes(7, 120), frameOffset(1), walHeaderBytes(4096)},
		{"24 bytes off a frame's offset", hdr, frameOffset(1) + 24, walHeaderBytes(4096)},
		{"a frame header of a WAL whose page size is unknown", hdr, frameOffset(1), walHeaderBytes(1000)},
		{"a frame header before the WAL has a header", hdr, frameOffset(1), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := openWALTestFile(t, "")
			if tc.wal != nil {
				f.write(tc.wal, 0)
			}
			f.write(tc.hdr, tc.off)
			got := f.onDisk()
			if int64(len(got)) != tc.off+walFrameHeader || !bytes.Equal(got[tc.off:], tc.hdr) {
				t.Fatalf("%s was held (file is %d bytes), want it written at once", tc.name, len(got))
			}
			f.close()
		})
	}

	t.Run("the page size read from the WAL's header on the file", func(t *testing.T) {
		f := openWALTestFile(t, "")
		f.write(walHeaderBytes(4096), 0)
		f.close()
		// Another connection's file: the WAL's header was written before.
		g := openWALTestFile(t, filepath.Dir(f.path))
		hdr, page := frameBytes(3, 0)
		g.write(hdr, frameOffset(3))
		g.write(page, frameOffset(3)+walFrameHeader)
		if got := len(g.onDisk()); got != walHeader {
			t.Fatalf("file is %d bytes after a frame; want it held (%d)", got, walHeader)
		}
		if got := g.size(); got != frameOffset(4) {
			t.Fatalf("size with a frame held = %d, want %d", got, frameOffset(4))
		}
		g.close()
	})

	// Each of these must first write the held run.
	for _, tc := range []struct {
		name string
		then func(f *walTestFile)
	}{
		{"read", func(f *walTestFile) {
			if got := f.read(walFrameHeader, frameOffset(1)); !bytes.Equal(got, frameHeaderBytes(3, 0)) {
				t.Errorf("read of a held header = %q, want it as written", got)
			}
		}},
		{"size", func(f *walTestFile) {
			if got := f.size(); got != frameOffset(2) {
				t.Errorf("size with two frames held = %d, want %d", got, frameOffset(2))
			}
		}},
		{"write elsewhere", func(f *walTestFile) { f.write(filled(4096, 'x'), frameOffset(9)+walFrameHeader) }},
		{"a page written again", func(f *walTestFile) { f.write(filled(4096, 'b'), frameOffset(1)+walFrameHeader) }},
		{"sync", func(f *walTestFile) {
			if rc := callSync(f.methods().FxSync)(f.tls, f.p, sqlite3.SQLITE_SYNC_NORMAL); rc != sqlite3.SQLITE_OK {
				t.Fatalf("sync: SQLite error %d", rc)
			}
		}},
		{"file control", func(f *walTestFile) {
			_ = callFileControl(f.methods().FxFileControl)(f.tls, f.p, sqlite3.SQLITE_FCNTL_SIZE_HINT, f.cbuf(make([]byte, 8)))
		}},
		{"truncate", func(f *walTestFile) {
			if rc := callTruncate(f.methods().FxTruncate)(f.tls, f.p, frameOffset(2)); rc != sqlite3.SQLITE_OK {
				t.Fatalf("truncate: SQLite error %d", rc)
			}
		}},
		{"the connection's database file unlocks", func(f *walTestFile) {
			db := f.openDB("x.db", f.tls)
			if rc := callLock(db.methods().FxUnlock)(f.tls, db.p, sqlite3.SQLITE_LOCK_NONE); rc != sqlite3.SQLITE_OK {
				t.Fatalf("unlock: SQLite error %d", rc)
			}
			db.close()
		}},
		{"close", func(f *walTestFile) { f.close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := openWALTestFile(t, "")
			f.write(walHeaderBytes(4096), 0)
			f.writeFrames(0, 2, false)
			if got := len(f.onDisk()); got != walHeader {
				t.Fatalf("file is %d bytes after two frames; want them held (%d)", got, walHeader)
			}
			tc.then(f)
			got := f.onDisk()
			for i := range int64(2) {
				hdr, page := frameBytes(i, 0)
				if int64(len(got)) < frameOffset(i)+walFrameHeader || !bytes.Equal(got[frameOffset(i):frameOffset(i)+walFrameHeader], hdr) {
					t.Fatalf("after %s frame %d's header is not in the file (file is %d bytes)", tc.name, i, len(got))
				}
				if tc.name == "a page written again" && i == 1 {
					page = filled(4096, 'b') // written after the run, over it
				}
				if tc.name != "truncate" && !bytes.Equal(got[frameOffset(i)+walFrameHeader:frameOffset(i+1)], page) {
					t.Fatalf("after %s frame %d's page is not as written", tc.name, i)
				}
			}
			if tc.name != "close" {
				f.close()
			}
		})
	}

	t.Run("the connection keeps only the file it holds a run of", func(t *testing.T) {
		f := openWALTestFile(t, "")
		key := walOf(f.p).key
		f.write(walHeaderBytes(4096), 0)
		f.writeFrames(0, 2, false)
		if got := libc.Xpthread_getspecific(f.tls, key); got != f.p {
			t.Fatalf("the connection keeps %#x while a run is held, want the WAL file %#x", got, f.p)
		}
		// A second WAL of the connection (an attached database's)
		// starts a run: the first one's goes out first.
		if err := os.WriteFile(filepath.Join(filepath.Dir(f.path), "y.db"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		g := openVFSTestFile(t, f.tls, filepath.Join(filepath.Dir(f.path), "y.db-wal"), sqlite3.SQLITE_OPEN_WAL)
		g.write(walHeaderBytes(4096), 0)
		g.writeFrames(0, 1, false)
		f.checkFrames(2, false, "after another WAL of the connection started a run")
		if got := libc.Xpthread_getspecific(f.tls, key); got != g.p {
			t.Fatalf("the connection keeps %#x, want the second WAL file %#x", got, g.p)
		}
		g.writeFrames(1, 2, true)
		g.checkFrames(2, true, "after the second WAL's commit")
		if got := libc.Xpthread_getspecific(f.tls, key); got != 0 {
			t.Fatalf("the connection keeps %#x with nothing held, want nothing", got)
		}
		g.close()
		f.close()
	})

	t.Run("a run that fails to write", func(t *testing.T) {
		f := openWALTestFile(t, "")
		f.write(walHeaderBytes(4096), 0)
		f.writeFrames(0, 2, false)
		w := walOf(f.p)
		w.runOff = -frameOffset(0) // pwrite refuses a negative offset
		var size int64
		if rc := callFileSize(f.methods().FxFileSize)(f.tls, f.p, uintptr(unsafe.Pointer(&size))); rc == sqlite3.SQLITE_OK {
			t.Fatal("the size query succeeded although the held run could not be written")
		}
		if w.run == 0 {
			t.Fatal("a run that failed to write was dropped on a call on the WAL file; want it kept for the commit to write or fail on")
		}
		// Another database's lock change leaves it held...
		other := f.openDB("y.db", f.tls)
		_ = callLock(other.methods().FxUnlock)(f.tls, other.p, sqlite3.SQLITE_LOCK_NONE)
		other.close()
		if w.run == 0 {
			t.Fatal("another database's lock change dropped the run")
		}
		// ...its own database's drops it: it must not outlive the
		// WAL's write lock.
		db := f.openDB("x.db", f.tls)
		_ = callLock(db.methods().FxUnlock)(f.tls, db.p, sqlite3.SQLITE_LOCK_NONE)
		db.close()
		if w.run != 0 || libc.Xpthread_getspecific(f.tls, w.key) != 0 {
			t.Fatalf("after its database's lock change %d bytes are held (the connection keeps %#x); want the run dropped", w.run, libc.Xpthread_getspecific(f.tls, w.key))
		}
		if got := len(f.onDisk()); got != walHeader {
			t.Fatalf("the file is %d bytes: something of the failed run was written", got)
		}
		f.close()
	})

	t.Run("another connection's lock changes leave it held", func(t *testing.T) {
		f := openWALTestFile(t, "")
		f.write(walHeaderBytes(4096), 0)
		f.writeFrames(0, 2, false)
		other := libc.NewTLS()
		defer other.Close()
		db := f.openDB("x.db", other)
		if rc := callLock(db.methods().FxUnlock)(other, db.p, sqlite3.SQLITE_LOCK_NONE); rc != sqlite3.SQLITE_OK {
			t.Fatalf("unlock: SQLite error %d", rc)
		}
		db.close()
		if got := len(f.onDisk()); got != walHeader {
			t.Fatalf("file is %d bytes after another connection unlocked; want the run still held (%d)", got, walHeader)
		}
		f.close()
		f.checkFrames(2, false, "after close")
	})
}

// writeCalls counts the write system calls of the calling thread.
func writeCalls(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/thread-self/io")
	if err != nil {
		t.Fatalf("counting write calls needs Linux's /proc/thread-self/io: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no syscw in /proc/thread-self/io")
	return 0
}

// frameWrites writes rows pages (one 3,000-byte row each) to a new table
// of db in one transaction, on one connection, and returns how many write
// calls that took.
func frameWrites(t *testing.T, db *sql.DB, rows int) int64 {
	t.Helper()
	ctx := t.Context()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE frames_probe (id INTEGER PRIMARY KEY, v BLOB)`); err != nil {
		t.Fatal(err)
	}
	// The counter is the thread's: keep this goroutine on one. modernc's
	// SQLite runs on the calling goroutine.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := writeCalls(t)
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		if _, err := tx.Exec(`INSERT INTO frames_probe (id, v) VALUES (?, ?)`, i, filled(3000, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return writeCalls(t) - before
}

// Through walVFS, a transaction that writes many pages makes a write call
// for a run of about thirty frames, not two for each frame as through the
// default VFS, and what it wrote reads back whole after a reopen. The
// store's own write connection goes through it.
func TestWALVFSWritesFramesInRuns(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("write calls are counted through Linux's /proc")
	}
	const rows = 300
	var def int64
	for _, via := range []string{"", walVFSName} {
		path := filepath.Join(t.TempDir(), "t.db")
		dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
		if via != "" {
			if _, err := registerWALVFS(); err != nil {
				t.Fatal(err)
			}
			dsn += "&vfs=" + via
		}
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			t.Fatal(err)
		}
		n := frameWrites(t, db, rows)
		t.Logf("vfs %q: %d write calls for %d pages", via, n, rows)
		db.Close()
		if via == "" {
			def = n
			if n < 2*rows {
				t.Fatalf("the default VFS made %d write calls for %d pages; expected two a page (the test measures nothing)", n, rows)
			}
		} else if n > rows/10 {
			t.Fatalf("walVFS made %d write calls for %d pages; want one for a run of frames (the default VFS made %d)", n, rows, def)
		}

		db, err = sql.Open("sqlite", dsn)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		rs, err := db.Query(`SELECT id, v FROM frames_probe ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		for rs.Next() {
			var id int
			var v []byte
			if err := rs.Scan(&id, &v); err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(v, filled(3000, byte(id))) {
				got++
			}
		}
		if err := rs.Close(); err != nil {
			t.Fatal(err)
		}
		var check string
		if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if got != rows || check != "ok" {
			t.Fatalf("via %q: %d of %d rows read back whole, integrity %q", via, got, rows, check)
		}
	}

	e := newEnv(t)
	if n := frameWrites(t, e.s.wdb, rows); n > rows/10 {
		t.Fatalf("the store's write connection made %d write calls for %d pages; want one for a run of frames (through walVFS)", n, rows)
	}
}

// crashCopy copies a database and its WAL as a crash would leave them
// (the connection still open) and opens the copy: SQLite recovers the WAL.
func crashCopy(t *testing.T, path string) *sql.DB {
	t.Helper()
	dir := t.TempDir()
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "copy.db"+suffix), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "copy.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// rewritePending counts the frames of the WAL file at path whose salt and
// checksum are zero: SQLite writes them so while a rewrite of the
// checksums at commit is pending.
func rewritePending(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || len(b) < walHeader {
		t.Fatalf("reading the WAL: %d bytes, %v", len(b), err)
	}
	frame := frameSizeOf((*[walHeader]byte)(b))
	n := 0
	for off := int64(walHeader); frame > 0 && off+walFrameHeader <= int64(len(b)); off += frame {
		if bytes.Equal(b[off+8:off+walFrameHeader], make([]byte, 16)) {
			n++
		}
	}
	return n
}

// What a commit wrote is in the WAL file when the commit returns, whole,
// also when its transaction spilled pages and wrote some of them twice
// (SQLite then rewrites frame checksums, header by header, the commit
// frame's last): a crash right after keeps every committed row, and a
// checkpoint by another connection (as the store's checkpointer) copies a
// consistent database. (Under FULL the commit's sync writes out anything
// held; NORMAL is where holding a commit's last header would lose it.)
func TestWALVFSCommitIsInTheFileWhenItReturns(t *testing.T) {
	if _, err := registerWALVFS(); err != nil {
		t.Fatal(err)
	}
	const rows = 2000
	for _, sync := range []string{"NORMAL", "FULL"} {
		for _, checkpoint := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s checkpoint=%v", sync, checkpoint), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "t.db")
				dsn := "file:" + path + "?vfs=" + walVFSName + "&_pragma=journal_mode(WAL)&_pragma=synchronous(" + sync +
					")&_pragma=wal_autocheckpoint(0)&_pragma=cache_size(20)" // 20 pages: the transaction spills
				db, err := sql.Open("sqlite", dsn)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				db.SetMaxOpenConns(1)
				if _, err := db.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB); CREATE INDEX t_v ON t (v)`); err != nil {
					t.Fatal(err)
				}
				tx, err := db.Begin()
				if err != nil {
					t.Fatal(err)
				}
				for i := range rows {
					if _, err := tx.Exec(`INSERT INTO t VALUES (?, randomblob(500))`, i); err != nil {
						t.Fatal(err)
					}
					if i%50 == 49 { // pages written to the WAL already change again
						if _, err := tx.Exec(`UPDATE t SET v = randomblob(500) WHERE id < 5`); err != nil {
							t.Fatal(err)
						}
					}
				}
				// Frames written while a checksum rewrite is pending have
				// their salt and checksum zeroed: the rewrite will run.
				if n := rewritePending(t, path+"-wal"); n == 0 {
					t.Fatal("the transaction did not make SQLite rewrite frame checksums at commit: the test checks nothing")
				}
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
				if checkpoint {
					other, err := sql.Open("sqlite", dsn)
					if err != nil {
						t.Fatal(err)
					}
					st, err := walCheckpoint(ctxb, other, "PASSIVE")
					other.Close()
					if err != nil || st.copied == 0 {
						t.Fatalf("checkpoint by another connection: %+v, %v", st, err)
					}
				}
				copied := crashCopy(t, path)
				var n int
				var check string
				if err := copied.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil {
					t.Fatalf("after a crash right after the commit: %v", err)
				}
				if err := copied.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil {
					t.Fatalf("after a crash right after the commit: %v", err)
				}
				if n != rows || check != "ok" {
					t.Fatalf("after a crash right after the commit: %d of %d rows, integrity %q", n, rows, check)
				}
			})
		}
	}
}

// Under FULL without power-safe overwrite SQLite pads a commit to a sector
// boundary and splits the frame that crosses it, the tail written after
// the sync: a piece that may be 24 bytes long but is no frame header,
// never to be held. After every commit the WAL file ends on a frame.
func TestWALVFSPaddedCommitsEndOnAFrame(t *testing.T) {
	if _, err := registerWALVFS(); err != nil {
		t.Fatal(err)
	}
	const pageSize = 512
	path := filepath.Join(t.TempDir(), "t.db")
	db, err := sql.Open("sqlite", "file:"+path+"?vfs="+walVFSName+"&psow=0&_pragma=synchronous(FULL)&_pragma=wal_autocheckpoint(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	// The page size is set before the database has one, and before WAL.
	for _, q := range []string{`PRAGMA page_size = 512`, `PRAGMA journal_mode = WAL`, `CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	var size int
	if err := db.QueryRow(`PRAGMA page_size`).Scan(&size); err != nil || size != pageSize {
		t.Fatalf("page size %d (%v), want %d", size, err, pageSize)
	}
	for i := range 600 {
		if _, err := db.Exec(`INSERT INTO t (v) VALUES (zeroblob(?))`, (i*37)%3000); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		if (fi.Size()-walHeader)%(pageSize+walFrameHeader) != 0 {
			t.Fatalf("after commit %d the WAL is %d bytes: not whole frames (something is still held)", i, fi.Size())
		}
	}
}

// A transaction that spilled frames and then rolled back leaves nothing
// held once its connection gives up the WAL's write lock: another
// connection's commit, written where the spilled frames were, is neither
// overwritten by them at the first connection's next commit nor lost in a
// crash after it.
func TestWALVFSRolledBackSpillNeverOverwritesACommit(t *testing.T) {
	if _, err := registerWALVFS(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "t.db")
	dsn := "file:" + path + "?vfs=" + walVFSName + "&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=wal_autocheckpoint(0)"
	open := func(extra string) *sql.DB {
		db, err := sql.Open("sqlite", dsn+extra)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		db.SetMaxOpenConns(1)
		return db
	}
	a, b := open("&_pragma=cache_size(20)"), open("") // 20 pages: a's transaction spills
	// With the database file holding everything, a's rollback reads its
	// first page back from there, not from the WAL: nothing on the WAL
	// file but the lock change writes out what a holds.
	for _, q := range []string{`CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT, v BLOB)`, `PRAGMA wal_checkpoint(TRUNCATE)`} {
		if _, err := a.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	before := walSize(t, path)
	tx := insertWho(t, a, "a, rolled back", 40)
	spilled := walSize(t, path)
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	// What was held was written out when a gave up the write lock.
	if after := walSize(t, path); after <= spilled || spilled < before {
		t.Fatalf("the WAL was %d bytes, %d with a's spilled frames, %d after the rollback: no spilled frames were held", before, spilled, after)
	}
	// b commits over the frames a wrote and rolled back.
	if err := insertWho(t, b, "b", 60).Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(`INSERT INTO t (who, v) VALUES ('a', randomblob(3000))`); err != nil {
		t.Fatal(err)
	}
	check := func(db *sql.DB, when string) {
		t.Helper()
		counts := map[string]int{}
		rs, err := db.Query(`SELECT who, count(*) FROM t GROUP BY who`)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		for rs.Next() {
			var who string
			var n int
			if err := rs.Scan(&who, &n); err != nil {
				t.Fatal(err)
			}
			counts[who] = n
		}
		if err := rs.Close(); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		var integrity string
		if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&integrity); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if counts["b"] != 60 || counts["a"] != 1 || counts["a, rolled back"] != 0 || integrity != "ok" {
			t.Fatalf("%s: rows %v, integrity %q; want b's 60 and a's 1", when, counts, integrity)
		}
	}
	check(b, "read by b")
	check(crashCopy(t, path), "after a crash")
}

// insertWho begins a transaction on db and inserts n rows of who, a page
// each, in it.
func insertWho(t *testing.T, db *sql.DB, who string, n int) *sql.Tx {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := tx.Exec(`INSERT INTO t (who, v) VALUES (?, randomblob(3000))`, who); err != nil {
			t.Fatal(err)
		}
	}
	return tx
}

// walSize is the size of the WAL file of the database at path.
func walSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
