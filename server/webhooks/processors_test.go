package webhooks

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"backroom/store"
)

var evCreated = time.Date(2026, 3, 2, 10, 15, 30, 0, time.UTC)

// incoming is a verified event as the endpoint hands it to processors.
func incoming(id, typ, object string) store.IncomingEvent {
	return store.IncomingEvent{EventID: id, Type: typ, APIVersion: "2023-10-16", Created: evCreated,
		Payload: eventJSON(id, typ, evCreated, object), Secret: "secret 1 of 1"}
}

func mustEffect(t *testing.T, p store.Processor, ev store.IncomingEvent) store.WebhookEffect {
	t.Helper()
	eff, err := p(ev)
	if err != nil {
		t.Fatalf("%s: %v", ev.Type, err)
	}
	// The registry dispatches the same way.
	eff2, err := Process(ev)
	if err != nil || !reflect.DeepEqual(eff, eff2) {
		t.Fatalf("Process(%s) = %+v, %v; the processor gave %+v", ev.Type, eff2, err, eff)
	}
	return eff
}

func wantBilling(t *testing.T, eff store.WebhookEffect, want store.BillingEvent) {
	t.Helper()
	if eff.Client != nil || eff.Ignored || eff.Billing == nil {
		t.Fatalf("effect %+v, want billing only", eff)
	}
	if *eff.Billing != want {
		t.Errorf("billing\n got %+v\nwant %+v", *eff.Billing, want)
	}
}

func TestCustomerCreated(t *testing.T) {
	eff := mustEffect(t, customerCreated, incoming("evt_c1", "customer.created", customerJSON("cus_NffrFeUfNV2Hib", "Jenny Rosen", "jenny@example.com")))
	want := store.ClientData{
		CustomerID: "cus_NffrFeUfNV2Hib", Name: "Jenny Rosen", Email: "jenny@example.com", Phone: "+33 4 72 00 00 00",
		Description: "Wholesale account", Currency: "eur", Balance: -1500, Metadata: map[string]string{"crm_id": "A-1042"},
		StripeCreated: time.Unix(1700000000, 0).UTC(), Version: evCreated.Unix(),
	}
	if eff.Billing != nil || eff.Ignored || eff.Client == nil || !reflect.DeepEqual(*eff.Client, want) {
		t.Errorf("effect %+v\nclient %+v\nwant   %+v", eff, eff.Client, want)
	}
}

func TestCustomerUpdated(t *testing.T) {
	// Stripe renders unset fields as null.
	obj := `{"id": "cus_Upd1", "object": "customer", "name": null, "email": null, "phone": null, "description": null,
		"currency": null, "balance": 0, "delinquent": true, "livemode": true, "metadata": {}, "created": 1700000000}`
	eff := mustEffect(t, customerUpdated, incoming("evt_c2", "customer.updated", obj))
	c := eff.Client
	if c == nil || c.CustomerID != "cus_Upd1" || c.Name != "" || c.Email != "" || !c.Delinquent || !c.Livemode || c.Deleted ||
		c.Version != evCreated.Unix() {
		t.Errorf("client %+v", c)
	}
}

func TestCustomerDeleted(t *testing.T) {
	eff := mustEffect(t, customerDeleted, incoming("evt_c3", "customer.deleted", customerJSON("cus_Del1", "Jenny Rosen", "jenny@example.com")))
	if eff.Client == nil || !eff.Client.Deleted || eff.Client.Email != "jenny@example.com" || eff.Client.Version != evCreated.Unix() {
		t.Errorf("client %+v", eff.Client)
	}
}

