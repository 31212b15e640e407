package store

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Audit actions written by Backroom.
const (
	ActionLoginSuccess          = "login.success"
	ActionLoginFailure          = "login.failure"
	ActionLoginLocked           = "login.locked"
	ActionLoginRecoveryCode     = "login.recovery_code"
	ActionSessionStart          = "session.start"
	ActionSessionEnd            = "session.end"
	ActionSessionTerminated     = "session.terminated"
	ActionTOTPEnrolled          = "totp.enrolled"
	ActionTOTPReset             = "totp.reset"
	ActionStaffAdded            = "staff.added"
	ActionStaffKeyAdded         = "staff.key_added"
	ActionStaffKeyRemoved       = "staff.key_removed"
	ActionStaffRemoved          = "staff.removed"
	ActionStaffUnlocked         = "staff.unlocked"
	ActionStaffRoleChanged      = "staff.role_changed"
	ActionAuthorizedKeysChanged = "authorized_keys.changed"
	ActionKeyUpdated            = "key.updated"
	ActionAuditExported         = "audit.exported"
)

// TimeFormat is the audit log's time format: RFC 3339, UTC, milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// Detail is the JSON object stored with an audit row. It never holds
// secrets or client personal data.
type Detail map[string]any

// Event is one row of the audit log.
type Event struct {
	ID         int64     `json:"id"`
	Time       time.Time `json:"-"`
	Actor      string    `json:"actor"`
	Action     string    `json:"action"`
	Target     string    `json:"target"`
	Detail     string    `json:"-"` // a JSON object
	RemoteAddr string    `json:"remote_addr"`
	SessionID  string    `json:"session_id"`
	Channel    string    `json:"channel"`
	Hash       string    `json:"hash"`
}

// MarshalJSON writes the export form: time as RFC 3339 text, detail as an
// object.
func (e Event) MarshalJSON() ([]byte, error) {
	detail := json.RawMessage(e.Detail)
	if len(detail) == 0 {
		detail = json.RawMessage("{}")
	}
	return json.Marshal(struct {
		ID         int64           `json:"id"`
		Time       string          `json:"time"`
		Actor      string          `json:"actor"`
		Action     string          `json:"action"`
		Target     string          `json:"target"`
		Detail     json.RawMessage `json:"detail"`
		RemoteAddr string          `json:"remote_addr"`
		SessionID  string          `json:"session_id"`
		Channel    string          `json:"channel"`
		Hash       string          `json:"hash"`
	}{e.ID, e.Time.UTC().Format(TimeFormat), e.Actor, e.Action, e.Target, detail,
		e.RemoteAddr, e.SessionID, e.Channel, e.Hash})
}

// audit appends one row to the chain inside tx.
func (tx *wtx) audit(ctx context.Context, a Actor, action, target string, d Detail) error {
	ctx = context.WithoutCancel(ctx) // see write
	if d == nil {
		d = Detail{}
	}
	detail, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("store: audit detail: %w", err)
	}
	var prevID int64
	var prevHash, prevTime string
	err = tx.stmt(ctx, tx.s.stmtAuditLast).QueryRowContext(ctx).Scan(&prevID, &prevHash, &prevTime)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("store: audit: %w", err)
	}
	e := Event{
		ID:         prevID + 1,
		Time:       tx.s.now().UTC().Truncate(time.Millisecond),
		Actor:      a.Name,
		Action:     action,
		Target:     target,
		Detail:     string(detail),
		RemoteAddr: a.RemoteAddr,
		SessionID:  a.SessionID,
		Channel:    a.Channel,
	}
	// Time never goes backwards along the chain (a clock step back keeps
	// the previous time), so time ranges map to id ranges.
	if pt, err := time.Parse(TimeFormat, prevTime); err == nil && e.Time.Before(pt) {
		e.Time = pt
	}
	e.Hash = chainHash(tx.s.auditMK, prevHash, e)
	_, err = tx.stmt(ctx, tx.s.stmtAuditInsert).ExecContext(ctx,
		e.ID, e.Time.Format(TimeFormat), e.Actor, e.Action, e.Target, e.Detail, e.RemoteAddr, e.SessionID, e.Channel, e.Hash)
	if err != nil {
		return fmt.Errorf("store: audit: %w", err)
	}
	tx.headID, tx.headHash = e.ID, e.Hash
	return nil
}

