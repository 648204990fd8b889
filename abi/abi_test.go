package abi

import (
	"encoding/json"
	"io/fs"
	"os"
	"reflect"
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
	for _, e := range append(Exports, Reserved...) {
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

// FuzzParseDuration: any string parses to a non-negative duration or an error, and a parsed
// duration survives a round trip through its Go form (what MarshalJSON writes).
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"90s", "20m", "7d", "1d12h", "1.5d", "300000d", "NaNd", "Infd", "1e300d", "106751d23h", "-1d", "d", "0d0s", " 5m "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("%q parsed as %v", s, d)
		}
		if back, err := ParseDuration(d.String()); err != nil || back != d {
			t.Fatalf("%q -> %v -> %v %v", s, d, back, err)
		}
	})
}

// FuzzParseQueueConfig: any bytes give a config or an error, never a panic; a config has
// positive intervals and survives a JSON round trip unchanged.
func FuzzParseQueueConfig(f *testing.F) {
	for _, s := range []string{
		`{"retry_interval": 90, "max_age": "7d", "max_message_rate": "1,000/h", "protocol": {"smtp": {"mx_list": ["a.test:2525", {"name": "mx.example.com", "addr": "10.0.0.1"}]}}}`,
		`{"mx_lsit": []}`, `{"protocol": {"smtp": {"mx_list": []}}}`, `{"max_age": 9999999999999}`, `{"max_age": "300000d"}`,
		`{"max_retry_interval": "0s", "egress_pool": "p"}`, `{} {}`, `[]`, `null`, `{"protocol": null}`, `{"max_message_rate": "local:5/s"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseQueueConfig(b)
		if err != nil {
			return
		}
		if c.RetryInterval != nil && *c.RetryInterval <= 0 || c.MaxAge != nil && *c.MaxAge <= 0 || c.MaxRetryInterval != nil && *c.MaxRetryInterval < 0 {
			t.Fatalf("%s: non-positive interval %+v", b, c)
		}
		js, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("%s: marshal: %v", b, err)
		}
		c2, err := ParseQueueConfig(js)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("%s -> %s -> %+v %v", b, js, c2, err)
		}
	})
}

// FuzzParseEgressPathConfig: any bytes give a config or an error, never a panic; an accepted
// ehlo_domain can go on a command line (no CR, LF, space or other control), limits are positive,
// and a config survives a JSON round trip unchanged.
func FuzzParseEgressPathConfig(f *testing.F) {
	for _, s := range []string{
		`{"connection_limit": 2, "max_message_rate": "10/s", "enable_tls": "RequiredInsecure", "smtp_auth_plain_username": "u", "smtp_auth_plain_password": "smarthost", "source_address": "127.0.0.9"}`,
		`{"ehlo_domain": "out.test"}`, `{"ehlo_domain": "[IPv6:::1]"}`, `{"ehlo_domain": "a\r\nRSET"}`, `{"conection_limit": 1}`,
		`{"allow_smtp_auth_plain_without_tls": true, "max_connection_rate": "1/m,max_burst=3"}`, `{} {}`, `[]`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseEgressPathConfig(b)
		if err != nil {
			return
		}
		if c.EHLODomain != nil && strings.ContainsFunc(*c.EHLODomain, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
			t.Fatalf("%s: ehlo_domain %q accepted", b, *c.EHLODomain)
		}
		if c.ConnectionLimit != nil && *c.ConnectionLimit <= 0 || c.MaxDeliveriesPerConnection != nil && *c.MaxDeliveriesPerConnection <= 0 {
			t.Fatalf("%s: non-positive limit %+v", b, c)
		}
		js, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("%s: marshal: %v", b, err)
		}
		c2, err := ParseEgressPathConfig(js)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("%s -> %s -> %+v %v", b, js, c2, err)
		}
	})
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]Rate{
		"10/s":                 {N: 10, Per: time.Second, Burst: 1},
		"1,000/h":              {N: 1000, Per: time.Hour, Burst: 1},
		"local:5_000/day":      {N: 5000, Per: 24 * time.Hour, Burst: 1, Local: true},
		"100/min,max_burst=20": {N: 100, Per: time.Minute, Burst: 20},
		" 3/second ":           {N: 3, Per: time.Second, Burst: 1},
		"1000000000/s":         {N: 1e9, Per: time.Second, Burst: 1},
		"7/hr,max_burst=1,000": {N: 7, Per: time.Hour, Burst: 1000},
	} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if again, err := ParseRate(got.String()); err != nil || again != got {
			t.Errorf("%q does not round-trip through %q: %+v, %v", in, got.String(), again, err)
		}
	}
	if got, _ := ParseRate("10/s"); got.Interval() != 100*time.Millisecond {
		t.Errorf("interval of 10/s: %v", got.Interval())
	}
	for _, in := range []string{"", "fast", "0/s", "-1/s", "10", "10/", "10/week", "10/s,max_burst=0",
		"10/s,max_burst=x", "1000000001/s", "10/s,burst=2", "1.5/s", "10 / s"} {
		if r, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) = %+v, want an error", in, r)
		}
	}
}

// A queue config may name any egress pool: the host checks the name against its
// [egress_pool.NAME] tables at each attempt (a plugin cannot know them).
func TestEgressPoolAccepted(t *testing.T) {
	for _, in := range []string{`{"egress_pool": "unspecified"}`, `{"egress_pool": "pool-a"}`} {
		c, err := ParseQueueConfig([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		var want QueueConfig
		_ = json.Unmarshal([]byte(in), &want)
		if c.EgressPool != want.EgressPool {
			t.Fatalf("%s: egress_pool = %q", in, c.EgressPool)
		}
	}
}

// The egress path config a get_egress_path_config hook will hand over is decoded strictly,
// with the same field names as the server's [egress].
func TestParseEgressPathConfig(t *testing.T) {
	c, err := ParseEgressPathConfig([]byte(`{"connection_limit": 2, "max_message_rate": "10/s", "enable_tls": "RequiredInsecure",
		"smtp_auth_plain_username": "u", "smtp_auth_plain_password": "smarthost", "source_address": "127.0.0.9"}`))
	if err != nil || *c.ConnectionLimit != 2 || *c.EnableTLS != "RequiredInsecure" || c.MaxConnectionRate != nil {
		t.Fatalf("%+v %v", c, err)
	}
	for in, want := range map[string]string{
		`{"conection_limit": 2}`:          `unknown field "conection_limit"`,
		`{"connection_limit": 0}`:         "connection_limit: must be greater than zero",
		`{"max_message_rate": "1/week"}`:  "max_message_rate",
		`{"enable_tls": "Maybe"}`:         "enable_tls",
		`{"source_address": "host.test"}`: "source_address",
		`{"ehlo_domain": ""}`:             "ehlo_domain",
		`{} {}`:                           "trailing data",
		// The EHLO name goes into a command line: CR or LF would let a plugin inject commands
		// into the smarthost session (RFC 5321 §4.1.1.1: a Domain or an address literal).
		`{"ehlo_domain": "out.test\r\nRSET"}`: `ehlo_domain: "out.test\r\nRSET" is not a domain`,
		`{"ehlo_domain": "out test"}`:         "ehlo_domain",
		`{"ehlo_domain": "out..test"}`:        "ehlo_domain",
		`{"ehlo_domain": "-out.test"}`:        "ehlo_domain",
		`{"ehlo_domain": "[10.0.0.1"}`:        "ehlo_domain",
		`{"ehlo_domain": "[10.0.0.1]x"}`:      "ehlo_domain",
	} {
		if _, err := ParseEgressPathConfig([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
	for _, ok := range []string{"out.test", "mail-1.example.com", "relay", "[10.0.0.1]", "[IPv6:::1]", "xn--bcher-kva.test", "Out.Test"} {
		if _, err := ParseEgressPathConfig([]byte(`{"ehlo_domain": "` + ok + `"}`)); err != nil {
			t.Errorf("ehlo_domain %q refused: %v", ok, err)
		}
	}
}

// Scaffolded Go plugin projects get the package's source from Source: a file missing there
// breaks every `wasmta plugin new --lang go` project that uses it.
func TestSourceHasEveryFile(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		n := e.Name()
		if !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") || n == "source.go" {
			continue
		}
		if _, err := fs.Stat(Source, n); err != nil {
			t.Errorf("%s is not embedded in abi.Source (source.go)", n)
		}
	}
}
