package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/mattn/go-runewidth"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"backroom/server/stripeapi"
	"backroom/store"
)

func newClientsCmd(inv *invocation) *cobra.Command {
	c := groupCmd("clients", "Browse, sync, import, export and forget the clients linked to Stripe customers")
	c.AddCommand(
		newClientsListCmd(inv),
		newClientsShowCmd(inv),
		newClientsForgetCmd(inv),
		newClientsSyncCmd(inv),
		newClientsImportCmd(inv),
		newClientsExportCmd(inv),
	)
	return c
}

// --- filters ------------------------------------------------------------------

// clientFilter is the search and filter flags shared by list and export.
type clientFilter struct {
	search                          string
	live, test, delinquent, deleted bool
}

func (f *clientFilter) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.search, "search", "", "name, email or customer id: a substring of 3+ characters, or a name prefix of 1-2")
	fs.BoolVar(&f.live, "live", false, "only live-mode clients")
	fs.BoolVar(&f.test, "test", false, "only test-mode clients")
	fs.BoolVar(&f.delinquent, "delinquent", false, "only delinquent clients (--delinquent=false: only the others)")
	fs.BoolVar(&f.deleted, "deleted", false, "only clients deleted at Stripe (--deleted=false: hide them)")
}

// query turns the flags that were given into a store query.
func (f *clientFilter) query(c *cobra.Command) (store.ClientQuery, error) {
	fs := c.Flags()
	q := store.ClientQuery{Search: strings.TrimSpace(f.search)}
	switch live, test := fs.Changed("live"), fs.Changed("test"); {
	case live && test:
		return q, usageErrorf("--live and --test exclude each other: give one, or neither for both modes")
	case live:
		v := f.live
		q.Livemode = &v
	case test:
		v := !f.test
		q.Livemode = &v
	}
	if fs.Changed("delinquent") {
		v := f.delinquent
		q.Delinquent = &v
	}
	if fs.Changed("deleted") {
		v := f.deleted
		q.Deleted = &v
	}
	return q, nil
}

func filtered(q store.ClientQuery) bool {
	return q.Search != "" || q.Livemode != nil || q.Delinquent != nil || q.Deleted != nil
}

// --- output forms ---------------------------------------------------------------

// clientJSON is one client in `clients list --json`.
type clientJSON struct {
	CustomerID  string  `json:"customer_id"`
	Name        string  `json:"name"`
	Email       string  `json:"email"`
	Phone       string  `json:"phone"`
	Description string  `json:"description"`
	Currency    string  `json:"currency"`
	Balance     int64   `json:"balance"`
	Livemode    bool    `json:"livemode"`
	Delinquent  bool    `json:"delinquent"`
	Deleted     bool    `json:"deleted"`
	Forgotten   bool    `json:"forgotten"`
	Created     *string `json:"created"`
}

// clientDetailJSON is `clients show --json`: the list's fields and the
// rest of the record.
type clientDetailJSON struct {
	clientJSON
	Notes       string            `json:"notes"`
	Metadata    map[string]string `json:"metadata"`
	Source      string            `json:"source"`
	UpdatedAt   string            `json:"updated_at"`
	ForgottenAt *string           `json:"forgotten_at"`
}

func rfc3339OrNil(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339)
	return &s
}

func toClientJSON(c store.Client) clientJSON {
	return clientJSON{
		CustomerID: c.CustomerID, Name: c.Name, Email: c.Email, Phone: c.Phone, Description: c.Description,
		Currency: c.Currency, Balance: c.Balance, Livemode: c.Livemode, Delinquent: c.Delinquent,
		Deleted: c.Deleted, Forgotten: c.Forgotten(), Created: rfc3339OrNil(c.StripeCreated),
	}
}

func toClientDetailJSON(c store.Client) clientDetailJSON {
	meta := c.Metadata
	if meta == nil {
		meta = map[string]string{}
	}
	return clientDetailJSON{
		clientJSON: toClientJSON(c), Notes: c.Notes, Metadata: meta, Source: c.Source,
		UpdatedAt: c.UpdatedAt.UTC().Format(time.RFC3339), ForgottenAt: rfc3339OrNil(c.ForgottenAt),
	}
}

