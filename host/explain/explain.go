// Package explain is the back-end of `wasmta route explain`: it runs the configured plugins and
// routing for one recipient the way a server with the same config would, without receiving,
// spooling or sending anything. It builds its parts with host/wiring, as the server does.
package explain

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/config"
	"github.com/wasmta/wasmta/host/plugin"
	"github.com/wasmta/wasmta/host/queue"
	"github.com/wasmta/wasmta/host/route"
	"github.com/wasmta/wasmta/host/wiring"
)

// Explanation is what `wasmta route explain` prints: how one recipient would be routed.
type Explanation struct {
	Meta     map[string]string
	Handled  []string // plugin generations that ran the message hook
	Reject   string   // set when a plugin would reject the message
	Queue    string
	Config   queue.Config
	ConfigBy string // plugin@generation whose get_queue_config decided, "" = defaults
	Site     route.Site
	Err      error // resolution error (what delivery would log: transient or bounce)
	// Prohibited lists the hosts the destination resolved to that delivery leaves out because
	// their address is in delivery.prohibited_hosts (when some are left: none left is Err).
	Prohibited []route.Host
}

// Explain runs the configured plugins and routing for one recipient: message hook → queue
// name → queue config → site and hosts (DNS is queried through the configured resolvers).
func Explain(ctx context.Context, cfg *config.Config, diag *slog.Logger, sender, rcpt string, meta map[string]string, data []byte) (*Explanation, error) {
	_, domain, err := route.ParseMailbox(rcpt)
	if err != nil {
		return nil, err
	}
	chain := plugin.NewChain()
	if len(cfg.Plugins) > 0 {
		h, err := plugin.NewHost("", diag)
		if err != nil {
			return nil, err
		}
		defer h.Close()
		if chain, err = wiring.LoadPlugins(ctx, h, cfg.Plugins); err != nil {
			return nil, err
		}
		defer chain.Close(ctx)
	}
	ex := &Explanation{Meta: meta}
	if ex.Meta == nil {
		ex.Meta = map[string]string{}
	}
	m := &plugin.Message{Sender: sender, Recipients: []string{rcpt}, Meta: ex.Meta, Data: data}
	o, err := chain.MessageHook(ctx, abi.HookSMTPServerMessageReceived, m)
	if err != nil {
		return nil, fmt.Errorf("message hook: %w", err)
	}
	ex.Meta, ex.Handled = m.Meta, o.Handled
	if o.Reject != nil {
		ex.Reject = o.Reject.String()
		return ex, nil
	}
	ex.Queue = route.QueueName(ex.Meta, domain)
	comps, err := route.ParseQueueName(ex.Queue)
	if err != nil {
		return nil, err
	}
	defaults := queue.Config{
		RetryInterval:    cfg.Queue.RetryInterval.D(),
		MaxRetryInterval: cfg.Queue.MaxRetryInterval.D(),
		MaxAge:           cfg.Queue.MaxAge.D(),
	}
	src := wiring.QueueConfigs{Chain: chain, Defaults: defaults}
	if ex.Config, err = src.QueueConfig(ctx, ex.Queue, comps); err != nil {
		return nil, fmt.Errorf("get_queue_config: %w", err)
	}
	if _, by, _ := chain.QueueConfig(ctx, plugin.QueueInput{Name: ex.Queue, Domain: comps.Domain, Tenant: comps.Tenant, Campaign: comps.Campaign, RoutingDomain: comps.RoutingDomain}); by != "" {
		ex.ConfigBy = by
	}
	r, err := wiring.Resolver(cfg)
	if err != nil {
		return nil, err
	}
	ex.Site, ex.Err = r.Resolve(ctx, comps.Destination(), ex.Config.MXList)
	if ex.Err == nil && len(r.Prohibited) > 0 {
		// Resolve again without the list to name what it left out (delivery does not need to).
		all := &route.Resolver{Servers: r.Servers, Timeout: r.Timeout, NegativeTTL: r.NegativeTTL, DefaultPort: r.DefaultPort}
		if site, err := all.Resolve(ctx, comps.Destination(), ex.Config.MXList); err == nil {
			for _, h := range site.Hosts {
				if !slices.ContainsFunc(ex.Site.Hosts, func(k route.Host) bool { return k.Addr == h.Addr && k.Port == h.Port }) {
					ex.Prohibited = append(ex.Prohibited, h)
				}
			}
		}
	}
	return ex, nil
}

// SortedMeta returns meta keys in order, for stable output.
func SortedMeta(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
