// Package assemblyscript tests the AssemblyScript SDK (index.ts): it builds plugins with the
// compiler pinned by ../conformance/assemblyscript (installed there by make wasm) and runs them
// on the real plugin host. Skipped until that compiler is installed.
package assemblyscript

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/plugin"
)

// asc is the pinned compiler.
func asc(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds AssemblyScript plugins")
	}
	bin, err := filepath.Abs("../conformance/assemblyscript/node_modules/.bin/asc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skip("AssemblyScript compiler not installed (make wasm installs it in sdk/conformance/assemblyscript)")
	}
	return bin
}

// compile runs asc in dir on entry with the SDK's abort (the README's flags) and returns the
// output path.
func compile(t *testing.T, dir, entry, abort string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "plugin.wasm")
	cmd := exec.Command(asc(t), entry, "-O3", "--runtime", "incremental", "--use", "abort="+abort, "-o", out)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("asc %s: %v\n%s", entry, err, b)
	}
	return out
}

// readmePlugin builds the README's i-th ts block the way its "without npm linking" recipe says:
// index.ts copied to assembly/wasmta.ts, imported from "./wasmta".
func readmePlugin(t *testing.T, i int) string {
	t.Helper()
	asc(t)
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, part := range strings.Split(string(readme), "```ts\n")[1:] {
		blocks = append(blocks, part[:strings.Index(part, "```")])
	}
	if len(blocks) < 2 || !strings.Contains(blocks[0], "onMessageReceived(") || !strings.Contains(blocks[1], "onGetEgressPathConfig(") {
		t.Fatalf("README.md: want the first plugin then the egress example as its first two ts blocks, got %d blocks", len(blocks))
	}
	dir := t.TempDir()
	sdk, err := os.ReadFile("index.ts")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "assembly"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "assembly", "wasmta.ts"), sdk, 0o644); err != nil {
		t.Fatal(err)
	}
	src := strings.ReplaceAll(blocks[i], `"wasmta-sdk"`, `"./wasmta"`)
	if err := os.WriteFile(filepath.Join(dir, "assembly", "index.ts"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return compile(t, dir, "assembly/index.ts", "assembly/wasmta/wasmta_abort")
}

func load(t *testing.T, wasm string) *plugin.Chain {
	t.Helper()
	h, err := plugin.NewHost("", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	p, err := h.Load(context.Background(), plugin.Spec{Path: wasm, Config: []byte(`{"smarthost":"my.smarthost.com"}`), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c := plugin.NewChain(p)
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
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

func ptr[T any](v T) *T { return &v }

func dur(d time.Duration) *abi.Duration { v := abi.Duration(d); return &v }

// Every EgressPathConfig setter reaches the host as the field it names, the routing domain and
// the site are read, a refused document fails the hook with the host's reason, and other
// routing domains get no config.
func TestEgressPathConfigOnTheHost(t *testing.T) {
	t.Parallel() // each runs the compiler on its own files: overlap them
	wasm := compile(t, ".", "testdata/egress.ts", "index/wasmta_abort")
	if !imports(t, wasm, abi.FnMakeEgressPathConfig) {
		t.Errorf("testdata/egress.ts does not import %s", abi.FnMakeEgressPathConfig)
	}
	c := load(t, wasm)
	ctx := context.Background()

	cfg, _, err := c.EgressPathConfig(ctx, plugin.EgressPathInput{RoutingDomain: "every.test", Site: "mx.every.test"})
	want := &abi.EgressPathConfig{
		ConnectionLimit: ptr(3), MaxDeliveriesPerConnection: ptr(100), MaxMessageRate: ptr("100/s,max_burst=10"),
		MaxConnectionRate: ptr("5/m"), EnableTLS: ptr("RequiredInsecure"), SMTPAuthPlainUsername: ptr("relay-user"),
		SMTPAuthPlainPassword: ptr("smarthost"), AllowSMTPAuthPlainWithoutTLS: ptr(true), EHLODomain: ptr("out.mx.every.test"),
		SourceAddress: ptr("127.0.0.9"), SMTPPort: ptr(2525), ConnectTimeout: dur(1500 * time.Millisecond),
		CommandTimeout: dur(time.Minute), DataTimeout: dur(10 * time.Minute), IdleTimeout: dur(90 * time.Second),
	}
	if err != nil || !reflect.DeepEqual(cfg, want) {
		t.Fatalf("every.test: %+v, %v", cfg, err)
	}

	_, _, err = c.EgressPathConfig(ctx, plugin.EgressPathInput{RoutingDomain: "typo.test", Site: "mx.typo.test"})
	if err == nil || !strings.Contains(err.Error(), `wasmta: make_egress_path_config: invalid argument: egress path config: json: unknown field "conection_limit"`) {
		t.Fatalf("typo.test: %v", err)
	}

	if cfg, _, err := c.EgressPathConfig(ctx, plugin.EgressPathInput{RoutingDomain: "other.test", Site: "mx.other.test"}); cfg != nil || err != nil {
		t.Fatalf("other.test (no opinion): %+v %v", cfg, err)
	}
}

// The README's egress example configures its smarthost and nothing else.
func TestReadmeEgress(t *testing.T) {
	t.Parallel() // each runs the compiler on its own files: overlap them
	wasm := readmePlugin(t, 1)
	if !imports(t, wasm, abi.FnMakeEgressPathConfig) {
		t.Errorf("the egress example does not import %s", abi.FnMakeEgressPathConfig)
	}
	c := load(t, wasm)
	ctx := context.Background()
	cfg, _, err := c.EgressPathConfig(ctx, plugin.EgressPathInput{RoutingDomain: "my.smarthost.com", Site: "mx.my.smarthost.com"})
	want := &abi.EgressPathConfig{ConnectionLimit: ptr(2), EnableTLS: ptr("Required"), SMTPAuthPlainUsername: ptr("relay-user"),
		SMTPAuthPlainPassword: ptr("smarthost"), EHLODomain: ptr("out.example.com")}
	if err != nil || !reflect.DeepEqual(cfg, want) {
		t.Fatalf("%+v, %v", cfg, err)
	}
	if cfg, _, err := c.EgressPathConfig(ctx, plugin.EgressPathInput{RoutingDomain: "example.org", Site: "mx.example.org"}); cfg != nil || err != nil {
		t.Fatalf("other routing domain: %+v %v", cfg, err)
	}
}

// The README's first plugin, which does not register the egress hook, does not import
// make_egress_path_config (so it still loads on an ABI 1.1 host), and works.
func TestReadmeFirstPluginDoesNotImportEgress(t *testing.T) {
	t.Parallel() // each runs the compiler on its own files: overlap them
	wasm := readmePlugin(t, 0)
	if imports(t, wasm, abi.FnMakeEgressPathConfig) {
		t.Errorf("a plugin without get_egress_path_config imports %s", abi.FnMakeEgressPathConfig)
	}
	cfg, _, err := load(t, wasm).QueueConfig(context.Background(), plugin.QueueInput{Name: "internal.example", Domain: "internal.example"})
	if err != nil || cfg == nil || cfg.Protocol == nil || len(cfg.Protocol.SMTP.MXList) != 2 {
		t.Errorf("queue config: %+v %v", cfg, err)
	}
}
