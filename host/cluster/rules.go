package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// The admin API's rules (suspensions, bounce rules) as the cluster shares them. They are
// opaque to this package: an id, a value (the queue's JSON) and an expiry. Redis holds
//
//	rules          hash   id -> value
//	rules:expiry   zset   id -> expiry (Unix ms)
//	rules:epoch    string a random id set when the rule set was first created
//
// and every change is announced on the channel rules:changed. Each script prunes expired
// rules with Redis's own clock, so that nodes whose clocks differ agree on what Redis holds.
//
// The epoch tells a node that Redis lost the rules under it (restarted without persistence,
// flushed): the epoch is then missing or new, SyncRules reports Fresh, and the node seeds the
// rules it still holds back into Redis (SeedRules) instead of dropping them — a Redis restart
// must not lift every suspension of the fleet.

// Key parts of the rules.
const (
	rulesKey     = "rules"
	rulesExpiry  = "rules:expiry"
	rulesEpoch   = "rules:epoch"
	rulesChanged = "rules:changed"
)

// UnavailableError is a cluster operation that could not reach Redis (or Redis refused it):
// the change was not stored anywhere, and the caller may retry later. Its Unavailable method
// lets a caller (the HTTP API's 503) recognise it without importing this package.
type UnavailableError struct {
	Op  string
	Err error
}

func (e *UnavailableError) Error() string {
	return "cluster store (Redis) unavailable: " + e.Op + ": " + e.Err.Error()
}
func (e *UnavailableError) Unwrap() error     { return e.Err }
func (e *UnavailableError) Unavailable() bool { return true }

func unavailable(op string, err error) error {
	if err == nil {
		return nil
	}
	return &UnavailableError{Op: op, Err: err}
}

// nowMs is Redis's clock in Unix milliseconds, for the scripts.
const nowMs = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// prune drops expired rules (KEYS[1] hash, KEYS[2] zset); now must be set.
const prune = `for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
`

// KEYS: hash, zset, channel; ARGV: id, value, expiry ms, message.
var putRule = redis.NewScript(nowMs + prune + `
if tonumber(ARGV[3]) <= now then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('PUBLISH', KEYS[3], ARGV[4])
return 1
`)

// KEYS: hash, zset, channel; ARGV: id, message.
var deleteRule = redis.NewScript(`
local n = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('PUBLISH', KEYS[3], ARGV[2])
return n
`)

// KEYS: hash, zset, epoch; ARGV: the epoch the caller last saw ("" = none), a new epoch.
var syncRules = redis.NewScript(nowMs + prune + `
local ep = redis.call('GET', KEYS[3])
local fresh = 0
if not ep then
  ep = ARGV[2]
  redis.call('SET', KEYS[3], ep)
  fresh = 1
elseif ARGV[1] ~= '' and ep ~= ARGV[1] then
  fresh = 1
end
return {ep, fresh, redis.call('HGETALL', KEYS[1])}
`)

// KEYS: hash, zset, channel; ARGV: message, then id, value, expiry ms for each rule.
var seedRules = redis.NewScript(nowMs + `
local n = 0
for i = 2, #ARGV, 3 do
  if tonumber(ARGV[i+2]) > now and redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i+1]) == 1 then
    redis.call('ZADD', KEYS[2], ARGV[i+2], ARGV[i])
    n = n + 1
  end
end
if n > 0 then redis.call('PUBLISH', KEYS[3], ARGV[1]) end
return n
`)

// StoredRule is one rule as the cluster keeps it.
type StoredRule struct {
	ID      string
	Value   []byte
	Expires time.Time
}

// RuleSet is what SyncRules read.
type RuleSet struct {
	// Epoch identifies this rule set; pass it to the next SyncRules.
	Epoch string
	// Fresh: the rule set is new to the caller (Redis lost it, or it never existed): seed the
	// rules the caller holds with SeedRules, then sync again.
	Fresh bool
	Rules map[string][]byte // by id, expired ones left out
}

// PutRule stores a rule until expires and tells every node. A rule already expired by
// Redis's clock is not stored (and nil is returned: it would have no effect anywhere).
func (c *Client) PutRule(ctx context.Context, id string, v []byte, expires time.Time) error {
	err := putRule.Run(ctx, c.rdb, []string{c.Key(rulesKey), c.Key(rulesExpiry), c.Key(rulesChanged)},
		id, v, expires.UnixMilli(), c.opt.Node+" put "+id).Err()
	return unavailable("storing rule "+id, err)
}

// DeleteRule removes a rule and tells every node; deleting a rule that is not there is not
// an error (it expired, or another node deleted it first).
func (c *Client) DeleteRule(ctx context.Context, id string) error {
	err := deleteRule.Run(ctx, c.rdb, []string{c.Key(rulesKey), c.Key(rulesExpiry), c.Key(rulesChanged)},
		id, c.opt.Node+" delete "+id).Err()
	return unavailable("deleting rule "+id, err)
}

// SyncRules reads every rule in force; epoch is RuleSet.Epoch of the caller's last sync ("" at
// start).
func (c *Client) SyncRules(ctx context.Context, epoch string) (RuleSet, error) {
	res, err := syncRules.Run(ctx, c.rdb, []string{c.Key(rulesKey), c.Key(rulesExpiry), c.Key(rulesEpoch)},
		epoch, newID()).Slice()
	if err != nil {
		return RuleSet{}, unavailable("reading rules", err)
	}
	if len(res) != 3 {
		return RuleSet{}, fmt.Errorf("cluster: rules script answered %d values", len(res))
	}
	rs := RuleSet{Rules: map[string][]byte{}}
	rs.Epoch, _ = res[0].(string)
	fresh, _ := res[1].(int64)
	rs.Fresh = fresh == 1
	kv, _ := res[2].([]any)
	for i := 0; i+1 < len(kv); i += 2 {
		k, _ := kv[i].(string)
		v, _ := kv[i+1].(string)
		rs.Rules[k] = []byte(v)
	}
	if rs.Epoch == "" {
		return RuleSet{}, errors.New("cluster: rules script answered no epoch")
	}
	return rs, nil
}

// SeedRules stores each rule that Redis does not hold (by id) and has not expired, and tells
// every node when it stored any. It returns how many it stored.
func (c *Client) SeedRules(ctx context.Context, rules []StoredRule) (int, error) {
	if len(rules) == 0 {
		return 0, nil
	}
	args := []any{c.opt.Node + " seed"}
	for _, r := range rules {
		args = append(args, r.ID, r.Value, r.Expires.UnixMilli())
	}
	n, err := seedRules.Run(ctx, c.rdb, []string{c.Key(rulesKey), c.Key(rulesExpiry), c.Key(rulesChanged)}, args...).Int()
	return n, unavailable("seeding rules", err)
}

// SubscribeRules calls changed whenever a node announces a rule change, and each time the
// subscription is (re)established (messages sent while it was down are lost: the caller
// syncs then). It runs until ctx ends. The callback must not block.
func (c *Client) SubscribeRules(ctx context.Context, changed func()) {
	ps := c.rdb.Subscribe(ctx, c.Key(rulesChanged))
	defer ps.Close()
	ch := ps.ChannelWithSubscriptions(redis.WithChannelHealthCheckInterval(5 * time.Second))
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
			changed()
		}
	}
}

// newID is 16 random bytes in hex (epochs, heartbeat instances).
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
