package authkeys

import (
	"bytes"
	"encoding/base64"
	"strings"
)

// header is the first line of every file that Format writes.
const header = `# Managed by Backroom. One key per line; each line names its staff member with environment="BACKROOM_USER=<name>" and may add environment="BACKROOM_ROLE=admin", from="<addresses>", expiry-time="YYYYMMDD[HHMM[SS]][Z]". No other options are accepted.` + "\n"

// Format writes entries as a canonical authorized_keys file: a header
// comment, then one line per entry in the given order:
//
//	environment="BACKROOM_USER=x"[,environment="BACKROOM_ROLE=admin"][,from="..."][,expiry-time="YYYYMMDDHHMMSSZ"] <type> <base64>[ <comment>]
//
// Role "" and RoleStaff write no role option. The expiry is written in UTC
// to the second. Line and Fingerprint are ignored; entries with a nil Key
// are left out.
//
// Format does not validate: an entry that Parse would refuse (bad name,
// unknown role, bad pattern, disallowed key) is written as is and is
// refused again when read back. A non-nil empty From is written as
// from="", which Parse refuses, rather than as no restriction. Line breaks
// in any field are replaced by spaces, so an entry always stays on one
// line.
func Format(entries []Entry) []byte {
	var b bytes.Buffer
	b.WriteString(header)
	for _, e := range entries {
		if e.Key == nil {
			continue
		}
		writeOption(&b, "environment", envUser+"="+e.User)
		if e.Role != "" && e.Role != RoleStaff {
			b.WriteByte(',')
			writeOption(&b, "environment", envRole+"="+e.Role)
		}
		if e.From != nil {
			b.WriteByte(',')
			writeOption(&b, "from", strings.Join(e.From, ","))
		}
		if !e.ExpiresAt.IsZero() {
			b.WriteByte(',')
			writeOption(&b, "expiry-time", e.ExpiresAt.UTC().Format("20060102150405")+"Z")
		}
		b.WriteByte(' ')
		b.WriteString(oneLine(e.Key.Type()))
		b.WriteByte(' ')
		b.WriteString(base64.StdEncoding.EncodeToString(e.Key.Marshal()))
		if c := strings.Trim(oneLine(e.Comment), " \t"); c != "" {
			b.WriteByte(' ')
			b.WriteString(c)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// writeOption writes name="value" with quotes in value escaped.
func writeOption(b *bytes.Buffer, name, value string) {
	b.WriteString(name)
	b.WriteString(`="`)
	b.WriteString(strings.ReplaceAll(oneLine(value), `"`, `\"`))
	b.WriteByte('"')
}

// oneLine replaces carriage returns and line feeds with spaces.
func oneLine(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}
