// Command wasmta is the relay's one binary: `wasmta serve` runs the MTA.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/wasmta/wasmta/host/app"
	"github.com/wasmta/wasmta/host/config"
	"github.com/wasmta/wasmta/host/control"
	"github.com/wasmta/wasmta/host/httpapi"
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
		// --version prints what `wasmta version` prints.
		Version: version,
	}
	r.SetVersionTemplate("wasmta {{.Version}}\n")
	r.AddCommand(serveCmd(), versionCmd(), configCmd(), pluginCmd(), routeCmd(), injectCmd(), queueCmd(), manCmd())
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
		Short: "Print every configuration key with its default value and a comment (a reference config)",
		Long: "Print every configuration key with its default value and a comment. The output is a valid\n" +
			"config that `wasmta config check` accepts and that serves exactly like no --config at all.",
		Run: func(cmd *cobra.Command, _ []string) { fmt.Fprint(cmd.OutOrStdout(), config.Reference) },
	}, &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a configuration file as serve would (TLS files, plugins initialised with their config)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(args[0])
			if err != nil {
				return err
			}
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			warnings, err := app.Check(cmd.Context(), cfg, quiet)
			if err != nil {
				return err
			}
			for _, w := range warnings {
				fmt.Fprintln(cmd.OutOrStdout(), "warning:", w)
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
			// SIGHUP (reload) and SIGUSR1 (logrotate) are caught from the start and handled
			// once the relay is up: Go's default for SIGHUP is to exit, and starting can take
			// minutes (a large spool to recover, a disk too full to open the spool), so a
			// reload sent meanwhile killed the relay. SIGTERM and SIGINT keep ending a start at
			// once (app.New's spool wait listens for them itself) and are caught after Start.
			// The buffer keeps a few sent while starting.
			sig := make(chan os.Signal, 4)
			signal.Notify(sig, syscall.SIGHUP, syscall.SIGUSR1)
			defer signal.Stop(sig)
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
			a.SetConfigPath(path)
			a.SetVersion(version)
			if err := a.Start(); err != nil {
				return err
			}
			signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
			notify := func(state ...string) {
				if err := sdNotify(state...); err != nil {
					diag.Warn("service manager notification failed", "err", err)
				}
			}
			// Start returned: the spool is scanned and the control socket, HTTP and SMTP listen;
			// the signal handlers are in place for a SIGHUP or SIGTERM sent as soon as it is heard.
			notify("READY=1", "STATUS=accepting mail")
			var s os.Signal
		loop:
			for s = range sig {
				switch s {
				case syscall.SIGHUP:
					notify("RELOADING=1", "MONOTONIC_USEC="+monotonicUsec())
					_, _ = a.Reload("SIGHUP") // results and errors are logged by Reload
					notify("READY=1", "STATUS=accepting mail")
				case syscall.SIGUSR1:
					a.ReopenLogs() // logrotate moved the log file: write to a new one
				default:
					break loop
				}
			}
			notify("STOPPING=1", "STATUS=stopping: finishing transactions and deliveries in progress")
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
	c.AddCommand(check, pluginTestCmd(), pluginNewCmd(), controlCmd("reload", "Reload plugins in the running server (new code or config); exit status 1 if a version was refused"),
		controlCmd("status", "Show the running server's plugin generations, load times and last reload error"))
	return c
}

// controlCmd talks to a running server through its control socket (found from its config).
func controlCmd(name, short string) *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   name,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			if cfg.ControlSocket == "" {
				src := "the embedded default"
				if path != "" {
					src = path
				}
				route := "GET " + httpapi.PluginStatusPath
				if name == control.CmdReload {
					route = "POST " + httpapi.PluginReloadPath
				}
				return fmt.Errorf("control_socket is empty in %s: a server with this config has no control socket; "+
					"use its HTTP API (%s) or a config that names the socket", src, route)
			}
			resp, err := control.Send(cfg.ControlSocket, name)
			if err != nil {
				return fmt.Errorf("control socket %s: %w (is the server running with this config?)", cfg.ControlSocket, err)
			}
			w := cmd.OutOrStdout()
			for _, r := range resp.Results {
				switch {
				case r.Error != "":
					fmt.Fprintf(w, "%s: REFUSED, still serving %s: %s\n", r.Plugin, r.Generation, r.Error)
				case r.Removed:
					fmt.Fprintf(w, "%s: removed (was %s)\n", r.Plugin, r.Previous)
				case r.Changed && r.Previous == "":
					fmt.Fprintf(w, "%s: loaded %s\n", r.Plugin, r.Generation)
				case r.Changed:
					fmt.Fprintf(w, "%s: reloaded %s -> %s\n", r.Plugin, r.Previous, r.Generation)
				default:
					fmt.Fprintf(w, "%s: unchanged %s\n", r.Plugin, r.Generation)
				}
			}
			if name == "status" {
				q, sp := resp.Queue, resp.Spool
				// The ways mail leaves the queue, operator bounces included, so that an operator can
				// account for what is queued.
				fmt.Fprintf(w, "queue: %d queued, %d received, %d delivered, %d transient failures, %d bounced, %d expired, %d bounced by an operator\n",
					q.Queued, q.Received, q.Delivered, q.Transient, q.Bounced, q.Expired, q.AdminBounced)
				refusing := "accepting mail"
				if sp.BelowReserve {
					refusing = "REFUSING new mail (452 4.3.1)"
				}
				fmt.Fprintf(w, "spool: %d MiB free, reserve %d MiB, %s, %d refused for space\n",
					sp.FreeBytes>>20, sp.MinFreeBytes>>20, refusing, sp.SpaceRefusals)
				for _, p := range resp.Plugins {
					fmt.Fprintf(w, "%s\tgeneration %s\tloaded %s\treloads %d\tfailures %d\thooks %s\n", p.Name, p.Generation,
						p.LoadedAt.Format(time.RFC3339), p.Reloads, p.Failures, strings.Join(p.Hooks, ","))
					if p.LastError != "" {
						fmt.Fprintf(w, "\tlast error (%s): %s\n", p.LastErrorAt.Format(time.RFC3339), p.LastError)
					}
				}
			}
			if !resp.OK {
				return errors.New(resp.Error)
			}
			return nil
		},
	}
	c.Flags().StringVar(&path, "config", "", "the server's config file (for its control_socket); default: the embedded default")
	return c
}
