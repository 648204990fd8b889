package app

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"time"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/cluster"
	"github.com/wasmta/wasmta/host/config"
	"github.com/wasmta/wasmta/host/metrics"
	"github.com/wasmta/wasmta/host/queue"
)

// openCluster returns the node's cluster client, or nil without [redis] url (everything local).
// It does no network I/O: a node starts while its Redis is away.
func openCluster(cfg *config.Config, diag *slog.Logger) (*cluster.Client, error) {
	r := cfg.Redis
	if !r.Enabled() {
		return nil, nil
	}
	node := r.NodeName
	if node == "" {
		node = cfg.Hostname
	}
	var password string
	if r.Password != "" {
		password = cfg.Secrets[r.Password].Value()
	}
	var roots *x509.CertPool
	if r.TLSCAFile != "" {
		var err error
		if roots, err = config.LoadCAFile(r.TLSCAFile); err != nil {
			return nil, fmt.Errorf("configuration key redis.tls_ca_file: %w", err)
		}
	}
	return cluster.Open(cluster.Options{
		URL: r.URL, Username: r.Username, Password: password,
		Cluster: r.ClusterName, Node: node, FailClosed: r.OnUnavailable == config.FailClosed,
		PoolSize: r.PoolSize, DialTimeout: r.DialTimeout.D(), Timeout: r.Timeout.D(),
		LeaseTTL: r.LeaseTTL.D(), RootCAs: roots, Diag: diag,
	})
}

// sharedLimits adapts the cluster client to what the queue needs from it; nil without
// [redis] (every limit local).
func sharedLimits(c *cluster.Client) queue.SharedLimits {
	if c == nil {
		return nil
	}
	return clusterLimits{c}
}

type clusterLimits struct{ c *cluster.Client }

func (s clusterLimits) Reserve(ctx context.Context, key string, r abi.Rate, n int) (time.Duration, error) {
	return s.c.Reserve(ctx, key, r.Interval(), r.Burst, n)
}

func (s clusterLimits) Acquire(ctx context.Context, key string, limit int) (queue.Lease, error) {
	l, err := s.c.Acquire(ctx, key, limit)
	if l == nil { // a nil *cluster.Lease must not become a non-nil queue.Lease
		return nil, err
	}
	return l, nil
}

func (s clusterLimits) FallbackNodes() int { return s.c.FallbackNodes() }

// clusterState is the metrics source for the cluster client; nil without [redis].
func clusterState(c *cluster.Client) func() metrics.ClusterState {
	if c == nil {
		return nil
	}
	return func() metrics.ClusterState {
		st := c.Stats()
		return metrics.ClusterState{Up: st.Up, Errors: st.Errors, Fallbacks: st.Fallbacks, Policy: st.Policy, Leases: c.Leases()}
	}
}
