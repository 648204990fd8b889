package app

import (
	"context"
	"fmt"
	"log/slog"
	"sort"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/config"
	"github.com/wasmta/wasmta/host/plugin"
	"github.com/wasmta/wasmta/host/queue"
	"github.com/wasmta/wasmta/host/route"
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
}

// Explain runs the configured plugins and routing for one recipient without receiving,
// spooling or sending anything: message hook → queue name → queue config → site and hosts
// (DNS is queried through the configured resolvers).
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
		if chain, err = loadPlugins(ctx, h, cfg.Plugins); err != nil {
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
	src := pluginConfigs{chain: chain, defaults: defaults}
	if ex.Config, err = src.QueueConfig(ctx, ex.Queue, comps); err != nil {
		return nil, fmt.Errorf("get_queue_config: %w", err)
	}
	if _, by, _ := chain.QueueConfig(ctx, plugin.QueueInput{Name: ex.Queue, Domain: comps.Domain, Tenant: comps.Tenant, Campaign: comps.Campaign, RoutingDomain: comps.RoutingDomain}); by != "" {
		ex.ConfigBy = by
	}
	r, err := resolver(cfg)
	if err != nil {
		return nil, err
	}
	ex.Site, ex.Err = r.Resolve(ctx, comps.Destination(), ex.Config.MXList)
	return ex, nil
}

// resolver builds the route resolver a server with cfg would use.
func resolver(cfg *config.Config) (*route.Resolver, error) {
	prohibited, err := config.ParsePrefixes(cfg.Delivery.ProhibitedHosts)
	if err != nil {
		return nil, err
	}
	servers := cfg.DNS.Resolvers
	if len(servers) == 0 {
		if servers, err = route.ResolversFromFile("/etc/resolv.conf"); err != nil {
			return nil, fmt.Errorf("dns: no resolvers configured and /etc/resolv.conf unusable: %w", err)
		}
	}
	return &route.Resolver{
		Servers:     servers,
		Timeout:     cfg.DNS.Timeout.D(),
		NegativeTTL: cfg.DNS.NegativeTTL.D(),
		Prohibited:  prohibited,
		DefaultPort: cfg.EgressDefaults().SMTPPort, // [egress] smtp_port, or [delivery]'s
	}, nil
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
