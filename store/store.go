// Package store is Backroom's domain and its persistence: staff and their
// second factor, the Stripe API key, and the tamper-evident audit log, kept in
// one SQLite file (modernc.org/sqlite, no cgo) in the data directory.
//
// Every method that changes something writes its audit row in the same
// transaction, so a change without its audit row cannot happen. Secrets are
// sealed with AES-256-GCM under a key derived from the master key.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"backroom/store/authkeys"
)

// File names inside the data directory.
const (
	DBFile             = "backroom.db"
	AuthorizedKeysFile = "authorized_keys"
	AuditHeadFile      = "audit.head"
	MasterKeyFile      = "master.key"
	HostKeyFile        = "ssh_host_ed25519_key"
)

// Synchronous levels accepted for Options.Synchronous.
var synchronousLevels = map[string]bool{"OFF": true, "NORMAL": true, "FULL": true, "EXTRA": true}

// Options configure Open. Zero values take the documented defaults.
type Options struct {
	// Dir is the data directory; it is created 0700 when missing.
	Dir string
	// MasterKey seals secrets and keys the audit chain. Required.
	MasterKey MasterKey
	// Now is the clock; nil means time.Now. Tests inject their own.
	Now func() time.Time
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
	// Synchronous is SQLite's synchronous level: NORMAL (default) or FULL.
	Synchronous string
	// LockoutAfter is how many consecutive code failures lock a staff
	// member (default 5); LockoutFor is how long (default 15m).
	LockoutAfter int
	LockoutFor   time.Duration
	// EnvStripeKey is the value of STRIPE_API_KEY; when set it wins over
	// any stored key.
	EnvStripeKey string
	// Keyring, when non-nil, holds the Stripe key instead of the database
	// (USE_KEYRING=1).
	Keyring Keyring
	// KeyChecker, when non-nil, asks Stripe about a key before it is
	// stored.
	KeyChecker KeyChecker

	// walIdle, when set (by tests), replaces the defaults of the idle
	// WAL truncation (checkpoint.go).
	walIdle *walIdleTuning
	// searchDelay, when set (by tests), replaces searchFlushDelay.
	searchDelay time.Duration
	// syncDB, when set (by tests), replaces the sync of the database
	// file ahead of a WAL restart (checkpoint.go).
	syncDB func() error
}

// Store is the handle on one data directory. It is safe for concurrent use.
type Store struct {
	dir        string
	rdb        *sql.DB // readers
	wdb        *sql.DB // the single writer connection (BEGIN IMMEDIATE)
	cdb        *sql.DB // the checkpointer's connection
	now        func() time.Time
	log        *slog.Logger
	sealer     *sealer
	auditMK    []byte // HMAC key of the audit chain
	recoveryMK []byte // HMAC key of recovery-code hashes
	csrfMK     []byte // HMAC key of web form tokens

	lockoutAfter int
	lockoutFor   time.Duration
	envKey       string
	keyring      Keyring
	keyChecker   KeyChecker

	keys        atomic.Pointer[authkeys.File] // the current authorized_keys snapshot
	keysMu      sync.Mutex                    // serialises reloads in this process
	keysUnacked atomic.Bool                   // the installed file's audit row is still owed
	removedMu   sync.Mutex
	onRemoved   []func(fingerprints []string)
	bounds      clientBounds // ListClients' thresholds
	// onOwnersRemoved are told the members who lost a key.
	onOwnersRemoved []func(names []string)

	headMu   sync.Mutex // serialises audit head writes in this process
	headFile *os.File   // the audit head, kept open

	writes     chan *writeReq // to the writer goroutine
	quit       chan struct{}  // closed by Close
	writerDone chan struct{}
	// checkpointerDone is closed when the background checkpointer stops.
	checkpointerDone chan struct{}
	closeOnce        sync.Once
	// searchQueue is set once the schema queues search index changes
	// (migration 9): the writer then flushes the queue before each commit.
	searchQueue atomic.Bool
	// searchPending is set while search index changes wait in the queue
	// (searchqueue.go).
	searchPending atomic.Bool
	// walReset asks the writer to finish a checkpoint (checkpoint.go).
	walReset atomic.Bool
	walIdle  walIdleTuning
	// dbFile is a descriptor of the database file of the store's own, for
	// syncing it ahead of a WAL restart (checkpoint.go). It stays open
	// until SQLite's connections are closed: closing any descriptor of a
	// file drops every POSIX lock the process holds on it, SQLite's
	// included.
	dbFile *os.File
	syncDB func() error  // dbFile.Sync, but in tests
	packer payloadPacker // compresses webhook payloads (payload.go)
	// searchDelay is how long search index changes may stay queued.
	searchDelay time.Duration
	// commits counts the writer's commits (the checkpointer skips a run
	// when none happened since the last).
	commits atomic.Uint64

	stmtAuditLast   *sql.Stmt // the last audit row
	stmtAuditInsert *sql.Stmt
	reads           sync.Map // query text → *sql.Stmt on the read pool

	hashSlots chan struct{} // at most MaxConcurrentHashes password hashes at once
	dummyOnce sync.Once
	dummy     string
}

