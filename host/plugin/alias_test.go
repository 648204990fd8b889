package plugin

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/wasmta/wasmta/abi"
)

// What a hook staged reaches the message as the texts it passed, although the guest then
// overwrote them in its memory and staged more (several arena chunks); and nothing of one
// message (staged meta, last_error) shows in the next, which gets the pooled run state,
// with messages on several goroutines at once (run with -race).
func TestStagedTextsAreTheHostsOwn(t *testing.T) {
	c := NewChain(mustLoad(t, "alias"))
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				m := testMessage()
				if _, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m); err != nil {
					t.Error(err)
					return
				}
				if m.Meta["k1"] != "original-value" || m.Meta["probe"] != "original-value" || m.Meta["aA"] != strings.Repeat("v", 40) || len(m.Meta) != 27 {
					t.Errorf("meta %v", m.Meta)
					return
				}
				want := "X-Probe: original-value\r\n" + strings.Replace(string(testMessage().Data), "\r\n\r\n", "\r\nX-Probe: original-value\r\n\r\n", 1)
				if string(m.Data) != want {
					t.Errorf("data %q, want %q", m.Data, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}
