package abi

import "embed"

// Source is this package's own source, copied into scaffolded Go plugin projects (`wasmta plugin
// new --lang go`) together with the Go SDK, so they build without fetching anything.
//
//go:embed abi.go queueconfig.go
var Source embed.FS
