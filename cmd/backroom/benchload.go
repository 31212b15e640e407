package main

// The webhook load generator behind `backroom bench webhooks` (and the
// kill -9 test): senders posting signed Stripe events over keep-alive
// connections, the reference endpoint they are compared with, and the
// console session driven during the load.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
	gossh "golang.org/x/crypto/ssh"
	_ "modernc.org/sqlite" // the reference's own database

	"backroom/server/httpd"
	"backroom/store"
	"backroom/tui"
)

// loadOptions configure one load run.
type loadOptions struct {
	URL        string
	Secret     string // signs the genuine events
	Senders    int
	Duration   time.Duration
	Duplicates float64 // share of requests that repeat an acknowledged event (0..1)
	Forged     float64 // share of requests signed with a wrong secret (0..1)
	// Customers are existing clients that updates and billing events may
	// be about (besides the customers created by the run).
	Customers []loadCustomer
	// Tag keeps the ids of different runs apart (letters and digits).
	Tag string
	// Acks, when set, counts the acknowledged requests as they happen.
	Acks *atomic.Int64
}

// loadResult is what a load run saw.
type loadResult struct {
	Requests  int
	Elapsed   time.Duration
	ByCode    map[int]int
	ByAnswer  map[string]int // the text of the 2xx answers (processed, duplicate, ignored; ok for the reference)
	Errors    int            // requests with no answer
	FirstErr  string
	Latencies []time.Duration
	Acked     []string // ids of the events answered 2xx (a duplicate repeats an id)
	Forged    int
	Repeats   int
	// ForgedAccepted counts forged requests answered 2xx: a verification
	// hole (it must stay 0).
	ForgedAccepted int
}

func (r loadResult) rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// forgedSecret signs the forged requests: the endpoint must refuse them.
const forgedSecret = "whsec_forgedForgedForgedForgedForged0"

// loadCustomer is a customer the load's events are about, and what its
// events keep (an update changes the balance, and now and then the
// email; never the name, currency or creation time).
type loadCustomer struct {
	ID, Name, Email, Currency string
	Created                   time.Time
	Person                    uint64 // the made-up rest: phone, address
}

// about fills in ev's customer.
func (c loadCustomer) about(ev *sampleEvent) {
	ev.CustomerID, ev.Name, ev.Email, ev.Currency, ev.CustomerCreated, ev.Person = c.ID, c.Name, c.Email, c.Currency, c.Created, c.Person
}

// emailChangeShare is the share of customer.updated events that change
// the customer's email (and so the clients search index). Stripe sends
// customer.updated for any change of a customer (balance, invoice
// settings, default payment method, metadata, tax ids…); a new email is
// one of the rarer ones.
const emailChangeShare = 0.1

// sentEvent is an acknowledged event a sender may post again.
type sentEvent struct {
	id   string
	body []byte
}

// sender is one keep-alive client posting events in a loop.
type sender struct {
	o         loadOptions
	n         int // sender number
	rng       *mrand.Rand
	client    *http.Client
	seq       int
	customers []loadCustomer // created by this sender
	acked     []sentEvent    // ring of acknowledged events, for duplicates
	res       loadResult
}

func newLoadClient() *http.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	c := noRedirectClient(15 * time.Second)
	c.Transport = tr
	return c
}

// runLoad posts events from o.Senders senders for o.Duration (or until
// ctx ends) and returns what they saw.
func runLoad(ctx context.Context, o loadOptions) loadResult {
	l := newLoader(o)
	l.run(ctx, o.Duration)
	return l.result()
}

// loader is a load that runs in slices: between two, its senders keep
// the customers they created and the events they may repeat, as if the
// load had not stopped (their connections are closed at each slice's end).
type loader struct {
	senders []*sender
	elapsed time.Duration // the slices' time, together
}

func newLoader(o loadOptions) *loader {
	l := &loader{}
	for i := range o.Senders {
		l.senders = append(l.senders, &sender{o: o, n: i, rng: mrand.New(mrand.NewPCG(uint64(i)+1, uint64(time.Now().UnixNano()))),
			client: newLoadClient(), res: loadResult{ByCode: map[int]int{}, ByAnswer: map[string]int{}}})
	}
	return l
}

// run posts events from every sender for d (or until ctx ends).
func (l *loader) run(ctx context.Context, d time.Duration) {
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for _, s := range l.senders {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				s.post(ctx)
			}
		})
	}
	wg.Wait()
	l.elapsed += time.Since(start)
	// The next run may come much later (the reference's second half
	// follows Backroom's whole load): a kept connection could meet the
	// server's idle timeout just as a POST reuses it.
	for _, s := range l.senders {
		s.client.CloseIdleConnections()
	}
}

