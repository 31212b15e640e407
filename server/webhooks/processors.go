package webhooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"backroom/store"
)

// Registry maps an event type to the processor that computes its effect.
// Types without a processor are stored as ignored. Adding a type is one
// processor function and one line in NewRegistry.
type Registry map[string]store.Processor

// NewRegistry returns the processors of every event type Backroom acts on.
func NewRegistry() Registry {
	return Registry{
		"customer.created": customerCreated,
		"customer.updated": customerUpdated,
		"customer.deleted": customerDeleted,

		"invoice.paid":           invoicePaid,
		"invoice.payment_failed": invoicePaymentFailed,
		"charge.refunded":        chargeRefunded,

		"customer.subscription.created":                subscriptionCreated,
		"customer.subscription.updated":                subscriptionUpdated,
		"customer.subscription.deleted":                subscriptionDeleted,
		"customer.subscription.paused":                 subscriptionPaused,
		"customer.subscription.resumed":                subscriptionResumed,
		"customer.subscription.trial_will_end":         subscriptionTrialWillEnd,
		"customer.subscription.pending_update_applied": subscriptionPendingUpdateApplied,
		"customer.subscription.pending_update_expired": subscriptionPendingUpdateExpired,
	}
}

// Process dispatches ev to its processor; a type without one is ignored.
func (r Registry) Process(ev store.IncomingEvent) (store.WebhookEffect, error) {
	p, ok := r[ev.Type]
	if !ok {
		return store.WebhookEffect{Ignored: true}, nil
	}
	return p(ev)
}

// Process computes an event's effect with the endpoint's registry. The
// console and the CLI pass it to store.ReplayWebhook, so that a replay
// does exactly what a delivery does.
func Process(ev store.IncomingEvent) (store.WebhookEffect, error) {
	return NewRegistry().Process(ev)
}

// --- customers -----------------------------------------------------------------

func customerCreated(ev store.IncomingEvent) (store.WebhookEffect, error) { return customer(ev, false) }
func customerUpdated(ev store.IncomingEvent) (store.WebhookEffect, error) { return customer(ev, false) }
func customerDeleted(ev store.IncomingEvent) (store.WebhookEffect, error) { return customer(ev, true) }

// customerObject is the part of a Stripe customer Backroom keeps
// (stripe.Customer's fields and JSON names).
type customerObject struct {
	Object      string            `json:"object"`
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Email       string            `json:"email"`
	Phone       string            `json:"phone"`
	Description string            `json:"description"`
	Currency    string            `json:"currency"`
	Balance     int64             `json:"balance"`
	Delinquent  bool              `json:"delinquent"`
	Livemode    bool              `json:"livemode"`
	Metadata    map[string]string `json:"metadata"`
	Created     int64             `json:"created"`
	Deleted     bool              `json:"deleted"`
}

// customer upserts the client from data.object; the event's created time
// orders it against other writes (older never overwrites newer).
func customer(ev store.IncomingEvent, deleted bool) (store.WebhookEffect, error) {
	var c customerObject
	if err := dataObject(ev, "customer", &c); err != nil {
		return store.WebhookEffect{}, err
	}
	if err := store.ValidCustomerID(c.ID); err != nil {
		return store.WebhookEffect{}, errors.New("data.object has no valid customer id")
	}
	if !store.ValidEmail(c.Email) {
		return store.WebhookEffect{}, errors.New("the customer's email is not an email address")
	}
	if ev.Created.IsZero() {
		return store.WebhookEffect{}, errors.New("the event has no created time to order it by")
	}
	d := store.ClientData{
		CustomerID: c.ID, Name: c.Name, Email: c.Email, Phone: c.Phone, Description: c.Description,
		Currency: c.Currency, Balance: c.Balance, Delinquent: c.Delinquent, Livemode: c.Livemode,
		Metadata: c.Metadata, Deleted: deleted || c.Deleted, Version: ev.Created.Unix(),
	}
	if c.Created > 0 {
		d.StripeCreated = time.Unix(c.Created, 0).UTC()
	}
	return store.WebhookEffect{Client: &d}, nil
}

