package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/stripe/stripe-go/v76/webhook"

	"backroom/server/httpd"
	"backroom/server/webhooks"
	"backroom/store"
)

func newWebhooksCmd(inv *invocation) *cobra.Command {
	c := groupCmd("webhooks", "Review, replay and try the Stripe webhook events Backroom received")
	c.AddCommand(
		newWebhooksListCmd(inv),
		newWebhooksShowCmd(inv),
		newWebhooksReplayCmd(inv),
		newWebhooksSendCmd(inv),
	)
	return c
}

// --- output forms ---------------------------------------------------------------

// webhookJSON is one event in `webhooks list --json`.
type webhookJSON struct {
	EventID    string  `json:"event_id"`
	Type       string  `json:"type"`
	Status     string  `json:"status"`
	ReceivedAt string  `json:"received_at"`
	APIVersion string  `json:"api_version"`
	Attempts   int     `json:"attempts"`
	CustomerID string  `json:"customer_id"`
	Livemode   bool    `json:"livemode"`
	Created    *string `json:"created"`
	UpdatedAt  string  `json:"updated_at"`
	Error      string  `json:"error"`
}

// webhookDetailJSON is `webhooks show --json`: the list's fields, with
// attempts as the list of deliveries rather than their count, the label
// of the secret that verified the event, and the stored payload.
type webhookDetailJSON struct {
	EventID    string          `json:"event_id"`
	Type       string          `json:"type"`
	Status     string          `json:"status"`
	ReceivedAt string          `json:"received_at"`
	APIVersion string          `json:"api_version"`
	Attempts   []attemptJSON   `json:"attempts"`
	CustomerID string          `json:"customer_id"`
	Livemode   bool            `json:"livemode"`
	Created    *string         `json:"created"`
	UpdatedAt  string          `json:"updated_at"`
	Error      string          `json:"error"`
	Secret     string          `json:"secret"`
	Payload    json.RawMessage `json:"payload"`
}

// attemptJSON is one delivery of an event in `webhooks show --json`.
type attemptJSON struct {
	ReceivedAt string            `json:"received_at"`
	RemoteAddr string            `json:"remote_addr"`
	Outcome    string            `json:"outcome"`
	Reason     string            `json:"reason"`
	Error      string            `json:"error"`
	Headers    map[string]string `json:"headers"`
}

// rejectedJSON is one rejected attempt in `webhooks list --rejected --json`.
type rejectedJSON struct {
	ReceivedAt string            `json:"received_at"`
	RemoteAddr string            `json:"remote_addr"`
	Reason     string            `json:"reason"`
	Headers    map[string]string `json:"headers"`
}

func msTime(t time.Time) string { return t.UTC().Format(store.TimeFormat) }

func toWebhookJSON(e store.WebhookEvent) webhookJSON {
	return webhookJSON{
		EventID: e.EventID, Type: e.Type, Status: e.Status, ReceivedAt: msTime(e.ReceivedAt), APIVersion: e.APIVersion,
		Attempts: e.Attempts, CustomerID: e.CustomerID, Livemode: e.Livemode, Created: rfc3339OrNil(e.Created),
		UpdatedAt: msTime(e.UpdatedAt), Error: e.Error,
	}
}

func headersOrEmpty(h map[string]string) map[string]string {
	if h == nil {
		return map[string]string{}
	}
	return h
}

func toAttemptJSON(a store.WebhookAttempt) attemptJSON {
	return attemptJSON{ReceivedAt: msTime(a.ReceivedAt), RemoteAddr: a.RemoteAddr, Outcome: a.Outcome, Reason: a.Reason,
		Error: a.Error, Headers: headersOrEmpty(a.Headers)}
}

// payloadJSON is the stored payload as a JSON value: the object itself.
// A payload that is not JSON (it cannot be: only verified JSON is stored)
// would be given as a string rather than break the output.
func payloadJSON(p []byte) json.RawMessage {
	if len(p) > 0 && json.Valid(p) {
		return json.RawMessage(p)
	}
	s, _ := json.Marshal(string(p))
	return s
}

