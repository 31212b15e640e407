package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// seedClientBatch is how many clients SeedClients writes per transaction.
const seedClientBatch = 50_000

// SeedClients adds n synthetic clients with realistic names, emails,
// currencies, balances and creation times (demos and benchmarks; never on
// production data). It loads the rows with the search index's trigger
// off, then builds the index in one pass, which is several times faster
// than indexing row by row. Customer ids continue after existing seeded
// ones, so seeding twice adds more.
func (s *Store) SeedClients(ctx context.Context, n int, now time.Time, progress func(done int)) error {
	if n < 0 {
		return errorf(CodeInvalid, "cannot seed a negative number of clients")
	}
	var base int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM clients`).Scan(&base); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(uint64(n), uint64(base)))
	// The insert trigger is dropped for the load and put back with the
	// index rebuild, all in the last transaction's company: a crash in
	// between leaves the trigger missing, so it is recreated first thing.
	if _, err := s.wdb.ExecContext(ctx, `DROP TRIGGER IF EXISTS clients_fts_insert`); err != nil {
		return fmt.Errorf("store: seed clients: %w", err)
	}
	restore := func() error {
		_, err := s.wdb.ExecContext(ctx, createFTSInsertTrigger)
		return err
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
			_ = restore()
			return fmt.Errorf("store: seed clients: %w", err)
		}
		done += batch
		if progress != nil {
			progress(done)
		}
	}
	if err := restore(); err != nil {
		return fmt.Errorf("store: seed clients: %w", err)
	}
	if _, err := s.wdb.ExecContext(ctx, `INSERT INTO clients_fts (clients_fts) VALUES ('rebuild')`); err != nil {
		return fmt.Errorf("store: build the search index: %w", err)
	}
	_, err := s.wdb.ExecContext(ctx, `PRAGMA optimize`)
	return err
}

// createFTSInsertTrigger is migration 4's insert trigger, for SeedClients.
const createFTSInsertTrigger = `CREATE TRIGGER IF NOT EXISTS clients_fts_insert AFTER INSERT ON clients WHEN new.forgotten_at IS NULL
BEGIN
	INSERT INTO clients_fts (rowid, name, email, customer_id) VALUES (new.id, new.name, new.email, new.customer_id);
END`

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
