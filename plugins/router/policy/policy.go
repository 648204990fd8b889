// Package policy is the router plugin's logic, kept free of the ABI so it is unit-tested
// natively: rules on recipient domain, sender domain, tenant and campaign that set a
// routing_domain or a queue, and per-domain queue configs (mx_list, retry, max_age).
package policy

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"github.com/wasmta/wasmta/abi"
)

// Config is the router's [plugins.config] table.
type Config struct {
	// TenantHeader and CampaignHeader, when set, copy that header into the tenant / campaign
	// meta before rules run (so rules can match on them and queues are split by them).
	TenantHeader   string                 `json:"tenant_header"`
	CampaignHeader string                 `json:"campaign_header"`
	Rules          []Rule                 `json:"rules"`
	Queues         map[string]QueueConfig `json:"queues"`
}

// Rule matches a message and routes it. Match fields that are set must all match; the first
// matching rule wins. A pattern is a domain ("example.com"), a suffix ("*.example.com" matches
// subdomains only) or "*". Exactly one of RoutingDomain and Queue is the action.
type Rule struct {
	RecipientDomain string `json:"recipient_domain"`
	SenderDomain    string `json:"sender_domain"`
	Tenant          string `json:"tenant"`
	Campaign        string `json:"campaign"`

	RoutingDomain string `json:"routing_domain"`
	Queue         string `json:"queue"`
}

// QueueConfig is a per-domain queue config; durations are strings like "5m", "7d".
type QueueConfig struct {
	MxList           []abi.MXEntry `json:"mx_list"`
	RetryInterval    string        `json:"retry_interval"`
	MaxRetryInterval string        `json:"max_retry_interval"`
	MaxAge           string        `json:"max_age"`
}

// Parse decodes and checks the config; errors name the rule or queue at fault.
func Parse(b []byte) (*Config, error) {
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	var c Config
	if err := d.Decode(&c); err != nil {
		return nil, fmt.Errorf("router config: %w", err)
	}
	for i, r := range c.Rules {
		if (r.RoutingDomain == "") == (r.Queue == "") {
			return nil, fmt.Errorf("router config: rules[%d]: set exactly one of routing_domain and queue", i)
		}
		for _, p := range []string{r.RecipientDomain, r.SenderDomain} {
			if strings.Contains(strings.TrimPrefix(p, "*."), "*") && p != "*" {
				return nil, fmt.Errorf("router config: rules[%d]: pattern %q: use a domain, *.domain or *", i, p)
			}
		}
		for _, v := range []string{r.RoutingDomain, r.Queue} {
			if err := checkLiterals(v); err != nil {
				return nil, fmt.Errorf("router config: rules[%d]: %w", i, err)
			}
		}
	}
	for name, q := range c.Queues {
		for j, e := range q.MxList {
			for _, v := range []string{e.Name, e.Addr} {
				if err := checkLiterals(v); err != nil {
					return nil, fmt.Errorf("router config: queues.%s: mx_list[%d]: %w", name, j, err)
				}
			}
		}
		for _, d := range []string{q.RetryInterval, q.MaxRetryInterval, q.MaxAge} {
			if d == "" {
				continue
			}
			if _, err := abi.ParseDuration(d); err != nil {
				return nil, fmt.Errorf("router config: queues.%s: %w", name, err)
			}
		}
	}
	return &c, nil
}

// checkLiterals checks every domain literal ("[10.0.0.1]", "[IPv6:::1]", the non-conforming
// "[::1]") in a routing_domain, a queue name or an mx_list entry: a '[' without its ']' or a
// bracket that holds no IP address is a configuration error now (design §3), not a
// set_meta failure on every message the rule matches, which clients would see as 451 forever.
// The host parses the value again when the meta is set; this is only the early, named error.
func checkLiterals(v string) error {
	for rest := v; ; {
		open := strings.IndexByte(rest, '[')
		if open < 0 {
			return nil
		}
		end := strings.IndexByte(rest[open:], ']')
		if end < 0 {
			return fmt.Errorf("domain literal in %q: missing ']'", v)
		}
		ip := rest[open+1 : open+end]
		if len(ip) >= 5 && strings.EqualFold(ip[:5], "IPv6:") {
			ip = ip[5:]
		}
		a, err := netip.ParseAddr(ip)
		if err != nil || a.Zone() != "" {
			return fmt.Errorf("domain literal in %q: %q is not an IP address", v, rest[open:open+end+1])
		}
		rest = rest[open+end+1:]
		if a.Is6() && strings.HasPrefix(rest, ":") {
			return fmt.Errorf("domain literal in %q: an IPv6 literal cannot carry a port (the colon is ambiguous)", v)
		}
	}
}

// Needs reports which envelope fields any rule looks at, so the plugin fetches only those
// (every host call costs time on every message).
func (c *Config) Needs() (recipient, sender, tenant, campaign bool) {
	for _, r := range c.Rules {
		recipient = recipient || (r.RecipientDomain != "" && r.RecipientDomain != "*")
		sender = sender || (r.SenderDomain != "" && r.SenderDomain != "*")
		tenant = tenant || r.Tenant != ""
		campaign = campaign || r.Campaign != ""
	}
	return
}

// Envelope is what rules match on.
type Envelope struct {
	Sender, Recipient, Tenant, Campaign string
}

// Route returns the first matching rule, or nil.
func (c *Config) Route(e Envelope) *Rule {
	// Domains are lower-cased once, and only if some rule looks at them.
	var rd, sd string
	var rdDone, sdDone bool
	rcptDomain := func() string {
		if !rdDone {
			rd, rdDone = domainOf(e.Recipient), true
		}
		return rd
	}
	sndDomain := func() string {
		if !sdDone {
			sd, sdDone = domainOf(e.Sender), true
		}
		return sd
	}
	for i := range c.Rules {
		r := &c.Rules[i]
		if matchDomain(r.RecipientDomain, rcptDomain) &&
			matchDomain(r.SenderDomain, sndDomain) &&
			(r.Tenant == "" || r.Tenant == e.Tenant) &&
			(r.Campaign == "" || r.Campaign == e.Campaign) {
			return r
		}
	}
	return nil
}

func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(addr[i+1:])
}

func matchDomain(pattern string, domain func() string) bool {
	switch {
	case pattern == "" || pattern == "*":
		return true
	case strings.HasPrefix(pattern, "*."):
		return strings.HasSuffix(domain(), strings.ToLower(pattern[1:]))
	}
	return strings.EqualFold(pattern, domain())
}

// QueueDoc returns the queue config for a queue's routing domain or domain (the routing
// domain's entry first), as the JSON document make_queue_config takes; nil when none applies.
func (c *Config) QueueDoc(domain, routingDomain string) ([]byte, error) {
	q, ok := c.Queues[strings.ToLower(routingDomain)]
	if !ok || routingDomain == "" {
		if q, ok = c.Queues[strings.ToLower(domain)]; !ok {
			return nil, nil
		}
	}
	var doc abi.QueueConfig
	dur := func(s string) *abi.Duration {
		if s == "" {
			return nil
		}
		d, _ := abi.ParseDuration(s) // checked by Parse
		v := abi.Duration(d)
		return &v
	}
	doc.RetryInterval, doc.MaxRetryInterval, doc.MaxAge = dur(q.RetryInterval), dur(q.MaxRetryInterval), dur(q.MaxAge)
	if len(q.MxList) > 0 {
		doc.Protocol = &abi.Protocol{SMTP: &abi.SMTPProtocol{MXList: q.MxList}}
	}
	return json.Marshal(&doc)
}
