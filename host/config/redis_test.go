package config

import (
	"strings"
	"testing"
)

func TestRedisKeys(t *testing.T) {
	c, err := Parse(`
[secrets]
redis = "pa55"
[redis]
url = "rediss://10.0.0.5:6380/2"
password = "redis"
node_name = "mta1"
on_unavailable = "fail_closed"
`)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Redis.Enabled() || c.Redis.OnUnavailable != FailClosed || c.Redis.ClusterName != "wasmta" || c.Secrets[c.Redis.Password].Value() != "pa55" {
		t.Fatalf("got %+v", c.Redis)
	}
	if d, _ := Parse(``); d.Redis.Enabled() {
		t.Fatal("redis enabled by default")
	}
	for text, key := range map[string]string{
		`url = "http://127.0.0.1:6379"`:                            "redis.url",
		`url = "redis://:pw@127.0.0.1:6379"`:                       "redis.url",
		`url = "redis://127.0.0.1:6379/x"`:                         "redis.url",
		`url = "redis://127.0.0.1:6379/0?pool=3"`:                  "redis.url",
		`url = "redis:///0"`:                                       "redis.url",
		`on_unavailable = "ignore"`:                                "redis.on_unavailable",
		`password = "nope"` + "\n" + `url = "redis://127.0.0.1:1"`: "redis.password",
		`pool_size = 0`:                                            "redis.pool_size",
		`timeout = "0s"`:                                           "redis.timeout",
		`lease_ttl = "100ms"`:                                      "redis.lease_ttl",
		`lease_ttl = "2h"`:                                         "redis.lease_ttl",
		`cluster_name = ""`:                                        "redis.cluster_name",
		`node_name = "a b"`:                                        "redis.node_name",
		`url = "redis://127.0.0.1:1"` + "\n" + `tls_ca_file = "ca.pem"`:               "redis.tls_ca_file",
		`url = "rediss://127.0.0.1:1"` + "\n" + `tls_ca_file = "/nonexistent/ca.pem"`: "redis.tls_ca_file",
		`url = "rediss://127.0.0.1:1"` + "\n" + `tls_ca_file = "/etc/hostname"`:       "redis.tls_ca_file",
	} {
		_, err := Parse("[redis]\n" + text)
		if err == nil || !strings.Contains(err.Error(), "configuration key "+key) {
			t.Errorf("%s: got %v, want an error naming %s", text, err, key)
		}
	}
}
