package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wasmta/wasmta/host/control"
	"github.com/wasmta/wasmta/host/httpapi"
	"github.com/wasmta/wasmta/host/queue"
)

// `wasmta queue ...` drives a running relay's admin API over HTTP, like Postfix's postqueue
// and KumoMTA's kcli.

// selectorFlags are the queue selectors every rule command takes.
type selectorFlags struct {
	domain, routingDomain, tenant, campaign string
	queues                                  []string
	everything                              bool
}

func (s *selectorFlags) add(c *cobra.Command) {
	f := c.Flags()
	f.StringVar(&s.domain, "domain", "", "select queues of this recipient domain")
	f.StringVar(&s.routingDomain, "routing-domain", "", "select queues with this routing domain")
	f.StringVar(&s.tenant, "tenant", "", "select queues of this tenant")
	f.StringVar(&s.campaign, "campaign", "", "select queues of this campaign")
	f.StringArrayVar(&s.queues, "queue", nil, "select this exact scheduled queue name (repeatable; overrides the other selectors)")
}

func (s *selectorFlags) empty() bool {
	return s.domain == "" && s.routingDomain == "" && s.tenant == "" && s.campaign == "" && len(s.queues) == 0
}

// json fills a request body with the selectors that were given.
func (s *selectorFlags) json(m map[string]any) map[string]any {
	for k, v := range map[string]string{"domain": s.domain, "routing_domain": s.routingDomain, "tenant": s.tenant, "campaign": s.campaign} {
		if v != "" {
			m[k] = v
		}
	}
	if len(s.queues) > 0 {
		m["queue_names"] = s.queues
	}
	return m
}

func queueCmd() *cobra.Command {
	c := newAPIClient()
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "Inspect and operate a running relay's queue through its HTTP admin API",
		Long: `Inspect and operate a running relay's queue through its HTTP admin API ([http] listen).

The API address comes from --api or WASMTA_API (default ` + defaultAPI + `), the bearer
token from --token or WASMTA_TOKEN (the [http] token; a loopback listen without a token needs none).`,
	}
	c.flags(cmd.PersistentFlags())
	cmd.AddCommand(summaryCmd(c), inspectCmd(c), ruleCmd(c, queue.KindSuspend), resumeCmd(c), ruleCmd(c, queue.KindBounce), retryCmd(c))
	return cmd
}

