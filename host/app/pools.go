package app

import (
	"github.com/wasmta/wasmta/host/config"
	"github.com/wasmta/wasmta/host/queue"
)

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
