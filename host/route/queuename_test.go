package route

import (
	"testing"

	"github.com/wasmta/wasmta/host/message"
)

// TestQueueNameSpecTable covers every row of design.md §2 (and of the table in KumoMTA's queue docs):
// formatting, parsing and the round trip between them.
func TestQueueNameSpecTable(t *testing.T) {
	tests := []struct {
		campaign, tenant, routing string
		domain                    string
		name                      string
	}{
		{"", "", "", "example.com", "example.com"},
		{"", "", "my.smarthost.com", "example.com", "example.com!my.smarthost.com"},
		{"", "t1", "", "example.com", "t1@example.com"},
		{"c1", "t1", "r.com", "example.com", "c1:t1@example.com!r.com"},
		{"c1", "", "", "example.com", "c1:@example.com"},
		// The rest of KumoMTA's table.
		{"c1", "t1", "", "example.com", "c1:t1@example.com"},
		{"", "t1", "r.com", "example.com", "t1@example.com!r.com"},
		{"c1", "", "r.com", "example.com", "c1:@example.com!r.com"},
		// Ports are kept (KumoMTA issue #352).
		{"", "", "", "foo.com:2025", "foo.com:2025"},
		{"", "", "routing.com:2025", "foo.com", "foo.com!routing.com:2025"},
		{"c", "t", "[10.0.0.1]:2525", "foo.com:2025", "c:t@foo.com:2025![10.0.0.1]:2525"},
		// Literals, whose colons must not be taken for a campaign separator.
		{"", "", "", "[ipv6:::1]", "[ipv6:::1]"},
		{"c1", "t1", "[IPv6:::1]", "[10.0.0.1]", "c1:t1@[10.0.0.1]![IPv6:::1]"},
		// A tenant with a colon but no campaign gets a leading ':' so it parses back.
		{"", "a:b", "", "example.com", ":a:b@example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FormatQueueName(tt.campaign, tt.tenant, tt.domain, tt.routing); got != tt.name {
				t.Errorf("FormatQueueName = %q, want %q", got, tt.name)
			}
			c, err := ParseQueueName(tt.name)
			if err != nil {
				t.Fatalf("ParseQueueName: %v", err)
			}
			want := Components{
				Campaign:      tt.campaign,
				Tenant:        tt.tenant,
				HasTenant:     tt.campaign != "" || tt.tenant != "",
				Domain:        tt.domain,
				RoutingDomain: tt.routing,
			}
			if c != want {
				t.Errorf("ParseQueueName = %+v, want %+v", c, want)
			}
			if got := c.String(); got != tt.name {
				t.Errorf("String = %q, want %q", got, tt.name)
			}
			wantDest := tt.domain
			if tt.routing != "" {
				wantDest = tt.routing
			}
			if got := c.Destination(); got != wantDest {
				t.Errorf("Destination = %q, want %q", got, wantDest)
			}
		})
	}
}

func TestParseQueueNameQuirks(t *testing.T) {
	tests := []struct {
		name string
		want Components
	}{
		// KumoMTA's quirk: "campaign:@d" has an empty tenant, not an absent one.
		{"c1:@d", Components{Campaign: "c1", HasTenant: true, Domain: "d"}},
		{"@d", Components{HasTenant: true, Domain: "d"}},
		{":t@d", Components{Tenant: "t", HasTenant: true, Domain: "d"}},
		// First '@', first ':', first '!'.
		{"a:b:c@d@e!f!g", Components{Campaign: "a", Tenant: "b:c", HasTenant: true, Domain: "d@e", RoutingDomain: "f!g"}},
		{"t!x@d", Components{Tenant: "t!x", HasTenant: true, Domain: "d"}},
		{"c1:example.com", Components{Domain: "c1:example.com"}},
		// A queue meta is the operator's string: no lower-casing anywhere.
		{"My.SmartHost.COM", Components{Domain: "My.SmartHost.COM"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseQueueName(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if c != tt.want {
				t.Errorf("got %+v, want %+v", c, tt.want)
			}
			back, err := ParseQueueName(c.String())
			if err != nil || back != c {
				t.Errorf("round trip via %q = %+v, %v", c.String(), back, err)
			}
		})
	}
}

func TestParseQueueNameErrors(t *testing.T) {
	for _, name := range []string{"", "@", "c1:@", "t@", "!r.com", "t@!r.com", "d!"} {
		t.Run(name, func(t *testing.T) {
			c, err := ParseQueueName(name)
			if err == nil {
				t.Fatalf("accepted as %+v", c)
			}
			e, ok := err.(*message.Error)
			if !ok || e.Temporary() {
				t.Errorf("want a permanent *message.Error, got %#v", err)
			}
		})
	}
}

func TestQueueName(t *testing.T) {
	tests := []struct {
		desc   string
		meta   map[string]string
		domain string
		want   string
	}{
		{"plain, domain lower-cased", nil, "Example.COM", "example.com"},
		{"routing domain", map[string]string{"routing_domain": "my.smarthost.com"}, "example.com", "example.com!my.smarthost.com"},
		{"tenant", map[string]string{"tenant": "t1"}, "example.com", "t1@example.com"},
		{"all", map[string]string{"campaign": "c1", "tenant": "t1", "routing_domain": "r.com"}, "EXAMPLE.com", "c1:t1@example.com!r.com"},
		{"campaign only", map[string]string{"campaign": "c1"}, "example.com", "c1:@example.com"},
		{"only the domain is lower-cased", map[string]string{"campaign": "C1", "tenant": "T1", "routing_domain": "R.com"}, "X.com", "C1:T1@x.com!R.com"},
		{"queue verbatim", map[string]string{"queue": "My.SmartHost.COM", "tenant": "t1", "campaign": "c1"}, "example.com", "My.SmartHost.COM"},
		{"empty queue ignored", map[string]string{"queue": "", "tenant": "t1"}, "example.com", "t1@example.com"},
		{"literal", nil, "[IPv6:::1]", "[ipv6:::1]"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			if got := QueueName(tt.meta, tt.domain); got != tt.want {
				t.Errorf("QueueName = %q, want %q", got, tt.want)
			}
		})
	}
}

// A tenant or campaign that could not be told apart in the queue name it becomes part of is
// refused where it is set; one that round-trips is fine.
func TestCheckMetaTenantAndCampaign(t *testing.T) {
	for _, tc := range []struct {
		key, val string
		ok       bool
	}{
		{MetaTenant, "acme", true},
		{MetaTenant, "a:b", true},
		{MetaTenant, "a!b", true},
		{MetaTenant, "user@example.com", false},
		{MetaCampaign, "spring-2026", true},
		{MetaCampaign, "q1:spring", false},
		{MetaCampaign, "a@b", false},
	} {
		err := CheckMeta(tc.key, tc.val)
		if (err == nil) != tc.ok {
			t.Errorf("CheckMeta(%s, %q) = %v, want ok %v", tc.key, tc.val, err, tc.ok)
			continue
		}
		if tc.ok {
			campaign, tenant := "", ""
			if tc.key == MetaTenant {
				tenant = tc.val
			} else {
				campaign = tc.val
			}
			c, err := ParseQueueName(FormatQueueName(campaign, tenant, "example.com", ""))
			if err != nil || c.Domain != "example.com" || c.Tenant != tenant || c.Campaign != campaign {
				t.Errorf("%s %q: parses back as %+v, %v", tc.key, tc.val, c, err)
			}
		}
	}
}
