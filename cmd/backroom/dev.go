package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"backroom/store"
)

// Limits of `dev seed`.
const (
	maxSeedClients  = 10_000_000
	maxSeedAudit    = 10_000_000
	defaultAuditCap = 100_000
	seedAuditSpan   = 90 * 24 * time.Hour
)

// actionDevSeeded records that a data directory was filled with synthetic
// data (so that nobody mistakes it for real history).
const actionDevSeeded = "dev.seeded"

func newDevCmd(inv *invocation) *cobra.Command {
	c := groupCmd("dev", "Development helpers: demo data (never on production data)")
	c.AddCommand(newDevSeedCmd(inv))
	return c
}

func newDevSeedCmd(inv *invocation) *cobra.Command {
	var clients, audit int
	c := &cobra.Command{
		Use:   "seed --clients N [--audit M]",
		Short: "Fill the data directory with N synthetic clients and audit history",
		Long: `Fill the data directory with N realistic synthetic clients (names, emails,
phones, currencies, balances, creation times over five years; 70% live mode,
5% delinquent) and M synthetic audit rows (logins, sessions, key and staff
changes), for trying the console and for benchmarks. The search index is built
once, after the load. Seeding again adds more.

--audit defaults to N/10, at most 100,000. The audit rows are chained like real
ones (audit verify passes) and dated over the last 90 days, after the log's
newest row: time never goes backwards along the log. The seeding itself is
recorded as dev.seeded.

Meant for demo data directories only: it refuses to run while the active
Stripe key is a live key. Seeded clients look like synced ones, so a later
"clients sync" marks those of the key's mode deleted (Stripe does not list
them). Run it while serve is stopped: the bulk load drops and rebuilds the
client indexes.`,
		Example: `  backroom dev seed --clients 100000
  backroom dev seed --clients 1000000 --audit 1000000 --data /tmp/demo`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			if !c.Flags().Changed("clients") {
				return usageErrorf("--clients is required: how many synthetic clients to add (1 to %s)", count(maxSeedClients))
			}
			if clients < 1 || clients > maxSeedClients {
				return usageErrorf("--clients %d is out of range: use 1 to %s", clients, count(maxSeedClients))
			}
			if !c.Flags().Changed("audit") {
				audit = min(clients/10, defaultAuditCap)
			}
			if audit < 0 || audit > maxSeedAudit {
				return usageErrorf("--audit %d is out of range: use 0 to %s", audit, count(maxSeedAudit))
			}
			e, err := inv.openEnv(c, openOptions{})
			if err != nil {
				return err
			}
			defer e.close()
			if err := refuseLiveKey(inv.Ctx, e.st, "dev seed writes synthetic clients and audit rows"); err != nil {
				return err
			}

			began := time.Now()
			now := e.st.Now()
			if err := seedClients(inv.Ctx, e.st, clients, now, inv.Stderr); err != nil {
				return e.storeError(err)
			}

			// The audit rows go after the newest row, never before it.
			from := now.Add(-seedAuditSpan)
			newest, err := e.st.ListAudit(inv.Ctx, store.AuditQuery{Limit: 1})
			if err != nil {
				return e.storeError(err)
			}
			if len(newest) == 1 && newest[0].Time.After(from) {
				from = newest[0].Time
			}
			var step time.Duration
			if audit > 0 && now.After(from) {
				step = now.Sub(from) / time.Duration(audit)
			}
			if audit > 0 {
				pl := newProgressLine(inv.Stderr)
				pl.update(fmt.Sprintf("seeding %s audit rows…", count(int64(audit))))
				err = e.st.SeedAudit(inv.Ctx, audit, from, step)
				pl.done()
				if err != nil {
					return e.storeError(err)
				}
			}
			if err := e.st.Audit(inv.Ctx, inv.actor(), actionDevSeeded, "data", store.Detail{
				"clients": clients, "audit_rows": audit,
			}); err != nil {
				return e.storeError(err)
			}

			fmt.Fprintf(inv.Stdout, "Seeded %s synthetic %s and %s audit %s in %s.\n",
				count(int64(clients)), plural(clients, "client", "clients"), count(int64(audit)), plural(audit, "row", "rows"),
				time.Since(began).Round(10*time.Millisecond))
			if audit > 0 {
				fmt.Fprintf(inv.Stdout, "The audit rows are dated %s to %s.\n", from.UTC().Format(time.DateTime), now.UTC().Format(time.DateTime))
			}
			fmt.Fprintf(inv.Stdout, "Browse them: %s clients list --search ada, or the console's Clients screen (%s serve).\n", inv.Prog, inv.Prog)
			return nil
		},
	}
	c.Flags().IntVar(&clients, "clients", 0, "how many synthetic clients to add (1 to 10,000,000)")
	c.Flags().IntVar(&audit, "audit", 0, "how many synthetic audit rows to add (default: clients/10, at most 100,000)")
	return c
}

// refuseLiveKey refuses a data directory whose active Stripe key is a live
// key: what writes synthetic data (what says it does) is for demo data
// directories only.
func refuseLiveKey(ctx context.Context, st *store.Store, what string) error {
	if ks, err := st.KeyStatus(ctx); err == nil && ks.Source != store.SourceNone && ks.Mode == store.ModeLive {
		return usageErrorf("the active Stripe key (%s, from %s) is a live key: %s "+
			"and is for demo data directories only. Use another data directory (--data DIR)", ks.Masked, ks.Source, what)
	}
	return nil
}

// seedClients adds n synthetic clients, showing the progress on stderr.
func seedClients(ctx context.Context, st *store.Store, n int, now time.Time, stderr io.Writer) error {
	pl := newProgressLine(stderr)
	err := st.SeedClients(ctx, n, now, func(done int) {
		pl.update(fmt.Sprintf("seeding clients: %s of %s", count(int64(done)), count(int64(n))))
		if done == n {
			pl.update("building the indexes and the search index…")
		}
	})
	pl.done()
	return err
}
