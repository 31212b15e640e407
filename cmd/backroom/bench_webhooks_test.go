package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// reportRow returns the cells of the bench report's row with label.
func reportRow(t *testing.T, report, label string) []string {
	t.Helper()
	for _, l := range strings.Split(report, "\n") {
		if rest, ok := strings.CutPrefix(l, label); ok && (rest == "" || rest[0] == ' ') {
			return strings.Fields(rest)
		}
	}
	t.Fatalf("no row %q in the report:\n%s", label, report)
	return nil
}

// TestBenchWebhooks runs `bench webhooks` briefly, in-process with the
// reference and the console probe: it prints both columns, loses nothing,
// and exits 0.
func TestBenchWebhooks(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	delete(h.env, envData) // a temporary data directory of its own
	r := h.run("", "bench", "webhooks", "--duration", "700ms", "--senders", "4", "--clients", "300", "--reference")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	out := r.stdout
	for _, want := range []string{
		"4 senders for 700ms, 10% duplicates, 5% forged",
		"console during the load (", "targets:", "events/s ≥ ½ the reference's:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`^Backroom in this process: (about )?300 clients \(search index present\), SQLite synchronous NORMAL\n`).MatchString(out) {
		t.Errorf("first line:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^ +backroom +reference$`).MatchString(out) {
		t.Errorf("no backroom and reference columns:\n%s", out)
	}
	for _, label := range []string{"acknowledged but missing", "forged but acknowledged", "  no answer (errors)"} {
		if cells := reportRow(t, out, label); len(cells) != 2 || cells[0] != "0" || cells[1] != "0" {
			t.Errorf("%s: %v, want 0 for both", label, cells)
		}
	}
	if cells := reportRow(t, out, "  200 OK"); len(cells) != 2 || cells[0] == "0" || cells[1] == "0" {
		t.Errorf("200 OK: %v, want some for both", cells)
	}
	if cells := reportRow(t, out, "  400 Bad Request"); len(cells) != 2 {
		t.Errorf("400 Bad Request (the forged ones): %v", cells)
	}
	if !regexp.MustCompile(`key → frame answers: +p50 [0-9.]+ ms`).MatchString(out) {
		t.Errorf("no console figures:\n%s", out)
	}
	if !regexp.MustCompile(`0 acknowledged events lost: +0 +met`).MatchString(out) {
		t.Errorf("the lost-events target is not met:\n%s", out)
	}
}

// TestBenchWebhooksAgainstServe points the load generator at a running
// serve (--url) and checks its data directory.
func TestBenchWebhooksAgainstServe(t *testing.T) {
	t.Parallel()
	const secret = "whsec_benchUrlBenchUrlBenchUrl00001"
	h := newHarness(t)
	h.run("", "staff", "list").must(t, 0)
	p := startBackroom(t, h.data, envWebhookSecret+"="+secret)
	h.env[envWebhookSecret] = secret
	r := h.run("", "bench", "webhooks", "--url", "http://"+p.HTTPAddr+"/webhooks/stripe", "--duration", "400ms", "--senders", "3")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "Backroom at http://"+p.HTTPAddr) || strings.Contains(r.stdout, "reference") {
		t.Errorf("report:\n%s", r.stdout)
	}
	if cells := reportRow(t, r.stdout, "acknowledged but missing"); len(cells) != 1 || cells[0] != "0" {
		t.Errorf("acknowledged but missing: %v", cells)
	}
	if cells := reportRow(t, r.stdout, "acknowledged event ids"); len(cells) != 1 || cells[0] == "0" {
		t.Errorf("acknowledged event ids: %v, want some", cells)
	}
	if strings.Contains(r.stdout+r.stderr+p.Log(), secret) {
		t.Error("the secret was printed")
	}
}

