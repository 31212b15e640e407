package webhooks

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ClientAddr is the address a request came from, as the webhook endpoint
// records it and the web admin checks it: the peer's, or, when the peer is
// one of trusted (BACKROOM_TRUSTED_PROXIES), the last hop of
// X-Forwarded-For that is not itself a trusted proxy. It is an IP address
// without a port (or, for a peer address that does not parse, that address
// clipped).
func ClientAddr(r *http.Request, trusted []netip.Prefix) string { return clientAddr(r, trusted) }

// clientAddr is the address a request came from: the peer's, or, when
// the peer is a trusted proxy, the last hop of X-Forwarded-For that is
// not itself a trusted proxy (the hops to its left are whatever the client
// chose to send). It is an IP address without a port.
func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	peer, ok := parseHop(r.RemoteAddr)
	if !ok {
		return clip(r.RemoteAddr, 100)
	}
	if !inAny(peer, trusted) {
		return peer.String()
	}
	hops := forwardedHops(r.Header.Values("X-Forwarded-For"))
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			// A hop a trusted proxy appended cannot be garbage; this one
			// came from further left, so the client may have forged it.
			break
		}
		if !inAny(a, trusted) {
			return a.String()
		}
		peer = a // every hop so far is a trusted proxy
	}
	return peer.String()
}

// forwardedHops splits X-Forwarded-For headers into hops, left to right.
func forwardedHops(values []string) []string {
	var hops []string
	for _, v := range values {
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				hops = append(hops, h)
			}
		}
	}
	return hops
}

// parseHop parses an address with or without a port ("192.0.2.1",
// "192.0.2.1:443", "2001:db8::1", "[2001:db8::1]:443").
func parseHop(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

func inAny(a netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// selectedHeaders are the request headers kept with an attempt. The
// Stripe-Signature header is summarised (its timestamp and how many
// signatures), never kept: a signature is not a secret, but there is
// nothing to learn from it later.
func selectedHeaders(r *http.Request) map[string]string {
	h := map[string]string{}
	switch vs := r.Header.Values("Stripe-Signature"); {
	case len(vs) > 1:
		h["Stripe-Signature"] = strconv.Itoa(len(vs)) + " headers"
	case len(vs) == 1:
		sh, reason := parseSigHeader(vs[0])
		switch reason {
		case "", ReasonNoTimestamp, ReasonNoV1:
			h["Stripe-Signature"] = sh.summary()
		case ReasonNoSignature:
			h["Stripe-Signature"] = "empty"
		default:
			h["Stripe-Signature"] = "malformed"
		}
	}
	for _, k := range []string{"User-Agent", "Content-Type", "X-Forwarded-For"} {
		if vs := r.Header.Values(k); len(vs) > 0 {
			h[k] = clip(strings.Join(vs, ", "), 300)
		}
	}
	if r.ContentLength >= 0 {
		h["Content-Length"] = strconv.FormatInt(r.ContentLength, 10)
	}
	return h
}

// clip shortens s to at most n bytes of valid UTF-8 without control
// characters, marking a cut with "…".
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