// printable makes text from a client record (which comes from Stripe or a
// file) safe for a terminal: control characters, including escape
// sequences, and bidirectional overrides become '?'.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069) {
			return '?'
		}
		return r
	}, s)
}

// fit pads or cuts s to w terminal columns.
func fit(s string, w int) string {
	s = printable(s)
	if runewidth.StringWidth(s) > w {
		s = runewidth.Truncate(s, w, "…")
	}
	return runewidth.FillRight(s, w)
}

// Columns of the clients table: 100 terminal columns in all.
const (
	colID      = 18 // cus_ and 14 characters, as Stripe makes them; longer ids are never cut
	colName    = 18
	colEmail   = 24
	colBalance = 13
)

func clientTableHeader() string {
	return strings.TrimRight(fmt.Sprintf("%-*s  %-*s  %-*s  %*s  %s", colID, "CUSTOMER ID", colName, "NAME", colEmail, "EMAIL",
		colBalance, "BALANCE", "FLAGS"), " ")
}

func clientTableRow(c store.Client) string {
	name, email := c.Name, c.Email
	if c.Forgotten() {
		name, email = "(forgotten)", ""
	}
	var flags []string
	if !c.Livemode {
		flags = append(flags, "test")
	}
	if c.Delinquent {
		flags = append(flags, "delinq")
	}
	if c.Deleted {
		flags = append(flags, "deleted")
	}
	id := printable(c.CustomerID)
	if len(id) < colID {
		id += strings.Repeat(" ", colID-len(id))
	}
	line := id + "  " + fit(name, colName) + "  " + fit(email, colEmail) + "  " +
		fmt.Sprintf("%*s", colBalance, money(c.Balance, c.Currency)) + "  " + strings.Join(flags, " ")
	return strings.TrimRight(line, " ")
}

// Currencies whose amounts Stripe counts in whole units, or in thousandths.
var (
	zeroDecimal  = strings.Fields("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf")
	threeDecimal = strings.Fields("bhd jod kwd omr tnd")
)

// money formats an amount in minor units: "1,234.56 USD", "-500 JPY".
func money(minor int64, currency string) string {
	if currency == "" {
		return groupDigits(strconv.FormatInt(minor, 10))
	}
	decimals := 2
	switch {
	case slices.Contains(zeroDecimal, currency):
		decimals = 0
	case slices.Contains(threeDecimal, currency):
		decimals = 3
	}
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	digits := strconv.FormatInt(minor, 10)
	if decimals > 0 {
		if len(digits) <= decimals {
			digits = strings.Repeat("0", decimals-len(digits)+1) + digits
		}
		digits = groupDigits(digits[:len(digits)-decimals]) + "." + digits[len(digits)-decimals:]
	} else {
		digits = groupDigits(digits)
	}
	return sign + digits + " " + strings.ToUpper(currency)
}

// groupDigits puts thousands separators into a run of digits (with an
// optional leading '-').
func groupDigits(s string) string {
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return sign + b.String()
}

// count formats n with thousands separators.
func count(n int64) string { return groupDigits(strconv.FormatInt(n, 10)) }

// totalText says how many clients a query matches: "1,234", "about
// 1,000,000" (the unfiltered estimate), "more than 10,000" (a capped
// count).
func totalText(p store.ClientPage, q store.ClientQuery) string {
	switch {
	case p.TotalExact:
		return count(p.Total)
	case filtered(q):
		return "more than " + count(p.Total)
	default:
		return "about " + count(p.Total)
	}
}

// --- paging -----------------------------------------------------------------------

// listPage is how many clients one query of a listing reads (the store's
// largest page).
const listPage = 500

