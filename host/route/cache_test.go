package route

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Messages for one destination are dispatched together (a burst of them, or every message of
// a busy domain when its answers expire): one question goes to the DNS server, and the others
// wait for its answer. Each once asked on its own, so a cache miss under load sent as many
// identical queries as there were messages in flight, to a resolver that may rate-limit us.
func TestResolveMissAsksOnce(t *testing.T) {
	srv := newTestDNS(t, testZone)
	r, _ := newTestResolver(t, srv)
	const n = 16
	release := srv.Hold("pref.test")
	defer release()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := r.Resolve(context.Background(), "pref.test", nil); err != nil {
				t.Error(err)
			}
		})
	}
	// The first question's answer is held while the others come: all n questions arrive
	// when each Resolve asks on its own; when they wait for the first, only it does, and
	// the wait is only there to let them pile up (a late one finds the answer cached).
	for end := time.Now().Add(500 * time.Millisecond); srv.Asked("pref.test") < n && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
	release()
	wg.Wait()
	wantQueries(t, srv, "pref.test. MX",
		"mx1.pref.test. A", "mx1.pref.test. AAAA", "mx2.pref.test. A", "mx2.pref.test. AAAA",
		"backup.pref.test. A", "backup.pref.test. AAAA")
}
