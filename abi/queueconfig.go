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
	// MaxMessageRate ("100/s", "5000/h", see ParseRate) throttles the queue's messages on
	// their way to delivery: a message over the rate waits in the queue, without counting as an
	// attempt, until its turn.
	MaxMessageRate string `json:"max_message_rate,omitempty"`
	// EgressPool names one of the server's [egress_pool.NAME] tables, or DefaultEgressPool.
	// The host checks the name at each delivery attempt: an unknown pool keeps the message
	// queued, with a 451 4.4.4 TransientFailure that names it (as KumoMTA does).
	EgressPool string    `json:"egress_pool,omitempty"`
	Protocol   *Protocol `json:"protocol,omitempty"`
}

// DefaultEgressPool is KumoMTA's built-in pool: one source, the address the system picks.
const DefaultEgressPool = "unspecified"

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
		if _, err := ParseRate(c.MaxMessageRate); err != nil {
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

// Rate is a parsed throttle: at most N events per Per, with bursts of at most Burst.
type Rate struct {
	N     uint64
	Per   time.Duration
	Burst uint64
	// Local ("local:" prefix) keeps the limit to each node when nodes share their limits
	// through Redis ([redis]); without a cluster every limit is local anyway.
	Local bool
}

// Interval is the time one event's token takes to come back.
func (r Rate) Interval() time.Duration {
	if r.N == 0 {
		return 0
	}
	return r.Per / time.Duration(r.N)
}

// String writes the rate back in the syntax ParseRate reads.
func (r Rate) String() string {
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "m", time.Hour: "h", 24 * time.Hour: "d"}[r.Per]
	s := strconv.FormatUint(r.N, 10) + "/" + unit
	if r.Local {
		s = "local:" + s
	}
	if r.Burst != 1 {
		s += ",max_burst=" + strconv.FormatUint(r.Burst, 10)
	}
	return s
}

// maxRate bounds N and max_burst: a million events a second is far beyond any SMTP path, and
// the bound keeps Per/N a meaningful interval (at least a microsecond for "N/s").
const maxRate = 1_000_000_000

// ParseRate reads KumoMTA's throttle syntax "[local:]N/period[,max_burst=M]": period s, m, h or
// d (also sec, second, min, minute, hr, hour, day); N may carry "," or "_" digit separators.
// "local:" keeps the limit to each node of a cluster (as KumoMTA: not shared through Redis).
// max_burst defaults to 1: events are spaced evenly, so "10/s" never sends 11 in a second; a
// larger burst lets up to M go at once after a quiet spell.
func ParseRate(s string) (Rate, error) {
	in := s
	s = strings.TrimSpace(s)
	local := strings.HasPrefix(s, "local:")
	s = strings.TrimPrefix(s, "local:")
	spec, opts, _ := strings.Cut(s, ",max_burst=")
	n, p, ok := strings.Cut(spec, "/")
	num := func(x string) (uint64, bool) {
		x = strings.NewReplacer(",", "", "_", "").Replace(x)
		v, err := strconv.ParseUint(x, 10, 64)
		return v, err == nil && v > 0 && v <= maxRate
	}
	r := Rate{Burst: 1, Local: local}
	var good bool
	if r.N, good = num(n); !ok || !good {
		return Rate{}, fmt.Errorf("%q is not N/period with N from 1 to %d", in, maxRate)
	}
	switch p {
	case "s", "sec", "second":
		r.Per = time.Second
	case "m", "min", "minute":
		r.Per = time.Minute
	case "h", "hr", "hour":
		r.Per = time.Hour
	case "d", "day":
		r.Per = 24 * time.Hour
	default:
		return Rate{}, fmt.Errorf("%q: unknown period (use s, m, h or d, optionally followed by \",max_burst=M\")", in)
	}
	if strings.Contains(s, ",max_burst=") {
		if r.Burst, good = num(opts); !good {
			return Rate{}, fmt.Errorf("%q: max_burst must be from 1 to %d", in, maxRate)
		}
	}
	return r, nil
}
