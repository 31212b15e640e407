package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
)

// migrations are applied in order; the schema version is their count.
// Append only: never edit a migration that has shipped.
var migrations = []string{
	// 1: staff, recovery codes, secrets, audit log. (The meta table, which
	// holds the schema version, is created before any migration runs.)
	`
CREATE TABLE staff (
	name            TEXT PRIMARY KEY,
	totp_secret     BLOB,             -- sealed; NULL until enrolled
	enroll_at_login INTEGER NOT NULL DEFAULT 0 CHECK (enroll_at_login IN (0, 1)),
	last_step       INTEGER NOT NULL DEFAULT 0,
	failures        INTEGER NOT NULL DEFAULT 0,
	locked_until    INTEGER,          -- unix milliseconds
	created_at      INTEGER NOT NULL,
	enrolled_at     INTEGER
);
CREATE TABLE recovery_codes (
	staff   TEXT NOT NULL REFERENCES staff(name) ON DELETE CASCADE,
	hash    TEXT NOT NULL,
	used_at INTEGER,
	PRIMARY KEY (staff, hash)
);
CREATE TABLE secrets (
	name       TEXT PRIMARY KEY,
	value      BLOB,                  -- sealed; NULL when the value lives in the OS keyring
	masked     TEXT NOT NULL,
	storage    TEXT NOT NULL CHECK (storage IN ('database', 'keyring')),
	set_by     TEXT NOT NULL,
	set_at     INTEGER NOT NULL
);
CREATE TABLE audit (
	id          INTEGER PRIMARY KEY,
	time        TEXT NOT NULL,
	actor       TEXT NOT NULL,
	action      TEXT NOT NULL,
	target      TEXT NOT NULL DEFAULT '',
	detail      TEXT NOT NULL DEFAULT '{}',
	remote_addr TEXT NOT NULL DEFAULT '',
	session_id  TEXT NOT NULL DEFAULT '',
	channel     TEXT NOT NULL,
	hash        TEXT NOT NULL
);
CREATE INDEX audit_actor ON audit (actor, id);
CREATE INDEX audit_action ON audit (action, id);
CREATE INDEX audit_time ON audit (time);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
`,
	// 2: INSERT OR REPLACE deletes without firing the DELETE trigger.
	`
CREATE TRIGGER audit_no_replace BEFORE INSERT ON audit
WHEN EXISTS (SELECT 1 FROM audit WHERE id = NEW.id)
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
`,
	// 3: filtering by action family ("login.") newest first.
	`
CREATE INDEX audit_family ON audit (substr(action, 1, instr(action, '.')), id);
`,
	// 4: clients, their search index, and audit rows by target.
	`
CREATE TABLE clients (
	id             INTEGER PRIMARY KEY,
	customer_id    TEXT NOT NULL UNIQUE,
	name           TEXT NOT NULL DEFAULT '' COLLATE NOCASE,
	email          TEXT NOT NULL DEFAULT '',
	phone          TEXT NOT NULL DEFAULT '',
	description    TEXT NOT NULL DEFAULT '',
	currency       TEXT NOT NULL DEFAULT '',
	balance        INTEGER NOT NULL DEFAULT 0,
	delinquent     INTEGER NOT NULL DEFAULT 0 CHECK (delinquent IN (0, 1)),
	livemode       INTEGER NOT NULL DEFAULT 0 CHECK (livemode IN (0, 1)),
	metadata       TEXT NOT NULL DEFAULT '{}',
	stripe_created INTEGER NOT NULL DEFAULT 0,  -- unix seconds; 0 = unknown
	notes          TEXT NOT NULL DEFAULT '',
	updated_at     INTEGER NOT NULL,            -- unix milliseconds
	deleted        INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
	forgotten_at   INTEGER,                     -- unix milliseconds
	source         TEXT NOT NULL CHECK (source IN ('sync', 'webhook', 'import', 'manual')),
	version        INTEGER NOT NULL DEFAULT 0   -- Stripe created of the newest write
);
CREATE INDEX clients_name ON clients (name, id);
CREATE INDEX clients_created ON clients (stripe_created, id);
CREATE INDEX clients_balance ON clients (balance, id);
CREATE VIEW clients_searchable AS
	SELECT id, name, email, customer_id FROM clients WHERE forgotten_at IS NULL;
CREATE VIRTUAL TABLE clients_fts USING fts5(name, email, customer_id,
	content = 'clients_searchable', content_rowid = 'id', tokenize = 'trigram');
CREATE TRIGGER clients_fts_insert AFTER INSERT ON clients WHEN new.forgotten_at IS NULL
BEGIN
	INSERT INTO clients_fts (rowid, name, email, customer_id) VALUES (new.id, new.name, new.email, new.customer_id);
END;
CREATE TRIGGER clients_fts_update AFTER UPDATE OF name, email, customer_id, forgotten_at ON clients
BEGIN
	INSERT INTO clients_fts (clients_fts, rowid, name, email, customer_id)
		SELECT 'delete', old.id, old.name, old.email, old.customer_id WHERE old.forgotten_at IS NULL;
	INSERT INTO clients_fts (rowid, name, email, customer_id)
		SELECT new.id, new.name, new.email, new.customer_id WHERE new.forgotten_at IS NULL;
END;
CREATE TRIGGER clients_fts_delete AFTER DELETE ON clients WHEN old.forgotten_at IS NULL
BEGIN
	INSERT INTO clients_fts (clients_fts, rowid, name, email, customer_id) VALUES ('delete', old.id, old.name, old.email, old.customer_id);
END;
CREATE INDEX audit_target ON audit (target, id);
CREATE TABLE leases (
	name       TEXT PRIMARY KEY,
	holder     TEXT NOT NULL,
	expires_at INTEGER NOT NULL   -- unix milliseconds
);
`,
	// 5: client filters stay on an index at a million clients. The flags
	// ride along in the sort indexes, so that a filtered page reads index
	// entries rather than rows to find its matches; and an index of the
	// flags counts the matches of a filter and fetches rare ones (deleted
	// clients) without reading the whole table.
	`
DROP INDEX clients_name;
DROP INDEX clients_created;
DROP INDEX clients_balance;
CREATE INDEX clients_name ON clients (name, id, deleted, delinquent, livemode);
CREATE INDEX clients_created ON clients (stripe_created, id, deleted, delinquent, livemode);
CREATE INDEX clients_balance ON clients (balance, id, deleted, delinquent, livemode);
CREATE INDEX clients_flags ON clients (deleted, delinquent, livemode);
-- The search index changes only when the text it holds does (an update of
-- a balance rewrote a client's entries), and what it drops is removed from
-- its pages at once rather than masked (a forgotten client's trigrams).
DROP TRIGGER clients_fts_update;
CREATE TRIGGER clients_fts_update AFTER UPDATE OF name, email, customer_id, forgotten_at ON clients
WHEN old.name IS NOT new.name COLLATE BINARY OR old.email IS NOT new.email OR old.customer_id IS NOT new.customer_id
	OR old.forgotten_at IS NOT new.forgotten_at
BEGIN
	INSERT INTO clients_fts (clients_fts, rowid, name, email, customer_id)
		SELECT 'delete', old.id, old.name, old.email, old.customer_id WHERE old.forgotten_at IS NULL;
	INSERT INTO clients_fts (rowid, name, email, customer_id)
		SELECT new.id, new.name, new.email, new.customer_id WHERE new.forgotten_at IS NULL;
END;
INSERT INTO clients_fts (clients_fts, rank) VALUES ('secure-delete', 1);
`,
	// 6: fewer audit index pages written per row (every login writes
	// several rows). Time ranges are found by a binary search over ids
	// (times never go backwards along the chain); audit rows are looked up
	// by target only for clients.
	`
DROP INDEX audit_time;
DROP INDEX audit_target;
CREATE INDEX audit_client ON audit (target, id) WHERE target GLOB 'cus_*';
`,
	// 7: Stripe webhooks — events (one row per event id: the idempotency
	// key), every delivery attempt, the rejection counters that cap how
	// many rejected attempts are stored, and billing activity by client.
	`
CREATE TABLE webhook_events (
	id             INTEGER PRIMARY KEY,
	event_id       TEXT NOT NULL UNIQUE,
	type           TEXT NOT NULL,
	api_version    TEXT NOT NULL DEFAULT '',
	livemode       INTEGER NOT NULL DEFAULT 0 CHECK (livemode IN (0, 1)),
	stripe_created INTEGER NOT NULL DEFAULT 0,
	customer_id    TEXT NOT NULL DEFAULT '',
	status         TEXT NOT NULL CHECK (status IN ('processed', 'ignored', 'failed')),
	error          TEXT NOT NULL DEFAULT '',
	payload        BLOB NOT NULL,
	secret         TEXT NOT NULL DEFAULT '',
	attempts       INTEGER NOT NULL DEFAULT 0,
	received_at    INTEGER NOT NULL,
	updated_at     INTEGER NOT NULL,
	processed_at   INTEGER
);
CREATE INDEX webhook_events_status ON webhook_events (status, id);
CREATE INDEX webhook_events_type ON webhook_events (type, id);
CREATE INDEX webhook_events_customer ON webhook_events (customer_id, id) WHERE customer_id != '';
CREATE INDEX webhook_events_updated ON webhook_events (updated_at);
CREATE TABLE webhook_attempts (
	id          INTEGER PRIMARY KEY,
	event_id    TEXT NOT NULL DEFAULT '',
	received_at INTEGER NOT NULL,
	remote_addr TEXT NOT NULL DEFAULT '',
	headers     TEXT NOT NULL DEFAULT '{}',
	outcome     TEXT NOT NULL CHECK (outcome IN ('processed', 'duplicate', 'ignored', 'failed', 'rejected')),
	reason      TEXT NOT NULL DEFAULT '',
	error       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX webhook_attempts_event ON webhook_attempts (event_id, id) WHERE event_id != '';
CREATE INDEX webhook_attempts_rejected ON webhook_attempts (id) WHERE outcome = 'rejected';
CREATE INDEX webhook_attempts_received ON webhook_attempts (received_at);
CREATE TABLE webhook_rejections (
	source  TEXT NOT NULL,
	minute  INTEGER NOT NULL,
	stored  INTEGER NOT NULL DEFAULT 0,
	dropped INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (source, minute)
);
CREATE TABLE billing_events (
	id             INTEGER PRIMARY KEY,
	event_id       TEXT NOT NULL UNIQUE,
	customer_id    TEXT NOT NULL,
	type           TEXT NOT NULL,
	object_id      TEXT NOT NULL DEFAULT '',
	amount         INTEGER NOT NULL DEFAULT 0,
	currency       TEXT NOT NULL DEFAULT '',
	status         TEXT NOT NULL DEFAULT '',
	stripe_created INTEGER NOT NULL DEFAULT 0,
	summary        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX billing_events_customer ON billing_events (customer_id, stripe_created, id);
`,
	// 8: the web admin — passwords (argon2id), sessions and one-time
	// sign-in links (only hashes of their tokens).
	`
ALTER TABLE staff ADD COLUMN password_hash TEXT;
CREATE TABLE web_sessions (
	hash        TEXT PRIMARY KEY,
	name        TEXT NOT NULL,
	created_at  INTEGER NOT NULL,
	last_seen   INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL,
	remote_addr TEXT NOT NULL DEFAULT '',
	user_agent  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX web_sessions_name ON web_sessions (name);
CREATE TABLE signin_links (
	hash       TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	used_at    INTEGER
);
`,
	// 9: the search index is written once per write transaction. Its
	// triggers queue the changes in clients_fts_pending, which the writer
	// moves into clients_fts in one statement just before each commit
	// (searchQueue in writer.go) and empties. FTS5 writes out what it holds
	// as a new index segment at every statement-level savepoint (every
	// later statement with a trigger or a constraint that may abort), so
	// the triggers writing clients_fts directly made one segment, and its
	// merges, per client written; a group commit of many webhook events
	// now makes one. Readers see the same index: the queue is always empty
	// at a commit.
	`
CREATE TABLE clients_fts_pending (
	seq         INTEGER PRIMARY KEY,
	op          TEXT CHECK (op IS NULL OR op = 'delete'),   -- NULL: insert
	id          INTEGER NOT NULL,
	name        TEXT NOT NULL,
	email       TEXT NOT NULL,
	customer_id TEXT NOT NULL
);
DROP TRIGGER clients_fts_insert;
CREATE TRIGGER clients_fts_insert AFTER INSERT ON clients WHEN new.forgotten_at IS NULL
BEGIN
	INSERT INTO clients_fts_pending (op, id, name, email, customer_id) VALUES (NULL, new.id, new.name, new.email, new.customer_id);
END;
DROP TRIGGER clients_fts_update;
CREATE TRIGGER clients_fts_update AFTER UPDATE OF name, email, customer_id, forgotten_at ON clients
WHEN old.name IS NOT new.name COLLATE BINARY OR old.email IS NOT new.email OR old.customer_id IS NOT new.customer_id
	OR old.forgotten_at IS NOT new.forgotten_at
BEGIN
	INSERT INTO clients_fts_pending (op, id, name, email, customer_id)
		SELECT 'delete', old.id, old.name, old.email, old.customer_id WHERE old.forgotten_at IS NULL;
	INSERT INTO clients_fts_pending (op, id, name, email, customer_id)
		SELECT NULL, new.id, new.name, new.email, new.customer_id WHERE new.forgotten_at IS NULL;
END;
DROP TRIGGER clients_fts_delete;
CREATE TRIGGER clients_fts_delete AFTER DELETE ON clients WHEN old.forgotten_at IS NULL
BEGIN
	INSERT INTO clients_fts_pending (op, id, name, email, customer_id) VALUES ('delete', old.id, old.name, old.email, old.customer_id);
END;
`,
	// 10: every webhook delivery wrote these two indexes (at pages all over
	// the file) for the sake of pruning only, which now walks the rows in
	// id order (PruneWebhooks); lists page by id.
	`
DROP INDEX webhook_events_updated;
DROP INDEX webhook_attempts_received;
`,
	// 11: a client's changed name or email leaves the search index the
	// cheap way: FTS5 masks the old entries (a delete marker) instead of
	// editing them out of every index segment that holds one (its
	// secure-delete mode, ~4 ms per change at 100,000 clients: most of a
	// busy webhook writer's time). The masked entries stay until FTS5's
	// merges drop them, so the clients that have some are listed (ids only)
	// in clients_fts_stale, and forgetting one of them merges the whole
	// index (searchqueue.go) so that no entry of the erased text survives.
	`
INSERT INTO clients_fts (clients_fts, rank) VALUES ('secure-delete', 0);
CREATE TABLE clients_fts_stale (id INTEGER PRIMARY KEY);
DROP TRIGGER clients_fts_update;
CREATE TRIGGER clients_fts_update AFTER UPDATE OF name, email, customer_id, forgotten_at ON clients
WHEN old.name IS NOT new.name COLLATE BINARY OR old.email IS NOT new.email OR old.customer_id IS NOT new.customer_id
	OR old.forgotten_at IS NOT new.forgotten_at
BEGIN
	INSERT INTO clients_fts_pending (op, id, name, email, customer_id)
		SELECT 'delete', old.id, old.name, old.email, old.customer_id WHERE old.forgotten_at IS NULL;
	INSERT INTO clients_fts_pending (op, id, name, email, customer_id)
		SELECT NULL, new.id, new.name, new.email, new.customer_id WHERE new.forgotten_at IS NULL;
	INSERT OR IGNORE INTO clients_fts_stale (id)
		SELECT old.id WHERE old.forgotten_at IS NULL AND new.forgotten_at IS NULL;
END;
`,
	// 12: an attempt points at its event's row. The index of attempts by
	// event id took a write at a random place per delivery (event ids are
	// random); by event row, a new event's attempt is appended.
	`
ALTER TABLE webhook_attempts ADD COLUMN event_row INTEGER;
UPDATE webhook_attempts SET event_row = (SELECT e.id FROM webhook_events AS e WHERE e.event_id = webhook_attempts.event_id)
	WHERE event_id != '';
DROP INDEX webhook_attempts_event;
CREATE INDEX webhook_attempts_event ON webhook_attempts (event_row, id) WHERE event_row IS NOT NULL;
`,
	// 13: billing rows lose the unique index on their event id, a write at
	// a random place per billing event kept for the rare replay; a replay
	// or retry looks for the event's row among its customer's instead.
	`
CREATE TABLE billing_events_new (
	id             INTEGER PRIMARY KEY,
	event_id       TEXT NOT NULL,
	customer_id    TEXT NOT NULL,
	type           TEXT NOT NULL,
	object_id      TEXT NOT NULL DEFAULT '',
	amount         INTEGER NOT NULL DEFAULT 0,
	currency       TEXT NOT NULL DEFAULT '',
	status         TEXT NOT NULL DEFAULT '',
	stripe_created INTEGER NOT NULL DEFAULT 0,
	summary        TEXT NOT NULL DEFAULT ''
);
INSERT INTO billing_events_new SELECT id, event_id, customer_id, type, object_id, amount, currency, status, stripe_created, summary
	FROM billing_events;
DROP TABLE billing_events;
ALTER TABLE billing_events_new RENAME TO billing_events;
CREATE INDEX billing_events_customer ON billing_events (customer_id, stripe_created, id);
`,
	// 14: the indexes by status and by type had a last page per status and
	// per type, about ten pages that every commit of deliveries wrote
	// again. One narrow index in id order (appended to at one place) now
	// serves both filters by scanning it backwards, and failed events,
	// rare and counted on every console header, keep an index of their own.
	`
DROP INDEX IF EXISTS webhook_events_status;
DROP INDEX IF EXISTS webhook_events_type;
CREATE INDEX IF NOT EXISTS webhook_events_kinds ON webhook_events (id, status, type);
CREATE INDEX IF NOT EXISTS webhook_events_failed ON webhook_events (id) WHERE status = 'failed';
`,
}

