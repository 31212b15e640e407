package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"backroom/server"
	"backroom/server/httpd"
	"backroom/server/webhooks"
	"backroom/store"
)

func newBenchCmd(inv *invocation) *cobra.Command {
	c := groupCmd("bench", "Load generators and benchmarks (development)")
	c.AddCommand(newBenchWebhooksCmd(inv))
	return c
}

// Defaults of `bench webhooks`.
const (
	defaultBenchSenders  = 32
	defaultBenchDuration = 10 * time.Second
	defaultBenchClients  = 100_000
	benchConsoleEvery    = 200 * time.Millisecond
)

// benchFlags are the flags of `bench webhooks`.
type benchFlags struct {
	url                string
	senders            int
	duration           time.Duration
	duplicates, forged string
	reference          bool
	clients            int
	console            bool
	cpuProfile         string
}

// parsePercent reads a share given as a percentage: 10%, 10 or 2.5%.
func parsePercent(flag, v string, maxPct float64) (float64, error) {
	s := strings.TrimSuffix(strings.TrimSpace(v), "%")
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f < 0 || f > maxPct {
		return 0, usageErrorf("--%s %q is not valid: give a percentage from 0%% to %g%% (10%% or 10)", flag, v, maxPct)
	}
	return f / 100, nil
}

func newBenchWebhooksCmd(inv *invocation) *cobra.Command {
	var f benchFlags
	c := &cobra.Command{
		Use:   "webhooks [--url URL] [--senders 32] [--duration 10s] [--duplicates 10%] [--forged 5%] [--reference]",
		Short: "Load-test the Stripe webhook endpoint and check that every acknowledged event is stored",
		Long: `Post signed, realistic Stripe events from --senders concurrent keep-alive
clients for --duration. Of the new events, 35% are customer.created (a new
customer), 25% customer.updated (of a customer created in the run or of an
existing client: a new balance, and for 1 in 10 a new email, which rewrites
the client's search index entry), 15% invoice.paid, 5% each
invoice.payment_failed, charge.refunded, customer.subscription.updated and
.created, and 5% payment_intent.succeeded (stored as ignored). On top,
--duplicates of the requests repeat an acknowledged event (freshly signed,
as Stripe's retries are) and --forged are signed with a wrong secret (the
endpoint must answer 400). Every request's status and latency is recorded.
Afterwards every event id that got a 2xx is looked up in the data directory:
an acknowledged event that is not stored is a lost event, and a forged one
answered 2xx a verification hole (either: exit 1). Missed performance
targets are reported, not an error.

Without --url, Backroom runs in this process (as "serve" would, with this
configuration) on loopback ports, over a fresh temporary data directory
seeded with --clients synthetic clients (default 100,000: the clients search
index is present and customer events update it), or over --data DIR
when given (seeded with --clients more, default none; events are added to it,
so use a scratch directory). A staff member is added to drive one SSH console
during the load (key, then TOTP code): every 200 ms it presses s on the
Webhooks screen (the status filter, a store query) and the time until the
frame answers, and until it shows the filtered list, is recorded.

With --url, the load goes to that endpoint instead (a running "serve"),
signed with the first secret of STRIPE_WEBHOOK_SECRET, and the check reads
the server's data directory (--data); no console is driven.

--reference also runs, in this process, the yardstick of the issue: a bare
net/http handler that checks the signature with stripe-go and does one
INSERT OR IGNORE of the event id into its own WAL SQLite file (synchronous
NORMAL), with the same load for --duration, in two halves: one right
before Backroom's load, one right after it (and after Backroom's store has
closed, so that neither endpoint's background work overlaps the other's
load). The machine's speed drifts (by a fifth and more from one ten-second
window to the next on the 2-core development machine): bracketed so, the
reference meets the machine as Backroom did. Both are printed side by side.

Targets: at least half the reference's events/s, p99 ≤ 25 ms, 0 lost, and
the console answering a key press within 100 ms.`,
		Example: `  backroom bench webhooks --reference
  backroom dev seed --clients 1000000 --data /tmp/bench1m && backroom bench webhooks --reference --data /tmp/bench1m
  backroom bench webhooks --url http://127.0.0.1:8080/webhooks/stripe --data ./data --senders 16 --duration 30s`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error { return inv.benchWebhooks(c, f) },
	}
	fs := c.Flags()
	fs.StringVar(&f.url, "url", "", "post to this endpoint (a running serve) instead of Backroom in this process")
	fs.IntVar(&f.senders, "senders", defaultBenchSenders, "concurrent senders, each with its own keep-alive connection (1-1024)")
	fs.DurationVar(&f.duration, "duration", defaultBenchDuration, "how long the load lasts (100ms-1h)")
	fs.StringVar(&f.duplicates, "duplicates", "10%", "share of requests repeating an acknowledged event")
	fs.StringVar(&f.forged, "forged", "5%", "share of requests signed with a wrong secret")
	fs.BoolVar(&f.reference, "reference", false, "also run the reference endpoint with the same load, and print both")
	fs.IntVar(&f.clients, "clients", defaultBenchClients, "synthetic clients to seed first (in-process only; default 100,000 in a temporary data directory, 0 with --data)")
	fs.BoolVar(&f.console, "console", true, "drive an SSH console during the load (in-process only)")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of Backroom's run to this file")
	return c
}

