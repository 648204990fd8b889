package queue

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/route"
)

// failingConfigs serves cfg until fail is set, then fails (a plugin whose get_queue_config
// errors).
type failingConfigs struct {
	cfg  Config
	fail atomic.Bool
}

func (f *failingConfigs) QueueConfig(context.Context, string, route.Components) (Config, error) {
	if f.fail.Load() {
		return Config{}, errors.New("get_queue_config failed")
	}
	return f.cfg, nil
}

// A message that waited for its queue's max_message_rate and then ran out of time (the queue
// config failed at its slot, and the server's defaults gave it no time left) leaves nothing
// behind in the slots kept for waiting messages: each message that ended so leaked one entry.
func TestThrottledThenExpiredForgetsItsSlot(t *testing.T) {
	src := &failingConfigs{cfg: Config{RetryInterval: time.Minute, MaxAge: week, MaxMessageRate: rate(t, "1/s")}}
	h := newHarness(t, Config{RetryInterval: time.Minute, MaxAge: time.Second}, func(o *Options) {
		o.Configs = src
		o.RefreshInterval = time.Millisecond
	})
	h.submit(2)
	eventually(t, func() bool { return h.deliveredCount() == 1 && h.m.Stats().Throttled == 1 }, "one delivered, one waiting for its slot")
	src.fail.Store(true)
	h.clock.Advance(time.Second)
	eventually(t, func() bool { return len(h.records("Expiration", "")) == 1 }, "the second expired")
	h.m.slotsMu.Lock()
	defer h.m.slotsMu.Unlock()
	if len(h.m.slots) != 0 {
		t.Fatalf("slots left behind: %v", h.m.slots)
	}
}
