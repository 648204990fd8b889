// Package wiring turns configuration into the components that the server (host/app) and
// `wasmta route explain` (host/explain) both build: the route resolver, the plugin chain and
// the queue's config source. Both take them from here, so explain shows what delivery would do
// without depending on the composition root.
package wiring

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/config"
	"github.com/wasmta/wasmta/host/plugin"
	"github.com/wasmta/wasmta/host/queue"
	"github.com/wasmta/wasmta/host/route"
)

// Resolver builds the route resolver a server with cfg uses.
func Resolver(cfg *config.Config) (*route.Resolver, error) {
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

// LoadPlugins loads every configured plugin in order; any failure stops start-up with the
// plugin's precise error.
func LoadPlugins(ctx context.Context, h *plugin.Host, cfgs []config.PluginConfig) (*plugin.Chain, error) {
	c := plugin.NewChain()
	for i, pc := range cfgs {
		spec, err := PluginSpec(pc)
		if err != nil {
			c.Close(ctx)
			return nil, fmt.Errorf("configuration key plugins[%d].config: %w", i, err)
		}
		p, err := h.Load(ctx, spec)
		if err != nil {
			c.Close(ctx)
			return nil, fmt.Errorf("configuration key plugins[%d]: %w", i, err) // which entry: two may share a file name
		}
		c.Set(append(c.Plugins(), p))
	}
	return c, nil
}

// PluginSpec is what the plugin host needs to load one [[plugins]] entry; its [plugins.config]
// table reaches the guest as JSON.
func PluginSpec(pc config.PluginConfig) (plugin.Spec, error) {
	conf := pc.Config
	if conf == nil {
		conf = map[string]any{}
	}
	js, err := json.Marshal(conf)
	if err != nil {
		return plugin.Spec{}, err
	}
	spec := plugin.Spec{Path: pc.Path, Config: js, PoolSize: pc.PoolSize}
	if pc.MaxMemory != nil { // nil: the plugin host's default
		spec.MaxMemory = int64(*pc.MaxMemory)
	}
	if pc.Timeout != nil {
		spec.Timeout = pc.Timeout.D()
	}
	return spec, nil
}

// QueueConfigs is the queue's ConfigSource: the plugins' get_queue_config over the server's
// [queue] defaults.
type QueueConfigs struct {
	Chain    *plugin.Chain
	Defaults queue.Config
}

var _ queue.ConfigSource = QueueConfigs{}

// QueueConfig returns the config for the queue name (parsed into c): the defaults with every
// field a plugin set replaced.
func (s QueueConfigs) QueueConfig(ctx context.Context, name string, c route.Components) (queue.Config, error) {
	cfg := s.Defaults
	qc, _, err := s.Chain.QueueConfig(ctx, plugin.QueueInput{
		Name: name, Domain: c.Domain, Tenant: c.Tenant, Campaign: c.Campaign, RoutingDomain: c.RoutingDomain,
	})
	if err != nil || qc == nil {
		return cfg, err
	}
	if qc.RetryInterval != nil {
		cfg.RetryInterval = time.Duration(*qc.RetryInterval)
	}
	if qc.MaxRetryInterval != nil {
		cfg.MaxRetryInterval = time.Duration(*qc.MaxRetryInterval)
	}
	if qc.MaxAge != nil {
		cfg.MaxAge = time.Duration(*qc.MaxAge)
	}
	if qc.MaxMessageRate != "" {
		// ParseQueueConfig checked it already.
		cfg.MaxMessageRate, _ = abi.ParseRate(qc.MaxMessageRate)
	}
	if qc.EgressPool != "" {
		// The queue checks the name on each attempt: an unknown pool keeps the message
		// queued with a transient failure that names it.
		cfg.EgressPool = qc.EgressPool
	}
	for _, e := range qc.MXList() {
		cfg.MXList = append(cfg.MXList, route.MXEntry{Name: e.Name, Addr: e.Addr})
	}
	return cfg, nil
}
