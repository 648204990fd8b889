package cluster

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultLeaseTTL is how long a connection lease lives without renewal (redis.lease_ttl).
const DefaultLeaseTTL = 10 * time.Second

// A connection limit shared by the cluster is a sorted set per limit: one member per open
// connection ("<node>:<n>"), scored by the time (Redis's clock, ms) its lease expires. A
// holder renews its leases every TTL/3 while the connections live and removes them when they
// close; a node that dies (kill -9, a lost network) stops renewing, and its members are
// dropped by the next acquisition after they expire, so its connections are free again within
// the TTL. The set itself expires a TTL after the last renewal: an unused limit leaves nothing.

// acquireScript: KEYS[1] the set; ARGV[1] the limit, ARGV[2] the TTL (ms), ARGV[3] the member.
// Returns 1 when the lease was taken, 0 when limit leases are held.
var acquireScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
`)

// renewScript renews many leases in one call: KEYS are the sets, ARGV[1] the TTL (ms), and
// ARGV[i+1] the member in KEYS[i]. Returns one flag per lease: 1 renewed, 0 lost (it expired
// or was removed: another holder may have its place, so it must not be brought back).
var renewScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local out = {}
for i, k in ipairs(KEYS) do
  local s = redis.call('ZSCORE', k, ARGV[i + 1])
  if s and tonumber(s) > now then
    redis.call('ZADD', k, now + ttl, ARGV[i + 1])
    if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end
    out[i] = 1
  else
    if s then redis.call('ZREM', k, ARGV[i + 1]) end
    out[i] = 0
  end
end
return out
`)

// renewBatch bounds the leases renewed by one script call (one call blocks Redis meanwhile).
const renewBatch = 256

// Lease is one connection's place under a shared connection limit.
type Lease struct {
	c           *Client
	key, member string
	confirmed   atomic.Int64 // unix ns when Redis last confirmed it
	lost        atomic.Bool
	released    atomic.Bool
}

// leases are the leases this node holds, renewed by one goroutine.
type leases struct {
	mu    sync.Mutex
	held  map[*Lease]struct{}
	seq   atomic.Int64
	start sync.Once
	stop  sync.Once
	done  chan struct{}
	wg    sync.WaitGroup
	// orphans are members that may be in Redis with no connection behind them: an Acquire
	// that failed (a timed-out command is still run by a Redis that was only stalled) and a
	// Release that did not reach Redis. Left alone they would keep their places taken, on
	// every node, for up to a whole TTL after Redis answers again; they are removed as soon
	// as it does (markUp) and at every renewal round. member -> key, under mu.
	orphans map[string]string
}

func (c *Client) leaseTTL() time.Duration {
	if c.opt.LeaseTTL > 0 {
		return c.opt.LeaseTTL
	}
	return DefaultLeaseTTL
}

// Acquire takes one of the limit leases under key (a name inside this cluster's namespace).
// It returns nil, nil when limit leases are held already (the caller waits and tries again),
// and an error when Redis did not answer (the caller follows FallbackNodes). Release the lease
// when the connection closes.
func (c *Client) Acquire(ctx context.Context, key string, limit int) (*Lease, error) {
	c.leases.start.Do(c.startRenewer)
	l := &Lease{c: c, key: c.Key("conns", key), member: c.opt.Node + ":" + strconv.FormatInt(c.leases.seq.Add(1), 10)}
	var ok int64
	// The lease runs from before the request: Redis starts its TTL later than that, so this
	// node never believes in a lease Redis has already dropped.
	asked := time.Now().UnixNano()
	err := c.do(ctx, true, func(ctx context.Context) error {
		var err error
		ok, err = acquireScript.Run(ctx, c.rdb, []string{l.key}, limit, c.leaseTTL().Milliseconds(), l.member).Int64()
		return err
	})
	if err != nil {
		c.orphan(l.key, l.member)
		return nil, err
	}
	if ok == 0 {
		return nil, nil
	}
	l.confirmed.Store(asked)
	c.leases.mu.Lock()
	c.leases.held[l] = struct{}{}
	c.leases.mu.Unlock()
	return l, nil
}

