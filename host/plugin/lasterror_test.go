package plugin

import (
	"context"
	"fmt"
	"testing"

	"github.com/wasmta/wasmta/abi"
)

// last_error gives the guest the exact text of the host's last refusal: nothing before the
// first, and the name the guest passed even after the guest overwrote it in its memory (the
// text may be built only when read, but from the host's own copy). After a NotFound it says
// what was not found (ABI.md: after a negative result), not what an earlier call was refused for.
func TestLastErrorText(t *testing.T) {
	c := NewChain(mustLoad(t, "lasterror"))
	m := testMessage()
	if _, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"err0": "",
		"err1": "header X-Bad: CR or LF in the value (header injection refused)",
		"err2": fmt.Sprintf(`meta key "bad key!": use 1-%d of A-Z a-z 0-9 _ - .`, abi.MaxMetaKey),
		"err3": "reject code 200: must be 4xx or 5xx",
		"err4": "get_meta: the message has no meta key by that name",
		"err5": "get_header: the message has no such header field (at that index)",
		"err6": "get_recipient: no recipient at that index",
	}
	for k, v := range want {
		if got, ok := m.Meta[k]; !ok || got != v {
			t.Errorf("meta %s = %q (set: %v), want %q", k, got, ok, v)
		}
	}
}

// Host functions find the call's state when the caller's context can end too (the call then
// runs under that context, not the instance's): the same effects as under context.Background.
func TestHostCallsUnderCancellableContext(t *testing.T) {
	c := NewChain(mustLoad(t, "meta"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	want := testMessage()
	if _, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, want); err != nil {
		t.Fatal(err)
	}
	m := testMessage()
	if _, err := c.MessageHook(ctx, abi.HookSMTPServerMessageReceived, m); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(m.Meta) != fmt.Sprint(want.Meta) || string(m.Data) != string(want.Data) || len(m.Meta) <= 1 {
		t.Fatalf("under a cancellable context: meta %v data %q; want meta %v data %q", m.Meta, m.Data, want.Meta, want.Data)
	}
}