// benchRun is one endpoint's run: the load, the check and the console.
type benchRun struct {
	name    string
	load    loadResult
	unique  int // acknowledged event ids
	missing int
	example []string
	console *consoleResult
}

func (inv *invocation) benchWebhooks(c *cobra.Command, f benchFlags) error {
	switch {
	case f.senders < 1 || f.senders > 1024:
		return usageErrorf("--senders %d is out of range: use 1 to 1024", f.senders)
	case f.duration < 100*time.Millisecond || f.duration > time.Hour:
		return usageErrorf("--duration %s is out of range: use 100ms to 1h", f.duration)
	case f.clients < 0 || f.clients > maxSeedClients:
		return usageErrorf("--clients %d is out of range: use 0 to %s", f.clients, count(maxSeedClients))
	}
	dup, err := parsePercent("duplicates", f.duplicates, 90)
	if err != nil {
		return err
	}
	forged, err := parsePercent("forged", f.forged, 90)
	if err != nil {
		return err
	}
	if dup+forged > 0.95 {
		return usageErrorf("--duplicates and --forged add up to more than 95%%: leave room for new events")
	}
	cfg, err := inv.config(c)
	if err != nil {
		return err
	}
	external := c.Flags().Changed("url")
	if external {
		for _, flag := range []string{"clients", "console"} {
			if c.Flags().Changed(flag) {
				return usageErrorf("--%s applies to Backroom run in this process, not to --url", flag)
			}
		}
	}
	lo := loadOptions{Senders: f.senders, Duration: f.duration, Duplicates: dup, Forged: forged, Tag: randomID("", 6)}

	ctx, cancel := context.WithCancel(inv.Ctx)
	defer cancel()
	var refLoad *benchReference
	if f.reference {
		refLoad = &benchReference{}
		defer refLoad.close()
	}
	var ours benchRun
	var desc string
	if external {
		ours, desc, err = inv.benchExternal(ctx, cfg, f, lo, refLoad)
	} else {
		ours, desc, err = inv.benchInProcess(ctx, c, cfg, f, lo, refLoad)
	}
	if err != nil {
		return err
	}
	var ref *benchRun
	if refLoad != nil {
		r, err := refLoad.finish(ctx)
		if err != nil {
			return failErrorf("the reference: %v", err)
		}
		ref = &r
	}
	fmt.Fprintf(inv.Stdout, "%s\n%d senders for %s, %.0f%% duplicates, %.0f%% forged; GOMAXPROCS %d\n\n",
		desc, f.senders, f.duration, dup*100, forged*100, runtime.GOMAXPROCS(0))
	printBenchReport(inv.Stdout, ours, ref)
	if ours.missing > 0 || (ref != nil && ref.missing > 0) {
		return failErrorf("acknowledged events are missing from the store: %s", strings.Join(append(ours.example, refExamples(ref)...), ", "))
	}
	if ours.load.ForgedAccepted > 0 {
		return failErrorf("%d forged %s answered 2xx: the endpoint accepted events with a wrong signature",
			ours.load.ForgedAccepted, plural(ours.load.ForgedAccepted, "request was", "requests were"))
	}
	return nil
}

