package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/config"
	"github.com/wasmta/wasmta/host/explain"
	"github.com/wasmta/wasmta/host/plugin"
	"github.com/wasmta/wasmta/host/route"
)

// readMessage loads a sample message and normalizes line ends to CRLF, as SMTP delivers them.
func readMessage(path string) ([]byte, error) {
	if path == "" {
		return []byte("Subject: test\r\n\r\ntest\r\n"), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")), nil
}

func parseMeta(kvs []string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--meta %q: use key=value", kv)
		}
		m[k] = v
	}
	return m, nil
}

func printMeta(w io.Writer, m map[string]string) {
	fmt.Fprintln(w, "meta:")
	for _, k := range explain.SortedMeta(m) {
		fmt.Fprintf(w, "  %s = %q\n", k, m[k])
	}
}

// headerBlock is the message's header, as delivery would send it.
func headerBlock(data []byte) string {
	if i := bytes.Index(data, []byte("\r\n\r\n")); i >= 0 {
		return string(data[:i+2])
	}
	return string(data)
}

func pluginTestCmd() *cobra.Command {
	var msgPath, from, conf, hook string
	var rcpts, metas []string
	c := &cobra.Command{
		Use:   "test FILE",
		Short: "Dry-run a plugin's hooks on a sample message (no network) and print meta, headers, queue and queue config",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(rcpts) == 0 {
				return fmt.Errorf("--rcpt is required")
			}
			// As plugin check: serve always hands a plugin JSON (its [plugins.config] table),
			// so a typo here is the operator's, not something the plugin must survive.
			if !json.Valid([]byte(conf)) {
				return fmt.Errorf("--config: not valid JSON")
			}
			data, err := readMessage(msgPath)
			if err != nil {
				return err
			}
			meta, err := parseMeta(metas)
			if err != nil {
				return err
			}
			h, err := plugin.NewHost("", slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)))
			if err != nil {
				return err
			}
			defer h.Close()
			ctx := context.Background()
			p, err := h.Load(ctx, plugin.Spec{Path: args[0], Config: []byte(conf)})
			if err != nil {
				return err
			}
			defer p.Close(ctx)
			chain := plugin.NewChain(p)
			w := cmd.OutOrStdout()
			hookName := abi.HookSMTPServerMessageReceived
			if hook == "http" {
				hookName = abi.HookHTTPMessageGenerated
			}
			m := &plugin.Message{Sender: from, Recipients: rcpts, Meta: meta, Data: data}
			fmt.Fprintf(w, "plugin: %s@%s\nhook: %s\n", p.Name(), p.Generation().ID, hookName)
			o, err := chain.MessageHook(ctx, hookName, m)
			if err != nil {
				fmt.Fprintf(w, "result: FAILED (the client would get 451 4.3.0): %v\n", err)
				return err
			}
			if o.Reject != nil {
				fmt.Fprintf(w, "result: rejected: %s\n", o.Reject)
				return nil
			}
			fmt.Fprintln(w, "result: accepted")
			printMeta(w, m.Meta)
			fmt.Fprintf(w, "headers:\n%s", indent(headerBlock(m.Data)))
			seen := map[string]bool{}
			for _, r := range rcpts {
				_, domain, err := route.ParseMailbox(r)
				if err != nil {
					return fmt.Errorf("--rcpt %s: %w", r, err)
				}
				q := route.QueueName(m.Meta, domain)
				fmt.Fprintf(w, "recipient %s -> queue %s\n", r, q)
				if seen[q] {
					continue
				}
				seen[q] = true
				comps, err := route.ParseQueueName(q)
				if err != nil {
					return err
				}
				qc, by, err := chain.QueueConfig(ctx, plugin.QueueInput{Name: q, Domain: comps.Domain, Tenant: comps.Tenant, Campaign: comps.Campaign, RoutingDomain: comps.RoutingDomain})
				switch {
				case err != nil:
					fmt.Fprintf(w, "  get_queue_config FAILED (the message would stay queued): %v\n", err)
				case qc == nil:
					fmt.Fprintln(w, "  queue config: server defaults")
				default:
					js, _ := json.Marshal(qc)
					fmt.Fprintf(w, "  queue config (from %s): %s\n", by, js)
				}
			}
			return nil
		},
	}
	c.Flags().StringVar(&msgPath, "message", "", "RFC 5322 message file (default: a minimal message)")
	c.Flags().StringVar(&from, "from", "", "envelope sender (default: the null sender <>)")
	c.Flags().StringArrayVar(&rcpts, "rcpt", nil, "envelope recipient (repeatable)")
	c.Flags().StringArrayVar(&metas, "meta", nil, "meta set before the hook, key=value (repeatable)")
	c.Flags().StringVar(&conf, "config", "{}", "the plugin's config as JSON (what [plugins.config] would give)")
	c.Flags().StringVar(&hook, "hook", "smtp", "which message hook: smtp (smtp_server_message_received) or http (http_message_generated)")
	return c
}

