package metrics

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wasmta/wasmta/host/logs"
	"github.com/wasmta/wasmta/host/queue"
	"github.com/wasmta/wasmta/host/spool"
)

// scrape fetches /metrics from m's handler over loopback HTTP and parses the text format, as
// Prometheus would.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape: %d %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("content type %q, want the Prometheus text format", ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// value is the value of the series of name whose labels include want ("k", "v", ...); it
// fails the test when there is no such series.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	v, ok := lookup(fams, name, want...)
	if !ok {
		t.Fatalf("no series %s%v", name, want)
	}
	return v
}

func lookup(fams map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == want[i] && l.GetValue() == want[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// sum adds up every series of the counter name.
func sum(fams map[string]*dto.MetricFamily, name string) float64 {
	total := 0.0
	if f := fams[name]; f != nil {
		for _, m := range f.Metric {
			total += m.Counter.GetValue()
		}
	}
	return total
}

// series counts the series of name.
func series(fams map[string]*dto.MetricFamily, name string) int {
	if f := fams[name]; f != nil {
		return len(f.Metric)
	}
	return 0
}

func TestEventsFromLogRecords(t *testing.T) {
	m := New(Sources{}, nil)
	rec := func(typ, proto, queue, site string) {
		m.Record(&logs.Record{Type: typ, ReceptionProtocol: proto, Queue: queue, Site: site})
	}
	for range 3 {
		rec(logs.Reception, "ESMTP", "example.com", "")
	}
	rec(logs.Reception, "HTTP", "example.com", "")
	rec(logs.Reception, "HTTP", "example.net", "")
	rec(logs.Rejection, "ESMTP", "", "")
	rec(logs.Delivery, "ESMTP", "example.com", "mx.example.com")
	rec(logs.Delivery, "HTTP", "example.com", "mx.example.com")
	rec(logs.TransientFailure, "HTTP", "example.net", "mx.example.net")
	rec(logs.TransientFailure, "HTTP", "example.net", "") // resolution failed: no site
	rec(logs.Bounce, "ESMTP", "example.com", "mx.example.com")
	rec(logs.Expiration, "HTTP", "example.net", "")
	rec("PluginReload", "", "", "") // not an event of a message: ignored

	f := scrape(t, m)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"wasmta_received_messages_total", []string{"protocol", "ESMTP"}, 3},
		{"wasmta_received_messages_total", []string{"protocol", "HTTP"}, 2},
		{"wasmta_rejected_messages_total", []string{"protocol", "ESMTP"}, 1},
		{"wasmta_rejected_messages_total", []string{"protocol", "HTTP"}, 0}, // present from the start
		{"wasmta_queue_events_total", []string{"queue", "example.com", "event", "delivered"}, 2},
		{"wasmta_queue_events_total", []string{"queue", "example.com", "event", "bounced"}, 1},
		{"wasmta_queue_events_total", []string{"queue", "example.net", "event", "transient_failure"}, 2},
		{"wasmta_queue_events_total", []string{"queue", "example.net", "event", "expired"}, 1},
		{"wasmta_site_events_total", []string{"site", "mx.example.com", "event", "delivered"}, 2},
		{"wasmta_site_events_total", []string{"site", "mx.example.com", "event", "bounced"}, 1},
		{"wasmta_site_events_total", []string{"site", "mx.example.net", "event", "transient_failure"}, 1},
	} {
		if got := value(t, f, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Events without a site are not counted by site, and none is counted twice. A site (or
	// queue) seen once has all its events, at 0 when none happened, and so has "other".
	if n := series(f, "wasmta_site_events_total"); n != 3*int(numEvents) {
		t.Errorf("%d site series, want 2 sites + other, %d events each", n, numEvents)
	}
	if got := sum(f, "wasmta_site_events_total"); got != 4 {
		t.Errorf("site events sum to %v, want 4", got)
	}
	if got := value(t, f, "wasmta_site_events_total", "site", "mx.example.net", "event", "expired"); got != 0 {
		t.Errorf("expired at mx.example.net: %v", got)
	}
}

// A relay that delivers to many domains must not grow a series per domain forever: past
// MaxLabelValues queues, new ones are counted under "other", and nothing is lost.
func TestQueueAndSiteLabelsCapped(t *testing.T) {
	m := New(Sources{}, nil)
	const n = MaxLabelValues + 50
	for i := range n {
		m.Record(&logs.Record{Type: logs.Delivery, Queue: fmt.Sprintf("d%d.test", i), Site: fmt.Sprintf("mx.d%d.test", i)})
	}
	// A queue seen before the cap was reached keeps its own series afterwards.
	m.Record(&logs.Record{Type: logs.Delivery, Queue: "d0.test", Site: "mx.d0.test"})
	f := scrape(t, m)
	for _, c := range []struct{ metric, label, first string }{
		{"wasmta_queue_events_total", "queue", "d0.test"},
		{"wasmta_site_events_total", "site", "mx.d0.test"},
	} {
		if s := series(f, c.metric); s != (MaxLabelValues+1)*int(numEvents) {
			t.Errorf("%s: %d series, want %d (cap + other, %d events each)", c.metric, s, (MaxLabelValues+1)*int(numEvents), numEvents)
		}
		if got := value(t, f, c.metric, c.label, Other, "event", "delivered"); got != 50 {
			t.Errorf("%s{%s=other} = %v, want 50", c.metric, c.label, got)
		}
		if got := value(t, f, c.metric, c.label, c.first, "event", "delivered"); got != 2 {
			t.Errorf("%s{%s=%s} = %v, want 2", c.metric, c.label, c.first, got)
		}
		if total := sum(f, c.metric); total != n+1 {
			t.Errorf("%s sums to %v, want %d", c.metric, total, n+1)
		}
	}
}

// Queue names can carry any bytes a plugin put in meta; client_golang panics on a label that
// is not UTF-8, which here would be in the middle of a delivery.
func TestBadLabelValues(t *testing.T) {
	m := New(Sources{Depths: func() queue.Depths {
		return queue.Depths{Scheduled: map[string]int{"bad\xffqueue": 2, "bad\xfequeue": 1}}
	}}, nil)
	m.Record(&logs.Record{Type: logs.Bounce, Queue: "bad\xffqueue", Site: strings.Repeat("mx.", 500)})
	m.HookCall("plug\xff.wasm", "get_queue_config", time.Millisecond, false)
	f := scrape(t, m)
	if got := value(t, f, "wasmta_queue_events_total", "queue", "bad\uFFFDqueue", "event", "bounced"); got != 1 {
		t.Errorf("bounce under the cleaned queue name: %v", got)
	}
	for _, s := range f["wasmta_site_events_total"].Metric {
		if l := len(s.Label[1].GetValue()); s.Label[1].GetName() != "site" || l > maxLabelLen+len("…") {
			t.Errorf("site label %q (%d bytes) not cut", s.Label[1].GetValue(), l)
		}
	}
	// Two names that clean to one label make one series, not a duplicate (which would fail
	// the whole scrape).
	if got := value(t, f, "wasmta_scheduled_messages", "queue", "bad\uFFFDqueue"); got != 3 {
		t.Errorf("scheduled under the cleaned name: %v, want 3", got)
	}
}

func TestScrapeTimeSources(t *testing.T) {
	sched := map[string]int{}
	for i := range MaxLabelValues + 10 {
		sched[fmt.Sprintf("q%03d.test", i)] = i + 1 // q000 has 1 message ... q109 has 110
	}
	m := New(Sources{
		Queue: func() queue.Stats { return queue.Stats{Queued: 7000, DeleteFailures: 2, Panics: 1, SchedKept: 42} },
		Depths: func() queue.Depths {
			return queue.Depths{Scheduled: sched, Ready: map[string]int{"mx.example.com": 4}, Connections: 3}
		},
		Spool: func() spool.Stats {
			return spool.Stats{Free: 5 << 30, MinFree: 1 << 30, BelowReserve: true, SpaceRefusals: 9, Failed: true}
		},
		SMTPSessions: func() int { return 12 },
		SMTPRefused:  func() map[string]int64 { return map[string]int64{"max_connections_per_ip": 8} },
		Cluster: func() ClusterState {
			return ClusterState{Up: false, Errors: 3, Fallbacks: 40, Policy: "fail_closed", Leases: 5}
		},
		Webhook: func() WebhookState {
			return WebhookState{QueueBytes: 4096, Batches: 6, Records: 600, FailedPosts: 2, Dropped: 1, Failing: true}
		},
		Plugins: func() []PluginState {
			return []PluginState{{Name: "router.wasm", Reloads: 2, ReloadFailures: 1, BreakerOpen: true}, {Name: "dkim.wasm"}}
		},
	}, nil)
	f := scrape(t, m)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"wasmta_queued_messages", nil, 7000},
		{"wasmta_scheduled_queues", nil, 42},
		{"wasmta_spool_delete_failures_total", nil, 2},
		{"wasmta_recovered_panics_total", nil, 1},
		{"wasmta_ready_messages", []string{"site", "mx.example.com"}, 4},
		{"wasmta_ready_messages", []string{"site", Other}, 0},
		{"wasmta_outbound_connections", nil, 3},
		{"wasmta_smtp_sessions", nil, 12},
		{"wasmta_smtp_refused_connections_total", []string{"limit", "max_connections_per_ip"}, 8},
		{"wasmta_spool_free_bytes", nil, 5 << 30},
		{"wasmta_spool_reserve_bytes", nil, 1 << 30},
		{"wasmta_spool_below_reserve", nil, 1},
		{"wasmta_spool_failed", nil, 1},
		{"wasmta_spool_space_refusals_total", nil, 9},
		{"wasmta_plugin_reloads_total", []string{"plugin", "router.wasm", "result", "ok"}, 2},
		{"wasmta_plugin_reloads_total", []string{"plugin", "router.wasm", "result", "failed"}, 1},
		{"wasmta_plugin_breaker_open", []string{"plugin", "router.wasm"}, 1},
		{"wasmta_plugin_breaker_open", []string{"plugin", "dkim.wasm"}, 0},
		{"wasmta_cluster_redis_up", nil, 0},
		{"wasmta_cluster_redis_errors_total", nil, 3},
		{"wasmta_cluster_fallback_total", []string{"policy", "fail_closed"}, 40},
		{"wasmta_cluster_leases", nil, 5},
		{"wasmta_webhook_queue_bytes", nil, 4096},
		{"wasmta_webhook_batches_total", nil, 6},
		{"wasmta_webhook_records_total", nil, 600},
		{"wasmta_webhook_failed_posts_total", nil, 2},
		{"wasmta_webhook_dropped_records_total", nil, 1},
		{"wasmta_webhook_failing", nil, 1},
		// The largest queues keep their names; the 10 smallest (1..10 messages) are folded.
		{"wasmta_scheduled_messages", []string{"queue", "q109.test"}, 110},
		{"wasmta_scheduled_messages", []string{"queue", "q010.test"}, 11},
		{"wasmta_scheduled_messages", []string{"queue", Other}, 55},
	} {
		if got := value(t, f, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if _, ok := lookup(f, "wasmta_scheduled_messages", "queue", "q009.test"); ok {
		t.Error("a small queue past the cap kept its own series")
	}
	if s := series(f, "wasmta_scheduled_messages"); s != MaxLabelValues+1 {
		t.Errorf("%d scheduled series, want %d", s, MaxLabelValues+1)
	}
	// The Go runtime and the process are there too.
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if f[name] == nil {
			t.Errorf("no %s", name)
		}
	}
}

func TestHistogramsAndRequests(t *testing.T) {
	m := New(Sources{}, nil)
	m.Commit(3*time.Millisecond, 40)
	m.Commit(200*time.Microsecond, 1)
	m.HookCall("router.wasm", "smtp_server_message_received", 50*time.Microsecond, false)
	m.HookCall("router.wasm", "smtp_server_message_received", 100*time.Millisecond, true)
	m.HTTPRequest("POST /api/inject/v1", 200)
	m.HTTPRequest("POST /api/inject/v1", 200)
	m.HTTPRequest("", 404)
	f := scrape(t, m)
	h := f["wasmta_spool_commit_duration_seconds"].Metric[0].Histogram
	if h.GetSampleCount() != 2 || h.GetSampleSum() < 0.0031 || h.GetSampleSum() > 0.0033 {
		t.Errorf("commit histogram: count %d sum %v", h.GetSampleCount(), h.GetSampleSum())
	}
	if b := f["wasmta_spool_commit_batch_writes"].Metric[0].Histogram; b.GetSampleSum() != 41 {
		t.Errorf("batch histogram sum %v, want 41", b.GetSampleSum())
	}
	if got := value(t, f, "wasmta_plugin_hook_duration_seconds", "plugin", "router.wasm", "hook", "smtp_server_message_received"); got != 2 {
		t.Errorf("hook observations %v, want 2", got)
	}
	if got := value(t, f, "wasmta_plugin_hook_failures_total", "plugin", "router.wasm"); got != 1 {
		t.Errorf("hook failures %v, want 1", got)
	}
	if got := value(t, f, "wasmta_http_requests_total", "route", "POST /api/inject/v1", "code", "200"); got != 2 {
		t.Errorf("inject requests %v, want 2", got)
	}
	if got := value(t, f, "wasmta_http_requests_total", "route", "unmatched", "code", "404"); got != 1 {
		t.Errorf("unmatched requests %v, want 1", got)
	}
}

// Names, types, units and help texts follow Prometheus' conventions (promlint).
func TestNamesFollowConventions(t *testing.T) {
	m := New(Sources{
		Queue: func() queue.Stats { return queue.Stats{} }, Depths: func() queue.Depths { return queue.Depths{} },
		Spool: func() spool.Stats { return spool.Stats{} }, SMTPSessions: func() int { return 0 }, SMTPRefused: func() map[string]int64 { return map[string]int64{"max_connections": 0} },
		Plugins: func() []PluginState { return []PluginState{{Name: "p.wasm"}} },
		Cluster: func() ClusterState { return ClusterState{Up: true, Policy: "fail_open"} },
		Webhook: func() WebhookState { return WebhookState{} },
	}, nil)
	m.Record(&logs.Record{Type: logs.Delivery, Queue: "q", Site: "s"})
	m.Commit(time.Millisecond, 1)
	m.HookCall("p.wasm", "get_queue_config", time.Millisecond, true)
	m.HTTPRequest("GET /metrics", 200)
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, namespace+"_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var served []string
	for _, f := range fams {
		if strings.HasPrefix(f.GetName(), namespace+"_") {
			served = append(served, f.GetName())
		}
	}
	// Every metric served is documented, and every documented one is served.
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `("+namespace+"_[a-z_]+)`").FindAllSubmatch(doc, -1) {
		documented = append(documented, string(m[1]))
	}
	slices.Sort(served)
	slices.Sort(documented)
	if !slices.Equal(served, documented) {
		t.Errorf("metrics served:\n%v\ndocs/metrics.md lists:\n%v", served, documented)
	}
}
