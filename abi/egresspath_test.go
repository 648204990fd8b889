package abi

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// Per-path smtp_port and timeouts: decoded from JSON (a plugin) and TOML (the server config)
// alike, checked, and KumoMTA's timeouts the client has no timer for are refused by name with
// the setting that covers them.
func TestEgressPathPortAndTimeouts(t *testing.T) {
	c, err := ParseEgressPathConfig([]byte(`{"smtp_port": 2525, "connect_timeout": "5s", "command_timeout": 30, "data_timeout": "2m", "idle_timeout": "1s"}`))
	if err != nil {
		t.Fatal(err)
	}
	if *c.SMTPPort != 2525 || time.Duration(*c.ConnectTimeout) != 5*time.Second || time.Duration(*c.CommandTimeout) != 30*time.Second ||
		time.Duration(*c.DataTimeout) != 2*time.Minute || time.Duration(*c.IdleTimeout) != time.Second {
		t.Fatalf("%+v", c)
	}
	// What a plugin SDK marshals comes back the same (durations as Go duration strings).
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if c2, err := ParseEgressPathConfig(js); err != nil || !reflect.DeepEqual(c, c2) {
		t.Fatalf("%s -> %+v %v", js, c2, err)
	}
	var fromTOML EgressPathConfig
	if _, err := toml.Decode("smtp_port = 587\ndata_timeout = \"90s\"\nidle_timeout = 7\n", &fromTOML); err != nil {
		t.Fatal(err)
	}
	if *fromTOML.SMTPPort != 587 || time.Duration(*fromTOML.DataTimeout) != 90*time.Second || time.Duration(*fromTOML.IdleTimeout) != 7*time.Second {
		t.Fatalf("TOML: %+v", fromTOML)
	}
	for in, want := range map[string]string{
		`{"smtp_port": 0}`:                   "smtp_port: 0 is not a TCP port",
		`{"smtp_port": 65536}`:               "smtp_port: 65536 is not a TCP port",
		`{"connect_timeout": "0s"}`:          "connect_timeout: must be greater than zero",
		`{"data_timeout": "soon"}`:           "invalid duration",
		`{"idle_timeout": -1}`:               "duration",
		`{"ehlo_timeout": "10s"}`:            "ehlo_timeout: not supported: wasmta's delivery client has no separate timer for it; command_timeout covers it",
		`{"data_dot_timeout": "10s"}`:        "data_dot_timeout: not supported",
		`{"mail_from_timeout": "1s", "x":1}`: "mail_from_timeout: not supported",
	} {
		if _, err := ParseEgressPathConfig([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
	over := EgressPathConfig{SMTPPort: c.SMTPPort, DataTimeout: c.DataTimeout}.Over(&EgressPathConfig{DataTimeout: c.ConnectTimeout})
	if *over.SMTPPort != 2525 || time.Duration(*over.DataTimeout) != 5*time.Second {
		t.Fatalf("Over: %+v", over)
	}
}
