package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func clientEnv(t *testing.T) *env {
	t.Helper()
	return newEnv(t)
}

func someClients(n int, version int64) []ClientData {
	out := make([]ClientData, n)
	for i := range out {
		out[i] = ClientData{
			CustomerID: fmt.Sprintf("cus_%04d", i), Name: fmt.Sprintf("Client %04d", i),
			Email: fmt.Sprintf("client%04d@example.com", i), Currency: "usd", Balance: int64(i * 100),
			Livemode: i%2 == 0, Delinquent: i%10 == 0, StripeCreated: time.Unix(1700000000+int64(i), 0), Version: version,
		}
	}
	return out
}

func TestClientsUpsertListSearchForget(t *testing.T) {
	e := clientEnv(t)
	res, err := e.s.UpsertClients(ctxb, SourceSync, someClients(100, 10))
	if err != nil || res.Created != 100 {
		t.Fatalf("upsert: %+v %v", res, err)
	}
	res, err = e.s.UpsertClients(ctxb, SourceSync, someClients(100, 11))
	if err != nil || res.Unchanged != 100 {
		t.Fatalf("re-upsert: %+v %v", res, err)
	}
	older := someClients(1, 5)
	older[0].Name = "Stale Name"
	if res, _ := e.s.UpsertClients(ctxb, SourceWebhook, older); res.Stale != 1 {
		t.Fatalf("older data not refused: %+v", res)
	}
	p, err := e.s.ListClients(ctxb, ClientQuery{Limit: 10})
	if err != nil || len(p.Clients) != 10 || p.Clients[0].Name != "Client 0000" || !p.More || p.Total != 100 {
		t.Fatalf("first page: %+v %v", p, err)
	}
	p2, err := e.s.ListClients(ctxb, ClientQuery{Limit: 10, After: &p.Clients[9]})
	if err != nil || p2.Clients[0].Name != "Client 0010" {
		t.Fatalf("next page: %+v %v", p2.Clients[0], err)
	}
	back, err := e.s.ListClients(ctxb, ClientQuery{Limit: 10, Before: &p2.Clients[0]})
	if err != nil || back.Clients[0].Name != "Client 0000" || back.Clients[9].Name != "Client 0009" {
		t.Fatalf("previous page: %v %v", back.Clients, err)
	}
	s, err := e.s.ListClients(ctxb, ClientQuery{Search: "ent0042@exa"})
	if err != nil || len(s.Clients) != 1 || s.Clients[0].CustomerID != "cus_0042" || !s.TotalExact || s.Total != 1 {
		t.Fatalf("search: %+v %v", s, err)
	}
	yes := true
	d, err := e.s.ListClients(ctxb, ClientQuery{Delinquent: &yes, Sort: SortBalance, Desc: true, Limit: 3})
	if err != nil || len(d.Clients) != 3 || d.Clients[0].CustomerID != "cus_0090" || d.Total != 10 {
		t.Fatalf("delinquent by balance: %+v %v", d, err)
	}
	admin := Actor{Name: "root", Role: RoleAdmin, Channel: ChannelCLI}
	if err := e.s.SetClientNotes(ctxb, admin, "cus_0042", "prefers email"); err != nil {
		t.Fatal(err)
	}
	if err := e.s.ForgetClient(ctxb, admin, "cus_0042"); err != nil {
		t.Fatal(err)
	}
	s, _ = e.s.ListClients(ctxb, ClientQuery{Search: "ent0042@exa"})
	if len(s.Clients) != 0 {
		t.Fatal("a forgotten client is still found by email")
	}
	s, _ = e.s.ListClients(ctxb, ClientQuery{Search: "cus_0042"})
	if len(s.Clients) != 0 {
		t.Fatal("a forgotten client is still in the search index")
	}
	// A later sync brings no personal data back.
	later := someClients(43, 20)[42:]
	if _, err := e.s.UpsertClients(ctxb, SourceSync, later); err != nil {
		t.Fatal(err)
	}
	c, _ := e.s.GetClient(ctxb, "cus_0042")
	if c.Name != "" || c.Email != "" || !c.Forgotten() || c.Balance != 4200 {
		t.Fatalf("forgotten client after sync: %+v", c)
	}
	if err := e.s.Checkpoint(ctxb); err != nil {
		t.Fatal(err)
	}
	filepath.Walk(e.dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, _ := os.ReadFile(path)
		for _, needle := range []string{"client0042@example.com", "Client 0042", "prefers email"} {
			if strings.Contains(string(b), needle) {
				t.Errorf("%s still holds %q", path, needle)
			}
		}
		return nil
	})
	_ = context.Background
}

func TestSeedClientsSearchable(t *testing.T) {
	e := clientEnv(t)
	if err := e.s.SeedClients(ctxb, 2000, time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC), nil); err != nil {
		t.Fatal(err)
	}
	p, err := e.s.ListClients(ctxb, ClientQuery{})
	if err != nil || p.Total != 2000 || len(p.Clients) != 40 {
		t.Fatalf("after seed: total %d, %d rows, %v", p.Total, len(p.Clients), err)
	}
	c := p.Clients[7]
	s, err := e.s.ListClients(ctxb, ClientQuery{Search: c.Email[2:12]})
	if err != nil || len(s.Clients) == 0 {
		t.Fatalf("seeded client not found by an email fragment: %v", err)
	}
	// Inserting after a seed still indexes (the trigger is back).
	if _, err := e.s.UpsertClients(ctxb, SourceWebhook, []ClientData{{CustomerID: "cus_new1", Name: "Zebulon Quartz", Version: 1}}); err != nil {
		t.Fatal(err)
	}
	if s, _ := e.s.ListClients(ctxb, ClientQuery{Search: "bulon Qua"}); len(s.Clients) != 1 {
		t.Fatal("a client added after the seed is not searchable")
	}
	// The seed's bigger page cache is given back for the writer's own.
	var cache int
	if err := e.s.wdb.QueryRow(`PRAGMA cache_size`).Scan(&cache); err != nil || cache != -writerCacheKiB {
		t.Errorf("writer's cache_size after a seed = %d (%v), want %d", cache, err, -writerCacheKiB)
	}
}
