package app

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// A plugin deployed the way Kubernetes mounts a ConfigMap: policy.wasm is a symlink to
// ..data/policy.wasm, ..data a symlink to a directory of the current version, and an update
// writes a new directory and renames a new ..data over the old one. No event names
// policy.wasm, so the watcher, which only looked at events for the file's own name, never
// reloaded: the new policy did not apply until a SIGHUP. A change of what the path resolves to
// is a change of the file.
func TestWatchSeesSymlinkSwap(t *testing.T) {
	port, _ := testutil.StartSinks(t, "127.0.0.2")
	dns := testutil.StartDNS(t, zone)
	dir := t.TempDir()
	mount := filepath.Join(dir, "mount")
	version := func(name, fixture string) {
		t.Helper()
		d := filepath.Join(mount, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		copyFile(t, "../plugin/testdata/"+fixture+".wasm", filepath.Join(d, "policy.wasm"))
		// ..data_tmp -> name, renamed over ..data: one atomic switch of the whole version.
		tmp := filepath.Join(mount, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(mount, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..v1", "route_a")
	plug := filepath.Join(mount, "policy.wasm")
	if err := os.Symlink(filepath.Join("..data", "policy.wasm"), plug); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, dir, dns.Addr, port, "[[plugins]]\npath = \""+plug+"\"\n")
	cfg.Watch = true
	a := startApp(t, cfg, nil)
	before := a.Status()[0].Generation

	version("..v2", "route_b")
	for deadline := time.Now().Add(5 * time.Second); a.Status()[0].Generation == before; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the new version behind the symlinks was not loaded within 5s")
		}
	}
	// And again: the watch follows the version directories as they come and go.
	second := a.Status()[0].Generation
	if err := os.RemoveAll(filepath.Join(mount, "..v1")); err != nil {
		t.Fatal(err)
	}
	version("..v3", "route_c")
	for deadline := time.Now().Add(5 * time.Second); a.Status()[0].Generation == second; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the third version behind the symlinks was not loaded within 5s")
		}
	}
}