// eachClient calls fn for the clients matching q in order, up to limit (0:
// all), reading one page at a time (keyset paging: memory stays at one
// page whatever the total). It returns the first page (for its total) and
// whether more clients matched beyond the limit.
func eachClient(ctx context.Context, st *store.Store, q store.ClientQuery, limit int, fn func(store.Client) error) (first store.ClientPage, more bool, err error) {
	n := 0
	for page := 0; ; page++ {
		q.Limit = listPage
		if limit > 0 {
			q.Limit = min(listPage, limit-n)
		}
		p, err := st.ListClients(ctx, q)
		if err != nil {
			return first, false, err
		}
		if page == 0 {
			first = p
		}
		for _, c := range p.Clients {
			if err := fn(c); err != nil {
				return first, false, err
			}
		}
		n += len(p.Clients)
		if !p.More || len(p.Clients) == 0 {
			return first, false, nil
		}
		if limit > 0 && n >= limit {
			return first, true, nil
		}
		last := p.Clients[len(p.Clients)-1]
		q.After = &last
		if err := ctx.Err(); err != nil {
			return first, false, err
		}
	}
}

// --- list ---------------------------------------------------------------------------

func newClientsListCmd(inv *invocation) *cobra.Command {
	var f clientFilter
	var limit int
	var asJSON, desc bool
	var sortBy string
	c := &cobra.Command{
		Use:   "list [--search Q] [--limit N] [--json]",
		Short: "List clients: a table, or one JSON object per line",
		Long: `List clients, 50 by default (--limit 0 lists them all, page by page).

--search matches the name, email and customer id: 3 or more characters match
anywhere (results in the order the clients were added; --sort does not apply),
1 or 2 characters match the start of the name (in name order). Without a
search, --sort orders by name (default), created (at Stripe) or balance;
--desc reverses it. --live/--test, --delinquent and --deleted narrow the list;
--delinquent=false and --deleted=false exclude instead.

The table fits 100 columns: customer id, name, email, balance in the client's
currency, and FLAGS: test (test mode), delinq (delinquent), deleted (deleted
at Stripe). A forgotten client shows (forgotten) for its name. The last line
says how many matched.

--json writes one object per line, nothing else, with the keys customer_id,
name, email, phone, description, currency, balance (minor units: cents),
livemode, delinquent, deleted, forgotten, created (RFC 3339, or null).`,
		Example: `  backroom clients list --search ada
  backroom clients list --sort balance --desc --limit 10
  backroom clients list --live --delinquent --json --limit 0 > delinquent.jsonl`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			q, err := f.query(c)
			if err != nil {
				return err
			}
			if limit < 0 {
				return usageErrorf("--limit %d: give a number of clients, or 0 for all", limit)
			}
			switch sortBy {
			case store.SortName, store.SortCreated, store.SortBalance:
			default:
				return usageErrorf("--sort %q: use name, created or balance", sortBy)
			}
			q.Sort, q.Desc = sortBy, desc
			e, err := inv.openEnv(c, openOptions{})
			if err != nil {
				return err
			}
			defer e.close()
			if q.Search != "" && (c.Flags().Changed("sort") || desc) {
				fmt.Fprintln(inv.Stderr, "note: --sort and --desc do not apply to a search: matches come in the order the clients were added (name order for 1-2 characters)")
			}

			w := bufio.NewWriter(inv.Stdout)
			var first store.ClientPage
			var more bool
			n, writeErr, err := writeRows(w, asJSON, clientTableHeader(), func(yield func(store.Client) error) (err error) {
				first, more, err = eachClient(inv.Ctx, e.st, q, limit, yield)
				return err
			}, func(cl store.Client) any { return toClientJSON(cl) }, clientTableRow)
			switch {
			case writeErr != nil:
				return writeErr
			case err != nil:
				return e.storeError(err)
			}
			if !asJSON {
				switch {
				case n == 0 && !filtered(q):
					fmt.Fprintf(w, "No clients yet: sync them from Stripe (%s clients sync) or import a file (%s clients import FILE.csv).\n", inv.Prog, inv.Prog)
				case n == 0:
					fmt.Fprintln(w, "No clients match.")
				default:
					line := fmt.Sprintf("%s of %s %s", count(int64(n)), totalText(first, q), plural(int(first.Total), "client", "clients"))
					if more {
						line += "; --limit 0 lists them all"
					}
					fmt.Fprintln(w, line)
				}
			}
			if err := w.Flush(); err != nil {
				return failErrorf("writing the list: %v", err)
			}
			return nil
		},
	}
	fs := c.Flags()
	f.register(fs)
	fs.IntVarP(&limit, "limit", "n", 50, "at most this many clients; 0 for all")
	fs.BoolVar(&asJSON, "json", false, "one JSON object per line")
	fs.StringVar(&sortBy, "sort", store.SortName, "name, created or balance (not with --search)")
	fs.BoolVar(&desc, "desc", false, "reverse the sort")
	return c
}

