package config

import (
	"strings"
	"testing"
)

// Values that were accepted but did not do what they say: dns.negative_ttl = 0 and a plugin's
// timeout = "0s" or max_memory = 0 silently meant the defaults (5m, 100ms, 64MiB), and the
// [redis] keys that only a cluster uses were taken without redis.url (a password naming no
// secret, a CA file that does not exist) and did nothing. Each is refused naming the key.
func TestAudit9ValuesThatDidNothing(t *testing.T) {
	for _, tc := range []struct{ text, key string }{
		{"[dns]\nnegative_ttl = \"0s\"", "configuration key dns.negative_ttl:"},
		{"[dns]\nnegative_ttl = 0", "configuration key dns.negative_ttl:"},
		{"[[plugins]]\npath = \"x.wasm\"\ntimeout = \"0s\"", "configuration key plugins[0].timeout:"},
		{"[[plugins]]\npath = \"x.wasm\"\n[[plugins]]\npath = \"y.wasm\"\ntimeout = 0", "configuration key plugins[1].timeout:"},
		{"[[plugins]]\npath = \"x.wasm\"\nmax_memory = 0", "configuration key plugins[0].max_memory:"},
		{"[redis]\npassword = \"nosuch\"", "configuration key redis.password:"},
		{"[secrets]\nr = \"pw\"\n[redis]\npassword = \"r\"", "configuration key redis.password:"},
		{"[redis]\ntls_ca_file = \"nosuch.pem\"", "configuration key redis.tls_ca_file:"},
		{"[redis]\nusername = \"u\"", "configuration key redis.username:"},
		{"[redis]\nnode_name = \"n1\"", "configuration key redis.node_name:"},
	} {
		_, err := Parse(tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%q: error %v, want one naming %s", tc.text, err, tc.key)
		}
	}
	// Unset keeps the defaults; set in range is taken.
	c, err := Parse("[[plugins]]\npath = \"x.wasm\"\n[[plugins]]\npath = \"y.wasm\"\ntimeout = \"2s\"\nmax_memory = \"1MiB\"")
	if err != nil {
		t.Fatal(err)
	}
	if c.Plugins[0].Timeout != nil || c.Plugins[0].MaxMemory != nil || c.Plugins[1].Timeout.D().String() != "2s" || int64(*c.Plugins[1].MaxMemory) != 1<<20 {
		t.Fatalf("plugins: %+v", c.Plugins)
	}
}

// ChangedKeys names what a reload does not apply, by its TOML key, and leaves out what it does.
func TestChangedKeys(t *testing.T) {
	a, err := Parse("[secrets]\ns = \"one\"\n[[plugins]]\npath = \"x.wasm\"")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse("[secrets]\ns = \"two\"\n[smtp]\nmax_recipients = 1\n[egress]\nconnection_limit = 2\n[[egress.path]]\nsite = \"x\"\n[[plugins]]\npath = \"y.wasm\"\n[[dkim]]\nname = \"k\"\nkey_file = \"k.pem\"")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(ChangedKeys(a, b), " ")
	if want := "smtp.max_recipients egress.connection_limit egress.path secrets"; got != want {
		t.Fatalf("ChangedKeys = %q, want %q", got, want)
	}
	if got := ChangedKeys(a, a); len(got) != 0 {
		t.Fatalf("unchanged: %q", got)
	}
}

// A user name in redis.url was accepted and dropped: host/cluster gives the client
// redis.username ("" when unset, the default user) over whatever the URL said. It is refused
// naming the key, as a password in the URL already was.
func TestAudit9RedisURLUser(t *testing.T) {
	for _, tc := range []struct{ text, key string }{
		{"[redis]\nurl = \"redis://alice@127.0.0.1:6379/0\"", "configuration key redis.url:"},
		{"[redis]\nurl = \"rediss://alice@127.0.0.1:6379/0\"\nusername = \"alice\"", "configuration key redis.url:"},
	} {
		_, err := Parse(tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%q: error %v, want one naming %s", tc.text, err, tc.key)
		}
	}
	if _, err := Parse("[redis]\nurl = \"redis://127.0.0.1:6379/0\"\nusername = \"alice\""); err != nil {
		t.Fatal(err)
	}
}

// [logs.webhook] keys without url were accepted unchecked (batch_size = 0 too) and did nothing.
func TestAudit9WebhookKeysWithoutURL(t *testing.T) {
	for _, k := range []string{"batch_size = 0", "timeout = \"1s\"", "bearer_token = \"t\"", "headers = { X-A = \"b\" }",
		"retry_interval = \"1s\"", "max_retry_interval = \"1m\"", "max_backlog = \"2MiB\"", "dir = \"w\""} {
		name, _, _ := strings.Cut(k, " ")
		_, err := Parse("[logs.webhook]\n" + k)
		if err == nil || !strings.Contains(err.Error(), "configuration key logs.webhook."+name+":") {
			t.Errorf("%q: error %v, want one naming logs.webhook.%s", k, err, name)
		}
	}
	if _, err := Parse("[logs.webhook]\nurl = \"http://127.0.0.1:1/\"\nbatch_size = 5"); err != nil {
		t.Fatal(err)
	}
}

// An [[egress.path]] entry that an earlier one always matches first (the same site, or a
// site the earlier entry takes for every routing domain) was accepted and never applied.
func TestAudit9ShadowedEgressPath(t *testing.T) {
	for _, tc := range []struct{ text, key string }{
		{"[[egress.path]]\nsite = \"mx.example\"\nconnection_limit = 1\n[[egress.path]]\nsite = \"MX.example\"\nconnection_limit = 2", "configuration key egress.path[1]:"},
		{"[[egress.path]]\nsite = \"mx.example\"\n[[egress.path]]\nsite = \"mx.example\"\nrouting_domain = \"a.example\"", "configuration key egress.path[1]:"},
		{"[[egress.path]]\nrouting_domain = \"a.example\"\n[[egress.path]]\nsite = \"other\"\n[[egress.path]]\nrouting_domain = \"a.example\"\nsite = \"mx.example\"", "configuration key egress.path[2]:"},
	} {
		_, err := Parse(tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%q: error %v, want one naming %s", tc.text, err, tc.key)
		}
	}
	// The narrower entry first, then the broader one: both can apply.
	if _, err := Parse("[[egress.path]]\nsite = \"mx.example\"\nrouting_domain = \"a.example\"\n[[egress.path]]\nsite = \"mx.example\"\n[[egress.path]]\nrouting_domain = \"a.example\""); err != nil {
		t.Fatal(err)
	}
}