// result is what the senders saw, together.
func (l *loader) result() loadResult {
	res := loadResult{Elapsed: l.elapsed, ByCode: map[int]int{}, ByAnswer: map[string]int{}}
	for _, s := range l.senders {
		res.Requests += s.res.Requests
		res.Errors += s.res.Errors
		if res.FirstErr == "" {
			res.FirstErr = s.res.FirstErr
		}
		res.Forged += s.res.Forged
		res.ForgedAccepted += s.res.ForgedAccepted
		res.Repeats += s.res.Repeats
		res.Latencies = append(res.Latencies, s.res.Latencies...)
		res.Acked = append(res.Acked, s.res.Acked...)
		for k, v := range s.res.ByCode {
			res.ByCode[k] += v
		}
		for k, v := range s.res.ByAnswer {
			res.ByAnswer[k] += v
		}
	}
	return res
}

// customer picks a customer for an update or a billing event: one this
// sender created (own, an index in s.customers), or an existing one (own
// -1); ok is false when there is none yet.
func (s *sender) customer() (c loadCustomer, own int, ok bool) {
	mine, old := len(s.customers), len(s.o.Customers)
	switch {
	case mine > 0 && (old == 0 || s.rng.IntN(2) == 0):
		i := s.rng.IntN(mine)
		return s.customers[i], i, true
	case old > 0:
		return s.o.Customers[s.rng.IntN(old)], -1, true
	}
	return loadCustomer{}, -1, false
}

// next builds the next request's event: its id, body, and whether it is
// forged or a repeat.
func (s *sender) next() (id string, body []byte, forged, repeat bool) {
	r := s.rng.Float64()
	if r < s.o.Forged {
		forged = true
	} else if r < s.o.Forged+s.o.Duplicates && len(s.acked) > 0 {
		e := s.acked[s.rng.IntN(len(s.acked))]
		return e.id, e.body, false, true
	}
	s.seq++
	id = "evt_" + s.o.Tag + strconv.Itoa(s.n) + "x" + strconv.Itoa(s.seq)
	ev := sampleEvent{EventID: id, Created: time.Now(), Variant: s.rng.Uint64()}
	t := s.rng.Float64()
	cus, own, ok := s.customer()
	switch {
	case t < 0.35 || !ok:
		ev.Type = "customer.created"
		c := loadCustomer{ID: "cus_" + s.o.Tag + strconv.Itoa(s.n) + "x" + strconv.Itoa(s.seq), Created: ev.Created.Truncate(time.Second),
			Person: s.rng.Uint64()}
		c.about(&ev)
		ev.Name, ev.Email = ev.person()
		if !forged {
			c.Name, c.Email, c.Currency = ev.Name, ev.Email, ev.city().currency
			s.customers = append(s.customers, c)
		}
		return id, sampleBody(ev), forged, false
	case t < 0.60:
		ev.Type = "customer.updated"
	case t < 0.75:
		ev.Type = "invoice.paid"
	case t < 0.80:
		ev.Type = "invoice.payment_failed"
	case t < 0.85:
		ev.Type = "charge.refunded"
	case t < 0.90:
		ev.Type = "customer.subscription.updated"
	case t < 0.95:
		ev.Type = "customer.subscription.created"
	default:
		ev.Type = "payment_intent.succeeded" // stored as ignored
	}
	cus.about(&ev)
	if ev.Type == "customer.updated" && s.rng.Float64() < emailChangeShare {
		ev.PreviousEmail, ev.Email = cus.Email, sampleEmail(ev.Variant)
		if own >= 0 && !forged {
			s.customers[own].Email = ev.Email
		}
	}
	return id, sampleBody(ev), forged, false
}

// post sends one request and records its answer.
func (s *sender) post(ctx context.Context) {
	id, body, forged, repeat := s.next()
	secret := s.o.Secret
	if forged {
		secret = forgedSecret
		s.res.Forged++
	}
	if repeat {
		s.res.Repeats++
	}
	sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: time.Now()})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.o.URL, bytes.NewReader(body))
	if err != nil {
		s.fail(err)
		return
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks) backroom-bench")
	req.Header.Set("Stripe-Signature", sig.Header)
	t0 := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			s.fail(err)
			time.Sleep(10 * time.Millisecond)
		}
		return
	}
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if err != nil {
		s.fail(err)
		return
	}
	s.res.Latencies = append(s.res.Latencies, time.Since(t0))
	s.res.Requests++
	s.res.ByCode[resp.StatusCode]++
	if resp.StatusCode/100 == 2 {
		s.res.ByAnswer[strings.TrimSpace(string(answer))]++
		if forged {
			s.res.ForgedAccepted++
		} else {
			s.res.Acked = append(s.res.Acked, id)
			if s.o.Acks != nil {
				s.o.Acks.Add(1)
			}
			if !repeat {
				if len(s.acked) < 256 {
					s.acked = append(s.acked, sentEvent{id, body})
				} else {
					s.acked[s.rng.IntN(len(s.acked))] = sentEvent{id, body}
				}
			}
		}
	}
}

