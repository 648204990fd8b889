package control

import (
	"testing"

	"github.com/wasmta/wasmta/host/testutil"
)

// A control client (`wasmta plugin reload|status`, tests, other tools) must not carry the server:
// neither the composition root nor the WebAssembly runtime it loads plugins with. The explain
// back-end runs plugins, so it needs the runtime, but not the composition root.
func TestLayering(t *testing.T) {
	for _, tc := range []struct{ pkg, forbidden string }{
		{"github.com/wasmta/wasmta/host/control", "github.com/wasmta/wasmta/host/app"},
		{"github.com/wasmta/wasmta/host/control", "github.com/tetratelabs/wazero"},
		{"github.com/wasmta/wasmta/host/control", "github.com/wasmta/wasmta/host/plugin"},
		{"github.com/wasmta/wasmta/host/explain", "github.com/wasmta/wasmta/host/app"},
		{"github.com/wasmta/wasmta/host/wiring", "github.com/wasmta/wasmta/host/app"},
	} {
		testutil.ForbidDeps(t, tc.pkg, tc.forbidden)
	}
}