// --- invoices and charges ----------------------------------------------------------

func invoicePaid(ev store.IncomingEvent) (store.WebhookEffect, error) {
	return invoice(ev, "paid", func(in invoiceObject) int64 { return in.AmountPaid })
}

func invoicePaymentFailed(ev store.IncomingEvent) (store.WebhookEffect, error) {
	return invoice(ev, "payment failed", func(in invoiceObject) int64 { return in.AmountDue })
}

// invoiceObject is the part of a Stripe invoice Backroom reads.
type invoiceObject struct {
	Object     string          `json:"object"`
	ID         string          `json:"id"`
	Customer   json.RawMessage `json:"customer"`
	AmountDue  int64           `json:"amount_due"`
	AmountPaid int64           `json:"amount_paid"`
	Currency   string          `json:"currency"`
	Status     string          `json:"status"`
}

func invoice(ev store.IncomingEvent, what string, amount func(invoiceObject) int64) (store.WebhookEffect, error) {
	var in invoiceObject
	if err := dataObject(ev, "invoice", &in); err != nil {
		return store.WebhookEffect{}, err
	}
	if in.ID == "" {
		return store.WebhookEffect{}, errors.New("data.object has no invoice id")
	}
	a := amount(in)
	return billing(ev, in.Customer, store.BillingEvent{
		ObjectID: in.ID, Amount: a, Currency: in.Currency, Status: in.Status,
		Summary: fmt.Sprintf("Invoice %s %s: %s", in.ID, what, formatAmount(a, in.Currency)),
	})
}

// chargeObject is the part of a Stripe charge Backroom reads.
type chargeObject struct {
	Object         string          `json:"object"`
	ID             string          `json:"id"`
	Customer       json.RawMessage `json:"customer"`
	Amount         int64           `json:"amount"`
	AmountRefunded int64           `json:"amount_refunded"`
	Currency       string          `json:"currency"`
	Status         string          `json:"status"`
}

func chargeRefunded(ev store.IncomingEvent) (store.WebhookEffect, error) {
	var ch chargeObject
	if err := dataObject(ev, "charge", &ch); err != nil {
		return store.WebhookEffect{}, err
	}
	if ch.ID == "" {
		return store.WebhookEffect{}, errors.New("data.object has no charge id")
	}
	summary := fmt.Sprintf("Charge %s refunded: %s", ch.ID, formatAmount(ch.AmountRefunded, ch.Currency))
	if ch.AmountRefunded < ch.Amount {
		summary = fmt.Sprintf("Charge %s partly refunded: %s of %s", ch.ID,
			formatAmount(ch.AmountRefunded, ch.Currency), formatAmount(ch.Amount, ch.Currency))
	}
	return billing(ev, ch.Customer, store.BillingEvent{
		ObjectID: ch.ID, Amount: ch.AmountRefunded, Currency: ch.Currency, Status: ch.Status, Summary: summary,
	})
}

// --- subscriptions ---------------------------------------------------------------

func subscriptionCreated(ev store.IncomingEvent) (store.WebhookEffect, error) {
	return subscription(ev, func(subscriptionObject) string { return "created" })
}

func subscriptionUpdated(ev store.IncomingEvent) (store.WebhookEffect, error) {
	return subscription(ev, func(subscriptionObject) string { return "updated" })
}

// subscriptionDeleted: Stripe sends customer.subscription.deleted when a
// subscription ends.
func subscriptionDeleted(ev store.IncomingEvent) (store.WebhookEffect, error) {
	return subscription(ev, func(subscriptionObject) string { return "ended" })
}

func subscriptionPaused(ev store.IncomingEvent) (store.WebhookEffect, error) {
	return subscription(ev, func(subscriptionObject) string { return "paused" })
}

func subscriptionResumed(ev store.IncomingEvent) (store.WebhookEffect, error) {
	return subscription(ev, func(subscriptionObject) string { return "resumed" })
}

