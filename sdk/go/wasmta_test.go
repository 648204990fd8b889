package wasmta

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/abi"
)

// Every wasm name in the SDK's directives is an abi constant, and every host function and
// export of the ABI is covered: the names live in one place.
func TestDirectivesMatchABI(t *testing.T) {
	f, err := os.Open("host_wasip1.go")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var imports, exports []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) == 3 && fields[0] == "//go:wasmimport":
			if fields[1] != abi.HostModule {
				t.Errorf("import module %q, want %q", fields[1], abi.HostModule)
			}
			imports = append(imports, fields[2])
		case len(fields) == 2 && fields[0] == "//go:wasmexport":
			exports = append(exports, fields[1])
		}
	}
	slices.Sort(imports)
	want := slices.Clone(abi.HostFunctions)
	slices.Sort(want)
	if !slices.Equal(imports, want) {
		t.Errorf("imports %v\nabi     %v", imports, want)
	}
	for _, e := range exports {
		if !slices.Contains(abi.Exports, e) {
			t.Errorf("export %q is not an abi name", e)
		}
	}
	for _, h := range append([]string{abi.ExportMarker, abi.ExportInit}, abi.Hooks...) {
		if !slices.Contains(exports, h) {
			t.Errorf("SDK does not export %q", h)
		}
	}
}

func TestQueueConfigJSONIsAcceptedByTheHostSchema(t *testing.T) {
	c := &QueueConfig{
		RetryInterval: 5 * time.Minute,
		MaxAge:        48 * time.Hour,
		MxList:        []MXEntry{{Name: "smart.host.local"}, {Name: "mx.example.com", Addr: "10.0.0.1"}},
	}
	js, err := c.JSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"retry_interval":"5m0s","max_age":"48h0m0s","protocol":{"smtp":{"mx_list":["smart.host.local",{"name":"mx.example.com","addr":"10.0.0.1"}]}}}`
	if string(js) != want {
		t.Fatalf("%s\nwant %s", js, want)
	}
	back, err := abi.ParseQueueConfig(js)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.MXList()) != 2 || time.Duration(*back.MaxAge) != 48*time.Hour {
		t.Fatalf("%+v", back)
	}
}

func TestDKIMSignJSONIsAcceptedByTheHostSchema(t *testing.T) {
	js, err := DKIMSign{Key: "main", Domain: "example.com", Selector: "s2026", Headers: []string{"From", "To"},
		BodyCanonicalization: "simple", Expiration: 7 * 24 * time.Hour}.JSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"key":"main","domain":"example.com","selector":"s2026","headers":["From","To"],"body_canonicalization":"simple","expiration":"168h0m0s"}`
	if string(js) != want {
		t.Fatalf("%s\nwant %s", js, want)
	}
	p, err := abi.ParseDKIMSign(js)
	if err != nil {
		t.Fatal(err)
	}
	if p.Key != "main" || time.Duration(*p.Expiration) != 7*24*time.Hour || p.HeaderCanonicalization != "" {
		t.Fatalf("%+v", p)
	}
}

func TestEgressPathConfigJSONIsAcceptedByTheHostSchema(t *testing.T) {
	no := false
	c := &EgressPathConfig{ConnectionLimit: 1, MaxMessageRate: "10/s", EnableTLS: "Required", SMTPAuthPlainUsername: "u",
		SMTPAuthPlainPassword: "smarthost", AllowSMTPAuthPlainWithoutTLS: &no, EHLODomain: "out.test", SourceAddress: "127.0.0.9"}
	js, err := c.JSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"connection_limit":1,"max_message_rate":"10/s","enable_tls":"Required","smtp_auth_plain_username":"u","smtp_auth_plain_password":"smarthost","allow_smtp_auth_plain_without_tls":false,"ehlo_domain":"out.test","source_address":"127.0.0.9"}`
	if string(js) != want {
		t.Fatalf("%s\nwant %s", js, want)
	}
	back, err := abi.ParseEgressPathConfig(js)
	if err != nil || *back.ConnectionLimit != 1 || *back.AllowSMTPAuthPlainWithoutTLS || back.MaxDeliveriesPerConnection != nil {
		t.Fatalf("%+v %v", back, err)
	}
	if js, _ := (&EgressPathConfig{}).JSON(); string(js) != `{}` {
		t.Fatalf("zero config %s, want {} (nothing set)", js)
	}
}
