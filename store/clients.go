package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Client sources: what last wrote a client record.
const (
	SourceSync    = "sync"
	SourceWebhook = "webhook"
	SourceImport  = "import"
	SourceManual  = "manual"
)

// Client audit actions.
const (
	ActionClientViewed       = "client.viewed"
	ActionClientNotesUpdated = "client.notes_updated"
	ActionClientForgotten    = "client.forgotten"
	ActionClientAdded        = "client.added"
	ActionClientSynced       = "client.synced"
	ActionClientImported     = "client.imported"
	ActionClientExported     = "client.exported"
)

// Client is a Stripe customer as Backroom keeps it locally. Payments stay at
// Stripe: no card data is ever stored.
type Client struct {
	ID            int64 // local row id (insertion order)
	CustomerID    string
	Name          string
	Email         string
	Phone         string
	Description   string
	Currency      string
	Balance       int64 // minor units; positive = owed
	Delinquent    bool
	Livemode      bool
	Metadata      map[string]string
	StripeCreated time.Time // zero when unknown
	Notes         string    // staff notes, local only
	UpdatedAt     time.Time
	Deleted       bool      // deleted at Stripe
	ForgottenAt   time.Time // zero unless erased locally
	Source        string
	// Version is the Stripe `created` time (unix seconds) of the newest
	// event or sync that wrote the record: older data never overwrites it.
	Version int64
}

// Forgotten reports whether the client's personal data was erased.
func (c Client) Forgotten() bool { return !c.ForgottenAt.IsZero() }

// ClientData is what Stripe (or an import) says about a customer.
type ClientData struct {
	CustomerID    string
	Name          string
	Email         string
	Phone         string
	Description   string
	Currency      string
	Balance       int64
	Delinquent    bool
	Livemode      bool
	Metadata      map[string]string
	StripeCreated time.Time
	Deleted       bool
	// Version orders writes: the Stripe `created` time of the event, or the
	// time of the sync (unix seconds).
	Version int64
}

var customerIDRE = regexp.MustCompile(`^cus_[A-Za-z0-9]{1,64}$`)

// ValidCustomerID checks a Stripe customer id (cus_ followed by letters
// and digits).
func ValidCustomerID(id string) error {
	if !customerIDRE.MatchString(id) {
		return errorf(CodeInvalid, "%q is not a Stripe customer id (expected cus_ followed by letters and digits, e.g. cus_NffrFeUfNV2Hib)", clip(id, 40))
	}
	return nil
}

// clip shortens s for an error message.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

var currencyRE = regexp.MustCompile(`^[a-z]{3}$`)

var emailRE = regexp.MustCompile(`^[^\s@]+@[^\s@]+\.[^\s@]+$`)

// ValidEmail is a plausibility check (something@domain.tld), not RFC 5322.
func ValidEmail(e string) bool { return e == "" || emailRE.MatchString(e) }

// clientCols are the columns scanClient reads, qualified (the search joins
// a table with columns of the same names).
const clientCols = `clients.id, clients.customer_id, clients.name, clients.email, clients.phone, clients.description,
	clients.currency, clients.balance, clients.delinquent, clients.livemode, clients.metadata, clients.stripe_created,
	clients.notes, clients.updated_at, clients.deleted, clients.forgotten_at, clients.source, clients.version`

func scanClient(sc interface{ Scan(...any) error }) (Client, error) {
	var c Client
	var meta string
	var created, updated int64
	var forgotten sql.NullInt64
	err := sc.Scan(&c.ID, &c.CustomerID, &c.Name, &c.Email, &c.Phone, &c.Description, &c.Currency, &c.Balance,
		&c.Delinquent, &c.Livemode, &meta, &created, &c.Notes, &updated, &c.Deleted, &forgotten, &c.Source, &c.Version)
	if err != nil {
		return Client{}, err
	}
	if meta != "" && meta != "{}" {
		_ = json.Unmarshal([]byte(meta), &c.Metadata)
	}
	if created != 0 {
		c.StripeCreated = time.Unix(created, 0).UTC()
	}
	if forgotten.Valid {
		c.ForgottenAt = time.UnixMilli(forgotten.Int64).UTC()
	}
	c.UpdatedAt = time.UnixMilli(updated).UTC()
	return c, nil
}

