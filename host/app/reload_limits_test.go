package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/config"
	"github.com/wasmta/wasmta/host/testutil"
)

// A watched config changed to a max_memory the runtime cannot take (over 4GiB) used to panic
// inside the reload and kill the relay. Now the reload is refused naming the key, a
// PluginReload record carries the error, and the running generation keeps serving.
func TestReloadRefusesOutOfRangeMaxMemory(t *testing.T) {
	port, sinks := testutil.StartSinks(t, "127.0.0.2", "127.0.0.3")
	dns := testutil.StartDNS(t, zone)
	dir := t.TempDir()
	base := testConfig(t, dir, dns.Addr, port, "")
	plug, _ := filepath.Abs("../plugin/testdata/route_b.wasm") // routing_domain [127.0.0.3]
	path := filepath.Join(dir, "c.toml")
	text := fmt.Sprintf("control_socket = %q\nwasm_cache = %q\n[spool]\npath = %q\n[logs]\ndir = %q\n[smtp]\nlisten = [\"127.0.0.1:0\"]\n[dns]\nresolvers = [%q]\n[delivery]\nsmtp_port = %d\nprohibited_hosts = []\n[[plugins]]\npath = %q\n",
		base.ControlSocket, base.WasmCache, base.Spool.Path, base.Logs.Dir, dns.Addr, port, plug)
	if err := os.WriteFile(path, []byte(text+"max_memory = \"4MiB\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.SetConfigPath(path) // before Start: the watcher watches this file
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Shutdown(context.Background()) })
	gen := a.Status()[0].Generation

	tmp := path + ".tmp"
	os.WriteFile(tmp, []byte(text+"max_memory = \"5GiB\"\n"), 0o600)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	for deadline := time.Now().Add(10 * time.Second); rec == nil && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, r := range testutil.ReadLogRecords(t, cfg.Logs.Dir) {
			if r["type"] == "PluginReload" {
				rec = r
			}
		}
	}
	if rec == nil || !strings.Contains(fmt.Sprint(rec["error"]), "plugins[0].max_memory") {
		t.Fatalf("PluginReload record %v, want an error naming plugins[0].max_memory", rec)
	}
	if _, err := a.Reload("test"); err == nil || !strings.Contains(err.Error(), "plugins[0].max_memory") {
		t.Fatalf("explicit reload: %v", err)
	}
	if st := a.Status(); len(st) != 1 || st[0].Generation != gen {
		t.Fatalf("serving %+v, want generation %s", st, gen)
	}
	c := testutil.Dial(t, a.SMTPAddrs()[0].String())
	c.Hello("t.test")
	if code, msg := c.Send("s@x.test", []string{"r@example.com"}, "Subject: x\r\n\r\nx\r\n"); code != 250 {
		t.Fatalf("after the refused reload: %d %s", code, msg)
	}
	sinks[1].WaitCount(t, 1, 10*time.Second) // still routed by the old generation
}
