package cluster

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// reserveScript is the shared form of the queue's local limiter (host/queue/rate.go): GCRA with
// reservation semantics. The key holds the theoretical arrival time (TAT) of the next event in
// microseconds of Redis's own clock (TIME), so the nodes' clocks never matter. The script books
// n events, one interval apart, and returns how many microseconds the caller waits before the
// first (0: now). It never refuses: a backlog is spread over exact slots, every node's
// messages taking the next free one.
//
// The key expires just after the TAT: from then on an absent key and the stored TAT mean the
// same thing (no debt), so nothing is lost by expiring it, and a limit that is no longer used
// leaves nothing behind.
//
// KEYS[1] the limit's key; ARGV[1] the interval between events (µs, ≥ 1); ARGV[2] the burst
// (≥ 1); ARGV[3] the events booked (≥ 1).
var reserveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local iv = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local at = tat - (tonumber(ARGV[2]) - 1) * iv
if at < now then at = now end
tat = tat + tonumber(ARGV[3]) * iv
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + 1)
return at - now
`)

// Reserve books n events of the limit "interval between events, bursts of burst" under key
// (a name inside this cluster's namespace), one interval apart, and returns how long the
// caller waits before the first. The bookings are the caller's: each must happen at its time
// or later, or its slot is wasted (the limit is never exceeded). An error means Redis did not
// answer (ErrUnavailable at once while it is marked away); the caller follows FallbackNodes.
func (c *Client) Reserve(ctx context.Context, key string, interval time.Duration, burst uint64, n int) (time.Duration, error) {
	iv := max(interval.Microseconds(), 1)
	burst, n = max(burst, 1), max(n, 1)
	var us int64
	err := c.do(ctx, true, func(ctx context.Context) error {
		var err error
		us, err = reserveScript.Run(ctx, c.rdb, []string{c.Key("rate", key)}, iv, burst, n).Int64()
		return err
	})
	if err != nil {
		return 0, err
	}
	return time.Duration(us) * time.Microsecond, nil
}
