package app

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

// loadPlugins loads every configured plugin in order; any failure stops start-up with the
// plugin's precise error.
func loadPlugins(ctx context.Context, h *plugin.Host, cfgs []config.PluginConfig) (*plugin.Chain, error) {
	c := plugin.NewChain()
	for i, pc := range cfgs {
		spec, err := pluginSpec(pc)
		if err != nil {
			c.Close(ctx)
			return nil, fmt.Errorf("configuration key plugins[%d].config: %w", i, err)
		}
		p, err := h.Load(ctx, spec)
		if err != nil {
			c.Close(ctx)
			return nil, err
		}
		c.Set(append(c.Plugins(), p))
	}
	return c, nil
}

func pluginSpec(pc config.PluginConfig) (plugin.Spec, error) {
	conf := pc.Config
	if conf == nil {
		conf = map[string]any{}
	}
	js, err := json.Marshal(conf)
	if err != nil {
		return plugin.Spec{}, err
	}
	return plugin.Spec{
		Path:      pc.Path,
		Config:    js,
		MaxMemory: int64(pc.MaxMemory),
		Timeout:   pc.Timeout.D(),
		PoolSize:  pc.PoolSize,
	}, nil
}

// pluginConfigs is the queue's ConfigSource: the plugins' get_queue_config over the server's
// [queue] defaults.
type pluginConfigs struct {
	chain    *plugin.Chain
	defaults queue.Config
}

func (s pluginConfigs) QueueConfig(ctx context.Context, name string, c route.Components) (queue.Config, error) {
	cfg := s.defaults
	qc, _, err := s.chain.QueueConfig(ctx, plugin.QueueInput{
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

// egressPools is the queue's view of [egress_pool.NAME]: each entry's source and weight.
func egressPools(cfg *config.Config) map[string]queue.Pool {
	out := make(map[string]queue.Pool, len(cfg.EgressPools))
	for name, p := range cfg.EgressPools {
		var q queue.Pool
		for _, e := range p.Entries {
			q = append(q, queue.PoolEntry{Source: e.Name, Weight: e.WeightOrDefault()})
		}
		out[name] = q
	}
	return out
}