func subscriptionTrialWillEnd(ev store.IncomingEvent) (store.WebhookEffect, error) {
	return subscription(ev, func(s subscriptionObject) string {
		if s.TrialEnd > 0 {
			return "trial ends " + time.Unix(s.TrialEnd, 0).UTC().Format("2006-01-02")
		}
		return "trial ends soon"
	})
}

func subscriptionPendingUpdateApplied(ev store.IncomingEvent) (store.WebhookEffect, error) {
	return subscription(ev, func(subscriptionObject) string { return "pending update applied" })
}

func subscriptionPendingUpdateExpired(ev store.IncomingEvent) (store.WebhookEffect, error) {
	return subscription(ev, func(subscriptionObject) string { return "pending update expired" })
}

// planObject is a legacy plan (on items, or on the subscription itself for
// API versions before 2018-02-05).
type planObject struct {
	Amount        *int64 `json:"amount"`
	Currency      string `json:"currency"`
	Interval      string `json:"interval"`
	IntervalCount int64  `json:"interval_count"`
}

type priceObject struct {
	UnitAmount *int64 `json:"unit_amount"`
	Currency   string `json:"currency"`
	Recurring  *struct {
		Interval      string `json:"interval"`
		IntervalCount int64  `json:"interval_count"`
	} `json:"recurring"`
}

type subscriptionItem struct {
	Quantity *int64       `json:"quantity"`
	Price    *priceObject `json:"price"`
	Plan     *planObject  `json:"plan"`
}

// subscriptionObject is the part of a Stripe subscription Backroom reads.
type subscriptionObject struct {
	Object   string          `json:"object"`
	ID       string          `json:"id"`
	Customer json.RawMessage `json:"customer"`
	Status   string          `json:"status"`
	Currency string          `json:"currency"`
	TrialEnd int64           `json:"trial_end"`
	Items    *struct {
		Data []subscriptionItem `json:"data"`
	} `json:"items"`
	Plan     *planObject `json:"plan"`
	Quantity *int64      `json:"quantity"`
}

// subscription records a subscription change with its recurring amount
// (the sum over its items of unit amount × quantity).
func subscription(ev store.IncomingEvent, what func(subscriptionObject) string) (store.WebhookEffect, error) {
	var s subscriptionObject
	if err := dataObject(ev, "subscription", &s); err != nil {
		return store.WebhookEffect{}, err
	}
	if s.ID == "" {
		return store.WebhookEffect{}, errors.New("data.object has no subscription id")
	}
	items := []subscriptionItem{}
	if s.Items != nil {
		items = s.Items.Data
	}
	if len(items) == 0 && s.Plan != nil {
		items = []subscriptionItem{{Quantity: s.Quantity, Plan: s.Plan}}
	}
	var amount int64
	known := false
	currency, interval := s.Currency, ""
	for _, it := range items {
		unit, cur, iv := it.unit()
		qty := int64(1)
		if it.Quantity != nil {
			qty = *it.Quantity
		}
		if unit != nil {
			amount += *unit * qty
			known = true
		}
		if currency == "" {
			currency = cur
		}
		if interval == "" {
			interval = iv
		}
	}
	summary := fmt.Sprintf("Subscription %s %s", s.ID, what(s))
	if s.Status != "" {
		summary += " (" + s.Status + ")"
	}
	if known {
		summary += ": " + formatAmount(amount, currency) + interval
	}
	return billing(ev, s.Customer, store.BillingEvent{
		ObjectID: s.ID, Amount: amount, Currency: currency, Status: s.Status, Summary: summary,
	})
}

// unit is an item's unit amount (nil when unknown, e.g. tiered), currency
// and billing interval ("/month", "/3 months").
func (it subscriptionItem) unit() (*int64, string, string) {
	switch {
	case it.Price != nil:
		iv := ""
		if r := it.Price.Recurring; r != nil {
			iv = perInterval(r.Interval, r.IntervalCount)
		}
		return it.Price.UnitAmount, it.Price.Currency, iv
	case it.Plan != nil:
		return it.Plan.Amount, it.Plan.Currency, perInterval(it.Plan.Interval, it.Plan.IntervalCount)
	}
	return nil, "", ""
}

