package app

import (
	"github.com/wasmta/wasmta/host/logs/webhook"
	"github.com/wasmta/wasmta/host/metrics"
	"github.com/wasmta/wasmta/host/queue"
	"github.com/wasmta/wasmta/host/spool"
)

// newMetrics builds the relay's metrics over its components and makes the log and the plugin
// chain report to them. Call it once the log is open and the chain built, before the spool
// opens (the spool's commit observer is the result). The sources are read at scrape time,
// when every component exists.
func (a *App) newMetrics() *metrics.Metrics {
	m := metrics.New(metrics.Sources{
		Queue:        func() queue.Stats { return a.queue.Stats() },
		Depths:       func() queue.Depths { return a.queue.Depths() },
		Spool:        func() spool.Stats { return a.spool.Stats() },
		SMTPSessions: func() int { return a.smtp.Sessions() },
		SMTPRefused:  func() map[string]int64 { return a.smtp.Refused() },
		Cluster:      clusterState(a.cluster),
		Webhook:      webhookState(a.logHook),
		Plugins: func() []metrics.PluginState {
			var out []metrics.PluginState
			for _, p := range a.chain.Plugins() {
				st := p.Status()
				out = append(out, metrics.PluginState{Name: st.Name, Reloads: st.Reloads,
					ReloadFailures: st.Failures, BreakerOpen: p.Generation().BreakerOpen()})
			}
			return out
		},
	}, a.diag)
	a.logs.Observe(m.Record)
	a.chain.Observe(m)
	return m
}

// serveMetrics puts GET /metrics and the request counts on the HTTP API, when there is one.
func (a *App) serveMetrics() {
	if a.http == nil {
		return
	}
	a.http.ObserveRequests(a.metrics.HTTPRequest)
	a.http.ServeMetrics(a.metrics.Handler())
}

// webhookState is the metrics source for the log webhook; nil without [logs.webhook].
func webhookState(h *webhook.Hook) func() metrics.WebhookState {
	if h == nil {
		return nil
	}
	return func() metrics.WebhookState {
		st := h.Stats()
		return metrics.WebhookState{QueueBytes: st.BacklogBytes, Batches: st.Batches, Records: st.Records,
			FailedPosts: st.FailedPosts, Dropped: st.Dropped, Failing: st.Failing}
	}
}
