package plugin

import (
	"context"
	"strings"
	"testing"

	"github.com/wasmta/wasmta/abi"
)

// A table's entries are host memory that max_memory does not count: table.grow past the
// host's table limit must fail for the guest (-1), as memory.grow does past max_memory.
func TestTableGrowIsCapped(t *testing.T) {
	c := NewChain(mustLoad(t, "tablegrow"))
	if _, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, testMessage()); err != nil {
		t.Fatalf("table.grow by 4 Mi entries succeeded (the hook returned non-zero): %v", err)
	}
}

// A module whose tables alone would take more than the host's table limit is refused at load.
func TestHugeTableRefused(t *testing.T) {
	_, err := load(t, "bigtable", nil)
	if err == nil || !strings.Contains(err.Error(), "table") {
		t.Fatalf("a table of 100 Mi entries loaded: %v", err)
	}
}
