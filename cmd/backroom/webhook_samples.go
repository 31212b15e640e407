package main

import (
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/stripe/stripe-go/v76"
)

// Sample Stripe events, for `webhooks send` (trying Backroom without
// Stripe) and for the load generator (`bench webhooks`). They have the
// shape and the fields Stripe sends for API version stripe.APIVersion, with
// made-up people and amounts: a customer.* event carries a full customer,
// invoice.* an invoice, charge.refunded a charge, customer.subscription.* a
// subscription; any other type a minimal object of the type's kind.

// sampleEvent says which event to build.
type sampleEvent struct {
	Type       string
	EventID    string    // evt_…
	CustomerID string    // cus_…: the customer, or the one an invoice, charge or subscription belongs to
	Created    time.Time // the event's created (Stripe orders customer updates by it)
	// Variant picks what changes from event to event: amounts, balance,
	// metadata, object ids. The same variant gives the same details.
	Variant uint64
	// The customer: Person makes up who they are (name, email, phone,
	// address, and so currency) unless Name, Email and Currency say;
	// CustomerCreated is when Stripe created them (zero: a year before
	// Created). Every event of one customer should give the same, as
	// Stripe does: an update changes a balance, not a creation time.
	Person          uint64
	Name, Email     string
	Currency        string
	CustomerCreated time.Time
	// PreviousEmail, on a customer.updated, is the email it replaces;
	// without it the update changes the customer's balance.
	PreviousEmail string
}

// person is the customer's name and email: the event's, or made up.
func (e sampleEvent) person() (name, email string) {
	first, last := samplePerson(e.Person)
	name, email = first+" "+last, sampleEmail(e.Person)
	if e.Name != "" {
		name = e.Name
	}
	if e.Email != "" {
		email = e.Email
	}
	return name, email
}

// city is where the customer lives, with its currency (the event's
// currency when it says one).
func (e sampleEvent) city() sampleCity {
	c := sampleCities[e.Person%uint64(len(sampleCities))]
	if e.Currency != "" {
		c.currency = e.Currency
	}
	return c
}

// sampleEventTypes are the types with a realistic object (the others get a
// minimal one).
var sampleEventTypes = []string{
	"customer.created", "customer.updated", "customer.deleted",
	"invoice.paid", "invoice.payment_failed", "charge.refunded",
	"customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
	"customer.subscription.paused", "customer.subscription.resumed", "customer.subscription.trial_will_end",
}

// idAlphabet is what Stripe's ids are made of after their prefix.
const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randomID is prefix followed by n random letters and digits, as Stripe's
// ids are (evt_1OdG…, cus_NffrFeUfNV2Hib).
func randomID(prefix string, n int) string {
	b := make([]byte, 0, len(prefix)+n)
	b = append(b, prefix...)
	for range n {
		b = append(b, idAlphabet[rand.N(len(idAlphabet))])
	}
	return string(b)
}

// personOf is the made-up person of a customer id: every sample about
// one customer is about the same person.
func personOf(customerID string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(customerID))
	return h.Sum64()
}

// variantID is an id derived from a variant (stable for the same one).
func variantID(prefix string, v uint64, n int) string {
	b := make([]byte, 0, len(prefix)+n)
	b = append(b, prefix...)
	seed := uint64(0x5eed)
	for i := 0; i < len(prefix); i++ {
		seed = seed*31 + uint64(prefix[i])
	}
	r := rand.New(rand.NewPCG(v, seed))
	for range n {
		b = append(b, idAlphabet[r.IntN(len(idAlphabet))])
	}
	return string(b)
}

var (
	sampleFirstNames = strings.Fields("Ada Grace Alan Katherine Linus Barbara Dennis Frances Ken Margaret Edsger Radia Tim Hedy Donald Sophie")
	sampleLastNames  = strings.Fields("Lovelace Hopper Turing Johnson Torvalds Liskov Ritchie Allen Thompson Hamilton Dijkstra Perlman Berners-Lee Lamarr Knuth Wilson")
	sampleCities     = []sampleCity{
		{"London", "GB", "EC1A 1BB", "gbp", "+44 20 7946 0"},
		{"Paris", "FR", "75002", "eur", "+33 1 84 88 0"},
		{"Berlin", "DE", "10115", "eur", "+49 30 901820"},
		{"New York", "US", "10001", "usd", "+1 212 555 0"},
		{"Toronto", "CA", "M5H 2N2", "cad", "+1 416 555 0"},
		{"Sydney", "AU", "2000", "aud", "+61 2 9876 5"},
	}
)

