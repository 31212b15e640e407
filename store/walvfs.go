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
// SQLite's default (unix) VFS that changes one thing: a WAL frame is
// written with one write call instead of two.
//
// SQLite writes each frame of the write-ahead log as its 24-byte header
// and then its page, two pwrite calls at adjacent offsets. A system call
// costs about a microsecond on the machines Backroom is measured on (a
// virtual machine), and the write-ahead log takes several frames for every
// webhook delivery: two calls per frame were about a third of the writer
// goroutine's time. walVFS holds a frame's header back until the write
// that follows it: when that is the frame's page, at the next offset, both
// go out in one call; anything else on the file (another write, a read, a
// sync, a size query, a truncation, closing it) first writes the held
// header as it was.
//
// Nothing may stay held once SQLite's call returns: a commit must have
// reached the operating system by then (the crash safety of synchronous
// NORMAL), and another connection may read or checkpoint the WAL through
// a descriptor of its own. So only the header of a frame that is not a
// commit frame (its commit field zero), written at a frame's offset, is
// held. SQLite writes such a header either right before its page or, when
// it rewrites the checksums of frames a spilling transaction wrote twice
// (walRewriteChecksums), right before it reads the next frame; the last
// header of a commit is always a commit frame's, written at once. (The
// offset matters under synchronous FULL without power-safe overwrite:
// SQLite pads a commit to a sector boundary and writes the frame that
// crosses it in two pieces, the last of which may be 24 bytes long, but
// never starts at a frame's offset.)
// Database, journal and shared-memory files are not touched at all: only
// WAL files get the layer's methods.

// walVFSName is the name walVFS is registered under.
const walVFSName = "backroom-unix"

// walFrameHeader is the size of a WAL frame's header.
const walFrameHeader = 24

// walMaxFrame is the largest frame: SQLite's largest page and its header.
const walMaxFrame = walFrameHeader + 65536

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
	if v == 0 {
		libc.Xfree(tls, name)
		return "", fmt.Errorf("store: no memory for the WAL VFS")
	}
	vfs := (*sqlite3.Tsqlite3_vfs)(cptr(v))
	*vfs = *b
	vfs.FzName = name
	vfs.FpAppData = base
	vfs.FszOsFile = int32(walFileExtOffset(b.FszOsFile) + unsafe.Sizeof(walFile{}))
	vfs.FxOpen = funcPtr(walVFSOpen)
	if rc := sqlite3.Xsqlite3_vfs_register(tls, v, 0); rc != sqlite3.SQLITE_OK {
		libc.Xfree(tls, name)
		libc.Xfree(tls, v)
		return "", fmt.Errorf("store: registering the WAL VFS failed (SQLite error %d)", rc)
	}
	return walVFSName, nil
})