func metadataJSON(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// unixOrZero is t in unix seconds, 0 for the zero time (unknown).
func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// GetClient returns a client without auditing the access (for the CLI's
// own checks and tests). Staff-facing views use ViewClient.
func (s *Store) GetClient(ctx context.Context, customerID string) (Client, error) {
	return getClient(ctx, s.rdb, customerID)
}

type queryRower interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

func getClient(ctx context.Context, q queryRower, customerID string) (Client, error) {
	c, err := scanClient(q.QueryRowContext(ctx, `SELECT `+clientCols+` FROM clients WHERE customer_id = ?`, customerID))
	if errors.Is(err, sql.ErrNoRows) {
		return Client{}, errorf(CodeNotFound, "no client %s", clip(customerID, 40))
	}
	return c, err
}

// findClient is getClient for a client that may not exist: exists
// reports whether it does, and err is only a failure to read.
func findClient(ctx context.Context, q queryRower, customerID string) (c Client, exists bool, err error) {
	c, err = getClient(ctx, q, customerID)
	switch {
	case err == nil:
		return c, true, nil
	case ErrorCode(err) == CodeNotFound:
		return Client{}, false, nil
	}
	return Client{}, false, err
}

// ViewClient returns a client for a staff member to look at, and records
// the access (personal data) as client.viewed in the same transaction.
func (s *Store) ViewClient(ctx context.Context, a Actor, customerID string) (Client, error) {
	var c Client
	err := s.write(ctx, func(tx *wtx) error {
		var err error
		if c, err = getClient(ctx, tx, customerID); err != nil {
			return err
		}
		return tx.audit(ctx, a, ActionClientViewed, customerID, Detail{"customer_id": customerID})
	})
	return c, err
}

// MaxNotes is the longest note, in bytes.
const MaxNotes = 4000

// SetClientNotes replaces a client's local notes (any staff member).
func (s *Store) SetClientNotes(ctx context.Context, a Actor, customerID, notes string) error {
	if !utf8.ValidString(notes) {
		return errorf(CodeInvalid, "the notes are not valid UTF-8 text")
	}
	if len(notes) > MaxNotes {
		return errorf(CodeInvalid, "the notes are %d bytes; at most %d are kept", len(notes), MaxNotes)
	}
	return s.write(ctx, func(tx *wtx) error {
		c, err := getClient(ctx, tx, customerID)
		if err != nil {
			return err
		}
		if c.Forgotten() {
			return errorf(CodeConflict, "%s was forgotten: no personal data may be stored for it", customerID)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE clients SET notes = ?, updated_at = ? WHERE id = ?`, notes, s.now().UnixMilli(), c.ID); err != nil {
			return fmt.Errorf("store: notes: %w", err)
		}
		return tx.audit(ctx, a, ActionClientNotesUpdated, customerID, Detail{"customer_id": customerID, "length": len(notes)})
	})
}

// AddClient adds a client by hand (admins), for a customer Backroom has not
// seen from Stripe yet.
func (s *Store) AddClient(ctx context.Context, a Actor, d ClientData) (Client, error) {
	if err := a.requireAdmin("add clients"); err != nil {
		return Client{}, err
	}
	if err := checkClientData(d); err != nil {
		return Client{}, err
	}
	var c Client
	err := s.write(ctx, func(tx *wtx) error {
		if _, err := getClient(ctx, tx, d.CustomerID); err == nil {
			return errorf(CodeConflict, "client %s already exists", d.CustomerID)
		}
		if _, err := tx.upsertClient(ctx, d, SourceManual); err != nil {
			return err
		}
		var err error
		if c, err = getClient(ctx, tx, d.CustomerID); err != nil {
			return err
		}
		return tx.audit(ctx, a, ActionClientAdded, d.CustomerID, Detail{"customer_id": d.CustomerID})
	})
	return c, err
}

func checkClientData(d ClientData) error {
	if err := ValidCustomerID(d.CustomerID); err != nil {
		return err
	}
	// In a fixed order, so that the message names the first bad field.
	for _, f := range []struct{ field, v string }{
		{"name", d.Name}, {"email", d.Email}, {"phone", d.Phone}, {"description", d.Description}, {"currency", d.Currency},
	} {
		if !utf8.ValidString(f.v) {
			return errorf(CodeInvalid, "the %s is not valid UTF-8 text", f.field)
		}
		if len(f.v) > 1000 {
			return errorf(CodeInvalid, "the %s is longer than 1000 bytes", f.field)
		}
	}
	if !ValidEmail(d.Email) {
		return errorf(CodeInvalid, "%q is not an email address (expected name@example.com)", clip(d.Email, 60))
	}
	if d.Currency != "" && !currencyRE.MatchString(d.Currency) {
		return errorf(CodeInvalid, "currency %q is not a three-letter ISO code in lower case (e.g. usd, eur)", clip(d.Currency, 10))
	}
	return nil
}

// Upsert outcomes.
type upsertOutcome int

const (
	upsertCreated upsertOutcome = iota + 1
	upsertUpdated
	upsertUnchanged
	upsertStale // older than what wrote the record: ignored
)

// upsertClient writes d unless the record holds newer data. A forgotten
// client keeps no personal fields, whatever d says.
func (tx *wtx) upsertClient(ctx context.Context, d ClientData, source string) (upsertOutcome, error) {
	cur, exists, err := findClient(ctx, tx, d.CustomerID)
	if err != nil {
		return 0, err
	}
	return tx.upsertClientOver(ctx, d, source, cur, exists)
}

// upsertClientOver is upsertClient once the current client (when exists)
// has been read.
func (tx *wtx) upsertClientOver(ctx context.Context, d ClientData, source string, cur Client, exists bool) (upsertOutcome, error) {
	if exists && cur.Version > d.Version {
		return upsertStale, nil
	}
	if exists && cur.Forgotten() {
		d.Name, d.Email, d.Phone, d.Description, d.Metadata = "", "", "", "", nil
	}
	now := tx.s.now().UnixMilli()
	if !exists {
		_, err := tx.ExecContext(ctx, `INSERT INTO clients (customer_id, name, email, phone, description, currency, balance,
			delinquent, livemode, metadata, stripe_created, updated_at, deleted, source, version)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			d.CustomerID, d.Name, d.Email, d.Phone, d.Description, d.Currency, d.Balance, d.Delinquent, d.Livemode,
			metadataJSON(d.Metadata), unixOrZero(d.StripeCreated), now, d.Deleted, source, d.Version)
		if err != nil {
			return 0, fmt.Errorf("store: insert client: %w", err)
		}
		return upsertCreated, nil
	}
	// Only the columns that change are set: SQLite rewrites the entry of
	// every index on a column an UPDATE sets, changed or not (a balance
	// update that set them all wrote four index pages instead of one).
	var set strings.Builder
	var args []any
	col := func(name string, changed bool, v any) {
		if changed {
			set.WriteString(name + " = ?, ")
			args = append(args, v)
		}
	}
	col("name", cur.Name != d.Name, d.Name)
	col("email", cur.Email != d.Email, d.Email)
	col("phone", cur.Phone != d.Phone, d.Phone)
	col("description", cur.Description != d.Description, d.Description)
	col("currency", cur.Currency != d.Currency, d.Currency)
	col("balance", cur.Balance != d.Balance, d.Balance)
	col("delinquent", cur.Delinquent != d.Delinquent, d.Delinquent)
	col("livemode", cur.Livemode != d.Livemode, d.Livemode)
	col("metadata", !maps.Equal(cur.Metadata, d.Metadata), metadataJSON(d.Metadata))
	col("stripe_created", !d.StripeCreated.IsZero() && !cur.StripeCreated.Equal(d.StripeCreated), unixOrZero(d.StripeCreated))
	col("deleted", cur.Deleted != d.Deleted, d.Deleted)
	if len(args) == 0 {
		// Nothing changed (the source alone does not count).
		if d.Version > cur.Version {
			if _, err := tx.ExecContext(ctx, `UPDATE clients SET version = ? WHERE id = ?`, d.Version, cur.ID); err != nil {
				return 0, err
			}
		}
		return upsertUnchanged, nil
	}
	col("source", cur.Source != source, source)
	_, err := tx.ExecContext(ctx, `UPDATE clients SET `+set.String()+`updated_at = ?, version = max(version, ?) WHERE id = ?`,
		append(args, now, d.Version, cur.ID)...)
	if err != nil {
		return 0, fmt.Errorf("store: update client: %w", err)
	}
	return upsertUpdated, nil
}

// UpsertResult counts what an upsert of many clients did.
type UpsertResult struct {
	Created, Updated, Unchanged, Stale int
}

// Add adds o's counts to r.
func (r *UpsertResult) Add(o UpsertResult) {
	r.Created += o.Created
	r.Updated += o.Updated
	r.Unchanged += o.Unchanged
	r.Stale += o.Stale
}

// UpsertClients writes a batch of clients from Stripe (sync or webhook) in
// one transaction. Older data never overwrites newer data, and forgotten
// clients get no personal fields back. It writes no audit row: the caller
// audits the whole operation (client.synced).
func (s *Store) UpsertClients(ctx context.Context, source string, batch []ClientData) (UpsertResult, error) {
	var res UpsertResult
	if source != SourceSync && source != SourceWebhook {
		return res, errorf(CodeInvalid, "source %q is not sync or webhook", source)
	}
	for _, d := range batch {
		if err := checkClientData(d); err != nil {
			return res, err
		}
	}
	err := s.write(ctx, func(tx *wtx) error {
		res = UpsertResult{}
		for _, d := range batch {
			o, err := tx.upsertClient(ctx, d, source)
			if err != nil {
				return err
			}
			res.count(o)
		}
		return nil
	})
	return res, err
}

func (r *UpsertResult) count(o upsertOutcome) {
	switch o {
	case upsertCreated:
		r.Created++
	case upsertUpdated:
		r.Updated++
	case upsertUnchanged:
		r.Unchanged++
	case upsertStale:
		r.Stale++
	}
}

// MarkMissingDeleted marks as deleted the clients of the given mode that a
// complete sync did not see (Stripe's list leaves deleted customers out).
// Every record the sync saw carries its version (syncStarted, unix seconds)
// after the upsert, so the missing ones are those written by a sync or a
// webhook before it.
func (s *Store) MarkMissingDeleted(ctx context.Context, livemode bool, syncStarted int64) (int, error) {
	n := 0
	err := s.write(ctx, func(tx *wtx) error {
		r, err := tx.ExecContext(ctx, `UPDATE clients SET deleted = 1, updated_at = ?, version = ?
			WHERE livemode = ? AND deleted = 0 AND source IN ('sync', 'webhook') AND version < ?`,
			s.now().UnixMilli(), syncStarted, livemode, syncStarted)
		if err != nil {
			return fmt.Errorf("store: mark deleted: %w", err)
		}
		m, _ := r.RowsAffected()
		n = int(m)
		return nil
	})
	return n, err
}

// LinkClient stores one customer fetched from Stripe on an admin's request
// (source sync) and audits it as client.added with the outcome (created,
// updated, unchanged or stale) and the caller's detail, in one
// transaction.
func (s *Store) LinkClient(ctx context.Context, a Actor, d ClientData, detail Detail) (Client, string, error) {
	if err := a.requireAdmin("link clients"); err != nil {
		return Client{}, "", err
	}
	if err := checkClientData(d); err != nil {
		return Client{}, "", err
	}
	var c Client
	var outcome string
	err := s.write(ctx, func(tx *wtx) error {
		o, err := tx.upsertClient(ctx, d, SourceSync)
		if err != nil {
			return err
		}
		outcome = map[upsertOutcome]string{upsertCreated: "created", upsertUpdated: "updated", upsertUnchanged: "unchanged", upsertStale: "stale"}[o]
		dd := Detail{"customer_id": d.CustomerID, "outcome": outcome}
		for k, v := range detail {
			dd[k] = v
		}
		if err := tx.audit(ctx, a, ActionClientAdded, d.CustomerID, dd); err != nil {
			return err
		}
		c, err = getClient(ctx, tx, d.CustomerID)
		return err
	})
	return c, outcome, err
}

// forgetCheckpointWait bounds how long forgetting a client waits for the
// WAL to be truncated.
const forgetCheckpointWait = 10 * time.Second

// ForgetClient erases a client's personal data (name, email, phone,
// description, metadata, notes), keeping the customer id as a tombstone,
// and checkpoints the WAL so that no copy of the erased data stays in the
// data directory (secure_delete zeroes freed pages). Admins only.
func (s *Store) ForgetClient(ctx context.Context, a Actor, customerID string) error {
	if err := a.requireAdmin("forget clients"); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *wtx) error {
		c, err := getClient(ctx, tx, customerID)
		if err != nil {
			return err
		}
		if c.Forgotten() {
			return errorf(CodeConflict, "%s was already forgotten on %s", customerID, c.ForgottenAt.Format("2006-01-02"))
		}
		_, err = tx.ExecContext(ctx, `UPDATE clients SET name = '', email = '', phone = '', description = '', metadata = '{}',
			notes = '', forgotten_at = ?, updated_at = ? WHERE id = ?`, s.now().UnixMilli(), s.now().UnixMilli(), c.ID)
		if err != nil {
			return fmt.Errorf("store: forget client: %w", err)
		}
		if err := tx.eraseFromSearch(ctx, c.ID); err != nil {
			return err
		}
		if err := tx.forgetHook(ctx, customerID); err != nil {
			return err
		}
		return tx.audit(ctx, a, ActionClientForgotten, customerID, Detail{"customer_id": customerID})
	})
	if err != nil {
		return err
	}
	// The old row may still sit in the WAL: copy it into the database
	// (where secure_delete zeroed the old cell) and truncate the WAL,
	// waiting a while for a reader or the background checkpoint that holds
	// it back.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), forgetCheckpointWait)
	defer cancel()
	if err := s.Checkpoint(cctx); err != nil {
		s.log.Error("checkpoint after forgetting a client: the erased data stays in the WAL until the next checkpoint", "err", err)
	}
	return nil
}

