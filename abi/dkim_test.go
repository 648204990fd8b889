package abi

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseDKIMSign(t *testing.T) {
	p, err := ParseDKIMSign([]byte(`{"key": "main", "domain": "example.com", "selector": "s2026", "headers": ["From", "To"],
		"header_canonicalization": "relaxed", "body_canonicalization": "simple", "expiration": "7d"}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Key != "main" || p.Domain != "example.com" || p.Selector != "s2026" || len(p.Headers) != 2 || time.Duration(*p.Expiration) != 7*24*time.Hour {
		t.Fatalf("%+v", p)
	}
	for in, want := range map[string]string{
		`{"key": "main", "domain": "example.com", "selector": "s", "selectr": "s"}`:                  `unknown field "selectr"`,
		`{"domain": "example.com", "selector": "s"}`:                                                 `"key" is required`,
		`{"key": "k", "selector": "s"}`:                                                              "domain is required",
		`{"key": "k", "domain": "example.com"}`:                                                      "selector is required",
		`{"key": "k", "domain": "exa mple.com", "selector": "s"}`:                                    "only ASCII letters",
		`{"key": "k", "domain": "example..com", "selector": "s"}`:                                    "1-63 characters",
		`{"key": "k", "domain": "example.com", "selector": "s\r\nX: y"}`:                             "only ASCII letters",
		`{"key": "k", "domain": "example.com", "selector": "s", "headers": []}`:                      `"From" must be signed`,
		`{"key": "k", "domain": "example.com", "selector": "s", "headers": ["From", "X;y"]}`:         "not a header field name",
		`{"key": "k", "domain": "example.com", "selector": "s", "header_canonicalization": "nofws"}`: `header_canonicalization "nofws"`,
		`{"key": "k", "domain": "example.com", "selector": "s", "expiration": 0}`:                    "greater than zero",
		`{"key": "k", "domain": "example.com", "selector": "s"} {}`:                                  "trailing data",
		`null`: `"key" is required`,
		`[]`:   "cannot unmarshal array",
		`{"key": "k", "domain": "example.com", "selector": "s", "headers": ["From"` + strings.Repeat(`, "To"`, MaxDKIMHeaders) + `]}`: "more than 64 names",
	} {
		if _, err := ParseDKIMSign([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
	if _, err := ParseDKIMSign([]byte(`{"key": "` + strings.Repeat("k", MaxDKIMParams) + `"}`)); err == nil || !strings.Contains(err.Error(), "more than the 4096 allowed") {
		t.Errorf("oversized params: %v", err)
	}
}

// FuzzParseDKIMSign: any bytes give a request or an error, never a panic; a request survives a
// JSON round trip, and nothing in it can break the DKIM-Signature field it ends up in.
func FuzzParseDKIMSign(f *testing.F) {
	for _, s := range []string{
		`{"key": "main", "domain": "example.com", "selector": "s2026", "headers": ["From", "To"], "expiration": "7d"}`,
		`{"key": "main", "domain": "example.com", "selector": "s", "header_canonicalization": "simple", "body_canonicalization": "relaxed"}`,
		`{"key": "k", "domain": "a;b", "selector": "s"}`, `{"key": "k", "domain": "example.com", "selector": "s", "headers": ["To"]}`,
		`{}`, `null`, `[]`, `{"key": 1}`, `{"key": "k", "domain": "d", "selector": "s", "expiration": 9999999999999}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseDKIMSign(b)
		if err != nil {
			return
		}
		for _, v := range append([]string{p.Domain, p.Selector}, p.Headers...) {
			if strings.ContainsAny(v, ";: \t\r\n") {
				t.Fatalf("%s: %q accepted", b, v)
			}
		}
		js, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := ParseDKIMSign(js)
		if err != nil || !reflect.DeepEqual(p, p2) {
			t.Fatalf("%s -> %s -> %+v %v", b, js, p2, err)
		}
	})
}
