// Package config reads the server's TOML configuration (design.md §11). Every key is optional; the
// defaults make a loopback relay that cannot relay for anyone else. Unknown keys and bad values
// are errors that name the key, so a typo never silently changes behaviour.
package config

import (
	_ "embed"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/wasmta/wasmta/abi"
)

// Default is the embedded configuration `wasmta serve` uses when no --config is given.
//
//go:embed default.toml
var Default string

// Reference is every key with its default value and a comment: what `wasmta config default`
// prints. Parsed, it gives exactly Defaults() (reference_test.go keeps it complete and true).
//
//go:embed reference.toml
var Reference string

// Config is the whole server configuration.
type Config struct {
	Hostname string         `toml:"hostname"`
	Spool    SpoolConfig    `toml:"spool"`
	SMTP     SMTPConfig     `toml:"smtp"`
	HTTP     HTTPConfig     `toml:"http"`
	DNS      DNSConfig      `toml:"dns"`
	Delivery DeliveryConfig `toml:"delivery"`
	Egress   EgressConfig   `toml:"egress"`
	// EgressSources are the named [egress_source.NAME] tables, EgressPools the
	// [egress_pool.NAME] tables that group them; a queue config's egress_pool names a pool.
	EgressSources map[string]EgressSource `toml:"egress_source"`
	EgressPools   map[string]EgressPool   `toml:"egress_pool"`
	// Secrets are named secrets (passwords) that other keys refer to by name.
	Secrets map[string]Secret `toml:"secrets"`
	Queue   QueueConfig       `toml:"queue"`
	Logs    LogsConfig        `toml:"logs"`
	Bounce  BounceConfig      `toml:"bounce"`
	Plugins []PluginConfig    `toml:"plugins"`
	DKIM    []DKIMConfig      `toml:"dkim"`
	// Redis joins the node to a cluster that shares limits and admin rules (docs/cluster.md).
	Redis RedisConfig `toml:"redis"`
	// WasmCache holds compiled plugin code so restarts and reloads skip compilation.
	WasmCache string `toml:"wasm_cache"`
	// Watch reloads plugins when their files or the config file change on disk.
	Watch bool `toml:"watch"`
	// ControlSocket is the local admin socket (`wasmta plugin reload|status`), mode 0600.
	ControlSocket string `toml:"control_socket"`
}

type SpoolConfig struct {
	Path string `toml:"path"`
	// MinFree is the free space kept on the spool's filesystem: below it new mail gets
	// 452 4.3.1 while deliveries go on, because Badger crashes rather than fails on a full disk.
	MinFree Size `toml:"min_free"`
}

type SMTPConfig struct {
	Listen         []string `toml:"listen"`
	RelayHosts     []string `toml:"relay_hosts"`
	MaxMessageSize Size     `toml:"max_message_size"`
	MaxRecipients  int      `toml:"max_recipients"`
	MaxLineLength  int      `toml:"max_line_length"`
	MaxConnections int      `toml:"max_connections"`
	// MaxConnectionsPerIP caps the connections of one client address (an IPv4 address or an
	// IPv6 /64), over all listeners together (Postfix's smtpd_client_connection_count_limit, 50).
	MaxConnectionsPerIP int `toml:"max_connections_per_ip"`
	// MaxErrors: commands refused with 5xx per connection, then 421 4.7.0 and the connection closes
	// (Postfix's smtpd_hard_error_limit, 20).
	MaxErrors   int      `toml:"max_errors"`
	IdleTimeout Duration `toml:"idle_timeout"` // inactivity: every read that makes progress extends it
	// DataTimeout caps a whole DATA phase, however steady the progress (Sendmail's
	// Timeout.datablock, 1h; Postfix has none, only its per-read smtpd_timeout).
	DataTimeout    Duration `toml:"data_timeout"`
	TLSCertificate string   `toml:"tls_certificate"`
	TLSPrivateKey  string   `toml:"tls_private_key"`
	// ListenTLS are implicit-TLS listeners (RFC 8314 §3.3, port 465 style): the TLS handshake
	// comes first, then SMTP with the limits of Listen; AUTH is offered at once.
	ListenTLS []string `toml:"listen_tls"`
	// AuthUsersFile holds "user:hash" lines (bcrypt or argon2id) for AUTH PLAIN and LOGIN,
	// offered only over TLS; "" offers no AUTH.
	AuthUsersFile string `toml:"auth_users_file"`
	// ShutdownTimeout bounds how long a graceful stop waits for in-flight transactions.
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
}

