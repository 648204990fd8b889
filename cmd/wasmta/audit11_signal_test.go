package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/control"
	"github.com/wasmta/wasmta/host/testutil"
)

// SIGHUP is how an operator reloads (docs/reload.md), and logrotate sends SIGUSR1. serve
// installed its handlers only once the relay was up, so a SIGHUP that came while it was still
// starting — waiting for spool space, or recovering a large spool, which takes minutes —
// killed it (Go's default for SIGHUP). It must survive, and then serve.
func TestAudit11SighupWhileStartingDoesNotKill(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	// 16 MiB free is below spool.min_free (32 MiB): the relay waits before opening the spool.
	testutil.MountTmpfs(t, spool, 16<<20)
	cfg, addr := testutil.RelayConfig(t, dir, "watch = false\n[dns]\nresolvers = [\"127.0.0.1:1\"]\n")
	path := filepath.Join(dir, "wasmta.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr testutil.LockedBuffer
	cmd := exec.Command(relayBin, "serve", "--config", path)
	cmd.Dir, cmd.Stderr, cmd.Stdout = dir, &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			select {
			case err := <-exited:
				exited <- err
				t.Fatalf("serve exited (%v) while waiting for %s:\n%s", err, what, stderr.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s after 30s:\n%s", what, stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("wait for spool space", func() bool { return strings.Contains(stderr.String(), "spool: waiting for free space") })
	for _, s := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1} {
		if err := cmd.Process.Signal(s); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("mount", "-o", fmt.Sprintf("remount,size=%d", 128<<20), spool).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v\n%s", err, out)
	}
	waitFor("SMTP listening", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	// Still a relay that stops gracefully.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, stderr.String())
	}
	exited <- nil
}

// The control socket read a request line without bound: a client that writes without a
// newline (a wrong file piped into the socket) made the relay hold all of it in memory (300 MiB
// sent: the relay's RSS grew from 29 MiB to 340 MiB) and got no answer until it closed or two
// minutes passed. A
// request is one short line: past the bound the client gets its answer at once.
func TestAudit11ControlSocketBoundsTheRequest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg, addr := testutil.RelayConfig(t, dir, "watch = false\n[dns]\nresolvers = [\"127.0.0.1:1\"]\n")
	r := testutil.StartRelay(t, relayBin, dir, cfg, addr)
	c, err := net.Dial("unix", defaultSock(r))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		// More than any request, never a newline; ends when the server closes.
		junk := bytes.Repeat([]byte("x"), 64<<10)
		for range 64 {
			if _, err := c.Write(junk); err != nil {
				return
			}
		}
	}()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	var resp struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		t.Fatalf("no answer to an endless request line: %v", err)
	}
	if resp.OK || !strings.Contains(resp.Error, "bad request") {
		t.Fatalf("answer %+v, want a bad request", resp)
	}
	// The relay still answers a good request.
	if st, err := control.Send(defaultSock(r), "status"); err != nil || !st.OK {
		t.Fatalf("status after: %+v %v", st, err)
	}
}
