// Command wasmta is the relay's one binary: `wasmta serve` runs the MTA.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/wasmta/wasmta/host/app"
	"github.com/wasmta/wasmta/host/config"
	"github.com/wasmta/wasmta/host/plugin"
)

// version is set by the Makefile (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	if err := root().Execute(); err != nil {
		os.Exit(1)
	}
}

func root() *cobra.Command {
	r := &cobra.Command{
		Use:           "wasmta",
		Short:         "wasmta: a mail transfer agent whose policy is WebAssembly",
		SilenceUsage:  true,
		SilenceErrors: false,
	}
	r.AddCommand(serveCmd(), versionCmd(), configCmd(), pluginCmd())
	return r
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "wasmta", version) },
	}
}

func configCmd() *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Configuration helpers"}
	c.AddCommand(&cobra.Command{
		Use:   "default",
		Short: "Print the embedded default configuration",
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprint(cmd.OutOrStdout(), config.Default) },
	}, &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a configuration file",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := config.Load(args[0]); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "ok")
			return nil
		},
	})
	return c
}

func serveCmd() *cobra.Command {
	var path, level, cpuProfile string
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the relay (embedded default config unless --config is given)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var lv slog.Level
			if err := lv.UnmarshalText([]byte(level)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			diag := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
			a, err := app.New(cfg, diag)
			if err != nil {
				return err
			}
			if err := a.Start(); err != nil {
				return err
			}
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
			s := <-sig
			diag.Info("shutting down", "signal", s.String())
			ctx, cancel := context.WithTimeout(context.Background(), cfg.SMTP.ShutdownTimeout.D())
			defer cancel()
			a.Shutdown(ctx)
			return nil
		},
	}
	c.Flags().StringVar(&path, "config", "", "TOML configuration file (default: the embedded default)")
	c.Flags().StringVar(&cpuProfile, "cpu-profile", "", "write a CPU profile (pprof) to this file until shutdown")
	c.Flags().StringVar(&level, "log-level", "info", "diagnostic log level: debug, info, warn, error")
	return c
}

func pluginCmd() *cobra.Command {
	c := &cobra.Command{Use: "plugin", Short: "Plugin tools"}
	var conf string
	check := &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a plugin (exports, imports, start, wasmta_init) and print its ABI version and hooks",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var cfg []byte
			if conf != "" {
				cfg = []byte(conf)
				if !json.Valid(cfg) {
					return fmt.Errorf("--config: not valid JSON")
				}
			}
			r, err := plugin.Check(cmd.Context(), args[0], cfg)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s: ok\nabi: %s\ngeneration: %s\nhooks: %s\nimports: %s\n",
				r.Name, r.ABI, r.Generation, strings.Join(r.Hooks, ", "), strings.Join(r.Imports, ", "))
			return nil
		},
	}
	check.Flags().StringVar(&conf, "config", "", "the plugin's config as JSON, passed to get_config (default {})")
	c.AddCommand(check)
	return c
}
