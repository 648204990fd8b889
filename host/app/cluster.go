package app

import (
	"fmt"
	"log/slog"

	"github.com/wasmta/wasmta/host/cluster"
	"github.com/wasmta/wasmta/host/config"
)

// openCluster returns the node's cluster client, or nil without [redis] url (everything local).
// It does no network I/O: a node starts while its Redis is away.
func openCluster(cfg *config.Config, diag *slog.Logger) (*cluster.Client, error) {
	r := cfg.Redis
	if !r.Enabled() {
		return nil, nil
	}
	// Until the shared limits and admin rules are wired in, a [redis] url would be a key that
	// does nothing: refuse it rather than let a fleet believe its limits are global.
	if !clusterReady {
		return nil, fmt.Errorf("configuration key redis.url: cluster mode is not available in this build")
	}
	node := r.NodeName
	if node == "" {
		node = cfg.Hostname
	}
	var password string
	if r.Password != "" {
		password = cfg.Secrets[r.Password].Value()
	}
	return cluster.Open(cluster.Options{
		URL: r.URL, Username: r.Username, Password: password,
		Cluster: r.ClusterName, Node: node, FailClosed: r.OnUnavailable == config.FailClosed,
		PoolSize: r.PoolSize, DialTimeout: r.DialTimeout.D(), Timeout: r.Timeout.D(), Diag: diag,
	})
}

// clusterReady is set once every cluster feature (limits, leases, admin rules) is wired.
const clusterReady = true
