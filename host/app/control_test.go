package app

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
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