func perInterval(interval string, count int64) string {
	switch {
	case interval == "":
		return ""
	case count > 1:
		return fmt.Sprintf("/%d %ss", count, interval)
	}
	return "/" + interval
}

// --- shared -------------------------------------------------------------------

// billing completes a billing event from the event and links it to its
// customer by id, whether or not Backroom has a client record for them
// yet (the record may arrive later, by webhook or sync). Activity without
// a customer (a guest's charge) has nothing to link to: it is ignored.
func billing(ev store.IncomingEvent, customer json.RawMessage, b store.BillingEvent) (store.WebhookEffect, error) {
	id := expandableID(customer)
	if id == "" {
		return store.WebhookEffect{Ignored: true}, nil
	}
	if err := store.ValidCustomerID(id); err != nil {
		return store.WebhookEffect{}, errors.New("data.object.customer is not a customer id")
	}
	b.EventID, b.CustomerID, b.Type, b.Created = ev.EventID, id, ev.Type, ev.Created
	b.Currency = strings.ToLower(b.Currency)
	return store.WebhookEffect{Billing: &b}, nil
}

// stripeObject is a decoded data.object: its "object" field says its kind.
type stripeObject interface{ objectKind() string }

func (o *customerObject) objectKind() string     { return o.Object }
func (o *invoiceObject) objectKind() string      { return o.Object }
func (o *chargeObject) objectKind() string       { return o.Object }
func (o *subscriptionObject) objectKind() string { return o.Object }

// dataObject decodes the event's data.object into v and checks that it is
// a Stripe object of the given kind.
// The endpoint hands over data.object with the event (ev.Object); a replay
// reads it from the stored payload.
func dataObject(ev store.IncomingEvent, kind string, v stripeObject) error {
	obj := ev.Object
	if len(obj) == 0 {
		var env envelope
		if err := json.Unmarshal(ev.Payload, &env); err != nil {
			return errors.New("the payload is not a Stripe event")
		}
		if env.Data != nil {
			obj = env.Data.Object
		}
	}
	if len(obj) == 0 || string(obj) == "null" {
		return errors.New("the event has no data.object")
	}
	err := json.Unmarshal(obj, v)
	if err == nil {
		if k := v.objectKind(); k != kind {
			return notKind(kind, k)
		}
		return nil
	}
	// It does not decode: say first whether it is an object at all and of
	// which kind, which explains a mismatched field best.
	var head struct {
		Object string `json:"object"`
	}
	if json.Unmarshal(obj, &head) != nil {
		return errors.New("data.object is not an object")
	}
	if head.Object != kind {
		return notKind(kind, head.Object)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Errorf("data.object.%s is not a %s", clip(te.Field, 60), te.Type)
	}
	return fmt.Errorf("data.object does not read as a %s", kind)
}

func notKind(want, got string) error {
	return fmt.Errorf("data.object is not a %s (its object is %q)", want, clip(got, 40))
}

// formatAmount writes minor units as "USD 12.00" (no decimals for
// zero-decimal currencies such as JPY, three for BHD and its kind).
func formatAmount(amount int64, currency string) string {
	cur := strings.ToUpper(currency)
	if cur == "" {
		cur = "???"
	}
	sign := ""
	if amount < 0 {
		sign, amount = "-", -amount
	}
	switch decimals(cur) {
	case 0:
		return fmt.Sprintf("%s %s%d", cur, sign, amount)
	case 3:
		return fmt.Sprintf("%s %s%d.%03d", cur, sign, amount/1000, amount%1000)
	}
	return fmt.Sprintf("%s %s%d.%02d", cur, sign, amount/100, amount%100)
}

// decimals is how many digits Stripe's minor units have after the point.
func decimals(cur string) int {
	switch cur {
	case "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF":
		return 0
	case "BHD", "JOD", "KWD", "OMR", "TND":
		return 3
	}
	return 2
}
