package authkeys

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// supportedOptions is the list shown when an option is refused.
const supportedOptions = "supported: environment, from, expiry-time"

// option is one option as written on a line, with the quoting removed.
type option struct {
	name     string // as written; option names are case-insensitive
	value    string // unescaped value; empty when hasValue is false
	hasValue bool
}

// parseLine parses one line that is neither blank nor a comment. The line
// has no surrounding white space. The returned Entry has no Line set.
func parseLine(s string, loc *time.Location) (Entry, error) {
	var opts []option
	keyPart := s
	if !startsWithKey(s) {
		var err error
		opts, keyPart, err = splitOptions(s)
		if err != nil {
			return Entry{}, err
		}
		keyPart = strings.TrimLeft(keyPart, " \t")
		if keyPart == "" {
			return Entry{}, errors.New("options are not followed by a key")
		}
	}

	e, err := applyOptions(opts, loc)
	if err != nil {
		return Entry{}, err
	}
	key, comment, err := parseKeyFields(keyPart)
	if err != nil {
		return Entry{}, err
	}
	e.Key = key
	e.Fingerprint = ssh.FingerprintSHA256(key)
	e.Comment = comment
	return e, nil
}

// startsWithKey reports whether s begins with a key type rather than with
// options. That is the case when the first field is a key type name we
// know of, or when the second field is base64 key data whose embedded type
// is the first field.
func startsWithKey(s string) bool {
	first, rest := cutField(s)
	if strings.ContainsAny(first, `=",`) {
		return false
	}
	if knownKeyTypeName(first) {
		return true
	}
	second, _ := cutField(rest)
	blob, err := base64.StdEncoding.DecodeString(second)
	if err != nil || len(blob) < 4 {
		return false
	}
	n := int(blob[0])<<24 | int(blob[1])<<16 | int(blob[2])<<8 | int(blob[3])
	return n == len(first) && len(blob)-4 >= n && string(blob[4:4+n]) == first
}

// cutField splits s at the first run of spaces or tabs, after skipping
// leading ones. rest keeps its leading white space.
func cutField(s string) (field, rest string) {
	s = strings.TrimLeft(s, " \t")
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		return s[:i], s[i:]
	}
	return s, ""
}

// splitOptions reads the comma-separated options at the start of s and
// returns them with what follows the options (starting at the white space
// that ends them). Values must be double-quoted; inside a value, \" is a
// quote, and commas and white space do not end the value.
func splitOptions(s string) ([]option, string, error) {
	var opts []option
	i := 0
	for {
		start := i
		for i < len(s) && !strings.ContainsRune("=, \t\"", rune(s[i])) {
			i++
		}
		o := option{name: s[start:i]}
		if o.name == "" {
			switch {
			case i < len(s) && s[i] == '"':
				return nil, "", fmt.Errorf("unexpected quote at column %d: a quote must follow option=", i+1)
			case len(opts) == 0:
				return nil, "", fmt.Errorf("line does not start with options or a key type (column %d)", i+1)
			default:
				return nil, "", fmt.Errorf("empty option at column %d (stray comma?)", i+1)
			}
		}
		if i < len(s) && s[i] == '=' {
			i++
			if i >= len(s) || s[i] != '"' {
				return nil, "", fmt.Errorf("option %s: the value must be in double quotes", show(o.name))
			}
			i++
			var v strings.Builder
			for {
				if i >= len(s) {
					return nil, "", fmt.Errorf("option %s: unterminated quote", show(o.name))
				}
				c := s[i]
				if c == '\\' && i+1 < len(s) && s[i+1] == '"' {
					v.WriteByte('"')
					i += 2
					continue
				}
				i++
				if c == '"' {
					break
				}
				v.WriteByte(c)
			}
			o.value, o.hasValue = v.String(), true
		}
		opts = append(opts, o)
		if i >= len(s) || s[i] == ' ' || s[i] == '\t' {
			return opts, s[i:], nil
		}
		if s[i] != ',' {
			return nil, "", fmt.Errorf("unexpected %s after option %s (column %d)", show(s[i:i+1]), show(o.name), i+1)
		}
		i++
	}
}