// chainHash is HMAC-SHA256 over the previous row's hash and this row's
// content.
func chainHash(key []byte, prev string, e Event) string {
	m := hmac.New(sha256.New, key)
	content, _ := json.Marshal([]any{e.ID, e.Time.UTC().Format(TimeFormat), e.Actor, e.Action, e.Target,
		e.Detail, e.RemoteAddr, e.SessionID, e.Channel})
	m.Write([]byte(prev))
	m.Write([]byte{'\n'})
	m.Write(content)
	return hex.EncodeToString(m.Sum(nil))
}

// Audit writes one audit row on its own (for events that change nothing
// else, such as a session starting). Re-runnable: the row is all it
// writes, from its arguments alone.
func (s *Store) Audit(ctx context.Context, a Actor, action, target string, d Detail) error {
	return s.writeRerunnable(ctx, func(tx *wtx) error { return tx.audit(ctx, a, action, target, d) })
}

// --- the head file --------------------------------------------------------

type auditHead struct {
	ID   int64
	Hash string
}

func (s *Store) headPath() string { return filepath.Join(s.dir, AuditHeadFile) }

// headRecord is the fixed-width text of the head file, so that it can be
// rewritten in place (no temporary file and rename per commit).
func headRecord(id int64, hash string) []byte {
	return []byte(fmt.Sprintf("v1 %020d %s\n", id, hash))
}

func parseHead(b []byte, path string) (auditHead, error) {
	f := strings.Fields(string(b))
	if len(f) != 3 || f[0] != "v1" {
		return auditHead{}, fmt.Errorf("%s is malformed", path)
	}
	id, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return auditHead{}, fmt.Errorf("%s is malformed", path)
	}
	return auditHead{ID: id, Hash: f[2]}, nil
}

// readHead reads the head file under a shared lock (writers hold an
// exclusive one while they rewrite it).
func readHead(path string) (auditHead, error) {
	f, err := os.Open(path)
	if err != nil {
		return auditHead{}, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		return auditHead{}, err
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return auditHead{}, err
	}
	return parseHead(b, path)
}

// advanceHead records (id, hash) as the head when it is newer than the
// recorded one. Processes sharing the data directory serialise on an
// exclusive lock of the file. The head may lag after a crash or a power
// loss (it is written after the commit, without fsync), which
// verification tolerates; it never runs ahead.
func (s *Store) advanceHead(id int64, hash string) error {
	s.headMu.Lock()
	defer s.headMu.Unlock()
	if s.headFile != nil && unlinked(s.headFile) {
		// Replaced or removed: write to the file that is there now.
		s.headFile.Close()
		s.headFile = nil
	}
	if s.headFile == nil {
		f, err := os.OpenFile(s.headPath(), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return err
		}
		s.headFile = f
	}
	fd := int(s.headFile.Fd())
	if err := syscall.Flock(fd, syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(fd, syscall.LOCK_UN) //nolint:errcheck
	buf := make([]byte, 256)
	n, err := s.headFile.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if cur, err := parseHead(buf[:n], s.headPath()); err == nil && cur.ID >= id {
		return nil
	}
	rec := headRecord(id, hash)
	if _, err := s.headFile.WriteAt(rec, 0); err != nil {
		return err
	}
	if n > len(rec) {
		return s.headFile.Truncate(int64(len(rec)))
	}
	return nil
}

// unlinked reports whether f no longer has a name (it was removed, or
// replaced by a rename), with one fstat.
func unlinked(f *os.File) bool {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return true
	}
	return st.Nlink == 0
}

// --- reading --------------------------------------------------------------

// AuditQuery selects audit rows, newest first. Zero fields do not filter.
type AuditQuery struct {
	Actor        string    // exact staff name
	ActionPrefix string    // a family ("login." or "login"), an exact action, or a prefix ("login.s")
	Since, Until time.Time // Since inclusive, Until exclusive
	Search       string    // substring of actor, action, target or detail
	BeforeID     int64     // keyset: rows with id < BeforeID (0 = from the newest)
	AfterID      int64     // keyset: rows with id > AfterID, still newest first
	Limit        int       // default 50, at most 1000
	Oldest       bool      // oldest first (exports)
}