func refExamples(r *benchRun) []string {
	if r == nil {
		return nil
	}
	return r.example
}

// benchExternal loads a running server at --url (side by side with ref,
// when not nil) and checks its data dir.
func (inv *invocation) benchExternal(ctx context.Context, cfg *Config, f benchFlags, lo loadOptions, ref *benchReference) (benchRun, string, error) {
	u, err := checkSendURL(f.url)
	if err != nil {
		return benchRun{}, "", err
	}
	if len(cfg.WebhookSecrets) == 0 {
		return benchRun{}, "", usageErrorf("no webhook secret is configured: set %s to the server's signing secret (whsec_…)", envWebhookSecret)
	}
	dir := inv.abs(cfg.DataDir)
	if !store.HasData(dir) {
		return benchRun{}, "", usageErrorf("%s: no Backroom data in %s to check the acknowledged events against: give the server's data directory with --data", cfg.DataDirOrigin, dir)
	}
	e, err := inv.openStore(cfg, openOptions{})
	if err != nil {
		return benchRun{}, "", err
	}
	defer e.close()
	lo.URL, lo.Secret = u, string(cfg.WebhookSecrets[0])
	if lo.Customers, err = sampleCustomers(ctx, e.st, 2000); err != nil {
		return benchRun{}, "", e.storeError(err)
	}
	if err := ref.firstHalf(ctx, lo); err != nil {
		return benchRun{}, "", err
	}
	stop, err := startCPUProfile(f.cpuProfile)
	if err != nil {
		return benchRun{}, "", err
	}
	res := runLoad(ctx, lo)
	stop()
	run := benchRun{name: "backroom", load: res}
	ids, err := storedWebhookIDs(ctx, e.st)
	if err != nil {
		return benchRun{}, "", e.storeError(err)
	}
	run.unique, run.missing, run.example = missingAcked(res.Acked, ids)
	return run, fmt.Sprintf("Backroom at %s (data %s)", u, dir), nil
}

