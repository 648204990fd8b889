package config

import (
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/wasmta/wasmta/abi"
)

// EgressConfig is the [egress] table (design.md §6): the settings of every egress path, and
// [[egress.path]] overrides per destination. connection_limit, max_deliveries_per_connection,
// enable_tls and ehlo_domain may be set here or, as before, in [delivery], not in both.
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
	for _, k := range []struct {
		key string
		set bool
	}{
		{"connection_limit", c.Egress.ConnectionLimit != nil},
		{"max_deliveries_per_connection", c.Egress.MaxDeliveriesPerConnection != nil},
		{"enable_tls", c.Egress.EnableTLS != nil},
		{"ehlo_domain", c.Egress.EHLODomain != nil},
	} {
		if k.set && md.IsDefined("delivery", k.key) {
			return fmt.Errorf("configuration keys delivery.%s and egress.%s are both set: set it in one place ([egress] is preferred; [delivery] is the older spelling)", k.key, k.key)
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
		p, err := def.With(&r.EgressPathConfig)
		if err != nil {
			return fieldErr(key, err)
		}
		if err := p.CheckSecrets(c.Secrets); err != nil {
			return fieldErr(key, err)
		}
	}
	if c.Egress.TLSCAFile != "" {
		if _, err := os.Stat(c.Egress.TLSCAFile); err != nil {
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

// Secret is a named secret from [secrets]: a literal string, or {file = "path"} read at load
// (one trailing line end dropped). Its value never appears in logs, errors or output: every
// way of printing a Secret prints "[secret]", and plugins cannot read secrets.
type Secret struct{ value string }

// NewSecret makes a Secret holding v (for tests and programmatic configs).
func NewSecret(v string) Secret { return Secret{value: v} }

// Value is the secret itself.
func (s Secret) Value() string { return s.value }

func (Secret) String() string               { return "[secret]" }
func (Secret) GoString() string             { return "[secret]" }
func (Secret) MarshalText() ([]byte, error) { return []byte("[secret]"), nil }
func (s *Secret) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case string:
		if x == "" {
			return fmt.Errorf("secret is empty")
		}
		s.value = x
		return nil
	case map[string]any:
		f, ok := x["file"].(string)
		if !ok || len(x) != 1 || f == "" {
			return fmt.Errorf(`a secret is a string or { file = "path" }`)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("secret file: %v", err)
		}
		v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if v == "" {
			return fmt.Errorf("secret file %s is empty", f)
		}
		s.value = v
		return nil
	}
	return fmt.Errorf(`a secret is a string or { file = "path" }, not %T`, v)
}
