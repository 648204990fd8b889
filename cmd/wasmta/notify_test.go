package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// notifyListener is what systemd holds for a Type=notify service: a datagram socket whose
// address goes into NOTIFY_SOCKET. name "" makes a socket file in a short private directory
// (a Unix socket path is limited to 108 bytes); "@…" an abstract one.
func notifyListener(t *testing.T, name string) (*net.UnixConn, string) {
	t.Helper()
	if name == "" {
		dir, err := os.MkdirTemp("", "sdn")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		name = filepath.Join(dir, "notify")
	}
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, name
}

// readNotify returns the next datagram, failing the test if none comes within timeout.
func readNotify(t *testing.T, l *net.UnixConn, timeout time.Duration) string {
	t.Helper()
	buf := make([]byte, 4096)
	_ = l.SetReadDeadline(time.Now().Add(timeout))
	n, err := l.Read(buf)
	if err != nil {
		t.Fatalf("no notification within %s: %v", timeout, err)
	}
	return string(buf[:n])
}

func TestSdNotifySendsOneDatagram(t *testing.T) {
	for _, name := range []string{"", "@wasmta-test-notify-" + filepath.Base(t.TempDir())} {
		l, addr := notifyListener(t, name)
		t.Setenv("NOTIFY_SOCKET", addr)
		if err := sdNotify("READY=1", "STATUS=accepting mail"); err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		if got := readNotify(t, l, 5*time.Second); got != "READY=1\nSTATUS=accepting mail\n" {
			t.Fatalf("%s: got %q", addr, got)
		}
	}
}

func TestSdNotifyWithoutSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := sdNotify("READY=1"); err != nil {
		t.Fatalf("no NOTIFY_SOCKET must be a no-op: %v", err)
	}
	t.Setenv("NOTIFY_SOCKET", "vsock:2:1234")
	if err := sdNotify("READY=1"); err == nil || !strings.Contains(err.Error(), "vsock:2:1234") {
		t.Fatalf("unsupported address: %v", err)
	}
	dir := t.TempDir()
	t.Setenv("NOTIFY_SOCKET", filepath.Join(dir, "nobody-listens"))
	if err := sdNotify("READY=1"); err == nil {
		t.Fatal("a socket nobody listens on must be an error (it is logged)")
	}
}
