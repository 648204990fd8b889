package route

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/wasmta/wasmta/host/message"
)

func TestParseTarget(t *testing.T) {
	ip := netip.MustParseAddr
	tests := []struct {
		in   string
		want Target
		str  string // String(); "" = same as in
	}{
		{"example.com", Target{Name: "example.com"}, ""},
		{"Example.COM.", Target{Name: "example.com"}, "example.com"},
		{"smart.host.local:2525", Target{Name: "smart.host.local", Port: 2525}, ""},
		{"localhost", Target{Name: "localhost"}, ""},
		{"_internal-relay.corp", Target{Name: "_internal-relay.corp"}, ""},
		{"[10.0.0.1]", Target{IP: ip("10.0.0.1")}, ""},
		{"[10.0.0.1]:2525", Target{IP: ip("10.0.0.1"), Port: 2525}, ""},
		{"[10.0.0.1:2525]", Target{IP: ip("10.0.0.1"), Port: 2525}, "[10.0.0.1]:2525"},
		{"[IPv6:::1]", Target{IP: ip("::1")}, ""},
		{"[ipv6:2001:DB8::1]", Target{IP: ip("2001:db8::1")}, "[IPv6:2001:db8::1]"},
		{"[IPV6:::ffff:10.0.0.1]", Target{IP: ip("::ffff:10.0.0.1")}, "[IPv6:::ffff:10.0.0.1]"},
		{"[::1]", Target{IP: ip("::1")}, "[IPv6:::1]"}, // non-conforming, accepted for routing
		{"10.0.0.1", Target{IP: ip("10.0.0.1")}, "[10.0.0.1]"},
		{"10.0.0.1:2525", Target{IP: ip("10.0.0.1"), Port: 2525}, "[10.0.0.1]:2525"},
		{"::1", Target{IP: ip("::1")}, "[IPv6:::1]"},
		// SMTPUTF8 recipient domains are looked up by their A-labels.
		{"bücher.example", Target{Name: "xn--bcher-kva.example"}, "xn--bcher-kva.example"},
		{"MÜNCHEN.de:2525", Target{Name: "xn--mnchen-3ya.de", Port: 2525}, "xn--mnchen-3ya.de:2525"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTarget(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if got.IsLiteral() != tt.want.IP.IsValid() {
				t.Errorf("IsLiteral = %v", got.IsLiteral())
			}
			str := tt.str
			if str == "" {
				str = tt.in
			}
			if got.String() != str {
				t.Errorf("String = %q, want %q", got.String(), str)
			}
			back, err := ParseTarget(got.String())
			if err != nil || back != got {
				t.Errorf("round trip = %+v, %v", back, err)
			}
		})
	}
}

func TestParseTargetErrors(t *testing.T) {
	tests := []struct {
		in, text string // text: a part of the reply text
	}{
		{"", "empty"},
		{"[10.0.0.1", "missing ']'"},
		{"[", "missing ']'"},
		{"[]", "not an IP address"},
		{"[10.0.0.256]", "not an IP address"},
		{"[IPv6:10.0.0.1]", "not an IPv6 address"},
		{"[IPv6:bad]", "not an IPv6 address"},
		{"[IPv6:::1]:2525", "cannot carry a port"},
		{"[::1]:2525", "cannot carry a port"},
		{"[10.0.0.1:25]:26", "port given twice"},
		{"[10.0.0.1]x", "only ':port'"},
		{"[10.0.0.1]:", "only ':port'"},
		{"[10.0.0.1]:0", "only ':port'"},
		{"[10.0.0.1]:65536", "only ':port'"},
		{"[10.0.0.1:0]", "port 0"},
		{"[fe80::1%eth0]", "zone"},
		{"[future:xyz]", "not an IP address"},
		{"example.com:", "bad port"},
		{"example.com:smtp", "bad port"},
		{"example.com:-1", "bad port"},
		{"a:b:25", "invalid character"},
		{"exa mple.com", "invalid character"},
		{"a..b", "empty label"},
		{".", "empty domain name"},
		{"10.0.0.256", "numeric label"},
		{"1.2.3", "numeric label"},
		{"fe80::1%eth0", "zone"},
		{strings.Repeat("a", 64) + ".com", "longer than 63"},
		{strings.Repeat("abcdefghi.", 26) + "com", "longer than 253"},
		{"\xff.com", "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTarget(tt.in)
			if err == nil {
				t.Fatalf("accepted as %+v", got)
			}
			e, ok := err.(*message.Error)
			if !ok || e.Code != 550 || e.Enhanced != "5.1.2" {
				t.Fatalf("want *message.Error 550 5.1.2, got %#v", err)
			}
			if !strings.Contains(e.Text, tt.text) {
				t.Errorf("text %q does not say %q", e.Text, tt.text)
			}
		})
	}
}

// TestPunycode checks the encoder against RFC 3492 §7.1's samples and common names.
func TestPunycode(t *testing.T) {
	tests := []struct{ in, want string }{
		{"bücher", "bcher-kva"},
		{"münchen", "mnchen-3ya"},
		{"ü", "tda"},
		// RFC 3492 §7.1 (A) Arabic (Egyptian), (B) Chinese (simplified), (L) Japanese.
		{"\u0644\u064A\u0647\u0645\u0627\u0628\u062A\u0643\u0644\u0645\u0648\u0634\u0639\u0631\u0628\u064A\u061F", "egbpdaj6bu4bxfgehfvwxn"},
		{"\u4ED6\u4EEC\u4E3A\u4EC0\u4E48\u4E0D\u8BF4\u4E2D\u6587", "ihqwcrb4cv8a8dqg056pqjye"},
		{"3\u5E74B\u7D44\u91D1\u516B\u5148\u751F", "3B-ww4c5e180e575a65lsy2b"},
	}
	for _, tt := range tests {
		if got := punycodeEncode(tt.in); got != tt.want {
			t.Errorf("punycodeEncode(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// ParseTarget asks netip only about strings that could be addresses (a colon, or only digits
// and dots). That rests on netip accepting nothing else; this checks it on any input.
func FuzzParseTargetSkipsNames(f *testing.F) {
	for _, s := range []string{"example.net", "1.2.3.4", "::1", "1.2.3.4:25", "163.com", "0x7f.1", "1e2", "٣.٣.٣.٣"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.IndexByte(s, ':') >= 0 {
			return
		}
		if _, err := netip.ParseAddrPort(s); err == nil {
			t.Fatalf("netip.ParseAddrPort(%q) accepts a string without a colon", s)
		}
		if _, err := netip.ParseAddr(s); err == nil && !onlyDigitsAndDots(s) {
			t.Fatalf("netip.ParseAddr(%q) accepts a string with no colon that is not digits and dots", s)
		}
	})
}

// A name alreadyNormal lets through unchanged is one the full normalisation leaves unchanged.
func FuzzAlreadyNormal(f *testing.F) {
	for _, s := range []string{"example.net", "a-b_c.example", "Example.NET", "1.2.3.4", "a..b", "xn--bcher-kva.example", "bücher.example", strings.Repeat("a", 64) + ".test"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !alreadyNormal(s) {
			return
		}
		if n, reason := normalizeSlow(s); n != s || reason != "" {
			t.Fatalf("alreadyNormal(%q) but normalizeSlow gives %q, %q", s, n, reason)
		}
	})
}
