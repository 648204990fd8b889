package config

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigParses(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTP.Listen[0] != "127.0.0.1:2525" || c.Spool.Path != "data/spool" || c.Logs.Dir != "data/logs" {
		t.Fatalf("embedded default: %+v", c)
	}
	if c.Queue.RetryInterval.D() != 20*time.Minute || c.Queue.MaxAge.D() != 7*24*time.Hour {
		t.Fatalf("queue defaults: %+v", c.Queue)
	}
	if c.Delivery.ConnectionLimit != 32 || c.Delivery.MaxDeliveriesPerConnection != 1024 || c.Delivery.SMTPPort != 25 {
		t.Fatalf("delivery defaults: %+v", c.Delivery)
	}
	if int64(c.SMTP.MaxMessageSize) != 20<<20 {
		t.Fatalf("max size %d", c.SMTP.MaxMessageSize)
	}
	if c.Spool.MinFree != 1<<30 || Defaults().Spool.MinFree != 1<<30 {
		t.Fatalf("spool.min_free default %d", c.Spool.MinFree)
	}
	if c, err := Parse("[spool]\nmin_free = \"2GiB\"\n"); err != nil || c.Spool.MinFree != 2<<30 {
		t.Fatalf("spool.min_free = 2GiB: %v %v", c, err)
	}
}

func TestSpecExampleParses(t *testing.T) {
	// A config using a key of every table, as operators write them.
	c, err := Parse(`
hostname = "mta.example.test"
[spool]
path = "data/spool"
[smtp]
listen = ["127.0.0.1:2525"]
relay_hosts = ["127.0.0.0/8", "::1/128"]
max_message_size = "20MiB"
[http]
listen = "127.0.0.1:8025"
[dns]
resolvers = ["127.0.0.1:5353"]
[delivery]
smtp_port = 25
prohibited_hosts = ["127.0.0.0/8", "::1/128", "0.0.0.0/8", "::/128"]
[queue]
retry_interval = "20m"
max_age = "7d"
[logs]
dir = "data/logs"
[[plugins]]
path = "plugins/router.wasm"
[plugins.config]
smarthost = "my.smarthost.com"
nested = { a = 1 }
`)
	if err != nil {
		t.Fatal(err)
	}
	if c.Hostname != "mta.example.test" || c.DNS.Resolvers[0] != "127.0.0.1:5353" || c.Plugins[0].Config["smarthost"] != "my.smarthost.com" {
		t.Fatalf("%+v", c)
	}
}