// forgetHook scrubs personal data kept elsewhere for a forgotten client:
// stored webhook payloads about them.
func (tx *wtx) forgetHook(ctx context.Context, customerID string) error {
	return tx.scrubWebhooksOf(ctx, customerID)
}

// --- browsing and search ----------------------------------------------------

// Client sort orders.
const (
	SortName    = "name"
	SortCreated = "created"
	SortBalance = "balance"
)

// ClientQuery selects a page of clients. Zero fields do not filter.
type ClientQuery struct {
	// Search matches name, email and customer id: a substring of 3 or more
	// characters (trigram index, results in insertion order), or a name
	// prefix for 1 or 2 characters (in name order).
	Search     string
	Livemode   *bool
	Delinquent *bool
	Deleted    *bool // nil: any; the console shows deleted clients only on request
	Sort       string
	Desc       bool
	// After continues after the last client of the previous page (keyset);
	// Before goes back from the first client of the current page.
	After, Before *Client
	Limit         int // default 40, at most 500
}

// ClientPage is one page of clients.
type ClientPage struct {
	Clients []Client
	More    bool // more clients follow in the query's direction
	// Total is the number of matching clients when TotalExact, else a
	// lower bound or an estimate ("about").
	Total      int64
	TotalExact bool
}

// searchMode says how a query uses its search text.
func (q ClientQuery) searchMode() string {
	switch n := utf8.RuneCountInString(strings.TrimSpace(q.Search)); {
	case n == 0:
		return ""
	case n < 3:
		return "prefix"
	default:
		return "trigram"
	}
}

