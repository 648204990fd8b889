package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/wasmta/wasmta/host/logs"
	"github.com/wasmta/wasmta/host/queue"
	"github.com/wasmta/wasmta/host/spool"
)

// Every metric row of docs/metrics.md (| `name` | type | labels | meaning |) states the type
// and the label names the relay serves: a dashboard or alert written from the page works.
func TestAudit11DocumentedTypesAndLabels(t *testing.T) {
	m := New(Sources{
		Queue: func() queue.Stats { return queue.Stats{} }, Depths: func() queue.Depths { return queue.Depths{} },
		Spool: func() spool.Stats { return spool.Stats{} }, SMTPSessions: func() int { return 0 }, SMTPRefused: func() map[string]int64 { return map[string]int64{"max_connections": 0} },
		Plugins: func() []PluginState { return []PluginState{{Name: "p.wasm"}} },
		Cluster: func() ClusterState { return ClusterState{Up: true, Policy: "fail_open"} },
		Webhook: func() WebhookState { return WebhookState{} },
	}, nil)
	m.Record(&logs.Record{Type: logs.Delivery, Queue: "q", Site: "s"})
	m.Record(&logs.Record{Type: logs.Reception, ReceptionProtocol: "ESMTP"})
	m.Commit(time.Millisecond, 1)
	m.HookCall("p.wasm", "get_queue_config", time.Millisecond, true)
	m.HTTPRequest("GET /metrics", 200)
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		served[f.GetName()] = f
	}
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]dto.MetricType{"counter": dto.MetricType_COUNTER, "gauge": dto.MetricType_GAUGE, "histogram": dto.MetricType_HISTOGRAM}
	row := regexp.MustCompile("(?m)^\\| `(" + namespace + "_[a-z_]+)` \\| ([a-z]+) \\| ([^|]*) \\|")
	parens := regexp.MustCompile(`\([^)]*\)`)
	tick := regexp.MustCompile("^`([a-z_]+)`")
	rows := row.FindAllSubmatch(doc, -1)
	if len(rows) < 30 {
		t.Fatalf("only %d metric rows found in docs/metrics.md", len(rows))
	}
	for _, r := range rows {
		name, typ, labelCol := string(r[1]), string(r[2]), string(r[3])
		f := served[name]
		if f == nil {
			t.Errorf("%s: documented, not served", name)
			continue
		}
		if want, ok := types[typ]; !ok || f.GetType() != want {
			t.Errorf("%s: documented as %s, served as %s", name, typ, f.GetType())
		}
		// Label names: a backticked name opening a comma-separated piece, unless the piece
		// before gave values ("`protocol` = `ESMTP`, `HTTP`": HTTP is a value).
		var documented []string
		values := false
		for _, p := range strings.Split(parens.ReplaceAllString(labelCol, ""), ",") {
			p = strings.TrimSpace(p)
			if mm := tick.FindStringSubmatch(p); mm != nil && (!values || strings.Contains(p, "=")) {
				documented = append(documented, mm[1])
			}
			values = strings.Contains(p, "=") || (values && !strings.Contains(p, "="))
		}
		var got []string
		if len(f.Metric) > 0 {
			for _, l := range f.Metric[0].Label {
				got = append(got, l.GetName())
			}
		}
		slices.Sort(got)
		slices.Sort(documented)
		if !slices.Equal(got, documented) {
			t.Errorf("%s: documented labels %v, served %v", name, documented, got)
		}
	}
}

// docs/metrics.md: "in the Prometheus text format (or OpenMetrics / protobuf when the scraper
// asks for them)". Prometheus asks for OpenMetrics first; the handler answered it with the
// text format, because promhttp serves OpenMetrics only when told to.
func TestAudit11OpenMetricsWhenAsked(t *testing.T) {
	m := New(Sources{}, nil)
	m.Record(&logs.Record{Type: logs.Reception, ReceptionProtocol: "ESMTP"})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL, nil)
	// Prometheus' own scrape Accept header.
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Fatalf("content type %q for an OpenMetrics scrape", ct)
	}
	if !strings.HasSuffix(string(b), "# EOF\n") || !strings.Contains(string(b), `wasmta_received_messages_total{protocol="ESMTP"} 1`) {
		t.Fatalf("not an OpenMetrics exposition:\n%s", b)
	}
}
