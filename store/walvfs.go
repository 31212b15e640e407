package store

import (
	"encoding/binary"
	"fmt"
	"sync"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// The store's SQLite files are opened through walVFS, a thin layer over
// SQLite's default (unix) VFS that changes one thing: the frames of the
// write-ahead log go to the file in runs, one write call for many frames,
// instead of two calls a frame.
//
// SQLite writes each frame of the write-ahead log as its 24-byte header
// and then its page, two pwrite calls at adjacent offsets, and a commit
// of the webhook path writes dozens of frames. A system call costs about
// a microsecond on the machines Backroom is measured on (a virtual
// machine), and the kernel's own work for each small write more: 60
// frames took 200 µs as 60 writes and 45 µs as one. walVFS holds frames
// back, in a buffer of SQLite's memory, from the header of a frame that
// is not a commit frame on, as long as SQLite writes on where the last
// write ended. Anything else writes the run out first, as it was: a write
// elsewhere, a read, a sync, a size query, a truncation, a file control,
// closing the file, and a lock change on the database file by the same
// connection.
//
// When the run may be held, and why it is safe:
//   - A commit frame's header writes the run out, with itself, at once;
//     its page and anything after it are written as they come. So what a
//     commit wrote has reached the operating system when SQLite's commit
//     returns (the crash safety of synchronous NORMAL), and another
//     connection, which reads and checkpoints only committed frames
//     through a descriptor of its own, never needs what is held.
//   - Frames of a transaction that spilled pages before its commit may
//     stay held after SQLite's call returns: they are not committed, no
//     one else reads them, and this connection's own reads of them write
//     the run out first.
//   - A run is written out before the connection changes a lock of the
//     database file or of its shared memory, so nothing is ever held
//     while the connection does not hold the WAL's write lock: a
//     transaction that spilled and then rolled back never writes its
//     frames late over those of another connection's commit. (The
//     connection's database file finds its held run through a key of the
//     connection's libc TLS: modernc.org/sqlite gives each connection
//     its own, and the key points at a file only while its run is held.
//     This assumes a WAL is written on its own connection's TLS, which
//     the store keeps to: it opens no shared cache, and backs up into no
//     database through walVFS, where SQLite writes one connection's
//     files on another's.)
//   - A run starts only at a frame's offset (the page size taken from the
//     WAL's header): under synchronous FULL without power-safe overwrite
//     SQLite pads a commit to a sector boundary and writes the frame that
//     crosses it in two pieces, the second after the sync, and such a
//     piece never starts at a frame's offset.
//
// Journal files are not touched at all; database files get only the lock
// methods (which write a held run out first) in front of the default's.

// walVFSName is the name walVFS is registered under.
const walVFSName = "backroom-unix"

// walFrameHeader is the size of a WAL frame's header.
const walFrameHeader = 24

// walRunBytes bounds a held run: 31 frames of 4 KiB pages (a group commit
// under the webhook bench's load writes about 60). It is the most the
// default VFS writes in one call: it cuts a write's length to 17 bits
// (its largest frame being far shorter), and a longer one fails as "disk
// full".
const walRunBytes = 1<<17 - 1

// walVFSData is walVFS's own data (its pAppData): the default VFS, and
// the libc TLS key under which a connection keeps the WAL file whose run
// is held.
type walVFSData struct {
	base uintptr
	key  libc.Tpthread_key_t
}

// registerWALVFS registers walVFS once per process (SQLite's registry of
// VFSes is process-wide) and returns its name, or an error when SQLite's
// default VFS is not there to wrap.
var registerWALVFS = sync.OnceValues(func() (string, error) {
	tls := libc.NewTLS()
	defer tls.Close()
	base := sqlite3.Xsqlite3_vfs_find(tls, 0)
	if base == 0 {
		return "", fmt.Errorf("store: SQLite has no default VFS")
	}
	b := (*sqlite3.Tsqlite3_vfs)(cptr(base))
	// Never freed once registered: a VFS lives as long as the process.
	name, err := libc.CString(walVFSName)
	if err != nil {
		return "", fmt.Errorf("store: no memory for the WAL VFS")
	}
	v := libc.Xcalloc(tls, 1, libc.Tsize_t(unsafe.Sizeof(sqlite3.Tsqlite3_vfs{})))
	d := libc.Xcalloc(tls, 1, libc.Tsize_t(unsafe.Sizeof(walVFSData{})))
	if v == 0 || d == 0 {
		libc.Xfree(tls, name)
		libc.Xfree(tls, v)
		libc.Xfree(tls, d)
		return "", fmt.Errorf("store: no memory for the WAL VFS")
	}
	data := (*walVFSData)(cptr(d))
	data.base = base
	if rc := libc.Xpthread_key_create(tls, uintptr(unsafe.Pointer(&data.key)), 0); rc != 0 {
		libc.Xfree(tls, name)
		libc.Xfree(tls, v)
		libc.Xfree(tls, d)
		return "", fmt.Errorf("store: no TLS key for the WAL VFS (error %d)", rc)
	}
	vfs := (*sqlite3.Tsqlite3_vfs)(cptr(v))
	*vfs = *b
	vfs.FzName = name
	vfs.FpAppData = d
	vfs.FszOsFile = int32(walFileExtOffset(b.FszOsFile) + unsafe.Sizeof(walFile{}))
	vfs.FxOpen = funcPtr(walVFSOpen)
	if rc := sqlite3.Xsqlite3_vfs_register(tls, v, 0); rc != sqlite3.SQLITE_OK {
		libc.Xpthread_key_delete(tls, data.key)
		libc.Xfree(tls, name)
		libc.Xfree(tls, v)
		libc.Xfree(tls, d)
		return "", fmt.Errorf("store: registering the WAL VFS failed (SQLite error %d)", rc)
	}
	return walVFSName, nil
})

// walFile is what walVFS adds after the default VFS's file: the file's
// own methods (the default's, with some replaced) and, for a WAL file,
// the run held back. It lives in SQLite's memory, so it holds no Go
// pointers.
type walFile struct {
	methods sqlite3.Tsqlite3_io_methods // what the file's pMethods points at
	base    uintptr                     // the default VFS's methods of the file
	key     libc.Tpthread_key_t         // walVFSData.key
	name    uintptr                     // the file's name, as opened (SQLite keeps it while the file is open)
	buf     uintptr                     // walRunBytes (from the first run held): the held run
	runOff  int64                       // where the held run goes
	run     int32                       // bytes held: 0 when nothing is
	// frameSize is the WAL's page size and a header: 0 while unknown,
	// -1 when the WAL's header could not tell it (nothing is held then).
	frameSize int64
}

// walHeader is the size of the WAL file's own header, at its start.
const walHeader = 32

// walFileExtOffset is where walFile starts in a file of the default VFS's
// size baseSize (rounded up to 8 bytes).
func walFileExtOffset(baseSize int32) uintptr {
	return (uintptr(baseSize) + 7) &^ 7
}

// walVFSOpen opens a file with the default VFS and puts walVFS's methods
// in front of the default's: a WAL file's data methods, a database file's
// lock methods.
func walVFSOpen(tls *libc.TLS, pVfs, zName, pFile uintptr, flags int32, pOutFlags uintptr) int32 {
	data := (*walVFSData)(cptr((*sqlite3.Tsqlite3_vfs)(cptr(pVfs)).FpAppData))
	b := (*sqlite3.Tsqlite3_vfs)(cptr(data.base))
	w := (*walFile)(cptr(pFile + walFileExtOffset(b.FszOsFile)))
	*w = walFile{key: data.key, name: zName}
	rc := callOpen(b.FxOpen)(tls, data.base, zName, pFile, flags, pOutFlags)
	f := (*sqlite3.Tsqlite3_file)(cptr(pFile))
	isWAL, isDB := flags&sqlite3.SQLITE_OPEN_WAL != 0, flags&sqlite3.SQLITE_OPEN_MAIN_DB != 0
	if rc != sqlite3.SQLITE_OK || f.FpMethods == 0 || !(isWAL || isDB) {
		return rc
	}
	w.base = f.FpMethods
	w.methods = *(*sqlite3.Tsqlite3_io_methods)(cptr(w.base))
	if isWAL {
		w.methods.FxClose = funcPtr(walClose)
		w.methods.FxRead = funcPtr(walRead)
		w.methods.FxWrite = funcPtr(walWrite)
		w.methods.FxTruncate = funcPtr(walTruncate)
		w.methods.FxSync = funcPtr(walSync)
		w.methods.FxFileSize = funcPtr(walFileSize)
		w.methods.FxFileControl = funcPtr(walFileControl)
	} else {
		w.methods.FxClose = funcPtr(dbClose)
		w.methods.FxUnlock = funcPtr(dbUnlock)
		if w.methods.FiVersion >= 2 && w.methods.FxShmLock != 0 {
			w.methods.FxShmLock = funcPtr(dbShmLock)
			w.methods.FxShmUnmap = funcPtr(dbShmUnmap)
		}
	}
	f.FpMethods = uintptr(unsafe.Pointer(&w.methods))
	return rc
}

// walOf returns the walFile of a file opened by walVFSOpen with walVFS's
// methods: they are the first field of walFile, so pMethods points at it.
func walOf(p uintptr) *walFile {
	return (*walFile)(cptr((*sqlite3.Tsqlite3_file)(cptr(p)).FpMethods))
}

// baseMethods returns the default VFS's methods of w's file.
func (w *walFile) baseMethods() *sqlite3.Tsqlite3_io_methods {
	return (*sqlite3.Tsqlite3_io_methods)(cptr(w.base))
}

// flush writes the held run, if any. A run that fails to write stays
// held: SQLite gets the error from the call that wanted it written, and
// the run is written again before anything else, at the latest by the
// commit, which fails if it still cannot be.
func (w *walFile) flush(tls *libc.TLS, p uintptr) int32 {
	if w.run == 0 {
		return sqlite3.SQLITE_OK
	}
	if rc := callReadWrite(w.baseMethods().FxWrite)(tls, p, w.buf, w.run, w.runOff); rc != sqlite3.SQLITE_OK {
		return rc
	}
	w.drop(tls, p)
	return sqlite3.SQLITE_OK
}

// drop forgets the held run, and the connection of tls forgets p as the
// file whose run it holds: the key points at a file only while its run
// is held.
func (w *walFile) drop(tls *libc.TLS, p uintptr) {
	w.run = 0
	if libc.Xpthread_getspecific(tls, w.key) == p {
		libc.Xpthread_setspecific(tls, w.key, 0)
	}
}

// flushHeld writes out the run the connection of tls holds, if any,
// before the connection changes a lock of the database file db. When the
// run is that database's WAL's, what is held then is never part of a
// commit (a commit writes its run out before it returns): it is what a
// transaction that spilled and then rolled back wrote, which SQLite's own
// VFS would have written already. So such a run that fails to write is
// dropped: it must not outlive the WAL's write lock. The run of another
// database's WAL (an attached one's) stays held on failure, for its own
// commit to write or fail on.
func flushHeld(tls *libc.TLS, key libc.Tpthread_key_t, db uintptr) {
	p := libc.Xpthread_getspecific(tls, key)
	if p == 0 {
		return
	}
	w := walOf(p)
	if w.flush(tls, p) != sqlite3.SQLITE_OK && libc.GoString(w.name) == libc.GoString(walOf(db).name)+"-wal" {
		w.drop(tls, p)
	}
}

func walWrite(tls *libc.TLS, p, buf uintptr, amt int32, off int64) int32 {
	w := walOf(p)
	if w.run > 0 {
		if off == w.runOff+int64(w.run) && amt > 0 && int64(w.run)+int64(amt) <= walRunBytes {
			libc.Xmemcpy(tls, w.buf+uintptr(w.run), buf, libc.Tsize_t(amt))
			w.run += amt
			if amt == walFrameHeader && isCommitHeader((*[walFrameHeader]byte)(cptr(buf))) {
				return w.flush(tls, p) // a commit is never held
			}
			return sqlite3.SQLITE_OK
		}
		if rc := w.flush(tls, p); rc != sqlite3.SQLITE_OK {
			return rc
		}
	}
	if off == 0 && amt >= walHeader {
		w.frameSize = frameSizeOf((*[walHeader]byte)(cptr(buf)))
	}
	if amt == walFrameHeader && w.startsRun(tls, p, (*[walFrameHeader]byte)(cptr(buf)), off) {
		libc.Xmemcpy(tls, w.buf, buf, walFrameHeader)
		w.run, w.runOff = walFrameHeader, off
		return sqlite3.SQLITE_OK
	}
	return callReadWrite(w.baseMethods().FxWrite)(tls, p, buf, amt, off)
}

// isCommitHeader reports whether hdr, a frame's header, is a commit
// frame's (its field of the database's size after the commit is set).
func isCommitHeader(hdr *[walFrameHeader]byte) bool {
	return binary.BigEndian.Uint32(hdr[4:8]) != 0
}

// startsRun reports whether the 24 bytes hdr, to be written at off, start
// a run to hold: the header of a frame that is not a commit frame, at a
// frame's offset, with a buffer to hold the run in. The connection of tls
// then keeps p as the file whose run it holds.
func (w *walFile) startsRun(tls *libc.TLS, p uintptr, hdr *[walFrameHeader]byte, off int64) bool {
	if off < walHeader || isCommitHeader(hdr) {
		return false // not a frame, or a commit frame: written at once
	}
	if w.buf == 0 {
		// Only a connection that writes needs one (readers open the
		// WAL file too).
		if w.buf = libc.Xmalloc(tls, walRunBytes); w.buf == 0 {
			return false
		}
	}
	if w.frameSize == 0 {
		// The WAL's header was written before this file was opened.
		w.frameSize = -1
		if callReadWrite(w.baseMethods().FxRead)(tls, p, w.buf, walHeader, 0) == sqlite3.SQLITE_OK {
			w.frameSize = frameSizeOf((*[walHeader]byte)(cptr(w.buf)))
		}
	}
	if w.frameSize <= 0 || (off-walHeader)%w.frameSize != 0 {
		return false
	}
	if q := libc.Xpthread_getspecific(tls, w.key); q != p {
		// Another WAL file of the connection (an attached database's)
		// gives up its run first.
		if q != 0 && walOf(q).flush(tls, q) != sqlite3.SQLITE_OK {
			return false
		}
		libc.Xpthread_setspecific(tls, w.key, p)
	}
	return true
}

// frameSizeOf returns the frame size a WAL header gives (its page size and
// a frame header), or -1 when the page size is not one SQLite uses.
func frameSizeOf(h *[walHeader]byte) int64 {
	size := binary.BigEndian.Uint32(h[8:12])
	if size < 512 || size > 65536 || size&(size-1) != 0 {
		return -1
	}
	return int64(size) + walFrameHeader
}

func walRead(tls *libc.TLS, p, buf uintptr, amt int32, off int64) int32 {
	w := walOf(p)
	if rc := w.flush(tls, p); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return callReadWrite(w.baseMethods().FxRead)(tls, p, buf, amt, off)
}

func walClose(tls *libc.TLS, p uintptr) int32 {
	w := walOf(p)
	rc := w.flush(tls, p)
	w.drop(tls, p) // what is held now is junk: a commit writes its run out
	buf := w.buf
	if crc := w.closeBase(tls, p); rc == sqlite3.SQLITE_OK {
		rc = crc
	}
	libc.Xfree(tls, buf)
	return rc
}

// closeBase closes the file with the default VFS, which may look at
// pMethods: it gets its own back first (w is not to be used after).
func (w *walFile) closeBase(tls *libc.TLS, p uintptr) int32 {
	closeFn := w.baseMethods().FxClose
	(*sqlite3.Tsqlite3_file)(cptr(p)).FpMethods = w.base
	return callClose(closeFn)(tls, p)
}

func walTruncate(tls *libc.TLS, p uintptr, size int64) int32 {
	w := walOf(p)
	if rc := w.flush(tls, p); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return callTruncate(w.baseMethods().FxTruncate)(tls, p, size)
}

func walSync(tls *libc.TLS, p uintptr, flags int32) int32 {
	w := walOf(p)
	if rc := w.flush(tls, p); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return callSync(w.baseMethods().FxSync)(tls, p, flags)
}

func walFileSize(tls *libc.TLS, p, pSize uintptr) int32 {
	w := walOf(p)
	if rc := w.flush(tls, p); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return callFileSize(w.baseMethods().FxFileSize)(tls, p, pSize)
}

func walFileControl(tls *libc.TLS, p uintptr, op int32, pArg uintptr) int32 {
	w := walOf(p)
	if rc := w.flush(tls, p); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return callFileControl(w.baseMethods().FxFileControl)(tls, p, op, pArg)
}

// A database file's lock methods write out the connection's held run
// first (flushHeld), then change the lock whatever that gave.

func dbShmLock(tls *libc.TLS, p uintptr, offset, n, flags int32) int32 {
	w := walOf(p)
	flushHeld(tls, w.key, p)
	return callShmLock(w.baseMethods().FxShmLock)(tls, p, offset, n, flags)
}

func dbShmUnmap(tls *libc.TLS, p uintptr, deleteFlag int32) int32 {
	w := walOf(p)
	flushHeld(tls, w.key, p)
	return callShmUnmap(w.baseMethods().FxShmUnmap)(tls, p, deleteFlag)
}

func dbUnlock(tls *libc.TLS, p uintptr, lock int32) int32 {
	w := walOf(p)
	flushHeld(tls, w.key, p)
	return callLock(w.baseMethods().FxUnlock)(tls, p, lock)
}

func dbClose(tls *libc.TLS, p uintptr) int32 {
	return walOf(p).closeBase(tls, p)
}

// SQLite's function pointers, as modernc.org/sqlite represents them: a
// pointer to a Go func value. funcPtr makes one of a Go func; the call*
// functions call one.

func funcPtr(f any) uintptr {
	return (*[2]uintptr)(unsafe.Pointer(&f))[1]
}

func callOpen(fp uintptr) func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32 {
	return *(*func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32)(unsafe.Pointer(&fp))
}

func callReadWrite(fp uintptr) func(*libc.TLS, uintptr, uintptr, int32, int64) int32 {
	return *(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&fp))
}

