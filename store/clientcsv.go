package store

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ClientCSVHeader is the header of the clients CSV file, for import and
// export.
var ClientCSVHeader = []string{"customer_id", "name", "email", "phone", "description", "currency", "livemode", "notes"}

// ImportRow is one client of an import file.
type ImportRow struct {
	Line int
	ClientData
	Notes string
}

// LineError is a problem on one line of an import file.
type LineError struct {
	Line int
	Msg  string
}

func (e LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// ImportErrors is every problem of an import file; none of it was imported.
type ImportErrors []LineError

func (e ImportErrors) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d bad %s, nothing imported", len(e), plural(len(e), "row", "rows"))
	for i, le := range e {
		if i == 20 {
			fmt.Fprintf(&b, "\n… and %d more", len(e)-i)
			break
		}
		b.WriteString("\n" + le.Error())
	}
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// maxImportRows bounds one import file.
const maxImportRows = 1_000_000

// ParseClientsCSV reads a clients CSV file (header ClientCSVHeader). It
// reports every bad row by line number — a malformed quote, text that is
// not UTF-8, a duplicate or malformed customer id, a malformed email, a bad
// livemode or currency — and returns no rows when there is any.
func ParseClientsCSV(r io.Reader) ([]ImportRow, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, &Error{Code: CodeInvalid, Msg: "the file is empty: the first line must be the header " + strings.Join(ClientCSVHeader, ",")}
	}
	if err != nil {
		msg := csvErrorMessage(err)
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			msg = LineError{Line: pe.StartLine, Msg: msg}.Error()
		}
		return nil, &Error{Code: CodeInvalid, Msg: msg}
	}
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	if strings.Join(header, ",") != strings.Join(ClientCSVHeader, ",") {
		return nil, &Error{Code: CodeInvalid, Msg: fmt.Sprintf("line 1: the header must be exactly %s", strings.Join(ClientCSVHeader, ","))}
	}
	var rows []ImportRow
	var bad ImportErrors
	seen := map[string]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				bad = append(bad, LineError{Line: pe.StartLine, Msg: csvErrorMessage(err)})
				if errors.Is(pe.Err, csv.ErrQuote) || errors.Is(pe.Err, csv.ErrBareQuote) {
					// The reader cannot resynchronise reliably after a
					// broken quote: stop here.
					break
				}
				continue
			}
			return nil, &Error{Code: CodeInvalid, Msg: csvErrorMessage(err)}
		}
		line, _ := cr.FieldPos(0)
		if len(rows)+len(bad) >= maxImportRows {
			return nil, errorf(CodeInvalid, "the file has more than %d rows: split it", maxImportRows)
		}
		if len(rec) != len(ClientCSVHeader) {
			bad = append(bad, LineError{line, fmt.Sprintf("%d fields; each row has %d (%s)", len(rec), len(ClientCSVHeader), strings.Join(ClientCSVHeader, ","))})
			continue
		}
		row, msg := importRow(line, rec)
		if msg != "" {
			bad = append(bad, LineError{line, msg})
			continue
		}
		if first, dup := seen[row.CustomerID]; dup {
			bad = append(bad, LineError{line, fmt.Sprintf("customer id %s already on line %d", row.CustomerID, first)})
			continue
		}
		seen[row.CustomerID] = line
		rows = append(rows, row)
	}
	if len(bad) > 0 {
		return nil, bad
	}
	return rows, nil
}

func importRow(line int, rec []string) (ImportRow, string) {
	for i, v := range rec {
		if !utf8.ValidString(v) {
			return ImportRow{}, fmt.Sprintf("%s is not valid UTF-8 text (save the file as UTF-8)", ClientCSVHeader[i])
		}
	}
	row := ImportRow{Line: line, Notes: csvUntext(rec[7]), ClientData: ClientData{
		CustomerID: strings.TrimSpace(rec[0]), Name: csvUntext(strings.TrimSpace(rec[1])), Email: csvUntext(strings.TrimSpace(rec[2])),
		Phone: csvUntext(strings.TrimSpace(rec[3])), Description: csvUntext(rec[4]), Currency: strings.ToLower(strings.TrimSpace(rec[5])),
	}}
	switch strings.ToLower(strings.TrimSpace(rec[6])) {
	case "true", "1", "yes":
		row.Livemode = true
	case "false", "0", "no", "":
	default:
		return ImportRow{}, fmt.Sprintf("livemode %q is not true or false", clip(rec[6], 20))
	}
	if err := checkClientData(row.ClientData); err != nil {
		return ImportRow{}, ErrorMessage(err)
	}
	if len(row.Notes) > MaxNotes {
		return ImportRow{}, fmt.Sprintf("notes are %d bytes; at most %d are kept", len(row.Notes), MaxNotes)
	}
	return row, ""
}

func csvErrorMessage(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		switch {
		case (errors.Is(pe.Err, csv.ErrQuote) || errors.Is(pe.Err, csv.ErrBareQuote)) && pe.Line != pe.StartLine:
			// A quoted field ran over lines: the error's column is on
			// another line than the row's (often the end of the file).
			return fmt.Sprintf("a quote is malformed (found at line %d, column %d): quote whole fields with \", and double a \" inside one", pe.Line, pe.Column)
		case errors.Is(pe.Err, csv.ErrQuote), errors.Is(pe.Err, csv.ErrBareQuote):
			return fmt.Sprintf("a quote is malformed (column %d): quote whole fields with \", and double a \" inside one", pe.Column)
		case errors.Is(pe.Err, csv.ErrFieldCount):
			return "wrong number of fields"
		}
		return pe.Err.Error()
	}
	return "the file could not be read as CSV: " + err.Error()
}

