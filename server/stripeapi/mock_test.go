package stripeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"backroom/store"
)

// testKey is a test-mode secret key stripe-mock accepts; liveKey one it
// refuses (stripe-mock only takes test keys, and echoes the Authorization
// header in its 401 message: a real test of redaction).
const (
	testKey = "sk_test_4eC39HqLyjWDarjtT1zdp7dcTESTKEY1"
	liveKey = "sk_live_51HxYzAbCdEfGhIjKlMnOpQrLIVEKEY9"
)

var (
	cliAdmin = store.Actor{Name: "root", Role: store.RoleAdmin, Channel: store.ChannelCLI}
	sshStaff = store.Actor{Name: "bob", Role: store.RoleStaff, Channel: store.ChannelSSH, RemoteAddr: "203.0.113.7:40022", SessionID: "s1"}
	sshAdmin = store.Actor{Name: "alice", Role: store.RoleAdmin, Channel: store.ChannelSSH, RemoteAddr: "203.0.113.8:40022", SessionID: "s2"}
)

// stripeErrorJSON is an error body the way Stripe writes it.
func stripeErrorJSON(typ, code, msg string) string {
	e := map[string]any{"type": typ, "message": msg}
	if code != "" {
		e["code"] = code
	}
	b, _ := json.Marshal(map[string]any{"error": e})
	return string(b)
}

// reply is an injected answer.
type reply struct {
	status int
	body   string
}

// stripeProxy sits in front of stripe-mock. It serves GET /v1/customers
// pages itself, from stripe-mock's fixture customer stamped with distinct
// ids, names and emails (after stripe-mock has accepted the request: its
// authentication and parameter checks apply); it answers GET
// /v1/customers/{id} for ids marked deleted with stripe-mock's own deleted
// customer; hooks inject failures; everything else goes to stripe-mock.
type stripeProxy struct {
	t    *testing.T
	mock *url.URL
	rp   *httputil.ReverseProxy
	srv  *httptest.Server

	mu        sync.Mutex
	customers []map[string]any
	deleted   map[string]bool
	pageHits  map[string]int // list requests per starting_after ("" = first page)
	listLog   []string       // starting_after of each list request, in order
	hits      map[string]int // requests per path
	// onList, when set, may answer a list request itself (hit counts the
	// requests for that page so far, this one included).
	onList func(r *http.Request, after string, hit int) *reply
	// onOther, when set, may answer any other request itself.
	onOther func(r *http.Request) *reply
}

func newStripeProxy(t *testing.T, mockBase string, n int) *stripeProxy {
	t.Helper()
	u, err := url.Parse(mockBase)
	if err != nil {
		t.Fatal(err)
	}
	p := &stripeProxy{t: t, mock: u, rp: httputil.NewSingleHostReverseProxy(u),
		deleted: map[string]bool{}, pageHits: map[string]int{}, hits: map[string]int{}}
	tmpl := p.fixtureCustomer()
	for i := range n {
		p.customers = append(p.customers, stamp(tmpl, i))
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

// URL is the proxy's base URL.
func (p *stripeProxy) URL() string { return p.srv.URL }

// fixtureCustomer is stripe-mock's customer fixture.
func (p *stripeProxy) fixtureCustomer() map[string]any {
	req, _ := http.NewRequest("GET", p.mock.String()+"/v1/customers?limit=1", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct{ Data []map[string]any }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list.Data) == 0 {
		p.t.Fatalf("stripe-mock's customer list: %v (%d customers)", err, len(list.Data))
	}
	return list.Data[0]
}

// stamp makes customer i from the fixture.
func stamp(tmpl map[string]any, i int) map[string]any {
	b, _ := json.Marshal(tmpl)
	var c map[string]any
	_ = json.Unmarshal(b, &c)
	c["id"] = customerID(i)
	c["name"] = fmt.Sprintf("Client %04d", i)
	c["email"] = fmt.Sprintf("client%04d@example.com", i)
	c["phone"] = fmt.Sprintf("+1555%07d", i)
	c["description"] = fmt.Sprintf("customer number %d", i)
	c["created"] = 1_700_000_000 + i
	c["balance"] = i * 10
	c["delinquent"] = i%7 == 0
	c["metadata"] = map[string]any{"n": strconv.Itoa(i)}
	return c
}

func customerID(i int) string { return fmt.Sprintf("cus_Test%05d", i) }

// set changes a field of customer i.
func (p *stripeProxy) set(i int, field string, v any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.customers[i][field] = v
}

// remove drops customer i from the list (as Stripe does once it is
// deleted) and answers for it as deleted.
func (p *stripeProxy) remove(i int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id := customerID(i)
	for j, c := range p.customers {
		if c["id"] == id {
			p.customers = append(p.customers[:j], p.customers[j+1:]...)
			break
		}
	}
	p.deleted[id] = true
}

func (p *stripeProxy) setOnList(f func(r *http.Request, after string, hit int) *reply) {
	p.mu.Lock()
	p.onList = f
	p.mu.Unlock()
}

func (p *stripeProxy) setOnOther(f func(r *http.Request) *reply) {
	p.mu.Lock()
	p.onOther = f
	p.mu.Unlock()
}

// listRequests is the starting_after of every list request so far.
func (p *stripeProxy) listRequests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.listLog...)
}

