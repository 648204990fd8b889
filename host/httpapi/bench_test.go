package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// BenchmarkInject measures injection end to end over one connection: JSON decoding,
// templates, MIME building and the real Badger spool (group commit, fsync) behind a real
// net/http server on loopback. Each request carries 100 recipients of a builder message of
// about 1 KB. Reports recipients/s.
func BenchmarkInject(b *testing.B) {
	const perRequest = 100
	ts := startServer(b, func(o *Options) {
		o.MaxRequestSize = 2 << 20
		o.Diag = slog.New(slog.NewTextHandler(io.Discard, nil))
	})
	body := benchBody(perRequest)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		code, out := ts.post(InjectPath, body)
		if code != 200 || !strings.Contains(out, fmt.Sprintf(`"success_count":%d`, perRequest)) {
			b.Fatalf("%d %s", code, out)
		}
	}
	b.ReportMetric(float64(b.N*perRequest)/b.Elapsed().Seconds(), "recipients/s")
}

// benchBody is an injection of n recipients; each generated message is about 1 KB.
func benchBody(n int) string {
	var rc []any
	for i := 0; i < n; i++ {
		rc = append(rc, map[string]any{"email": fmt.Sprintf("user%d@example.com", i), "name": fmt.Sprintf("User %d", i), "substitutions": map[string]any{"code": i}})
	}
	b, _ := json.Marshal(map[string]any{
		"envelope_sender": "bounce@sender.test",
		"recipients":      rc,
		"content": map[string]any{
			"subject":   "Your code, {{ name }}",
			"from":      map[string]any{"email": "news@sender.test", "name": "News"},
			"text_body": "Hello {{ name }}, your code is {{ code }}.\n" + strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n", 12),
		},
	})
	return string(b)
}

// BenchmarkInjectParallel is BenchmarkInject with 8 clients at once (per GOMAXPROCS), so the
// spool's group commit can put several requests under one fsync.
func BenchmarkInjectParallel(b *testing.B) {
	const perRequest = 100
	ts := startServer(b, func(o *Options) {
		o.MaxRequestSize = 2 << 20
		o.Diag = slog.New(slog.NewTextHandler(io.Discard, nil))
	})
	body := benchBody(perRequest)
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			code, out := ts.post(InjectPath, body)
			if code != 200 || !strings.Contains(out, fmt.Sprintf(`"success_count":%d`, perRequest)) {
				b.Errorf("%d %s", code, out)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*perRequest)/b.Elapsed().Seconds(), "recipients/s")
}
