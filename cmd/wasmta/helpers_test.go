package main

import (
	"context"
	"net"
	"net/textproto"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/control"
	"github.com/wasmta/wasmta/host/testutil"
)

func runBin(dir string, args ...string) (string, error) {
	cmd := exec.Command(relayBin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// quietClient is a raw SMTP client that reports transport errors instead of failing the test:
// for sessions the server is expected to cut.
type quietClient struct {
	conn net.Conn
	tp   *textproto.Conn
}

func dialQuiet(addr string) (*quietClient, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	q := &quietClient{conn: c, tp: textproto.NewConn(c)}
	if _, _, err := q.tp.ReadResponse(220); err != nil {
		c.Close()
		return nil, err
	}
	if _, err := q.cmd("EHLO quiet.test"); err != nil {
		c.Close()
		return nil, err
	}
	return q, nil
}

func (q *quietClient) cmd(line string) (int, error) {
	q.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := q.tp.PrintfLine("%s", line); err != nil {
		return 0, err
	}
	code, _, err := q.tp.ReadResponse(0)
	return code, err
}

// send runs one transaction; a non-nil error means the connection broke.
func (q *quietClient) send(from, to, body string) (int, error) {
	if code, err := q.cmd("MAIL FROM:<" + from + ">"); err != nil || code != 250 {
		return code, err
	}
	if code, err := q.cmd("RCPT TO:<" + to + ">"); err != nil || code != 250 {
		return code, err
	}
	if code, err := q.cmd("DATA"); err != nil || code != 354 {
		return code, err
	}
	w := q.tp.DotWriter()
	if _, err := w.Write([]byte(body)); err != nil {
		return 0, err
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	code, _, err := q.tp.ReadResponse(0)
	return code, err
}

func (q *quietClient) Close() { q.conn.Close() }

// waitQueueEmpty waits until the relay behind control socket sock holds no queued message. Once it is empty no delivery can follow, so
// what the sinks hold then is final: the signal that replaces "sleep and hope nothing else
// arrives" when a test counts duplicates.
func waitQueueEmpty(t testing.TB, sock string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := control.Send(sock, "status")
		if err == nil && resp.Queue.Queued == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue not empty after 30s: %+v (err %v)", resp, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// defaultSock is the control socket of a relay on the default control_socket setting.
func defaultSock(r *testutil.Relay) string { return filepath.Join(r.Dir, "data", "wasmta.sock") }

// killDuringBursts runs rounds of a burst of perRound messages from workers client connections
// and kills the relay (SIGKILL) once sink has taken killAfter more of them, then starts it
// again. msg(round, i) gives message i's envelope and key (its Subject); it returns the keys that
// got 250.
func killDuringBursts(t *testing.T, relay *testutil.Relay, sink *testutil.Sink, rounds, perRound, workers, killAfter int,
	msg func(round, i int) (from, rcpt, key string)) map[string]bool {
	t.Helper()
	var mu sync.Mutex
	accepted := map[string]bool{}
	for round := range rounds {
		before := sink.Count()
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				q, err := dialQuiet(relay.SMTP)
				if err != nil {
					return
				}
				defer q.Close()
				for i := w; i < perRound; i += workers {
					from, rcpt, key := msg(round, i)
					code, err := q.send(from, rcpt, "Subject: "+key+"\r\n\r\nhi\r\n")
					if err != nil {
						return // the relay was killed under us: this one was not accepted
					}
					if code == 250 {
						mu.Lock()
						accepted[key] = true
						mu.Unlock()
					}
				}
			})
		}
		deadline := time.Now().Add(30 * time.Second)
		for sink.Count()-before < killAfter {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the sink got %d messages in 30s", round, sink.Count()-before)
			}
			time.Sleep(time.Millisecond)
		}
		relay.Kill()
		wg.Wait()
		relay.Start()
	}
	return accepted
}

// serveBin runs `wasmta serve` expecting it to fail at start; a serve that is still running
// after the bound is stopped and reported (it started where it should not have).
func serveBin(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, relayBin, append([]string{"serve"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("serve did not fail at start (still running after 60s); output:\n%s", out)
	}
	return string(out), err
}

// checkAndServeFail asserts that `config check` and `serve` both refuse the config at path
// with the same error line, naming want.
func checkAndServeFail(t *testing.T, dir, path, want string) {
	t.Helper()
	checkOut, err := runBin(dir, "config", "check", path)
	if err == nil || !strings.Contains(checkOut, want) {
		t.Fatalf("config check: err=%v output %q, want a failure naming %q", err, checkOut, want)
	}
	serveOut, err := serveBin(t, dir, "--config", path)
	if err == nil || !strings.Contains(serveOut, want) {
		t.Fatalf("serve: err=%v output %q, want a failure naming %q", err, serveOut, want)
	}
	if errLine(checkOut) != errLine(serveOut) {
		t.Fatalf("check and serve disagree:\ncheck: %s\nserve: %s", errLine(checkOut), errLine(serveOut))
	}
}