func summaryCmd(c *apiClient) *cobra.Command {
	var asJSON, cluster bool
	cmd := &cobra.Command{
		Use:   "summary",
		Short: "Show the scheduled queues (count, oldest, next due, suspension) and the ready queues (sites)",
		Long: `Show the scheduled queues (count, oldest, next due, suspension) and the ready queues (sites).

With --cluster, ask any node of a cluster ([redis]) for every live node's summary, as their
heartbeats carry it (refreshed about every second; the largest ` + fmt.Sprint(control.MaxSummaryQueues) + ` queues of each
kind per node), one section per node, then the totals.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := httpapi.QueueSummaryPath
			if cluster {
				path = httpapi.ClusterSummaryPath
			}
			var raw json.RawMessage
			if err := c.do("GET", path, nil, nil, &raw); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				_, err := w.Write(raw)
				return err
			}
			if cluster {
				var cs control.ClusterSummary
				if err := json.Unmarshal(raw, &cs); err != nil {
					return err
				}
				printClusterSummary(w, cs)
				return nil
			}
			var s queue.Summary
			if err := json.Unmarshal(raw, &s); err != nil {
				return err
			}
			printSummary(w, s)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON (stable, for scripts)")
	cmd.Flags().BoolVar(&cluster, "cluster", false, "every live node of the cluster ([redis]), one section per node, and the totals")
	return cmd
}

// printClusterSummary prints one section per node (its own summary, as `queue summary` on
// that node would), then the totals.
func printClusterSummary(out io.Writer, cs control.ClusterSummary) {
	fmt.Fprintf(out, "cluster %s: %d node(s), %d message(s) held\n", cs.Cluster, cs.Total.Nodes, cs.Total.Queued)
	for _, n := range cs.Nodes {
		api := n.API
		if api == "" {
			api = "-"
		}
		var s queue.Summary
		err := json.Unmarshal(n.Summary, &s)
		fmt.Fprintf(out, "\n== node %s (version %s, api %s, up %s, summary %s)\n", n.Node, n.Version, api,
			cs.Now.Sub(n.Started).Round(time.Second), ago(cs.Now, &s.Now))
		if err != nil {
			fmt.Fprintln(out, "no readable summary (a node of another version?)")
			continue
		}
		if n.Truncated {
			fmt.Fprintf(out, "(its %d largest queues of each kind only)\n", control.MaxSummaryQueues)
		}
		printSummary(out, s)
	}
	fmt.Fprintln(out, "\n== total")
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SCHEDULED QUEUE\tCOUNT\tNODES")
	for _, q := range cs.Total.Scheduled {
		fmt.Fprintf(w, "%s\t%d\t%d\n", q.Name, q.Count, q.Nodes)
	}
	w.Flush()
}

// ago renders t relative to now, "-" when zero.
func ago(now time.Time, t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	d := t.Sub(now).Round(time.Second)
	if d > 0 {
		return "in " + d.String()
	}
	return (-d).String() + " ago"
}

func printSummary(out io.Writer, s queue.Summary) {
	fmt.Fprintf(out, "%d message(s) held\n\n", s.Queued)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SCHEDULED QUEUE\tCOUNT\tDELIVERING\tOLDEST\tNEXT DUE\tSUSPENDED")
	for _, q := range s.Scheduled {
		oldest := q.Oldest
		fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%s\n", q.Name, q.Count, q.Delivering, ago(s.Now, &oldest), ago(s.Now, q.NextDue), ago(s.Now, q.SuspendedUntil))
	}
	w.Flush()
	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "READY QUEUE (SITE)\tCOUNT\tCONNS\tDELIVERING\tLAST RESPONSE")
	for _, r := range s.Ready {
		last := "-"
		if r.LastResponse != "" {
			last = fmt.Sprintf("%s (%s)", r.LastResponse, ago(s.Now, r.LastResponseAt))
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%s\n", r.Name, r.Count, r.Connections, r.Delivering, last)
	}
	w.Flush()
}

func inspectCmd(c *apiClient) *cobra.Command {
	var body bool
	cmd := &cobra.Command{
		Use:   "inspect ID",
		Short: "Show a queued message: envelope, meta, queue, due time, attempts (and body with --body)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{"id": {args[0]}}
			if body {
				q.Set("want_body", "true")
			}
			var raw json.RawMessage
			if err := c.do("GET", httpapi.InspectMsgPath, q, nil, &raw); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), raw)
		},
	}
	cmd.Flags().BoolVar(&body, "body", false, "include the message body")
	return cmd
}

// ruleCmd is `queue suspend` or `queue bounce`: add a rule, or --list / --cancel.
func ruleCmd(c *apiClient, kind string) *cobra.Command {
	var sel selectorFlags
	var reason, duration, cancel string
	var list bool
	path, short := httpapi.SuspendPath, "Suspend delivery of the selected queues (until --duration passes or `wasmta queue resume ID`)"
	if kind == queue.KindBounce {
		path, short = httpapi.BouncePath, "Bounce the selected queues' mail (AdminBounce), and new arrivals for --duration"
	}
	cmd := &cobra.Command{
		Use:   kind,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			if (list || cancel != "") && (!sel.empty() || sel.everything || reason != "" || duration != "") {
				// The API lists and cancels rules by id only: a selector here would be ignored.
				return errors.New("--list and --cancel take no selector, --reason or --duration")
			}
			switch {
			case list:
				var raw json.RawMessage
				if err := c.do("GET", path, nil, nil, &raw); err != nil {
					return err
				}
				return printRules(w, raw)
			case cancel != "":
				if err := c.do("DELETE", path, nil, map[string]string{"id": cancel}, nil); err != nil {
					return err
				}
				fmt.Fprintln(w, "cancelled", cancel)
				return nil
			}
			if reason == "" {
				return errors.New("--reason is required")
			}
			if sel.empty() && !sel.everything {
				return fmt.Errorf("no selector: give --domain, --tenant, --campaign, --routing-domain or --queue (or --everything to %s every queue)", kind)
			}
			req := sel.json(map[string]any{"reason": reason})
			if duration != "" {
				req["duration"] = duration
			}
			var resp struct {
				ID           string         `json:"id"`
				Bounced      map[string]int `json:"bounced"`
				TotalBounced int            `json:"total_bounced"`
				InFlight     int            `json:"in_flight"`
			}
			if err := c.do("POST", path, nil, req, &resp); err != nil {
				return err
			}
			if kind == queue.KindBounce {
				fmt.Fprintf(w, "%s\nbounced %d message(s) now\n", resp.ID, resp.TotalBounced)
				if resp.InFlight > 0 {
					fmt.Fprintf(w, "%d more being attempted: bounced when the attempt ends, unless it delivers\n", resp.InFlight)
				}
			} else {
				fmt.Fprintln(w, resp.ID)
			}
			return nil
		},
	}
	sel.add(cmd)
	cmd.Flags().BoolVar(&sel.everything, "everything", false, "select every queue (required when no selector is given)")
	cmd.Flags().StringVar(&reason, "reason", "", "why (logged, and listed with the rule)")
	cmd.Flags().StringVar(&duration, "duration", "", `how long the rule lasts, e.g. "30m", "2h", "7d" (default 5m)`)
	cmd.Flags().BoolVar(&list, "list", false, "list the active rules")
	if kind == queue.KindBounce {
		cmd.Flags().StringVar(&cancel, "cancel", "", "cancel the bounce rule with this id")
	}
	return cmd
}

func printRules(out io.Writer, raw []byte) error {
	var rules []struct {
		ID string `json:"id"`
		queue.Selector
		Reason       string `json:"reason"`
		Duration     string `json:"duration"`
		TotalBounced *int   `json:"total_bounced"`
	}
	if err := json.Unmarshal(raw, &rules); err != nil {
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSELECTS\tREMAINING\tBOUNCED\tREASON")
	for _, r := range rules {
		bounced := "-"
		if r.TotalBounced != nil {
			bounced = fmt.Sprint(*r.TotalBounced)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.ID, describe(r.Selector), r.Duration, bounced, r.Reason)
	}
	return w.Flush()
}

func describe(s queue.Selector) string {
	if len(s.QueueNames) > 0 {
		return "queue=" + strings.Join(s.QueueNames, ",")
	}
	var parts []string
	for _, p := range []struct {
		k string
		v *string
	}{{"campaign", s.Campaign}, {"tenant", s.Tenant}, {"domain", s.Domain}, {"routing_domain", s.RoutingDomain}} {
		if p.v != nil {
			parts = append(parts, p.k+"="+*p.v)
		}
	}
	if len(parts) == 0 {
		return "everything"
	}
	return strings.Join(parts, " ")
}

func resumeCmd(c *apiClient) *cobra.Command {
	return &cobra.Command{
		Use:   "resume ID",
		Short: "Cancel a suspension (ids from `wasmta queue suspend --list`); its mail is attempted at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := c.do("DELETE", httpapi.SuspendPath, nil, map[string]string{"id": args[0]}, nil); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "resumed", args[0])
			return nil
		},
	}
}

func retryCmd(c *apiClient) *cobra.Command {
	var sel selectorFlags
	var reason string
	var set []string
	cmd := &cobra.Command{
		Use:   "retry",
		Short: "Attempt the selected queues' deferred mail now (postqueue -f); --set K=V also rebinds (sets meta, recomputes the queue)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data := map[string]string{}
			for _, kv := range set {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("--set %q: want KEY=VALUE", kv)
				}
				data[k] = v
			}
			req := sel.json(map[string]any{"reason": reason, "data": data, "always_flush": true})
			var res queue.RebindResult
			if err := c.do("POST", httpapi.RebindPath, nil, req, &res); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d message(s) due now (%d moved to another queue)\n", res.Flushed, res.Moved)
			if res.InFlight > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%d more being attempted: rebound when the attempt ends, unless it delivers or bounces\n", res.InFlight)
			}
			return nil
		},
	}
	sel.add(cmd)
	cmd.Flags().StringVar(&reason, "reason", "retry requested by an operator", "why (in the AdminRebind records)")
	cmd.Flags().StringArrayVar(&set, "set", nil, "set meta KEY=VALUE on the selected messages (repeatable)")
	return cmd
}
