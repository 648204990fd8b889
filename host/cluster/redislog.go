package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// go-redis reports what its pool and subscriptions go through (every failed dial, every
// reconnect) with a package-wide logger that writes to stderr: while Redis is away that is a
// few lines a second, for as long as the outage lasts. This package reports each change
// between reachable and unreachable once, at warning level; the library's own lines are kept
// for --log-level debug.

var (
	libraryLog    sync.Once
	libraryTarget atomic.Pointer[slog.Logger]
)

// LogLibraryTo sends go-redis's messages to l at debug level. The library's logger is
// process-wide: the last call names where its lines go (a process runs one node).
func LogLibraryTo(l *slog.Logger) {
	libraryTarget.Store(l)
	libraryLog.Do(func() { redis.SetLogger(libraryLogger{}) })
}

type libraryLogger struct{}

func (libraryLogger) Printf(ctx context.Context, format string, v ...any) {
	if l := libraryTarget.Load(); l != nil {
		l.Debug("redis client", "msg", fmt.Sprintf(format, v...))
	}
}
