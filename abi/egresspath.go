package abi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// TLS modes of an egress path (enable_tls), KumoMTA's names; their meaning is documented with
// the delivery client and in the configuration guide.
var TLSModes = []string{"Opportunistic", "OpportunisticInsecure", "Required", "RequiredInsecure", "Disabled"}

// EgressPathConfig is one egress path's settings (design.md §6): the server's [egress] table, each
// [[egress.path]] entry, and the JSON a get_egress_path_config hook returns share these names.
// A nil field is not set: the layer below applies ([egress], then the built-in defaults).
type EgressPathConfig struct {
	ConnectionLimit            *int    `json:"connection_limit,omitempty" toml:"connection_limit"`
	MaxDeliveriesPerConnection *int    `json:"max_deliveries_per_connection,omitempty" toml:"max_deliveries_per_connection"`
	MaxMessageRate             *string `json:"max_message_rate,omitempty" toml:"max_message_rate"`
	MaxConnectionRate          *string `json:"max_connection_rate,omitempty" toml:"max_connection_rate"`
	EnableTLS                  *string `json:"enable_tls,omitempty" toml:"enable_tls"`
	SMTPAuthPlainUsername      *string `json:"smtp_auth_plain_username,omitempty" toml:"smtp_auth_plain_username"`
	// SMTPAuthPlainPassword is the NAME of a server secret ([secrets]), never the password.
	SMTPAuthPlainPassword        *string `json:"smtp_auth_plain_password,omitempty" toml:"smtp_auth_plain_password"`
	AllowSMTPAuthPlainWithoutTLS *bool   `json:"allow_smtp_auth_plain_without_tls,omitempty" toml:"allow_smtp_auth_plain_without_tls"`
	EHLODomain                   *string `json:"ehlo_domain,omitempty" toml:"ehlo_domain"`
	// SourceAddress is the local IP connections leave from (KumoMTA's egress source
	// source_address); unset: the system picks.
	SourceAddress *string `json:"source_address,omitempty" toml:"source_address"`
	// SMTPPort is the port used when the destination names none (KumoMTA's smtp_port); a
	// literal ("[192.0.2.1]:2525"), routing domain or mx_list entry with a port keeps its own.
	SMTPPort *int `json:"smtp_port,omitempty" toml:"smtp_port"`
	// The delivery client's timeouts, each with exactly what the client enforces:
	// ConnectTimeout the TCP connect; CommandTimeout every other reply (banner, EHLO,
	// STARTTLS and its handshake, AUTH, MAIL, RCPT, DATA's 354, RSET) and every command
	// write; DataTimeout the message body's write and the reply to its final dot; IdleTimeout
	// how long an unused connection is kept open for the next message.
	ConnectTimeout *Duration `json:"connect_timeout,omitempty" toml:"connect_timeout"`
	CommandTimeout *Duration `json:"command_timeout,omitempty" toml:"command_timeout"`
	DataTimeout    *Duration `json:"data_timeout,omitempty" toml:"data_timeout"`
	IdleTimeout    *Duration `json:"idle_timeout,omitempty" toml:"idle_timeout"`
}

// UnmarshalTOML lets the server config spell durations as in JSON: a string ("90s", "20m",
// "7d") or integer seconds (BurntSushi/toml's Unmarshaler, without importing it here).
func (d *Duration) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case string:
		p, err := ParseDuration(x)
		if err != nil {
			return err
		}
		*d = Duration(p)
		return nil
	case int64:
		if x < 0 || x > maxSeconds {
			return fmt.Errorf("duration %d seconds: must be from 0 to %d", x, int64(maxSeconds))
		}
		*d = Duration(time.Duration(x) * time.Second)
		return nil
	}
	return fmt.Errorf("duration must be a string like \"20m\" or integer seconds, not %T", v)
}

// UnsupportedTimeouts are KumoMTA egress path timeouts the delivery client has no separate
// timer for, with the setting that covers what they time. They are refused, never accepted
// and ignored: a timeout that is not enforced is worse than an error at load.
var UnsupportedTimeouts = map[string]string{
	"banner_timeout":    "command_timeout",
	"ehlo_timeout":      "command_timeout",
	"starttls_timeout":  "command_timeout",
	"auth_timeout":      "command_timeout",
	"mail_from_timeout": "command_timeout",
	"rcpt_to_timeout":   "command_timeout",
	"rset_timeout":      "command_timeout",
	"data_dot_timeout":  "data_timeout",
}

// UnsupportedTimeoutError is the error for one of UnsupportedTimeouts.
func UnsupportedTimeoutError(field string) error {
	return &FieldError{Field: field, Err: fmt.Errorf("not supported: wasmta's delivery client has no separate timer for it; %s covers it (see connect_timeout, command_timeout, data_timeout, idle_timeout)", UnsupportedTimeouts[field])}
}

// MaxEgressPathConfig bounds the JSON of an egress path config.
const MaxEgressPathConfig = 16 << 10

