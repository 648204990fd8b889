package config

import (
	"net/http"
	"net/url"

	"golang.org/x/net/http/httpguts"
)

// maxWebhookBatch bounds [logs.webhook] batch_size: one request body holds at most about
// 4 MiB of records anyway.
const maxWebhookBatch = 10000

func (l *LogsConfig) validate() error {
	if l.MaxSize < 0 {
		return keyErr("logs.max_size", "must not be negative")
	}
	if l.MaxSize > 0 && l.MaxSize < 4096 {
		return keyErr("logs.max_size", "%d bytes: at least 4KiB, or 0 for no size rotation", int64(l.MaxSize))
	}
	if l.MaxBackups < 0 {
		return keyErr("logs.max_backups", "must not be negative")
	}
	w := &l.Webhook
	if w.URL == "" {
		return nil
	}
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return keyErr("logs.webhook.url", "%q is not an http:// or https:// URL", w.URL)
	}
	if w.BatchSize < 1 || w.BatchSize > maxWebhookBatch {
		return keyErr("logs.webhook.batch_size", "%d: must be from 1 to %d", w.BatchSize, maxWebhookBatch)
	}
	for _, p := range []struct {
		key string
		v   Duration
	}{{"logs.webhook.timeout", w.Timeout}, {"logs.webhook.retry_interval", w.RetryInterval}, {"logs.webhook.max_retry_interval", w.MaxRetryInterval}} {
		if p.v <= 0 {
			return keyErr(p.key, "must be greater than zero")
		}
	}
	if w.MaxRetryInterval < w.RetryInterval {
		return keyErr("logs.webhook.max_retry_interval", "%s is less than retry_interval %s", w.MaxRetryInterval, w.RetryInterval)
	}
	if w.MaxBacklog < 1<<20 {
		return keyErr("logs.webhook.max_backlog", "%d bytes: at least 1MiB", int64(w.MaxBacklog))
	}
	for k, v := range w.Headers {
		if !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(v) {
			return keyErr("logs.webhook.headers", "%q is not a valid HTTP header", k)
		}
		switch http.CanonicalHeaderKey(k) {
		case "Content-Type", "Content-Length", "Host", "X-Wasmta-Batch-Id":
			return keyErr("logs.webhook.headers", "%q is set by the relay", k)
		}
	}
	return nil
}
