package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Webhook outcomes: of an attempt, and (all but duplicate and rejected) of
// an event.
const (
	WebhookProcessed = "processed"
	WebhookDuplicate = "duplicate"
	WebhookIgnored   = "ignored"
	WebhookFailed    = "failed"
	WebhookRejected  = "rejected"
)

// ActionWebhookReplayed is audited when staff reprocess a stored event.
const ActionWebhookReplayed = "webhook.replayed"

// RejectedPerMinute is how many rejected attempts are stored per source
// address and minute; beyond it they are only counted, so that a flood of
// forged requests cannot fill the disk.
const RejectedPerMinute = 100

// WebhookAttempt is one delivery of a request to the webhook endpoint.
type WebhookAttempt struct {
	ID         int64
	EventID    string // empty for a rejected attempt
	ReceivedAt time.Time
	RemoteAddr string
	Headers    map[string]string // selected headers (never a secret)
	Outcome    string
	Reason     string // why it was rejected
	Error      string // why processing failed
}

// IncomingEvent is a verified Stripe event as the endpoint received it.
type IncomingEvent struct {
	EventID    string
	Type       string
	APIVersion string
	Livemode   bool
	Created    time.Time // Stripe's created
	CustomerID string    // the customer the event is about, when any
	Payload    []byte    // the verified body
	Secret     string    // which configured secret verified it (a label, never the secret)
	// Object is the payload's data.object when the endpoint has read it
	// already (processors need not parse the payload again); empty on a
	// replay. It is not stored.
	Object json.RawMessage
	// packed is Payload as stored (compressed), when the caller of the
	// writer prepared it; nil: the writer packs Payload itself.
	packed []byte
}

// WebhookEvent is a stored event with its latest status.
type WebhookEvent struct {
	ID         int64 // local row id (order of first receipt)
	EventID    string
	Type       string
	APIVersion string
	Livemode   bool
	Created    time.Time
	CustomerID string
	Status     string // WebhookProcessed, WebhookIgnored or WebhookFailed
	Error      string
	Payload    []byte
	Secret     string
	Attempts   int
	ReceivedAt time.Time // first delivery
	UpdatedAt  time.Time // last delivery or replay
}

// BillingEvent is a customer's billing activity, linked from an event:
// an invoice paid or failed, a refund, a subscription change.
type BillingEvent struct {
	EventID    string
	CustomerID string
	Type       string
	ObjectID   string // in_…, ch_…, sub_…
	Amount     int64  // minor units
	Currency   string
	Status     string
	Created    time.Time
	Summary    string // one line for staff
}

// WebhookEffect is what processing an event does to Backroom's records.
// Processors compute it from the payload alone; the store applies it in
// the transaction that records the event.
type WebhookEffect struct {
	Ignored bool          // a type Backroom does not act on
	Client  *ClientData   // a customer to upsert (newer data wins)
	Billing *BillingEvent // billing activity to record
}

// Processor turns a verified event's payload into its effect. An error
// makes the event failed (Stripe will retry; staff can replay).
type Processor func(ev IncomingEvent) (WebhookEffect, error)

// ReceiveWebhook records a verified event and, unless it was already
// processed or ignored (a duplicate: no second effect), applies its
// effect, in one transaction committed before it returns — so that
// nothing the endpoint acknowledges can be lost. A processing failure
// leaves the event stored as failed (a later delivery or a replay
// processes it again). The outcome is one of processed, duplicate, ignored
// and failed.
func (s *Store) ReceiveWebhook(ctx context.Context, att WebhookAttempt, ev IncomingEvent, process Processor) (string, error) {
	if ev.EventID == "" || ev.Type == "" {
		return "", errorf(CodeInvalid, "the event has no id or type")
	}
	// Processors are pure: run them, and compress the payload, before
	// taking the write lock.
	effect, perr := runProcessor(process, ev)
	ev.packed = s.packer.pack(ev.Payload)
	headers := headersJSON(att.Headers)
	var outcome string
	// Re-runnable: the closure works on copies and sets outcome afresh.
	err := s.writeRerunnable(ctx, func(tx *wtx) error {
		ev, att := ev, att
		row, status, err := tx.webhookStatus(ctx, ev.EventID)
		if err != nil {
			return err
		}
		att.EventID = ev.EventID
		if status == WebhookProcessed || status == WebhookIgnored {
			outcome = WebhookDuplicate
			att.Outcome = outcome
			if _, err := tx.ExecContext(ctx, `UPDATE webhook_events SET attempts = attempts + 1, updated_at = ? WHERE id = ?`,
				s.now().UnixMilli(), row); err != nil {
				return err
			}
			return tx.insertAttempt(ctx, att, headers, row)
		}
		outcome, att.Error, err = tx.applyEffect(ctx, &ev, effect, perr, row == 0)
		if err != nil {
			return err
		}
		att.Outcome = outcome
		inserted, err := tx.upsertEvent(ctx, ev, outcome, att.Error, true)
		if err != nil {
			return err
		}
		if row == 0 {
			row = inserted
		}
		return tx.insertAttempt(ctx, att, headers, row)
	})
	return outcome, err
}