// --- show ---------------------------------------------------------------------------

// customerIDArg checks a customer id given on the command line: a
// malformed one is a usage error (2), so that exit 1 always means "no such
// client".
func customerIDArg(id string) (string, error) {
	id = strings.TrimSpace(id)
	if err := store.ValidCustomerID(id); err != nil {
		return "", usageErrorf("%s", store.ErrorMessage(err))
	}
	return id, nil
}

func newClientsShowCmd(inv *invocation) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "show CUS [--json]",
		Short: "Show every field of one client, its notes and metadata (audited as client.viewed)",
		Long: `Show one client: every field, its metadata and local notes, and (in the text
form) the latest audit entries about it. Looking at a client's personal data
is recorded in the audit log as client.viewed, by cli:USER, as a look from
the console is.

--json writes one object: the keys of "clients list --json" plus notes,
metadata (an object), source (sync, webhook, import or manual), updated_at
and forgotten_at (RFC 3339, or null).

Exit status 1 when there is no such client; 2 when CUS is not a customer id.`,
		Example: `  backroom clients show cus_NffrFeUfNV2Hib
  backroom clients show cus_NffrFeUfNV2Hib --json | jq .metadata`,
		Args: exactArgs("CUS"),
		RunE: func(c *cobra.Command, args []string) error {
			id, err := customerIDArg(args[0])
			if err != nil {
				return err
			}
			e, err := inv.openEnv(c, openOptions{})
			if err != nil {
				return err
			}
			defer e.close()
			cl, err := e.st.ViewClient(inv.Ctx, inv.actor(), id)
			if err != nil {
				return e.storeError(err)
			}
			if asJSON {
				return writeJSON(inv.Stdout, toClientDetailJSON(cl))
			}
			evs, err := e.st.ClientAudit(inv.Ctx, id, 10)
			if err != nil {
				return e.storeError(err)
			}
			printClient(inv.Stdout, cl, evs)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return c
}

// printClient writes a client's fields as aligned lines, then the audit
// entries about it (newest first).
func printClient(w io.Writer, c store.Client, evs []store.Event) {
	yesNo := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	line := func(label, value string) {
		if label != "" {
			label += ":"
		}
		fmt.Fprintf(w, "%-14s %s\n", label, printable(value))
	}
	line("customer id", c.CustomerID)
	if c.Forgotten() {
		line("forgotten", c.ForgottenAt.UTC().Format(time.RFC3339)+" (personal data erased; the id is kept as a tombstone)")
	} else {
		line("name", c.Name)
		line("email", c.Email)
		line("phone", c.Phone)
		line("description", c.Description)
	}
	line("currency", strings.ToUpper(c.Currency))
	bal := money(c.Balance, c.Currency)
	switch {
	case c.Balance > 0:
		bal += " (owed by the client)"
	case c.Balance < 0:
		bal += " (credit)"
	}
	line("balance", bal)
	mode := "test"
	if c.Livemode {
		mode = "live"
	}
	line("mode", mode)
	line("delinquent", yesNo(c.Delinquent))
	line("deleted", yesNo(c.Deleted)+map[bool]string{true: " (deleted at Stripe)", false: ""}[c.Deleted])
	created := "unknown"
	if !c.StripeCreated.IsZero() {
		created = c.StripeCreated.UTC().Format(time.RFC3339)
	}
	line("created", created+" (at Stripe)")
	line("updated", c.UpdatedAt.UTC().Format(time.RFC3339)+" (here, from "+c.Source+")")
	if len(c.Metadata) == 0 {
		line("metadata", "none")
	} else {
		label := "metadata"
		for _, k := range slices.Sorted(maps.Keys(c.Metadata)) {
			line(label, k+" = "+c.Metadata[k])
			label = ""
		}
	}
	if c.Notes == "" {
		line("notes", "none")
	} else {
		label := "notes"
		for _, l := range strings.Split(strings.TrimRight(c.Notes, "\n"), "\n") {
			line(label, l)
			label = ""
		}
	}
	if len(evs) > 0 {
		fmt.Fprintln(w, "\naudit (newest first):")
		for _, ev := range evs {
			fmt.Fprintf(w, "  %s  %-22s %s via %s\n", ev.Time.UTC().Format(store.TimeFormat), ev.Action, printable(ev.Actor), ev.Channel)
		}
	}
}

