package app

import (
	"testing"

	"github.com/wasmta/wasmta/host/config"
)

// A path's settings layer [egress], then the egress source, then the [[egress.path]] that
// matches the bare site: the source's source_address and ehlo_domain replace [egress]'s, and an
// [[egress.path]] entry still overrides them.
func TestEgressSourceLayering(t *testing.T) {
	cfg, err := config.Parse(`
[egress]
ehlo_domain = "default.test"
source_address = "127.0.0.40"
[egress_source.s1]
source_address = "127.0.0.41"
ehlo_domain = "s1.test"
[egress_source.s2]
ehlo_domain = "s2.test"
[egress_pool.p]
entries = [{name = "s1"}, {name = "s2"}]
[[egress.path]]
site = "special.test"
ehlo_domain = "special-path.test"
`)
	if err != nil {
		t.Fatal(err)
	}
	e, err := newEgressPaths(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		source, site, ehlo, addr string
	}{
		{"", "mx.test", "default.test", "127.0.0.40"},
		{"s1", "mx.test", "s1.test", "127.0.0.41"},
		{"s2", "mx.test", "s2.test", "127.0.0.40"}, // no source_address: [egress]'s
		{"s1", "special.test", "special-path.test", "127.0.0.41"},
	} {
		p := e.resolve("rd.test", c.source, c.site)
		if p.EHLODomain != c.ehlo || p.SourceAddress.String() != c.addr {
			t.Errorf("source %q site %q: ehlo %q from %s, want %q from %s", c.source, c.site, p.EHLODomain, p.SourceAddress, c.ehlo, c.addr)
		}
	}
}
