package cluster

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// The library's own lines (a failed dial, each time) go to the diagnostics at debug level,
// not to stderr.
func TestLibraryLogGoesToDiagnostics(t *testing.T) {
	var mu sync.Mutex
	var b strings.Builder
	diag := slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, b: &b}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := Open(Options{URL: "redis://127.0.0.1:1/0", Cluster: "prod", Node: "mta1", Diag: diag})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Redis().Ping(context.Background()).Err(); err == nil {
		t.Fatal("PING to a closed port succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	if got := b.String(); !strings.Contains(got, "level=DEBUG") || !strings.Contains(got, "failed to dial") {
		t.Fatalf("diagnostics: %q", got)
	}
}
