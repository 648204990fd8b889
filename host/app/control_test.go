package app

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wasmta/wasmta/host/control"
	"github.com/wasmta/wasmta/host/plugin"
)

// TestControlSocketNeverReachableByOthers races a connect loop running as another user (fsuid
// 65534 on its own thread) against repeated control-socket binds under umask 0, the worst case
// an operator's service manager can hand us. The socket must never accept that user, not even
// for the instant between bind and chmod.
func TestControlSocketNeverReachableByOthers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (to act as another user with setfsuid); CI runs as root")
	}
	dir := t.TempDir()
	// Let the other user reach the directory (t.TempDir makes <root>/NNN, both 0700), as with
	// a control socket under a shared path.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "wasmta.sock")
	old := syscall.Umask(0)
	defer syscall.Umask(old)

	var stop atomic.Bool
	var attempts, intrusions atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		runtime.LockOSThread() // the thread ends with this goroutine: its fsuid never leaks
		if err := unix.Setfsuid(65534); err != nil {
			t.Error(err)
			return
		}
		for !stop.Load() {
			attempts.Add(1)
			if c, err := net.Dial("unix", path); err == nil {
				intrusions.Add(1)
				c.Close()
			}
		}
	}()
	for i := 0; i < 300; i++ {
		l, err := listenPrivate(path)
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
	stop.Store(true)
	wg.Wait()
	if attempts.Load() == 0 {
		t.Fatal("the other user's connect loop never ran")
	}
	if n := intrusions.Load(); n > 0 {
		t.Fatalf("another user connected to the control socket %d times in %d attempts", n, attempts.Load())
	}

	// The owner can use it, it is 0600, and closing removes it.
	l, err := listenPrivate(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want socket 0600", fi.Mode())
	}
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("owner cannot connect: %v", err)
	}
	c.Close()
	l.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket left behind after close: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("leftovers in the socket directory: %v", entries)
	}
}

// TestPluginStatusWire: the control socket and the HTTP API send plugin.Status converted to
// control.PluginStatus. The conversion checks field names and types but not JSON tags, so a
// renamed key in either would silently change what `wasmta plugin status` and scripts read:
// with every field set, both must marshal to the same object.
func TestPluginStatusWire(t *testing.T) {
	var s plugin.Status
	v := reflect.ValueOf(&s).Elem()
	for i := 0; i < v.NumField(); i++ {
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			f.SetString("x")
		case reflect.Int:
			f.SetInt(int64(i + 1))
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{"h"}))
		case reflect.Struct: // time.Time
			f.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
		default:
			t.Fatalf("plugin.Status.%s: kind %s not covered by this test", v.Type().Field(i).Name, f.Kind())
		}
	}
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(control.PluginStatus(s))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("control.PluginStatus marshals to\n%s\nplugin.Status to\n%s", got, want)
	}
}
