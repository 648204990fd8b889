package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration accepts Go duration strings plus a "d" unit of 24 hours ("90s", "20m", "7d", "1d12h"),
// or an integer number of seconds, as SPEC §5 says for queue configs.
type Duration time.Duration

func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

func (d *Duration) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return fmt.Errorf("negative duration %d", x)
		}
		*d = Duration(time.Duration(x) * time.Second)
		return nil
	case string:
		p, err := ParseDuration(x)
		if err != nil {
			return err
		}
		*d = Duration(p)
		return nil
	}
	return fmt.Errorf("duration must be a string like \"20m\" or integer seconds, not %T", v)
}

// ParseDuration parses a Go duration with an added "d" (24h) unit.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseFloat(s[:i], 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		days = time.Duration(n * float64(24*time.Hour))
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	p, err := time.ParseDuration(s)
	if err != nil || p < 0 {
		return 0, fmt.Errorf("invalid duration %q (use e.g. \"90s\", \"20m\", \"7d\")", s)
	}
	return days + p, nil
}

// Size accepts a byte count as an integer or a string with a unit: "20MiB", "512KiB", "10MB".
type Size int64

func (z *Size) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		*z = Size(x)
		return nil
	case string:
		n, err := ParseSize(x)
		if err != nil {
			return err
		}
		*z = Size(n)
		return nil
	}
	return fmt.Errorf("size must be a string like \"20MiB\" or an integer, not %T", v)
}

// ParseSize parses "20MiB", "10MB", "512k", "1000".
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kb": 1e3, "kib": 1 << 10,
		"m": 1 << 20, "mb": 1e6, "mib": 1 << 20,
		"g": 1 << 30, "gb": 1e9, "gib": 1 << 30,
	}[strings.ToLower(unit)]
	if mult == 0 {
		return 0, fmt.Errorf("invalid size unit in %q (use B, KiB, MiB, GiB, KB, MB, GB)", s)
	}
	return int64(f * mult), nil
}
