package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// TestBDATDelivery: a next hop that offers CHUNKING gets the message as one BDAT chunk (RFC
// 3030), with the same octets a next hop without it gets by DATA, dot-stuffed lines and 8-bit
// text included.
func TestBDATDelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "")
	sink := e.sinks["127.0.0.4"]
	text := ".leading dot\r\n.\r\n..two dots\r\ncafé\r\n" + strings.Repeat("line\r\n", 20000) // 120 KiB
	send := func(to string) []byte {
		t.Helper()
		c := testutil.Dial(t, e.relay.SMTP)
		defer c.Close()
		c.Hello("client.test")
		body := testutil.Message("a@sender.test", to, "chunks", text)
		if code, msg := c.Send("a@sender.test", []string{to}, body); code != 250 {
			t.Fatalf("%d %s", code, msg)
		}
		return []byte(body)
	}
	sent := send("chunked@implicit.test")
	got := sink.WaitCount(t, 1, 10*time.Second)[0]
	// The relay puts its Received header on top; everything after it is the client's message.
	if !got.Chunked || !bytes.HasSuffix(got.Data, sent) || !bytes.HasPrefix(got.Data, []byte("Received: ")) || got.Body != "8BITMIME" {
		t.Fatalf("over BDAT: chunked %v, BODY=%q, %d octets for %d sent:\n%.300s", got.Chunked, got.Body, len(got.Data), len(sent), got.Data)
	}
	// The same through a next hop without CHUNKING: DATA, and the same octets after the
	// Received header.
	sink.SetBehavior(testutil.Behavior{Without: []string{"CHUNKING"}})
	if err := e.relay.Stop(); err != nil { // a new connection, which sees the EHLO reply without CHUNKING
		t.Fatal(err)
	}
	e.relay.Start()
	sent = send("data@implicit.test")
	plain := sink.WaitCount(t, 2, 10*time.Second)[1]
	if plain.Chunked || !bytes.HasSuffix(plain.Data, sent) {
		t.Fatalf("over DATA: chunked %v, %d octets for %d sent", plain.Chunked, len(plain.Data), len(sent))
	}
	_, afterBDAT, _ := bytes.Cut(got.Data, []byte("\r\n\r\n"))
	_, afterDATA, _ := bytes.Cut(plain.Data, []byte("\r\n\r\n"))
	if !bytes.Equal(afterBDAT, afterDATA) {
		t.Fatal("bodies differ between BDAT and DATA")
	}
}

// TestBDATRefused: a refusal of the BDAT chunk means what a refusal at the end of DATA means
// — a 5xx bounces the message, a 4xx retries it — and the log records name "." as the command
// the reply answered, as before.
func TestBDATRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, "[queue]\nretry_interval = \"1s\"\nmax_retry_interval = \"1s\"\n")
	sink := e.sinks["127.0.0.4"]
	sink.SetBehavior(testutil.Behavior{Mode: testutil.PermFail, At: "DATA", Code: 554, Text: "content refused"})
	e.send("a@sender.test", "refused@implicit.test", "bdat 5xx")
	rec := e.relay.WaitLog(recipientIs("Bounce", "refused@implicit.test"), 10*time.Second)
	if testutil.Code(rec) != 554 || content(rec) != "content refused" || rec["response"].(map[string]any)["command"] != "." {
		t.Fatalf("Bounce record: %v", rec)
	}
	sink.SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "DATA", Code: 451, Text: "try later", Times: 1})
	e.send("a@sender.test", "later@implicit.test", "bdat 4xx")
	rec = e.relay.WaitLog(recipientIs("TransientFailure", "later@implicit.test"), 10*time.Second)
	if testutil.Code(rec) != 451 || content(rec) != "try later" || rec["response"].(map[string]any)["command"] != "." {
		t.Fatalf("TransientFailure record: %v", rec)
	}
	e.relay.WaitLog(recipientIs("Delivery", "later@implicit.test"), 15*time.Second)
	msgs := sink.Messages()
	if len(msgs) != 1 || msgs[0].To[0] != "later@implicit.test" || !msgs[0].Chunked {
		t.Fatalf("sink got %+v", msgs)
	}
}