// --- forget -------------------------------------------------------------------------

func newClientsForgetCmd(inv *invocation) *cobra.Command {
	return &cobra.Command{
		Use:   "forget CUS",
		Short: "Erase a client's personal data, keeping the customer id as a tombstone",
		Long: `Erase a client's personal data here (name, email, phone, description, metadata
and notes), keep the customer id as a tombstone, take it out of the search
index, and record client.forgotten in the audit log. The database's free pages
are zeroed and its WAL checkpointed, so no copy of the erased data stays in the
data directory. Later syncs and events store no personal data for it.

This erases Backroom's copy only: the customer stays at Stripe (delete it
there too if the request covers Stripe's copy). It cannot be undone.

Exit status 1 when there is no such client or it was already forgotten.`,
		Example: `  backroom clients forget cus_NffrFeUfNV2Hib`,
		Args:    exactArgs("CUS"),
		RunE: func(c *cobra.Command, args []string) error {
			id, err := customerIDArg(args[0])
			if err != nil {
				return err
			}
			e, err := inv.openEnv(c, openOptions{})
			if err != nil {
				return err
			}
			defer e.close()
			// What there is to erase, to say so afterwards (names of
			// fields only: the erased values are never printed).
			before, err := e.st.GetClient(inv.Ctx, id)
			if err != nil {
				return e.storeError(err)
			}
			if err := e.st.ForgetClient(inv.Ctx, inv.actor(), id); err != nil {
				return e.storeError(err)
			}
			var erased []string
			for _, f := range []struct{ name, v string }{{"name", before.Name}, {"email", before.Email}, {"phone", before.Phone},
				{"description", before.Description}, {"notes", before.Notes}} {
				if f.v != "" {
					erased = append(erased, f.name)
				}
			}
			if n := len(before.Metadata); n > 0 {
				erased = append(erased, fmt.Sprintf("metadata (%d %s)", n, plural(n, "key", "keys")))
			}
			what := "no personal data was stored for it"
			if len(erased) > 0 {
				what = "erased " + strings.Join(erased, ", ")
			}
			fmt.Fprintf(inv.Stdout, "Forgot %s: %s.\nThe customer id stays as a tombstone; audited as %s. Stripe's copy is not touched.\n",
				id, what, store.ActionClientForgotten)
			return nil
		},
	}
}

// --- sync ---------------------------------------------------------------------------

