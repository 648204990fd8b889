package config

import (
	"strings"
	"testing"
	"time"
)

func TestLogsConfig(t *testing.T) {
	c, err := Parse(`[logs]
dir = "/var/log/wasmta"
max_size = "10MiB"
rotate_daily = true
compress = false
max_backups = 30
bounce_rules = "rules.toml"
[logs.webhook]
url = "https://hooks.example.com/wasmta"
batch_size = 50
timeout = "5s"
bearer_token = "t"
headers = { "X-Api-Key" = "k" }
retry_interval = "2s"
max_retry_interval = "1m"
max_backlog = "100MiB"
`)
	if err != nil {
		t.Fatal(err)
	}
	l := c.Logs
	if l.MaxSize != 10<<20 || !l.RotateDaily || l.Compress || l.MaxBackups != 30 || l.BounceRules != "rules.toml" {
		t.Fatalf("logs: %+v", l)
	}
	w := l.Webhook
	if w.BatchSize != 50 || w.Timeout.D() != 5*time.Second || w.Headers["X-Api-Key"] != "k" || w.MaxRetryInterval.D() != time.Minute || w.MaxBacklog != 100<<20 {
		t.Fatalf("webhook: %+v", w)
	}
	d := Defaults().Logs
	if d.MaxSize != 100<<20 || !d.Compress || d.Stdout || d.Webhook.URL != "" {
		t.Fatalf("defaults: %+v", d)
	}
	for _, tc := range []struct{ text, key string }{
		{"[logs]\nmax_size = \"1KiB\"\n", "logs.max_size"},
		{"[logs]\nmax_backups = -1\n", "logs.max_backups"},
		{"[logs.webhook]\nurl = \"ftp://x\"\n", "logs.webhook.url"},
		{"[logs.webhook]\nurl = \"http://127.0.0.1:9\"\nbatch_size = 0\n", "logs.webhook.batch_size"},
		{"[logs.webhook]\nurl = \"http://127.0.0.1:9\"\ntimeout = \"0s\"\n", "logs.webhook.timeout"},
		{"[logs.webhook]\nurl = \"http://127.0.0.1:9\"\nretry_interval = \"1m\"\nmax_retry_interval = \"1s\"\n", "logs.webhook.max_retry_interval"},
		{"[logs.webhook]\nurl = \"http://127.0.0.1:9\"\nheaders = { \"Bad Name\" = \"x\" }\n", "logs.webhook.headers"},
		{"[logs.webhook]\nurl = \"http://127.0.0.1:9\"\nheaders = { \"X-Wasmta-Batch-Id\" = \"x\" }\n", "logs.webhook.headers"},
		{"[logs.webhook]\nurl = \"http://127.0.0.1:9\"\nmax_backlog = \"1KiB\"\n", "logs.webhook.max_backlog"},
		{"[logs.webhook]\nurls = \"x\"\n", "logs.webhook.urls"},
	} {
		if _, err := Parse(tc.text); err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%q: %v, want an error naming %s", tc.text, err, tc.key)
		}
	}
}