// Open opens (creating when needed) the data directory and its database,
// applies migrations, checks the master key against the data, and loads the
// authorized_keys file. A process opens a data directory once at a time
// (other processes may too): the store keeps a descriptor of the database
// file, and closing one drops the POSIX locks the process holds on the
// file, those of another open store included.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("store: no data directory given")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Synchronous == "" {
		opts.Synchronous = "NORMAL"
	}
	opts.Synchronous = strings.ToUpper(opts.Synchronous)
	if !synchronousLevels[opts.Synchronous] {
		return nil, fmt.Errorf("store: synchronous level %q is not valid (use NORMAL or FULL)", opts.Synchronous)
	}
	if opts.LockoutAfter <= 0 {
		opts.LockoutAfter = 5
	}
	if opts.LockoutFor <= 0 {
		opts.LockoutFor = 15 * time.Minute
	}
	if len(opts.MasterKey) != MasterKeySize {
		return nil, errors.New("store: a 32-byte master key is required")
	}
	if err := EnsureDir(opts.Dir); err != nil {
		return nil, err
	}
	dbPath := filepath.Join(opts.Dir, DBFile)
	// SQLite creates files with the process umask; create them 0600 first
	// so the database, its WAL and its shared-memory file are never
	// readable by others (the WAL and -shm copy the database's mode).
	if err := touch0600(dbPath); err != nil {
		return nil, err
	}

	s := &Store{
		bounds:       defaultClientBounds,
		dir:          opts.Dir,
		now:          opts.Now,
		log:          opts.Logger,
		lockoutAfter: opts.LockoutAfter,
		lockoutFor:   opts.LockoutFor,
		envKey:       strings.TrimSpace(opts.EnvStripeKey), // StripeKey hands it out as is
		keyring:      opts.Keyring,
		keyChecker:   opts.KeyChecker,
	}
	var err error
	s.sealer, err = newSealer(opts.MasterKey)
	if err != nil {
		return nil, err
	}
	s.auditMK = deriveKey(opts.MasterKey, "backroom audit chain v1")
	s.recoveryMK = deriveKey(opts.MasterKey, "backroom recovery codes v1")
	s.csrfMK = deriveKey(opts.MasterKey, "backroom web csrf v1")

	base := "file:" + (&url.URL{Path: dbPath}).EscapedPath()
	vfs, err := registerWALVFS()
	if err != nil {
		return nil, err
	}
	pragmas := "?vfs=" + vfs + "&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)" +
		"&_pragma=synchronous(" + opts.Synchronous + ")&_pragma=secure_delete(1)" +
		"&_pragma=journal_size_limit(" + strconv.Itoa(walLimitBytes) + ")"
	// The writer never checkpoints: the checkpointer does (checkpoint.go).
	s.wdb, err = sql.Open("sqlite", base+pragmas+"&_pragma=wal_autocheckpoint(0)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dbPath, err)
	}
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetConnMaxIdleTime(0)
	s.cdb, err = sql.Open("sqlite", base+pragmas)
	if err != nil {
		s.wdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", dbPath, err)
	}
	s.cdb.SetMaxOpenConns(1)
	s.cdb.SetConnMaxIdleTime(0)
	s.rdb, err = sql.Open("sqlite", base+pragmas+"&_pragma=query_only(1)")
	if err != nil {
		s.wdb.Close()
		s.cdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", dbPath, err)
	}
	s.rdb.SetMaxOpenConns(8)
	s.rdb.SetMaxIdleConns(8)

	s.writes, s.quit, s.writerDone = make(chan *writeReq), make(chan struct{}), make(chan struct{})
	s.checkpointerDone = make(chan struct{})
	s.walIdle = walIdleTuning{quiet: walIdleTruncate, longFrames: walLimitBytes / 4 / pageFrameBytes}
	if opts.walIdle != nil {
		s.walIdle = *opts.walIdle
	}
	if s.dbFile, err = os.Open(dbPath); err != nil {
		s.wdb.Close()
		s.cdb.Close()
		s.rdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", dbPath, err)
	}
	s.syncDB = s.dbFile.Sync
	if opts.syncDB != nil {
		s.syncDB = opts.syncDB
	}
	s.searchDelay = searchFlushDelay
	if opts.searchDelay > 0 {
		s.searchDelay = opts.searchDelay
	}
	s.hashSlots = make(chan struct{}, MaxConcurrentHashes)
	go s.runWriter()
	go s.runCheckpointer()

	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.checkMasterKey(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, err
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		_ = chmodIfExists(dbPath+suffix, 0o600)
	}
	if err := s.ReloadAuthorizedKeys(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database cleanly (checkpointing the WAL).
func (s *Store) Close() error {
	var errs []error
	s.closeOnce.Do(func() {
		if s.quit != nil {
			close(s.quit)
			<-s.writerDone
			<-s.checkpointerDone
		}
		if s.headFile != nil {
			s.headFile.Close()
		}
		s.reads.Range(func(_, v any) bool {
			v.(*sql.Stmt).Close()
			return true
		})
		for _, st := range []*sql.Stmt{s.stmtAuditLast, s.stmtAuditInsert} {
			if st != nil {
				st.Close()
			}
		}
	})
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	if s.cdb != nil {
		errs = append(errs, s.cdb.Close())
	}
	if s.wdb != nil {
		_, _ = s.wdb.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
		errs = append(errs, s.wdb.Close())
	}
	// Last: SQLite's locks on the file are gone with its connections.
	if s.dbFile != nil {
		errs = append(errs, s.dbFile.Close())
	}
	return errors.Join(errs...)
}

// Dir is the data directory.
func (s *Store) Dir() string { return s.dir }

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.now() }