// HTTPConfig is the [http] table: the HTTP API (injection now, admin later).
type HTTPConfig struct {
	Listen string `toml:"listen"` // "" disables the HTTP server
	// Token, when set, is required as "Authorization: Bearer <token>" on every route.
	Token string `toml:"token"`
	// InjectToken, when set, is also accepted on the inject route (and only there), so an
	// injector never holds the admin token.
	InjectToken       string   `toml:"inject_token"`
	MaxRequestSize    Size     `toml:"max_request_size"`
	ReadHeaderTimeout Duration `toml:"read_header_timeout"`
	ReadTimeout       Duration `toml:"read_timeout"`
	WriteTimeout      Duration `toml:"write_timeout"`
	IdleTimeout       Duration `toml:"idle_timeout"`
}

type DNSConfig struct {
	Resolvers   []string `toml:"resolvers"` // empty: from /etc/resolv.conf
	Timeout     Duration `toml:"timeout"`
	NegativeTTL Duration `toml:"negative_ttl"`
}

type DeliveryConfig struct {
	SMTPPort                   int      `toml:"smtp_port"`
	ProhibitedHosts            []string `toml:"prohibited_hosts"`
	ConnectionLimit            int      `toml:"connection_limit"`
	MaxDeliveriesPerConnection int      `toml:"max_deliveries_per_connection"`
	ConnectTimeout             Duration `toml:"connect_timeout"`
	CommandTimeout             Duration `toml:"command_timeout"`
	DataTimeout                Duration `toml:"data_timeout"`
	IdleTimeout                Duration `toml:"idle_timeout"`
	EnableTLS                  string   `toml:"enable_tls"`  // abi.TLSModes; or [egress] enable_tls
	EHLODomain                 string   `toml:"ehlo_domain"` // or [egress] ehlo_domain
}

type QueueConfig struct {
	RetryInterval    Duration `toml:"retry_interval"`
	MaxRetryInterval Duration `toml:"max_retry_interval"` // 0: no cap
	MaxAge           Duration `toml:"max_age"`
	RefreshInterval  Duration `toml:"refresh_interval"`
	// EgressPool is the pool of queues whose get_queue_config sets none; "": "unspecified".
	EgressPool string `toml:"egress_pool"`
}

// BounceConfig is the [bounce] table: the delivery status notifications (RFC 3464) sent to
// the sender of a message that bounces or expires (docs/bounces.md).
type BounceConfig struct {
	// Enabled sends DSNs and advertises DSN (RFC 3461) in EHLO; false does neither.
	Enabled bool `toml:"enabled"`
	// MaxReturnedSize is the largest message returned whole on RET=FULL; a larger one comes
	// back as its headers. 0: always the headers.
	MaxReturnedSize Size `toml:"max_returned_size"`
	// Tenant, when set, is the DSNs' meta tenant: they are queued as "tenant@domain", so
	// get_queue_config can give them their own settings.
	Tenant string `toml:"tenant"`
}

// LogsConfig is the [logs] table: where log records go (docs/logs.md).
type LogsConfig struct {
	Dir string `toml:"dir"` // wasmta.jsonl, its rotated files, and the webhook's queue
	// Stdout writes records to standard output instead of files (containers, journald).
	Stdout bool `toml:"stdout"`
	// MaxSize rotates wasmta.jsonl before a record would take it past this size; 0: never.
	MaxSize Size `toml:"max_size"`
	// RotateDaily rotates at the first record after midnight UTC.
	RotateDaily bool `toml:"rotate_daily"`
	// Compress gzips rotated files.
	Compress bool `toml:"compress"`
	// MaxBackups keeps this many rotated files, deleting the oldest; 0 keeps all.
	MaxBackups int `toml:"max_backups"`
	// BounceRules is a bounce classification rules file; "" uses the shipped rules.
	BounceRules string        `toml:"bounce_rules"`
	Webhook     WebhookConfig `toml:"webhook"`
}