func callFileControl(fp uintptr) func(*libc.TLS, uintptr, int32, uintptr) int32 {
	return *(*func(*libc.TLS, uintptr, int32, uintptr) int32)(unsafe.Pointer(&fp))
}

func callClose(fp uintptr) func(*libc.TLS, uintptr) int32 {
	return *(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&fp))
}

func callShmLock(fp uintptr) func(*libc.TLS, uintptr, int32, int32, int32) int32 {
	return *(*func(*libc.TLS, uintptr, int32, int32, int32) int32)(unsafe.Pointer(&fp))
}

func callShmUnmap(fp uintptr) func(*libc.TLS, uintptr, int32) int32 {
	return *(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&fp))
}

func callLock(fp uintptr) func(*libc.TLS, uintptr, int32) int32 {
	return *(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&fp))
}

func callTruncate(fp uintptr) func(*libc.TLS, uintptr, int64) int32 {
	return *(*func(*libc.TLS, uintptr, int64) int32)(unsafe.Pointer(&fp))
}

func callSync(fp uintptr) func(*libc.TLS, uintptr, int32) int32 {
	return *(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&fp))
}

func callFileSize(fp uintptr) func(*libc.TLS, uintptr, uintptr) int32 {
	return *(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&fp))
}

// cptr turns an address in SQLite's memory into a pointer (written so
// that vet sees no uintptr conversion: the memory is not Go's).
func cptr(p uintptr) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(&p))
}