func (s *sender) fail(err error) {
	s.res.Errors++
	if s.res.FirstErr == "" {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		s.res.FirstErr = err.Error()
	}
}

// missingAcked counts the acknowledged ids that are not stored.
func missingAcked(acked []string, stored map[string]bool) (unique, missing int, examples []string) {
	seen := make(map[string]bool, len(acked))
	for _, id := range acked {
		if seen[id] {
			continue
		}
		seen[id] = true
		if !stored[id] {
			missing++
			if len(examples) < 5 {
				examples = append(examples, id)
			}
		}
	}
	return len(seen), missing, examples
}

// storedWebhookIDs reads every stored event id.
func storedWebhookIDs(ctx context.Context, st *store.Store) (map[string]bool, error) {
	ids := map[string]bool{}
	_, err := eachWebhook(ctx, st, store.WebhookQuery{}, 0, func(e store.WebhookEvent) error {
		ids[e.EventID] = true
		return nil
	})
	return ids, err
}

// sampleCustomers reads up to n clients from the store, for the load's
// updates and billing events to land on existing clients.
func sampleCustomers(ctx context.Context, st *store.Store, n int) ([]loadCustomer, error) {
	var out []loadCustomer
	_, _, err := eachClient(ctx, st, store.ClientQuery{}, n, func(c store.Client) error {
		if !c.Forgotten() && store.ValidEmail(c.Email) {
			out = append(out, loadCustomer{ID: c.CustomerID, Name: c.Name, Email: c.Email, Currency: c.Currency,
				Created: c.StripeCreated, Person: personOf(c.CustomerID)})
		}
		return nil
	})
	return out, err
}

// --- the reference ------------------------------------------------------------------

// referenceServer is the yardstick: a bare net/http handler that
// checks the signature with stripe-go and does one INSERT OR IGNORE of the
// event id into its own WAL SQLite file (synchronous NORMAL). Its SQL
// lives here, outside the store, because it is not Backroom: it is what
// Backroom is measured against.
type referenceServer struct {
	URL string
	db  *sql.DB
	srv *http.Server
}

