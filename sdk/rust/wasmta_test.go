// Package rustsdk tests the Rust SDK (src/lib.rs): it builds Rust plugins with build-plugin.sh
// (Debian's rustc and its wasm32 std) and runs them on the real plugin host. Skipped when that
// toolchain is not installed (make toolchains installs it).
package rustsdk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/plugin"
)

// outDir holds the plugins built by this package's tests; each source is built once.
var (
	outDir string
	builds sync.Map // sha256 of the source -> path of the .wasm
)

func TestMain(m *testing.M) {
	var err error
	if outDir, err = os.MkdirTemp("", "rustsdk"); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(outDir)
	os.Exit(code)
}

// build compiles one Rust source file into a plugin with build-plugin.sh (once per content).
func build(t *testing.T, src string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds Rust plugins")
	}
	if _, err := os.Stat("/usr/bin/rustc"); err != nil {
		t.Skip("/usr/bin/rustc not installed (make toolchains)")
	}
	if _, err := os.Stat("/usr/lib/rustlib/wasm32-unknown-unknown"); err != nil {
		t.Skip("rustc's wasm32 std not installed (make toolchains)")
	}
	code, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(code)
	key := hex.EncodeToString(sum[:8])
	if out, ok := builds.Load(key); ok {
		return out.(string)
	}
	out := filepath.Join(outDir, key+".wasm")
	if b, err := exec.Command("bash", "build-plugin.sh", src, out).CombinedOutput(); err != nil {
		t.Fatalf("build-plugin.sh %s: %v\n%s", src, err, b)
	}
	builds.Store(key, out)
	return out
}

// readmeBlock writes the README's i-th ```rust block to a file and returns its path.
func readmeBlock(t *testing.T, i int) string {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, part := range strings.Split(string(readme), "```rust\n")[1:] {
		blocks = append(blocks, part[:strings.Index(part, "```")])
	}
	if len(blocks) < 2 || !strings.Contains(blocks[0], "fn on_message") || !strings.Contains(blocks[1], "fn on_egress_path_config") {
		t.Fatalf("README.md: want the first plugin then the egress example as its first two rust blocks, got %d blocks", len(blocks))
	}
	src := filepath.Join(t.TempDir(), "readme.rs")
	if err := os.WriteFile(src, []byte(blocks[i]), 0o644); err != nil {
		t.Fatal(err)
	}
	return src
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
	c := load(t, build(t, "testdata/egress.rs"))
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
	c := load(t, build(t, readmeBlock(t, 1)))
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

// A plugin that does not list get_egress_path_config does not import make_egress_path_config,
// so it still loads on an ABI 1.1 host; one that calls it does.
func TestEgressImportOnlyWhenUsed(t *testing.T) {
	for name, tc := range map[string]struct {
		src  string
		want bool
	}{
		"testdata/egress.rs":    {"testdata/egress.rs", true},
		"README egress example": {readmeBlock(t, 1), true},
		"README first plugin":   {readmeBlock(t, 0), false},
	} {
		t.Run(name, func(t *testing.T) {
			wasm := build(t, tc.src)
			if got := imports(t, wasm, abi.FnMakeEgressPathConfig); got != tc.want {
				t.Errorf("imports %s: %v, want %v", abi.FnMakeEgressPathConfig, got, tc.want)
			}
			if !tc.want {
				// and it still works: the first plugin's queue hook on the real host
				cfg, _, err := load(t, wasm).QueueConfig(context.Background(), plugin.QueueInput{Name: "internal.example", Domain: "internal.example"})
				if err != nil || cfg == nil || cfg.Protocol == nil || len(cfg.Protocol.SMTP.MXList) != 2 {
					t.Errorf("queue config: %+v %v", cfg, err)
				}
			}
		})
	}
}