// order returns the ORDER BY keys of the query: the sort column and id.
func (q ClientQuery) order() (col string) {
	switch {
	case q.searchMode() == "trigram":
		return "" // insertion order: id only
	case q.searchMode() == "prefix":
		return "clients.name"
	}
	switch q.Sort {
	case SortCreated:
		return "clients.stripe_created"
	case SortBalance:
		return "clients.balance"
	default:
		return "clients.name"
	}
}

// sortIndex is the index of each sort column (migration 5).
var sortIndex = map[string]string{"clients.name": "clients_name", "clients.stripe_created": "clients_created", "clients.balance": "clients_balance"}

func sortValue(c *Client, col string) any {
	switch col {
	case "clients.stripe_created":
		return unixOrZero(c.StripeCreated)
	case "clients.balance":
		return c.Balance
	default:
		return c.Name
	}
}

// ftsQuery quotes text as one FTS5 phrase (a substring for the trigram
// tokenizer).
func ftsQuery(text string) string {
	return `"` + strings.ReplaceAll(strings.TrimSpace(text), `"`, `""`) + `"`
}

// ListClients returns one page of clients matching q, with keyset paging:
// a page reads about as many rows as it returns, whatever the page number.
func (s *Store) ListClients(ctx context.Context, q ClientQuery) (ClientPage, error) {
	if q.Limit <= 0 {
		q.Limit = 40
	}
	if q.Limit > 500 {
		q.Limit = 500
	}
	if q.Sort != "" && q.Sort != SortName && q.Sort != SortCreated && q.Sort != SortBalance {
		return ClientPage{}, errorf(CodeInvalid, "sort %q is not name, created or balance", q.Sort)
	}
	// FTS5 reads its query up to a NUL ("unterminated string"); no stored
	// text holds one.
	q.Search = strings.ReplaceAll(q.Search, "\x00", "")
	var conds []string
	var args []any
	from := "clients"
	switch q.searchMode() {
	case "trigram":
		if err := s.searchIndexCurrent(ctx); err != nil {
			return ClientPage{}, err
		}
		from = "clients JOIN clients_fts ON clients_fts.rowid = clients.id"
		conds = append(conds, "clients_fts MATCH ?")
		args = append(args, ftsQuery(q.Search))
	case "prefix":
		p := strings.TrimSpace(q.Search)
		conds = append(conds, "clients.name LIKE ? ESCAPE '\\'")
		args = append(args, escapeLike(p)+"%")
	}
	if fc, fa := q.flagIndexConds(); q.searchMode() == "trigram" && len(fc) > 0 {
		// Every flag, so that each match is checked with one seek (or a
		// few) of the flags index by rowid (searchFrom).
		fs := q.flags()
		for _, f := range fs[len(fc):] {
			fc = append(fc, "clients."+f.col+" IN (0, 1)")
		}
		conds, args = append(conds, fc...), append(args, fa...)
	} else {
		for _, f := range q.flags() {
			if f.v != nil {
				conds = append(conds, "clients."+f.col+" = ?")
				args = append(args, *f.v)
			}
		}
	}
	filterConds, filterArgs := append([]string(nil), conds...), append([]any(nil), args...)

	if q.searchMode() != "trigram" {
		// The sort's index, walked in order. Left to itself the planner
		// may prefer the flags index for "deleted = 0" and sort a million
		// rows.
		from = "clients INDEXED BY " + sortIndex[q.order()]
	}
	// A filter without a search: count its matches on the flags index
	// first, and when they are few read them from there too (and sort
	// them), rather than walk a sort index past every client that does
	// not match (seconds for the few deleted clients of a million).
	var page ClientPage
	counted := false
	if fc, fa := q.flagIndexConds(); q.searchMode() == "" && len(fc) > 0 {
		var err error
		page.Total, page.TotalExact, err = s.countClients(ctx, "clients INDEXED BY clients_flags", fc, fa)
		if err != nil {
			return ClientPage{}, err
		}
		counted = true
		if page.TotalExact && page.Total <= s.bounds.few {
			from, conds, args = "clients INDEXED BY clients_flags", fc, fa
		}
	}

	col := q.order()
	desc := q.Desc && q.searchMode() == ""
	backwards := q.Before != nil
	// The direction rows are read in: forwards in the sort order, or
	// backwards from Before (then reversed).
	readDesc := desc != backwards
	cmp, dir := ">", "ASC"
	if readDesc {
		cmp, dir = "<", "DESC"
	}
	cursor := q.After
	if backwards {
		cursor = q.Before
	}
	// The tie-breaker (and, for a substring search, the only key): the
	// search index's rowid when searching, so that FTS5 reads its matches
	// in rowid order and stops after a page (ordering by clients.id would
	// read and sort every match first).
	idCol := "clients.id"
	if q.searchMode() == "trigram" {
		idCol = "clients_fts.rowid"
	}
	// Each part is one index seek; the page is the first Limit+1 rows of
	// the parts in turn.
	type part struct {
		conds   []string
		args    []any
		orderBy string
	}
	var parts []part
	switch {
	case cursor == nil:
		orderBy := idCol + " " + dir
		if col != "" {
			orderBy = col + " " + dir + ", " + idCol + " " + dir
		}
		parts = []part{{conds, args, orderBy}}
	case col == "":
		parts = []part{{append(conds, idCol+" "+cmp+" ?"), append(args, cursor.ID), idCol + " " + dir}}
	default:
		// The rest of the cursor's tie group (same sort key, by id), then
		// the keys beyond it. A row-value comparison (col, id) > (?, ?)
		// would seek on the sort key alone (SQLite cannot extend a vector
		// range onto the rowid), reading every tied row before the cursor
		// again: half a million rows on a balance of 0.
		v := sortValue(cursor, col)
		parts = []part{
			{append(slices.Clone(conds), col+" = ?", "clients.id "+cmp+" ?"), append(slices.Clone(args), v, cursor.ID), "clients.id " + dir},
			{append(slices.Clone(conds), col+" "+cmp+" ?"), append(slices.Clone(args), v), col + " " + dir + ", clients.id " + dir},
		}
	}
	for _, p := range parts {
		need := q.Limit + 1 - len(page.Clients)
		if need <= 0 {
			break
		}
		where := ""
		if len(p.conds) > 0 {
			where = " WHERE " + strings.Join(p.conds, " AND ")
		}
		query := `SELECT ` + clientCols + ` FROM ` + from + where + ` ORDER BY ` + p.orderBy + ` LIMIT ?`
		if q.searchMode() == "trigram" {
			// Two phases: the page's ids from the search index and the
			// flags index (searchFrom), then the full rows of just those.
			query = `SELECT ` + clientCols + ` FROM (SELECT clients_fts.rowid AS id FROM ` + searchFrom(len(filterConds) > 1) + where +
				` ORDER BY ` + p.orderBy + ` LIMIT ?) AS page JOIN clients ON clients.id = page.id ORDER BY clients.id ` + dir
		}
		cs, err := s.queryClients(ctx, query, append(p.args, need)...)
		if err != nil {
			return ClientPage{}, err
		}
		page.Clients = append(page.Clients, cs...)
	}
	if len(page.Clients) > q.Limit {
		page.Clients, page.More = page.Clients[:q.Limit], true
	}
	if backwards {
		slices.Reverse(page.Clients)
	}
	switch {
	case counted:
		return page, nil
	case cursor == nil && !page.More:
		// The first page holds every match.
		page.Total, page.TotalExact = int64(len(page.Clients)), true
		return page, nil
	}
	var err error
	switch {
	case q.searchMode() == "trigram" && len(filterConds) == 1:
		// The search alone: counted in its index, without reading a client.
		page.Total, page.TotalExact, err = s.countClients(ctx, "clients_fts", filterConds, filterArgs)
	case q.searchMode() == "trigram":
		page.Total, page.TotalExact, err = s.countSearch(ctx, filterArgs[0], filterConds[1:], filterArgs[1:])
		if cursor == nil && !page.TotalExact {
			// A lower bound, and the first page alone shows as many (a
			// selective filter: its matches lie beyond the rows counted).
			page.Total = max(page.Total, int64(len(page.Clients)))
		}
	default:
		page.Total, page.TotalExact, err = s.countClients(ctx, from, filterConds, filterArgs)
	}
	return page, err
}