func newClientsSyncCmd(inv *invocation) *cobra.Command {
	return &cobra.Command{
		Use:   "sync",
		Short: "Fetch every customer from Stripe and update the clients here",
		Long: `Fetch every customer from Stripe (at STRIPE_API_BASE, with the active key) and
store them in batches: new customers are created, changed ones updated, and
after a complete listing the clients of the key's mode that Stripe no longer
lists are marked deleted. Forgotten clients get no personal data back.

Progress goes to stderr, the counts to stdout. Running it again is safe (what
did not change is counted unchanged); an interrupted sync (Ctrl-C) keeps what
it fetched and marks nothing deleted: run it again. One sync runs at a time,
here or in the console. The sync is recorded as client.synced with its counts.

Exit status 1 when the sync failed (Stripe unreachable, another sync running,
interrupted), 2 when there is no usable key.`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := inv.openEnv(c, openOptions{needKeyring: true})
			if err != nil {
				return err
			}
			defer e.close()
			ks, err := e.st.KeyStatus(inv.Ctx)
			if err != nil {
				return e.storeError(err)
			}
			if ks.Source == store.SourceNone {
				return usageErrorf("%s; or set %s", store.ErrorMessage(stripeapi.ErrNoKey), envStripeKey)
			}

			// Ctrl-C or SIGTERM stops the sync cleanly (what was fetched is
			// stored, the audit row written); a second one kills.
			ctx, stop := signal.NotifyContext(inv.Ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() { <-ctx.Done(); stop() }()

			log := newLogger(inv.Stderr, max(e.cfg.LogLevel, slog.LevelWarn))
			syncer := stripeapi.NewSyncer(newStripeClient(e.cfg, log), e.st, log)
			fmt.Fprintf(inv.Stderr, "Syncing clients with Stripe (%s key %s, %s)…\n", ks.Mode, ks.Masked, e.cfg.StripeAPIBase)
			pl := newProgressLine(inv.Stderr)
			p, err := syncer.Run(ctx, inv.actor(), func(p store.SyncProgress) {
				of := ""
				if p.Total > 0 {
					of = " of " + count(int64(p.Total))
				}
				pl.update(fmt.Sprintf("fetched %s%s %s: %s created, %s updated, %s unchanged",
					count(int64(p.Fetched)), of, plural(max(p.Fetched, p.Total), "customer", "customers"),
					count(int64(p.Created)), count(int64(p.Updated)), count(int64(p.Unchanged))))
			})
			pl.done()
			if err != nil {
				if p.Fetched > 0 {
					fmt.Fprintf(inv.Stderr, "Before it stopped: %s fetched, %s created, %s updated, %s unchanged (kept).\n",
						count(int64(p.Fetched)), count(int64(p.Created)), count(int64(p.Updated)), count(int64(p.Unchanged)))
				}
				if store.ErrorCode(err) == store.CodeInvalid {
					return usageErrorf("%s", store.ErrorMessage(err))
				}
				return failErrorf("%s", store.ErrorMessage(err))
			}
			w := inv.Stdout
			fmt.Fprintf(w, "Synced %s %s from Stripe (%s mode) in %s.\n", count(int64(p.Fetched)), plural(p.Fetched, "customer", "customers"),
				ks.Mode, p.FinishedAt.Sub(p.StartedAt).Round(time.Millisecond))
			rows := [][2]string{{"created", count(int64(p.Created))}, {"updated", count(int64(p.Updated))},
				{"unchanged", count(int64(p.Unchanged))}, {"marked deleted", count(int64(p.MarkedDeleted))}}
			if p.Stale > 0 {
				rows = append(rows, [2]string{"stale (newer here)", count(int64(p.Stale))})
			}
			if p.Skipped > 0 {
				rows = append(rows, [2]string{"skipped (see warnings)", count(int64(p.Skipped))})
			}
			for _, r := range rows {
				fmt.Fprintf(w, "  %-15s %s\n", r[0]+":", r[1])
			}
			return nil
		},
	}
}

// progressLine shows progress on stderr: one line rewritten in place on a
// terminal, otherwise a line per update (for logs).
type progressLine struct {
	w     io.Writer
	tty   bool
	width int // of the line on screen
	any   bool
}

func newProgressLine(w io.Writer) *progressLine { return &progressLine{w: w, tty: isTerminal(w)} }

func (p *progressLine) update(s string) {
	p.any = true
	if !p.tty {
		fmt.Fprintln(p.w, s)
		return
	}
	pad := max(0, p.width-len(s))
	fmt.Fprint(p.w, "\r"+s+strings.Repeat(" ", pad))
	p.width = len(s)
}

// done ends the line on a terminal.
func (p *progressLine) done() {
	if p.tty && p.any {
		fmt.Fprintln(p.w)
	}
	p.any, p.width = false, 0
}

// --- import and export ----------------------------------------------------------------

