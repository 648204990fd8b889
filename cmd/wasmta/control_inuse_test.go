package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// A second relay configured with the control socket of one already running refuses to start:
// it used to start with a warning, and `wasmta plugin reload --config second.toml` then reached
// the first relay.
func TestSecondRelayOnAControlSocketInUseFails(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	dirA := t.TempDir()
	cfgA, addrA := testutil.RelayConfig(t, dirA, "control_socket = \""+sock+"\"\n")
	testutil.StartRelay(t, relayBin, dirA, cfgA, addrA)

	dirB := t.TempDir()
	cfgB, _ := testutil.RelayConfig(t, dirB, "control_socket = \""+sock+"\"\n")
	pathB := filepath.Join(dirB, "wasmta.toml")
	if err := os.WriteFile(pathB, []byte(cfgB), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, relayBin, "serve", "--config", pathB).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the second relay is serving beside the first on one control socket:\n%s", out)
	}
	if err == nil || !strings.Contains(string(out), "control socket "+sock) || !strings.Contains(string(out), "in use") {
		t.Fatalf("second relay: %v\n%s", err, out)
	}
	// The first still answers on it.
	if r := status(t, sock); len(r.Plugins) != 0 {
		t.Fatalf("status of the first relay: %+v", r)
	}
}
