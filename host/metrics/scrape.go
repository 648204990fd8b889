package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// scrapeCollector reads the components' own counters when Prometheus scrapes: nothing is
// counted twice, and the hot paths pay nothing for these metrics.
type scrapeCollector struct {
	src Sources

	queued, scheduled, ready, conns, sessions *prometheus.Desc
	refusedConns                              *prometheus.Desc
	schedKept                                 *prometheus.Desc
	deleteFailures, panics                    *prometheus.Desc
	free, reserve, below, refusals, failed    *prometheus.Desc
	reloads, breaker                          *prometheus.Desc
	redisUp, redisErrors, fallbacks, leases   *prometheus.Desc
	whQueue, whBatches, whRecords, whFailed   *prometheus.Desc
	whDropped, whFailing                      *prometheus.Desc
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
}

func newScrapeCollector(src Sources) *scrapeCollector {
	return &scrapeCollector{
		src:            src,
		queued:         desc("queued_messages", "Messages in the relay's care: received and not yet delivered, bounced or expired."),
		scheduled:      desc("scheduled_messages", "Messages waiting for their next attempt, by scheduled queue (the largest queues; the rest in queue=\"other\").", "queue"),
		ready:          desc("ready_messages", "Messages waiting for a connection, by site (the largest sites; the rest in site=\"other\").", "site"),
		schedKept:      desc("scheduled_queues", "Scheduled queues the relay keeps state for (cached queue config, rate limit): those holding messages and empty ones not yet dropped (about a minute after their config was last read)."),
		conns:          desc("outbound_connections", "Open outgoing SMTP connections."),
		sessions:       desc("smtp_sessions", "Inbound SMTP connections being served."),
		refusedConns:   desc("smtp_refused_connections_total", "Inbound SMTP connections refused at accept (421) by a limit: limit=\"max_connections\" or \"max_connections_per_ip\".", "limit"),
		deleteFailures: desc("spool_delete_failures_total", "Finished messages whose spool entry could not be removed (they come back after a restart)."),
		panics:         desc("recovered_panics_total", "Panics recovered in delivery and queue goroutines."),
		free:           desc("spool_free_bytes", "Free bytes for the spool at the last check, less what was written since."),
		reserve:        desc("spool_reserve_bytes", "The spool's free-space reserve (spool.min_free)."),
		below:          desc("spool_below_reserve", "1 while new mail is refused for space (free space under the reserve), else 0."),
		failed:         desc("spool_failed", "1 once a spool write (a commit or its sync) has failed: new mail is refused and deliveries are stopped until a restart, else 0."),
		refusals:       desc("spool_space_refusals_total", "Reception refusals (452 4.3.1 / HTTP 503) for lack of spool space."),
		reloads:        desc("plugin_reloads_total", "Plugin reloads: result=\"ok\" a new version serves, result=\"failed\" it was refused and the old one kept serving.", "plugin", "result"),
		breaker:        desc("plugin_breaker_open", "1 while the plugin's failure breaker is open (its hooks fail without running), else 0.", "plugin"),
		redisUp:        desc("cluster_redis_up", "1 while the cluster's Redis answers, 0 while it is away (shared limits follow redis.on_unavailable)."),
		redisErrors:    desc("cluster_redis_errors_total", "Commands to the cluster's Redis that failed (timeouts, refused connections, Redis errors)."),
		fallbacks:      desc("cluster_fallback_total", "Shared limit checks answered by the on_unavailable policy because Redis did not answer.", "policy"),
		leases:         desc("cluster_leases", "Connection leases this node holds under shared connection limits."),
		whQueue:        desc("webhook_queue_bytes", "Bytes in the log webhook's queue files (a file leaves once every record in it was accepted)."),
		whBatches:      desc("webhook_batches_total", "Batches of log records the webhook receiver accepted (2xx)."),
		whRecords:      desc("webhook_records_total", "Log records in the batches the webhook receiver accepted."),
		whFailed:       desc("webhook_failed_posts_total", "POSTs to the webhook receiver that failed (connection error, timeout, non-2xx); each is retried."),
		whDropped:      desc("webhook_dropped_records_total", "Log records not queued for the webhook because its queue was full (logs.webhook.max_backlog); they are in the log file."),
		whFailing:      desc("webhook_failing", "1 while the last POST to the webhook receiver failed, else 0."),
	}
}

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queued, c.scheduled, c.schedKept, c.ready, c.conns, c.sessions, c.refusedConns, c.deleteFailures,
		c.panics, c.free, c.reserve, c.below, c.refusals, c.failed, c.reloads, c.breaker,
		c.redisUp, c.redisErrors, c.fallbacks, c.leases,
		c.whQueue, c.whBatches, c.whRecords, c.whFailed, c.whDropped, c.whFailing} {
		ch <- d
	}
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	if f := c.src.Queue; f != nil {
		st := f()
		gauge(c.queued, float64(st.Queued))
		gauge(c.schedKept, float64(st.SchedKept))
		counter(c.deleteFailures, float64(st.DeleteFailures))
		counter(c.panics, float64(st.Panics))
	}
	if f := c.src.Depths; f != nil {
		d := f()
		for _, l := range topN(d.Scheduled, MaxLabelValues) {
			gauge(c.scheduled, float64(l.n), l.label)
		}
		for _, l := range topN(d.Ready, MaxLabelValues) {
			gauge(c.ready, float64(l.n), l.label)
		}
		gauge(c.conns, float64(d.Connections))
	}
	if f := c.src.SMTPSessions; f != nil {
		gauge(c.sessions, float64(f()))
	}
	if f := c.src.SMTPRefused; f != nil {
		for limit, n := range f() {
			counter(c.refusedConns, float64(n), limit)
		}
	}
	if f := c.src.Spool; f != nil {
		st := f()
		gauge(c.free, float64(st.Free))
		gauge(c.reserve, float64(st.MinFree))
		gauge(c.below, b2f(st.BelowReserve))
		gauge(c.failed, b2f(st.Failed))
		counter(c.refusals, float64(st.SpaceRefusals))
	}
	if f := c.src.Cluster; f != nil {
		st := f()
		gauge(c.redisUp, b2f(st.Up))
		counter(c.redisErrors, float64(st.Errors))
		counter(c.fallbacks, float64(st.Fallbacks), st.Policy)
		gauge(c.leases, float64(st.Leases))
	}
	if f := c.src.Webhook; f != nil {
		st := f()
		gauge(c.whQueue, float64(st.QueueBytes))
		counter(c.whBatches, float64(st.Batches))
		counter(c.whRecords, float64(st.Records))
		counter(c.whFailed, float64(st.FailedPosts))
		counter(c.whDropped, float64(st.Dropped))
		gauge(c.whFailing, b2f(st.Failing))
	}
	if f := c.src.Plugins; f != nil {
		// Plugin names are configured, so they are few; still, two plugins with one file
		// name (different directories) must not make a duplicate series.
		seen := map[string]bool{}
		for _, p := range f() {
			name := clean(p.Name)
			if seen[name] || len(seen) >= MaxLabelValues {
				continue
			}
			seen[name] = true
			counter(c.reloads, float64(p.Reloads), name, "ok")
			counter(c.reloads, float64(p.ReloadFailures), name, "failed")
			gauge(c.breaker, b2f(p.BreakerOpen), name)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
