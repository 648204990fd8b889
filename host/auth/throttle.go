package auth

import (
	"net/netip"
	"sync"
	"time"
)

// Failure delay defaults: the first failure from a client network in FailureWindow is answered
// at once (a typo costs nothing), the n-th (n >= 2) after min(FirstDelay * 2^(n-2), MaxDelay):
// 1 s, 2 s, 4 s, 8 s, then 16 s each. A network's count is forgotten FailureWindow after its
// last failure. With max_connections parallel sessions a guesser still gets at most one try
// per 16 s per connection, and each waiting try holds one of those connections.
const (
	FirstDelay    = time.Second
	MaxDelay      = 16 * time.Second
	FailureWindow = 15 * time.Minute
	// MaxTracked bounds the memory of the failure table (~100 bytes an entry); when it is full
	// and nothing has expired, an arbitrary entry makes room.
	MaxTracked = 65536
)

// Throttle counts recent AUTH failures per client network: an IPv4 address, or an IPv6 /64
// (one host usually holds a whole /64, RFC 4291 §2.5.1, so counting single IPv6 addresses
// would let it start afresh at will).
type Throttle struct {
	Now func() time.Time

	mu sync.Mutex
	m  map[netip.Prefix]failures
}

type failures struct {
	n    int
	last time.Time
}

// NewThrottle returns an empty table on the real clock.
func NewThrottle() *Throttle { return &Throttle{Now: time.Now, m: map[netip.Prefix]failures{}} }

// Network is the client network addr belongs to, as the relay counts clients (AUTH failures,
// concurrent verifications, connections per client address): the IPv4 address itself, or the
// IPv6 /64 around it.
func Network(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}

// Fail records a failed attempt from addr and returns how long to wait before answering it.
func (t *Throttle) Fail(addr netip.Addr) time.Duration {
	now := t.Now()
	k := Network(addr)
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.m[k]
	if !ok || now.Sub(f.last) > FailureWindow {
		f = failures{}
		if !ok && len(t.m) >= MaxTracked {
			t.makeRoom(now)
		}
	}
	f.n++
	f.last = now
	t.m[k] = f
	return delayFor(f.n)
}

func delayFor(n int) time.Duration {
	if n < 2 {
		return 0
	}
	d := FirstDelay
	for i := 2; i < n && d < MaxDelay; i++ {
		d *= 2
	}
	return min(d, MaxDelay)
}

// makeRoom drops expired entries, or one arbitrary entry when none has expired.
func (t *Throttle) makeRoom(now time.Time) {
	for k, f := range t.m {
		if now.Sub(f.last) > FailureWindow {
			delete(t.m, k)
		}
	}
	if len(t.m) < MaxTracked {
		return
	}
	for k := range t.m {
		delete(t.m, k)
		return
	}
}