func TestCustomerMalformed(t *testing.T) {
	for name, tc := range map[string]struct{ obj, err string }{
		"bad email":         {customerJSON("cus_Bad1", "A", "jenny at example"), "the customer's email is not an email address"},
		"no id":             {`{"object": "customer", "email": "a@example.com"}`, "data.object has no valid customer id"},
		"not a customer id": {`{"id": "acct_1", "object": "customer"}`, "data.object has no valid customer id"},
		"another object":    {chargeJSON("ch_1", "cus_1", 100, 0), `data.object is not a customer (its object is "charge")`},
		// The kind is named before a field that does not fit.
		"another object, odd field": {`{"object": "charge", "balance": "lots"}`, `data.object is not a customer (its object is "charge")`},
		"no kind":                   {`{"id": "cus_Bad7"}`, `data.object is not a customer (its object is "")`},
		"an id string":              {`"cus_Bad2"`, "data.object is not an object"},
		"an array":                  {`[1, 2]`, "data.object is not an object"},
		"metadata not flat":         {`{"id": "cus_Bad3", "object": "customer", "metadata": {"a": {"b": 1}}}`, "data.object.metadata is not a string"},
		"balance not number":        {`{"id": "cus_Bad4", "object": "customer", "balance": "lots"}`, "data.object.balance is not a int64"},
		"null":                      {`null`, "the event has no data.object"},
	} {
		eff, err := customerUpdated(incoming("evt_bad", "customer.updated", tc.obj))
		if err == nil || err.Error() != tc.err {
			t.Errorf("%s: error %v (effect %+v), want %q", name, err, eff, tc.err)
		}
	}
	ev := incoming("evt_bad", "customer.updated", customerJSON("cus_Bad5", "A", ""))
	ev.Created = time.Time{}
	if _, err := customerUpdated(ev); err == nil {
		t.Error("no created time: no error")
	}
	ev.Payload = []byte(`{"id": "evt_bad", "type": "customer.updated"}`)
	if _, err := customerUpdated(ev); err == nil || err.Error() != "the event has no data.object" {
		t.Errorf("no data: %v", err)
	}
	// Messages name the field, never echo the personal value.
	_, err := customerUpdated(incoming("evt_bad", "customer.updated", customerJSON("cus_Bad6", "A", "secret-person at example")))
	if err == nil || strings.Contains(err.Error(), "secret-person") {
		t.Errorf("error %v", err)
	}
}

func TestInvoicePaid(t *testing.T) {
	eff := mustEffect(t, invoicePaid, incoming("evt_i1", "invoice.paid", invoiceJSON("in_1Pgc6tB7WZ01zgkWu9fdqL6I", "cus_Inv1", 1200, 1200, "paid")))
	wantBilling(t, eff, store.BillingEvent{EventID: "evt_i1", CustomerID: "cus_Inv1", Type: "invoice.paid",
		ObjectID: "in_1Pgc6tB7WZ01zgkWu9fdqL6I", Amount: 1200, Currency: "usd", Status: "paid", Created: evCreated,
		Summary: "Invoice in_1Pgc6tB7WZ01zgkWu9fdqL6I paid: USD 12.00"})
	// An expanded customer is linked by its id.
	obj := strings.Replace(invoiceJSON("in_2", "cus_Inv2", 500, 500, "paid"), `"customer": "cus_Inv2"`,
		`"customer": {"id": "cus_Inv2", "object": "customer", "email": "x@example.com"}`, 1)
	if eff := mustEffect(t, invoicePaid, incoming("evt_i2", "invoice.paid", obj)); eff.Billing == nil || eff.Billing.CustomerID != "cus_Inv2" {
		t.Errorf("expanded customer: %+v", eff.Billing)
	}
}

func TestInvoicePaymentFailed(t *testing.T) {
	eff := mustEffect(t, invoicePaymentFailed, incoming("evt_i3", "invoice.payment_failed", invoiceJSON("in_Fail1", "cus_Inv3", 0, 4999, "open")))
	wantBilling(t, eff, store.BillingEvent{EventID: "evt_i3", CustomerID: "cus_Inv3", Type: "invoice.payment_failed",
		ObjectID: "in_Fail1", Amount: 4999, Currency: "usd", Status: "open", Created: evCreated,
		Summary: "Invoice in_Fail1 payment failed: USD 49.99"})
	if _, err := invoicePaymentFailed(incoming("evt_i4", "invoice.payment_failed", `{"object": "invoice", "customer": "cus_X"}`)); err == nil {
		t.Error("an invoice without an id: no error")
	}
}

func TestChargeRefunded(t *testing.T) {
	eff := mustEffect(t, chargeRefunded, incoming("evt_ch1", "charge.refunded", chargeJSON("ch_Full", "cus_Ch1", 1200, 1200)))
	wantBilling(t, eff, store.BillingEvent{EventID: "evt_ch1", CustomerID: "cus_Ch1", Type: "charge.refunded",
		ObjectID: "ch_Full", Amount: 1200, Currency: "usd", Status: "succeeded", Created: evCreated,
		Summary: "Charge ch_Full refunded: USD 12.00"})
	eff = mustEffect(t, chargeRefunded, incoming("evt_ch2", "charge.refunded", chargeJSON("ch_Part", "cus_Ch1", 1200, 300)))
	if eff.Billing == nil || eff.Billing.Amount != 300 || eff.Billing.Summary != "Charge ch_Part partly refunded: USD 3.00 of USD 12.00" {
		t.Errorf("partial refund %+v", eff.Billing)
	}
	// A guest's charge has no customer to link to.
	if eff := mustEffect(t, chargeRefunded, incoming("evt_ch3", "charge.refunded", chargeJSON("ch_Guest", "", 1200, 1200))); !eff.Ignored {
		t.Errorf("guest charge %+v, want ignored", eff)
	}
	obj := strings.Replace(chargeJSON("ch_BadCus", "cus_X", 1, 1), `"customer": "cus_X"`, `"customer": "acct_123"`, 1)
	if _, err := chargeRefunded(incoming("evt_ch4", "charge.refunded", obj)); err == nil {
		t.Error("a customer field that is not a customer id: no error")
	}
}

