// Package cluster joins a node to a fleet of wasmta nodes that share one Redis: the rate
// limits (GCRA in one Lua script per check), the connection limits (leases with a TTL), the
// admin API's rules and a heartbeat per node. Each node keeps its own spool: mail is never
// shared, only the limits and rules that must hold for the whole fleet.
//
// Redis is never on the path of reception: a node whose Redis is away keeps accepting mail,
// and its limits follow the configured policy (fail_open or fail_closed, see Options).
package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options configure a Client ([redis] in the server config).
type Options struct {
	URL      string // redis:// or rediss://, without a password
	Username string // ACL user; "" = default
	Password string // the secret's value
	Cluster  string // key namespace
	Node     string // this node's name, unique in the cluster
	// FailClosed defers deliveries while Redis is away; false (fail_open) enforces local
	// limits scaled by the node count last seen.
	FailClosed  bool
	PoolSize    int
	DialTimeout time.Duration
	Timeout     time.Duration // per command
	// RootCAs verify a rediss:// server's certificate; nil = the system's roots.
	RootCAs *x509.CertPool
	// LeaseTTL is how long a connection lease lives without renewal (lease.go); 0: DefaultLeaseTTL.
	LeaseTTL time.Duration
	Diag     *slog.Logger
}

// Client is this node's handle on the cluster.
type Client struct {
	rdb    *redis.Client
	opt    Options
	prefix string
	// nodes is the number of live nodes the heartbeat saw last (0: not seen yet); fail_open
	// divides shared limits by it while Redis is away.
	nodes atomic.Int64

	health health        // Redis up or away (health.go)
	closed chan struct{} // closed by Close: background loops end
	leases leases        // connection leases held (lease.go)

	closeOnce sync.Once
}

// Open prepares a client. It does no network I/O: a Redis that is down at start does not stop
// the node from starting (limits follow the policy until it is back).
func Open(opt Options) (*Client, error) {
	ro, err := redis.ParseURL(opt.URL)
	if err != nil {
		return nil, fmt.Errorf("redis.url: %w", err)
	}
	if opt.Cluster == "" || opt.Node == "" {
		return nil, fmt.Errorf("cluster: cluster and node names are required")
	}
	if opt.Diag == nil {
		opt.Diag = slog.Default()
	}
	ro.Username, ro.Password = opt.Username, opt.Password
	if ro.TLSConfig != nil { // rediss://: ParseURL set the server name
		ro.TLSConfig.MinVersion = tls.VersionTLS12
		ro.TLSConfig.RootCAs = opt.RootCAs
	}
	if opt.PoolSize > 0 {
		ro.PoolSize = opt.PoolSize
	}
	if opt.DialTimeout > 0 {
		ro.DialTimeout = opt.DialTimeout
	}
	if opt.Timeout > 0 {
		ro.ReadTimeout, ro.WriteTimeout = opt.Timeout, opt.Timeout
	}
	// One try per command: the caller's policy decides what a failure means, and a retry
	// loop inside the client would only stretch the time a delivery waits on a dead Redis.
	ro.MaxRetries = -1
	ro.DialerRetries = 1 // go-redis would otherwise dial 5 times per command (0.4 s to a closed port)
	ro.ClientName = "wasmta:" + opt.Node
	LogLibraryTo(opt.Diag) // outages are reported once, by the callers' breakers and loops
	c := &Client{rdb: redis.NewClient(ro), opt: opt, prefix: "wasmta:" + opt.Cluster + ":", closed: make(chan struct{})}
	c.leases.held, c.leases.done, c.leases.orphans = map[*Lease]struct{}{}, make(chan struct{}), map[string]string{}
	return c, nil
}

// Key is the Redis key for parts, in this cluster's namespace: "wasmta:<cluster>:a:b".
func (c *Client) Key(parts ...string) string { return c.prefix + strings.Join(parts, ":") }

// Node is this node's name.
func (c *Client) Node() string { return c.opt.Node }

// FailClosed reports the on_unavailable policy.
func (c *Client) FailClosed() bool { return c.opt.FailClosed }

// Redis is the underlying client (for the other files of this package and their tests).
func (c *Client) Redis() *redis.Client { return c.rdb }

// NodeCount is the number of live nodes last seen by the heartbeat, at least 1 (this node).
func (c *Client) NodeCount() int {
	return max(1, int(c.nodes.Load()))
}

// setNodeCount records what the heartbeat saw.
func (c *Client) setNodeCount(n int) { c.nodes.Store(int64(n)) }

// Close closes every connection.
func (c *Client) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	c.stopLeases()
	return c.rdb.Close()
}
