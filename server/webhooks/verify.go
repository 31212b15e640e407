package webhooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
)

// Tolerance is how far a signature's timestamp may be from the clock, in
// either direction. Stripe signs every retry afresh, so a genuine delivery
// is always recent; an old one is a replay.
const Tolerance = 300 * time.Second

// Reasons a request is rejected (400). They are short, fixed and safe to
// show: they name what was wrong, never the secret or a signature.
const (
	ReasonNoSignature   = "missing Stripe-Signature header"
	ReasonBadHeader     = "malformed Stripe-Signature header"
	ReasonNoTimestamp   = "no timestamp in Stripe-Signature header"
	ReasonBadTimestamp  = "malformed timestamp in Stripe-Signature header"
	ReasonNoV1          = "no v1 signature in Stripe-Signature header"
	ReasonTooOld        = "timestamp too old"
	ReasonFuture        = "timestamp in the future"
	ReasonNoMatch       = "no signature matches"
	ReasonMalformedJSON = "malformed JSON"
	ReasonNoIDOrType    = "event has no id or type"
	ReasonBadIDOrType   = "malformed event id or type"
)

// sigHeader is what the Stripe-Signature header says, parsed as stripe-go
// parses it ("t=…,v1=…,v1=…,v0=…": unknown keys are ignored).
type sigHeader struct {
	t    int64
	hasT bool
	v1   int // v1 values (well-formed or not)
	v0   int // v0 values (test-mode legacy scheme), for the attempt record
}

// parseSigHeader parses a Stripe-Signature header. It refuses what
// stripe-go refuses (a part without exactly one '=', a t that is not a
// number) and also a header with several t= parts: stripe-go would check
// the last one while the future check read another.
func parseSigHeader(h string) (sigHeader, string) {
	var sh sigHeader
	if h == "" {
		return sh, ReasonNoSignature
	}
	for _, part := range strings.Split(h, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok || strings.Contains(v, "=") {
			return sh, ReasonBadHeader
		}
		switch k {
		case "t":
			if sh.hasT {
				return sh, ReasonBadHeader
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return sh, ReasonBadTimestamp
			}
			sh.t, sh.hasT = n, true
		case "v1":
			sh.v1++
		case "v0":
			sh.v0++
		}
	}
	switch {
	case !sh.hasT:
		return sh, ReasonNoTimestamp
	case sh.v1 == 0:
		return sh, ReasonNoV1
	}
	return sh, ""
}

// summary describes the header for the attempt record: the timestamp and
// how many signatures of each scheme — never the signatures themselves.
func (sh sigHeader) summary() string {
	var b strings.Builder
	if sh.hasT {
		fmt.Fprintf(&b, "t=%d", sh.t)
	} else {
		b.WriteString("no t")
	}
	fmt.Fprintf(&b, "; v1 signatures: %d", sh.v1)
	if sh.v0 > 0 {
		fmt.Fprintf(&b, "; v0 signatures: %d", sh.v0)
	}
	return b.String()
}

// envelope is the part of a Stripe event that Backroom reads itself.
type envelope struct {
	ID         string        `json:"id"`
	Type       string        `json:"type"`
	APIVersion string        `json:"api_version"`
	Created    int64         `json:"created"`
	Livemode   bool          `json:"livemode"`
	Data       *envelopeData `json:"data"`
}

// envelopeData is the event's data: the object it is about.
type envelopeData struct {
	Object json.RawMessage `json:"object"`
	// Fields is the object as stripe-go decoded it, when it did.
	Fields map[string]any `json:"-"`
}

// verified is an event whose signature checked out.
type verified struct {
	env    envelope
	secret string // label of the secret that verified it
}

// verify checks the request's signature against each secret in turn, the
// timestamp against the clock (both ways), and the body's shape. It returns
// the reason for a rejection, or "" and the event.
func verify(body []byte, header string, secrets []Secret, now time.Time) (verified, string) {
	sh, reason := parseSigHeader(header)
	if reason != "" {
		return verified{}, reason
	}
	ts := time.Unix(sh.t, 0)
	if now.Sub(ts) > Tolerance {
		return verified{}, ReasonTooOld
	}
	if ts.Sub(now) > Tolerance {
		return verified{}, ReasonFuture
	}
	opts := webhook.ConstructEventOptions{Tolerance: Tolerance, IgnoreAPIVersionMismatch: true}
	label := ""
	var decoded *stripe.Event
	for i, s := range secrets {
		evt, err := webhook.ConstructEventWithOptions(body, header, string(s), opts)
		if errors.Is(err, webhook.ErrNoValidSignature) {
			continue // perhaps the next secret
		}
		if r := sentinelReason(err); r != "" {
			return verified{}, r
		}
		// err is nil, or stripe-go's types did not fit the body: only
		// decoding can fail once the signature checked out. Backroom then
		// reads the envelope itself below (some old API versions render
		// fields in shapes stripe-go v76 no longer decodes).
		label = secretLabel(i, len(secrets))
		if err == nil {
			decoded = &evt
		}
		break
	}
	if label == "" {
		return verified{}, ReasonNoMatch
	}
	var env envelope
	if decoded != nil {
		// stripe-go has read the body already: no second pass over it.
		env = envelope{ID: decoded.ID, Type: string(decoded.Type), APIVersion: decoded.APIVersion, Created: decoded.Created,
			Livemode: decoded.Livemode}
		if decoded.Data != nil {
			env.Data = &envelopeData{Object: decoded.Data.Raw, Fields: decoded.Data.Object}
		}
	} else if err := json.Unmarshal(body, &env); err != nil {
		return verified{}, ReasonMalformedJSON
	}
	if env.ID == "" || env.Type == "" {
		return verified{}, ReasonNoIDOrType
	}
	if !printableToken(env.ID, 255) || !printableToken(env.Type, 255) {
		return verified{}, ReasonBadIDOrType
	}
	return verified{env: env, secret: label}, ""
}

// sentinelReason maps stripe-go's verification errors to reasons; "" for
// nil and for errors that come after verification.
func sentinelReason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, webhook.ErrNoValidSignature):
		return ReasonNoMatch
	case errors.Is(err, webhook.ErrTooOld):
		return ReasonTooOld // by stripe-go's own clock
	case errors.Is(err, webhook.ErrNotSigned):
		return ReasonNoSignature
	case errors.Is(err, webhook.ErrInvalidHeader):
		return ReasonBadHeader
	}
	return ""
}

// printableToken accepts 1..max printable ASCII characters without spaces
// (Stripe ids and event types are such).
func printableToken(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
