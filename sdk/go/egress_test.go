package wasmta

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/plugin"
	"github.com/wasmta/wasmta/host/testutil"
)

// A Go plugin's OnGetEgressPathConfig handler runs on the real plugin host: it sees the routing
// domain and the site, its config reaches the host, nil is no opinion, and the host's reason for
// refusing a config comes back as the hook's error.
func TestOnGetEgressPathConfigOnTheHost(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go plugin")
	}
	wasm, err := testutil.BuildGoPlugin(t.TempDir(), "./sdk/go/testdata/egress", "egress")
	if err != nil {
		t.Fatal(err)
	}
	h, err := plugin.NewHost("", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx := context.Background()
	p, err := h.Load(ctx, plugin.Spec{Path: wasm, Config: []byte(`{}`), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	c := plugin.NewChain(p)

	cfg, _, err := c.EgressPathConfig(ctx, plugin.EgressPathInput{RoutingDomain: "smarthost.test", Site: "mx.smarthost.test"})
	if err != nil || cfg == nil || *cfg.ConnectionLimit != 1 || *cfg.EHLODomain != "out.smarthost.test" ||
		*cfg.SMTPAuthPlainPassword != "smarthost" || *cfg.SourceAddress != "127.0.0.9" {
		t.Fatalf("%+v %v", cfg, err)
	}
	// smtp_port and the timeouts, as the Rust, C and AssemblyScript SDKs set them.
	cfg, _, err = c.EgressPathConfig(ctx, plugin.EgressPathInput{RoutingDomain: "timeouts.test", Site: "mx.timeouts.test"})
	if err != nil || cfg == nil || cfg.SMTPPort == nil || *cfg.SMTPPort != 2525 ||
		cfg.ConnectTimeout == nil || time.Duration(*cfg.ConnectTimeout) != 1500*time.Millisecond ||
		cfg.CommandTimeout == nil || time.Duration(*cfg.CommandTimeout) != time.Minute ||
		cfg.DataTimeout == nil || time.Duration(*cfg.DataTimeout) != 10*time.Minute ||
		cfg.IdleTimeout == nil || time.Duration(*cfg.IdleTimeout) != 90*time.Second || cfg.ConnectionLimit != nil {
		t.Fatalf("port and timeouts: %+v %v", cfg, err)
	}
	if cfg, _, err := c.EgressPathConfig(ctx, plugin.EgressPathInput{RoutingDomain: "other.test", Site: "mx.other.test"}); cfg != nil || err != nil {
		t.Fatalf("no opinion: %+v %v", cfg, err)
	}
	_, _, err = c.EgressPathConfig(ctx, plugin.EgressPathInput{RoutingDomain: "typo.test", Site: "mx.typo.test"})
	if err == nil || !strings.Contains(err.Error(), `make_egress_path_config: invalid argument: egress path config: json: unknown field "conection_limit"`) {
		t.Fatalf("err %v", err)
	}
}

// A Go plugin that does not register the hook does not import make_egress_path_config, so it
// still loads on an ABI 1.1 host.
func TestEgressImportOnlyWhenRegistered(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go plugin")
	}
	dir := t.TempDir()
	for pkg, want := range map[string]bool{"./sdk/go/testdata/egress": true, "./examples/routing_domain/plugin": false} {
		wasm, err := testutil.BuildGoPlugin(dir, pkg, strings.ReplaceAll(pkg, "/", "_"))
		if err != nil {
			t.Fatal(err)
		}
		if got := imports(t, wasm, abi.FnMakeEgressPathConfig); got != want {
			t.Errorf("%s imports %s: %v, want %v", pkg, abi.FnMakeEgressPathConfig, got, want)
		}
	}
}

// imports reports whether the module imports the host function fn.
func imports(t *testing.T, wasm, fn string) bool {
	t.Helper()
	ok, err := plugin.ImportsHostFunction(context.Background(), wasm, fn)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}
