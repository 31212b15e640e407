package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"backroom/store"
)

// TestDevSeed seeds 2,000 clients after a real audit row, then lists them
// (the default page, a limit across pages, and all of them streamed) and
// checks that the audit chain still verifies and never goes back in time.
func TestDevSeed(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.run(testKey, "key", "set").must(t, 0) // a real audit row first
	r := h.run("", "dev", "seed", "--clients", "2000").must(t, 0)
	if !strings.Contains(r.stdout, "Seeded 2,000 synthetic clients and 200 audit rows in ") {
		t.Errorf("seed output:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "seeding clients: 2,000 of 2,000") || !strings.Contains(r.stderr, "building the indexes and the search index") {
		t.Errorf("no progress on stderr:\n%s", r.stderr)
	}

	r = h.run("", "clients", "list").must(t, 0)
	lines := nonEmptyLines(r.stdout)
	if len(lines) != 52 || lines[51] != "50 of about 2,000 clients; --limit 0 lists them all" {
		t.Errorf("default list: %d lines, ending %q", len(lines), lines[len(lines)-1])
	}
	if ids := listIDs(t, h, "--limit", "700", "--sort", "balance"); len(ids) != 700 {
		t.Errorf("--limit 700 gave %d clients", len(ids))
	}
	ids := listIDs(t, h, "--limit", "0")
	seen := map[string]bool{}
	for _, id := range ids {
		seen[id] = true
	}
	if len(ids) != 2000 || len(seen) != 2000 {
		t.Errorf("--limit 0 gave %d clients (%d distinct), want 2000", len(ids), len(seen))
	}
	// The search index was built after the load.
	if ids := listIDs(t, h, "--search", "@example.org", "--limit", "0"); len(ids) < 100 {
		t.Errorf("search after seeding found %d clients", len(ids))
	}

	r = h.run("", "audit", "verify").must(t, 0)
	if !strings.Contains(r.stdout, "audit log OK: 202 rows") { // key.updated, 200 seeded, dev.seeded
		t.Errorf("verify: %s", r.stdout)
	}
	r = h.run("", "audit", "export").must(t, 0)
	var prev time.Time
	var first, last string
	rows := nonEmptyLines(r.stdout)
	for i, l := range rows {
		var ev struct{ Time, Action string }
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatal(err)
		}
		at, err := time.Parse(time.RFC3339, ev.Time)
		if err != nil {
			t.Fatal(err)
		}
		if at.Before(prev) {
			t.Fatalf("row %d (%s) is dated %s, before the row above it (%s)", i+1, ev.Action, at, prev)
		}
		prev = at
		if i == 0 {
			first = ev.Action
		}
		if i == len(rows)-2 {
			last = ev.Action
		}
	}
	if first != store.ActionKeyUpdated || last != actionDevSeeded {
		t.Errorf("first row %s, last before the export %s", first, last)
	}
}

// TestDevSeedSpreadsAuditOverNinetyDays: on a data dir with no history the
// synthetic audit rows cover the last 90 days.
func TestDevSeedSpreadsAuditOverNinetyDays(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	now := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	h.now = func() time.Time { return now }
	h.run("", "dev", "seed", "--clients", "10", "--audit", "500").must(t, 0)
	r := h.run("", "audit", "export", "--since", "2026-01-01").must(t, 0)
	rows := nonEmptyLines(r.stdout)
	if len(rows) != 502 { // 500 seeded, dev.seeded, and the export itself
		t.Fatalf("%d rows", len(rows))
	}
	var ev struct{ Time string }
	json.Unmarshal([]byte(rows[0]), &ev)
	if ev.Time != "2026-08-04T10:00:00.000Z" {
		t.Errorf("first seeded row at %s, want 90 days back", ev.Time)
	}
	json.Unmarshal([]byte(rows[499]), &ev)
	if at, _ := time.Parse(time.RFC3339, ev.Time); at.After(now) || now.Sub(at) > 5*time.Hour {
		t.Errorf("last seeded row at %s, want just before %s", ev.Time, now)
	}
}

func TestDevSeedRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"dev", "seed"}, "--clients is required"},
		{[]string{"dev", "seed", "--clients", "0"}, "--clients 0 is out of range: use 1 to 10,000,000"},
		{[]string{"dev", "seed", "--clients", "10000001"}, "out of range"},
		{[]string{"dev", "seed", "--clients", "-5"}, "out of range"},
		{[]string{"dev", "seed", "--clients", "10", "--audit", "-1"}, "--audit -1 is out of range"},
		{[]string{"dev", "seed", "--clients", "lots"}, "invalid argument"},
		{[]string{"dev"}, "needs a sub-command"},
	} {
		r := h.run("", tt.args...).must(t, 2)
		if !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v: stderr lacks %q:\n%s", tt.args, tt.want, r.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(h.data, store.DBFile)); err == nil {
		t.Error("a refused seed created the database")
	}
	// Never next to a live key.
	r := h.runEnv(map[string]string{envStripeKey: liveKey}, "", "dev", "seed", "--clients", "5").must(t, 2)
	if !strings.Contains(r.stderr, "is a live key") || strings.Contains(r.stderr, liveKey) {
		t.Errorf("live key:\n%s", r.stderr)
	}
	if ids := listIDs(t, h); len(ids) != 0 {
		t.Errorf("seeded next to a live key: %d clients", len(ids))
	}
}
