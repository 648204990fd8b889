package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Each node registers itself with a heartbeat:
//
//	node:<name>   hash   instance -> random id of the process, info -> what the node says
//	                     about itself (opaque: the app's JSON); it expires after the TTL
//	nodes         zset   name -> end of its registration (Redis's clock, Unix ms)
//
// A node that stops beating (killed, partitioned) drops out of both once its TTL passes; one
// that stops cleanly removes itself at once (Leave). The number of live nodes feeds NodeCount.

// Heartbeat defaults: a beat every second, gone after five missed ones.
const (
	HeartbeatInterval = time.Second
	NodeTTL           = 5 * time.Second
)

// KEYS: node hash, nodes zset; ARGV: name, info, ttl ms, instance.
var beat = redis.NewScript(nowMs + `
local prev = redis.call('HGET', KEYS[1], 'instance') or ''
redis.call('HSET', KEYS[1], 'instance', ARGV[4], 'info', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
return {redis.call('ZCARD', KEYS[2]), prev}
`)

// KEYS: node hash, nodes zset; ARGV: name, instance.
var leave = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'instance') == ARGV[2] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 1
end
return 0
`)

// KEYS: nodes zset; ARGV: the node hash key prefix.
var listNodes = redis.NewScript(nowMs + `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local out = {}
for _, name in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local v = redis.call('HGET', ARGV[1] .. name, 'info')
  if v then
    table.insert(out, name)
    table.insert(out, v)
  end
end
return out
`)

// NodeInfo is one live node: its name and what its last beat said.
type NodeInfo struct {
	Name string
	Info []byte
}

// Beat registers this node for ttl with info and returns the number of live nodes, which it
// also records for NodeCount. instance identifies the process: prev is the instance that held
// the name before this beat ("" when none), so that a caller sees another process beating
// under its name.
func (c *Client) Beat(ctx context.Context, instance string, info []byte, ttl time.Duration) (live int, prev string, err error) {
	res, err := beat.Run(ctx, c.rdb, []string{c.Key("node", c.opt.Node), c.Key("nodes")},
		c.opt.Node, info, ttl.Milliseconds(), instance).Slice()
	if err != nil {
		return 0, "", unavailable("heartbeat", err)
	}
	if len(res) != 2 {
		return 0, "", fmt.Errorf("cluster: heartbeat script answered %d values", len(res))
	}
	n, _ := res[0].(int64)
	prev, _ = res[1].(string)
	c.setNodeCount(int(n))
	return int(n), prev, nil
}

// Leave removes this node's registration, if instance still holds it.
func (c *Client) Leave(ctx context.Context, instance string) error {
	err := leave.Run(ctx, c.rdb, []string{c.Key("node", c.opt.Node), c.Key("nodes")}, c.opt.Node, instance).Err()
	return unavailable("leaving", err)
}

// Nodes lists the live nodes, sorted by name.
func (c *Client) Nodes(ctx context.Context) ([]NodeInfo, error) {
	res, err := listNodes.Run(ctx, c.rdb, []string{c.Key("nodes")}, c.Key("node", "")).Slice()
	if err != nil {
		return nil, unavailable("listing nodes", err)
	}
	out := make([]NodeInfo, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		name, _ := res[i].(string)
		info, _ := res[i+1].(string)
		out = append(out, NodeInfo{Name: name, Info: []byte(info)})
	}
	slices.SortFunc(out, func(a, b NodeInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Heartbeat beats every interval with what info returns, until ctx ends; then it leaves. It
// reports each change between reachable and unreachable to the diagnostics once, not every
// beat, and a second process beating under this node's name.
func (c *Client) Heartbeat(ctx context.Context, interval, ttl time.Duration, info func() []byte) {
	instance := newID()
	t := time.NewTicker(interval)
	defer t.Stop()
	first, down := true, false
	for {
		bctx, cancel := context.WithTimeout(ctx, interval)
		n, prev, err := c.Beat(bctx, instance, info(), ttl)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil && !down:
			down = true
			c.opt.Diag.Warn("cluster heartbeat failed; limits use the node count last seen", "nodes", c.NodeCount(), "err", err)
		case err == nil && down:
			down = false
			c.opt.Diag.Info("cluster heartbeat back", "nodes", n)
		case err == nil && first:
			c.opt.Diag.Info("joined the cluster", "cluster", c.opt.Cluster, "node", c.opt.Node, "nodes", n)
		}
		if err == nil {
			// The first beat may find the instance of this node's previous run (a restart
			// within the TTL); later ones must find their own.
			if !first && prev != "" && prev != instance {
				c.opt.Diag.Error("another process heartbeats under this node's name: redis.node_name must be unique in the cluster", "node", c.opt.Node)
			}
			first = false
		}
		select {
		case <-ctx.Done():
			lctx, cancel := context.WithTimeout(context.Background(), interval)
			_ = c.Leave(lctx, instance)
			cancel()
			return
		case <-t.C:
		}
	}
}