// WebhookConfig is [logs.webhook]: records POSTed in batches (JSON arrays) to URL.
type WebhookConfig struct {
	URL         string            `toml:"url"` // "" turns the webhook off
	BatchSize   int               `toml:"batch_size"`
	Timeout     Duration          `toml:"timeout"`
	BearerToken string            `toml:"bearer_token"`
	Headers     map[string]string `toml:"headers"`
	// RetryInterval is the first wait after a failed POST; it doubles up to MaxRetryInterval.
	RetryInterval    Duration `toml:"retry_interval"`
	MaxRetryInterval Duration `toml:"max_retry_interval"`
	// MaxBacklog caps the unsent records kept on disk; beyond it new records skip the webhook.
	MaxBacklog Size   `toml:"max_backlog"`
	Dir        string `toml:"dir"` // the queue; "" is <logs.dir>/webhook
}

// PluginConfig is one [[plugins]] entry. Plugins run in the order they are listed.
type PluginConfig struct {
	Path   string         `toml:"path"` // relative to the working directory, like every path
	Config map[string]any `toml:"config"`
	// MaxMemory and Timeout are nil when not set (the plugin host's defaults, 64MiB and
	// 100ms); a value set must be in range: 0 does not mean "the default" or "unlimited".
	MaxMemory *Size     `toml:"max_memory"` // per instance
	Timeout   *Duration `toml:"timeout"`    // per hook call
	PoolSize  int       `toml:"pool_size"`  // instances at most; default 2 × CPUs
}

// DKIMConfig is one [[dkim]] entry (design.md §12): a signing key that plugins name in dkim_sign,
// and optionally signing without a plugin for the listed envelope sender domains.
type DKIMConfig struct {
	Name              string   `toml:"name"`
	KeyFile           string   `toml:"key_file"`
	SignSenderDomains []string `toml:"sign_sender_domains"`
	Domain            string   `toml:"domain"`    // d=, for sign_sender_domains
	Selector          string   `toml:"selector"`  // s=, for sign_sender_domains
	Headers           []string `toml:"headers"`   // h=, for sign_sender_domains; default abi.DefaultDKIMHeaders
	OverSign          bool     `toml:"over_sign"` // for sign_sender_domains: abi.DKIMSign.OverSign
}

// Defaults returns the configuration every key falls back to.
func Defaults() Config {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return Config{
		Hostname: host,
		Spool:    SpoolConfig{Path: "data/spool", MinFree: 1 << 30}, // = spool.DefaultMinFree
		SMTP: SMTPConfig{
			Listen:              []string{"127.0.0.1:2525"},
			RelayHosts:          []string{"127.0.0.0/8", "::1/128"},
			MaxMessageSize:      20 << 20,
			MaxRecipients:       1024,
			MaxLineLength:       2000, // well above RFC 5321's 1000 octets; clients in the wild exceed it
			MaxConnections:      32768,
			MaxConnectionsPerIP: 50,
			MaxErrors:           20,
			IdleTimeout:         Duration(60e9),
			DataTimeout:         Duration(30 * 60e9), // 20 MiB at 12 KB/s; a slot held that long is cheap
			ShutdownTimeout:     Duration(30e9),
		},
		HTTP: HTTPConfig{
			Listen:            "127.0.0.1:8025",
			MaxRequestSize:    2 << 20, // KumoMTA's request_body_limit
			ReadHeaderTimeout: Duration(10e9),
			ReadTimeout:       Duration(60e9),
			WriteTimeout:      Duration(120e9),
			IdleTimeout:       Duration(120e9),
		},
		DNS: DNSConfig{Timeout: Duration(5e9), NegativeTTL: Duration(300e9)},
		Delivery: DeliveryConfig{
			SMTPPort:                   25,
			ProhibitedHosts:            []string{"127.0.0.0/8", "::1/128", "0.0.0.0/8", "::/128"},
			ConnectionLimit:            32,
			MaxDeliveriesPerConnection: 1024,
			ConnectTimeout:             Duration(60e9),
			CommandTimeout:             Duration(300e9),
			DataTimeout:                Duration(300e9),
			IdleTimeout:                Duration(5e9),
			EnableTLS:                  "Opportunistic",
		},
		Queue: QueueConfig{
			RetryInterval:   Duration(20 * 60e9),
			MaxAge:          Duration(7 * 24 * 3600e9),
			RefreshInterval: Duration(60e9),
		},
		Logs: LogsConfig{Dir: "data/logs", MaxSize: 100 << 20, Compress: true, Webhook: WebhookConfig{
			BatchSize: 100, Timeout: Duration(30e9), RetryInterval: Duration(1e9),
			MaxRetryInterval: Duration(300e9), MaxBacklog: 1 << 30,
		}},
		Bounce: BounceConfig{Enabled: true, MaxReturnedSize: 100 << 10}, // = bounce.DefaultMaxReturnedSize
		Redis: RedisConfig{ClusterName: "wasmta", OnUnavailable: FailOpen, PoolSize: 32,
			DialTimeout: Duration(2e9), Timeout: Duration(500e6), LeaseTTL: Duration(10e9)},
		WasmCache:     "data/wasm-cache",
		ControlSocket: "data/wasmta.sock",
		Watch:         true,
	}
}