// Columns of the events table (100 terminal columns with a usual event id).
const (
	colWhTime     = 19 // 2006-01-02 15:04:05
	colWhEvent    = 28 // evt_ and 24 characters, as Stripe makes them; longer ids are never cut
	colWhType     = 30
	colWhStatus   = 9
	colWhAttempts = 3
)

func webhookTableHeader() string {
	return fmt.Sprintf("%-*s  %-*s  %-*s  %-*s  %*s  %s", colWhTime, "RECEIVED (UTC)", colWhEvent, "EVENT", colWhType, "TYPE",
		colWhStatus, "STATUS", colWhAttempts, "ATT", "CUSTOMER")
}

func webhookTableRow(e store.WebhookEvent) string {
	id := printable(e.EventID)
	if len(id) < colWhEvent {
		id += strings.Repeat(" ", colWhEvent-len(id))
	}
	line := e.ReceivedAt.UTC().Format(time.DateTime) + "  " + id + "  " + fit(e.Type, colWhType) + "  " +
		fit(e.Status, colWhStatus) + "  " + fmt.Sprintf("%*d", colWhAttempts, e.Attempts) + "  " + printable(e.CustomerID)
	return strings.TrimRight(line, " ")
}

// --- paging -----------------------------------------------------------------------

// webhookPage is how many events one query of a listing reads.
const webhookPage = 500

// eachWebhook calls fn for the events matching q, newest first, up to
// limit (0: all), reading one keyset page at a time. It reports whether
// more events matched beyond the limit.
func eachWebhook(ctx context.Context, st *store.Store, q store.WebhookQuery, limit int, fn func(store.WebhookEvent) error) (more bool, err error) {
	n := 0
	for {
		want := webhookPage
		if limit > 0 {
			want = min(webhookPage, limit-n)
		}
		q.Limit = want + 1 // one more tells whether there are more
		evs, err := st.ListWebhooks(ctx, q)
		if err != nil {
			return false, err
		}
		shown := evs[:min(len(evs), want)]
		for _, e := range shown {
			if err := fn(e); err != nil {
				return false, err
			}
			n++
		}
		switch {
		case len(evs) <= want:
			return false, nil
		case limit > 0 && n >= limit:
			return true, nil
		}
		q.BeforeID = shown[len(shown)-1].ID
		if err := ctx.Err(); err != nil {
			return false, err
		}
	}
}

// --- list ---------------------------------------------------------------------------

// webhookStatuses are the statuses an event can have, for --status.
var webhookStatuses = []string{store.WebhookProcessed, store.WebhookIgnored, store.WebhookFailed}