func TestSMTPAuthKeys(t *testing.T) {
	// The keys of design.md §12 (AUTH, TLS, DKIM).
	c, err := Parse("[smtp]\nlisten_tls = [\"127.0.0.1:4650\"]\nauth_users_file = \"users.htpasswd\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.SMTP.ListenTLS) != 1 || c.SMTP.ListenTLS[0] != "127.0.0.1:4650" || c.SMTP.AuthUsersFile != "users.htpasswd" {
		t.Fatalf("%+v", c.SMTP)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ text, key string }{
		{"bogus = 1", "bogus"},
		{"[smtp]\nlisten_addr = []", "smtp.listen_addr"},
		{"[smtp]\nlisten = [\"localhost\"]", "smtp.listen"},
		{"[smtp]\nlisten_tls = [\"localhost:465\"]", "smtp.listen_tls"},
		{"[smtp]\nauth_users_file = 3", "smtp.auth_users_file"},
		{"[smtp]\nrelay_hosts = [\"nonsense\"]", "smtp.relay_hosts"},
		{"[smtp]\nrelay_hosts = [\"192.168.1.1/24\"]", "smtp.relay_hosts"},
		{"[smtp]\nmax_message_size = \"20 parsecs\"", "smtp.max_message_size"},
		{"[smtp]\nmax_message_size = \"2GiB\"", "smtp.max_message_size"}, // more than the spool can store
		{"[smtp]\nmax_errors = 0", "smtp.max_errors"},
		{"[smtp]\nmax_connections_per_ip = 0", "smtp.max_connections_per_ip"},
		{"[smtp]\nmax_connections_per_ip = -1", "smtp.max_connections_per_ip"},
		{"[smtp]\nmax_connections_per_ip = \"many\"", "smtp.max_connections_per_ip"},
		{"control_socket = \"/" + strings.Repeat("d", 90) + "/ctl.sock\"", "control_socket"}, // binds at 117 bytes
		{"[queue]\nretry_interval = \"soon\"", "queue.retry_interval"},
		{"[queue]\nmax_age = 0", "queue.max_age"},
		{"[spool]\nmin_free = 0", "spool.min_free"},
		{"[spool]\nmin_free = \"plenty\"", "spool.min_free"},
		{"[delivery]\nsmtp_port = 70000", "delivery.smtp_port"},
		{"[delivery]\nenable_tls = \"Sometimes\"", "delivery.enable_tls"},
		{"[delivery]\nprohibited_hosts = [\"x\"]", "delivery.prohibited_hosts"},
		{"[dns]\nresolvers = [\"8.8.8.8\"]", "dns.resolvers"},
		{"[http]\nlisten = \"0.0.0.0:8025\"", "http.token"},
		{"[[plugins]]\npath = \"\"", "plugins[0].path"},
		{"[bounce]\nenabled = \"no\"", "bounce.enabled"},
		{"[bounce]\nmax_returned_size = -1", "bounce.max_returned_size"},
		{"[bounce]\nmax_returned_size = \"lots\"", "bounce.max_returned_size"},
		{"[bounce]\ntenant = \"a@b\"", "bounce.tenant"},
		{"[bounce]\nnotify = true", "bounce.notify"},
		{"[[plugins]]\npath = \"x.wasm\"\nlimit = 3", "plugins.limit"},
		// Names that go out verbatim in the banner, EHLO and Received (RFC 5321 §4.1.1.1).
		{"hostname = \"bad host name!\"", "configuration key hostname"},
		{"hostname = \"mta.example.test\\r\\n250 x\"", "configuration key hostname"},
		{"[delivery]\nehlo_domain = \"bad name\"", "configuration key delivery.ehlo_domain"},
	} {
		_, err := Parse(tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%q: error %v does not name %s", tc.text, err, tc.key)
		}
	}
}

func TestDurationsAndSizes(t *testing.T) {
	for in, want := range map[string]time.Duration{"90s": 90 * time.Second, "20m": 20 * time.Minute, "7d": 7 * 24 * time.Hour, "1d12h": 36 * time.Hour} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	c, err := Parse("[queue]\nretry_interval = 90\n")
	if err != nil || c.Queue.RetryInterval.D() != 90*time.Second {
		t.Fatalf("integer seconds: %v %v", c, err)
	}
	for in, want := range map[string]int64{"20MiB": 20 << 20, "10MB": 10e6, "512k": 512 << 10, "1000": 1000} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
}