// sampleCity is a made-up customer's city, with its currency and phone
// prefix.
type sampleCity struct{ city, country, postal, currency, phone string }

// sampleBody builds the event's JSON, as Stripe would post it.
func sampleBody(e sampleEvent) []byte {
	if e.Created.IsZero() {
		e.Created = time.Now()
	}
	if e.CustomerCreated.IsZero() {
		e.CustomerCreated = e.Created.AddDate(-1, 0, 0)
	}
	var w jsonWriter
	w.b = make([]byte, 0, 2048)
	w.open()
	w.str("id", e.EventID)
	w.str("object", "event")
	w.str("api_version", stripe.APIVersion)
	w.num("created", e.Created.Unix())
	w.key("data")
	w.open()
	w.key("object")
	switch {
	case strings.HasPrefix(e.Type, "customer.subscription."):
		sampleSubscription(&w, e)
	case strings.HasPrefix(e.Type, "customer.") && strings.Count(e.Type, ".") == 1:
		sampleCustomer(&w, e)
	case strings.HasPrefix(e.Type, "invoice."):
		sampleInvoice(&w, e)
	case strings.HasPrefix(e.Type, "charge."):
		sampleCharge(&w, e)
	default:
		sampleMinimal(&w, e)
	}
	if e.Type == "customer.updated" {
		w.key("previous_attributes")
		w.open()
		if e.PreviousEmail != "" {
			w.str("email", e.PreviousEmail)
		} else {
			w.num("balance", sampleBalance(e.Variant+1))
		}
		w.close()
	}
	w.close()
	w.boolean("livemode", false)
	w.num("pending_webhooks", 1)
	w.key("request")
	w.open()
	w.null("id")
	w.null("idempotency_key")
	w.close()
	w.str("type", e.Type)
	w.close()
	return w.b
}

// samplePerson is the made-up person of a variant.
func samplePerson(v uint64) (first, last string) {
	return sampleFirstNames[v%uint64(len(sampleFirstNames))], sampleLastNames[(v/7)%uint64(len(sampleLastNames))]
}

func sampleEmail(v uint64) string {
	first, last := samplePerson(v)
	return strings.ToLower(first) + "." + strings.ToLower(strings.ReplaceAll(last, "-", "")) + strconv.FormatUint(v%1000, 10) + "@example.com"
}

// sampleBalance is a customer's balance in minor units (negative: credit).
func sampleBalance(v uint64) int64 { return int64(v%5)*500 - 1000 }

func sampleCustomer(w *jsonWriter, e sampleEvent) {
	v, p := e.Variant, e.Person
	name, email := e.person()
	city := e.city()
	w.open()
	w.str("id", e.CustomerID)
	w.str("object", "customer")
	w.key("address")
	w.open()
	w.str("city", city.city)
	w.str("country", city.country)
	w.str("line1", strconv.FormatUint(1+p%200, 10)+" Example Street")
	w.null("line2")
	w.str("postal_code", city.postal)
	w.null("state")
	w.close()
	w.num("balance", sampleBalance(v))
	w.num("created", e.CustomerCreated.Unix())
	w.str("currency", city.currency)
	w.null("default_source")
	w.boolean("delinquent", v%20 == 0)
	w.str("description", "Customer since "+e.CustomerCreated.UTC().Format("January 2006"))
	w.null("discount")
	w.str("email", email)
	w.str("invoice_prefix", strings.ToUpper(variantID("", p, 8)))
	w.key("invoice_settings")
	w.open()
	w.null("custom_fields")
	w.null("default_payment_method")
	w.null("footer")
	w.null("rendering_options")
	w.close()
	w.boolean("livemode", false)
	w.key("metadata")
	w.open()
	w.str("plan", []string{"starter", "team", "business"}[v%3])
	w.close()
	w.str("name", name)
	w.num("next_invoice_sequence", int64(1+v%40))
	w.str("phone", city.phone+strconv.FormatUint(100+p%900, 10))
	w.key("preferred_locales")
	w.b = append(w.b, "[]"...)
	w.comma = true
	w.null("shipping")
	w.str("tax_exempt", "none")
	w.null("test_clock")
	w.close()
}