// benchInProcess runs Backroom in this process over a seeded data
// directory and loads it (side by side with ref, when not nil).
func (inv *invocation) benchInProcess(ctx context.Context, c *cobra.Command, cfg *Config, f benchFlags, lo loadOptions, ref *benchReference) (benchRun, string, error) {
	explicit := c.Flags().Changed(flagData) || inv.Env[envData] != "" || cfg.DataDirOrigin != envData
	if !explicit {
		tmp, err := os.MkdirTemp("", "backroom-bench-")
		if err != nil {
			return benchRun{}, "", failErrorf("creating a temporary data directory: %v", err)
		}
		defer os.RemoveAll(tmp)
		cfg.DataDir, cfg.DataDirOrigin = tmp, "the temporary data directory"
	} else if !c.Flags().Changed("clients") {
		f.clients = 0
	}
	log := newLogger(inv.Stderr, max(cfg.LogLevel, slog.LevelWarn))
	e, err := inv.openStore(cfg, openOptions{logger: log})
	if err != nil {
		return benchRun{}, "", err
	}
	if err := refuseLiveKey(ctx, e.st, "bench webhooks writes synthetic clients and events"); err != nil {
		e.close()
		return benchRun{}, "", err
	}
	if f.clients > 0 {
		// Seed, then start over the seeded data as a server restarted
		// after `dev seed` would: the load then meets connections as
		// production has them, not as the bulk load left them (its
		// bigger page cache leaves the writer's page hash table grown for
		// good, which every commit of the load would scan).
		err := seedClients(ctx, e.st, f.clients, e.st.Now(), inv.Stderr)
		e.close()
		if err != nil {
			return benchRun{}, "", e.storeError(err)
		}
		if e, err = inv.openStore(cfg, openOptions{logger: log}); err != nil {
			return benchRun{}, "", err
		}
	}
	defer e.close()
	st := e.st
	page, err := st.ListClients(ctx, store.ClientQuery{Limit: 1})
	if err != nil {
		return benchRun{}, "", e.storeError(err)
	}
	if lo.Customers, err = sampleCustomers(ctx, st, 2000); err != nil {
		return benchRun{}, "", e.storeError(err)
	}
	secrets := cfg.WebhookSecrets
	if len(secrets) == 0 {
		secrets = []webhooks.Secret{webhooks.Secret(randomID("whsec_", 32))}
	}
	lo.Secret = string(secrets[0])
	var member consoleMember
	if f.console {
		if member, err = addConsoleMember(ctx, st, inv.actor()); err != nil {
			return benchRun{}, "", failErrorf("adding the console's staff member: %v", err)
		}
		if explicit {
			defer func() {
				if err := st.RemoveStaff(context.WithoutCancel(ctx), inv.actor(), member.Name); err != nil {
					log.Error("removing the bench's staff member", "name", member.Name, "err", err)
				}
			}()
		}
	}

	tuneGC()
	sc := inv.serverConfig(cfg, st, log, inv.abs(cfg.DataDir))
	sc.SSHAddr, sc.HTTPAddr, sc.WebhookSecrets = "127.0.0.1:0", "127.0.0.1:0", secrets
	srv, err := server.New(sc)
	if err != nil {
		return benchRun{}, "", serverError(cfg, err)
	}
	srvCtx, stopSrv := context.WithCancel(ctx)
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Run(srvCtx) }()
	stopServer := sync.OnceFunc(func() {
		stopSrv()
		<-srvDone
	})
	defer stopServer()
	if err := waitHTTPReady("http://"+srv.HTTPAddr()+"/readyz", 10*time.Second); err != nil {
		return benchRun{}, "", failErrorf("the server in this process: %v", err)
	}
	lo.URL = "http://" + srv.HTTPAddr() + httpd.WebhookPath

	if ref != nil {
		// What seeding and setting up left for the background (the WAL to
		// copy) must not weigh on the reference's first half.
		if err := st.Checkpoint(ctx); err != nil {
			return benchRun{}, "", e.storeError(err)
		}
		if err := ref.firstHalf(ctx, lo); err != nil {
			return benchRun{}, "", err
		}
	}
	stopProf, err := startCPUProfile(f.cpuProfile)
	if err != nil {
		return benchRun{}, "", err
	}
	run, err := loadWithConsole(ctx, lo, srv.SSHAddr(), member, f.console)
	stopProf()
	if err != nil {
		return benchRun{}, "", err
	}
	stopServer() // every acknowledged event is committed: the check reads what a restart would find
	ids, err := storedWebhookIDs(ctx, st)
	if err != nil {
		return benchRun{}, "", e.storeError(err)
	}
	run.unique, run.missing, run.example = missingAcked(run.load.Acked, ids)
	clients := "about " + count(page.Total)
	if page.TotalExact {
		clients = count(page.Total)
	}
	desc := fmt.Sprintf("Backroom in this process: %s clients (search index present), SQLite synchronous %s", clients, cfg.Synchronous)
	return run, desc, nil
}

// loadWithConsole runs the load and, when console is set, the console
// probe at sshAddr for the load's duration.
func loadWithConsole(ctx context.Context, lo loadOptions, sshAddr string, m consoleMember, console bool) (benchRun, error) {
	run := benchRun{name: "backroom"}
	if !console {
		run.load = runLoad(ctx, lo)
		return run, nil
	}
	probeCtx, stopProbe := context.WithCancel(ctx)
	type probeOut struct {
		res consoleResult
		err error
	}
	probe := make(chan probeOut, 1)
	go func() {
		r, err := runConsoleProbe(probeCtx, sshAddr, m, benchConsoleEvery)
		probe <- probeOut{r, err}
	}()
	run.load = runLoad(ctx, lo)
	stopProbe()
	p := <-probe
	if p.err != nil {
		return run, failErrorf("the console during the load: %v", p.err)
	}
	run.console = &p.res
	return run, nil
}

// benchReference is the reference endpoint of a --reference run and its
// load, which runs in two halves: right before Backroom's load and right
// after it.
type benchReference struct {
	dir      string
	server   *referenceServer
	load     *loader
	duration time.Duration
}

