package main

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// smtp.max_connections_per_ip reaches the server: a third connection from one client address
// gets 421 4.7.0 while another address is still served; 0 is refused by `config check` and
// `serve` alike, naming the key.
func TestMaxConnectionsPerIPE2E(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg, addr := testutil.RelayConfig(t, dir, "")
	cfg = strings.Replace(cfg, "[smtp]\n", "[smtp]\nmax_connections_per_ip = 2\n", 1)
	testutil.StartRelay(t, relayBin, dir, cfg, addr)
	for range 2 {
		c := testutil.DialFrom(t, "127.0.0.2", addr)
		c.Hello("client.test")
	}
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if line, _ := bufio.NewReader(conn).ReadString('\n'); !strings.HasPrefix(line, "421 4.7.0 ") {
		t.Fatalf("third connection from 127.0.0.2: %q, want 421 4.7.0", line)
	}
	testutil.DialFrom(t, "127.0.0.3", addr).Hello("other.test")

	bad := filepath.Join(dir, "zero.toml")
	if err := os.WriteFile(bad, []byte(strings.Replace(cfg, "max_connections_per_ip = 2", "max_connections_per_ip = 0", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	checkAndServeFail(t, dir, bad, "configuration key smtp.max_connections_per_ip")
}
