package app

import (
	"context"
	"strings"
	"testing"

	"github.com/wasmta/wasmta/host/testutil"
)

// Readiness follows the app's life: not ready before Start finished or after Shutdown began,
// ready in between. The control socket's status and RunControl are one code path.
func TestReadyAndRunControl(t *testing.T) {
	port, _ := testutil.StartSinks(t, "127.0.0.2")
	dns := testutil.StartDNS(t, zone)
	a, err := New(testConfig(t, t.TempDir(), dns.Addr, port, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Ready(); err == nil || !strings.Contains(err.Error(), "starting") {
		t.Fatalf("before Start: %v", err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	if err := a.Ready(); err != nil {
		t.Fatalf("after Start: %v", err)
	}
	if r := a.RunControl("status", ""); !r.OK || r.Spool.MinFreeBytes == 0 {
		t.Fatalf("status %+v", r)
	}
	if r := a.RunControl("bogus", ""); r.OK || !strings.Contains(r.Error, "unknown command") {
		t.Fatalf("bogus command %+v", r)
	}
	a.Shutdown(context.Background())
	if err := a.Ready(); err == nil {
		t.Fatal("ready after Shutdown")
	}
}