// SchemaVersion is the schema this binary writes.
var SchemaVersion = len(migrations)

// ErrSchemaTooNew is returned by Open for a database written by a newer
// Backroom.
var ErrSchemaTooNew = errors.New("store: the database was written by a newer Backroom")

func (s *Store) migrate(ctx context.Context) error {
	err := s.write(ctx, func(tx *wtx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`); err != nil {
			return fmt.Errorf("store: migrate: %w", err)
		}
		var v string
		err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'schema'`).Scan(&v)
		current := 0
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("store: read schema version: %w", err)
		default:
			current, err = strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("store: schema version %q is not a number", v)
			}
		}
		if current > SchemaVersion {
			return fmt.Errorf("%w (schema %d; this binary knows up to %d): upgrade Backroom", ErrSchemaTooNew, current, SchemaVersion)
		}
		// Before the migrations, which may expect what a bulk load dropped.
		if err := tx.finishBulkLoad(ctx); err != nil {
			return fmt.Errorf("store: finish an interrupted bulk load: %w", err)
		}
		for i := current; i < SchemaVersion; i++ {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return fmt.Errorf("store: migration %d: %w", i+1, err)
			}
		}
		if current != SchemaVersion {
			_, err = tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('schema', ?)
				ON CONFLICT (key) DO UPDATE SET value = excluded.value`, strconv.Itoa(SchemaVersion))
			if err != nil {
				return fmt.Errorf("store: write schema version: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.searchQueue.Store(true)
	// Changes a crash left queued go into the search index now.
	var queued bool
	if err := s.wdb.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM clients_fts_pending)`).Scan(&queued); err != nil || !queued {
		return err
	}
	s.searchPending.Store(true)
	return s.searchIndexCurrent(ctx)
}