// Values the plugin runtime cannot take, or durations and sizes that overflow, are errors
// naming the key (a max_memory over 4GiB used to panic at start or on a reload).
func TestPluginLimitsAndOverflowsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ text, key string }{
		{"[[plugins]]\npath = \"x.wasm\"\nmax_memory = \"5GiB\"", "plugins[0].max_memory"},
		{"[[plugins]]\npath = \"x.wasm\"\nmax_memory = 4294967297", "plugins[0].max_memory"},
		{"[[plugins]]\npath = \"x.wasm\"\nmax_memory = \"1KiB\"", "plugins[0].max_memory"},
		{"[[plugins]]\npath = \"x.wasm\"\n[[plugins]]\npath = \"y.wasm\"\nmax_memory = \"8GiB\"", "plugins[1].max_memory"},
		{"[[plugins]]\npath = \"x.wasm\"\npool_size = 100000", "plugins[0].pool_size"},
		{"[[plugins]]\npath = \"x.wasm\"\ntimeout = \"300000d\"", "timeout"},
		{"[[plugins]]\npath = \"x.wasm\"\ntimeout = \"11m\"", "plugins[0].timeout"},
		{"[queue]\nmax_age = \"300000d\"", "queue.max_age"},
		{"[queue]\nmax_age = \"NaNd\"", "queue.max_age"},
		{"[queue]\nmax_age = \"Infd\"", "queue.max_age"},
		{"[queue]\nmax_age = \"1e300d\"", "queue.max_age"},
		{"[queue]\nretry_interval = 99999999999999", "queue.retry_interval"},
		{"[smtp]\nmax_message_size = \"99999999999999999999GiB\"", "smtp.max_message_size"},
		{"[smtp]\nmax_message_size = \"9000000000GiB\"", "smtp.max_message_size"},
	} {
		_, err := Parse(tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%q: error %v does not name %s", tc.text, err, tc.key)
		}
	}
	c, err := Parse("[[plugins]]\npath = \"x.wasm\"\nmax_memory = \"4GiB\"\npool_size = 1024")
	if err != nil || int64(*c.Plugins[0].MaxMemory) != 4<<30 {
		t.Fatalf("4GiB: %v", err)
	}
	for _, in := range []string{"99999999999999999999GiB", "9000000000GiB", "-1", "1e3", ".", ""} {
		if n, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d", in, n)
		}
	}
}

// FuzzParseSize: any string gives a non-negative size or an error, never a panic or a wrapped
// negative value; plain digits are bytes.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"20MiB", "10MB", "512k", "1000", "1.5GiB", "99999999999999999999GiB", "9000000000GiB", "-1", "1e3", ".", "", " 4 GiB ", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("%q parsed as %d", s, n)
		}
		if v, perr := strconv.ParseInt(strings.TrimSpace(s), 10, 64); perr == nil && v != n {
			t.Fatalf("%q parsed as %d, want %d", s, n, v)
		}
	})
}

