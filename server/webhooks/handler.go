// Package webhooks is Backroom's Stripe webhook endpoint: it verifies each
// delivery's signature, records every attempt, stores and processes each
// verified event exactly once (store.ReceiveWebhook), and prunes old
// records in the background.
//
// Responses: 200 once a verified event is committed (processed, ignored or
// a duplicate); 500 when its processing failed (it is stored as failed and
// Stripe retries); 400 with a short reason for anything that does not
// verify; 413 for a body over the limit; 503 while no secret is set. Never
// a redirect.
package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"backroom/store"
)

// DefaultMaxBody is the largest body read by default (1 MiB): Stripe's
// events are a few KiB, the largest invoices some tens.
const DefaultMaxBody = 1 << 20

// storeTimeout bounds the store call of one request, within the HTTP
// server's 15 s write timeout.
const storeTimeout = 10 * time.Second

// Store is what the endpoint needs of the store.
type Store interface {
	ReceiveWebhook(ctx context.Context, att store.WebhookAttempt, ev store.IncomingEvent, process store.Processor) (string, error)
	RecordRejected(ctx context.Context, att store.WebhookAttempt, reason string) (bool, error)
}

// Config configures the endpoint.
type Config struct {
	Store Store
	// Secrets are the signing secrets (STRIPE_WEBHOOK_SECRET), tried in
	// order; none makes the endpoint answer 503.
	Secrets []Secret
	// MaxBody is the largest body accepted, in bytes (default 1 MiB).
	MaxBody int64
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// Now is the clock (nil: time.Now). It dates attempts and bounds
	// signature timestamps in both directions.
	Now func() time.Time
	// Process turns an event into its effect (nil: Process, the registry).
	Process store.Processor
	Logger  *slog.Logger
}

// Handler is the endpoint. Route POST requests to it; it does not check
// the method.
type Handler struct {
	st      Store
	secrets []Secret
	maxBody int64
	trusted []netip.Prefix
	now     func() time.Time
	process store.Processor
	log     *slog.Logger
}

// New returns the endpoint's handler.
func New(cfg Config) *Handler {
	h := &Handler{st: cfg.Store, secrets: cfg.Secrets, maxBody: cfg.MaxBody, trusted: cfg.TrustedProxies,
		now: cfg.Now, process: cfg.Process, log: cfg.Logger}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBody
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.process == nil {
		h.process = NewRegistry().Process
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h
}

// SecretSet reports whether any signing secret is configured.
func (h *Handler) SecretSet() bool { return len(h.secrets) > 0 }

// Messages of the non-400 answers.
const (
	msgNoSecret    = "webhook secret not set"
	msgTooLarge    = "request body too large"
	msgUnreadable  = "could not read the request body"
	msgStoreFailed = "could not store the event; retry later"
	msgFailed      = "event stored; processing failed (it will be processed again when retried)"
)

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(h.secrets) == 0 {
		reply(w, http.StatusServiceUnavailable, msgNoSecret)
		return
	}
	now := h.now()
	att := store.WebhookAttempt{
		ReceivedAt: now,
		RemoteAddr: clientAddr(r, h.trusted),
		Headers:    selectedHeaders(r),
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.log.Debug("webhook body over the limit", "remote", att.RemoteAddr, "limit", h.maxBody)
			reply(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("%s (limit %d bytes)", msgTooLarge, h.maxBody))
			return
		}
		h.log.Debug("webhook body unreadable", "remote", att.RemoteAddr, "err", err)
		reply(w, http.StatusBadRequest, msgUnreadable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()

	var v verified
	reason := ""
	if sigs := r.Header.Values("Stripe-Signature"); len(sigs) > 1 {
		reason = ReasonBadHeader
	} else {
		v, reason = verify(body, r.Header.Get("Stripe-Signature"), h.secrets, now)
	}
	if reason != "" {
		stored, err := h.st.RecordRejected(ctx, att, reason)
		switch {
		case err != nil:
			h.log.Error("recording a rejected webhook", "remote", att.RemoteAddr, "reason", reason, "err", err)
		case stored:
			h.log.Info("webhook rejected", "remote", att.RemoteAddr, "reason", reason)
		}
		reply(w, http.StatusBadRequest, reason)
		return
	}

	ev := store.IncomingEvent{
		EventID:    v.env.ID,
		Type:       v.env.Type,
		APIVersion: clip(v.env.APIVersion, 40),
		Livemode:   v.env.Livemode,
		CustomerID: customerOf(v.env),
		Payload:    body,
		Secret:     v.secret,
	}
	if v.env.Created > 0 {
		ev.Created = time.Unix(v.env.Created, 0).UTC()
	}
	if v.env.Data != nil {
		ev.Object = v.env.Data.Object
	}
	outcome, err := h.st.ReceiveWebhook(ctx, att, ev, h.process)
	if err != nil {
		h.log.Error("storing a webhook event", "event_id", ev.EventID, "type", ev.Type, "err", err)
		reply(w, http.StatusInternalServerError, msgStoreFailed)
		return
	}
	// Committed: only now may Stripe hear that it was received.
	switch outcome {
	case store.WebhookFailed:
		h.log.Warn("webhook event failed", "event_id", ev.EventID, "type", ev.Type)
		reply(w, http.StatusInternalServerError, msgFailed)
	default:
		h.log.Debug("webhook event", "event_id", ev.EventID, "type", ev.Type, "outcome", outcome, "secret", ev.Secret)
		reply(w, http.StatusOK, outcome)
	}
}

// reply writes a short plain-text answer.
func reply(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}

// customerOf is the customer an event is about: the object itself when it
// is a customer, else its customer field (an id, or an expanded object).
// Anything that is not a customer id gives "".
func customerOf(env envelope) string {
	if env.Data == nil || len(env.Data.Object) == 0 {
		return ""
	}
	// As stripe-go decoded it, when it did; else read here, alike.
	f := env.Data.Fields
	if f == nil && json.Unmarshal(env.Data.Object, &f) != nil {
		return ""
	}
	id := ""
	if f["object"] == "customer" {
		id, _ = f["id"].(string)
	} else {
		switch c := f["customer"].(type) {
		case string:
			id = c
		case map[string]any:
			id, _ = c["id"].(string)
		}
	}
	if store.ValidCustomerID(id) != nil {
		return ""
	}
	return id
}

// expandableID reads a Stripe expandable field: an id string, or an object
// with an id.
func expandableID(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var id string
	if json.Unmarshal(raw, &id) == nil {
		return id
	}
	var obj struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(raw, &obj) == nil {
		return obj.ID
	}
	return ""
}
