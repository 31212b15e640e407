package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// seedClientBatch is how many clients SeedClients writes per transaction.
const seedClientBatch = 50_000

// SeedClients adds n synthetic clients with realistic names, emails,
// currencies, balances and creation times (demos and benchmarks; never on
// production data). It loads the rows in bulk-load mode (see
// startBulkLoad): without the secondary indexes and the search index's
// trigger, which are rebuilt in one pass each afterwards. Customer ids
// continue after existing seeded ones, so seeding twice adds more.
func (s *Store) SeedClients(ctx context.Context, n int, now time.Time, progress func(done int)) error {
	if n < 0 {
		return errorf(CodeInvalid, "cannot seed a negative number of clients")
	}
	var base int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM clients`).Scan(&base); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(uint64(n), uint64(base)))
	// A page cache big enough for the customer id index, whose random keys
	// otherwise send every insert to the disk.
	if _, err := s.wdb.ExecContext(ctx, `PRAGMA cache_size = -131072`); err != nil {
		return fmt.Errorf("store: seed clients: %w", err)
	}
	// Back to the writer's own size afterwards (writer.go).
	defer s.wdb.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf(`PRAGMA cache_size = -%d`, writerCacheKiB)) //nolint:errcheck // a failure leaves the bigger cache
	restore, err := s.startBulkLoad(ctx)
	if err != nil {
		return fmt.Errorf("store: seed clients: %w", err)
	}
	finish := func() error {
		return s.write(context.WithoutCancel(ctx), func(tx *wtx) error {
			_, err := tx.ExecContext(ctx, restore)
			return err
		})
	}
	for done := 0; done < n; {
		batch := min(seedClientBatch, n-done)
		err := s.write(ctx, func(tx *wtx) error {
			ins, err := tx.PrepareContext(ctx, `INSERT INTO clients (customer_id, name, email, phone, description, currency, balance,
				delinquent, livemode, metadata, stripe_created, updated_at, source, version)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'sync', ?)`)
			if err != nil {
				return err
			}
			defer ins.Close()
			for i := range batch {
				c := seedClient(rng, base+int64(done+i)+1, now)
				if _, err := ins.ExecContext(ctx, c.CustomerID, c.Name, c.Email, c.Phone, c.Description, c.Currency, c.Balance,
					c.Delinquent, c.Livemode, metadataJSON(c.Metadata), c.StripeCreated.Unix(), now.UnixMilli(), now.Unix()); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			_ = finish()
			return fmt.Errorf("store: seed clients: %w", err)
		}
		done += batch
		if progress != nil {
			progress(done)
		}
	}
	if err := finish(); err != nil {
		return fmt.Errorf("store: seed clients: build the indexes: %w", err)
	}
	// Statistics for the clients table only: PRAGMA optimize would also
	// record those of tables that are still nearly empty (the audit log of
	// a fresh demo), and the planner, trusting them, would later walk the
	// whole audit log to page through it.
	_, err = s.wdb.ExecContext(ctx, `ANALYZE clients`)
	return err
}

// bulkLoadKey is the meta row that holds what a bulk load dropped, as the
// SQL that puts it back.
const bulkLoadKey = "clients_bulk_load"

// startBulkLoad drops the secondary indexes of the clients table and the
// search index's insert trigger (their definitions read from the schema,
// so that later migrations are followed), after recording the SQL that
// restores them, rebuilds the search index and removes the record. It
// returns that SQL. Building an index once from sorted rows is much faster
// than keeping it up to date row by row. When a bulk load was interrupted
// (a crash), Open finishes it (finishBulkLoad); until then the record
// stands and is returned as is.
func (s *Store) startBulkLoad(ctx context.Context) (string, error) {
	var restore string
	err := s.write(ctx, func(tx *wtx) error {
		err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, bulkLoadKey).Scan(&restore)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT type, name, sql FROM sqlite_schema
			WHERE tbl_name = 'clients' AND sql IS NOT NULL
			AND (type = 'index' OR (type = 'trigger' AND name = 'clients_fts_insert')) ORDER BY type, name`)
		if err != nil {
			return err
		}
		var drops, creates []string
		for rows.Next() {
			var typ, name, def string
			if err := rows.Scan(&typ, &name, &def); err != nil {
				rows.Close()
				return err
			}
			drops = append(drops, "DROP "+strings.ToUpper(typ)+" "+name)
			creates = append(creates, def)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		// The search index is built without merging its segments on the
		// way (which rewrites them again and again), then merged once: a
		// fifth faster at a million clients, and one segment to search.
		creates = append(creates,
			`INSERT INTO clients_fts (clients_fts, rank) VALUES ('automerge', 0)`,
			`INSERT INTO clients_fts (clients_fts, rank) VALUES ('crisismerge', 1000)`,
			// The rebuild indexes every client: what is queued is in it.
			`DELETE FROM clients_fts_pending`,
			`INSERT INTO clients_fts (clients_fts) VALUES ('rebuild')`,
			`INSERT INTO clients_fts (clients_fts) VALUES ('optimize')`,
			`INSERT INTO clients_fts (clients_fts, rank) VALUES ('automerge', 4)`, // FTS5's defaults
			`INSERT INTO clients_fts (clients_fts, rank) VALUES ('crisismerge', 16)`,
			`DELETE FROM meta WHERE key = '`+bulkLoadKey+`'`)
		restore = strings.Join(creates, ";\n")
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)`, bulkLoadKey, restore); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, strings.Join(drops, ";\n"))
		return err
	})
	return restore, err
}

// finishBulkLoad restores what an interrupted bulk load dropped (run by
// migrate, in its transaction).
func (tx *wtx) finishBulkLoad(ctx context.Context) error {
	var restore string
	err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, bulkLoadKey).Scan(&restore)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	tx.s.log.Warn("a bulk load of clients was interrupted: rebuilding the indexes")
	_, err = tx.ExecContext(ctx, restore)
	return err
}

var (
	seedFirst = strings.Fields(`Ada Alan Alice Amara Ana Anders Aoife Ayesha Bea Ben Bilal Camille Carlos Chen Chloe Dara David Diego
		Elena Emeka Emma Erik Fatima Femi Finn Freya Gabriel Grace Hana Hugo Ines Isaac Ivan Jamal Jana Jonas Julia Kai Karin Kenji
		Lara Leo Lina Luca Maya Mehmet Mia Mohamed Nadia Nils Noah Nora Olga Omar Oscar Priya Rafael Rosa Sam Sara Sofia Tariq
		Theo Tomás Uma Victor Wei Yara Yusuf Zoe`)
	seedLast = strings.Fields(`Abara Andersson Bauer Becker Bianchi Brown Byrne Castro Chen Costa Dubois Evans Fischer Garcia Gomez
		Hansen Haddad Ito Jensen Johnson Kaur Khan Kim Kowalski Larsen Lee Lopez Martin Meyer Moreau Müller Murphy Nakamura Nguyen
		Novak Okafor Olsen Patel Perez Petrov Popescu Rossi Santos Schmidt Silva Smith Sato Suzuki Tanaka Taylor Walsh Wang Weber
		Williams Wilson Yilmaz Zhang`)
	seedCompany = strings.Fields(`Acme Northwind Contoso Initech Globex Umbrella Stark Wayne Tyrell Soylent Hooli Vandelay Wonka
		Cyberdyne Gringotts Aperture Monarch Oscorp Pied Piper Blue Sun`)
	seedDomains    = strings.Fields(`example.com example.org example.net mail.example shop.example studio.example`)
	seedCurrencies = []string{"usd", "usd", "usd", "eur", "eur", "gbp", "cad", "aud", "jpy", "chf"}
)

// seedClient makes the n-th synthetic client: a person (most) or a company.
func seedClient(r *rand.Rand, n int64, now time.Time) ClientData {
	first, last := seedFirst[r.IntN(len(seedFirst))], seedLast[r.IntN(len(seedLast))]
	name := first + " " + last
	local := strings.ToLower(first + "." + last)
	if r.IntN(5) == 0 {
		name = seedCompany[r.IntN(len(seedCompany))] + " " + []string{"Ltd", "GmbH", "Inc", "SAS", "BV", "AB"}[r.IntN(6)]
		local = []string{"billing", "accounts", "finance", "ap"}[r.IntN(4)]
	}
	c := ClientData{
		CustomerID:    fmt.Sprintf("cus_%s%06d", seedIDPrefix(r), n),
		Name:          name,
		Email:         fmt.Sprintf("%s%d@%s", local, n, seedDomains[r.IntN(len(seedDomains))]),
		Phone:         fmt.Sprintf("+%d %03d %04d", 1+r.IntN(98), r.IntN(1000), r.IntN(10000)),
		Currency:      seedCurrencies[r.IntN(len(seedCurrencies))],
		Livemode:      r.IntN(10) < 7,
		Delinquent:    r.IntN(20) == 0,
		StripeCreated: now.Add(-time.Duration(r.Int64N(int64(5 * 365 * 24 * time.Hour)))).Truncate(time.Second),
	}
	switch r.IntN(4) {
	case 0:
		c.Balance = r.Int64N(50_000)
	case 1:
		c.Balance = -r.Int64N(20_000)
	}
	if r.IntN(3) == 0 {
		c.Description = []string{"Annual plan", "Monthly plan", "Pilot", "Referred by partner", "Enterprise"}[r.IntN(5)]
	}
	if r.IntN(4) == 0 {
		c.Metadata = map[string]string{"plan": []string{"starter", "team", "business"}[r.IntN(3)]}
	}
	return c
}

const idChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func seedIDPrefix(r *rand.Rand) string {
	b := make([]byte, 8)
	for i := range b {
		b[i] = idChars[r.IntN(len(idChars))]
	}
	return string(b)
}