// TestSubscriptionTypes: one row per customer.subscription.* type.
func TestSubscriptionTypes(t *testing.T) {
	obj := subscriptionJSON("sub_1Pgc6rB7WZ01zgkWNy0Cn5nw", "cus_Sub1", "active", 2000, 3)
	for _, tc := range []struct {
		typ     string
		p       store.Processor
		status  string
		summary string
	}{
		{"customer.subscription.created", subscriptionCreated, "active", "Subscription sub_1Pgc6rB7WZ01zgkWNy0Cn5nw created (active): USD 60.00/month"},
		{"customer.subscription.updated", subscriptionUpdated, "past_due", "Subscription sub_1Pgc6rB7WZ01zgkWNy0Cn5nw updated (past_due): USD 60.00/month"},
		{"customer.subscription.deleted", subscriptionDeleted, "canceled", "Subscription sub_1Pgc6rB7WZ01zgkWNy0Cn5nw ended (canceled): USD 60.00/month"},
		{"customer.subscription.paused", subscriptionPaused, "paused", "Subscription sub_1Pgc6rB7WZ01zgkWNy0Cn5nw paused (paused): USD 60.00/month"},
		{"customer.subscription.resumed", subscriptionResumed, "active", "Subscription sub_1Pgc6rB7WZ01zgkWNy0Cn5nw resumed (active): USD 60.00/month"},
		{"customer.subscription.trial_will_end", subscriptionTrialWillEnd, "trialing", "Subscription sub_1Pgc6rB7WZ01zgkWNy0Cn5nw trial ends 2023-11-30 (trialing): USD 60.00/month"},
		{"customer.subscription.pending_update_applied", subscriptionPendingUpdateApplied, "active", "Subscription sub_1Pgc6rB7WZ01zgkWNy0Cn5nw pending update applied (active): USD 60.00/month"},
		{"customer.subscription.pending_update_expired", subscriptionPendingUpdateExpired, "active", "Subscription sub_1Pgc6rB7WZ01zgkWNy0Cn5nw pending update expired (active): USD 60.00/month"},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			o := strings.Replace(obj, `"status": "active"`, `"status": "`+tc.status+`"`, 1)
			eff := mustEffect(t, tc.p, incoming("evt_s", tc.typ, o))
			wantBilling(t, eff, store.BillingEvent{EventID: "evt_s", CustomerID: "cus_Sub1", Type: tc.typ,
				ObjectID: "sub_1Pgc6rB7WZ01zgkWNy0Cn5nw", Amount: 6000, Currency: "usd", Status: tc.status, Created: evCreated,
				Summary: tc.summary})
		})
	}
}

func TestSubscriptionShapes(t *testing.T) {
	// A legacy plan on the subscription itself (API versions before
	// 2018-02-05), billed every 3 months.
	legacy := `{"id": "sub_Old", "object": "subscription", "customer": "cus_Old", "status": "active",
		"plan": {"id": "gold", "object": "plan", "amount": 999, "currency": "eur", "interval": "month", "interval_count": 3}, "quantity": 2}`
	eff := mustEffect(t, subscriptionCreated, incoming("evt_old", "customer.subscription.created", legacy))
	if eff.Billing.Amount != 1998 || eff.Billing.Currency != "eur" || eff.Billing.Summary != "Subscription sub_Old created (active): EUR 19.98/3 months" {
		t.Errorf("legacy %+v", eff.Billing)
	}
	// Tiered prices have no unit amount: no amount in the summary.
	tiered := `{"id": "sub_Tier", "object": "subscription", "customer": "cus_Tier", "status": "active", "currency": "usd",
		"items": {"object": "list", "data": [{"price": {"unit_amount": null, "currency": "usd", "recurring": {"interval": "year", "interval_count": 1}}, "quantity": 5}]}}`
	eff = mustEffect(t, subscriptionUpdated, incoming("evt_tier", "customer.subscription.updated", tiered))
	if eff.Billing.Amount != 0 || eff.Billing.Summary != "Subscription sub_Tier updated (active)" {
		t.Errorf("tiered %+v", eff.Billing)
	}
	// Zero-decimal currency.
	yen := strings.Replace(subscriptionJSON("sub_Yen", "cus_Yen", "active", 1500, 1), `"currency": "usd"`, `"currency": "jpy"`, -1)
	eff = mustEffect(t, subscriptionCreated, incoming("evt_yen", "customer.subscription.created", yen))
	if eff.Billing.Summary != "Subscription sub_Yen created (active): JPY 1500/month" {
		t.Errorf("yen %+v", eff.Billing)
	}
	if _, err := subscriptionCreated(incoming("evt_x", "customer.subscription.created", invoiceJSON("in_1", "cus_1", 1, 1, "paid"))); err == nil {
		t.Error("an invoice as a subscription: no error")
	}
	if _, err := subscriptionCreated(incoming("evt_x", "customer.subscription.created", `{"id": "sub_1", "object": "subscription", "items": {"data": "x"}}`)); err == nil {
		t.Error("items of the wrong shape: no error")
	}
}