// Lost reports that the lease no longer counts in Redis (it expired, or no renewal reached
// Redis for a whole TTL): another node may have its place, so the connection should close
// after its current message.
func (l *Lease) Lost() bool {
	return l.lost.Load() || time.Since(time.Unix(0, l.confirmed.Load())) > l.c.leaseTTL()
}

// Release gives the place back at once. When Redis does not answer, the lease expires
// within the TTL instead. Safe to call more than once.
func (l *Lease) Release() {
	if l.released.Swap(true) {
		return
	}
	c := l.c
	c.leases.mu.Lock()
	delete(c.leases.held, l)
	c.leases.mu.Unlock()
	if l.lost.Load() {
		return // gone already; removing it again could remove nothing but costs a round trip
	}
	if err := c.do(context.Background(), false, func(ctx context.Context) error {
		return c.rdb.ZRem(ctx, l.key, l.member).Err()
	}); err != nil {
		c.orphan(l.key, l.member)
	}
}

// orphan records a member that may hold a place in Redis with no connection behind it.
func (c *Client) orphan(key, member string) {
	c.leases.mu.Lock()
	c.leases.orphans[member] = key
	c.leases.mu.Unlock()
}

// dropOrphans removes the orphaned members from Redis (one pipeline). A command a stalled
// Redis received before it stopped answering runs before any sent after it answers again
// (one thread, each connection's input in order, the old ones first), so the removal made
// once Redis is back comes after the Acquire it undoes. Members that could not be removed
// are kept for the next round; each expires within the TTL anyway.
func (c *Client) dropOrphans() {
	c.leases.mu.Lock()
	if len(c.leases.orphans) == 0 {
		c.leases.mu.Unlock()
		return
	}
	orphans := make(map[string]string, len(c.leases.orphans))
	for m, k := range c.leases.orphans {
		orphans[m] = k
	}
	c.leases.mu.Unlock()
	err := c.do(context.Background(), false, func(ctx context.Context) error {
		_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for m, k := range orphans {
				p.ZRem(ctx, k, m)
			}
			return nil
		})
		return err
	})
	if err != nil {
		return
	}
	c.leases.mu.Lock()
	for m := range orphans {
		delete(c.leases.orphans, m)
	}
	c.leases.mu.Unlock()
}

// Leases is how many leases this node holds.
func (c *Client) Leases() int {
	c.leases.mu.Lock()
	defer c.leases.mu.Unlock()
	return len(c.leases.held)
}

func (c *Client) startRenewer() {
	c.leases.wg.Add(1)
	go func() {
		defer c.leases.wg.Done()
		t := time.NewTicker(c.leaseTTL() / 3)
		defer t.Stop()
		for {
			select {
			case <-c.leases.done:
				return
			case <-t.C:
				c.dropOrphans()
				c.renew()
			}
		}
	}()
}

// renew renews every lease held, renewBatch per script call.
func (c *Client) renew() {
	c.leases.mu.Lock()
	all := make([]*Lease, 0, len(c.leases.held))
	for l := range c.leases.held {
		all = append(all, l)
	}
	c.leases.mu.Unlock()
	for len(all) > 0 {
		n := min(len(all), renewBatch)
		batch := all[:n]
		all = all[n:]
		keys := make([]string, n)
		args := make([]any, n+1)
		args[0] = c.leaseTTL().Milliseconds()
		for i, l := range batch {
			keys[i], args[i+1] = l.key, l.member
		}
		var flags []int64
		at := time.Now().UnixNano()
		err := c.do(context.Background(), false, func(ctx context.Context) error {
			var err error
			flags, err = renewScript.Run(ctx, c.rdb, keys, args...).Int64Slice()
			return err
		})
		if err != nil {
			return // Redis is away: the leases run out unless a later round reaches it
		}
		for i, l := range batch {
			if i < len(flags) && flags[i] == 1 {
				l.confirmed.Store(at)
			} else {
				l.lost.Store(true)
			}
		}
	}
}

// stopLeases ends the renewer (Close). The leases still held expire within the TTL.
func (c *Client) stopLeases() {
	c.leases.stop.Do(func() { close(c.leases.done) })
	c.leases.wg.Wait()
}
