package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// manCmd writes a man page per command (wasmta.1, wasmta-serve.1, ...) from the command tree
// itself, so the pages never disagree with --help. `make install` runs it; shell completions
// come from cobra's own `wasmta completion bash|zsh|fish`.
func manCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write the man pages (section 1) into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			header := &doc.GenManHeader{
				Title:   "WASMTA",
				Section: "1",
				Source:  "wasmta " + version,
				Manual:  "wasmta manual",
			}
			r := cmd.Root()
			r.DisableAutoGenTag = true // no generation date: the pages are the same on every build
			if err := doc.GenManTree(r, header, args[0]); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			return nil
		},
	}
}
