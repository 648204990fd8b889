// Package metrics exposes the relay's figures in the Prometheus text format (GET /metrics on the
// HTTP API; docs/metrics.md lists every metric).
//
// Most figures are counters the components keep anyway (queue.Stats, spool.Stats, plugin
// status, the SMTP sessions), read when Prometheus scrapes, so they cost nothing in between.
// Events are counted from the log records (Reception, Delivery, TransientFailure, Bounce,
// Expiration, Rejection), so the metrics and the log always agree. The two histograms that need
// a measurement on the hot path — spool group commits and plugin hook calls — come from
// observer hooks those packages call only when one is set.
//
// Queue and site names come from recipients' domains and from plugins, so there is no bound on
// how many a relay sees. Each labelled metric therefore keeps at most MaxLabelValues distinct
// values per label and folds the rest into "other" (see labelCap and topN).
package metrics

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wasmta/wasmta/host/logs"
	"github.com/wasmta/wasmta/host/queue"
	"github.com/wasmta/wasmta/host/spool"
)

const namespace = "wasmta"

// Sources are read at every scrape. A nil source leaves its metrics out.
type Sources struct {
	Queue        func() queue.Stats
	Depths       func() queue.Depths
	Spool        func() spool.Stats
	Plugins      func() []PluginState
	SMTPSessions func() int
	// SMTPRefused is the connections refused at accept, by the key of the limit that refused
	// them (smtp.max_connections, smtp.max_connections_per_ip).
	SMTPRefused func() map[string]int64
	// Cluster is the node's view of the shared Redis; nil without [redis].
	Cluster func() ClusterState
	// Webhook is the log webhook's queue; nil without [logs.webhook].
	Webhook func() WebhookState
}

// WebhookState is what a scrape reports of the log webhook ([logs.webhook]).
type WebhookState struct {
	QueueBytes  int64 // bytes in its queue files
	Batches     int64 // batches the receiver accepted
	Records     int64 // records in them
	FailedPosts int64 // POSTs the receiver did not accept (retried)
	Dropped     int64 // records not queued: the backlog was full
	Failing     bool  // the last POST failed
}

// ClusterState is what a scrape reports of the cluster client (host/cluster).
type ClusterState struct {
	Up        bool   // Redis answered the last command
	Errors    int64  // commands that failed
	Fallbacks int64  // limit checks the on_unavailable policy answered instead of Redis
	Policy    string // "fail_open" or "fail_closed"
	Leases    int    // connection leases this node holds
}

// PluginState is what a scrape reports of one configured plugin.
type PluginState struct {
	Name           string
	Reloads        int // new generations swapped in
	ReloadFailures int // new versions refused (the old one kept serving)
	BreakerOpen    bool
}

// maxScrapes bounds scrapes served at once: a scrape walks the retry timer (queue.Depths),
// and Prometheus scrapes one target at a time anyway. More get 503.
const maxScrapes = 2

// Metrics holds the relay's metrics. Its methods are the observers the components call.
type Metrics struct {
	reg *prometheus.Registry

	received, rejected [len(protocols) + 1]prometheus.Counter // by protocols' index, then Other
	queues, sites      *eventCounters
	commitSeconds      prometheus.Histogram
	commitWrites       prometheus.Histogram
	hookSeconds        *prometheus.HistogramVec
	hookFailures       *prometheus.CounterVec
	hooks              cowMap[hookKey, *hookSeries]
	httpRequests       *prometheus.CounterVec
	routes             *labelCap
	diag               *slog.Logger
}

type hookKey struct{ plugin, hook string }

type hookSeries struct {
	seconds  prometheus.Observer
	failures prometheus.Counter
}

// Protocols a message can be received by (log records' reception_protocol).
var protocols = [...]string{"ESMTP", "HTTP"}

