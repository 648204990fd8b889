package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/wasmta/wasmta/abi"
)

// Duration accepts Go duration strings plus a "d" unit of 24 hours ("90s", "20m", "7d", "1d12h"),
// or an integer number of seconds, as design.md §5 says for queue configs.
type Duration time.Duration

func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

func (d *Duration) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		if x < 0 || x > math.MaxInt64/int64(time.Second) {
			return fmt.Errorf("duration %d seconds: must be from 0 to %d", x, math.MaxInt64/int64(time.Second))
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

// ParseDuration parses a Go duration with an added "d" (24h) unit; queue configs from plugins
// use the same syntax, so both share abi.ParseDuration.
func ParseDuration(s string) (time.Duration, error) { return abi.ParseDuration(s) }

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

// ParseSize parses "20MiB", "10MB", "512k", "1000", "1.5GiB": a non-negative decimal number and
// an optional unit; a result that does not fit an int64 is an error. Whole numbers are exact
// (no float rounding of large byte counts).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	mult := map[string]int64{
		"": 1, "b": 1,
		"k": 1 << 10, "kb": 1e3, "kib": 1 << 10,
		"m": 1 << 20, "mb": 1e6, "mib": 1 << 20,
		"g": 1 << 30, "gb": 1e9, "gib": 1 << 30,
	}[strings.ToLower(unit)]
	if mult == 0 {
		return 0, fmt.Errorf("invalid size unit in %q (use B, KiB, MiB, GiB, KB, MB, GB)", s)
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseUint(num, 10, 63)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return 0, fmt.Errorf("size %q is too large", s)
			}
			return 0, fmt.Errorf("invalid size %q", s)
		}
		if int64(n) > math.MaxInt64/mult {
			return 0, fmt.Errorf("size %q is too large", s)
		}
		return int64(n) * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	if f*float64(mult) >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(f * float64(mult)), nil
}
