// Package sdk embeds the SDK sources and project templates that `wasmta plugin new` copies
// into a new plugin project, so a scaffolded project builds offline from what the binary holds.
package sdk

import "embed"

// Files holds the SDK sources (go/, c/, rust/, assemblyscript/) and templates/<lang>/.
// Template files end in .tmpl and use text/template with {{.Name}}, {{.Ident}}, {{.Lang}},
// {{.NameLen}}; NAME in a path is replaced by the project name.
//
//go:embed go/wasmta.go go/host_wasip1.go go/host_other.go c/wasmta.h rust/src/lib.rs assemblyscript/index.ts all:templates
var Files embed.FS
