// Package csdk tests the C SDK (wasmta.h): it builds C plugins with clang-14 and runs them on the
// real plugin host. Skipped when clang-14 is not installed.
package csdk

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/plugin"
)

// build compiles C sources with the flags of README.md and checks that the module imports
// nothing but module "wasmta".
func build(t *testing.T, srcs ...string) string {
	t.Helper()
	clang, err := exec.LookPath("clang-14")
	if err != nil {
		t.Skip("clang-14 not installed")
	}
	out := filepath.Join(t.TempDir(), "plugin.wasm")
	args := []string{"--target=wasm32", "-mcpu=mvp", "-O2", "-nostdlib", "-ffreestanding",
		"-Wall", "-Wextra", "-Werror", "-I", ".", "-Wl,--no-entry", "-o", out}
	cmd := exec.Command(clang, append(args, srcs...)...)
	cmd.Env = append(os.Environ(), "PATH=/usr/lib/llvm-14/bin:"+os.Getenv("PATH"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("clang: %v\n%s", err, b)
	}
	code, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	cm, err := rt.CompileModule(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range cm.ImportedFunctions() {
		if mod, name, _ := f.Import(); mod != abi.HostModule {
			t.Errorf("imports %s.%s", mod, name)
		}
	}
	if len(cm.ImportedMemories()) != 0 {
		t.Errorf("imports a memory")
	}
	return out
}

func load(t *testing.T, wasm, config string) *plugin.Chain {
	t.Helper()
	h, err := plugin.NewHost(t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	p, err := h.Load(context.Background(), plugin.Spec{Path: wasm, Config: []byte(config), PoolSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := plugin.NewChain(p)
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func TestSDK(t *testing.T) {
	const config = `{"smarthost":"x.test","n":1}`
	wasm := build(t, "testdata/sdktest.c", "testdata/helper.c")
	if imports(t, wasm, abi.FnMakeEgressPathConfig) {
		t.Errorf("sdktest.c, without get_egress_path_config, imports %s", abi.FnMakeEgressPathConfig)
	}
	c := load(t, wasm, config)
	ctx := context.Background()
	body := strings.Repeat("a", 300_000) + "0123456789" // larger than the free memory: grow + retry
	data := "Subject: s\r\nX-Multi: one\r\nX-Multi: two\r\n\r\n" + body
	want := map[string]string{
		"body_len":     "300010",
		"body_tail":    "0123456789",
		"both":         "from@x.test|to@rcpt.test",
		"config":       config,
		"ints":         "-9223372036854775808 0 -2 1234567890123 9223372036854775807",
		"json":         `{"s":"q\"b\\n\nr\rt\tc\u0001\u001fé/","n":-42,"a":[true,false,null,{},[],"from@x.test"],"raw":{"x":1}}`,
		"overflow":     "-4",
		"overflow_len": "8",
		"missing":      "-10",
		"multi1":       "two",
		"copy":         "zy",
		"alloc_ok":     "1",
		"nocase":       "3",
	}
	for i := 0; i < 3; i++ { // one instance: the arena is rewound, init's config survives
		m := &plugin.Message{Sender: "from@x.test", Recipients: []string{"to@rcpt.test"}, Meta: map[string]string{}, Data: []byte(data)}
		if _, err := c.MessageHook(ctx, abi.HookSMTPServerMessageReceived, m); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(m.Meta, want) {
			t.Fatalf("call %d: meta\n got %q\nwant %q", i, m.Meta, want)
		}
	}
	m := &plugin.Message{Sender: "a@b.test", Recipients: []string{"x@failstatus.test"}, Meta: map[string]string{}, Data: []byte(data)}
	_, err := c.MessageHook(ctx, abi.HookSMTPServerMessageReceived, m)
	if err == nil || !strings.Contains(err.Error(), "wasmta: set_meta: invalid argument: ") {
		t.Errorf("failstatus: %v", err)
	}
	_, _, err = c.QueueConfig(ctx, plugin.QueueInput{Name: "overflow.test", Domain: "overflow.test"})
	if err == nil || !strings.Contains(err.Error(), "wasmta: make_queue_config: limit exceeded") {
		t.Errorf("overflow: %v", err)
	}
	if cfg, _, err := c.QueueConfig(ctx, plugin.QueueInput{Name: "other.test", Domain: "other.test"}); cfg != nil || err != nil {
		t.Errorf("other: %v %v", cfg, err)
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

// readme returns the README's C blocks: the first plugin, the queue config example, the egress
// path example.
func readme(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, part := range strings.Split(string(b), "```c\n")[1:] {
		blocks = append(blocks, part[:strings.Index(part, "```")])
	}
	if len(blocks) != 3 {
		t.Fatalf("%d C blocks in README.md, want 3", len(blocks))
	}
	return blocks
}

func buildSource(t *testing.T, code string) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "myplugin.c")
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	return build(t, src)
}

// TestReadme builds and runs the README's first plugin and its queue config example.
func TestReadme(t *testing.T) {
	blocks := readme(t)
	wasm := buildSource(t, blocks[0]+blocks[1])
	// Without the egress hook the plugin does not import make_egress_path_config (ABI 1.2):
	// it still loads on an ABI 1.1 host.
	if imports(t, wasm, abi.FnMakeEgressPathConfig) {
		t.Errorf("a plugin without get_egress_path_config imports %s", abi.FnMakeEgressPathConfig)
	}
	c := load(t, wasm, "")
	ctx := context.Background()
	data := "Subject: hi\r\n\r\nbody\r\n"

	m := &plugin.Message{Sender: "ok@good.example", Recipients: []string{"a@b.example"}, Meta: map[string]string{}, Data: []byte(data)}
	o, err := c.MessageHook(ctx, abi.HookSMTPServerMessageReceived, m)
	if err != nil || o.Reject != nil {
		t.Fatal(err, o.Reject)
	}
	if m.Meta["routing_domain"] != "my.smarthost.com" || string(m.Data) != "X-Routed-By: wasmta\r\n"+data {
		t.Errorf("routed: %v %q", m.Meta, m.Data)
	}

	m = &plugin.Message{Sender: "spam@bad.example", Recipients: []string{"a@b.example"}, Meta: map[string]string{}, Data: []byte(data)}
	o, err = c.MessageHook(ctx, abi.HookSMTPServerMessageReceived, m)
	if err != nil {
		t.Fatal(err)
	}
	if want := (&message.Reply{Code: 550, Enhanced: "5.7.1", Text: "not from you"}); !reflect.DeepEqual(o.Reject, want) {
		t.Errorf("reject %+v, want %+v", o.Reject, want)
	}
	if len(m.Meta) != 0 || string(m.Data) != data {
		t.Errorf("rejected message changed: %v %q", m.Meta, m.Data)
	}

	cfg, _, err := c.QueueConfig(ctx, plugin.QueueInput{Name: "internal.example", Domain: "internal.example"})
	if err != nil || cfg == nil || cfg.Protocol == nil || cfg.Protocol.SMTP == nil {
		t.Fatal(cfg, err)
	}
	if got, want := cfg.Protocol.SMTP.MXList, []abi.MXEntry{{Name: "gw1.internal.example"}, {Name: "gw2.internal.example", Addr: "10.0.0.2"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("mx_list %v, want %v", got, want)
	}
}

func ptr[T any](v T) *T { return &v }

// TestReadmeEgress builds the README's plugin with its egress path example: the host gets the
// config for the smarthost and nothing for other routing domains, and only this build imports
// make_egress_path_config.
func TestReadmeEgress(t *testing.T) {
	blocks := readme(t)
	wasm := buildSource(t, blocks[0]+blocks[1]+blocks[2])
	if !imports(t, wasm, abi.FnMakeEgressPathConfig) {
		t.Errorf("the egress example does not import %s", abi.FnMakeEgressPathConfig)
	}
	c := load(t, wasm, "")
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
	// The server's check of the answer (here: the secret does not exist) reaches the hook as
	// its failure, with the host's reason.
	_, _, err = c.EgressPathConfig(ctx, plugin.EgressPathInput{RoutingDomain: "my.smarthost.com", Site: "mx.my.smarthost.com",
		Check: func(*abi.EgressPathConfig) error {
			return errors.New(`smtp_auth_plain_password: no secret named "smarthost" in [secrets]`)
		}})
	if err == nil || !strings.Contains(err.Error(), `wasmta: make_egress_path_config: invalid argument: egress path config: smtp_auth_plain_password: no secret named "smarthost"`) {
		t.Fatalf("refused secret: %v", err)
	}
}
