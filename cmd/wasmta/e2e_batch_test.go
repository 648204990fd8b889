package main

import (
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

var (
	routerOnce sync.Once
	routerPath string
	routerErr  error
)

// routerWasm builds the first-party router plugin once for this package's tests, next to the
// relay binary (TestMain removes that directory): not in the first caller's TempDir, which is
// gone when that test ends while parallel tests still start relays with the plugin.
func routerWasm(t *testing.T) string {
	t.Helper()
	routerOnce.Do(func() {
		routerPath, routerErr = testutil.BuildGoPlugin(filepath.Dir(relayBin), "./plugins/router", "router")
	})
	if routerErr != nil {
		t.Fatal(routerErr)
	}
	return routerPath
}

const batchZone = `
x.test.      A  127.0.0.4
y.test.      A  127.0.0.4
`

// A transaction to x.test and y.test goes through the router once per recipient domain, so
// each recipient arrives where the rule for its own domain says, not where the first
// recipient's rule says; the client still gets one 250 naming both spool ids.
func TestBatchRouterRoutesEachRecipientByItsDomain(t *testing.T) {
	t.Parallel()
	// The router is built into a directory that must outlive this test: build it first.
	wasm := routerWasm(t)
	e := newEnv(t, batchZone, []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}, `
[[plugins]]
path = "`+wasm+`"
[[plugins.config.rules]]
recipient_domain = "x.test"
queue = "[127.0.0.2]"
[[plugins.config.rules]]
recipient_domain = "y.test"
queue = "[127.0.0.3]"
`)
	c := testutil.Dial(t, e.relay.SMTP)
	defer c.Close()
	c.Hello("client.test")
	rcpts := []string{"a@x.test", "b@Y.test", "c@x.test"}
	code, msg := c.Send("s@sender.test", rcpts, testutil.Message("s@sender.test", "a@x.test", "batch", "hi"))
	if code != 250 || len(strings.Fields(msg)) != 4+len(rcpts) {
		t.Fatalf("%d %s", code, msg)
	}
	for _, r := range rcpts {
		e.relay.WaitLog(recipientIs("Delivery", r), 10*time.Second)
	}
	xs, ys := e.sinks["127.0.0.2"].Messages(), e.sinks["127.0.0.3"].Messages()
	var toX, toY []string
	for _, m := range xs {
		toX = append(toX, m.To...)
	}
	for _, m := range ys {
		toY = append(toY, m.To...)
	}
	slices.Sort(toX)
	if !slices.Equal(toX, []string{"a@x.test", "c@x.test"}) || !slices.Equal(toY, []string{"b@Y.test"}) {
		t.Fatalf("x.test sink got %v, y.test sink got %v", toX, toY)
	}
	if n := e.sinks["127.0.0.4"].Count(); n != 0 {
		t.Fatalf("%d messages went by DNS instead of the rules", n)
	}
	for _, r := range rcpts {
		rec := e.relay.WaitLog(recipientIs("Delivery", r), time.Second)
		want := "[127.0.0.2]"
		if r == "b@Y.test" {
			want = "[127.0.0.3]"
		}
		if rec["queue"] != want {
			t.Errorf("%s: queue %v, want %s", r, rec["queue"], want)
		}
	}
}

// A plugin that refuses y.test recipients (it reads only the first recipient, as most do)
// refuses a transaction to x.test and y.test with its own reply, and nothing of the
// transaction is queued: not even the x.test recipient it would have accepted alone.
func TestBatchRejectOfOneDomainRejectsTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t, batchZone, []string{"127.0.0.4"}, pluginConfig(fixture(t, "rejectdomain")))
	c := testutil.Dial(t, e.relay.SMTP)
	defer c.Close()
	c.Hello("client.test")
	code, msg := c.Send("s@sender.test", []string{"a@x.test", "b@y.test"}, "Subject: x\r\n\r\nhi\r\n")
	if code != 550 || msg != "5.7.1 y.test refused" {
		t.Fatalf("%d %q", code, msg)
	}
	e.relay.WaitLog(recipientIs("Rejection", "a@x.test,b@y.test"), 5*time.Second)
	// A later transaction to x.test alone is accepted and delivered; by then anything of the
	// refused one would have been received and delivered too.
	if code, msg := c.Send("s@sender.test", []string{"later@x.test"}, "Subject: x\r\n\r\nhi\r\n"); code != 250 {
		t.Fatalf("%d %q", code, msg)
	}
	e.relay.WaitLog(recipientIs("Delivery", "later@x.test"), 10*time.Second)
	for _, r := range e.relay.LogRecords() {
		if (r["type"] == "Reception" || r["type"] == "Delivery") && r["recipient"] != "later@x.test" {
			t.Fatalf("refused transaction queued: %v", r)
		}
	}
	if got := e.sinks["127.0.0.4"].Messages(); len(got) != 1 || got[0].To[0] != "later@x.test" {
		t.Fatalf("sink got %+v", got)
	}
}
