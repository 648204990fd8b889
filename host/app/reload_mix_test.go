package app

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/config"
	"github.com/wasmta/wasmta/host/testutil"
)

// copyFile installs src at dst (write a temporary file, rename), as operators deploy.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst+".new", b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dst+".new", dst); err != nil {
		t.Fatal(err)
	}
}

// A reload that changes two plugins of a chain swapped the first, then built the second (its
// compilation and wasmta_init: here tens of milliseconds, a second for a Go plugin) and only
// then swapped it: every message received meanwhile was handled by the new first plugin and the
// old second, a policy that was never deployed. A reload now builds every new version first and
// swaps them together, between two messages: each Reception record names the generations of
// one configuration, and every message still gets 250.
func TestReloadSwapsChainAtOnce(t *testing.T) {
	port, _ := testutil.StartSinks(t, "127.0.0.2", "127.0.0.3")
	dns := testutil.StartDNS(t, zone)
	dir := t.TempDir()
	base := testConfig(t, dir, dns.Addr, port, "")
	path := filepath.Join(dir, "c.toml")
	text := fmt.Sprintf("control_socket = %q\nwasm_cache = %q\nwatch = false\n[spool]\npath = %q\nmin_free = \"32MiB\"\n[logs]\ndir = %q\n[smtp]\nlisten = [\"127.0.0.1:0\"]\n[http]\nlisten = \"\"\n[dns]\nresolvers = [%q]\n[delivery]\nsmtp_port = %d\nprohibited_hosts = []\n",
		base.ControlSocket, base.WasmCache, base.Spool.Path, base.Logs.Dir, dns.Addr, port)
	first, second := filepath.Join(dir, "first.wasm"), filepath.Join(dir, "second.wasm")
	copyFile(t, "../plugin/testdata/route_a.wasm", first)
	copyFile(t, "../plugin/testdata/slowinit.wasm", second)
	plugins := func(version string) string {
		return fmt.Sprintf("[[plugins]]\npath = %q\ntimeout = \"10s\"\n[[plugins]]\npath = %q\ntimeout = \"10s\"\n[plugins.config]\nversion = %q\n", first, second, version)
	}
	if err := os.WriteFile(path, []byte(text+plugins("1")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a := startApp(t, cfg, nil)
	a.SetConfigPath(path)
	old := map[string]bool{}
	for _, st := range a.Status() {
		old[st.Name+"@"+st.Generation] = true
	}

	var stop atomic.Bool
	var sent atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := testutil.Dial(t, a.SMTPAddrs()[0].String())
			defer c.Close()
			c.Hello("load.test")
			for n := 0; !stop.Load(); n++ {
				if code, msg := c.Send("s@x.test", []string{fmt.Sprintf("w%d-%d@example.com", w, n)}, "Subject: x\r\n\r\nx\r\n"); code != 250 {
					errs <- fmt.Sprintf("%d %s", code, msg)
					return
				}
				sent.Add(1)
			}
		}()
	}
	more := func(n int64) {
		for target := sent.Load() + n; sent.Load() < target && len(errs) == 0; {
			time.Sleep(time.Millisecond)
		}
	}
	const reloads = 6
	for i := range reloads {
		more(20)
		// Both plugins change: the first's code (A <-> B), the second's config.
		copyFile(t, fmt.Sprintf("../plugin/testdata/route_%s.wasm", []string{"b", "a"}[i%2]), first)
		if err := os.WriteFile(path, []byte(text+plugins(fmt.Sprint(i+2))), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Reload("test"); err != nil {
			t.Fatal(err)
		}
	}
	more(20)
	stop.Store(true)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}

	// Which generations served together: each reload's pair.
	pairs := map[string]int{}
	deadline := time.Now().Add(10 * time.Second)
	for {
		clear(pairs)
		n := 0
		for _, r := range testutil.ReadLogRecords(t, a.cfg.Logs.Dir) {
			if r["type"] != "Reception" {
				continue
			}
			n++
			var gens []string
			for _, g := range r["policy"].([]any) {
				gens = append(gens, g.(string))
			}
			pairs[strings.Join(gens, " ")]++
		}
		if int64(n) >= sent.Load() || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%d messages, %d reloads: %v", sent.Load(), reloads, pairs)
	// A generation of the first plugin pairs with one generation of the second: each reload
	// made one new pair, so a first-plugin generation seen with two second-plugin generations
	// served with a second plugin of another configuration.
	with := map[string]map[string]bool{}
	for p := range pairs {
		f, s, ok := strings.Cut(p, " ")
		if !ok {
			t.Fatalf("a message not handled by both plugins: %q", p)
		}
		if with[s] == nil {
			with[s] = map[string]bool{}
		}
		with[s][f] = true
	}
	for s, fs := range with {
		if len(fs) != 1 {
			t.Errorf("generation %s of the second plugin served with %d generations of the first: %v", s, len(fs), fs)
		}
	}
}

// A reload that renames a DKIM key and the plugin naming it put the new keys in use before it
// built the plugins' new versions: meanwhile the old version asked for the old name, which was
// gone, its hook failed, and clients got 451 only because of the reload. The keys now change in
// the same swap as the plugins, and a message that met one without the other is run again.
func TestReloadRenamedDKIMKeyNo451(t *testing.T) {
	port, _ := testutil.StartSinks(t, "127.0.0.2", "127.0.0.3")
	dns := testutil.StartDNS(t, zone)
	dir := t.TempDir()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "k.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	base := testConfig(t, dir, dns.Addr, port, "")
	path := filepath.Join(dir, "c.toml")
	text := fmt.Sprintf("control_socket = %q\nwasm_cache = %q\nwatch = false\n[spool]\npath = %q\nmin_free = \"32MiB\"\n[logs]\ndir = %q\n[smtp]\nlisten = [\"127.0.0.1:0\"]\n[http]\nlisten = \"\"\n[dns]\nresolvers = [%q]\n[delivery]\nsmtp_port = %d\nprohibited_hosts = []\n",
		base.ControlSocket, base.WasmCache, base.Spool.Path, base.Logs.Dir, dns.Addr, port)
	signer, _ := filepath.Abs("../plugin/testdata/dkim.wasm")
	slow, _ := filepath.Abs("../plugin/testdata/slowinit.wasm")
	version := func(name string) string {
		return text + fmt.Sprintf("[[dkim]]\nname = %q\nkey_file = %q\n", name, keyFile) +
			fmt.Sprintf("[[plugins]]\npath = %q\ntimeout = \"10s\"\n[plugins.config]\nkey = %q\ndomain = \"example.com\"\nselector = \"s\"\n", signer, name) +
			fmt.Sprintf("[[plugins]]\npath = %q\ntimeout = \"10s\"\n[plugins.config]\nversion = %q\n", slow, name)
	}
	if err := os.WriteFile(path, []byte(version("k0")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a := startApp(t, cfg, nil)
	a.SetConfigPath(path)

	var stop atomic.Bool
	var sent atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := testutil.Dial(t, a.SMTPAddrs()[0].String())
			defer c.Close()
			c.Hello("load.test")
			for n := 0; !stop.Load(); n++ {
				code, msg := c.Send("s@x.test", []string{fmt.Sprintf("w%d-%d@example.com", w, n)}, "From: s@x.test\r\nSubject: x\r\n\r\nx\r\n")
				if code != 250 {
					select {
					case errs <- fmt.Sprintf("%d %s", code, msg):
					default:
					}
					continue
				}
				sent.Add(1)
			}
		}()
	}
	more := func(n int64) {
		for target := sent.Load() + n; sent.Load() < target; {
			time.Sleep(time.Millisecond)
		}
	}
	const reloads = 4
	for i := 1; i <= reloads; i++ {
		more(20)
		if err := os.WriteFile(path, []byte(version(fmt.Sprintf("k%d", i))), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Reload("test"); err != nil {
			t.Fatal(err)
		}
	}
	more(20)
	stop.Store(true)
	wg.Wait()
	close(errs)
	n := 0
	for e := range errs {
		n++
		if n <= 5 {
			t.Error(e)
		}
	}
	t.Logf("%d messages accepted, %d refused, %d reloads renaming the key", sent.Load(), n, reloads)
}