// The reference's load runs in two halves, one before Backroom's and one
// after: the first half's requests count in the result, and together the
// halves last the whole duration.
func TestBenchReferenceRunsInTwoHalves(t *testing.T) {
	t.Parallel()
	ref := &benchReference{}
	defer ref.close()
	lo := loadOptions{Secret: "whsec_halvesHalvesHalvesHalves00001", Senders: 2, Duration: 400 * time.Millisecond, Tag: "halves"}
	if err := ref.firstHalf(context.Background(), lo); err != nil {
		t.Fatal(err)
	}
	first, elapsed := 0, ref.load.elapsed
	for _, s := range ref.load.senders {
		first += s.res.Requests
	}
	if first == 0 || elapsed < lo.Duration/2 {
		t.Fatalf("first half: %d requests in %s, want some in at least %s", first, elapsed, lo.Duration/2)
	}
	run, err := ref.finish(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if run.load.Requests <= first || run.load.Elapsed < lo.Duration {
		t.Errorf("both halves: %d requests in %s, want more than the first half's %d in at least %s",
			run.load.Requests, run.load.Elapsed, first, lo.Duration)
	}
	if run.unique == 0 || run.missing != 0 || run.load.ForgedAccepted != 0 {
		t.Errorf("reference: %d acknowledged ids, %d missing, %d forged accepted", run.unique, run.missing, run.load.ForgedAccepted)
	}
}

func TestBenchWebhooksRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--senders", "0"}, "--senders 0 is out of range"},
		{[]string{"--duration", "1ms"}, "--duration 1ms is out of range"},
		{[]string{"--duplicates", "200%"}, `--duplicates "200%" is not valid`},
		{[]string{"--forged", "x"}, `--forged "x" is not valid`},
		{[]string{"--duplicates", "60", "--forged", "40%"}, "more than 95%"},
		{[]string{"--clients", "-1"}, "--clients -1 is out of range"},
		{[]string{"--url", "http://127.0.0.1:1/webhooks/stripe", "--clients", "10"}, "--clients applies to Backroom run in this process"},
		{[]string{"--url", "http://127.0.0.1:1/webhooks/stripe"}, envWebhookSecret},
		{[]string{"--url", "gopher://x"}, "is not valid"},
	} {
		start := time.Now()
		r := h.run("", append([]string{"bench", "webhooks"}, tc.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("bench webhooks %v: exit %d %q, want 2 naming %q", tc.args, r.code, r.stderr, tc.want)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("bench webhooks %v took %s to refuse", tc.args, time.Since(start))
		}
	}
	// Never over a data directory with a live key (it writes synthetic
	// clients and events there).
	r := h.runEnv(map[string]string{envStripeKey: liveKey}, "", "bench", "webhooks", "--data", h.data, "--clients", "5", "--duration", "200ms")
	if r.code != 2 || !strings.Contains(r.stderr, "is a live key") || strings.Contains(r.stderr+r.stdout, liveKey) {
		t.Errorf("bench over a live key's data directory: exit %d\n%s", r.code, r.stderr)
	}
	if ids := listIDs(t, h); len(ids) != 0 {
		t.Errorf("bench seeded next to a live key: %d clients", len(ids))
	}
}

// Wide cells (a long run's counts, a long status text) widen their
// column: the report's cells never run into each other, and the columns
// stay aligned.
func TestBenchReportColumns(t *testing.T) {
	run := func(name string, forged, repeats int) benchRun {
		return benchRun{name: name, load: loadResult{Requests: 288_323, Elapsed: 30 * time.Second, Forged: forged, Repeats: repeats,
			ByCode: map[int]int{200: 273_860, 500: 3}, ByAnswer: map[string]int{}}}
	}
	ours, ref := run("backroom", 8_107, 16_008), run("reference", 14_463, 29_090)
	var b strings.Builder
	printBenchReport(&b, ours, &ref)
	out := b.String()
	if cells := reportRow(t, out, "sent forged / repeats"); strings.Join(cells, " ") != "8,107 / 16,008 14,463 / 29,090" {
		t.Errorf("sent forged / repeats: %q\n%s", cells, out)
	}
	lines := strings.Split(out, "\n")
	width := utf8.RuneCountInString(lines[0])
	for _, l := range lines[1:] {
		if l == "" {
			break // the end of the table
		}
		if n := utf8.RuneCountInString(l); n != width {
			t.Errorf("line %q is %d wide, the header %d:\n%s", l, n, width, out)
		}
	}
	if !regexp.MustCompile(`14,463 / 29,090\n`).MatchString(out) || !regexp.MustCompile(`8,107 / 16,008  +14,463`).MatchString(out) {
		t.Errorf("cells not two spaces apart at least:\n%s", out)
	}
}
