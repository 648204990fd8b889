package testutil

import (
	"fmt"
	"runtime"
	"testing"
)

// fatalTB captures a Fatalf instead of failing the real test. Fatalf ends the
// calling goroutine, as testing.T does, so expectFatal runs f in its own
// goroutine.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// expectFatal runs f with a TB whose Fatalf is captured and returns the fatal
// message, failing t if f did not call Fatalf.
func expectFatal(t *testing.T, f func(tb testing.TB)) string {
	t.Helper()
	tb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(tb)
	}()
	<-done
	if tb.msg == "" {
		t.Fatalf("expected a fatal error, got none")
	}
	return tb.msg
}
