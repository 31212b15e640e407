package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"backroom/store"
)

func newAuditCmd(inv *invocation) *cobra.Command {
	c := groupCmd("audit", "Verify or export the tamper-evident audit log")
	c.AddCommand(newAuditVerifyCmd(inv), newAuditExportCmd(inv))
	return c
}

func newAuditVerifyCmd(inv *invocation) *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Check the audit log's hash chain and its recorded end",
		Long: `Walk the audit log from the first row, recomputing every row's HMAC chain hash,
and check the last row against the head recorded outside the table, so that a
changed row and a removed tail are both found. Exit 0 when the log is intact,
1 naming the first bad row otherwise.`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := inv.openEnv(c, openOptions{})
			if err != nil {
				return err
			}
			defer e.close()
			res, err := e.st.VerifyAudit(inv.Ctx)
			if err != nil {
				return e.storeError(err)
			}
			if !res.OK {
				return failErrorf("audit log verification FAILED after %d %s: %s", res.Rows, plural(int(res.Rows), "row", "rows"), res.Problem)
			}
			fmt.Fprintf(inv.Stdout, "audit log OK: %d %s\n", res.Rows, plural(int(res.Rows), "row", "rows"))
			return nil
		},
	}
}

func newAuditExportCmd(inv *invocation) *cobra.Command {
	var format, since, actor, action string
	c := &cobra.Command{
		Use:   "export [--format jsonl|csv]",
		Short: "Export the audit log (oldest first) to stdout",
		Long: `Export audit rows, oldest first, to stdout. jsonl: one object per line; csv: a
header row and the columns time, actor, action, target, detail, remote_addr,
session_id, channel, hash. The export itself is recorded in the log.

--since takes an RFC 3339 time (2026-01-31T00:00:00Z), a date (2026-01-31, UTC)
or a duration back from now (90m, 24h, 7d). --actor is an exact name (the CLI
acts as cli:USER); --action a prefix such as login. or an exact action.`,
		Example: `  backroom audit export --format csv --since 24h > audit.csv
  backroom audit export --actor alice --action login.`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			format = strings.ToLower(format)
			if format != store.FormatJSONL && format != store.FormatCSV {
				return usageErrorf("--format %q is not supported: use jsonl or csv", format)
			}
			var q store.AuditQuery
			q.Actor = actor
			q.ActionPrefix = action
			now := time.Now
			if inv.Now != nil {
				now = inv.Now
			}
			if since != "" {
				t, err := parseSince(since, now())
				if err != nil {
					return usageErrorf("--since %q %v", since, err)
				}
				q.Since = t
			}
			e, err := inv.openEnv(c, openOptions{})
			if err != nil {
				return err
			}
			defer e.close()
			if _, err := e.st.ExportAudit(inv.Ctx, inv.actor(), inv.Stdout, format, q); err != nil {
				return e.storeError(err)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&format, "format", store.FormatJSONL, "jsonl or csv")
	f.StringVar(&since, "since", "", "only rows from then on: RFC 3339 time, date, or duration back from now (24h, 7d)")
	f.StringVar(&actor, "actor", "", "only rows by this actor (exact)")
	f.StringVar(&action, "action", "", "only rows whose action starts with this (login., key.updated)")
	return c
}

// parseSince reads an RFC 3339 time, a date (UTC), or a duration back from
// now (Go syntax, or whole days as Nd).
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return time.Time{}, fmtSinceErr()
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return time.Time{}, fmtSinceErr()
		}
	}
	if d < 0 {
		return time.Time{}, fmt.Errorf("is negative: give how far back to go (24h, 7d)")
	}
	return now.Add(-d), nil
}

func fmtSinceErr() error {
	return fmt.Errorf("is not a time or a duration: use RFC 3339 (2026-01-31T00:00:00Z), a date (2026-01-31), or a duration back from now (90m, 24h, 7d)")
}
