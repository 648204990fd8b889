package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	out, err := serveBin(t, dirB, "--config", pathB) // fails the test if the second relay serves
	if err == nil || !strings.Contains(out, "control socket "+sock) || !strings.Contains(out, "in use") {
		t.Fatalf("second relay: %v\n%s", err, out)
	}
	// The first still answers on it.
	if r := status(t, sock); len(r.Plugins) != 0 {
		t.Fatalf("status of the first relay: %+v", r)
	}
}
