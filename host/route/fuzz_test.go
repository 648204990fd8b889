package route

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wasmta/wasmta/host/message"
)

// Seeds shared by the fuzzers; the committed corpus under testdata/fuzz adds more.
var fuzzSeeds = []string{
	"", "example.com", "Example.COM.", "foo.com:2025", "[10.0.0.1]", "[10.0.0.1]:2525",
	"[10.0.0.1:2525]", "[IPv6:::1]", "[::1]", "[", "]", "10.0.0.1", "::1", "bücher.example",
	"c1:t1@example.com!r.com", "c1:@example.com", "@d", "user@example.com", `"a b"@x`,
	"user@[IPv6:::1]", "user@[::1]", "fe80::1%eth0",
}

// permanent checks that err is a permanent *message.Error with a text and no control characters.
func permanent(t *testing.T, in string, err error) {
	t.Helper()
	var e *message.Error
	if !errors.As(err, &e) || e.Temporary() || e.Text == "" {
		t.Fatalf("%q: error %#v is not a permanent *message.Error", in, err)
	}
	for _, r := range e.Text {
		if r < 32 || r == 127 || r >= utf8.RuneSelf {
			t.Fatalf("%q: reply text %q carries %U", in, e.Text, r)
		}
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseTarget(s)
		if err != nil {
			permanent(t, s, err)
			return
		}
		if tg.IsLiteral() {
			if tg.Name != "" || tg.IP.Zone() != "" || (tg.IP.Is6() && tg.Port != 0) {
				t.Fatalf("%q: bad literal %+v", s, tg)
			}
		} else {
			if tg.Name == "" || tg.Name != strings.ToLower(tg.Name) || strings.ContainsAny(tg.Name, ":[]@ ") ||
				len(tg.Name) > 253 || strings.HasSuffix(tg.Name, ".") {
				t.Fatalf("%q: bad name %+v", s, tg)
			}
			for i := 0; i < len(tg.Name); i++ {
				if tg.Name[i] >= utf8.RuneSelf {
					t.Fatalf("%q: name %q is not ASCII", s, tg.Name)
				}
			}
		}
		back, err := ParseTarget(tg.String())
		if err != nil || back != tg {
			t.Fatalf("%q: %+v formats as %q, which parses as %+v, %v", s, tg, tg.String(), back, err)
		}
	})
}

func FuzzParseMailbox(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		local, domain, err := ParseMailbox(s)
		if err != nil {
			permanent(t, s, err)
			return
		}
		if local+"@"+domain != s {
			t.Fatalf("%q split as (%q, %q)", s, local, domain)
		}
		if local == "" || domain == "" || len(local) > MaxLocalPart || len(domain) > MaxDomain || len(s) > MaxMailbox {
			t.Fatalf("%q: limits broken: (%q, %q)", s, local, domain)
		}
		if domain[0] == '[' {
			// An accepted literal is an IP that routing takes as the same literal.
			tg, err := ParseTarget(strings.ToLower(domain))
			if err != nil || !tg.IsLiteral() || !tg.IP.IsValid() || tg.Port != 0 {
				t.Fatalf("%q: literal %q routes as %+v, %v", s, domain, tg, err)
			}
			if tg.IP.Is6() != strings.HasPrefix(strings.ToLower(domain), "[ipv6:") {
				t.Fatalf("%q: literal %q has the wrong family", s, domain)
			}
		}
	})
}

func FuzzParseQueueName(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseQueueName(s)
		if err != nil {
			permanent(t, s, err)
			return
		}
		if c.Domain == "" || strings.Contains(c.Domain, "!") || strings.ContainsAny(c.Campaign, ":@") ||
			strings.Contains(c.Tenant, "@") || (c.Campaign != "" && !c.HasTenant) {
			t.Fatalf("%q: impossible components %+v", s, c)
		}
		back, err := ParseQueueName(c.String())
		if err != nil || back != c {
			t.Fatalf("%q: %+v formats as %q, which parses as %+v, %v", s, c, c.String(), back, err)
		}
		if !c.HasTenant || c.Campaign != "" || c.Tenant != "" {
			if got := FormatQueueName(c.Campaign, c.Tenant, c.Domain, c.RoutingDomain); got != c.String() {
				t.Fatalf("%q: FormatQueueName = %q, String = %q", s, got, c.String())
			}
		}
		if d := c.Destination(); d == "" || (c.RoutingDomain != "" && d != c.RoutingDomain) {
			t.Fatalf("%q: destination %q", s, d)
		}
	})
}
