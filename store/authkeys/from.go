package authkeys

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// pattern is one parsed from= pattern. Exactly one of addr, prefix and
// glob is set.
type pattern struct {
	negate bool
	addr   netip.Addr   // a single address, unmapped
	prefix netip.Prefix // a CIDR block
	glob   string       // an address with * and ? wildcards, lower case
}

// parsePattern parses one from= pattern: an optional "!" followed by an
// IPv4 or IPv6 address, a CIDR block, or an address with * and ?
// wildcards. Host names are refused: Backroom never does reverse DNS.
func parsePattern(raw string) (pattern, error) {
	var p pattern
	body := raw
	if strings.HasPrefix(body, "!") {
		p.negate, body = true, body[1:]
	}
	switch {
	case body == "":
		return p, fmt.Errorf("from pattern %s is empty", show(raw))
	case strings.Contains(body, "/"):
		prefix, err := netip.ParsePrefix(body)
		if err != nil {
			return p, fmt.Errorf("from pattern %s is not a valid CIDR block", show(raw))
		}
		if m := prefix.Masked(); m != prefix {
			return p, fmt.Errorf("from pattern %s has host bits set (did you mean %s?)", show(raw), m)
		}
		p.prefix = prefix
	case strings.ContainsAny(body, "*?"):
		if !isAddressGlob(body) {
			return p, fmt.Errorf("from pattern %s is not an address wildcard (host name patterns are not supported)", show(raw))
		}
		p.glob = strings.ToLower(body)
	default:
		addr, err := netip.ParseAddr(body)
		if err != nil || addr.Zone() != "" {
			return p, fmt.Errorf("from pattern %s is not an IP address, CIDR block or address wildcard (host name patterns are not supported)", show(raw))
		}
		p.addr = addr.Unmap()
	}
	return p, nil
}

// isAddressGlob reports whether s, which contains * or ?, can only match
// addresses: IPv4-like (digits, dots) or IPv6-like (has a colon; hex
// digits, colons, dots).
func isAddressGlob(s string) bool {
	v4, v6 := true, strings.Contains(s, ":")
	for i := 0; i < len(s); i++ {
		c := s[i]
		digitish := c >= '0' && c <= '9' || c == '.' || c == '*' || c == '?'
		hexish := digitish || c == ':' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
		v4 = v4 && digitish
		v6 = v6 && hexish
	}
	return v4 || v6
}

// matches reports whether the pattern, ignoring negation, matches any of
// the given forms of one address.
func (p pattern) matches(forms []netip.Addr) bool {
	for _, a := range forms {
		switch {
		case p.glob != "":
			if globMatch(p.glob, a.String()) {
				return true
			}
		case p.prefix.IsValid():
			if p.prefix.Contains(a) {
				return true
			}
		case p.addr.IsValid():
			if p.addr == a.Unmap() {
				return true
			}
		}
	}
	return false
}

// globMatch reports whether s matches pattern, where * matches any run of
// characters and ? matches exactly one.
func globMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			mark++
			p, i = star+1, mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// AllowsFrom reports whether a client at ip may use the entry. It is true
// when From is nil. Otherwise, as in OpenSSH, ip must match at least one
// pattern without "!" and no pattern with "!". An IPv4 address also matches
// as its IPv4-mapped IPv6 form and the other way round. A nil or invalid
// ip, or any pattern that does not parse, gives false.
func (e Entry) AllowsFrom(ip net.IP) bool {
	if e.From == nil {
		return true
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	addr = addr.Unmap()
	forms := []netip.Addr{addr}
	if addr.Is4() {
		forms = append(forms, netip.AddrFrom16(addr.As16()))
	}
	allowed := false
	for _, raw := range e.From {
		p, err := parsePattern(raw)
		if err != nil {
			return false
		}
		if p.matches(forms) {
			if p.negate {
				return false
			}
			allowed = true
		}
	}
	return allowed
}
