package config

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"

	"github.com/wasmta/wasmta/abi"
)

// EgressSource is one [egress_source.NAME] table (KumoMTA's make_egress_source): the local
// address connections leave from and the name they give in EHLO. On a path it sits between
// [egress] and [[egress.path]]: an [[egress.path]] entry or a plugin may still override both.
type EgressSource struct {
	// SourceAddress is the local IP the connections bind to; "" lets the system pick.
	SourceAddress string `toml:"source_address"`
	// EHLODomain is the EHLO name; "" keeps the path's.
	EHLODomain string `toml:"ehlo_domain"`
}

// EgressPool is one [egress_pool.NAME] table (KumoMTA's make_egress_pool): the sources a
// queue's messages leave from, picked by smooth weighted round robin on each attempt.
type EgressPool struct {
	Entries []EgressPoolEntry `toml:"entries"`
}

// EgressPoolEntry is one source of a pool; weight 0 disables it.
type EgressPoolEntry struct {
	Name   string `toml:"name"`
	Weight *int   `toml:"weight"` // nil: 1, as in KumoMTA
}

// WeightOrDefault is the entry's weight, 1 when not given.
func (e EgressPoolEntry) WeightOrDefault() int {
	if e.Weight == nil {
		return 1
	}
	return *e.Weight
}

// maxPoolWeight bounds one entry's weight, so that the sum of a pool's weights cannot overflow
// and a typo (an extra digit or three) is caught.
const maxPoolWeight = 1 << 20

// validatePools checks [egress_source.*] and [egress_pool.*].
func (c *Config) validatePools() error {
	for _, name := range sortedKeys(c.EgressSources) {
		s := c.EgressSources[name]
		key := "egress_source." + name
		if name == abi.DefaultEgressPool {
			return keyErr(key, "%q is the built-in source (no source address) and cannot be configured", name)
		}
		if s.SourceAddress != "" {
			if _, err := netip.ParseAddr(s.SourceAddress); err != nil {
				return keyErr(key+".source_address", "%q is not an IP address", s.SourceAddress)
			}
		}
		if err := checkEHLOName(key+".ehlo_domain", s.EHLODomain); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(c.EgressPools) {
		p := c.EgressPools[name]
		key := "egress_pool." + name
		if name == abi.DefaultEgressPool {
			return keyErr(key, "%q is the built-in pool (the system picks the source address) and cannot be configured", name)
		}
		if len(p.Entries) == 0 {
			return keyErr(key+".entries", "must list at least one source")
		}
		var seen []string
		total := 0
		for i, e := range p.Entries {
			ek := fmt.Sprintf("%s.entries[%d]", key, i)
			if e.Name == "" {
				return keyErr(ek+".name", "must name an [egress_source.NAME]")
			}
			if _, ok := c.EgressSources[e.Name]; !ok {
				return keyErr(ek+".name", "no [egress_source.%s] is configured", e.Name)
			}
			if slices.Contains(seen, e.Name) {
				return keyErr(ek+".name", "source %q is listed twice; give it one entry with the sum of the weights", e.Name)
			}
			seen = append(seen, e.Name)
			w := e.WeightOrDefault()
			if w < 0 || w > maxPoolWeight {
				return keyErr(ek+".weight", "must be from 0 (disabled) to %d", maxPoolWeight)
			}
			total += w
		}
		if total == 0 {
			return keyErr(key+".entries", "every entry has weight 0: the pool could send nothing")
		}
	}
	if n := c.Queue.EgressPool; n != "" && n != abi.DefaultEgressPool {
		if _, ok := c.EgressPools[n]; !ok {
			return keyErr("queue.egress_pool", "no [egress_pool.%s] is configured", n)
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
