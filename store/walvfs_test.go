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
	if _, err := registerWALVFS(); err != nil {
		t.Fatal(err)
	}
	tls := libc.NewTLS()
	t.Cleanup(tls.Close)
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
	if dir == "" {
		dir = t.TempDir()
		// SQLite gives a WAL file its database's mode: the database must
		// exist.
		if err := os.WriteFile(filepath.Join(dir, "x.db"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "x.db-wal")
	zPath, err := libc.CString(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { libc.Xfree(tls, zPath) }) // SQLite keeps the name while open
	p := libc.Xcalloc(tls, 1, libc.Tsize_t(vfs.FszOsFile))
	t.Cleanup(func() { libc.Xfree(tls, p) })
	flags := int32(sqlite3.SQLITE_OPEN_WAL | sqlite3.SQLITE_OPEN_CREATE | sqlite3.SQLITE_OPEN_READWRITE)
	if rc := callOpen(vfs.FxOpen)(tls, pVfs, zPath, p, flags, 0); rc != sqlite3.SQLITE_OK {
		t.Fatalf("open: SQLite error %d", rc)
	}
	if walOf(p).base == 0 {
		t.Fatal("a WAL file opened through walVFS did not get its methods")
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

// Only the header of a frame that is not a commit frame, at a frame's
// offset, is held; a held header reaches the file before anything else
// happens to the file, and with its page it reaches it in one piece.
func TestWALVFSHeldHeaderIsWrittenFirst(t *testing.T) {
	hdr := frameHeaderBytes(7, 0)
	page := filled(4096, 'p')

	t.Run("joined with its page", func(t *testing.T) {
		f := openWALTestFile(t, "")
		f.write(walHeaderBytes(4096), 0) // the WAL's header: not held
		if got := f.onDisk(); !bytes.Equal(got, walHeaderBytes(4096)) {
			t.Fatalf("the WAL's header was not written at once: %q", got)
		}
		f.write(hdr, frameOffset(0))
		if got := len(f.onDisk()); got != walHeader {
			t.Fatalf("file is %d bytes after a frame header; want it held (%d)", got, walHeader)
		}
		f.write(page, frameOffset(0)+walFrameHeader)
		want := append(append(walHeaderBytes(4096), hdr...), page...)
		if got := f.onDisk(); !bytes.Equal(got, want) {
			t.Fatalf("file after header and page: %d bytes, want %d (header and page in place)", len(got), len(want))
		}
		f.close()
	})

	// These are written at once, never held.
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
		g.write(hdr, frameOffset(3))
		if got := len(g.onDisk()); got != walHeader {
			t.Fatalf("file is %d bytes after a frame header; want it held (%d)", got, walHeader)
		}
		g.write(page, frameOffset(3)+walFrameHeader)
		if got := g.onDisk(); int64(len(got)) != frameOffset(4) || !bytes.Equal(got[frameOffset(3):frameOffset(3)+walFrameHeader], hdr) {
			t.Fatalf("file after header and page: %d bytes, want %d", len(got), frameOffset(4))
		}
		g.close()
	})

	// Each of these must first write the held header.
	for _, tc := range []struct {
		name string
		then func(f *walTestFile)
	}{
		{"read", func(f *walTestFile) {
			if got := f.read(walFrameHeader, walHeader); !bytes.Equal(got, hdr) {
				t.Errorf("read of the held header = %q, want it as written", got)
			}
		}},
		{"size", func(f *walTestFile) {
			if got := f.size(); got != walHeader+walFrameHeader {
				t.Errorf("size with a held header = %d, want %d", got, walHeader+walFrameHeader)
			}
		}},
		{"write elsewhere", func(f *walTestFile) { f.write(page, 9000) }},
		{"another header", func(f *walTestFile) { f.write(frameHeaderBytes(8, 0), frameOffset(2)) }},
		{"sync", func(f *walTestFile) {
			if rc := callSync(f.methods().FxSync)(f.tls, f.p, sqlite3.SQLITE_SYNC_NORMAL); rc != sqlite3.SQLITE_OK {
				t.Fatalf("sync: SQLite error %d", rc)
			}
		}},
		{"file control", func(f *walTestFile) {
			_ = callFileControl(f.methods().FxFileControl)(f.tls, f.p, sqlite3.SQLITE_FCNTL_SIZE_HINT, f.cbuf(make([]byte, 8)))
		}},
		{"truncate", func(f *walTestFile) {
			if rc := callTruncate(f.methods().FxTruncate)(f.tls, f.p, walHeader+walFrameHeader); rc != sqlite3.SQLITE_OK {
				t.Fatalf("truncate: SQLite error %d", rc)
			}
		}},
		{"close", func(f *walTestFile) { f.close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := openWALTestFile(t, "")
			f.write(walHeaderBytes(4096), 0)
			f.write(hdr, frameOffset(0))
			if got := len(f.onDisk()); got != walHeader {
				t.Fatalf("file is %d bytes after a frame header; want it held (%d)", got, walHeader)
			}
			tc.then(f)
			got := f.onDisk()
			if len(got) < walHeader+walFrameHeader || !bytes.Equal(got[walHeader:walHeader+walFrameHeader], hdr) {
				t.Fatalf("after %s the held header is not in the file (file is %d bytes)", tc.name, len(got))
			}
			if tc.name != "close" {
				f.close()
			}
		})
	}
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

// Through walVFS, a transaction that writes many pages makes about one
// write call per page, not two as through the default VFS, and what it
// wrote reads back whole after a reopen. The store's own write connection
// goes through it.
func TestWALVFSOneWritePerFrame(t *testing.T) {
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
		} else if n > rows+rows/5 {
			t.Fatalf("walVFS made %d write calls for %d pages; want about one a page (the default VFS made %d)", n, rows, def)
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
	if n := frameWrites(t, e.s.wdb, rows); n > rows+rows/5 {
		t.Fatalf("the store's write connection made %d write calls for %d pages; want about one a page (through walVFS)", n, rows)
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
