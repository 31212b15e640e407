package webhooks

import (
	"fmt"
	"log/slog"
	"strings"
)

// Secret is a Stripe webhook signing secret (whsec_…). It never prints
// itself: fmt, %v, %#v and slog all show "[redacted]".
type Secret string

func (Secret) String() string { return "[redacted]" }

// GoString keeps %#v from printing the secret.
func (Secret) GoString() string { return "[redacted]" }

// LogValue keeps slog from printing the secret.
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// MarshalText keeps encoders (JSON, slog's JSON handler for a slice of
// secrets) from writing the secret.
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// ParseSecrets parses STRIPE_WEBHOOK_SECRET: one or more comma-separated
// signing secrets, each whsec_ followed by letters and digits (several
// while a rolled secret is in its grace window). Empty means none. The
// error says which item is wrong and never quotes it.
func ParseSecrets(v string) ([]Secret, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	items := strings.Split(v, ",")
	out := make([]Secret, 0, len(items))
	for i, item := range items {
		item = strings.TrimSpace(item)
		which := "the secret"
		if len(items) > 1 {
			which = fmt.Sprintf("secret %d of %d", i+1, len(items))
		}
		if err := checkSecret(item); err != "" {
			return nil, fmt.Errorf("%s %s: expected whsec_ followed by letters and digits, as shown for the endpoint in "+
				"Stripe's dashboard (or printed by `stripe listen`); separate several secrets with commas", which, err)
		}
		out = append(out, Secret(item))
	}
	return out, nil
}

// checkSecret says what is wrong with a secret, without quoting it.
func checkSecret(s string) string {
	switch {
	case s == "":
		return "is empty"
	case strings.HasPrefix(s, "sk_") || strings.HasPrefix(s, "rk_") || strings.HasPrefix(s, "pk_"):
		return "is an API key, not a webhook signing secret"
	case !strings.HasPrefix(s, "whsec_") || len(s) == len("whsec_"):
		return "is not a webhook signing secret"
	}
	for _, r := range s[len("whsec_"):] {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return "has a character other than letters and digits after whsec_"
		}
	}
	return ""
}

// secretLabel names the i-th (0-based) of n secrets without revealing
// it: "secret 2 of 2".
func secretLabel(i, n int) string { return fmt.Sprintf("secret %d of %d", i+1, n) }