// firstHalf starts the reference endpoint for lo's load (the same secret
// and mix, ids of its own, no existing customers) and runs half of it. A
// nil r does nothing.
func (r *benchReference) firstHalf(ctx context.Context, lo loadOptions) error {
	if r == nil {
		return nil
	}
	dir, err := os.MkdirTemp("", "backroom-bench-reference-")
	if err != nil {
		return failErrorf("the reference: %v", err)
	}
	r.dir = dir
	if r.server, err = startReference(dir, lo.Secret); err != nil {
		return failErrorf("the reference: %v", err)
	}
	lo.URL, lo.Customers, lo.Tag = r.server.URL, nil, lo.Tag+"r"
	r.load, r.duration = newLoader(lo), lo.Duration
	r.load.run(ctx, lo.Duration/2)
	return nil
}

// finish runs the rest of the reference's load and checks what it stored
// against what it acknowledged.
func (r *benchReference) finish(ctx context.Context) (benchRun, error) {
	if r.load == nil {
		return benchRun{}, errors.New("it was not started")
	}
	r.load.run(ctx, max(r.duration-r.load.elapsed, 0))
	run := benchRun{name: "reference", load: r.load.result()}
	ids, err := r.server.stored(ctx)
	if err != nil {
		return benchRun{}, err
	}
	run.unique, run.missing, run.example = missingAcked(run.load.Acked, ids)
	return run, nil
}

func (r *benchReference) close() {
	if r.server != nil {
		r.server.Close()
	}
	if r.dir != "" {
		os.RemoveAll(r.dir)
	}
}

// waitHTTPReady polls url until it answers 200.
func waitHTTPReady(url string, limit time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer 200 within %s", url, limit)
}

// startCPUProfile starts a CPU profile into file ("" for none) and returns
// what stops it.
func startCPUProfile(file string) (func(), error) {
	if file == "" {
		return func() {}, nil
	}
	fh, err := os.Create(file)
	if err != nil {
		return nil, usageErrorf("--cpuprofile: %v", errors.Unwrap(err))
	}
	if err := pprof.StartCPUProfile(fh); err != nil {
		fh.Close()
		return nil, failErrorf("--cpuprofile: %v", err)
	}
	return func() { pprof.StopCPUProfile(); fh.Close() }, nil
}

// Targets of the issue.
const (
	benchTargetRatio   = 0.5
	benchTargetP99     = 25 * time.Millisecond
	benchTargetConsole = 100 * time.Millisecond
)

