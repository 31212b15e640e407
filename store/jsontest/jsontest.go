// Package jsontest checks the shape of JSON that Backroom writes, where
// encoding/json's maps would lose it: the order of an object's keys.
//
// It exists for the tests of store and cmd/backroom only.
package jsontest

import (
	"encoding/json"
	"strings"
	"testing"
)

// Keys returns the keys of the JSON object obj in the order they appear. It
// fails tb when obj is not an object.
func Keys(tb testing.TB, obj string) []string {
	tb.Helper()
	dec := json.NewDecoder(strings.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		tb.Fatalf("not a JSON object: %q (%v)", obj, err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			tb.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			tb.Fatal(err)
		}
	}
	return keys
}