// searchFrom is the FROM clause that finds the ids of a substring search's
// matches: the search index alone, or with flag filters joined to the flags
// index, sought by (deleted, delinquent, livemode, rowid). A selective
// filter (delinquent clients) makes a page probe a thousand matches: in the
// clients table each probe read a wide row at a random place; the flags
// index keeps a filter's clients together in a few pages that stay cached.
func searchFrom(flags bool) string {
	if !flags {
		return "clients_fts"
	}
	return "clients_fts JOIN clients INDEXED BY clients_flags ON clients.id = clients_fts.rowid"
}

// clientBounds are the thresholds ListClients works with. Each Store
// holds its own (defaultClientBounds), so that a test can lower them for
// its store alone and small tables take the paths of big ones.
type clientBounds struct {
	// few is how many matches of a filter are read from the flags index
	// and sorted, rather than found by walking a sort index.
	few int64
	// countCap bounds the count of a filtered query: beyond it the total
	// is shown as "more than". Counting reads one index entry per match:
	// at a million clients 10,000 matches of "example.com" took 9 ms to
	// count; 1,000 take a tenth of that.
	countCap int64
	// A substring search with a filter is counted by countSearch within
	// tighter bounds, as it reads a client row per match: searchCap is
	// where the count stops ("more than"); searchRows is how many of the
	// search's matches (client rows) it reads at most, so that a selective
	// filter cannot make it read every match.
	searchCap, searchRows int64
}