func newWebhooksListCmd(inv *invocation) *cobra.Command {
	var status, typ string
	var limit int
	var asJSON, rejected bool
	c := &cobra.Command{
		Use:   "list [--status S] [--type T] [--limit N] [--rejected] [--json]",
		Short: "List webhook events (newest first, one row per event id), or the rejected attempts",
		Long: `List the Stripe events received, newest first, one row per event id with its
latest status: processed, ignored (a type Backroom does not act on) or failed
(processing failed: Stripe retries it, and "webhooks replay" processes it
again). 50 by default; --limit 0 lists them all, page by page.

--status keeps one status; --type an exact type (invoice.paid) or a prefix
ending in "." or "*" (customer., customer.subscription.*).

--json writes one object per line, nothing else, with the keys event_id, type,
status, received_at (first delivery, RFC 3339 UTC), api_version, attempts (how
many deliveries), customer_id, livemode, created (Stripe's, or null),
updated_at (last delivery or replay) and error.

--rejected lists the requests that failed verification instead (bad or
missing signature, stale or future timestamp, malformed JSON), newest first:
time, remote address, reason, and with --json the recorded headers (keys
received_at, remote_addr, reason, headers). At most 100 a minute are stored
per source address; how many more were only counted in the last 24 hours, if
any, goes to stderr.`,
		Example: `  backroom webhooks list --status failed
  backroom webhooks list --type customer.subscription.* --limit 0 --json > subscriptions.jsonl
  backroom webhooks list --rejected`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			if limit < 0 {
				return usageErrorf("--limit %d: give a number of events, or 0 for all", limit)
			}
			status = strings.ToLower(strings.TrimSpace(status))
			if status != "" && !slices.Contains(webhookStatuses, status) {
				return usageErrorf("--status %q is not valid: use processed, ignored or failed", status)
			}
			typ = strings.TrimSpace(typ)
			if rejected && (status != "" || typ != "") {
				return usageErrorf("--status and --type filter events, not rejected attempts: drop them, or drop --rejected")
			}
			e, err := inv.openEnv(c, openOptions{})
			if err != nil {
				return err
			}
			defer e.close()
			if rejected {
				return inv.listRejected(e, limit, asJSON)
			}
			q := store.WebhookQuery{Status: status, Type: typ}
			w := bufio.NewWriter(inv.Stdout)
			var more bool
			n, writeErr, err := writeRows(w, asJSON, webhookTableHeader(), func(yield func(store.WebhookEvent) error) (err error) {
				more, err = eachWebhook(inv.Ctx, e.st, q, limit, yield)
				return err
			}, func(ev store.WebhookEvent) any { return toWebhookJSON(ev) }, webhookTableRow)
			switch {
			case writeErr != nil:
				return writeErr
			case err != nil:
				return e.storeError(err)
			}
			if !asJSON {
				switch {
				case n == 0 && status == "" && typ == "":
					fmt.Fprintf(w, "No webhook events yet: point Stripe at https://YOUR-HOST%s, or try one with %s webhooks send.\n", httpd.WebhookPath, inv.Prog)
				case n == 0:
					fmt.Fprintln(w, "No events match.")
				default:
					line := fmt.Sprintf("%s %s", count(int64(n)), plural(n, "event", "events"))
					if more {
						line += "; more match: --limit 0 lists them all"
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
	f := c.Flags()
	f.StringVar(&status, "status", "", "only events with this status: processed, ignored or failed")
	f.StringVar(&typ, "type", "", "only events of this type, or of a prefix ending in . or * (customer.subscription.*)")
	f.IntVarP(&limit, "limit", "n", 50, "at most this many; 0 for all")
	f.BoolVar(&rejected, "rejected", false, "list the rejected attempts (failed verification) instead")
	f.BoolVar(&asJSON, "json", false, "one JSON object per line")
	return c
}

// listRejected writes the rejected attempts, newest first, and the count
// of those only counted (over the cap) in the last 24 hours to stderr.
func (inv *invocation) listRejected(e *cmdEnv, limit int, asJSON bool) error {
	w := bufio.NewWriter(inv.Stdout)
	header := fmt.Sprintf("%-23s  %-39s  %s", "RECEIVED (UTC)", "REMOTE ADDRESS", "REASON")
	n, writeErr, err := writeRows(w, asJSON, header, func(yield func(store.WebhookAttempt) error) error {
		return eachRejected(inv.Ctx, e.st, limit, yield)
	}, func(a store.WebhookAttempt) any {
		return rejectedJSON{ReceivedAt: msTime(a.ReceivedAt), RemoteAddr: a.RemoteAddr, Reason: a.Reason, Headers: headersOrEmpty(a.Headers)}
	}, func(a store.WebhookAttempt) string {
		return fmt.Sprintf("%-23s  %-39s  %s", a.ReceivedAt.UTC().Format("2006-01-02 15:04:05.000"), printable(a.RemoteAddr), printable(a.Reason))
	})
	switch {
	case writeErr != nil:
		return writeErr
	case err != nil:
		return e.storeError(err)
	}
	if !asJSON {
		if n == 0 {
			fmt.Fprintln(w, "No rejected attempts stored.")
		} else {
			fmt.Fprintf(w, "%s rejected %s\n", count(int64(n)), plural(n, "attempt", "attempts"))
		}
	}
	if err := w.Flush(); err != nil {
		return failErrorf("writing the list: %v", err)
	}
	dropped, err := e.st.RejectedDropped(inv.Ctx, e.st.Now().Add(-24*time.Hour))
	if err != nil {
		return e.storeError(err)
	}
	if dropped > 0 {
		fmt.Fprintf(inv.Stderr, "%s more rejected %s in the last 24 hours %s only counted, not stored (over %d a minute from one address)\n",
			count(dropped), plural(int(dropped), "attempt", "attempts"), plural(int(dropped), "was", "were"), store.RejectedPerMinute)
	}
	return nil
}

// eachRejected calls yield for the stored rejected attempts, newest first,
// at most limit of them (0: all), a page at a time.
func eachRejected(ctx context.Context, st *store.Store, limit int, yield func(store.WebhookAttempt) error) error {
	n := 0
	var before int64
	for {
		page := webhookPage
		if limit > 0 {
			page = min(page, limit-n)
		}
		if page == 0 {
			return nil
		}
		atts, err := st.ListRejected(ctx, before, page)
		if err != nil {
			return err
		}
		for _, a := range atts {
			n++
			if err := yield(a); err != nil {
				return err
			}
		}
		if len(atts) < page {
			return nil
		}
		before = atts[len(atts)-1].ID
	}
}

// --- show ---------------------------------------------------------------------------

// eventIDArg checks an event id given on the command line.
func eventIDArg(id string) (string, error) {
	id = strings.TrimSpace(id)
	if id == "" || len(id) > 255 || strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return "", usageErrorf("%q is not an event id (expected evt_ followed by letters and digits, e.g. evt_1NG8Du2eZvKYlo2CUI79vXWy)", clipArg(id))
	}
	return id, nil
}

func clipArg(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

func newWebhooksShowCmd(inv *invocation) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "show EVT [--json]",
		Short: "Show one event: its status, every delivery attempt and the stored payload",
		Long: `Show one stored event: its type, status, error, customer, which configured
secret verified it, every delivery attempt (time, remote address, outcome,
error and the recorded headers) and the stored payload, pretty-printed.

--json writes one object: the keys of "webhooks list --json", except that
attempts is the list of deliveries (objects with received_at, remote_addr,
outcome, reason, error, headers), plus secret and payload (the stored event
as a JSON object). Payloads of forgotten clients are stored without their
personal fields.

Exit status 1 when no event has that id.`,
		Example: `  backroom webhooks show evt_1NG8Du2eZvKYlo2CUI79vXWy
  backroom webhooks show evt_1NG8Du2eZvKYlo2CUI79vXWy --json | jq .payload.data.object`,
		Args: exactArgs("EVT"),
		RunE: func(c *cobra.Command, args []string) error {
			id, err := eventIDArg(args[0])
			if err != nil {
				return err
			}
			e, err := inv.openEnv(c, openOptions{})
			if err != nil {
				return err
			}
			defer e.close()
			ev, err := e.st.GetWebhook(inv.Ctx, id)
			if err != nil {
				return e.storeError(err)
			}
			atts, err := e.st.WebhookAttempts(inv.Ctx, id)
			if err != nil {
				return e.storeError(err)
			}
			if asJSON {
				d := webhookDetailJSON{
					EventID: ev.EventID, Type: ev.Type, Status: ev.Status, ReceivedAt: msTime(ev.ReceivedAt), APIVersion: ev.APIVersion,
					Attempts: make([]attemptJSON, 0, len(atts)), CustomerID: ev.CustomerID, Livemode: ev.Livemode,
					Created: rfc3339OrNil(ev.Created), UpdatedAt: msTime(ev.UpdatedAt), Error: ev.Error, Secret: ev.Secret,
					Payload: payloadJSON(ev.Payload),
				}
				for _, a := range atts {
					d.Attempts = append(d.Attempts, toAttemptJSON(a))
				}
				return writeJSON(inv.Stdout, d)
			}
			printWebhook(inv.Stdout, ev, atts)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return c
}

// printWebhook writes an event's fields as aligned lines, its attempts
// (oldest first) and its payload, pretty-printed.
func printWebhook(w io.Writer, ev store.WebhookEvent, atts []store.WebhookAttempt) {
	line := func(label, value string) {
		fmt.Fprintf(w, "%-13s %s\n", label+":", printable(value))
	}
	line("event id", ev.EventID)
	line("type", ev.Type)
	line("status", ev.Status)
	if ev.Error != "" {
		line("error", ev.Error)
	}
	cus := ev.CustomerID
	if cus == "" {
		cus = "none"
	}
	line("customer", cus)
	mode := "test"
	if ev.Livemode {
		mode = "live"
	}
	line("mode", mode)
	line("api version", ev.APIVersion)
	created := "unknown"
	if !ev.Created.IsZero() {
		created = ev.Created.UTC().Format(time.RFC3339)
	}
	line("created", created+" (at Stripe)")
	line("received", msTime(ev.ReceivedAt)+" (first delivery)")
	line("updated", msTime(ev.UpdatedAt)+" (last delivery or replay)")
	if ev.Secret != "" {
		line("verified by", ev.Secret)
	}
	fmt.Fprintf(w, "\n%d %s (oldest first):\n", len(atts), plural(len(atts), "attempt", "attempts"))
	for _, a := range atts {
		outcome := a.Outcome
		if a.Error != "" {
			outcome += ": " + a.Error
		}
		fmt.Fprintf(w, "  %s  %-9s from %s\n", msTime(a.ReceivedAt), printable(outcome), printable(a.RemoteAddr))
		for _, k := range slices.Sorted(maps.Keys(a.Headers)) {
			fmt.Fprintf(w, "      %s: %s\n", printable(k), printable(a.Headers[k]))
		}
	}
	fmt.Fprintln(w, "\npayload:")
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, ev.Payload, "  ", "  "); err == nil {
		fmt.Fprintln(w, "  "+printableLines(pretty.String()))
	} else {
		fmt.Fprintln(w, "  "+printable(string(ev.Payload)))
	}
}

// printableLines is printable for text whose newlines are kept.
func printableLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = printable(l)
	}
	return strings.Join(lines, "\n")
}

// --- replay -------------------------------------------------------------------------

func newWebhooksReplayCmd(inv *invocation) *cobra.Command {
	var failed bool
	c := &cobra.Command{
		Use:   "replay EVT | --failed",
		Short: "Process stored events again: one, or every failed one (audited as webhook.replayed)",
		Long: `Process a stored event again from its stored payload, exactly as a delivery
would (customer updates never overwrite newer data; a billing event is
recorded once), and print the new outcome. --failed replays every failed
event, oldest first. Each replay is recorded in the audit log as
webhook.replayed by cli:USER, with the status before and the outcome.

Exit status 1 when the event is unknown, or when an event is still failed
after its replay (its error is printed: fix the cause, then replay again).`,
		Example: `  backroom webhooks replay evt_1NG8Du2eZvKYlo2CUI79vXWy
  backroom webhooks replay --failed`,
		Args: func(c *cobra.Command, args []string) error {
			switch {
			case failed && len(args) > 0:
				return usageErrorf("give an event id or --failed, not both")
			case !failed && len(args) != 1:
				return usageErrorf("%s needs an event id, or --failed for every failed event\nUsage: %s", c.CommandPath(), c.UseLine())
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			var ids []string
			if !failed {
				id, err := eventIDArg(args[0])
				if err != nil {
					return err
				}
				ids = []string{id}
			}
			e, err := inv.openEnv(c, openOptions{})
			if err != nil {
				return err
			}
			defer e.close()
			if failed {
				// Newest first by keyset, then reversed: oldest first.
				if _, err := eachWebhook(inv.Ctx, e.st, store.WebhookQuery{Status: store.WebhookFailed}, 0, func(ev store.WebhookEvent) error {
					ids = append(ids, ev.EventID)
					return nil
				}); err != nil {
					return e.storeError(err)
				}
				slices.Reverse(ids)
				if len(ids) == 0 {
					fmt.Fprintln(inv.Stdout, "No failed events to replay.")
					return nil
				}
			}
			tally := map[string]int{}
			for _, id := range ids {
				r, err := e.st.ReplayWebhookDetail(inv.Ctx, inv.actor(), id, webhooks.Process)
				if err != nil {
					if failed && store.ErrorCode(err) == store.CodeNotFound {
						continue // pruned meanwhile
					}
					return e.storeError(err)
				}
				tally[r.Outcome]++
				msg := fmt.Sprintf("%s  %s: %s → %s", printable(id), printable(r.Type), r.Before, r.Outcome)
				if r.Outcome == store.WebhookFailed && r.Error != "" {
					msg += " (" + printable(r.Error) + ")"
				}
				fmt.Fprintln(inv.Stdout, msg)
			}
			if failed {
				fmt.Fprintf(inv.Stdout, "Replayed %s %s: %d processed, %d ignored, %d still failed.\n", count(int64(len(ids))),
					plural(len(ids), "event", "events"), tally[store.WebhookProcessed], tally[store.WebhookIgnored], tally[store.WebhookFailed])
			}
			if n := tally[store.WebhookFailed]; n > 0 {
				return failErrorf("%d %s still failed after the replay: see the error above (%s webhooks show EVT has the details)",
					n, plural(n, "event is", "events are"), inv.Prog)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&failed, "failed", false, "replay every failed event, oldest first")
	return c
}

// --- send ---------------------------------------------------------------------------

// sendTimeout bounds `webhooks send`'s request.
const sendTimeout = 15 * time.Second

// defaultWebhookURL is this server's endpoint as seen from this machine:
// http:// and the HTTP listener's address (a wildcard host becomes
// loopback) and the webhook path.
func defaultWebhookURL(httpAddr string) string {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return "http://" + httpAddr + httpd.WebhookPath
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port) + httpd.WebhookPath
}

// checkSendURL accepts an http or https URL with a host.
func checkSendURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usageErrorf("--url %q is not valid: give the endpoint's http or https URL, such as http://127.0.0.1:8080%s", clipArg(raw), httpd.WebhookPath)
	}
	return u.String(), nil
}

// noRedirectClient is an HTTP client that never follows a redirect (the
// endpoint never sends one: showing it is more useful).
func noRedirectClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func newWebhooksSendCmd(inv *invocation) *cobra.Command {
	var typ, customer, target string
	c := &cobra.Command{
		Use:   "send [--type customer.created] [--customer CUS] [--url URL]",
		Short: "Sign a sample Stripe event with the configured secret and post it (try Backroom without Stripe)",
		Long: `Build a realistic sample event of --type, sign it with the first secret of
STRIPE_WEBHOOK_SECRET as Stripe does (stripe-go's GenerateTestSignedPayload),
post it to this server's endpoint (http://BACKROOM_HTTP_ADDR/webhooks/stripe;
--url for another), and print the answer. The secret is never printed.

Types with a realistic object: ` + strings.Join(sampleEventTypes, ", ") + `.
Any other type is sent with a minimal object (Backroom stores it as ignored).
--customer names the customer (default: a new random id); send an invoice.paid
for a customer created before to see it in the client's billing activity.

Exit status 0 when the endpoint answered 2xx, 1 for any other answer or when
it cannot be reached, 2 when no secret is configured.`,
		Example: `  STRIPE_WEBHOOK_SECRET=whsec_... backroom webhooks send
  backroom webhooks send --type invoice.paid --customer cus_NffrFeUfNV2Hib
  backroom webhooks send --type customer.updated --customer cus_NffrFeUfNV2Hib --url https://backroom.example.com/webhooks/stripe`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			typ = strings.TrimSpace(typ)
			if typ == "" || len(typ) > 100 || strings.ContainsFunc(typ, func(r rune) bool { return r <= ' ' || r > '~' || r == '"' || r == '\\' }) {
				return usageErrorf("--type %q is not an event type: use Stripe's names, such as customer.created or invoice.paid", clipArg(typ))
			}
			if customer == "" {
				customer = randomID("cus_", 14)
			} else {
				id, err := customerIDArg(customer)
				if err != nil {
					return err
				}
				customer = id
			}
			cfg, err := inv.config(c)
			if err != nil {
				return err
			}
			if len(cfg.WebhookSecrets) == 0 {
				return usageErrorf("no webhook secret is configured: set %s to the endpoint's signing secret (whsec_…, from Stripe's dashboard or `stripe listen`; the server needs the same one)", envWebhookSecret)
			}
			if !c.Flags().Changed("url") {
				target = defaultWebhookURL(cfg.HTTPAddr)
			}
			target, err = checkSendURL(target)
			if err != nil {
				return err
			}
			now := time.Now()
			evt := sampleEvent{Type: typ, EventID: randomID("evt_", 24), CustomerID: customer, Created: now, Variant: rand.Uint64(),
				Person: personOf(customer)}
			body := sampleBody(evt)
			signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{
				Payload: body, Secret: string(cfg.WebhookSecrets[0]), Timestamp: now,
			})
			fmt.Fprintf(inv.Stdout, "Sending %s (%s, customer %s) to %s\n", evt.EventID, typ, customer, target)

			ctx, cancel := context.WithTimeout(inv.Ctx, sendTimeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
			if err != nil {
				return usageErrorf("--url %q: %v", clipArg(target), err)
			}
			req.Header.Set("Content-Type", "application/json; charset=utf-8")
			req.Header.Set("User-Agent", "backroom-webhooks-send (sample event)")
			req.Header.Set("Stripe-Signature", signed.Header)
			resp, err := noRedirectClient(sendTimeout).Do(req)
			if err != nil {
				var ue *url.Error
				if errors.As(err, &ue) {
					err = ue.Err
				}
				hint := ""
				if !c.Flags().Changed("url") {
					hint = fmt.Sprintf(" (is %s serve running, with %s %s?)", inv.Prog, cfg.HTTPAddrOrigin, cfg.HTTPAddr)
				}
				return failErrorf("cannot reach %s: %v%s", target, err, hint)
			}
			defer resp.Body.Close()
			answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			text := strings.TrimSpace(string(answer))
			fmt.Fprintf(inv.Stdout, "%s: %s\n", resp.Status, printable(text))
			if resp.StatusCode/100 != 2 {
				hint := ""
				switch {
				case resp.StatusCode == http.StatusBadRequest && text == webhooks.ReasonNoMatch:
					hint = fmt.Sprintf(": the server has another secret (%s must be the same for the server and this command)", envWebhookSecret)
				case resp.StatusCode == http.StatusServiceUnavailable:
					hint = fmt.Sprintf(": the server has no webhook secret (start it with %s set)", envWebhookSecret)
				case resp.StatusCode == http.StatusInternalServerError:
					hint = fmt.Sprintf(": %s webhooks show %s has the error", inv.Prog, evt.EventID)
				}
				return failErrorf("the endpoint answered %s%s", resp.Status, hint)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&typ, "type", "customer.created", "the event's type")
	f.StringVar(&customer, "customer", "", "the customer id (default: a new random cus_ id)")
	f.StringVar(&target, "url", "", "the endpoint (default: http:// + "+envHTTPAddr+" + "+httpd.WebhookPath+")")
	return c
}