// ParseEgressPathConfig decodes and checks an egress path config document, strictly like
// ParseQueueConfig: an unknown field is an error naming it.
func ParseEgressPathConfig(b []byte) (*EgressPathConfig, error) {
	if len(b) > MaxEgressPathConfig {
		return nil, fmt.Errorf("egress path config is %d bytes, more than the %d allowed", len(b), MaxEgressPathConfig)
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(b, &fields) == nil {
		for k := range fields {
			if _, ok := UnsupportedTimeouts[k]; ok {
				return nil, fmt.Errorf("egress path config: %w", UnsupportedTimeoutError(k))
			}
		}
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var c EgressPathConfig
	if err := d.Decode(&c); err != nil {
		return nil, fmt.Errorf("egress path config: %w", err)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("egress path config: trailing data after the JSON object")
	}
	if err := c.Check(); err != nil {
		return nil, fmt.Errorf("egress path config: %w", err)
	}
	return &c, nil
}

// FieldError is a bad value, with the field's name.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Check validates the fields that are set. Secret names are checked by the host, which knows
// its secrets.
func (c *EgressPathConfig) Check() error {
	bad := func(field, format string, args ...any) error {
		return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
	}
	if c.ConnectionLimit != nil && *c.ConnectionLimit <= 0 {
		return bad("connection_limit", "must be greater than zero")
	}
	if c.MaxDeliveriesPerConnection != nil && *c.MaxDeliveriesPerConnection <= 0 {
		return bad("max_deliveries_per_connection", "must be greater than zero")
	}
	for _, r := range []struct {
		field string
		v     *string
	}{{"max_message_rate", c.MaxMessageRate}, {"max_connection_rate", c.MaxConnectionRate}} {
		if r.v != nil {
			if _, err := ParseRate(*r.v); err != nil {
				return &FieldError{Field: r.field, Err: err}
			}
		}
	}
	if c.EnableTLS != nil && !slices.Contains(TLSModes, *c.EnableTLS) {
		return bad("enable_tls", "%q is not one of %v", *c.EnableTLS, TLSModes)
	}
	if c.EHLODomain != nil {
		if *c.EHLODomain == "" {
			return bad("ehlo_domain", "must not be empty")
		}
		if !ehloName(*c.EHLODomain) {
			return bad("ehlo_domain", "%q is not a domain (letters, digits and '-' in dot-separated labels) or an address literal ([192.0.2.1], [IPv6:2001:db8::1])", *c.EHLODomain)
		}
	}
	if c.SourceAddress != nil {
		if _, err := netip.ParseAddr(*c.SourceAddress); err != nil {
			return bad("source_address", "%q is not an IP address", *c.SourceAddress)
		}
	}
	if c.SMTPPort != nil && (*c.SMTPPort <= 0 || *c.SMTPPort > 65535) {
		return bad("smtp_port", "%d is not a TCP port", *c.SMTPPort)
	}
	for _, t := range []struct {
		field string
		v     *Duration
	}{{"connect_timeout", c.ConnectTimeout}, {"command_timeout", c.CommandTimeout}, {"data_timeout", c.DataTimeout}, {"idle_timeout", c.IdleTimeout}} {
		if t.v != nil && *t.v <= 0 {
			return bad(t.field, "must be greater than zero")
		}
	}
	return nil
}

// ehloName reports whether s may follow EHLO: an RFC 5321 §4.1.2 Domain (an internationalized
// name in its xn-- form) or an IPv4 or IPv6 address literal. The name is written into a command
// line, so anything else, CR and LF above all, could inject commands into the session.
func ehloName(s string) bool {
	if len(s) > 255 {
		return false
	}
	if lit, ok := strings.CutPrefix(s, "["); ok {
		lit, ok = strings.CutSuffix(lit, "]")
		if !ok {
			return false
		}
		if v6, ok := strings.CutPrefix(lit, "IPv6:"); ok {
			a, err := netip.ParseAddr(v6)
			return err == nil && a.Is6() && a.Zone() == ""
		}
		a, err := netip.ParseAddr(lit)
		return err == nil && a.Is4()
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// Over returns c with every field that o sets replaced by o's.
func (c EgressPathConfig) Over(o *EgressPathConfig) EgressPathConfig {
	if o == nil {
		return c
	}
	set := func(dst **string, src *string) {
		if src != nil {
			*dst = src
		}
	}
	if o.ConnectionLimit != nil {
		c.ConnectionLimit = o.ConnectionLimit
	}
	if o.MaxDeliveriesPerConnection != nil {
		c.MaxDeliveriesPerConnection = o.MaxDeliveriesPerConnection
	}
	if o.AllowSMTPAuthPlainWithoutTLS != nil {
		c.AllowSMTPAuthPlainWithoutTLS = o.AllowSMTPAuthPlainWithoutTLS
	}
	set(&c.MaxMessageRate, o.MaxMessageRate)
	set(&c.MaxConnectionRate, o.MaxConnectionRate)
	set(&c.EnableTLS, o.EnableTLS)
	set(&c.SMTPAuthPlainUsername, o.SMTPAuthPlainUsername)
	set(&c.SMTPAuthPlainPassword, o.SMTPAuthPlainPassword)
	set(&c.EHLODomain, o.EHLODomain)
	set(&c.SourceAddress, o.SourceAddress)
	if o.SMTPPort != nil {
		c.SMTPPort = o.SMTPPort
	}
	for _, d := range []struct{ dst, src **Duration }{
		{&c.ConnectTimeout, &o.ConnectTimeout}, {&c.CommandTimeout, &o.CommandTimeout},
		{&c.DataTimeout, &o.DataTimeout}, {&c.IdleTimeout, &o.IdleTimeout},
	} {
		if *d.src != nil {
			*d.dst = *d.src
		}
	}
	return c
}