func sampleInvoice(w *jsonWriter, e sampleEvent) {
	v := e.Variant
	name, email := e.person()
	city := e.city()
	amount := int64(1000 + (v%90)*500)
	paid := e.Type == "invoice.paid"
	id := variantID("in_", v, 24)
	start := e.Created.Add(-30 * 24 * time.Hour).Unix()
	w.open()
	w.str("id", id)
	w.str("object", "invoice")
	w.str("account_country", "GB")
	w.str("account_name", "Example Ltd")
	w.num("amount_due", amount)
	if paid {
		w.num("amount_paid", amount)
		w.num("amount_remaining", 0)
	} else {
		w.num("amount_paid", 0)
		w.num("amount_remaining", amount)
	}
	w.num("attempt_count", 1)
	w.boolean("attempted", true)
	w.str("billing_reason", "subscription_cycle")
	w.str("collection_method", "charge_automatically")
	w.num("created", e.Created.Unix())
	w.str("currency", city.currency)
	w.str("customer", e.CustomerID)
	w.str("customer_email", email)
	w.str("customer_name", name)
	w.str("hosted_invoice_url", "https://invoice.stripe.com/i/acct_1Example/test_"+id)
	w.key("lines")
	w.open()
	w.str("object", "list")
	w.key("data")
	w.b = append(w.b, '[')
	w.comma = false
	w.open()
	w.str("id", variantID("il_", v, 24))
	w.str("object", "line_item")
	w.num("amount", amount)
	w.str("currency", city.currency)
	w.str("description", "1 × Team plan (at "+formatMinor(amount)+" / month)")
	w.key("period")
	w.open()
	w.num("end", e.Created.Unix())
	w.num("start", start)
	w.close()
	w.num("quantity", 1)
	w.str("type", "subscription")
	w.close()
	w.b = append(w.b, ']')
	w.comma = true
	w.boolean("has_more", false)
	w.num("total_count", 1)
	w.str("url", "/v1/invoices/"+id+"/lines")
	w.close()
	w.boolean("livemode", false)
	w.str("number", strings.ToUpper(variantID("", v, 8))+"-"+strconv.FormatUint(1000+v%9000, 10))
	w.boolean("paid", paid)
	w.num("period_end", e.Created.Unix())
	w.num("period_start", start)
	if paid {
		w.str("status", "paid")
	} else {
		w.str("status", "open")
	}
	w.str("subscription", variantID("sub_", v, 24))
	w.num("subtotal", amount)
	w.num("total", amount)
	w.close()
}

func sampleCharge(w *jsonWriter, e sampleEvent) {
	v := e.Variant
	name, email := e.person()
	city := e.city()
	amount := int64(1000 + (v%90)*500)
	refunded := amount
	if v%3 == 0 {
		refunded = amount / 2
	}
	w.open()
	w.str("id", variantID("ch_", v, 24))
	w.str("object", "charge")
	w.num("amount", amount)
	w.num("amount_captured", amount)
	w.num("amount_refunded", refunded)
	w.str("balance_transaction", variantID("txn_", v, 24))
	w.key("billing_details")
	w.open()
	w.key("address")
	w.open()
	w.str("city", city.city)
	w.str("country", city.country)
	w.null("line1")
	w.null("line2")
	w.str("postal_code", city.postal)
	w.null("state")
	w.close()
	w.str("email", email)
	w.str("name", name)
	w.null("phone")
	w.close()
	w.boolean("captured", true)
	w.num("created", e.Created.Add(-48*time.Hour).Unix())
	w.str("currency", city.currency)
	w.str("customer", e.CustomerID)
	w.str("description", "Subscription update")
	w.boolean("livemode", false)
	w.boolean("paid", true)
	w.str("payment_intent", variantID("pi_", v, 24))
	w.str("payment_method", variantID("pm_", v, 24))
	w.str("receipt_email", email)
	w.boolean("refunded", refunded == amount)
	w.str("status", "succeeded")
	w.close()
}