// walFile is what walVFS adds after the default VFS's file: the file's
// own methods (the default's, with the data methods replaced) and the
// header held back. It lives in SQLite's memory, so it holds no Go
// pointers.
type walFile struct {
	methods sqlite3.Tsqlite3_io_methods // what the file's pMethods points at
	base    uintptr                     // the default VFS's methods of the file
	scratch uintptr                     // walMaxFrame bytes (from the first header held): a header and its page
	heldOff int64                       // where the held header goes
	held    int32                       // 0, or walFrameHeader: a header is held
	header  [walFrameHeader]byte
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

// walVFSOpen opens a file with the default VFS and, for a WAL file, puts
// walVFS's methods in front of the default's.
func walVFSOpen(tls *libc.TLS, pVfs, zName, pFile uintptr, flags int32, pOutFlags uintptr) int32 {
	baseVFS := (*sqlite3.Tsqlite3_vfs)(cptr(pVfs)).FpAppData
	b := (*sqlite3.Tsqlite3_vfs)(cptr(baseVFS))
	w := (*walFile)(cptr(pFile + walFileExtOffset(b.FszOsFile)))
	*w = walFile{}
	rc := callOpen(b.FxOpen)(tls, baseVFS, zName, pFile, flags, pOutFlags)
	f := (*sqlite3.Tsqlite3_file)(cptr(pFile))
	if rc != sqlite3.SQLITE_OK || f.FpMethods == 0 || flags&sqlite3.SQLITE_OPEN_WAL == 0 {
		return rc
	}
	w.base = f.FpMethods
	w.methods = *(*sqlite3.Tsqlite3_io_methods)(cptr(w.base))
	w.methods.FxClose = funcPtr(walClose)
	w.methods.FxRead = funcPtr(walRead)
	w.methods.FxWrite = funcPtr(walWrite)
	w.methods.FxTruncate = funcPtr(walTruncate)
	w.methods.FxSync = funcPtr(walSync)
	w.methods.FxFileSize = funcPtr(walFileSize)
	w.methods.FxFileControl = funcPtr(walFileControl)
	f.FpMethods = uintptr(unsafe.Pointer(&w.methods))
	return rc
}

// walOf returns the walFile of a WAL file opened by walVFSOpen: its
// methods are the first field of walFile, so pMethods points at it.
func walOf(p uintptr) *walFile {
	return (*walFile)(cptr((*sqlite3.Tsqlite3_file)(cptr(p)).FpMethods))
}

// baseMethods returns the default VFS's methods of w's file.
func (w *walFile) baseMethods() *sqlite3.Tsqlite3_io_methods {
	return (*sqlite3.Tsqlite3_io_methods)(cptr(w.base))
}

// flush writes the held header, if any.
func (w *walFile) flush(tls *libc.TLS, p uintptr) int32 {
	if w.held == 0 {
		return sqlite3.SQLITE_OK
	}
	n := w.held
	w.held = 0
	return callReadWrite(w.baseMethods().FxWrite)(tls, p, uintptr(unsafe.Pointer(&w.header[0])), n, w.heldOff)
}

func walWrite(tls *libc.TLS, p, buf uintptr, amt int32, off int64) int32 {
	w := walOf(p)
	write := callReadWrite(w.baseMethods().FxWrite)
	if w.held > 0 {
		if off == w.heldOff+walFrameHeader && amt > 0 && amt <= walMaxFrame-walFrameHeader {
			// The held header's page: both in one call.
			w.held = 0
			libc.Xmemcpy(tls, w.scratch, uintptr(unsafe.Pointer(&w.header[0])), walFrameHeader)
			libc.Xmemcpy(tls, w.scratch+walFrameHeader, buf, libc.Tsize_t(amt))
			return write(tls, p, w.scratch, walFrameHeader+amt, w.heldOff)
		}
		if rc := w.flush(tls, p); rc != sqlite3.SQLITE_OK {
			return rc
		}
	}
	if off == 0 && amt >= walHeader {
		w.frameSize = frameSizeOf((*[walHeader]byte)(cptr(buf)))
	}
	if amt == walFrameHeader && w.holds(tls, p, (*[walFrameHeader]byte)(cptr(buf)), off) {
		libc.Xmemcpy(tls, uintptr(unsafe.Pointer(&w.header[0])), buf, walFrameHeader)
		w.held, w.heldOff = walFrameHeader, off
		return sqlite3.SQLITE_OK
	}
	return write(tls, p, buf, amt, off)
}

// holds reports whether the 24 bytes hdr, to be written at off, are to be
// held: the header of a frame that is not a commit frame, at a frame's
// offset, with a buffer to join it to its page in.
func (w *walFile) holds(tls *libc.TLS, p uintptr, hdr *[walFrameHeader]byte, off int64) bool {
	if off < walHeader || binary.BigEndian.Uint32(hdr[4:8]) != 0 {
		return false // not a frame, or a commit frame: written at once
	}
	if w.scratch == 0 {
		// Only a connection that writes needs one (readers open the
		// WAL file too).
		if w.scratch = libc.Xmalloc(tls, walMaxFrame); w.scratch == 0 {
			return false
		}
	}
	if w.frameSize == 0 {
		// The WAL's header was written before this file was opened.
		w.frameSize = -1
		if callReadWrite(w.baseMethods().FxRead)(tls, p, w.scratch, walHeader, 0) == sqlite3.SQLITE_OK {
			w.frameSize = frameSizeOf((*[walHeader]byte)(cptr(w.scratch)))
		}
	}
	return w.frameSize > 0 && (off-walHeader)%w.frameSize == 0
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
	scratch, closeFn := w.scratch, w.baseMethods().FxClose
	// The default VFS's close may look at pMethods: give it its own back.
	(*sqlite3.Tsqlite3_file)(cptr(p)).FpMethods = w.base
	if crc := callClose(closeFn)(tls, p); rc == sqlite3.SQLITE_OK {
		rc = crc
	}
	libc.Xfree(tls, scratch)
	return rc
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