func TestHTTPConfig(t *testing.T) {
	c, err := Parse("")
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Listen != "127.0.0.1:8025" || c.HTTP.MaxRequestSize != 2<<20 || c.HTTP.ReadTimeout.D() != time.Minute {
		t.Fatalf("http defaults: %+v", c.HTTP)
	}
	for _, tc := range []struct{ text, key string }{
		{"[http]\nlisten = \"0.0.0.0:8025\"\n", "http.token"},
		{"[http]\nlisten = \"[::]:8025\"\ninject_token = \"i\"\n", "http.token"},
		{"[http]\nlisten = \"localhost:8025\"\ntoken = \"t\"\n", "http.listen"},
		{"[http]\ntoken = \"two words\"\n", "http.token"},
		{"[http]\ninject_token = \"é\"\n", "http.inject_token"},
		{"[http]\nmax_request_size = 0\n", "http.max_request_size"},
		{"[http]\nwrite_timeout = \"0s\"\n", "http.write_timeout"},
		{"[http]\nbogus = 1\n", "http.bogus"},
	} {
		if _, err := Parse(tc.text); err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%q: error %v, want one naming %s", tc.text, err, tc.key)
		}
	}
	for _, ok := range []string{
		"[http]\nlisten = \"\"\n",
		"[http]\nlisten = \"0.0.0.0:8025\"\ntoken = \"s3cret\"\n",
		"[http]\nlisten = \"[::1]:8025\"\n",
		"[http]\nmax_request_size = \"10MiB\"\nread_header_timeout = \"5s\"\nidle_timeout = 30\n",
	} {
		if _, err := Parse(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

func TestDKIMConfig(t *testing.T) {
	c, err := Parse(`
[[dkim]]
name = "main"
key_file = "keys/main.pem"
sign_sender_domains = ["example.com"]
domain = "example.com"
selector = "s2026"
headers = ["From", "To", "Subject", "Date", "Message-ID"]

[[dkim]]
name = "plugin-only"
key_file = "keys/other.pem"
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.DKIM) != 2 || c.DKIM[0].Selector != "s2026" || len(c.DKIM[0].Headers) != 5 || c.DKIM[1].KeyFile != "keys/other.pem" {
		t.Fatalf("%+v", c.DKIM)
	}
	entry := "[[dkim]]\nname = \"main\"\nkey_file = \"k.pem\"\n"
	for text, want := range map[string]string{
		"[[dkim]]\nkey_file = \"k.pem\"\n":                                            "dkim[0].name",
		"[[dkim]]\nname = \"a b\"\nkey_file = \"k.pem\"\n":                            "dkim[0].name",
		"[[dkim]]\nname = \"main\"\n":                                                 "dkim[0].key_file: must not be empty",
		entry + entry:                                                                 `dkim[1].name: "main" is used by an earlier`,
		entry + "selector = \"s\"\n":                                                  "dkim[0].sign_sender_domains: domain, selector, headers and over_sign are used only",
		entry + "over_sign = true\n":                                                  "dkim[0].sign_sender_domains: domain, selector, headers and over_sign are used only",
		entry + "sign_sender_domains = [\"example.com\"]\n":                           "dkim[0].domain: domain is required",
		entry + "sign_sender_domains = [\"exa mple.com\"]\n":                          "dkim[0].sign_sender_domains",
		entry + "sign_sender_domains = [\"example.com\"]\ndomain = \"example.com\"\n": "dkim[0].selector",
		entry + "sign_sender_domains = [\"example.com\"]\ndomain = \"example.com\"\nselector = \"s\"\nheaders = [\"To\"]\n": `dkim[0].headers: headers: "From" must be signed`,
		entry + "keyfile = \"x\"\n": "unknown configuration key dkim.keyfile",
	} {
		if _, err := Parse(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", text, err, want)
		}
	}
}

func TestBounceConfig(t *testing.T) {
	c, err := Parse("")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Bounce.Enabled || c.Bounce.MaxReturnedSize != 100<<10 || c.Bounce.Tenant != "" {
		t.Fatalf("defaults %+v", c.Bounce)
	}
	c, err = Parse("[bounce]\nmax_returned_size = 0\ntenant = \"dsn\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Bounce.Enabled || c.Bounce.MaxReturnedSize != 0 || c.Bounce.Tenant != "dsn" {
		t.Fatalf("parsed %+v", c.Bounce)
	}
	if c, err = Parse("[bounce]\nenabled = false\n"); err != nil || c.Bounce.Enabled {
		t.Fatalf("enabled = false: %+v %v", c, err)
	}
}

// Keys of a table that is off would be accepted and do nothing: they are refused, naming the
// key and why.
func TestIdleKeysRefused(t *testing.T) {
	for text, want := range map[string]string{
		"[logs]\nstdout = true\nmax_size = \"10MiB\"\n":          "logs.max_size: is set but logs.stdout is true",
		"[logs]\nstdout = true\nrotate_daily = true\n":           "logs.rotate_daily: is set but logs.stdout is true",
		"[logs]\nstdout = true\ncompress = true\n":               "logs.compress",
		"[logs]\nstdout = true\nmax_backups = 3\n":               "logs.max_backups",
		"[bounce]\nenabled = false\ntenant = \"dsn\"\n":          "bounce.tenant: is set but bounce.enabled is false",
		"[bounce]\nenabled = false\nmax_returned_size = 0\n":     "bounce.max_returned_size",
		"[http]\nlisten = \"\"\ntoken = \"secret-token-1234\"\n": `http.token: is set but http.listen is ""`,
		"[http]\nlisten = \"\"\nread_timeout = \"5s\"\n":         "http.read_timeout",
	} {
		if _, err := Parse(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", text, err, want)
		}
	}
	// The same keys with their table on are fine.
	for _, text := range []string{
		"[logs]\nmax_size = \"10MiB\"\nrotate_daily = true\ncompress = true\nmax_backups = 3\n",
		"[logs]\nstdout = true\n",
		"[bounce]\nenabled = true\ntenant = \"dsn\"\n",
		"[http]\nlisten = \"\"\n",
	} {
		if _, err := Parse(text); err != nil {
			t.Errorf("%q: %v", text, err)
		}
	}
}
