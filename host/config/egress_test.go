package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/abi"
)

func TestEgressConfig(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "smarthost.txt")
	if err := os.WriteFile(pw, []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse(fmt.Sprintf(`
[secrets]
smarthost = { file = %q }
other = "pa55"
[egress]
connection_limit = 8
max_message_rate = "100/s"
max_connection_rate = "10/m,max_burst=2"
enable_tls = "RequiredInsecure"
smtp_auth_plain_username = "relay-user"
smtp_auth_plain_password = "smarthost"
source_address = "127.0.0.9"
[[egress.path]]
routing_domain = "Smarthost.test"
connection_limit = 2
max_message_rate = "10/s"
smtp_auth_plain_password = "other"
[[egress.path]]
site = "mx.example.net"
enable_tls = "Disabled"
`, pw))
	if err != nil {
		t.Fatal(err)
	}
	if c.Secrets["smarthost"].Value() != "from-a-file" || c.Secrets["other"].Value() != "pa55" {
		t.Fatalf("secrets not read")
	}
	d := c.EgressDefaults()
	if d.ConnectionLimit != 8 || d.MaxDeliveriesPerConnection != 1024 || d.MaxMessageRate != (abi.Rate{N: 100, Per: time.Second, Burst: 1}) ||
		d.MaxConnectionRate != (abi.Rate{N: 10, Per: time.Minute, Burst: 2}) || d.EnableTLS != "RequiredInsecure" ||
		d.AuthUsername != "relay-user" || d.AuthSecret != "smarthost" || d.SourceAddress.String() != "127.0.0.9" || d.EHLODomain != c.Hostname {
		t.Fatalf("defaults %+v", d)
	}
	r := c.Egress.Paths[0]
	if !r.Matches("smarthost.test", "any.site") || r.Matches("other.test", "any.site") {
		t.Fatal("routing_domain rule matches wrongly")
	}
	p, err := d.With(&r.EgressPathConfig)
	if err != nil || p.ConnectionLimit != 2 || p.MaxMessageRate.N != 10 || p.AuthSecret != "other" || p.AuthUsername != "relay-user" || p.EnableTLS != "RequiredInsecure" {
		t.Fatalf("override %+v %v", p, err)
	}
	if !c.Egress.Paths[1].Matches("x.test", "MX.example.net") {
		t.Fatal("site rule")
	}
	// No way of printing the config shows a secret.
	for _, out := range []string{fmt.Sprint(c.Secrets), fmt.Sprintf("%+v %#v %v", c, c.Secrets, c.Secrets["other"])} {
		if strings.Contains(out, "pa55") || strings.Contains(out, "from-a-file") {
			t.Fatalf("a secret printed: %s", out)
		}
	}
	if b, _ := json.Marshal(c); strings.Contains(string(b), "pa55") {
		t.Fatalf("a secret in JSON: %s", b)
	}
}

// [delivery] keeps working and fills the egress defaults; the same setting in both tables is
// refused, naming both keys.
func TestDeliveryAndEgressTogether(t *testing.T) {
	c, err := Parse("[delivery]\nconnection_limit = 4\nenable_tls = \"OpportunisticInsecure\"\nehlo_domain = \"out.test\"\n[egress]\nmax_deliveries_per_connection = 7\n")
	if err != nil {
		t.Fatal(err)
	}
	if d := c.EgressDefaults(); d.ConnectionLimit != 4 || d.EnableTLS != "OpportunisticInsecure" || d.EHLODomain != "out.test" || d.MaxDeliveriesPerConnection != 7 {
		t.Fatalf("%+v", d)
	}
	for _, k := range []string{"connection_limit = 3", "max_deliveries_per_connection = 3", `enable_tls = "Required"`, `ehlo_domain = "x.test"`} {
		name, _, _ := strings.Cut(k, " ")
		_, err := Parse("[delivery]\n" + k + "\n[egress]\n" + k + "\n")
		if err == nil || !strings.Contains(err.Error(), "delivery."+name) || !strings.Contains(err.Error(), "egress."+name) {
			t.Errorf("%s in both tables: %v", name, err)
		}
	}
}