// family is the part of an action before and including its first dot:
// "login." for "login.success".
const familyExpr = "substr(action, 1, instr(action, '.'))"

// where builds the query's conditions. Every filter keeps rows in id order
// through an index, so a page of a filtered million-row log reads about a
// page of rows: an action family uses the family index, a time range
// becomes an id range (times never go backwards along ids), an actor or an
// exact action has its own index.
func (s *Store) auditWhere(ctx context.Context, q AuditQuery) (string, []any, error) {
	var conds []string
	var args []any
	if q.Actor != "" {
		conds = append(conds, "actor = ?")
		args = append(args, q.Actor)
	}
	if p := q.ActionPrefix; p != "" {
		family := ""
		switch {
		case !strings.Contains(p, "."):
			family = p + "."
		case strings.Index(p, ".") == len(p)-1:
			family = p
		}
		switch {
		case family != "":
			expr := familyExpr
			if q.Actor != "" {
				expr = "+" + expr // let the actor index lead
			}
			conds = append(conds, expr+" = ?")
			args = append(args, family)
		default:
			// A deeper prefix: it names one action, or a few.
			actions, err := s.AuditActions(ctx)
			if err != nil {
				return "", nil, err
			}
			var match []any
			for _, a := range actions {
				if strings.HasPrefix(a, p) {
					match = append(match, a)
				}
			}
			switch len(match) {
			case 0:
				conds = append(conds, "action = ?")
				args = append(args, p)
			case 1:
				conds = append(conds, "action = ?")
				args = append(args, match[0])
			default:
				conds = append(conds, "action IN (?"+strings.Repeat(", ?", len(match)-1)+")")
				args = append(args, match...)
			}
		}
	}
	if !q.Since.IsZero() {
		t := q.Since.UTC().Format(TimeFormat)
		id, err := s.firstAuditAt(ctx, t)
		if err != nil {
			return "", nil, err
		}
		conds = append(conds, "id >= ?", "time >= ?")
		args = append(args, id, t)
	}
	if !q.Until.IsZero() {
		t := q.Until.UTC().Format(TimeFormat)
		id, err := s.firstAuditAt(ctx, t)
		if err != nil {
			return "", nil, err
		}
		conds = append(conds, "id < ?", "time < ?")
		args = append(args, id, t)
	}
	if q.Search != "" {
		like := "%" + escapeLike(q.Search) + "%"
		conds = append(conds, `(actor LIKE ? ESCAPE '\' OR action LIKE ? ESCAPE '\' OR target LIKE ? ESCAPE '\' OR detail LIKE ? ESCAPE '\' OR remote_addr LIKE ? ESCAPE '\')`)
		args = append(args, like, like, like, like, like)
	}
	if q.BeforeID > 0 {
		conds = append(conds, "id < ?")
		args = append(args, q.BeforeID)
	}
	if q.AfterID > 0 {
		conds = append(conds, "id > ?")
		args = append(args, q.AfterID)
	}
	if len(conds) == 0 {
		return "", nil, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

// firstAuditAt returns the id of the first audit row at or after time t
// (text in TimeFormat), or one past the last row. Times never go backwards
// along ids, so a binary search over ids finds it in about twenty lookups
// of the primary key, with no index on time to maintain.
func (s *Store) firstAuditAt(ctx context.Context, t string) (int64, error) {
	var last sql.NullInt64
	if err := s.rdb.QueryRowContext(ctx, `SELECT max(id) FROM audit`).Scan(&last); err != nil {
		return 0, err
	}
	lo, hi := int64(1), last.Int64+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		var tm string
		err := s.rdb.QueryRowContext(ctx, `SELECT time FROM audit WHERE id >= ? ORDER BY id LIMIT 1`, mid).Scan(&tm)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			hi = mid
			continue
		case err != nil:
			return 0, err
		}
		if tm >= t {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, nil
}

func escapeLike(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

const auditColumns = `id, time, actor, action, target, detail, remote_addr, session_id, channel, hash`

// scanRows reads every row of rows with scan, then closes rows. A scan
// error returns no rows; an error that ends the iteration returns the rows
// read before it.
func scanRows[T any](rows *sql.Rows, scan func(interface{ Scan(...any) error }) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func scanEvent(sc interface{ Scan(...any) error }) (Event, error) {
	e, _, err := scanEventRaw(sc)
	return e, err
}

// scanEventRaw also returns the time column as stored.
func scanEventRaw(sc interface{ Scan(...any) error }) (Event, string, error) {
	var e Event
	var t string
	if err := sc.Scan(&e.ID, &t, &e.Actor, &e.Action, &e.Target, &e.Detail, &e.RemoteAddr, &e.SessionID, &e.Channel, &e.Hash); err != nil {
		return Event{}, "", err
	}
	e.Time, _ = time.Parse(TimeFormat, t)
	return e, t, nil
}

// ListAudit returns one page of audit rows matching q.
func (s *Store) ListAudit(ctx context.Context, q AuditQuery) ([]Event, error) {
	if q.Limit <= 0 {
		q.Limit = 50
	}
	if q.Limit > 1000 {
		q.Limit = 1000
	}
	where, args, err := s.auditWhere(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("store: list audit: %w", err)
	}
	order := " ORDER BY id DESC"
	if q.AfterID > 0 && !q.Oldest {
		// Paging back towards the newest: take the nearest rows above
		// AfterID, then reverse them.
		order = " ORDER BY id ASC"
	}
	if q.Oldest {
		order = " ORDER BY id ASC"
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit`+where+order+` LIMIT ?`, append(args, q.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("store: list audit: %w", err)
	}
	out, err := scanRows(rows, scanEvent)
	if err != nil {
		return nil, err
	}
	if q.AfterID > 0 && !q.Oldest {
		slices.Reverse(out)
	}
	return out, nil
}

// GetAudit returns one audit row.
func (s *Store) GetAudit(ctx context.Context, id int64) (Event, error) {
	e, err := scanEvent(s.rdb.QueryRowContext(ctx, `SELECT `+auditColumns+` FROM audit WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Event{}, errorf(CodeNotFound, "no audit row %d", id)
	}
	return e, err
}

// CountAudit returns the number of rows in the audit log.
func (s *Store) CountAudit(ctx context.Context) (int64, error) {
	var n sql.NullInt64
	err := s.rdb.QueryRowContext(ctx, `SELECT max(id) FROM audit`).Scan(&n)
	return n.Int64, err
}

// AuditActions lists the distinct actions present, for filter pickers.
func (s *Store) AuditActions(ctx context.Context) ([]string, error) {
	// A skip-scan of the action index: one probe per distinct action
	// instead of reading every row.
	rows, err := s.rdb.QueryContext(ctx, `WITH RECURSIVE a(x) AS (
		SELECT (SELECT min(action) FROM audit)
		UNION ALL
		SELECT (SELECT min(action) FROM audit WHERE action > a.x) FROM a WHERE a.x IS NOT NULL)
		SELECT x FROM a WHERE x IS NOT NULL`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// --- export and verification ---------------------------------------------

// Export formats.
const (
	FormatJSONL = "jsonl"
	FormatCSV   = "csv"
)

// ExportAudit writes the rows matching q (oldest first) to w in format
// jsonl or csv, after recording the export itself in the log. Only admins
// may export.
func (s *Store) ExportAudit(ctx context.Context, a Actor, w io.Writer, format string, q AuditQuery) (int, error) {
	if err := a.requireAdmin("export the audit log"); err != nil {
		return 0, err
	}
	if format != FormatJSONL && format != FormatCSV {
		return 0, errorf(CodeInvalid, "format %q is not supported (use jsonl or csv)", format)
	}
	d := Detail{"format": format}
	if q.Actor != "" {
		d["actor"] = q.Actor
	}
	if q.ActionPrefix != "" {
		d["action"] = q.ActionPrefix
	}
	if !q.Since.IsZero() {
		d["since"] = q.Since.UTC().Format(TimeFormat)
	}
	if err := s.Audit(ctx, a, ActionAuditExported, "audit", d); err != nil {
		return 0, err
	}
	bw := bufio.NewWriter(w)
	var cw *csv.Writer
	if format == FormatCSV {
		cw = csv.NewWriter(bw)
		_ = cw.Write([]string{"time", "actor", "action", "target", "detail", "remote_addr", "session_id", "channel", "hash"})
	}
	q.Oldest, q.Limit, q.BeforeID = true, 1000, 0
	n := 0
	for {
		page, err := s.ListAudit(ctx, q)
		if err != nil {
			return n, err
		}
		for _, e := range page {
			if cw != nil {
				err = cw.Write([]string{e.Time.UTC().Format(TimeFormat), e.Actor, e.Action, e.Target, e.Detail,
					e.RemoteAddr, e.SessionID, e.Channel, e.Hash})
			} else {
				var b []byte
				b, err = json.Marshal(e)
				if err == nil {
					b = append(b, '\n')
					_, err = bw.Write(b)
				}
			}
			if err != nil {
				return n, err
			}
			n++
		}
		if len(page) < q.Limit {
			break
		}
		q.AfterID = page[len(page)-1].ID
	}
	if cw != nil {
		cw.Flush()
		if err := cw.Error(); err != nil {
			return n, err
		}
	}
	return n, bw.Flush()
}

// VerifyResult is the outcome of VerifyAudit.
type VerifyResult struct {
	Rows    int64  // rows checked
	OK      bool   // the chain and the head agree
	BadRow  int64  // first bad row (0 when none)
	Problem string // what is wrong, in words
}

// VerifyAudit walks the chain from the first row, recomputing every hash,
// and checks the last row against the head file so that a removed tail is
// detected too.
func (s *Store) VerifyAudit(ctx context.Context) (VerifyResult, error) {
	// Read the head before the rows: the head file is advanced after each
	// commit, so a head read first never names a row that the query's
	// snapshot, taken after it, cannot see. Read the other way round, a
	// write committed in between makes a live log look truncated.
	head, headErr := readHead(s.headPath())
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit ORDER BY id ASC`)
	if err != nil {
		return VerifyResult{}, err
	}
	defer rows.Close()
	var res VerifyResult
	prev := ""
	hashes := map[int64]string{}
	for rows.Next() {
		e, rawTime, err := scanEventRaw(rows)
		if err != nil {
			return res, err
		}
		res.Rows++
		if e.ID != res.Rows {
			res.BadRow = res.Rows
			res.Problem = fmt.Sprintf("row %d is missing (the next row is %d)", res.Rows, e.ID)
			return res, nil
		}
		// The hash covers the time's canonical text; the same instant
		// written another way (which the textual Since/Until filters
		// would order differently) is a change too.
		canonical := rawTime == e.Time.UTC().Format(TimeFormat)
		if want := chainHash(s.auditMK, prev, e); !canonical || !hmac.Equal([]byte(want), []byte(e.Hash)) {
			res.BadRow = e.ID
			res.Problem = fmt.Sprintf("row %d (%s %s by %s) does not match its hash: it or an earlier row was changed", e.ID, e.Time.UTC().Format(TimeFormat), e.Action, e.Actor)
			return res, nil
		}
		if headErr == nil && e.ID == head.ID {
			hashes[e.ID] = e.Hash
		}
		prev = e.Hash
	}
	if err := rows.Err(); err != nil {
		return res, err
	}
	switch {
	case errors.Is(headErr, os.ErrNotExist) && res.Rows == 0:
	case headErr != nil:
		res.Problem = fmt.Sprintf("the audit head file cannot be read (%v): the log's end cannot be checked", headErr)
		return res, nil
	case head.ID > res.Rows:
		res.BadRow = res.Rows + 1
		res.Problem = fmt.Sprintf("the log ends at row %d but the head records row %d: rows %d to %d were removed", res.Rows, head.ID, res.Rows+1, head.ID)
		return res, nil
	case hashes[head.ID] != head.Hash:
		res.BadRow = head.ID
		res.Problem = fmt.Sprintf("row %d does not match the recorded head: the log was rewritten", head.ID)
		return res, nil
	}
	res.OK = true
	return res, nil
}
