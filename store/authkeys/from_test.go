package authkeys

import (
	"net"
	"strings"
	"testing"
)

func TestAllowsFrom(t *testing.T) {
	for _, tc := range []struct {
		name  string
		from  []string
		allow []string
		deny  []string
	}{
		{
			name:  "no from option allows everything",
			from:  nil,
			allow: []string{"10.0.0.1", "2001:db8::1", "203.0.113.9"},
		},
		{
			name:  "single address",
			from:  []string{"203.0.113.9"},
			allow: []string{"203.0.113.9", "::ffff:203.0.113.9"},
			deny:  []string{"203.0.113.10", "2001:db8::1"},
		},
		{
			name:  "CIDR v4 with a negated address",
			from:  []string{"10.0.0.0/8", "!10.0.0.5"},
			allow: []string{"10.0.0.1", "10.255.255.255", "::ffff:10.1.1.1"},
			deny:  []string{"10.0.0.5", "::ffff:10.0.0.5", "11.0.0.1", "192.168.1.1"},
		},
		{
			name:  "negation wins whatever the order",
			from:  []string{"!10.0.0.0/24", "10.0.0.0/8"},
			allow: []string{"10.0.1.1"},
			deny:  []string{"10.0.0.7"},
		},
		{
			name:  "CIDR v6",
			from:  []string{"fd00::/8", "2001:db8::/32"},
			allow: []string{"fd12:3456::1", "2001:db8:ffff::1"},
			deny:  []string{"fe80::1", "2001:db9::1", "10.0.0.1"},
		},
		{
			name:  "IPv6 address pattern matches any spelling",
			from:  []string{"2001:DB8:0:0:0:0:0:1"},
			allow: []string{"2001:db8::1"},
			deny:  []string{"2001:db8::2"},
		},
		{
			name:  "wildcards",
			from:  []string{"192.168.1.*", "172.16.0.?"},
			allow: []string{"192.168.1.1", "192.168.1.254", "172.16.0.7"},
			deny:  []string{"192.168.2.1", "172.16.0.17", "10.192.168.1"},
		},
		{
			name:  "IPv6 wildcard, upper case",
			from:  []string{"FD00:*"},
			allow: []string{"fd00::1", "fd00:1::2"},
			deny:  []string{"fd01::1"},
		},
		{
			name:  "negated wildcard",
			from:  []string{"*", "!192.168.*"},
			allow: []string{"10.0.0.1", "2001:db8::1"},
			deny:  []string{"192.168.3.4"},
		},
		{
			name: "only negations allow nothing",
			from: []string{"!10.0.0.1"},
			deny: []string{"10.0.0.2", "10.0.0.1"},
		},
		{
			name: "empty non-nil list allows nothing",
			from: []string{},
			deny: []string{"10.0.0.1"},
		},
		{
			name: "an invalid pattern (hand-built entry) fails closed",
			from: []string{"10.0.0.0/8", "bastion.example.com"},
			deny: []string{"10.0.0.1"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := Entry{From: tc.from}
			for _, a := range tc.allow {
				if ip := net.ParseIP(a); !e.AllowsFrom(ip) {
					t.Errorf("%s refused, want allowed", a)
				}
			}
			for _, a := range tc.deny {
				if ip := net.ParseIP(a); e.AllowsFrom(ip) {
					t.Errorf("%s allowed, want refused", a)
				}
			}
		})
	}

	if (Entry{From: []string{"*"}}).AllowsFrom(nil) {
		t.Error("nil IP allowed by a from= list")
	}
	if !(Entry{}).AllowsFrom(nil) {
		t.Error("nil IP refused when there is no from= list")
	}
}

func TestParsePattern(t *testing.T) {
	for _, p := range []string{"10.0.0.1", "!10.0.0.1", "::1", "10.0.0.0/8", "fd00::/8", "0.0.0.0/0", "*", "10.*", "1?.0.0.1", "fe80::*", "::ffff:10.0.0.1"} {
		if _, err := parsePattern(p); err != nil {
			t.Errorf("parsePattern(%q) = %v", p, err)
		}
	}
	for _, tc := range []struct{ in, msg string }{
		{"", "is empty"},
		{"!", "is empty"},
		{"localhost", "host name patterns are not supported"},
		{"host*", "host name patterns are not supported"},
		{"*.corp", "host name patterns are not supported"},
		{"10.0.0.0/8/8", "not a valid CIDR block"},
		{"fd00::1/8", "has host bits set (did you mean fd00::/8?)"},
		{"10.0.0.1 ", "is not an IP address"},
		{"010.0.0.1", "is not an IP address"},
		{"fe80::1%eth0", "is not an IP address"},
	} {
		_, err := parsePattern(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("parsePattern(%q) = %v, want error containing %q", tc.in, err, tc.msg)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "10.0.0.1", true},
		{"10.*", "10.0.0.1", true},
		{"10.*", "110.0.0.1", false},
		{"*.1", "10.0.0.1", true},
		{"*.1", "10.0.0.10", false},
		{"1?.0.0.1", "12.0.0.1", true},
		{"1?.0.0.1", "1.0.0.1", false},
		{"*0*0*", "10.0.0.1", true},
		{"a*b*c", "abxbc", true},
		{"a*b*c", "abxbd", false},
		{"", "", true},
		{"", "x", false},
	} {
		if got := globMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}