func routeCmd() *cobra.Command {
	c := &cobra.Command{Use: "route", Short: "Routing tools"}
	var path, from, msgPath string
	var metas []string
	var rcpt string
	explain := &cobra.Command{
		Use:   "explain",
		Short: "Show how a recipient would be routed: plugins, scheduled queue, queue config, site and hosts (DNS is queried; nothing is sent)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rcpt == "" {
				return fmt.Errorf("--rcpt is required")
			}
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			data, err := readMessage(msgPath)
			if err != nil {
				return err
			}
			meta, err := parseMeta(metas)
			if err != nil {
				return err
			}
			ex, err := explain.Explain(context.Background(), cfg, slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)), from, rcpt, meta, data)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if len(ex.Handled) > 0 {
				fmt.Fprintf(w, "plugins: %s\n", strings.Join(ex.Handled, ", "))
			}
			if ex.Reject != "" {
				fmt.Fprintf(w, "rejected at reception: %s\n", ex.Reject)
				return nil
			}
			printMeta(w, ex.Meta)
			fmt.Fprintf(w, "queue: %s\n", ex.Queue)
			by := "server defaults"
			if ex.ConfigBy != "" {
				by = ex.ConfigBy
			}
			fmt.Fprintf(w, "queue config (%s): retry_interval=%s max_retry_interval=%s max_age=%s\n", by,
				ex.Config.RetryInterval, ex.Config.MaxRetryInterval, ex.Config.MaxAge)
			if len(ex.Config.MXList) > 0 {
				var names []string
				for _, e := range ex.Config.MXList {
					names = append(names, e.Label())
				}
				fmt.Fprintf(w, "mx_list: %s\n", strings.Join(names, ", "))
			}
			if ex.Err != nil {
				fmt.Fprintf(w, "delivery would fail: %v\n", ex.Err)
				return nil
			}
			fmt.Fprintf(w, "site: %s\nhosts, in the order delivery tries them:\n", ex.Site.Name)
			for _, h := range ex.Site.Hosts {
				fmt.Fprintf(w, "  %s [%s]:%d\n", h.Name, h.Addr, h.Port)
			}
			if len(ex.Prohibited) > 0 {
				fmt.Fprintln(w, "left out, their address is in delivery.prohibited_hosts:")
				for _, h := range ex.Prohibited {
					fmt.Fprintf(w, "  %s [%s]:%d\n", h.Name, h.Addr, h.Port)
				}
			}
			return nil
		},
	}
	explain.Flags().StringVar(&path, "config", "", "server config file (default: the embedded default)")
	explain.Flags().StringVar(&rcpt, "rcpt", "", "recipient to route")
	explain.Flags().StringVar(&from, "from", "", "envelope sender")
	explain.Flags().StringVar(&msgPath, "message", "", "sample message for the plugins' message hook")
	explain.Flags().StringArrayVar(&metas, "meta", nil, "meta set before the hooks, key=value (repeatable)")
	c.AddCommand(explain)
	return c
}

func indent(s string) string {
	lines := strings.SplitAfter(s, "\n")
	var b strings.Builder
	for _, l := range lines {
		if l != "" {
			b.WriteString("  " + strings.TrimRight(l, "\r\n") + "\n")
		}
	}
	return b.String()
}
