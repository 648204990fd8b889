package abi

import (
	"os"
	"strings"
	"testing"
	"time"
)

// ABI.md documents every name of the contract, each with a WAT import line.
func TestABIDocCoversEveryName(t *testing.T) {
	b, err := os.ReadFile("ABI.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, fn := range HostFunctions {
		if !strings.Contains(doc, "### `"+fn+"(") && !strings.Contains(doc, "`"+fn+"(") {
			t.Errorf("ABI.md has no section for %s", fn)
		}
		if !strings.Contains(doc, `(import "wasmta" "`+fn+`"`) {
			t.Errorf("ABI.md has no WAT example importing %s", fn)
		}
	}
	for _, e := range Exports {
		if !strings.Contains(doc, "`"+e+"`") {
			t.Errorf("ABI.md does not mention export %s", e)
		}
	}
}

func TestParseQueueConfig(t *testing.T) {
	c, err := ParseQueueConfig([]byte(`{"retry_interval": 90, "max_age": "7d", "max_message_rate": "1,000/h",
		"protocol": {"smtp": {"mx_list": ["a.test:2525", {"name": "mx.example.com", "addr": "10.0.0.1"}]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(*c.RetryInterval) != 90*time.Second || time.Duration(*c.MaxAge) != 7*24*time.Hour {
		t.Fatalf("%+v", c)
	}
	if mx := c.MXList(); len(mx) != 2 || mx[0].Name != "a.test:2525" || mx[1].Addr != "10.0.0.1" {
		t.Fatalf("%+v", mx)
	}
	for in, want := range map[string]string{
		`{"mx_lsit": []}`: `unknown field "mx_lsit"`,
		`{"protocol": {"smtp": {"mx_list": [{"addr": "x"}]}}}`:            `needs "name"`,
		`{"protocol": {"smtp": {"mx_list": [{"name": "a", "port": 1}]}}}`: `unknown field "port"`,
		`{"protocol": {"smtp": {"mx_list": []}}}`:                         "mx_list is empty",
		`{"retry_interval": "soon"}`:                                      "invalid duration",
		`{"max_message_rate": "fast"}`:                                    "max_message_rate",
		`{} {}`:                                                           "trailing data",
		`[]`:                                                              "cannot unmarshal array",
	} {
		if _, err := ParseQueueConfig([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
}

// Durations that overflow time.Duration, or are not numbers, are refused rather than turned
// into negative or arbitrary values.
func TestParseDurationRefusesOverflow(t *testing.T) {
	for _, in := range []string{"300000d", "NaNd", "Infd", "+Infd", "infd", "1e300d", "-1d", "106751d24h", "106752d",
		"2562048h", "0x10d", "1_0d", "d", "1d-1h"} {
		if d, err := ParseDuration(in); err == nil {
			t.Errorf("%q parsed as %v", in, d)
		}
	}
	for in, want := range map[string]time.Duration{"1.5d": 36 * time.Hour, "106751d": 106751 * 24 * time.Hour, "0d": 0, "7d12h": 180 * time.Hour} {
		if d, err := ParseDuration(in); err != nil || d != want {
			t.Errorf("%q: %v %v, want %v", in, d, err, want)
		}
	}
	for _, js := range []string{`{"max_age": 9999999999999}`, `{"max_age": "300000d"}`, `{"retry_interval": "NaNd"}`, `{"max_age": 1e3}`} {
		if _, err := ParseQueueConfig([]byte(js)); err == nil {
			t.Errorf("%s accepted", js)
		}
	}
}