func TestEgressConfigErrors(t *testing.T) {
	for in, want := range map[string]string{
		"[egress]\nmax_message_rate = \"fast\"":                                           "egress.max_message_rate",
		"[egress]\nmax_connection_rate = \"0/s\"":                                         "egress.max_connection_rate",
		"[egress]\nenable_tls = \"Sometimes\"":                                            "egress.enable_tls",
		"[egress]\nconnection_limit = 0":                                                  "egress.connection_limit",
		"[egress]\nsource_address = \"localhost\"":                                        "egress.source_address",
		"[egress]\negress_pool = \"p\"":                                                   "unknown configuration key egress.egress_pool",
		"[egress]\nsmtp_auth_plain_username = \"u\"":                                      "go together",
		"[egress]\nsmtp_auth_plain_username = \"u\"\nsmtp_auth_plain_password = \"nope\"": `no secret named "nope"`,
		"[[egress.path]]\nconnection_limit = 2":                                           "egress.path[0]: needs routing_domain or site",
		"[[egress.path]]\nsite = \"a\"\nmax_message_rate = \"1/week\"":                    "egress.path[0].max_message_rate",
		"[[egress.path]]\nsite = \"a\"\nconection_limit = 2":                              "unknown configuration key egress.path.conection_limit",
		"[delivery]\nenable_tls = \"Maybe\"":                                              "delivery.enable_tls",
		"[secrets]\ns = \"\"":                                                             "secret is empty",
		"[secrets]\ns = { file = \"/nonexistent/secret\" }":                               "secret file",
		"[secrets]\ns = { path = \"x\" }":                                                 "a secret is a string or",
		"[egress]\ntls_ca_file = \"/nonexistent/ca.pem\"":                                 "egress.tls_ca_file",
	} {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
	// The secret's value is not in the error of a bad secret file... nor anywhere else.
	if _, err := Parse("[secrets]\ns = 42"); err == nil || strings.Contains(err.Error(), "42") && !strings.Contains(err.Error(), "int64") {
		t.Errorf("bad secret type: %v", err)
	}
}

// smtp_port and the delivery timeouts: [delivery] gives the defaults, [egress] may set them
// instead (not both: the error names both keys), [[egress.path]] overrides per destination,
// and KumoMTA's timeouts the client has no timer for are refused with the one to use.
func TestEgressPortAndTimeouts(t *testing.T) {
	c, err := Parse("[delivery]\nsmtp_port = 2525\ndata_timeout = \"3m\"\n[egress]\nconnect_timeout = \"7s\"\nidle_timeout = 9\n" +
		"[[egress.path]]\nsite = \"slow.test\"\nsmtp_port = 587\ndata_timeout = \"1s\"\ncommand_timeout = \"20s\"\n")
	if err != nil {
		t.Fatal(err)
	}
	d := c.EgressDefaults()
	if d.SMTPPort != 2525 || d.DataTimeout != 3*time.Minute || d.ConnectTimeout != 7*time.Second || d.IdleTimeout != 9*time.Second || d.CommandTimeout != 5*time.Minute {
		t.Fatalf("defaults %+v", d)
	}
	p, err := d.With(&c.Egress.Paths[0].EgressPathConfig)
	if err != nil || p.SMTPPort != 587 || p.DataTimeout != time.Second || p.CommandTimeout != 20*time.Second || p.ConnectTimeout != 7*time.Second {
		t.Fatalf("path %+v %v", p, err)
	}
	for _, k := range []string{"smtp_port = 26", `connect_timeout = "1s"`, `command_timeout = "1s"`, `data_timeout = "1s"`, `idle_timeout = "1s"`} {
		name, _, _ := strings.Cut(k, " ")
		_, err := Parse("[delivery]\n" + k + "\n[egress]\n" + k + "\n")
		if err == nil || !strings.Contains(err.Error(), "delivery."+name) || !strings.Contains(err.Error(), "egress."+name) {
			t.Errorf("%s in both tables: %v", name, err)
		}
	}
	for in, want := range map[string]string{
		"[egress]\nsmtp_port = 70000":                              "egress.smtp_port: 70000 is not a TCP port",
		"[egress]\ndata_timeout = \"0s\"":                          "egress.data_timeout: must be greater than zero",
		"[[egress.path]]\nsite = \"a\"\nconnect_timeout = \"x\"":   "connect_timeout",
		"[egress]\nehlo_timeout = \"10s\"":                         "egress.ehlo_timeout: not supported",
		"[[egress.path]]\nsite = \"a\"\ndata_dot_timeout = \"1m\"": "egress.path.data_dot_timeout: not supported: wasmta's delivery client has no separate timer for it; data_timeout covers it",
	} {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}