func startReference(dir, secret string) (*referenceServer, error) {
	path := filepath.Join(dir, "reference.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY)`); err != nil {
		db.Close()
		return nil, fmt.Errorf("reference database: %w", err)
	}
	opts := webhook.ConstructEventOptions{Tolerance: 300 * time.Second, IgnoreAPIVersionMismatch: true}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+httpd.WebhookPath, func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body", http.StatusBadRequest)
			return
		}
		ev, err := webhook.ConstructEventWithOptions(body, r.Header.Get("Stripe-Signature"), secret, opts)
		if err != nil {
			http.Error(w, "signature", http.StatusBadRequest)
			return
		}
		if _, err := db.ExecContext(r.Context(), `INSERT OR IGNORE INTO events (id) VALUES (?)`, ev.ID); err != nil {
			http.Error(w, "store", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		db.Close()
		return nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second,
		WriteTimeout: 15 * time.Second, IdleTimeout: 60 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return &referenceServer{URL: "http://" + ln.Addr().String() + httpd.WebhookPath, db: db, srv: srv}, nil
}

// stored reads the ids the reference stored.
func (r *referenceServer) stored(ctx context.Context) (map[string]bool, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT id FROM events`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ids := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids[id] = true
	}
	return ids, rows.Err()
}

func (r *referenceServer) Close() {
	_ = r.srv.Close()
	_ = r.db.Close()
}

// --- the console during the load -------------------------------------------------------

// consoleMember is the staff member whose console is driven during the
// load.
type consoleMember struct {
	Name   string
	Signer gossh.Signer
	Secret string // TOTP, base32
}

// addConsoleMember adds a staff member (role staff) with a fresh key to
// st for the console probe.
func addConsoleMember(ctx context.Context, st *store.Store, a store.Actor) (consoleMember, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return consoleMember{}, err
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		return consoleMember{}, err
	}
	name := strings.ToLower("bench_" + randomID("", 6))
	res, err := st.AddStaff(ctx, a, store.AddStaffRequest{Name: name, Key: signer.PublicKey(), Comment: "backroom bench webhooks"})
	if err != nil {
		return consoleMember{}, err
	}
	if res.Enrollment == nil {
		return consoleMember{}, errors.New("the bench member got no TOTP secret")
	}
	return consoleMember{Name: name, Signer: signer, Secret: res.Enrollment.Secret}, nil
}

// consoleResult is what the console probe measured: for each key press
// (s, the Webhooks screen's status filter), the time to the first frame
// bytes (the answer) and to the frame showing the newly filtered list
// (the store query done).
type consoleResult struct {
	Answer, Loaded []time.Duration
	Timeouts       int
}

// consoleChunk is output read from the console, with when it arrived.
type consoleChunk struct {
	t time.Time
	b []byte
}

// runConsoleProbe logs m in at addr (key, then TOTP code), opens the
// Webhooks screen and presses s every interval until ctx ends.
func runConsoleProbe(ctx context.Context, addr string, m consoleMember, every time.Duration) (consoleResult, error) {
	var res consoleResult
	cfg := &gossh.ClientConfig{
		User: m.Name,
		Auth: []gossh.AuthMethod{
			gossh.PublicKeys(m.Signer),
			gossh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				if len(questions) == 0 {
					return nil, nil
				}
				code, err := store.CodeFor(m.Secret, time.Now())
				if err != nil {
					return nil, err
				}
				return []string{code}, nil
			}),
		},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), // a loopback server this process started or was pointed at
		BannerCallback:  func(string) error { return nil },
		Timeout:         10 * time.Second,
	}
	client, err := gossh.Dial("tcp", addr, cfg)
	if err != nil {
		return res, fmt.Errorf("console login: %w", err)
	}
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return res, err
	}
	defer sess.Close()
	in, err := sess.StdinPipe()
	if err != nil {
		return res, err
	}
	out, err := sess.StdoutPipe()
	if err != nil {
		return res, err
	}
	if err := sess.RequestPty("xterm-256color", 40, 120, gossh.TerminalModes{}); err != nil {
		return res, err
	}
	if err := sess.Shell(); err != nil {
		return res, err
	}
	chunks := make(chan consoleChunk, 4096)
	go func() {
		defer close(chunks)
		buf := make([]byte, 64<<10)
		for {
			n, err := out.Read(buf)
			if n > 0 {
				chunks <- consoleChunk{time.Now(), bytes.Clone(buf[:n])}
			}
			if err != nil {
				return
			}
		}
	}()
	waitFor := func(cond func(string) bool, limit time.Duration) error {
		var seen strings.Builder
		timeout := time.After(limit)
		for {
			select {
			case c, ok := <-chunks:
				if !ok {
					return errors.New("the console closed")
				}
				seen.Write(c.b)
				if cond(seen.String()) {
					return nil
				}
			case <-timeout:
				return fmt.Errorf("the console did not show what was expected within %s", limit)
			}
		}
	}
	if err := waitFor(func(s string) bool { return strings.Contains(s, "Backroom") }, 15*time.Second); err != nil {
		return res, fmt.Errorf("first frame: %w", err)
	}
	if _, err := io.WriteString(in, "4"); err != nil { // the Webhooks screen
		return res, err
	}
	if err := waitFor(func(s string) bool { return listShown(s, "") }, 15*time.Second); err != nil {
		return res, fmt.Errorf("webhooks screen: %w", err)
	}

	status := ""
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return res, nil
		case <-tick.C:
		}
		// Whatever is left of the previous frames.
	drain:
		for {
			select {
			case _, ok := <-chunks:
				if !ok {
					return res, errors.New("the console closed")
				}
			default:
				break drain
			}
		}
		status = tui.NextWebhookStatus(status)
		t0 := time.Now()
		if _, err := io.WriteString(in, "s"); err != nil {
			return res, err
		}
		var seen strings.Builder
		answered := false
		timeout := time.After(3 * time.Second)
	wait:
		for {
			select {
			case c, ok := <-chunks:
				if !ok {
					return res, errors.New("the console closed")
				}
				if !answered {
					res.Answer = append(res.Answer, c.t.Sub(t0))
					answered = true
				}
				seen.Write(c.b)
				if listShown(seen.String(), status) {
					res.Loaded = append(res.Loaded, c.t.Sub(t0))
					break wait
				}
			case <-timeout:
				res.Timeouts++
				break wait
			}
		}
	}
}

var (
	sgrRE      = regexp.MustCompile(`\x1b\[[0-9;:?]*m`)
	escRE      = regexp.MustCompile(`\x1b(\[[0-9;:?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])`)
	infoLineRE = regexp.MustCompile(`events \d|no events match|no webhook events yet`)
)

// listShown reports whether console output shows the Webhooks screen's
// list loaded with the status filter status ("" for none): its info line,
// written without "loading…".
func listShown(out, status string) bool {
	text := escRE.ReplaceAllString(sgrRE.ReplaceAllString(out, ""), "\n")
	for _, line := range strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if !infoLineRE.MatchString(line) || strings.Contains(line, "loading") {
			continue
		}
		if status == "" && !strings.Contains(line, "filter:") {
			return true
		}
		if status != "" && strings.Contains(line, "filter: status="+status) {
			return true
		}
	}
	return false
}