// Load reads a configuration file; path "" means the embedded default.
func Load(path string) (*Config, error) {
	if path == "" {
		return Parse(Default)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes TOML text over the defaults and validates the result.
func Parse(text string) (*Config, error) {
	c := Defaults()
	md, err := toml.Decode(text, &c)
	if err != nil {
		return nil, err
	}
	var unknown []string
	for _, k := range md.Undecoded() {
		// Plugin config tables are free-form: they belong to the plugin.
		if len(k) >= 2 && k[0] == "plugins" && k[1] == "config" {
			continue
		}
		if err := unsupportedEgressKey(k); err != nil {
			return nil, err
		}
		unknown = append(unknown, k.String())
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("unknown configuration key %s", strings.Join(unknown, ", "))
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	if err := c.validateNames(md); err != nil {
		return nil, err
	}
	if err := c.validateEgress(md); err != nil {
		return nil, err
	}
	if err := c.validatePools(); err != nil {
		return nil, err
	}
	if err := c.validateRedis(md); err != nil {
		return nil, err
	}
	if c.Logs.Webhook.URL == "" {
		// Without url there is no webhook: its other keys would be accepted unchecked and do
		// nothing (the reference config has the whole table commented out).
		for _, k := range []string{"batch_size", "timeout", "bearer_token", "headers", "retry_interval", "max_retry_interval", "max_backlog", "dir"} {
			if md.IsDefined("logs", "webhook", k) {
				return nil, keyErr("logs.webhook."+k, "is set but logs.webhook.url is not: without url there is no webhook")
			}
		}
	}
	if err := c.refuseIdleKeys(md); err != nil {
		return nil, err
	}
	return &c, nil
}

// refuseIdleKeys refuses keys set where the table they belong to is off, each of which would
// be accepted and do nothing: rotation when records go to standard output, the DSN settings
// with bounces off, the HTTP settings with no HTTP listener.
func (c *Config) refuseIdleKeys(md toml.MetaData) error {
	for _, g := range []struct {
		off    bool
		table  string
		keys   []string
		reason string
	}{
		{c.Logs.Stdout, "logs", []string{"max_size", "rotate_daily", "compress", "max_backups"},
			"is set but logs.stdout is true: records go to standard output, no file is rotated"},
		{!c.Bounce.Enabled, "bounce", []string{"max_returned_size", "tenant"},
			"is set but bounce.enabled is false: no delivery status notification is sent"},
		{c.HTTP.Listen == "", "http", []string{"token", "inject_token", "max_request_size", "read_header_timeout", "read_timeout", "write_timeout", "idle_timeout"},
			`is set but http.listen is "": there is no HTTP server`},
	} {
		if !g.off {
			continue
		}
		for _, k := range g.keys {
			if md.IsDefined(g.table, k) {
				return keyErr(g.table+"."+k, "%s", g.reason)
			}
		}
	}
	return nil
}

// validateNames checks the names the relay writes verbatim into its banner, EHLO and Received
// fields: a configured hostname or [delivery] ehlo_domain must be a domain or an address
// literal (RFC 5321 §4.1.1.1), the rule [egress] ehlo_domain already follows. A space or a
// line break there would corrupt or forge replies. The machine's own name (the default) is
// taken as the system gives it.
func (c *Config) validateNames(md toml.MetaData) error {
	for _, n := range []struct {
		key  []string
		name string
	}{{[]string{"hostname"}, c.Hostname}, {[]string{"delivery", "ehlo_domain"}, c.Delivery.EHLODomain}} {
		if !md.IsDefined(n.key...) {
			continue
		}
		if err := checkEHLOName(strings.Join(n.key, "."), n.name); err != nil {
			return err
		}
	}
	return nil
}

// checkEHLOName applies [egress] ehlo_domain's rule to another key's value ("" is unset).
func checkEHLOName(key, name string) error {
	if name == "" {
		return nil
	}
	if err := (&abi.EgressPathConfig{EHLODomain: &name}).Check(); err != nil {
		var fe *abi.FieldError
		if errors.As(err, &fe) {
			err = fe.Err
		}
		return keyErr(key, "%v", err)
	}
	return nil
}

func (c *Config) validate() error {
	if c.Hostname == "" {
		return keyErr("hostname", "must not be empty")
	}
	if c.Spool.Path == "" {
		return keyErr("spool.path", "must not be empty")
	}
	if c.Logs.Dir == "" {
		return keyErr("logs.dir", "must not be empty")
	}
	if err := c.Logs.validate(); err != nil {
		return err
	}
	if len(c.SMTP.Listen) == 0 {
		return keyErr("smtp.listen", "needs at least one address")
	}
	for _, a := range c.SMTP.Listen {
		if _, err := netip.ParseAddrPort(a); err != nil {
			return keyErr("smtp.listen", "%q is not an ip:port address", a)
		}
	}
	for _, a := range c.SMTP.ListenTLS {
		if _, err := netip.ParseAddrPort(a); err != nil {
			return keyErr("smtp.listen_tls", "%q is not an ip:port address", a)
		}
	}
	if err := c.HTTP.validate(); err != nil {
		return err
	}
	if err := c.validateListeners(); err != nil {
		return err
	}
	if _, err := ParsePrefixes(c.SMTP.RelayHosts); err != nil {
		return keyErr("smtp.relay_hosts", "%v", err)
	}
	if _, err := ParsePrefixes(c.Delivery.ProhibitedHosts); err != nil {
		return keyErr("delivery.prohibited_hosts", "%v", err)
	}
	for _, r := range c.DNS.Resolvers {
		if _, err := netip.ParseAddrPort(r); err != nil {
			return keyErr("dns.resolvers", "%q is not an ip:port address", r)
		}
	}
	if p := c.ControlSocket; p != "" {
		// A Unix socket's path fits in 107 bytes (sun_path); the server binds it first inside a
		// private directory beside it (listenPrivate in host/app), which is longer still.
		if n := max(len(p), len(filepath.Dir(p))+len(controlTempSuffix)); n > maxUnixPath {
			return keyErr("control_socket", "path too long for a Unix socket (%d bytes with the temporary name the server binds first; at most %d)", n, maxUnixPath)
		}
	}
	if (c.SMTP.TLSCertificate == "") != (c.SMTP.TLSPrivateKey == "") {
		return keyErr("smtp.tls_certificate", "tls_certificate and tls_private_key go together")
	}
	positive := []struct {
		key string
		v   int64
	}{
		{"spool.min_free", int64(c.Spool.MinFree)},
		{"smtp.max_message_size", int64(c.SMTP.MaxMessageSize)},
		{"smtp.max_recipients", int64(c.SMTP.MaxRecipients)},
		{"smtp.max_line_length", int64(c.SMTP.MaxLineLength)},
		{"smtp.max_connections", int64(c.SMTP.MaxConnections)},
		{"smtp.max_connections_per_ip", int64(c.SMTP.MaxConnectionsPerIP)},
		{"smtp.max_errors", int64(c.SMTP.MaxErrors)},
		{"smtp.idle_timeout", int64(c.SMTP.IdleTimeout)},
		{"smtp.data_timeout", int64(c.SMTP.DataTimeout)},
		{"dns.timeout", int64(c.DNS.Timeout)},
		{"dns.negative_ttl", int64(c.DNS.NegativeTTL)}, // the resolver reads 0 as its default, 5m
		{"delivery.connection_limit", int64(c.Delivery.ConnectionLimit)},
		{"delivery.max_deliveries_per_connection", int64(c.Delivery.MaxDeliveriesPerConnection)},
		{"delivery.connect_timeout", int64(c.Delivery.ConnectTimeout)},
		{"delivery.command_timeout", int64(c.Delivery.CommandTimeout)},
		{"delivery.data_timeout", int64(c.Delivery.DataTimeout)},
		{"delivery.idle_timeout", int64(c.Delivery.IdleTimeout)},
		{"queue.retry_interval", int64(c.Queue.RetryInterval)},
		{"queue.max_age", int64(c.Queue.MaxAge)},
		{"queue.refresh_interval", int64(c.Queue.RefreshInterval)},
	}
	for _, p := range positive {
		if p.v <= 0 {
			return keyErr(p.key, "must be greater than zero")
		}
	}
	if c.SMTP.MaxMessageSize > MaxMessageSizeLimit {
		// The spool keeps a body in one Badger value-log file, which holds under 2 GiB: a
		// larger limit would take in a message only to fail storing it.
		return keyErr("smtp.max_message_size", "at most 1GiB (the spool stores a message in one file of under 2 GiB)")
	}
	if c.Queue.MaxRetryInterval < 0 {
		return keyErr("queue.max_retry_interval", "must not be negative")
	}
	if c.Delivery.SMTPPort <= 0 || c.Delivery.SMTPPort > 65535 {
		return keyErr("delivery.smtp_port", "%d is not a TCP port", c.Delivery.SMTPPort)
	}
	if c.Bounce.MaxReturnedSize < 0 {
		return keyErr("bounce.max_returned_size", "must not be negative")
	}
	if c.Bounce.Tenant != "" && !validName(c.Bounce.Tenant) {
		// It becomes part of a queue name ("tenant@domain"): no '@', nothing odd in logs.
		return keyErr("bounce.tenant", "%q: use 1-64 of A-Z a-z 0-9 _ - .", c.Bounce.Tenant)
	}
	if !slices.Contains(abi.TLSModes, c.Delivery.EnableTLS) {
		return keyErr("delivery.enable_tls", "%q is not one of %s", c.Delivery.EnableTLS, strings.Join(abi.TLSModes, ", "))
	}
	for i, p := range c.Plugins {
		if p.Path == "" {
			return keyErr(fmt.Sprintf("plugins[%d].path", i), "must not be empty")
		}
		if p.PoolSize < 0 {
			return keyErr(fmt.Sprintf("plugins[%d].pool_size", i), "must not be negative (0 is 2 x CPUs)")
		}
		// A WebAssembly memory has 64KiB pages and at most 65536 of them (4GiB); the runtime
		// refuses anything else.
		if p.MaxMemory != nil && (*p.MaxMemory < abi.PageSize || *p.MaxMemory > abi.MaxMemory) {
			return keyErr(fmt.Sprintf("plugins[%d].max_memory", i), "%d bytes: must be from 64KiB (one page) to 4GiB (65536 pages)", int64(*p.MaxMemory))
		}
		if p.Timeout != nil && *p.Timeout <= 0 {
			return keyErr(fmt.Sprintf("plugins[%d].timeout", i), "must be greater than zero (leave it out for the default, 100ms)")
		}
		if p.PoolSize > abi.MaxPoolSize {
			return keyErr(fmt.Sprintf("plugins[%d].pool_size", i), "%d: at most %d instances", p.PoolSize, abi.MaxPoolSize)
		}
		// A client waits at most 10 minutes for the reply to its DATA (RFC 5321 §4.5.3.2.6); a
		// hook allowed longer would outlive it.
		if p.Timeout != nil && p.Timeout.D() > abi.MaxTimeoutSeconds*time.Second {
			return keyErr(fmt.Sprintf("plugins[%d].timeout", i), "%s: at most %ds", *p.Timeout, abi.MaxTimeoutSeconds)
		}
	}
	return c.validateDKIM()
}

// validateDKIM checks the [[dkim]] entries; the key files themselves are read by host/dkim at
// start-up, reload and `config check`.
func (c *Config) validateDKIM() error {
	names := map[string]bool{}
	for i, d := range c.DKIM {
		key := func(k string) string { return fmt.Sprintf("dkim[%d].%s", i, k) }
		if !validName(d.Name) {
			return keyErr(key("name"), "%q: use 1-64 of A-Z a-z 0-9 _ - .", d.Name)
		}
		if names[d.Name] {
			return keyErr(key("name"), "%q is used by an earlier [[dkim]] entry", d.Name)
		}
		names[d.Name] = true
		if d.KeyFile == "" {
			return keyErr(key("key_file"), "must not be empty")
		}
		if len(d.SignSenderDomains) == 0 {
			// d=, s= and h= here serve only signing by sender domain; accepted alone they
			// would do nothing (plugins give their own in dkim_sign).
			if d.Domain != "" || d.Selector != "" || d.Headers != nil || d.OverSign {
				return keyErr(key("sign_sender_domains"), "domain, selector, headers and over_sign are used only for signing by sender domain; list the domains or remove them")
			}
			continue
		}
		for _, sd := range d.SignSenderDomains {
			if err := abi.CheckDKIMName("domain", sd); err != nil {
				return keyErr(key("sign_sender_domains"), "%v", err)
			}
		}
		if err := abi.CheckDKIMName("domain", d.Domain); err != nil {
			return keyErr(key("domain"), "%v (needed with sign_sender_domains)", err)
		}
		if err := abi.CheckDKIMName("selector", d.Selector); err != nil {
			return keyErr(key("selector"), "%v (needed with sign_sender_domains)", err)
		}
		if err := abi.CheckDKIMHeaders(d.Headers); err != nil {
			return keyErr(key("headers"), "%v", err)
		}
	}
	return nil
}

// validName: a [[dkim]] name, as plugins write it in dkim_sign.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func (h *HTTPConfig) validate() error {
	if h.Listen != "" {
		ap, err := netip.ParseAddrPort(h.Listen)
		if err != nil {
			return keyErr("http.listen", "%q is not an ip:port address", h.Listen)
		}
		// The API can inject mail for anyone and, later, administer the queues: reachable
		// from the network it must demand a token.
		if !ap.Addr().IsLoopback() && h.Token == "" {
			return keyErr("http.token", "required when http.listen (%s) is not a loopback address", h.Listen)
		}
	}
	for _, t := range []struct{ key, v string }{{"http.token", h.Token}, {"http.inject_token", h.InjectToken}} {
		for _, r := range t.v {
			// A token travels in an Authorization header: visible ASCII only (RFC 6750 §2.1).
			if r <= ' ' || r > '~' {
				return keyErr(t.key, "must be printable ASCII without spaces")
			}
		}
	}
	positive := []struct {
		key string
		v   int64
	}{
		{"http.max_request_size", int64(h.MaxRequestSize)},
		{"http.read_header_timeout", int64(h.ReadHeaderTimeout)},
		{"http.read_timeout", int64(h.ReadTimeout)},
		{"http.write_timeout", int64(h.WriteTimeout)},
		{"http.idle_timeout", int64(h.IdleTimeout)},
	}
	for _, p := range positive {
		if p.v <= 0 {
			return keyErr(p.key, "must be greater than zero")
		}
	}
	return nil
}

func keyErr(key, format string, args ...any) error {
	return fmt.Errorf("configuration key %s: %s", key, fmt.Sprintf(format, args...))
}

// ParsePrefixes parses CIDRs; a bare address means that one host (/32 or /128).
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			if p != p.Masked() {
				return nil, fmt.Errorf("%q has host bits set (did you mean %s?)", s, p.Masked())
			}
			out = append(out, p)
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR or an IP address", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// MaxMessageSizeLimit is the largest smtp.max_message_size accepted (see Validate).
const MaxMessageSizeLimit = 1 << 30

// maxUnixPath is the longest path a Unix socket can be bound at on Linux (sun_path less its NUL).
const maxUnixPath = 107

// controlTempSuffix is the longest name host/app's listenPrivate gives the control socket before
// renaming it into place: a MkdirTemp directory ".control-" plus up to 10 digits, and "sock".
const controlTempSuffix = "/.control-4294967295/sock"
