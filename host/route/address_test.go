package route

import (
	"strings"
	"testing"

	"github.com/wasmta/wasmta/host/message"
)

func TestParseMailbox(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	tests := []struct {
		in            string
		local, domain string
	}{
		{"user@example.com", "user", "example.com"},
		{"First.Last+tag@Example.COM", "First.Last+tag", "Example.COM"},
		{"!#$%&'*+-/=?^_`{|}~@x.org", "!#$%&'*+-/=?^_`{|}~", "x.org"},
		{`"john doe"@example.com`, `"john doe"`, "example.com"},
		{`"a@b"@example.com`, `"a@b"`, "example.com"},
		{`"quote\"d\\"@example.com`, `"quote\"d\\"`, "example.com"},
		{`""@example.com`, `""`, "example.com"},
		{"user@[10.0.0.1]", "user", "[10.0.0.1]"},
		{"user@[IPv6:::1]", "user", "[IPv6:::1]"},
		{"user@[ipv6:2001:db8::1]", "user", "[ipv6:2001:db8::1]"},
		{"user@[IPv6:::ffff:10.0.0.1]", "user", "[IPv6:::ffff:10.0.0.1]"},
		{"user@localhost", "user", "localhost"},
		{"user@a-b.c0.example", "user", "a-b.c0.example"},
		// RFC 6531: SMTPUTF8 local parts and U-label domains.
		{"jöran@bücher.example", "jöran", "bücher.example"},
		{`"jö ran"@example.com`, `"jö ran"`, "example.com"},
		// Limits are inclusive.
		{strings.Repeat("l", 64) + "@x.com", strings.Repeat("l", 64), "x.com"},
		{"u@" + long63 + ".com", "u", long63 + ".com"},
		{"u@" + strings.Repeat("abcdefghi.", 25) + "co", "u", strings.Repeat("abcdefghi.", 25) + "co"}, // 254 octets
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			local, domain, err := ParseMailbox(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if local != tt.local || domain != tt.domain {
				t.Errorf("got (%q, %q), want (%q, %q)", local, domain, tt.local, tt.domain)
			}
		})
	}
}

func TestParseMailboxErrors(t *testing.T) {
	tests := []struct {
		in, text string // text: a part of the reply text
	}{
		{"", "empty"},
		{"user", "missing '@domain'"},
		{"user@", "empty domain"},
		{"@example.com", "empty local part"},
		{"@a,@b:user@example.com", "source routes"},
		{"<user@example.com>", "angle brackets"},
		{".user@example.com", "starts with a dot"},
		{"user.@example.com", "ends with a dot"},
		{"us..er@example.com", "two dots"},
		{"us er@example.com", "unexpected"},
		{"us\x00er@example.com", "unexpected"},
		{"us\u0085er@example.com", "unexpected"}, // a C1 control character
		{`"unterminated@example.com`, "unterminated"},
		{`"a"b@example.com`, "unexpected"},
		{"\"a\x01\"@example.com", "control character"},
		{"\"a\\\x01\"@example.com", "bad quoted pair"},
		{"user@[::1]", "needs the 'IPv6:' tag"},
		{"user@[2001:db8::1]", "needs the 'IPv6:' tag"},
		{"user@[IPv6:bad]", "bad IPv6"},
		{"user@[IPv6:10.0.0.1]", "bad IPv6"},
		{"user@[IPv6:fe80::1%eth0]", "bad IPv6"},
		{"user@[10.0.0.256]", "bad IPv4"},
		{"user@[010.0.0.1]", "bad IPv4"},
		{"user@[future:xyz]", "unsupported address literal tag"},
		{"user@[10.0.0.1", "must end with its only ']'"},
		{"user@[10.0.0.1]:25", "must end with its only ']'"},
		{"user@[10.0.0.1]]", "must end with its only ']'"},
		{"user@example..com", "empty label"},
		{"user@example.com.", "empty label"},
		{"user@-example.com", "starts or ends with '-'"},
		{"user@example-.com", "starts or ends with '-'"},
		{"user@exa_mple.com", "invalid character"},
		{"user@example.com:25", "invalid character"},
		{"user@ex ample.com", "invalid character"},
		{"a@b@example.com", "invalid character"},
		{"user@\xffexample.com", "UTF-8"},
		{strings.Repeat("l", 65) + "@x.com", "local part longer than 64"},
		{"u@" + strings.Repeat("a", 64) + ".com", "label longer than 63"},
		{"uu@" + strings.Repeat("abcdefghi.", 25) + "co", "longer than 254"}, // 255 octets
		{strings.Repeat("l", 64) + "@" + strings.Repeat("abcdefghi.", 19) + "abcdefghij", "longer than 254"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			local, domain, err := ParseMailbox(tt.in)
			if err == nil {
				t.Fatalf("accepted as (%q, %q)", local, domain)
			}
			e, ok := err.(*message.Error)
			if !ok || e.Code != 553 || e.Enhanced != "5.1.3" {
				t.Fatalf("want *message.Error 553 5.1.3, got %#v", err)
			}
			if !strings.Contains(e.Text, tt.text) {
				t.Errorf("text %q does not say %q", e.Text, tt.text)
			}
			if len(e.Text) > 300 {
				t.Errorf("text is %d bytes long", len(e.Text))
			}
		})
	}
}

// TestLiteralsDiffer pins design.md §3: routing config accepts "[::1]", envelopes do not.
func TestLiteralsDiffer(t *testing.T) {
	if _, err := ParseTarget("[::1]"); err != nil {
		t.Errorf("ParseTarget([::1]): %v", err)
	}
	if _, _, err := ParseMailbox("user@[::1]"); err == nil {
		t.Error("ParseMailbox(user@[::1]) accepted")
	}
	for _, lit := range []string{"[10.0.0.1]", "[IPv6:::1]", "[ipv6:::1]"} {
		_, domain, err := ParseMailbox("user@" + lit)
		if err != nil {
			t.Fatalf("ParseMailbox(user@%s): %v", lit, err)
		}
		if tg, err := ParseTarget(strings.ToLower(domain)); err != nil || !tg.IsLiteral() {
			t.Errorf("ParseTarget(%s) = %+v, %v", domain, tg, err)
		}
	}
}
