package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// BenchmarkDoors measures the two doors of one relay (the real binary, spooling with its group
// commit, delivering to a sink on loopback) in the same run: SMTP messages/s over 10 sessions
// that each send one 1 KB message per transaction, and HTTP recipients/s over 10 keep-alive
// clients posting the KumoMTA builder with 1 KB of content, one recipient per request and ten;
// and SMTP again with config-only DKIM signing of every message (Ed25519, then RSA-2048).
// The queue is drained after each sub-benchmark, so each starts from the same state and the
// relay's CPU per message (read from /proc) covers reception, spooling and delivery.
//
//	go test -run=^$ -bench=Doors -benchtime=5000x ./cmd/wasmta/
func BenchmarkDoors(b *testing.B) {
	port, _ := testutil.StartSinks(b, "127.0.0.4")
	dns := testutil.StartDNS(b, zone)
	dir := b.TempDir()
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testutil.MustListenPort(b, "127.0.0.1"))
	// Config-only DKIM signing for two sender domains (RSA-2048 for rsa.test, Ed25519 for
	// ed.test): mail from sender.test is not signed.
	keys, _ := dkimKeys(b, dir, func(name string) string {
		return fmt.Sprintf("sign_sender_domains = [\"%s.test\"]\ndomain = \"%s.test\"\nselector = \"s\"\n", name, name)
	})
	cfg, smtpAddr := testutil.RelayConfig(b, dir, testutil.DeliveryConfig(dns.Addr, port)+
		fmt.Sprintf("[http]\nlisten = %q\n", httpAddr)+keys)
	relay := testutil.StartRelay(b, relayBin, dir, cfg, smtpAddr)
	sock := defaultSock(relay)
	text := strings.Repeat(strings.Repeat("x", 76)+"\r\n", 1024/78)
	const clients = 10

	smtp := func(b *testing.B, from string) {
		body := "From: " + from + "\r\nTo: r@implicit.test\r\nSubject: bench\r\n\r\n" + text
		conns := make([]*testutil.Client, clients)
		for i := range conns {
			conns[i] = testutil.Dial(b, smtpAddr)
			conns[i].Hello("bench.test")
		}
		b.ResetTimer()
		start, cpu := time.Now(), relay.CPUTime()
		run(b.N, clients, func(i, _ int) {
			if code, msg := conns[i].Send(from, []string{"r@implicit.test"}, body); code != 250 {
				b.Errorf("%d %s", code, msg)
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		b.StopTimer()
		waitQueueEmpty(b, sock) // relay CPU counts delivery too: per message end to end
		b.ReportMetric(float64((relay.CPUTime()-cpu).Microseconds())/float64(b.N), "relay-µs/msg")
		for _, c := range conns {
			c.Close()
		}
	}
	b.Run("smtp", func(b *testing.B) { smtp(b, "a@sender.test") })
	b.Run("smtp-dkim-ed25519", func(b *testing.B) { smtp(b, "a@ed.test") })
	b.Run("smtp-dkim-rsa2048", func(b *testing.B) { smtp(b, "a@rsa.test") })
	for _, perRequest := range []int{1, 10} {
		b.Run(fmt.Sprintf("http-%drcpt", perRequest), func(b *testing.B) {
			var rcpts []map[string]string
			for range perRequest {
				rcpts = append(rcpts, map[string]string{"email": "r@implicit.test"})
			}
			req, _ := json.Marshal(map[string]any{
				"envelope_sender": "a@sender.test",
				"recipients":      rcpts,
				"content":         map[string]any{"subject": "bench", "text_body": text, "from": map[string]string{"email": "a@sender.test"}},
			})
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
			requests := (b.N + perRequest - 1) / perRequest
			var accepted atomic.Int64
			b.ResetTimer()
			start, cpu := time.Now(), relay.CPUTime()
			run(requests, clients, func(_, _ int) {
				resp, err := client.Post("http://"+httpAddr+"/api/inject/v1", "application/json", bytes.NewReader(req))
				if err != nil {
					b.Error(err)
					return
				}
				var r struct {
					SuccessCount int `json:"success_count"`
				}
				err = json.NewDecoder(resp.Body).Decode(&r)
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					b.Errorf("%d %v", resp.StatusCode, err)
				}
				accepted.Add(int64(r.SuccessCount))
			})
			b.ReportMetric(float64(accepted.Load())/time.Since(start).Seconds(), "rcpts/s")
			b.StopTimer()
			waitQueueEmpty(b, sock) // relay CPU counts delivery too: per message end to end
			b.ReportMetric(float64((relay.CPUTime()-cpu).Microseconds())/float64(accepted.Load()), "relay-µs/msg")
		})
	}
}

// run calls f n times spread over workers goroutines (f gets the worker and the call number).
func run(n, workers int, f func(worker, call int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(w, i)
			}
		}()
	}
	wg.Wait()
}
