package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"github.com/spf13/cobra"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/sdk"
)

var validName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,40}$`)

// sdkCopies says which SDK files a new project of each language gets, and where.
var sdkCopies = map[string][][2]string{ // lang -> {embedded path, project path}
	"go": {
		{"go/wasmta.go", "wasmta-sdk/sdk/go/wasmta.go"},
		{"go/host_wasip1.go", "wasmta-sdk/sdk/go/host_wasip1.go"},
		{"go/host_other.go", "wasmta-sdk/sdk/go/host_other.go"},
	},
	"c":              {{"c/wasmta.h", "wasmta.h"}},
	"rust":           {{"rust/src/lib.rs", "wasmta-sdk/lib.rs"}},
	"assemblyscript": {{"assemblyscript/index.ts", "assembly/wasmta.ts"}},
	"wat":            nil,
}

func pluginNewCmd() *cobra.Command {
	var lang, dir string
	c := &cobra.Command{
		Use:   "new NAME",
		Short: "Create a plugin project (go, rust, c, assemblyscript or wat) that builds and passes its own test",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !validName.MatchString(name) {
				return fmt.Errorf("plugin name %q: use lower-case letters, digits, - and _, starting with a letter", name)
			}
			copies, ok := sdkCopies[lang]
			if !ok {
				return fmt.Errorf("--lang %q: one of go, rust, c, assemblyscript, wat", lang)
			}
			if dir == "" {
				dir = name
			}
			if _, err := os.Stat(dir); err == nil {
				return fmt.Errorf("%s already exists", dir)
			}
			vars := map[string]any{"Name": name, "Ident": strings.ReplaceAll(name, "-", "_"), "Lang": lang, "NameLen": len(name)}
			root := "templates/" + lang
			err := fs.WalkDir(sdk.Files, root, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				text, err := fs.ReadFile(sdk.Files, p)
				if err != nil {
					return err
				}
				t, err := template.New(p).Parse(string(text))
				if err != nil {
					return err
				}
				var out bytes.Buffer
				if err := t.Execute(&out, vars); err != nil {
					return err
				}
				rel := strings.TrimSuffix(strings.TrimPrefix(p, root+"/"), ".tmpl")
				rel = strings.ReplaceAll(rel, "NAME", name)
				return write(filepath.Join(dir, rel), out.Bytes())
			})
			if err != nil {
				return err
			}
			for _, cp := range copies {
				b, err := fs.ReadFile(sdk.Files, cp[0])
				if err != nil {
					return err
				}
				if err := write(filepath.Join(dir, cp[1]), b); err != nil {
					return err
				}
			}
			if lang == "go" {
				if err := write(filepath.Join(dir, "wasmta-sdk/go.mod"), []byte("module github.com/wasmta/wasmta\n\ngo 1.26\n")); err != nil {
					return err
				}
				files, err := fs.Glob(abi.Source, "*.go")
				if err != nil {
					return err
				}
				for _, f := range files {
					b, err := fs.ReadFile(abi.Source, f)
					if err != nil {
						return err
					}
					if err := write(filepath.Join(dir, "wasmta-sdk/abi", f), b); err != nil {
						return err
					}
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created %s (%s)\nnext: cd %s && ./test.sh\n", dir, lang, dir)
			return nil
		},
	}
	c.Flags().StringVar(&lang, "lang", "go", "go, rust, c, assemblyscript or wat")
	c.Flags().StringVar(&dir, "dir", "", "project directory (default: NAME)")
	return c
}

func write(p string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if path.Ext(p) == ".sh" {
		mode = 0o755
	}
	return os.WriteFile(p, b, mode)
}