// Ping reports whether the store can write: it runs a write transaction
// that changes nothing.
func (s *Store) Ping(ctx context.Context) error {
	return s.write(ctx, func(tx *wtx) error {
		_, err := tx.ExecContext(ctx, `UPDATE meta SET value = value WHERE key = 'schema'`)
		return err
	})
}

// prepare prepares the statements every write transaction runs, once.
func (s *Store) prepare(ctx context.Context) error {
	var err error
	if s.stmtAuditLast, err = s.wdb.PrepareContext(ctx, `SELECT id, hash, time FROM audit ORDER BY id DESC LIMIT 1`); err != nil {
		return fmt.Errorf("store: prepare: %w", err)
	}
	if s.stmtAuditInsert, err = s.wdb.PrepareContext(ctx, `INSERT INTO audit (id, time, actor, action, target, detail, remote_addr, session_id, channel, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`); err != nil {
		return fmt.Errorf("store: prepare: %w", err)
	}
	return nil
}

// queryRow runs a read query of fixed text through a statement prepared
// once (parsing a statement costs about as much as running a small one).
func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if v, ok := s.reads.Load(query); ok {
		return v.(*sql.Stmt).QueryRowContext(ctx, args...)
	}
	st, err := s.rdb.PrepareContext(ctx, query)
	if err != nil {
		return s.rdb.QueryRowContext(ctx, query, args...) // reports the error
	}
	if v, loaded := s.reads.LoadOrStore(query, st); loaded {
		st.Close()
		st = v.(*sql.Stmt)
	}
	return st.QueryRowContext(ctx, args...)
}

// Checkpoint copies the WAL into the database file and truncates it,
// waiting (until ctx ends) while another checkpoint or a reader holds it
// back.
func (s *Store) Checkpoint(ctx context.Context) error {
	for {
		var busy, frames, copied int
		if err := s.wdb.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &frames, &copied); err != nil {
			return err
		}
		if busy == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("store: checkpoint held back (%d of %d pages copied): %w", copied, frames, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