// BenchmarkRelayPerMessage is the shape of docs/bench/peers.sh inside the test harness: one
// 4 KiB message per SMTP session (as smtp-source sends by default), 20 sessions at once, the
// real binary delivering to a sink on loopback that offers CHUNKING ("bdat") or does not
// ("data"). It reports the relay's CPU per message from /proc, end to end (the queue drained).
//
//	go test -run=^$ -bench=RelayPerMessage -benchtime=2000x ./cmd/wasmta/
//
// For A/B runs of two builds in one window, WASMTA_BENCH_BIN names the binary to run instead
// of the one built from this tree; WASMTA_BENCH_PROFILE makes the relay write a CPU profile
// there; WASMTA_BENCH_STRACE writes `strace -c -f` of the timed part there.
func BenchmarkRelayPerMessage(b *testing.B) {
	for _, mode := range []string{"bdat", "data"} {
		b.Run(mode, func(b *testing.B) {
			var opts []string
			if mode == "data" {
				opts = []string{"CHUNKING"}
			}
			benchRelay(b, opts)
		})
	}
}

func benchRelay(b *testing.B, without []string) {
	port, sinks := testutil.StartSinks(b, "127.0.0.4")
	sinks[0].SetBehavior(testutil.Behavior{Without: without})
	dns := testutil.StartDNS(b, zone)
	dir := b.TempDir()
	cfg, smtpAddr := testutil.RelayConfig(b, dir, testutil.DeliveryConfig(dns.Addr, port))
	// The benchmark's relay keeps its connections to the sink like a production relay.
	cfg = strings.Replace(cfg, `idle_timeout = "200ms"`, `idle_timeout = "10s"`, 1)
	bin := relayBin
	if v := os.Getenv("WASMTA_BENCH_BIN"); v != "" {
		bin = v
	}
	if p := os.Getenv("WASMTA_BENCH_PROFILE"); p != "" {
		// A wrapper adds the flags: --log-level info beats the debug level StartRelay asks for,
		// as in production.
		wrapper := dir + "/wasmta-prof"
		script := fmt.Sprintf("#!/bin/sh\nexec %q \"$@\" --log-level info --cpu-profile %q\n", bin, p)
		if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
			b.Fatal(err)
		}
		bin = wrapper
	}
	relay := testutil.StartRelay(b, bin, dir, cfg, smtpAddr)
	sock := defaultSock(relay)
	body := "From: a@sender.test\r\nTo: r@implicit.test\r\nSubject: bench\r\n\r\n" +
		strings.Repeat(strings.Repeat("x", 62)+"\r\n", 4096/64)
	const sessions = 20
	b.ResetTimer()
	var trace *exec.Cmd
	if p := os.Getenv("WASMTA_BENCH_STRACE"); p != "" {
		trace = exec.Command("strace", "-c", "-f", "-o", p, "-p", strconv.Itoa(relay.Process().Pid))
		if err := trace.Start(); err != nil {
			b.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond) // strace attaches to every thread before the load starts
	}
	start, cpu := time.Now(), relay.CPUTime()
	run(b.N, sessions, func(_, _ int) {
		c := testutil.Dial(b, smtpAddr)
		c.Hello("bench.test")
		if code, msg := c.Send("a@sender.test", []string{"r@implicit.test"}, body); code != 250 {
			b.Errorf("%d %s", code, msg)
		}
		c.Close()
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	b.StopTimer()
	waitQueueEmpty(b, sock)
	b.ReportMetric(float64((relay.CPUTime()-cpu).Microseconds())/float64(b.N), "relay-µs/msg")
	if trace != nil {
		_ = trace.Process.Signal(os.Interrupt)
		_ = trace.Wait()
	}
	if err := relay.Stop(); err != nil { // the CPU profile is written at shutdown
		b.Fatal(err)
	}
}
