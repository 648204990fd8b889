package policy

import (
	"strings"
	"testing"

	"github.com/wasmta/wasmta/abi"
)

const cfg = `{
  "tenant_header": "X-Tenant",
  "rules": [
    {"recipient_domain": "*.internal.example", "queue": "[10.0.0.9]"},
    {"tenant": "bulk", "routing_domain": "bulk.smarthost.example"},
    {"sender_domain": "billing.example", "campaign": "invoices", "routing_domain": "[IPv6:::1]"},
    {"recipient_domain": "*", "routing_domain": "my.smarthost.com"}
  ],
  "queues": {
    "domain.to.be.smart.hosted": {"mx_list": ["smart.host.local", {"name": "mx.example.com", "addr": "10.0.0.1"}], "retry_interval": "5m"},
    "my.smarthost.com": {"max_age": "2d"}
  }
}`

func TestRulesFirstMatchWins(t *testing.T) {
	c, err := Parse([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env       Envelope
		rd, queue string
	}{
		{Envelope{Recipient: "a@mx.internal.example"}, "", "[10.0.0.9]"},
		{Envelope{Recipient: "a@internal.example"}, "my.smarthost.com", ""}, // *. matches subdomains only
		{Envelope{Recipient: "a@x.test", Tenant: "bulk"}, "bulk.smarthost.example", ""},
		{Envelope{Sender: "s@Billing.Example", Recipient: "a@x.test", Campaign: "invoices"}, "[IPv6:::1]", ""},
		{Envelope{Sender: "s@billing.example", Recipient: "a@x.test"}, "my.smarthost.com", ""},
	} {
		r := c.Route(tc.env)
		if r == nil || r.RoutingDomain != tc.rd || r.Queue != tc.queue {
			t.Errorf("%+v: got %+v, want rd=%q queue=%q", tc.env, r, tc.rd, tc.queue)
		}
	}
}

func TestQueueDoc(t *testing.T) {
	c, _ := Parse([]byte(cfg))
	js, err := c.QueueDoc("domain.to.be.smart.hosted", "")
	if err != nil {
		t.Fatal(err)
	}
	q, err := abi.ParseQueueConfig(js)
	if err != nil {
		t.Fatal(err)
	}
	if mx := q.MXList(); len(mx) != 2 || mx[1].Addr != "10.0.0.1" || q.RetryInterval == nil {
		t.Fatalf("%s", js)
	}
	// The routing domain's entry applies to queues routed through it.
	if js, _ := c.QueueDoc("example.com", "my.smarthost.com"); !strings.Contains(string(js), `"max_age":"48h0m0s"`) {
		t.Fatalf("%s", js)
	}
	if js, _ := c.QueueDoc("other.example", ""); js != nil {
		t.Fatalf("no entry should give no config: %s", js)
	}
}

func TestParseErrorsNameTheProblem(t *testing.T) {
	for _, tc := range []struct{ cfg, want string }{
		{`{"rules":[{"recipient_domain":"a"}]}`, "rules[0]: set exactly one of routing_domain and queue"},
		{`{"rules":[{"queue":"q","routing_domain":"r"}]}`, "rules[0]: set exactly one"},
		{`{"rules":[{"recipient_domain":"a*b","queue":"q"}]}`, `pattern "a*b"`},
		{`{"queues":{"x":{"retry_interval":"soon"}}}`, "queues.x"},
		{`{"rulez":[]}`, `unknown field "rulez"`},
		// Literals (design §3): a missing ']' or a bracket without an IP is an error at start.
		{`{"rules":[{"routing_domain":"[10.0.0.1"}]}`, `rules[0]: domain literal in "[10.0.0.1": missing ']'`},
		{`{"rules":[{"queue":"[::1"}]}`, "rules[0]: domain literal"},
		{`{"rules":[{"queue":"t@example.com![10.0.0.256]"}]}`, `"[10.0.0.256]" is not an IP address`},
		{`{"rules":[{"routing_domain":"[IPv6:bad]"}]}`, "is not an IP address"},
		{`{"rules":[{"routing_domain":"[IPv6:::1]:2525"}]}`, "an IPv6 literal cannot carry a port"},
		{`{"rules":[{"queue":"[::1]:2525"}]}`, "an IPv6 literal cannot carry a port"},
		{`{"queues":{"x":{"mx_list":["a.test",{"name":"b.test","addr":"[10.0.0.1"}]}}}`, "queues.x: mx_list[1]: domain literal"},
	} {
		if _, err := Parse([]byte(tc.cfg)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestParseAcceptsTheGuidesLiterals: every literal form the routing guide shows parses,
// including the non-conforming [::1] and an IPv4 literal with a port.
func TestParseAcceptsTheGuidesLiterals(t *testing.T) {
	cfg := `{"rules":[{"queue":"[10.0.0.1]"},{"queue":"[IPv6:::1]"},{"routing_domain":"[::1]"},
		{"routing_domain":"[ipv6:2001:db8::1]"},{"routing_domain":"[10.0.0.1]:2525"},{"queue":"c:t@[10.0.0.1]![IPv6:::1]"}],
		"queues":{"x":{"mx_list":["smart.host.local",{"name":"mx.example.com","addr":"10.0.0.1"},"[10.0.0.2]"]}}}`
	if _, err := Parse([]byte(cfg)); err != nil {
		t.Fatal(err)
	}
}

func TestNeedsOnlyWhatRulesUse(t *testing.T) {
	c, _ := Parse([]byte(`{"rules":[{"recipient_domain":"*","routing_domain":"x.test"}]}`))
	if r, s, te, ca := c.Needs(); r || s || te || ca {
		t.Fatalf("a catch-all rule needs nothing: %v %v %v %v", r, s, te, ca)
	}
	c, _ = Parse([]byte(cfg))
	if r, s, te, ca := c.Needs(); !r || !s || !te || !ca {
		t.Fatalf("full config: %v %v %v %v", r, s, te, ca)
	}
}