// applyOptions checks the options and returns an Entry with User, Role,
// From and ExpiresAt set.
func applyOptions(opts []option, loc *time.Location) (Entry, error) {
	e := Entry{Role: RoleStaff}
	var haveUser, haveRole, haveFrom, haveExpiry bool
	for _, o := range opts {
		name := strings.ToLower(o.name)
		switch name {
		case "environment", "from", "expiry-time":
			if !o.hasValue {
				return Entry{}, fmt.Errorf("option %s needs a quoted value", show(o.name))
			}
		default:
			return Entry{}, fmt.Errorf("option %s is not supported by Backroom (%s)", show(o.name), supportedOptions)
		}
		switch name {
		case "environment":
			variable, value, ok := strings.Cut(o.value, "=")
			if !ok {
				return Entry{}, fmt.Errorf("environment=%s is not NAME=VALUE", show(o.value))
			}
			switch variable {
			case envUser:
				if haveUser {
					return Entry{}, errors.New(envUser + " is set more than once")
				}
				if err := ValidUser(value); err != nil {
					return Entry{}, fmt.Errorf("%s: %w", envUser, err)
				}
				e.User, haveUser = value, true
			case envRole:
				if haveRole {
					return Entry{}, errors.New(envRole + " is set more than once")
				}
				if value != RoleAdmin && value != RoleStaff {
					return Entry{}, fmt.Errorf("%s=%s is not a role (use %s or %s)", envRole, show(value), RoleAdmin, RoleStaff)
				}
				e.Role, haveRole = value, true
			default:
				return Entry{}, fmt.Errorf("environment variable %s is not supported by Backroom (supported: %s, %s)", show(variable), envUser, envRole)
			}
		case "from":
			if haveFrom {
				return Entry{}, errors.New("option from is given more than once")
			}
			patterns := strings.Split(o.value, ",")
			for _, p := range patterns {
				if _, err := parsePattern(p); err != nil {
					return Entry{}, err
				}
			}
			e.From, haveFrom = patterns, true
		case "expiry-time":
			if haveExpiry {
				return Entry{}, errors.New("option expiry-time is given more than once")
			}
			t, err := parseExpiry(o.value, loc)
			if err != nil {
				return Entry{}, err
			}
			e.ExpiresAt, haveExpiry = t, true
		}
	}
	if !haveUser {
		return Entry{}, errors.New(`missing environment="` + envUser + `=<name>": every line must name its staff member`)
	}
	return e, nil
}

// parseExpiry parses YYYYMMDD[HHMM[SS]] with an optional trailing Z (UTC);
// without Z the time is in loc.
func parseExpiry(v string, loc *time.Location) (time.Time, error) {
	s := v
	if strings.HasSuffix(s, "Z") || strings.HasSuffix(s, "z") {
		s, loc = s[:len(s)-1], time.UTC
	}
	bad := fmt.Errorf("expiry-time %s is not YYYYMMDD[HHMM[SS]][Z]", show(v))
	if len(s) != 8 && len(s) != 12 && len(s) != 14 {
		return time.Time{}, bad
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return time.Time{}, bad
		}
	}
	num := func(from, to int) int {
		if to > len(s) {
			return 0
		}
		n := 0
		for _, c := range s[from:to] {
			n = n*10 + int(c-'0')
		}
		return n
	}
	year, month, day := num(0, 4), num(4, 6), num(6, 8)
	hour, minute, second := num(8, 10), num(10, 12), num(12, 14)
	if year < 1970 {
		return time.Time{}, fmt.Errorf("expiry-time %s is before 1970", show(v))
	}
	if month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59 {
		return time.Time{}, fmt.Errorf("expiry-time %s is not a valid date and time", show(v))
	}
	// Check the calendar date in UTC, where no clock change can move it.
	if d := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC); d.Month() != time.Month(month) || d.Day() != day {
		return time.Time{}, fmt.Errorf("expiry-time %s is not a valid date and time", show(v))
	}
	return time.Date(year, time.Month(month), day, hour, minute, second, 0, loc), nil
}