// printBenchReport writes ours and the reference (when run) side by side,
// and the targets.
func printBenchReport(w io.Writer, ours benchRun, ref *benchRun) {
	runs := []benchRun{ours}
	if ref != nil {
		runs = append(runs, *ref)
	}
	// The table is printed once every cell is known: a column is as wide
	// as its widest cell (labels at least 26, figures at least 12), the
	// figures two spaces apart.
	type tableRow struct {
		label string
		cells []string
	}
	var table []tableRow
	row := func(label string, val func(r benchRun) string) {
		tr := tableRow{label: label}
		for _, r := range runs {
			tr.cells = append(tr.cells, val(r))
		}
		table = append(table, tr)
	}
	row("", func(r benchRun) string { return r.name })
	row("events/s (all requests)", func(r benchRun) string { return count(int64(r.load.rate() + 0.5)) })
	row("requests", func(r benchRun) string { return count(int64(r.load.Requests)) })
	row("latency p50", func(r benchRun) string { return ms(percentile(r.load.Latencies, 50)) })
	row("latency p99", func(r benchRun) string { return ms(percentile(r.load.Latencies, 99)) })
	row("latency max", func(r benchRun) string { return ms(maxDuration(r.load.Latencies)) })
	codes := map[int]bool{}
	for _, r := range runs {
		for c := range r.load.ByCode {
			codes[c] = true
		}
	}
	for _, code := range slices.Sorted(maps.Keys(codes)) {
		row(fmt.Sprintf("  %d %s", code, http.StatusText(code)), func(r benchRun) string { return count(int64(r.load.ByCode[code])) })
		if code/100 == 2 {
			for _, a := range []string{store.WebhookProcessed, store.WebhookDuplicate, store.WebhookIgnored} {
				if ours.load.ByAnswer[a] > 0 {
					row("    "+a, func(r benchRun) string { return countOrDash(r.load.ByAnswer[a]) })
				}
			}
		}
	}
	row("  no answer (errors)", func(r benchRun) string { return count(int64(r.load.Errors)) })
	row("sent forged / repeats", func(r benchRun) string { return count(int64(r.load.Forged)) + " / " + count(int64(r.load.Repeats)) })
	row("forged but acknowledged", func(r benchRun) string { return count(int64(r.load.ForgedAccepted)) })
	row("acknowledged event ids", func(r benchRun) string { return count(int64(r.unique)) })
	row("acknowledged but missing", func(r benchRun) string { return count(int64(r.missing)) })
	labelWidth, widths := 26, make([]int, len(runs))
	for _, tr := range table {
		labelWidth = max(labelWidth, utf8.RuneCountInString(tr.label))
		for i, c := range tr.cells {
			widths[i] = max(widths[i], 12, utf8.RuneCountInString(c))
		}
	}
	for _, tr := range table {
		fmt.Fprintf(w, "%-*s", labelWidth, tr.label)
		for i, c := range tr.cells {
			fmt.Fprintf(w, "  %*s", widths[i], c)
		}
		fmt.Fprintln(w)
	}
	for _, r := range runs {
		if r.load.FirstErr != "" {
			fmt.Fprintf(w, "first error (%s): %s\n", r.name, r.load.FirstErr)
		}
	}
	if c := ours.console; c != nil {
		fmt.Fprintf(w, "\nconsole during the load (%d key presses, s on the Webhooks screen every %s):\n", len(c.Answer), benchConsoleEvery)
		fmt.Fprintf(w, "  key → frame answers:  p50 %s  p99 %s  max %s\n", ms(percentile(c.Answer, 50)),
			ms(percentile(c.Answer, 99)), ms(maxDuration(c.Answer)))
		fmt.Fprintf(w, "  key → filtered list:  p50 %s  p99 %s  max %s", ms(percentile(c.Loaded, 50)),
			ms(percentile(c.Loaded, 99)), ms(maxDuration(c.Loaded)))
		if c.Timeouts > 0 {
			fmt.Fprintf(w, "  (%d key presses unanswered after 3 s)", c.Timeouts)
		}
		fmt.Fprintln(w)
	}

	fmt.Fprintln(w, "\ntargets:")
	check := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	if ref != nil && ref.load.rate() > 0 {
		ratio := ours.load.rate() / ref.load.rate()
		fmt.Fprintf(w, "  events/s ≥ ½ the reference's:   %.2f× (%s vs %s)  %s\n", ratio, count(int64(ours.load.rate()+0.5)),
			count(int64(ref.load.rate()+0.5)), check(ratio >= benchTargetRatio))
	}
	p99 := percentile(ours.load.Latencies, 99)
	fmt.Fprintf(w, "  p99 ≤ %s:                     %s  %s\n", ms(benchTargetP99), ms(p99), check(p99 <= benchTargetP99))
	fmt.Fprintf(w, "  0 acknowledged events lost:      %d  %s\n", ours.missing, check(ours.missing == 0))
	if c := ours.console; c != nil {
		worst := maxDuration(c.Loaded)
		if c.Timeouts > 0 {
			worst = 3 * time.Second
		}
		fmt.Fprintf(w, "  console key → frame ≤ %s:   max %s (filtered list: max %s)  %s\n", ms(benchTargetConsole),
			ms(maxDuration(c.Answer)), ms(worst), check(maxDuration(c.Answer) <= benchTargetConsole && c.Timeouts == 0))
	}
}

func countOrDash(n int) string {
	if n == 0 {
		return "-"
	}
	return count(int64(n))
}

func maxDuration(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return slices.Max(ds)
}

// ms writes a duration in milliseconds with one decimal.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + " ms"
}

// percentile is the p-th percentile (nearest rank) of ds; 0 for none.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(float64(len(s))*p/100+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}
