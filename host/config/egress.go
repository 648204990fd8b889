package config

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/wasmta/wasmta/abi"
)

// EgressConfig is the [egress] table (design.md §6): the settings of every egress path, and
// [[egress.path]] overrides per destination. connection_limit, max_deliveries_per_connection,
// enable_tls, ehlo_domain, smtp_port and the four timeouts may be set here or, as before, in
// [delivery], not in both.
type EgressConfig struct {
	abi.EgressPathConfig
	// TLSCAFile, when set, is a PEM file of the authorities the verifying TLS modes trust
	// instead of the system's (a private smarthost's CA).
	TLSCAFile string           `toml:"tls_ca_file"`
	Paths     []EgressPathRule `toml:"path"`
}

// EgressPathRule is one [[egress.path]] entry: settings for the destinations it matches.
type EgressPathRule struct {
	// RoutingDomain matches the message's routing_domain, or its domain when it has none.
	RoutingDomain string `toml:"routing_domain"`
	// Site matches the site name: the MX host (or hosts), the mx_list, or the literal.
	Site string `toml:"site"`
	abi.EgressPathConfig
}

// Matches reports whether the rule applies to a destination and site (names compare without
// regard to case; every given criterion must match).
func (r *EgressPathRule) Matches(routingDomain, site string) bool {
	return (r.RoutingDomain == "" || strings.EqualFold(r.RoutingDomain, routingDomain)) &&
		(r.Site == "" || strings.EqualFold(r.Site, site))
}

// EgressPath is a resolved egress path: every setting has its value.
type EgressPath struct {
	ConnectionLimit            int
	MaxDeliveriesPerConnection int
	MaxMessageRate             abi.Rate // zero: unlimited
	MaxConnectionRate          abi.Rate
	EnableTLS                  string
	AuthUsername               string
	AuthSecret                 string // name of the secret holding the password
	AllowAuthWithoutTLS        bool
	EHLODomain                 string
	SourceAddress              netip.Addr // invalid: the system picks
	SMTPPort                   uint16     // when the destination names no port
	ConnectTimeout             time.Duration
	CommandTimeout             time.Duration
	DataTimeout                time.Duration
	IdleTimeout                time.Duration
}

// sharedKeys are the keys [delivery] and [egress] both have: [delivery] is the older spelling
// of the egress defaults.
var sharedKeys = []string{"connection_limit", "max_deliveries_per_connection", "enable_tls", "ehlo_domain",
	"smtp_port", "connect_timeout", "command_timeout", "data_timeout", "idle_timeout"}

// unsupportedEgressKey explains an unknown [egress] / [[egress.path]] key that is one of
// KumoMTA's timeouts the delivery client does not have, instead of just calling it unknown.
func unsupportedEgressKey(k toml.Key) error {
	if len(k) < 2 || k[0] != "egress" {
		return nil
	}
	field := k[len(k)-1]
	if _, ok := abi.UnsupportedTimeouts[field]; !ok {
		return nil
	}
	return keyErr(k.String(), "%v", abi.UnsupportedTimeoutError(field).(*abi.FieldError).Err)
}

// EgressDefaults is the path every destination gets before [[egress.path]] and plugins:
// [egress], else the [delivery] spelling, else the built-in defaults.
func (c *Config) EgressDefaults() EgressPath {
	ehlo := c.Delivery.EHLODomain
	if ehlo == "" {
		ehlo = c.Hostname
	}
	base := EgressPath{
		ConnectionLimit:            c.Delivery.ConnectionLimit,
		MaxDeliveriesPerConnection: c.Delivery.MaxDeliveriesPerConnection,
		EnableTLS:                  c.Delivery.EnableTLS,
		EHLODomain:                 ehlo,
		SMTPPort:                   uint16(c.Delivery.SMTPPort), // checked by validate
		ConnectTimeout:             c.Delivery.ConnectTimeout.D(),
		CommandTimeout:             c.Delivery.CommandTimeout.D(),
		DataTimeout:                c.Delivery.DataTimeout.D(),
		IdleTimeout:                c.Delivery.IdleTimeout.D(),
	}
	p, _ := base.With(&c.Egress.EgressPathConfig) // checked by validate
	return p
}

