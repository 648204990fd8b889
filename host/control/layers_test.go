package control

import (
	"os/exec"
	"strings"
	"testing"
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
		out, err := exec.Command("go", "list", "-deps", tc.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", tc.pkg, err, out)
		}
		if !strings.Contains(string(out), tc.pkg+"\n") {
			t.Fatalf("go list -deps %s does not list the package itself:\n%s", tc.pkg, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if dep == tc.forbidden || strings.HasPrefix(dep, tc.forbidden+"/") {
				t.Errorf("%s depends on %s", tc.pkg, dep)
			}
		}
	}
}