var defaultClientBounds = clientBounds{few: 1000, countCap: 1000, searchCap: 200, searchRows: 500}

type flagFilter struct {
	col string
	v   *bool
}

// flags are the query's flag filters in the order of the flags index.
func (q ClientQuery) flags() []flagFilter {
	return []flagFilter{{"deleted", q.Deleted}, {"delinquent", q.Delinquent}, {"livemode", q.Livemode}}
}

// flagIndexConds are the flag filters as conditions that seek the flags
// index (deleted, delinquent, livemode): a flag not filtered on before one
// that is becomes "IN (0, 1)". None when no flag is filtered on.
func (q ClientQuery) flagIndexConds() ([]string, []any) {
	fs := q.flags()
	last := -1
	for i, f := range fs {
		if f.v != nil {
			last = i
		}
	}
	var conds []string
	var args []any
	for _, f := range fs[:last+1] {
		if f.v == nil {
			conds = append(conds, "clients."+f.col+" IN (0, 1)")
			continue
		}
		conds = append(conds, "clients."+f.col+" = ?")
		args = append(args, *f.v)
	}
	return conds, args
}

func (s *Store) queryClients(ctx context.Context, query string, args ...any) ([]Client, error) {
	rows, err := s.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list clients: %w", err)
	}
	return scanRows(rows, scanClient)
}