// ImportResult counts what an import did.
type ImportResult struct {
	Created, Updated, NotesOnly int
}

// ImportClients writes the rows of an import file in one transaction
// (admins): new clients are created; clients that came from an import or
// by hand take the file's fields; clients known from Stripe keep Stripe's
// data and take only the file's notes. Forgotten clients take nothing.
func (s *Store) ImportClients(ctx context.Context, a Actor, rows []ImportRow) (ImportResult, error) {
	var res ImportResult
	if err := a.requireAdmin("import clients"); err != nil {
		return res, err
	}
	// ParseClientsCSV checked these; other callers may not have.
	for _, r := range rows {
		if err := checkClientData(r.ClientData); err != nil {
			return res, errorf(CodeInvalid, "line %d: %s", r.Line, ErrorMessage(err))
		}
		if !utf8.ValidString(r.Notes) || len(r.Notes) > MaxNotes {
			return res, errorf(CodeInvalid, "line %d: notes must be UTF-8 text of at most %d bytes", r.Line, MaxNotes)
		}
	}
	err := s.write(ctx, func(tx *wtx) error {
		res = ImportResult{}
		now := s.now().UnixMilli()
		for _, r := range rows {
			cur, err := getClient(ctx, tx, r.CustomerID)
			switch {
			case ErrorCode(err) == CodeNotFound:
				if _, err := tx.ExecContext(ctx, `INSERT INTO clients (customer_id, name, email, phone, description, currency,
					livemode, notes, updated_at, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'import')`,
					r.CustomerID, r.Name, r.Email, r.Phone, r.Description, r.Currency, r.Livemode, r.Notes, now); err != nil {
					return fmt.Errorf("store: import line %d: %w", r.Line, err)
				}
				res.Created++
			case err != nil:
				return err
			case cur.Forgotten():
			case cur.Source == SourceImport || cur.Source == SourceManual:
				if _, err := tx.ExecContext(ctx, `UPDATE clients SET name = ?, email = ?, phone = ?, description = ?, currency = ?,
					livemode = ?, notes = ?, updated_at = ?, source = 'import' WHERE id = ?`,
					r.Name, r.Email, r.Phone, r.Description, r.Currency, r.Livemode, r.Notes, now, cur.ID); err != nil {
					return fmt.Errorf("store: import line %d: %w", r.Line, err)
				}
				res.Updated++
			case r.Notes != "" && r.Notes != cur.Notes:
				if _, err := tx.ExecContext(ctx, `UPDATE clients SET notes = ?, updated_at = ? WHERE id = ?`, r.Notes, now, cur.ID); err != nil {
					return err
				}
				res.NotesOnly++
			}
		}
		return tx.audit(ctx, a, ActionClientImported, "clients", Detail{
			"rows": len(rows), "created": res.Created, "updated": res.Updated, "notes_only": res.NotesOnly,
		})
	})
	return res, err
}

// ExportClients writes the clients matching q (Search and filters; paging
// fields are ignored) as CSV with ClientCSVHeader, after auditing the
// export. Admins only. Forgotten clients are exported as their tombstone.
func (s *Store) ExportClients(ctx context.Context, a Actor, w io.Writer, q ClientQuery) (int, error) {
	if err := a.requireAdmin("export clients"); err != nil {
		return 0, err
	}
	d := Detail{"filtered": q.Search != "" || q.Livemode != nil || q.Delinquent != nil || q.Deleted != nil}
	if err := s.Audit(ctx, a, ActionClientExported, "clients", d); err != nil {
		return 0, err
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(ClientCSVHeader); err != nil {
		return 0, err
	}
	q.After, q.Before, q.Limit = nil, nil, 500
	n := 0
	for {
		page, err := s.ListClients(ctx, q)
		if err != nil {
			return n, err
		}
		for _, c := range page.Clients {
			if err := cw.Write([]string{c.CustomerID, csvText(c.Name), csvText(c.Email), csvText(c.Phone), csvText(c.Description),
				c.Currency, strconv.FormatBool(c.Livemode), csvText(c.Notes)}); err != nil {
				return n, err
			}
			n++
		}
		if !page.More || len(page.Clients) == 0 {
			break
		}
		last := page.Clients[len(page.Clients)-1]
		q.After = &last
	}
	cw.Flush()
	return n, cw.Error()
}

// formulaStart is what makes a spreadsheet read a cell as a formula.
const formulaStart = "=+-@\t\r"

// csvText guards a free-text cell of an export against formula injection:
// a value a spreadsheet would run as a formula ("=HYPERLINK(…)", but also
// "+44 20…") gets a leading apostrophe, which spreadsheets show as text.
// The import takes it off again (csvUntext), so an export imports back
// unchanged.
// A value that starts with an apostrophe gets one more (a spreadsheet
// shows one), so that the import's undoing is exact.
func csvText(v string) string {
	if v != "" && strings.ContainsRune(formulaStart+"'", rune(v[0])) {
		return "'" + v
	}
	return v
}

// csvUntext undoes csvText.
func csvUntext(v string) string {
	if len(v) > 1 && v[0] == '\'' && strings.ContainsRune(formulaStart+"'", rune(v[1])) {
		return v[1:]
	}
	return v
}