func newClientsImportCmd(inv *invocation) *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE.csv|-",
		Short: "Import clients from a CSV file (- for stdin): all rows or none",
		Long: `Import clients from a CSV file with the header

  ` + strings.Join(store.ClientCSVHeader, ",") + `

(the form "clients export" writes; livemode is true or false). New customer
ids are created; clients that came from an import or were added by hand take
the file's fields; clients known from Stripe keep Stripe's data and take only
the file's notes; forgotten clients take nothing.

The whole file is checked first. Every bad row (a malformed quote, text that is
not UTF-8, a duplicate or malformed customer id, a malformed email, a bad
livemode or currency) is reported on stderr with its line number, and then
nothing at all is imported (exit 1): fix the rows and import the file again.
Exit 2 when the file cannot be read.`,
		Example: `  backroom clients import clients.csv
  backroom clients export --search acme | backroom clients import -`,
		Args: exactArgs("FILE"),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := inv.config(c)
			if err != nil {
				return err
			}
			name := args[0]
			var r io.Reader = inv.Stdin
			if name == "-" {
				name = "stdin"
			} else {
				f, err := os.Open(inv.abs(name))
				if err != nil {
					return usageErrorf("cannot read %s: %v", name, errors.Unwrap(err))
				}
				defer f.Close()
				r = f
			}
			rows, err := store.ParseClientsCSV(bufio.NewReaderSize(r, 1<<16))
			var bad store.ImportErrors
			switch {
			case errors.As(err, &bad):
				for _, le := range bad {
					fmt.Fprintf(inv.Stderr, "%s: %s\n", name, printable(le.Error()))
				}
				return failErrorf("%s has %d bad %s (listed above): nothing was imported; fix %s and import the file again",
					name, len(bad), plural(len(bad), "row", "rows"), plural(len(bad), "it", "them"))
			case store.ErrorCode(err) == store.CodeInvalid:
				return failErrorf("%s: %s: nothing was imported", name, printable(store.ErrorMessage(err)))
			case err != nil:
				return usageErrorf("cannot read %s: %v", name, err)
			}
			e, err := inv.openStore(cfg, openOptions{})
			if err != nil {
				return err
			}
			defer e.close()
			res, err := e.st.ImportClients(inv.Ctx, inv.actor(), rows)
			if err != nil {
				return e.storeError(err)
			}
			unchanged := len(rows) - res.Created - res.Updated - res.NotesOnly
			fmt.Fprintf(inv.Stdout, "Imported %s %s from %s: %s created, %s updated, %s notes only, %s unchanged.\n",
				count(int64(len(rows))), plural(len(rows), "row", "rows"), name, count(int64(res.Created)), count(int64(res.Updated)),
				count(int64(res.NotesOnly)), count(int64(unchanged)))
			if res.NotesOnly > 0 || unchanged > 0 {
				fmt.Fprintln(inv.Stdout, "Clients known from Stripe keep Stripe's data (only their notes are taken); forgotten clients take nothing.")
			}
			return nil
		},
	}
}

func newClientsExportCmd(inv *invocation) *cobra.Command {
	var f clientFilter
	c := &cobra.Command{
		Use:   "export [--search Q]",
		Short: "Export clients as CSV to stdout (the form import reads)",
		Long: `Export the clients matching --search and the filters (all by default) as CSV to
stdout, with the header

  ` + strings.Join(store.ClientCSVHeader, ",") + `

in the order "clients list" gives without --sort. Forgotten clients are
exported as their tombstone (the customer id only). The export is recorded in
the audit log as client.exported. The count goes to stderr.`,
		Example: `  backroom clients export > clients.csv
  backroom clients export --search example.org --live > live-example-org.csv`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			q, err := f.query(c)
			if err != nil {
				return err
			}
			e, err := inv.openEnv(c, openOptions{})
			if err != nil {
				return err
			}
			defer e.close()
			w := bufio.NewWriterSize(inv.Stdout, 1<<16)
			n, err := e.st.ExportClients(inv.Ctx, inv.actor(), w, q)
			if ferr := w.Flush(); err == nil && ferr != nil {
				return failErrorf("writing the export: %v", ferr)
			}
			if err != nil {
				return e.storeError(err)
			}
			fmt.Fprintf(inv.Stderr, "exported %s %s\n", count(int64(n)), plural(n, "client", "clients"))
			return nil
		},
	}
	f.register(c.Flags())
	return c
}