func runProcessor(process Processor, ev IncomingEvent) (eff WebhookEffect, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("processing panicked: %v", r)
		}
	}()
	return process(ev)
}

// webhookStatus returns a stored event's row and status ("" when it is
// not stored).
func (tx *wtx) webhookStatus(ctx context.Context, eventID string) (row int64, status string, err error) {
	err = tx.QueryRowContext(ctx, `SELECT id, status FROM webhook_events WHERE event_id = ?`, eventID).Scan(&row, &status)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", nil
	}
	return row, status, err
}

// applyEffect applies a processor's effect. A failure to apply it undoes
// the effect but keeps the transaction, so that the event is still
// recorded, as failed: under a savepoint, or, when the transaction runs
// without savepoints (tx.fast), by returning errNeedsSavepoint for the
// writer to run the caller again with one. It scrubs the payload when the
// event is about a forgotten client.
func (tx *wtx) applyEffect(ctx context.Context, ev *IncomingEvent, eff WebhookEffect, perr error, fresh bool) (outcome, errText string, err error) {
	if ev.CustomerID == "" && eff.Client != nil {
		ev.CustomerID = eff.Client.CustomerID
	}
	if ev.CustomerID == "" && eff.Billing != nil {
		ev.CustomerID = eff.Billing.CustomerID
	}
	// The client, read once: whether it was forgotten, and what the
	// upsert compares with.
	var cur Client
	exists := false
	if ev.CustomerID != "" {
		if cur, exists, err = findClient(ctx, tx, ev.CustomerID); err != nil {
			return "", "", err
		}
		if exists && cur.Forgotten() {
			ev.Payload, ev.packed = ScrubPersonalData(ev.Payload), nil
		}
	}
	if eff.Client != nil && eff.Client.CustomerID != ev.CustomerID {
		// An upsert of another customer reads its own (never the case of
		// Stripe's events).
		if cur, exists, err = findClient(ctx, tx, eff.Client.CustomerID); err != nil {
			return "", "", err
		}
	}
	if perr != nil {
		return WebhookFailed, clip(perr.Error(), 500), nil
	}
	if eff.Ignored || (eff.Client == nil && eff.Billing == nil) {
		return WebhookIgnored, "", nil
	}
	// Checks first: a refused effect has written nothing to undo.
	if eff.Client != nil {
		if err := checkClientData(*eff.Client); err != nil {
			return WebhookFailed, clip(ErrorMessage(err), 500), nil
		}
	}
	if b := eff.Billing; b != nil && (b.CustomerID == "" || b.EventID == "") {
		return WebhookFailed, "the billing event names no customer", nil
	}
	if tx.fast {
		if err := tx.writeEffect(ctx, eff, cur, exists, fresh); err != nil {
			return "", "", errNeedsSavepoint
		}
		return WebhookProcessed, "", nil
	}
	if _, err := tx.Tx.ExecContext(context.WithoutCancel(ctx), `SAVEPOINT effect`); err != nil {
		return WebhookFailed, "could not start applying the event: " + err.Error(), nil
	}
	if err := tx.writeEffect(ctx, eff, cur, exists, fresh); err != nil {
		_, _ = tx.Tx.ExecContext(context.WithoutCancel(ctx), `ROLLBACK TO effect`)
		_, _ = tx.Tx.ExecContext(context.WithoutCancel(ctx), `RELEASE effect`)
		return WebhookFailed, clip(err.Error(), 500), nil
	}
	if _, err := tx.Tx.ExecContext(context.WithoutCancel(ctx), `RELEASE effect`); err != nil {
		return WebhookFailed, err.Error(), nil
	}
	return WebhookProcessed, "", nil
}

