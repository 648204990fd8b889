package smtpserver

import (
	"os/exec"
	"strings"
	"testing"
)

// Reception must not depend on the WebAssembly runtime (it hands messages to plugins through
// the Policy interface and host/message's types), and the queue must not depend on the spool
// that sits above it: a package that does drags the layers above it into everything below.
func TestLayering(t *testing.T) {
	for _, tc := range []struct{ pkg, forbidden string }{
		{"github.com/wasmta/wasmta/host/smtpserver", "github.com/tetratelabs/wazero"},
		{"github.com/wasmta/wasmta/host/smtpserver", "github.com/wasmta/wasmta/host/plugin"},
		{"github.com/wasmta/wasmta/host/queue", "github.com/wasmta/wasmta/host/spool"},
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