// TestRegistry: every handled type has a processor; everything else is
// ignored; the subscription family is complete.
func TestRegistry(t *testing.T) {
	r := NewRegistry()
	for _, typ := range []string{"customer.created", "customer.updated", "customer.deleted", "invoice.paid", "invoice.payment_failed",
		"charge.refunded", "customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
		"customer.subscription.paused", "customer.subscription.resumed", "customer.subscription.trial_will_end",
		"customer.subscription.pending_update_applied", "customer.subscription.pending_update_expired"} {
		if r[typ] == nil {
			t.Errorf("no processor for %s", typ)
		}
	}
	if len(r) != 14 {
		t.Errorf("%d processors, want 14", len(r))
	}
	for _, typ := range []string{"payment_intent.succeeded", "invoice.created", "customer.source.created", "customer.subscription", "", "plan.created"} {
		eff, err := Process(incoming("evt_o", typ, `{"id": "x", "object": "thing"}`))
		if err != nil || !eff.Ignored || eff.Client != nil || eff.Billing != nil {
			t.Errorf("%q: %+v, %v; want ignored", typ, eff, err)
		}
	}
	// Registries are values: changing one changes no other.
	r["invoice.paid"] = nil
	if NewRegistry()["invoice.paid"] == nil {
		t.Error("registries share state")
	}
}

func TestFormatAmount(t *testing.T) {
	for _, tc := range []struct {
		amount int64
		cur    string
		want   string
	}{
		{1200, "usd", "USD 12.00"}, {5, "eur", "EUR 0.05"}, {0, "gbp", "GBP 0.00"}, {-1500, "usd", "USD -15.00"},
		{1500, "jpy", "JPY 1500"}, {12345, "kwd", "KWD 12.345"}, {100, "", "??? 1.00"},
	} {
		if got := formatAmount(tc.amount, tc.cur); got != tc.want {
			t.Errorf("formatAmount(%d, %q) = %q, want %q", tc.amount, tc.cur, got, tc.want)
		}
	}
}

func TestCustomerOf(t *testing.T) {
	for _, tc := range []struct{ object, want string }{
		{customerJSON("cus_A1", "A", ""), "cus_A1"},
		{invoiceJSON("in_1", "cus_B2", 1, 1, "paid"), "cus_B2"},
		{`{"object": "charge", "customer": {"id": "cus_C3", "object": "customer"}}`, "cus_C3"},
		{`{"object": "charge", "customer": null}`, ""},
		{`{"object": "charge", "customer": "not a customer"}`, ""},
		{`{"object": "customer", "id": "acct_1"}`, ""},
		{`"cus_D4"`, ""},
	} {
		var env envelope
		if err := json.Unmarshal(eventJSON("evt_1", "x.y", evCreated, tc.object), &env); err != nil {
			t.Fatal(err)
		}
		if got := customerOf(env); got != tc.want {
			t.Errorf("customerOf(%.40s…) = %q, want %q", tc.object, got, tc.want)
		}
		// The same from the object as stripe-go decodes it.
		var fields map[string]any
		if json.Unmarshal([]byte(tc.object), &fields) == nil && fields != nil {
			env.Data.Fields = fields
			if got := customerOf(env); got != tc.want {
				t.Errorf("customerOf(%.40s…), decoded fields = %q, want %q", tc.object, got, tc.want)
			}
		}
	}
	if got := customerOf(envelope{}); got != "" {
		t.Errorf("no data: %q", got)
	}
}
