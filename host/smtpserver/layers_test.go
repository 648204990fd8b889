package smtpserver

import (
	"testing"

	"github.com/wasmta/wasmta/host/testutil"
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
		testutil.ForbidDeps(t, tc.pkg, tc.forbidden)
	}
}