// With returns p with the settings o sets. Errors name o's field; p itself is not checked.
func (p EgressPath) With(o *abi.EgressPathConfig) (EgressPath, error) {
	if err := o.Check(); err != nil {
		return p, err
	}
	if o.ConnectionLimit != nil {
		p.ConnectionLimit = *o.ConnectionLimit
	}
	if o.MaxDeliveriesPerConnection != nil {
		p.MaxDeliveriesPerConnection = *o.MaxDeliveriesPerConnection
	}
	if o.MaxMessageRate != nil {
		p.MaxMessageRate, _ = abi.ParseRate(*o.MaxMessageRate)
	}
	if o.MaxConnectionRate != nil {
		p.MaxConnectionRate, _ = abi.ParseRate(*o.MaxConnectionRate)
	}
	if o.EnableTLS != nil {
		p.EnableTLS = *o.EnableTLS
	}
	if o.SMTPAuthPlainUsername != nil {
		p.AuthUsername = *o.SMTPAuthPlainUsername
	}
	if o.SMTPAuthPlainPassword != nil {
		p.AuthSecret = *o.SMTPAuthPlainPassword
	}
	if o.AllowSMTPAuthPlainWithoutTLS != nil {
		p.AllowAuthWithoutTLS = *o.AllowSMTPAuthPlainWithoutTLS
	}
	if o.EHLODomain != nil {
		p.EHLODomain = *o.EHLODomain
	}
	if o.SourceAddress != nil {
		p.SourceAddress, _ = netip.ParseAddr(*o.SourceAddress)
	}
	if o.SMTPPort != nil {
		p.SMTPPort = uint16(*o.SMTPPort)
	}
	for _, d := range []struct {
		dst *time.Duration
		src *abi.Duration
	}{{&p.ConnectTimeout, o.ConnectTimeout}, {&p.CommandTimeout, o.CommandTimeout}, {&p.DataTimeout, o.DataTimeout}, {&p.IdleTimeout, o.IdleTimeout}} {
		if d.src != nil {
			*d.dst = time.Duration(*d.src)
		}
	}
	return p, nil
}

// CheckSecrets verifies that the credentials of a resolved path make sense with the server's
// secrets: user name and password go together, and the password names a secret.
func (p EgressPath) CheckSecrets(secrets map[string]Secret) error {
	if (p.AuthUsername != "") != (p.AuthSecret != "") {
		return &abi.FieldError{Field: "smtp_auth_plain_username", Err: fmt.Errorf("smtp_auth_plain_username and smtp_auth_plain_password go together")}
	}
	if p.AuthSecret != "" {
		if _, ok := secrets[p.AuthSecret]; !ok {
			return &abi.FieldError{Field: "smtp_auth_plain_password", Err: fmt.Errorf("no secret named %q in [secrets] (the value is the NAME of a secret, not the password)", p.AuthSecret)}
		}
	}
	return nil
}

// validateEgress checks [egress] and [[egress.path]], and that no setting is given both in
// [delivery] and in [egress]: which one should win would be a guess.
func (c *Config) validateEgress(md toml.MetaData) error {
	for _, k := range sharedKeys {
		if md.IsDefined("egress", k) && md.IsDefined("delivery", k) {
			return fmt.Errorf("configuration keys delivery.%s and egress.%s are both set: set it in one place ([egress] is preferred; [delivery] is the older spelling)", k, k)
		}
	}
	def := c.EgressDefaults()
	if _, err := (EgressPath{}).With(&c.Egress.EgressPathConfig); err != nil {
		return fieldErr("egress", err)
	}
	if err := def.CheckSecrets(c.Secrets); err != nil {
		return fieldErr("egress", err)
	}
	for i, r := range c.Egress.Paths {
		key := fmt.Sprintf("egress.path[%d]", i)
		if r.RoutingDomain == "" && r.Site == "" {
			return keyErr(key, "needs routing_domain or site (or both) to say which destinations it is for")
		}
		// The first entry that matches applies: one whose every criterion an earlier entry
		// also has (or leaves open) would be accepted and never used.
		for j, e := range c.Egress.Paths[:i] {
			if (e.RoutingDomain == "" || strings.EqualFold(e.RoutingDomain, r.RoutingDomain)) &&
				(e.Site == "" || strings.EqualFold(e.Site, r.Site)) {
				return keyErr(key, "can never apply: egress.path[%d] matches every destination it does, and the first match wins (put the narrower entry first)", j)
			}
		}
		p, err := def.With(&r.EgressPathConfig)
		if err != nil {
			return fieldErr(key, err)
		}
		if err := p.CheckSecrets(c.Secrets); err != nil {
			return fieldErr(key, err)
		}
		if p.AuthSecret != "" {
			// What the entry says of its destinations must not contradict the secret's lists
			// (the rest is enforced per destination, when a path is resolved).
			if err := c.Secrets[p.AuthSecret].Allows(r.RoutingDomain, r.Site); err != nil {
				return keyErr(key+".smtp_auth_plain_password", "secret %q: %v", p.AuthSecret, err)
			}
		}
	}
	if c.Egress.TLSCAFile != "" {
		// Read as serve reads it: a file that exists but holds no certificate stops serve, so
		// it must fail here too (config check runs this).
		if _, err := LoadCAFile(c.Egress.TLSCAFile); err != nil {
			return keyErr("egress.tls_ca_file", "%v", err)
		}
	}
	return nil
}