// writeEffect writes a checked effect: the client upsert (newer data
// wins) over cur, the client as read (when exists), and the billing row
// (once per event: unless the event is fresh, stored for the first time,
// the row is written only if the event has none yet).
func (tx *wtx) writeEffect(ctx context.Context, eff WebhookEffect, cur Client, exists, fresh bool) error {
	if eff.Client != nil {
		if _, err := tx.upsertClientOver(ctx, *eff.Client, SourceWebhook, cur, exists); err != nil {
			return err
		}
	}
	if b := eff.Billing; b != nil {
		// billing_events has no unique index on event_id (one more write
		// at a random place per event, for the rare replay): a stored
		// event's row is looked for among its customer's.
		guard := ` WHERE NOT EXISTS (SELECT 1 FROM billing_events WHERE customer_id = ? AND event_id = ?)`
		args := []any{b.EventID, b.CustomerID, b.Type, b.ObjectID, b.Amount, b.Currency, b.Status, unixOrZero(b.Created), clip(b.Summary, 300)}
		if fresh {
			guard = ""
		} else {
			args = append(args, b.CustomerID, b.EventID)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO billing_events (event_id, customer_id, type, object_id, amount,
			currency, status, stripe_created, summary) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?`+guard, args...); err != nil {
			return err
		}
	}
	return nil
}

// upsertEvent stores the event with its status; a delivery (not a
// replay) counts as an attempt. It returns the row of an event it
// inserted (of one it updated: whatever row was inserted last).
func (tx *wtx) upsertEvent(ctx context.Context, ev IncomingEvent, status, errText string, delivery bool) (int64, error) {
	now := tx.s.now().UnixMilli()
	var processed any
	if status != WebhookFailed {
		processed = now
	}
	inc := 0
	if delivery {
		inc = 1
	}
	stored := ev.packed
	if stored == nil {
		stored = tx.s.packer.pack(ev.Payload)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO webhook_events (event_id, type, api_version, livemode, stripe_created,
		customer_id, status, error, payload, secret, attempts, received_at, updated_at, processed_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (event_id) DO UPDATE SET status = excluded.status, error = excluded.error,
			payload = excluded.payload, customer_id = excluded.customer_id,
			secret = CASE WHEN excluded.secret != '' THEN excluded.secret ELSE webhook_events.secret END,
			attempts = webhook_events.attempts + ?, updated_at = excluded.updated_at,
			processed_at = coalesce(excluded.processed_at, webhook_events.processed_at)`,
		ev.EventID, ev.Type, ev.APIVersion, ev.Livemode, unixOrZero(ev.Created), ev.CustomerID, status, errText,
		stored, ev.Secret, inc, now, now, processed, inc)
	if err != nil {
		return 0, fmt.Errorf("store: record event: %w", err)
	}
	return res.LastInsertId()
}

// insertAttempt records a delivery of the event of row eventRow (0 for a
// rejected attempt: no event), with its headers as headersJSON wrote them.
func (tx *wtx) insertAttempt(ctx context.Context, a WebhookAttempt, headers string, eventRow int64) error {
	var row any
	if eventRow > 0 {
		row = eventRow
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO webhook_attempts (event_id, event_row, received_at, remote_addr, headers, outcome, reason, error)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		a.EventID, row, a.ReceivedAt.UnixMilli(), a.RemoteAddr, headers, a.Outcome, clip(a.Reason, 300), clip(a.Error, 500))
	if err != nil {
		return fmt.Errorf("store: record attempt: %w", err)
	}
	return nil
}

// headersJSON is how an attempt's headers are stored. Callers of the
// writer encode them before they submit their write: the writer's time is
// the store's scarcest.
func headersJSON(h map[string]string) string {
	if len(h) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(h)
	return string(b)
}

// RecordRejected records a request that failed verification (bad
// signature, stale timestamp, malformed body…). At most RejectedPerMinute
// are stored per source address and minute; the rest are only counted.
// stored reports which.
func (s *Store) RecordRejected(ctx context.Context, att WebhookAttempt, reason string) (stored bool, err error) {
	source := att.RemoteAddr
	if i := strings.LastIndex(source, ":"); i > 0 && strings.Count(source, ":") == 1 {
		source = source[:i] // host of host:port
	} else if strings.HasPrefix(source, "[") {
		if j := strings.Index(source, "]"); j > 0 {
			source = source[1:j]
		}
	}
	minute := att.ReceivedAt.Unix() / 60
	headers := headersJSON(att.Headers)
	// Re-runnable: the closure sets stored afresh and works on a copy.
	err = s.writeRerunnable(ctx, func(tx *wtx) error {
		att := att
		var n int
		err := tx.QueryRowContext(ctx, `INSERT INTO webhook_rejections (source, minute, stored, dropped) VALUES (?, ?, 1, 0)
			ON CONFLICT (source, minute) DO UPDATE SET
				stored = stored + (stored < ?),
				dropped = dropped + (stored >= ?)
			RETURNING stored + dropped`, source, minute, RejectedPerMinute, RejectedPerMinute).Scan(&n)
		if err != nil {
			return fmt.Errorf("store: count rejection: %w", err)
		}
		if n > RejectedPerMinute {
			stored = false
			return nil
		}
		stored = true
		att.EventID, att.Outcome, att.Reason = "", WebhookRejected, reason
		return tx.insertAttempt(ctx, att, headers, 0)
	})
	return stored, err
}

// ReplayWebhook processes a stored event again (staff), applying its
// effect as a delivery would, and audits webhook.replayed with the new
// outcome, which it returns. Effects are idempotent (newer-wins upserts,
// one billing row per event), so replaying a processed event changes
// nothing.
func (s *Store) ReplayWebhook(ctx context.Context, a Actor, eventID string, process Processor) (string, error) {
	r, err := s.ReplayWebhookDetail(ctx, a, eventID, process)
	return r.Outcome, err
}

// WebhookReplay is what a replay did to an event.
type WebhookReplay struct {
	Type    string // the event's type
	Before  string // its status before the replay
	Outcome string // its status after
	Error   string // why it failed, when Outcome is failed
}

// ReplayWebhookDetail is ReplayWebhook, returning what the replay did.
// The event is read, processed and written in one write transaction, so
// that what is reported is what was replayed, whatever deliveries of the
// same event do meanwhile.
func (s *Store) ReplayWebhookDetail(ctx context.Context, a Actor, eventID string, process Processor) (WebhookReplay, error) {
	var r WebhookReplay
	err := s.write(ctx, func(tx *wtx) error {
		ev, err := getWebhook(ctx, tx, eventID)
		if err != nil {
			return err
		}
		in := IncomingEvent{EventID: ev.EventID, Type: ev.Type, APIVersion: ev.APIVersion, Livemode: ev.Livemode,
			Created: ev.Created, CustomerID: ev.CustomerID, Payload: ev.Payload, Secret: ev.Secret}
		effect, perr := runProcessor(process, in)
		outcome, errText, err := tx.applyEffect(ctx, &in, effect, perr, false)
		if err != nil {
			return err
		}
		if _, err := tx.upsertEvent(ctx, in, outcome, errText, false); err != nil {
			return err
		}
		if err := tx.audit(ctx, a, ActionWebhookReplayed, eventID, Detail{
			"event_id": eventID, "type": ev.Type, "before": ev.Status, "outcome": outcome,
		}); err != nil {
			return err
		}
		r = WebhookReplay{Type: ev.Type, Before: ev.Status, Outcome: outcome, Error: errText}
		return nil
	})
	if err != nil {
		return WebhookReplay{}, err
	}
	return r, nil
}

// --- reading ---------------------------------------------------------------

const webhookColumns = `id, event_id, type, api_version, livemode, stripe_created, customer_id, status, error, payload,
	secret, attempts, received_at, updated_at`

func scanWebhook(sc interface{ Scan(...any) error }, withPayload bool) (WebhookEvent, error) {
	var e WebhookEvent
	var created, received, updated int64
	var payload []byte
	err := sc.Scan(&e.ID, &e.EventID, &e.Type, &e.APIVersion, &e.Livemode, &created, &e.CustomerID, &e.Status,
		&e.Error, &payload, &e.Secret, &e.Attempts, &received, &updated)
	if err != nil {
		return e, err
	}
	if withPayload {
		if e.Payload, err = unpackPayload(payload); err != nil {
			return e, err
		}
	}
	if created != 0 {
		e.Created = time.Unix(created, 0).UTC()
	}
	e.ReceivedAt, e.UpdatedAt = time.UnixMilli(received).UTC(), time.UnixMilli(updated).UTC()
	return e, nil
}

// GetWebhook returns a stored event with its payload.
func (s *Store) GetWebhook(ctx context.Context, eventID string) (WebhookEvent, error) {
	return getWebhook(ctx, s.rdb, eventID)
}

func getWebhook(ctx context.Context, q queryRower, eventID string) (WebhookEvent, error) {
	e, err := scanWebhook(q.QueryRowContext(ctx, `SELECT `+webhookColumns+` FROM webhook_events WHERE event_id = ?`, eventID), true)
	if errors.Is(err, sql.ErrNoRows) {
		return e, errorf(CodeNotFound, "no webhook event %s", clip(eventID, 60))
	}
	return e, err
}

// WebhookAttempts lists the deliveries of an event, oldest first.
// (Rejected attempts belong to no event: the empty id lists nothing.)
func (s *Store) WebhookAttempts(ctx context.Context, eventID string) ([]WebhookAttempt, error) {
	// event_row IS NOT NULL matches the partial index's condition, so
	// that the index is used (without it SQLite scans every attempt).
	rows, err := s.rdb.QueryContext(ctx, `SELECT id, event_id, received_at, remote_addr, headers, outcome, reason, error
		FROM webhook_attempts WHERE event_row = (SELECT id FROM webhook_events WHERE event_id = ?) AND event_row IS NOT NULL
		ORDER BY id LIMIT 1000`, eventID)
	if err != nil {
		return nil, err
	}
	return scanAttempts(rows)
}

func scanAttempts(rows *sql.Rows) ([]WebhookAttempt, error) {
	defer rows.Close()
	var out []WebhookAttempt
	for rows.Next() {
		var a WebhookAttempt
		var received int64
		var headers string
		if err := rows.Scan(&a.ID, &a.EventID, &received, &a.RemoteAddr, &headers, &a.Outcome, &a.Reason, &a.Error); err != nil {
			return nil, err
		}
		a.ReceivedAt = time.UnixMilli(received).UTC()
		_ = json.Unmarshal([]byte(headers), &a.Headers)
		out = append(out, a)
	}
	return out, rows.Err()
}

// WebhookQuery selects stored events, newest first. Zero fields do not
// filter.
type WebhookQuery struct {
	Status   string
	Type     string // exact type, or a prefix ending in "." or "*" (customer.subscription.*)
	Search   string // an event id or a customer id (or a prefix of one)
	BeforeID int64  // keyset paging: older than this row
	AfterID  int64  // keyset paging: newer than this row
	Limit    int    // default 50, at most 1000; ListWebhooks with 0 pages through all in the CLI
}

// ListWebhooks returns one page of events (without payloads).
func (s *Store) ListWebhooks(ctx context.Context, q WebhookQuery) ([]WebhookEvent, error) {
	if q.Limit <= 0 {
		q.Limit = 50
	}
	if q.Limit > 1000 {
		q.Limit = 1000
	}
	var conds []string
	var args []any
	if q.Status != "" {
		switch q.Status {
		case WebhookProcessed, WebhookIgnored, WebhookFailed:
		default:
			return nil, errorf(CodeInvalid, "status %q is not processed, ignored or failed", clip(q.Status, 20))
		}
		// A literal (checked above), so that the planner can use the
		// partial index of failed events.
		conds = append(conds, "status = '"+q.Status+"'")
	}
	if t := q.Type; t != "" {
		if p, ok := strings.CutSuffix(t, "*"); ok || strings.HasSuffix(t, ".") {
			if ok {
				t = p
			}
			conds = append(conds, "type >= ? AND type < ?")
			args = append(args, t, t+"\U0010FFFF")
		} else {
			conds = append(conds, "type = ?")
			args = append(args, t)
		}
	}
	if q.Search != "" {
		p := escapeLike(strings.TrimSpace(q.Search)) + "%"
		conds = append(conds, `(event_id LIKE ? ESCAPE '\' OR customer_id LIKE ? ESCAPE '\')`)
		args = append(args, p, p)
	}
	order := "DESC"
	if q.BeforeID > 0 {
		conds = append(conds, "id < ?")
		args = append(args, q.BeforeID)
	}
	if q.AfterID > 0 {
		conds = append(conds, "id > ?")
		args = append(args, q.AfterID)
		order = "ASC"
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	// Failed events are found on their own index, a search on those of
	// event and customer ids; other filters scan the narrow index of
	// (id, status, type) backwards and read only the rows that match.
	from := "webhook_events"
	if q.Search == "" && q.Status != WebhookFailed && (q.Status != "" || q.Type != "") {
		from = "webhook_events INDEXED BY webhook_events_kinds"
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+strings.Replace(webhookColumns, "payload", "x''", 1)+
		` FROM `+from+where+` ORDER BY id `+order+` LIMIT ?`, append(args, q.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("store: list webhooks: %w", err)
	}
	defer rows.Close()
	var out []WebhookEvent
	for rows.Next() {
		e, err := scanWebhook(rows, false)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if order == "ASC" {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out, nil
}

// ListRejected returns rejected attempts, newest first.
func (s *Store) ListRejected(ctx context.Context, beforeID int64, limit int) ([]WebhookAttempt, error) {
	if limit <= 0 || limit > 1000 {
		limit = 50
	}
	cond, args := "", []any{}
	if beforeID > 0 {
		cond, args = " AND id < ?", append(args, beforeID)
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT id, event_id, received_at, remote_addr, headers, outcome, reason, error
		FROM webhook_attempts WHERE outcome = 'rejected'`+cond+` ORDER BY id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	return scanAttempts(rows)
}

// RejectedDropped is how many rejected attempts were counted but not
// stored (over the per-minute cap) since the given time.
func (s *Store) RejectedDropped(ctx context.Context, since time.Time) (int64, error) {
	var n sql.NullInt64
	err := s.rdb.QueryRowContext(ctx, `SELECT sum(dropped) FROM webhook_rejections WHERE minute >= ?`, since.Unix()/60).Scan(&n)
	return n.Int64, err
}

// CountFailedWebhooks is how many events await review (failed).
func (s *Store) CountFailedWebhooks(ctx context.Context) (int, error) {
	var n int
	err := s.queryRow(ctx, `SELECT count(*) FROM webhook_events WHERE status = 'failed'`).Scan(&n)
	return n, err
}

// BillingEvents returns a client's recent billing activity, newest first.
func (s *Store) BillingEvents(ctx context.Context, customerID string, limit int) ([]BillingEvent, error) {
	if limit <= 0 || limit > 200 {
		limit = 20
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT event_id, customer_id, type, object_id, amount, currency, status, stripe_created, summary
		FROM billing_events WHERE customer_id = ? ORDER BY stripe_created DESC, id DESC LIMIT ?`, customerID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []BillingEvent
	for rows.Next() {
		var b BillingEvent
		var created int64
		if err := rows.Scan(&b.EventID, &b.CustomerID, &b.Type, &b.ObjectID, &b.Amount, &b.Currency, &b.Status, &created, &b.Summary); err != nil {
			return nil, err
		}
		if created != 0 {
			b.Created = time.Unix(created, 0).UTC()
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// PruneWebhooks deletes attempts, events and rejection counters older
// than before (the retention). Event ids live as long as their last
// delivery is within the retention, so a late retry is still a duplicate.
// It works in batches so that it never holds the write lock for long.
//
// Rows are found in id order, which is the order they were received in:
// no index on their times slows down every delivery for the sake of a
// background job (migration 10). Only rows older than the first one
// received after the cut are candidates; a row stored a moment out of
// order waits for the next prune.
func (s *Store) PruneWebhooks(ctx context.Context, before time.Time) (int64, error) {
	cut := before.UnixMilli()
	var total int64
	for _, p := range []struct{ bound, prune string }{
		{`SELECT id FROM webhook_attempts WHERE received_at >= ? ORDER BY id LIMIT 1`,
			`DELETE FROM webhook_attempts WHERE id IN (SELECT id FROM webhook_attempts WHERE id < ? AND received_at < ? ORDER BY id LIMIT 5000)`},
		{`SELECT id FROM webhook_events WHERE received_at >= ? ORDER BY id LIMIT 1`,
			`DELETE FROM webhook_events WHERE id IN (SELECT id FROM webhook_events WHERE id < ? AND updated_at < ? ORDER BY id LIMIT 5000)`},
		{``,
			`DELETE FROM webhook_rejections WHERE rowid IN (SELECT rowid FROM webhook_rejections WHERE minute < ? / 60000 LIMIT 5000)`},
	} {
		args := []any{cut}
		if p.bound != "" {
			bound := int64(math.MaxInt64) // none received after the cut
			err := s.rdb.QueryRowContext(ctx, p.bound, cut).Scan(&bound)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return total, fmt.Errorf("store: prune webhooks: %w", err)
			}
			args = []any{bound, cut}
		}
		for {
			var n int64
			err := s.write(ctx, func(tx *wtx) error {
				r, err := tx.ExecContext(ctx, p.prune, args...)
				if err != nil {
					return err
				}
				n, _ = r.RowsAffected()
				return nil
			})
			if err != nil {
				return total, fmt.Errorf("store: prune webhooks: %w", err)
			}
			total += n
			if n < 5000 {
				break
			}
		}
	}
	return total, nil
}

// --- personal data in payloads ------------------------------------------------

// personalKeys are the JSON keys whose values are personal data in Stripe
// objects (customers, invoices, charges): they are blanked in stored
// payloads of a forgotten client.
var personalKeys = map[string]bool{
	"name": true, "email": true, "phone": true, "description": true, "address": true, "shipping": true,
	"metadata": true, "customer_name": true, "customer_email": true, "customer_phone": true,
	"customer_address": true, "customer_shipping": true, "billing_details": true, "receipt_email": true,
	"line1": true, "line2": true, "city": true, "postal_code": true, "state": true,
}

// ScrubPersonalData removes personal fields (names, emails, phones,
// addresses, descriptions, metadata) from a JSON payload, at any depth.
// A payload that is not JSON is replaced by an empty object.
func ScrubPersonalData(payload []byte) []byte {
	var v any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return []byte("{}")
	}
	v = scrub(v)
	out, err := json.Marshal(v)
	if err != nil {
		return []byte("{}")
	}
	return out
}

func scrub(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			if personalKeys[k] {
				t[k] = nil
				continue
			}
			t[k] = scrub(val)
		}
		return t
	case []any:
		for i := range t {
			t[i] = scrub(t[i])
		}
		return t
	}
	return v
}

// scrubWebhooksOf blanks personal data in every stored payload about a
// customer (on forgetting them).
func (tx *wtx) scrubWebhooksOf(ctx context.Context, customerID string) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, payload FROM webhook_events WHERE customer_id = ?`, customerID)
	if err != nil {
		return err
	}
	type row struct {
		id      int64
		payload []byte
	}
	var todo []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.payload); err != nil {
			rows.Close()
			return err
		}
		todo = append(todo, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, r := range todo {
		body, err := unpackPayload(r.payload)
		if err != nil {
			return err
		}
		scrubbed := tx.s.packer.pack(ScrubPersonalData(body))
		if _, err := tx.ExecContext(ctx, `UPDATE webhook_events SET payload = ? WHERE id = ?`, scrubbed, r.id); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, `UPDATE billing_events SET summary = '' WHERE customer_id = ?`, customerID)
	return err
}
