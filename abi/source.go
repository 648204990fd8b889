package abi

import "embed"

// Source is this package's own source, copied into scaffolded Go plugin projects (`wasmta plugin
// new --lang go`) together with the Go SDK, so they build without fetching anything. Every
// non-test file of the package belongs here (TestSourceHasEveryFile).
//
//go:embed abi.go queueconfig.go egresspath.go dkim.go
var Source embed.FS