// countClients counts matches up to bounds.countCap; the unfiltered total is
// estimated from the largest row id (rows are never deleted).
func (s *Store) countClients(ctx context.Context, from string, conds []string, args []any) (int64, bool, error) {
	if len(conds) == 0 {
		var n sql.NullInt64
		err := s.rdb.QueryRowContext(ctx, `SELECT max(id) FROM clients`).Scan(&n)
		return n.Int64, false, err
	}
	var n int64
	err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM `+from+` WHERE `+strings.Join(conds, " AND ")+` LIMIT ?)`,
		append(args, s.bounds.countCap+1)...).Scan(&n)
	if err != nil {
		return 0, false, fmt.Errorf("store: count clients: %w", err)
	}
	if n > s.bounds.countCap {
		return s.bounds.countCap, false, nil
	}
	return n, true, nil
}

// countSearch counts the clients that match a substring search (match,
// an FTS5 query) and flag filters (conds, args: every flag, as the flags
// index is sought). The search index holds no flags, so each match costs a
// seek of the flags index by rowid (it cost a read of the wide client row,
// at a random place in a big table, until the flags index took over: at a
// million clients about 4 µs each, so the 14,000 matches of "smith" took
// 60 ms to count among delinquent clients).
// The count stops after bounds.searchCap matching clients ("more than"),
// and reads at most the first bounds.searchRows matches of the search, in
// the order the pages read them: exact when the search has no more
// matches than that, else a lower bound.
func (s *Store) countSearch(ctx context.Context, match any, conds []string, args []any) (int64, bool, error) {
	var found int64
	err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1
		FROM (SELECT rowid FROM clients_fts WHERE clients_fts MATCH ? ORDER BY rowid LIMIT ?) AS m
		JOIN clients INDEXED BY clients_flags ON clients.id = m.rowid
		WHERE `+strings.Join(conds, " AND ")+` LIMIT ?)`,
		append([]any{match, s.bounds.searchRows}, append(slices.Clone(args), s.bounds.searchCap+1)...)...).Scan(&found)
	if err != nil {
		return 0, false, fmt.Errorf("store: count clients: %w", err)
	}
	if found > s.bounds.searchCap {
		return s.bounds.searchCap, false, nil
	}
	// Whether the rows read were all the search's matches: counted in the
	// search index alone.
	var matches int64
	err = s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM clients_fts WHERE clients_fts MATCH ? LIMIT ?)`,
		match, s.bounds.searchRows+1).Scan(&matches)
	if err != nil {
		return 0, false, fmt.Errorf("store: count clients: %w", err)
	}
	return found, matches <= s.bounds.searchRows, nil
}

// ClientAudit returns the newest audit rows about a client.
func (s *Store) ClientAudit(ctx context.Context, customerID string, limit int) ([]Event, error) {
	if limit <= 0 || limit > 200 {
		limit = 50
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit WHERE target = ? AND target GLOB 'cus_*' ORDER BY id DESC LIMIT ?`, customerID, limit)
	if err != nil {
		return nil, err
	}
	return scanRows(rows, scanEvent)
}
