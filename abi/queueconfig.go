package abi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// QueueConfig is the JSON document a plugin hands to make_queue_config in get_queue_config
// (design.md §5). Decoding is strict: an unknown field is an error naming it, so a typo such as
// "mx_lsit" is reported when the plugin runs instead of silently using defaults.
type QueueConfig struct {
	RetryInterval    *Duration `json:"retry_interval,omitempty"`
	MaxRetryInterval *Duration `json:"max_retry_interval,omitempty"`
	MaxAge           *Duration `json:"max_age,omitempty"`
	// MaxMessageRate ("100/s", "5000/h") and EgressPool are accepted for compatibility with
	// KumoMTA configs; the host validates them but does not enforce them yet.
	MaxMessageRate string    `json:"max_message_rate,omitempty"`
	EgressPool     string    `json:"egress_pool,omitempty"`
	Protocol       *Protocol `json:"protocol,omitempty"`
}

// Protocol selects how a queue delivers; only SMTP exists.
type Protocol struct {
	SMTP *SMTPProtocol `json:"smtp,omitempty"`
}

// SMTPProtocol holds SMTP delivery settings of a queue.
type SMTPProtocol struct {
	// MXList replaces MX resolution: hosts tried in this order; names resolved for A/AAAA only.
	MXList []MXEntry `json:"mx_list,omitempty"`
}

// MXEntry is one mx_list entry: a plain string ("smart.host.local", "[10.0.0.1]",
// "host:2525"), or an object {"name": ..., "addr": ...} that connects to addr and uses name for
// TLS SNI and logs.
type MXEntry struct {
	Name string `json:"name"`
	Addr string `json:"addr,omitempty"`
}

func (e MXEntry) MarshalJSON() ([]byte, error) {
	if e.Addr == "" {
		return json.Marshal(e.Name)
	}
	type plain MXEntry
	return json.Marshal(plain(e))
}

func (e *MXEntry) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		e.Addr = ""
		return json.Unmarshal(b, &e.Name)
	}
	type plain MXEntry
	var p plain
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&p); err != nil {
		return fmt.Errorf("mx_list entry: %w", err)
	}
	if p.Name == "" {
		return errors.New("mx_list entry: an object needs \"name\"")
	}
	*e = MXEntry(p)
	return nil
}

// Duration is a duration in a queue config: a string ("90s", "20m", "7d") or integer seconds.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil || n < 0 || n > maxSeconds {
		return fmt.Errorf("duration must be a string like \"20m\" or integer seconds from 0 to %d, not %s", int64(maxSeconds), b)
	}
	*d = Duration(time.Duration(n) * time.Second)
	return nil
}

// ParseDuration parses a Go duration with an added "d" (24h) unit: "90s", "20m", "7d", "1d12h",
// "1.5d". The day count is plain decimal digits (no sign, exponent, NaN or Inf), and a total
// beyond time.Duration's range (about 106,751 days) is an error, never a wrapped value.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration")
	}
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		num := s[:i]
		if !decimal(num) {
			return 0, fmt.Errorf("invalid duration %q (days are written like \"7d\" or \"1.5d\")", s)
		}
		n, err := strconv.ParseFloat(num, 64)
		if f := n * float64(24*time.Hour); err != nil || f >= math.MaxInt64 {
			return 0, fmt.Errorf("invalid duration %q: longer than %d days", s, maxDays)
		}
		days = time.Duration(n * float64(24*time.Hour))
		if s = s[i+1:]; s == "" {
			return days, nil
		}
	}
	p, err := time.ParseDuration(s)
	if err != nil || p < 0 {
		return 0, fmt.Errorf("invalid duration %q (use e.g. \"90s\", \"20m\", \"7d\")", s)
	}
	if days > math.MaxInt64-p {
		return 0, fmt.Errorf("invalid duration: longer than %d days", maxDays)
	}
	return days + p, nil
}

// maxDays is the whole number of days a time.Duration holds.
const maxDays = math.MaxInt64 / int64(24*time.Hour)

// maxSeconds is the largest integer number of seconds a time.Duration holds.
const maxSeconds = math.MaxInt64 / int64(time.Second)

// decimal reports whether s is digits with at most one '.' and at least one digit.
func decimal(s string) bool {
	digits, dots := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}

// ParseQueueConfig decodes and checks a queue config document. Errors are readable sentences
// meant for the plugin author ("json: unknown field \"mx_lsit\"").
func ParseQueueConfig(b []byte) (*QueueConfig, error) {
	if len(b) > MaxQueueConfig {
		return nil, fmt.Errorf("queue config is %d bytes, more than the %d allowed", len(b), MaxQueueConfig)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var c QueueConfig
	if err := d.Decode(&c); err != nil {
		return nil, fmt.Errorf("queue config: %w", err)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("queue config: trailing data after the JSON object")
	}
	if c.RetryInterval != nil && *c.RetryInterval <= 0 {
		return nil, errors.New("queue config: retry_interval must be greater than zero")
	}
	if c.MaxAge != nil && *c.MaxAge <= 0 {
		return nil, errors.New("queue config: max_age must be greater than zero")
	}
	if c.MaxMessageRate != "" {
		if err := checkRate(c.MaxMessageRate); err != nil {
			return nil, fmt.Errorf("queue config: max_message_rate: %w", err)
		}
	}
	if c.Protocol != nil && c.Protocol.SMTP != nil && c.Protocol.SMTP.MXList != nil && len(c.Protocol.SMTP.MXList) == 0 {
		return nil, errors.New("queue config: protocol.smtp.mx_list is empty; leave it out to use MX resolution")
	}
	return &c, nil
}

// MXList returns the configured mx_list, or nil.
func (c *QueueConfig) MXList() []MXEntry {
	if c == nil || c.Protocol == nil || c.Protocol.SMTP == nil {
		return nil
	}
	return c.Protocol.SMTP.MXList
}

// checkRate accepts KumoMTA's throttle spec "[local:]N/period", period s|m|h|d (or words).
func checkRate(s string) error {
	s = strings.TrimPrefix(s, "local:")
	n, p, ok := strings.Cut(s, "/")
	n = strings.NewReplacer(",", "", "_", "").Replace(n)
	if v, err := strconv.ParseUint(n, 10, 64); !ok || err != nil || v == 0 {
		return fmt.Errorf("%q is not N/period", s)
	}
	p, _, _ = strings.Cut(p, ",")
	switch p {
	case "s", "sec", "second", "m", "min", "minute", "h", "hr", "hour", "d", "day":
		return nil
	}
	return fmt.Errorf("%q: unknown period (use s, m, h or d)", s)
}