// New builds the registry: the relay's metrics, the Go runtime's and the process's.
func New(src Sources, diag *slog.Logger) *Metrics {
	if diag == nil {
		diag = slog.Default()
	}
	received := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "received_messages_total",
		Help: "Messages accepted and spooled (one per recipient), by reception protocol.",
	}, []string{"protocol"})
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "rejected_messages_total",
		Help: "Rejection log records (a refused command, recipient or message), by reception protocol.",
	}, []string{"protocol"})
	queueEvents := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "queue_events_total",
		Help: "Delivery attempt outcomes by scheduled queue: delivered, transient_failure, bounced, expired, admin_bounced.",
	}, []string{"queue", "event"})
	siteEvents := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "site_events_total",
		Help: "Delivery attempt outcomes by site (ready queue), for outcomes where a site was known.",
	}, []string{"site", "event"})
	m := &Metrics{
		reg:    prometheus.NewRegistry(),
		diag:   diag,
		queues: newEventCounters(queueEvents, MaxLabelValues),
		sites:  newEventCounters(siteEvents, MaxLabelValues),
		routes: newLabelCap(MaxLabelValues),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "spool_commit_duration_seconds",
			Help:    "Time of one spool group commit: transactions plus fsync.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		commitWrites: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "spool_commit_batch_writes",
			Help:    "Writes (a spooled transaction, an update, a delete) gathered into one spool group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9), // 1 .. 256, the committer's batch cap
		}),
		hookSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "plugin_hook_duration_seconds",
			Help:    "Plugin hook call latency, waiting for an instance included.",
			Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"plugin", "hook"}),
		hookFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "plugin_hook_failures_total",
			Help: "Plugin hook calls that failed (trap, deadline, non-zero result, no instance, breaker open).",
		}, []string{"plugin", "hook"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_requests_total",
			Help: "HTTP API requests answered, by route and status code.",
		}, []string{"route", "code"}),
	}
	for i, p := range append(protocols[:], Other) {
		m.received[i] = received.WithLabelValues(p)
		m.rejected[i] = rejected.WithLabelValues(p)
	}
	m.reg.MustRegister(
		received, rejected, queueEvents, siteEvents,
		m.commitSeconds, m.commitWrites, m.hookSeconds, m.hookFailures, m.httpRequests,
		newScrapeCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Registry is the registry behind Handler (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition formats (text by default).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:            errorLog{m.diag},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: maxScrapes,
		Registry:            m.reg, // promhttp's own error counter
		// Prometheus asks for OpenMetrics first; without this promhttp answers it with the
		// text format (docs/metrics.md promises both).
		EnableOpenMetrics: true,
	})
}

type errorLog struct{ l *slog.Logger }

func (e errorLog) Println(v ...any) { e.l.Error("metrics", "err", v) }

// Record counts one log record (logs.Logger.Observe).
func (m *Metrics) Record(r *logs.Record) {
	switch r.Type {
	case logs.Reception:
		m.received[protocol(r.ReceptionProtocol)].Inc()
		return
	case logs.Rejection:
		m.rejected[protocol(r.ReceptionProtocol)].Inc()
		return
	}
	ev, ok := eventOf(r.Type)
	if !ok {
		return
	}
	m.queues.inc(r.Queue, ev)
	if r.Site != "" {
		m.sites.inc(r.Site, ev)
	}
}

// protocol is p's index in protocols, or the index of Other.
func protocol(p string) int {
	for i, k := range protocols {
		if p == k {
			return i
		}
	}
	return len(protocols)
}

// Commit observes one spool group commit (spool.CommitObserver).
func (m *Metrics) Commit(d time.Duration, writes int) {
	m.commitSeconds.Observe(d.Seconds())
	m.commitWrites.Observe(float64(writes))
}

// HookCall observes one plugin hook call (plugin.CallObserver).
func (m *Metrics) HookCall(plugin, hook string, d time.Duration, failed bool) {
	k := hookKey{plugin, hook}
	s, ok := m.hooks.get(k)
	if !ok {
		s = m.hookSeriesFor(k)
	}
	s.seconds.Observe(d.Seconds())
	if failed {
		s.failures.Inc()
	}
}

// maxHookSeries bounds the plugin/hook pairs: plugins come from the config, hooks from the ABI,
// so this is only reached by a relay reloading plugins under ever new file names.
const maxHookSeries = 4 * MaxLabelValues

func (m *Metrics) hookSeriesFor(k hookKey) *hookSeries {
	mk := func(plugin string) func() *hookSeries {
		return func() *hookSeries {
			return &hookSeries{seconds: m.hookSeconds.WithLabelValues(plugin, k.hook), failures: m.hookFailures.WithLabelValues(plugin, k.hook)}
		}
	}
	if s, ok := m.hooks.add(k, maxHookSeries, mk(clean(k.plugin))); ok {
		return s
	}
	return mk(Other)()
}

// HTTPRequest counts one answered HTTP API request (httpapi.RequestObserver). route is the
// pattern the request matched, "" for none.
func (m *Metrics) HTTPRequest(route string, code int) {
	if route == "" {
		route = "unmatched"
	}
	m.httpRequests.WithLabelValues(m.routes.label(route), strconv.Itoa(code)).Inc()
}
