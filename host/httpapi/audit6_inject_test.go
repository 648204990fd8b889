package httpapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/plugin"
)

// heldBytes follows the generated messages a request holds: the hook sees each one as it is
// generated, the receiver each one as it is spooled.
type heldBytes struct {
	mu         sync.Mutex
	held, peak int64
}

func (h *heldBytes) add(n int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held += n
	h.peak = max(h.peak, h.held)
}

type generatedCounter struct{ h *heldBytes }

func (p generatedCounter) Active() bool { return true }
func (p generatedCounter) MessageHook(_ context.Context, _ string, m *plugin.Message) (plugin.Outcome, error) {
	p.h.add(int64(len(m.Data)))
	return plugin.Outcome{}, nil
}

type spooledCounter struct {
	Receiver
	h *heldBytes
}

func (r spooledCounter) Submit(msgs []*message.Message, body []byte) error {
	err := r.Receiver.Submit(msgs, body)
	r.h.add(-int64(len(body)))
	return err
}

func manyRecipients(n int, content string) string {
	var b strings.Builder
	b.WriteString(`{"envelope_sender":"s@sender.test","template_dialect":"Static","recipients":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"email":"r%d@example.com"}`, i)
	}
	fmt.Fprintf(&b, `],"content":%q}`, content)
	return b.String()
}

// Every recipient's message was generated and held in memory before the first was spooled, so
// one request within max_request_size (2 MiB) could make the relay hold its content times its
// recipients: 1 MiB of content and 50,000 short addresses are 50 GiB, and the process dies.
// Messages are now generated and spooled a window (spoolWindow bytes) at a time.
func TestInjectHoldsAWindowNotTheWholeRequest(t *testing.T) {
	h := &heldBytes{}
	ts := startServer(t, func(o *Options) {
		o.MaxRequestSize = 1 << 20
		o.Policy = generatedCounter{h}
	})
	ts.srv.opt.Receiver = spooledCounter{Receiver: ts.rcv, h: h}
	const n, size = 600, 64 << 10 // 37.5 MiB in all
	content := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 78)+"\r\n", size/80)
	r := ts.inject(manyRecipients(n, content))
	if r.SuccessCount != n || r.FailCount != 0 {
		t.Fatalf("%d spooled, %d failed: %v", r.SuccessCount, r.FailCount, r.Errors[:min(3, len(r.Errors))])
	}
	if got := ts.count(); got != n {
		t.Fatalf("%d in the spool, want %d", got, n)
	}
	if limit := int64(spoolWindow + 2*size); h.peak > limit {
		t.Fatalf("the request held %d MiB of generated messages at once (all %d of them); want at most %d MiB",
			h.peak>>20, n, limit>>20)
	}
}

// budgetGuard has room for budget bytes in all.
type budgetGuard struct {
	mu     sync.Mutex
	budget int64
}

func (g *budgetGuard) Room(n int64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if n > g.budget {
		return errors.New("only 3% free")
	}
	g.budget -= n
	return nil
}

// When the spool runs short after part of a large request is spooled, the rest of its
// recipients fail with 452 4.3.1 (the client retries them); what was spooled stays, and the
// answer says which recipients failed.
func TestInjectSpaceRunsOutMidway(t *testing.T) {
	const n, size = 600, 64 << 10
	ts := startServer(t, func(o *Options) {
		o.MaxRequestSize = 1 << 20
		o.Guard = &budgetGuard{budget: spoolWindow + 4*size} // the first window, not the second
	})
	content := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 78)+"\r\n", size/80)
	r := ts.inject(manyRecipients(n, content))
	if r.SuccessCount == 0 || r.FailCount == 0 || r.SuccessCount+r.FailCount != n {
		t.Fatalf("%d spooled, %d failed", r.SuccessCount, r.FailCount)
	}
	if !strings.Contains(r.Errors[0], "452 4.3.1") || r.FailedRecipients[0] != fmt.Sprintf("r%d@example.com", r.SuccessCount) {
		t.Fatalf("first failure %q (%s)", r.Errors[0], r.FailedRecipients[0])
	}
	if got := ts.count(); got != r.SuccessCount {
		t.Fatalf("%d in the spool, %d reported spooled", got, r.SuccessCount)
	}
	rejections := 0
	for _, rec := range ts.records() {
		if rec["type"] == "Rejection" {
			rejections++
		}
	}
	if rejections != r.FailCount {
		t.Fatalf("%d Rejection records for %d failed recipients", rejections, r.FailCount)
	}
}
