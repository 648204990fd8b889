package smtpserver

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// startServer is start with the Server in hand (for tests that shut it down themselves).
func startServer(t *testing.T, mod func(*Options)) (*Server, *recorder, string) {
	t.Helper()
	var opt Options
	rec, _ := start(t, func(o *Options) {
		if mod != nil {
			mod(o)
		}
		opt = *o
	})
	// start's own server is left to its cleanup; this one has the same options.
	opt.Receiver = rec
	s := New(opt)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	s.Serve()
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s, rec, s.Addrs()[0].String()
}

// stuckClient connects, never reads, and sends NOOPs until the server stops reading them
// (its replies fill both socket buffers and its write blocks).
func stuckClient(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	chunk := []byte(strings.Repeat("NOOP\r\n", 64<<10/6))
	for sent := 0; ; sent += len(chunk) {
		if sent > 256<<20 {
			t.Fatal("the server never stopped reading")
		}
		nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := nc.Write(chunk); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nc // the server is stuck writing replies this client does not read
			}
			t.Fatal(err)
		}
	}
}

// A client that sends commands and never reads the replies left the server blocked in a write
// holding the connection's write lock until the write deadline (idle_timeout, default 60 s)
// passed; Shutdown, closing that connection, waited for the lock, long after its own deadline
// (smtp.shutdown_timeout); and it closed connections one after the other, each allowed 10 s to
// send its last replies, so a few such clients multiplied the wait.
func TestShutdownNotHeldBySlowReaders(t *testing.T) {
	s, _, addr := startServer(t, func(o *Options) {
		o.IdleTimeout = 10 * time.Minute
		o.MaxConnections = 100
	})
	for range 4 {
		stuckClient(t, addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { s.Shutdown(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown still running 30 s after its 1 s deadline, held by clients that do not read")
	}
}
