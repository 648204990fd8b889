package app

import (
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/spool"
	"github.com/wasmta/wasmta/host/testutil"
)

// Mail found in the spool at start waits for its due time (not attempted early), the admin
// view shows its whole record although the queue read only its scheduling part, and when it
// comes due it is delivered with the spooled envelope and body.
func TestRecoveredMessageWaitsAndIsShownWhole(t *testing.T) {
	port, sinks := testutil.StartSinks(t, "127.0.0.2")
	dns := testutil.StartDNS(t, zone)
	cfg := testConfig(t, t.TempDir(), dns.Addr, port, "")
	sp, err := spool.Open(cfg.Spool.Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	later := &message.Message{ID: message.NewID(now), Sender: "s@x.test", Recipient: "later@example.com", Queue: "example.com",
		Created: now.Add(-time.Hour), Due: now.Add(time.Hour), Attempts: 2, Protocol: "ESMTP", Meta: map[string]string{"k": "v"}}
	due := &message.Message{ID: message.NewID(now.Add(time.Millisecond)), Sender: "s@x.test", Recipient: "due@example.com",
		Queue: "example.com", Created: now, Due: now, Attempts: 1, Protocol: "ESMTP"}
	if err := sp.Put([]*message.Message{later}, []byte("Subject: later\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := sp.Put([]*message.Message{due}, []byte("Subject: due\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	sp.Close()

	a := startApp(t, cfg, nil)
	got := sinks[0].WaitCount(t, 1, 10*time.Second)
	if got[0].To[0] != "due@example.com" || !strings.Contains(string(got[0].Data), "Subject: due") {
		t.Fatalf("delivered %v", got[0])
	}
	q, ok := a.queue.Inspect(later.ID)
	if !ok || q.Sender != "s@x.test" || q.Recipient != "later@example.com" || q.Meta["k"] != "v" || q.Attempts != 2 ||
		!q.Due.Equal(later.Due) || q.Protocol != "ESMTP" {
		t.Fatalf("inspect of the waiting message: %+v, %v", q, ok)
	}
	if n := len(sinks[0].Messages()); n != 1 {
		t.Fatalf("%d messages delivered; the one due in an hour was attempted early", n)
	}
}