func sampleSubscription(w *jsonWriter, e sampleEvent) {
	v := e.Variant
	city := e.city()
	status := "active"
	switch e.Type {
	case "customer.subscription.deleted":
		status = "canceled"
	case "customer.subscription.paused":
		status = "paused"
	case "customer.subscription.trial_will_end":
		status = "trialing"
	}
	start := e.Created.Add(-10 * 24 * time.Hour)
	w.open()
	w.str("id", variantID("sub_", v, 24))
	w.str("object", "subscription")
	w.boolean("cancel_at_period_end", false)
	w.num("created", start.Add(-90*24*time.Hour).Unix())
	w.str("currency", city.currency)
	w.num("current_period_end", start.Add(30*24*time.Hour).Unix())
	w.num("current_period_start", start.Unix())
	w.str("customer", e.CustomerID)
	w.key("items")
	w.open()
	w.str("object", "list")
	w.key("data")
	w.b = append(w.b, '[')
	w.comma = false
	w.open()
	w.str("id", variantID("si_", v, 14))
	w.str("object", "subscription_item")
	w.key("price")
	w.open()
	w.str("id", variantID("price_", v, 24))
	w.str("object", "price")
	w.str("currency", city.currency)
	w.key("recurring")
	w.open()
	w.str("interval", "month")
	w.num("interval_count", 1)
	w.close()
	w.num("unit_amount", int64(1000+(v%90)*500))
	w.close()
	w.num("quantity", 1)
	w.close()
	w.b = append(w.b, ']')
	w.comma = true
	w.boolean("has_more", false)
	w.num("total_count", 1)
	w.close()
	w.boolean("livemode", false)
	w.str("status", status)
	if e.Type == "customer.subscription.trial_will_end" {
		w.num("trial_end", e.Created.Add(3*24*time.Hour).Unix())
	} else {
		w.null("trial_end")
	}
	w.close()
}

// samplePrefixes are the id prefixes of common objects, by the first
// part of an event type.
var samplePrefixes = map[string]string{
	"payment_intent": "pi_", "payment_method": "pm_", "product": "prod_", "price": "price_", "payout": "po_",
	"checkout": "cs_", "setup_intent": "seti_", "source": "src_", "transfer": "tr_", "plan": "plan_",
}

// sampleMinimal is the object of an event type without a realistic
// sample: an id and the object's kind.
func sampleMinimal(w *jsonWriter, e sampleEvent) {
	kind, _, _ := strings.Cut(e.Type, ".")
	prefix, ok := samplePrefixes[kind]
	if !ok {
		prefix = "obj_"
	}
	w.open()
	w.str("id", variantID(prefix, e.Variant, 24))
	w.str("object", kind)
	if e.CustomerID != "" {
		w.str("customer", e.CustomerID)
	} else {
		w.null("customer")
	}
	w.boolean("livemode", false)
	w.close()
}

// formatMinor writes an amount in minor units with two decimals.
func formatMinor(n int64) string {
	s := strconv.FormatInt(n/100, 10) + "."
	c := n % 100
	if c < 10 {
		s += "0"
	}
	return s + strconv.FormatInt(c, 10)
}

// jsonWriter appends JSON: an object's fields in the order written (as
// Stripe orders them: id and object first), cheaply enough for the load
// generator.
type jsonWriter struct {
	b     []byte
	comma bool // a value was written at this level: the next needs a comma
}

func (w *jsonWriter) key(k string) {
	if w.comma {
		w.b = append(w.b, ',')
	}
	w.b = appendJSONString(w.b, k)
	w.b = append(w.b, ':')
	w.comma = false
}

func (w *jsonWriter) open() {
	if w.comma {
		w.b = append(w.b, ',')
	}
	w.b = append(w.b, '{')
	w.comma = false
}

func (w *jsonWriter) close() {
	w.b = append(w.b, '}')
	w.comma = true
}

func (w *jsonWriter) str(k, v string) {
	w.key(k)
	w.b = appendJSONString(w.b, v)
	w.comma = true
}

func (w *jsonWriter) num(k string, v int64) {
	w.key(k)
	w.b = strconv.AppendInt(w.b, v, 10)
	w.comma = true
}

func (w *jsonWriter) boolean(k string, v bool) {
	w.key(k)
	w.b = strconv.AppendBool(w.b, v)
	w.comma = true
}

func (w *jsonWriter) null(k string) {
	w.key(k)
	w.b = append(w.b, "null"...)
	w.comma = true
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
			i++
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			i++
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
		}
	}
	return append(b, '"')
}