func (p *stripeProxy) pageRequests(after string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pageHits[after]
}

func (p *stripeProxy) pathHits(path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits[path]
}

func (p *stripeProxy) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.hits[r.URL.Path]++
	onList, onOther := p.onList, p.onOther
	p.mu.Unlock()

	if r.Method == http.MethodGet && r.URL.Path == "/v1/customers" {
		after := r.URL.Query().Get("starting_after")
		p.mu.Lock()
		p.pageHits[after]++
		hit := p.pageHits[after]
		p.listLog = append(p.listLog, after)
		p.mu.Unlock()
		if onList != nil {
			if rep := onList(r, after, hit); rep != nil {
				writeReply(w, rep)
				return
			}
		}
		p.servePage(w, r, after)
		return
	}
	if onOther != nil {
		if rep := onOther(r); rep != nil {
			writeReply(w, rep)
			return
		}
	}
	if id, ok := strings.CutPrefix(r.URL.Path, "/v1/customers/"); ok && r.Method == http.MethodGet {
		p.mu.Lock()
		gone := p.deleted[id]
		p.mu.Unlock()
		if gone {
			// stripe-mock's deleted customer, for this id.
			r2 := r.Clone(r.Context())
			r2.Method = http.MethodDelete
			p.rp.ServeHTTP(w, r2)
			return
		}
	}
	p.rp.ServeHTTP(w, r)
}

func writeReply(w http.ResponseWriter, rep *reply) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

// servePage asks stripe-mock first (authentication, parameters); when it
// accepts the request, the page comes from the proxy's customers.
func (p *stripeProxy) servePage(w http.ResponseWriter, r *http.Request, after string) {
	rec := httptest.NewRecorder()
	p.rp.ServeHTTP(rec, r.Clone(context.WithoutCancel(r.Context())))
	if rec.Code != http.StatusOK {
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return
	}
	limit := 10
	if s := r.URL.Query().Get("limit"); s != "" {
		limit, _ = strconv.Atoi(s)
	}
	p.mu.Lock()
	start := 0
	if after != "" {
		start = -1
		for i, c := range p.customers {
			if c["id"] == after {
				start = i + 1
				break
			}
		}
	}
	if start < 0 {
		p.mu.Unlock()
		writeReply(w, &reply{400, stripeErrorJSON("invalid_request_error", "resource_missing", "No such customer: '"+after+"'")})
		return
	}
	end := min(start+limit, len(p.customers))
	page := map[string]any{"object": "list", "url": "/v1/customers", "has_more": end < len(p.customers),
		"data": p.customers[start:end]}
	body, err := json.Marshal(page)
	p.mu.Unlock()
	if err != nil {
		p.t.Error(err)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// --- stores and logs ----------------------------------------------------

// testClock is the real time plus an offset tests can move forward.
type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// logBuffer collects log output from many goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// env is a store, a client and a syncer wired together for one test.
type env struct {
	st    *store.Store
	c     *Client
	sy    *Syncer
	clock *testClock
	logs  *logBuffer
	dir   string
	mk    store.MasterKey
}

type envOpts struct {
	base    string // Stripe API base
	key     string // stored with SetStripeKey ("" = none)
	retries int64
	dir     string // reuse a data directory (a second process)
	mk      store.MasterKey
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	e := &env{clock: &testClock{}, logs: &logBuffer{}, dir: o.dir}
	if e.dir == "" {
		e.dir = t.TempDir()
	}
	if o.mk == nil {
		o.mk = store.NewMasterKey()
	}
	e.mk = o.mk
	if o.retries == 0 {
		o.retries = 2
	}
	log := e.logs.logger()
	e.c = New(Config{APIBase: o.base, MaxNetworkRetries: o.retries, Logger: log})
	st, err := store.Open(context.Background(), store.Options{Dir: e.dir, MasterKey: o.mk, Now: e.clock.Now, Logger: log, KeyChecker: e.c})
	if err != nil {
		t.Fatal(err)
	}
	e.st = st
	e.sy = NewSyncer(e.c, st, log)
	e.sy.rateLimitWait = 5 * time.Millisecond
	t.Cleanup(func() {
		e.sy.Wait()
		st.Close()
	})
	if o.key != "" {
		e.setKeyUnchecked(t, o.key)
	}
	return e
}

// setKeyUnchecked stores key without asking Stripe (a store opened
// without a KeyChecker on the same directory).
func (e *env) setKeyUnchecked(t *testing.T, key string) {
	t.Helper()
	// e.st would ask Stripe (its KeyChecker), which may refuse the key on
	// purpose: a second handle without a checker stores it.
	st, err := store.Open(context.Background(), store.Options{Dir: e.dir, MasterKey: e.mk})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.SetStripeKey(context.Background(), cliAdmin, store.SetKeyRequest{Key: key}); err != nil {
		t.Fatal(err)
	}
}
