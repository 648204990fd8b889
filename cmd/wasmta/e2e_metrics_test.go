package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wasmta/wasmta/host/testutil"
)

// End-to-end tests of GET /metrics on the real binary: what Prometheus scrapes moves by exactly
// what the relay did.

// metricsScrape is one parsed scrape of /metrics.
type metricsScrape map[string]*dto.MetricFamily

// scrapeMetrics GETs /metrics with the given headers and parses the text format.
func (e *httpEnv) scrapeMetrics(hdr ...string) metricsScrape {
	e.t.Helper()
	code, body := e.get("/metrics", hdr...)
	if code != 200 {
		e.t.Fatalf("GET /metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		e.t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

// value is the counter or gauge value (a histogram's observation count) of the series of name
// whose labels include the given name/value pairs; 0 when there is none.
func (s metricsScrape) value(name string, labels ...string) float64 {
	f := s[name]
	if f == nil {
		return 0
	}
	total := 0.0
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total
}

// 3 messages over SMTP (through a plugin hook) and 2 over HTTP inject, one of them to a sink
// that answers 550: every counter moves by exactly what happened, and the histograms saw the
// spool commits and the hook calls.
func TestMetricsCountWhatHappened(t *testing.T) {
	t.Parallel()
	plugin, err := filepath.Abs(filepath.Join("..", "..", "host", "plugin", "testdata", "setmeta.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	// setmeta.wasm puts every SMTP message in queue my.smarthost.test (served by 127.0.0.4);
	// HTTP messages keep their recipient's domain: implicit.test (127.0.0.4) and example.com,
	// whose first MX (127.0.0.2) refuses every recipient with 550.
	const metricsZone = httpZone + "my.smarthost.test.  A  127.0.0.4\n"
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.MustListenPort(t, "127.0.0.1"))
	// Bounces are off: the DSN for bob@example.com's bounce would be a sixth event.
	e := &httpEnv{env: newEnv(t, metricsZone, []string{"127.0.0.4", "127.0.0.2"},
		fmt.Sprintf("[http]\nlisten = %q\n", addr)+pluginConfig(plugin)+"[bounce]\nenabled = false\n"), url: "http://" + addr}
	e.waitHTTP(addr)
	e.sinks["127.0.0.2"].SetBehavior(testutil.Behavior{Mode: testutil.PermFail, At: "RCPT", Code: 550, Text: "no such user"})

	before := e.scrapeMetrics()
	for i := range 3 {
		e.send("a@sender.test", fmt.Sprintf("s%d@implicit.test", i), "metrics")
	}
	for _, rcpt := range []string{"h@implicit.test", "bob@example.com"} {
		r := e.inject(map[string]any{"envelope_sender": "a@sender.test", "content": "Subject: hi\r\n\r\nhello",
			"recipients": []map[string]string{{"email": rcpt}}})
		if r.SuccessCount != 1 {
			t.Fatalf("inject %s: %+v", rcpt, r)
		}
	}
	e.sinks["127.0.0.4"].WaitCount(t, 4, 10*time.Second)
	bounce := e.relay.WaitLog(recipientIs("Bounce", "bob@example.com"), 10*time.Second)
	delivered := e.relay.WaitLog(recipientIs("Delivery", "s0@implicit.test"), 10*time.Second)
	injected := e.relay.WaitLog(recipientIs("Delivery", "h@implicit.test"), 10*time.Second)

	// The outcome is counted right after it is logged: poll until all five are in.
	var after metricsScrape
	deadline := time.Now().Add(10 * time.Second)
	for {
		after = e.scrapeMetrics()
		if after.value("wasmta_queue_events_total")-before.value("wasmta_queue_events_total") >= 5 &&
			after.value("wasmta_queued_messages") == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events never reached 5: %v", after.value("wasmta_queue_events_total"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	delta := func(name string, labels ...string) float64 {
		return after.value(name, labels...) - before.value(name, labels...)
	}
	smtpSite, _ := delivered["site"].(string)
	httpSite, _ := injected["site"].(string)
	bounceSite, _ := bounce["site"].(string)
	if smtpSite == "" || httpSite == "" || bounceSite == "" || smtpSite == httpSite {
		t.Fatalf("log records without (distinct) sites: %v / %v / %v", delivered, injected, bounce)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"wasmta_received_messages_total", []string{"protocol", "ESMTP"}, 3},
		{"wasmta_received_messages_total", []string{"protocol", "HTTP"}, 2},
		{"wasmta_rejected_messages_total", nil, 0},
		{"wasmta_queue_events_total", []string{"queue", "my.smarthost.test", "event", "delivered"}, 3},
		{"wasmta_queue_events_total", []string{"queue", "implicit.test", "event", "delivered"}, 1},
		{"wasmta_queue_events_total", []string{"queue", "example.com", "event", "bounced"}, 1},
		{"wasmta_queue_events_total", []string{"event", "transient_failure"}, 0},
		{"wasmta_queue_events_total", nil, 5},
		{"wasmta_site_events_total", []string{"site", smtpSite, "event", "delivered"}, 3},
		{"wasmta_site_events_total", []string{"site", httpSite, "event", "delivered"}, 1},
		{"wasmta_site_events_total", []string{"site", bounceSite, "event", "bounced"}, 1},
		{"wasmta_http_requests_total", []string{"route", "POST /api/inject/v1", "code", "200"}, 2},
		{"wasmta_plugin_hook_duration_seconds", []string{"plugin", "setmeta.wasm", "hook", "smtp_server_message_received"}, 3},
		{"wasmta_plugin_hook_failures_total", nil, 0},
		{"wasmta_spool_delete_failures_total", nil, 0},
		{"wasmta_recovered_panics_total", nil, 0},
	} {
		if got := delta(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v moved by %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Five spooled messages, their deletes and the bounce's: group commits were measured.
	if n := delta("wasmta_spool_commit_duration_seconds"); n < 1 {
		t.Errorf("spool commit histogram: %v new observations", n)
	}
	if h := after["wasmta_spool_commit_batch_writes"].GetMetric()[0].GetHistogram(); h.GetSampleSum() < 5 {
		t.Errorf("spool commits gathered %v writes, want at least the 5 messages", h.GetSampleSum())
	}
	if got := after.value("wasmta_http_requests_total", "route", "GET /metrics", "code", "200"); got < 1 {
		t.Errorf("the scrapes themselves are not counted: %v", got)
	}
	// Three queues were used and are all empty now; their state is kept about a minute.
	if got := after.value("wasmta_scheduled_queues"); got < 3 {
		t.Errorf("wasmta_scheduled_queues = %v, want the 3 queues used", got)
	}
	if after.value("wasmta_spool_reserve_bytes") != 32<<20 || after.value("wasmta_spool_free_bytes") <= 0 {
		t.Errorf("spool figures: reserve %v free %v", after.value("wasmta_spool_reserve_bytes"), after.value("wasmta_spool_free_bytes"))
	}
	for _, name := range []string{"wasmta_smtp_sessions", "wasmta_outbound_connections", "wasmta_plugin_breaker_open",
		"wasmta_plugin_reloads_total", "go_goroutines", "process_resident_memory_bytes"} {
		if after[name] == nil {
			t.Errorf("no %s", name)
		}
	}
}

// With [http] token set, /metrics needs it like every other route (the scrape config's
// bearer_token); a refused scrape is itself counted, under the route it asked for.
func TestMetricsNeedTheToken(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t, []string{"127.0.0.4"}, "token = \"s3cret\"\ninject_token = \"inject-only\"\n", "")
	for _, hdr := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "Bearer inject-only"}} {
		if code, body := e.get("/metrics", hdr...); code != 401 || strings.Contains(body, "wasmta_") {
			t.Errorf("GET /metrics with %v: %d %q, want 401 without metrics", hdr, code, body)
		}
	}
	s := e.scrapeMetrics("Authorization", "Bearer s3cret")
	if got := s.value("wasmta_http_requests_total", "route", "GET /metrics", "code", "401"); got != 3 {
		t.Errorf("refused scrapes counted %v, want 3", got)
	}
}
