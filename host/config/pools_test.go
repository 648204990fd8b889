package config

import (
	"strings"
	"testing"
)

const twoSources = "[egress_source.a]\nsource_address = \"127.0.0.31\"\nehlo_domain = \"a.test\"\n" +
	"[egress_source.b]\nsource_address = \"127.0.0.32\"\n"

func TestEgressPools(t *testing.T) {
	c, err := Parse(twoSources + "[egress_pool.p]\nentries = [{name = \"a\", weight = 3}, {name = \"b\"}, ]\n[queue]\negress_pool = \"p\"\n")
	if err != nil {
		t.Fatal(err)
	}
	p := c.EgressPools["p"]
	if len(p.Entries) != 2 || p.Entries[0].WeightOrDefault() != 3 || p.Entries[1].WeightOrDefault() != 1 {
		t.Fatalf("pool: %+v", p)
	}
	if s := c.EgressSources["a"]; s.SourceAddress != "127.0.0.31" || s.EHLODomain != "a.test" {
		t.Fatalf("source a: %+v", s)
	}
	if c.Queue.EgressPool != "p" {
		t.Fatalf("queue.egress_pool = %q", c.Queue.EgressPool)
	}
	// A weight of 0 disables an entry, as long as another one can send.
	if _, err := Parse(twoSources + "[egress_pool.p]\nentries = [{name = \"a\", weight = 0}, {name = \"b\"}]\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse("[queue]\negress_pool = \"unspecified\"\n"); err != nil {
		t.Fatal(err)
	}
}

// Each mistake is a start-up error naming its key.
func TestEgressPoolErrors(t *testing.T) {
	for in, want := range map[string]string{
		"[egress_pool.p]\nentries = [{name = \"nope\"}]":                           "egress_pool.p.entries[0].name: no [egress_source.nope]",
		twoSources + "[egress_pool.p]\nentries = [{name = \"a\"}, {name = \"c\"}]": "egress_pool.p.entries[1].name",
		twoSources + "[egress_pool.p]\nentries = [{name = \"a\", weight = -1}]":    "egress_pool.p.entries[0].weight",
		twoSources + "[egress_pool.p]\nentries = [{name = \"a\", weight = 0}]":     "egress_pool.p.entries: every entry has weight 0",
		twoSources + "[egress_pool.p]\nentries = [{name = \"a\"}, {name = \"a\"}]": "listed twice",
		twoSources + "[egress_pool.p]\nentries = []":                               "egress_pool.p.entries: must list",
		twoSources + "[egress_pool.p]\nentries = [{weight = 2}]":                   "egress_pool.p.entries[0].name",
		twoSources + "[egress_pool.p]\nentries = [{name = \"a\", wieght = 2}]":     "unknown configuration key egress_pool.p.entries.wieght",
		twoSources + "[egress_pool.unspecified]\nentries = [{name = \"a\"}]":       "egress_pool.unspecified",
		"[egress_source.a]\nsource_address = \"localhost\"":                        "egress_source.a.source_address",
		"[egress_source.a]\nsrc = \"127.0.0.1\"":                                   "unknown configuration key egress_source.a.src",
		"[egress_source.a]\nehlo_domain = \"bad name\"":                            "egress_source.a.ehlo_domain: \"bad name\" is not a domain",
		"[egress_source.unspecified]\nehlo_domain = \"x.test\"":                    "egress_source.unspecified",
		"[queue]\negress_pool = \"p\"":                                             "queue.egress_pool: no [egress_pool.p]",
	} {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}