func fieldErr(table string, err error) error {
	if fe, ok := err.(*abi.FieldError); ok {
		return keyErr(table+"."+fe.Field, "%v", fe.Err)
	}
	return keyErr(table, "%v", err)
}

// Secret is a named secret from [secrets]: a literal string, or a table with the value
// (`value = "…"` or `file = "path"`, read at load, one trailing line end dropped) and,
// optionally, the destinations it may be sent to (allowed_sites, allowed_routing_domains). Its
// value never appears in logs, errors or output: every way of printing a Secret prints
// "[secret]", and plugins cannot read secrets.
type Secret struct {
	value                 string
	sites, routingDomains []string // empty: any
}

// NewSecret makes a Secret holding v (for tests and programmatic configs).
func NewSecret(v string) Secret { return Secret{value: v} }

// Value is the secret itself.
func (s Secret) Value() string { return s.value }

// Allows reports (nil) whether the secret may be used on the path to a site for a routing
// domain: names compare without regard to case; a list that is not given allows all, and so
// does an empty argument (a criterion not known yet, at load time).
func (s Secret) Allows(routingDomain, site string) error {
	in := func(list []string, v string) bool {
		return len(list) == 0 || v == "" || slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, v) })
	}
	if !in(s.sites, site) {
		return fmt.Errorf("not allowed for site %q (allowed_sites)", site)
	}
	if !in(s.routingDomains, routingDomain) {
		return fmt.Errorf("not allowed for routing domain %q (allowed_routing_domains)", routingDomain)
	}
	return nil
}

func (Secret) String() string               { return "[secret]" }
func (Secret) GoString() string             { return "[secret]" }
func (Secret) MarshalText() ([]byte, error) { return []byte("[secret]"), nil }
func (s *Secret) UnmarshalTOML(v any) error {
	const form = `a secret is a string or { value = "…" } or { file = "path" }, optionally with allowed_sites = […] and allowed_routing_domains = […]`
	switch x := v.(type) {
	case string:
		if x == "" {
			return fmt.Errorf("secret is empty")
		}
		s.value = x
		return nil
	case map[string]any:
		val, hasVal := x["value"].(string)
		f, hasFile := x["file"].(string)
		for k := range x {
			switch k {
			case "value", "file", "allowed_sites", "allowed_routing_domains":
			default:
				return fmt.Errorf("unknown key %q: %s", k, form)
			}
		}
		if hasVal == hasFile || hasFile && f == "" {
			return fmt.Errorf("%s", form)
		}
		if hasFile {
			b, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("secret file: %v", err)
			}
			val = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
			if val == "" {
				return fmt.Errorf("secret file %s is empty", f)
			}
		}
		if val == "" {
			return fmt.Errorf("secret is empty")
		}
		s.value = val
		for key, dst := range map[string]*[]string{"allowed_sites": &s.sites, "allowed_routing_domains": &s.routingDomains} {
			raw, ok := x[key]
			if !ok {
				continue
			}
			list, ok := raw.([]any)
			if !ok || len(list) == 0 {
				return fmt.Errorf("%s must be a non-empty list of names", key)
			}
			for _, it := range list {
				name, ok := it.(string)
				if !ok || name == "" {
					return fmt.Errorf("%s must be a non-empty list of names", key)
				}
				*dst = append(*dst, name)
			}
		}
		return nil
	}
	return fmt.Errorf("%s, not %T", form, v)
}
