package route

import (
	"strings"

	"github.com/wasmta/wasmta/host/message"
)

// Meta keys that name a message's scheduled queue (design.md §2).
const (
	MetaQueue         = "queue"
	MetaCampaign      = "campaign"
	MetaTenant        = "tenant"
	MetaRoutingDomain = "routing_domain"
)

// Components are the parts of a scheduled queue name "[campaign:][tenant@]domain[!routing_domain]"
// (design.md §2). They are what get_queue_config is called with.
type Components struct {
	Campaign      string // "" when absent
	Tenant        string // "" when absent or empty
	HasTenant     bool   // the name carried a tenant part, even an empty one ("c1:@d" => HasTenant, Tenant == "")
	Domain        string
	RoutingDomain string // "" when absent
}

// FormatQueueName builds a scheduled queue name; an empty string means the part is absent.
// A campaign without a tenant still writes the '@' ("c1:@example.com"), as KumoMTA does, so that
// the campaign is not mistaken for a tenant when the name is parsed back.
//
// One addition to KumoMTA's format keeps names round-trippable: a tenant that contains ':' but
// has no campaign is written with a leading ':' (":a:b@d"), because "a:b@d" would parse back as
// campaign "a", tenant "b". Campaigns must not contain ':' or '@', tenants must not contain '@'
// and domains must not contain '!'; such values cannot be told apart when parsed.
func FormatQueueName(campaign, tenant, domain, routingDomain string) string {
	var b strings.Builder
	b.Grow(len(campaign) + len(tenant) + len(domain) + len(routingDomain) + 3)
	switch {
	case campaign != "":
		b.WriteString(campaign)
		b.WriteByte(':')
		b.WriteString(tenant)
		b.WriteByte('@')
	case strings.IndexByte(tenant, ':') >= 0:
		b.WriteByte(':')
		b.WriteString(tenant)
		b.WriteByte('@')
	case tenant != "":
		b.WriteString(tenant)
		b.WriteByte('@')
	}
	b.WriteString(domain)
	if routingDomain != "" {
		b.WriteByte('!')
		b.WriteString(routingDomain)
	}
	return b.String()
}

// QueueName is the scheduled queue of a message with meta for a recipient in recipientDomain.
// Meta "queue", when non-empty, is the name verbatim (no lower-casing: it is the operator's
// string). Otherwise the name is built from meta campaign, tenant and routing_domain and the
// lower-cased recipient domain; only the domain is lower-cased, like KumoMTA, because domains
// are case-insensitive (RFC 5321 §2.4) while tenant and campaign are the operator's labels.
func QueueName(meta map[string]string, recipientDomain string) string {
	if q := meta[MetaQueue]; q != "" {
		return q
	}
	return FormatQueueName(meta[MetaCampaign], meta[MetaTenant], strings.ToLower(recipientDomain), meta[MetaRoutingDomain])
}

// ParseQueueName splits a scheduled queue name into its parts: at the first '@' (left: campaign
// and tenant, split at the first ':'; no ':' means a tenant only), then the domain part at the
// first '!'. A ":port" on the domain or routing domain is kept ("foo.com!routing.com:2025").
//
// The errors are permanent *message.Error values (550 5.1.2): a name without a domain, or with
// an empty routing domain after '!', cannot be routed, and silently routing "d!" to "d" would
// hide a plugin bug.
func ParseQueueName(name string) (Components, error) {
	var c Components
	if name == "" {
		return c, message.Errorf(550, "5.1.2", "invalid queue name: empty")
	}
	rest := name
	if prefix, domainPart, ok := strings.Cut(name, "@"); ok {
		c.HasTenant = true
		rest = domainPart
		if campaign, tenant, ok := strings.Cut(prefix, ":"); ok {
			c.Campaign, c.Tenant = campaign, tenant
		} else {
			c.Tenant = prefix
		}
	}
	if domain, routing, ok := strings.Cut(rest, "!"); ok {
		if routing == "" {
			return Components{}, message.Errorf(550, "5.1.2", "invalid queue name %s: empty routing domain after '!'", show(name))
		}
		c.Domain, c.RoutingDomain = domain, routing
	} else {
		c.Domain = rest
	}
	if c.Domain == "" {
		return Components{}, message.Errorf(550, "5.1.2", "invalid queue name %s: empty domain", show(name))
	}
	return c, nil
}

// Destination is what delivery resolves: the routing domain when set (design.md §2: the scheduled
// queue keeps the recipient domain, delivery goes to the routing domain), else the domain.
func (c Components) Destination() string {
	if c.RoutingDomain != "" {
		return c.RoutingDomain
	}
	return c.Domain
}

// String formats c as a queue name that ParseQueueName turns back into c. It differs from
// FormatQueueName only for an empty tenant marked present without a campaign ("@d").
func (c Components) String() string {
	if c.HasTenant && c.Campaign == "" && c.Tenant == "" {
		return "@" + FormatQueueName("", "", c.Domain, c.RoutingDomain)
	}
	return FormatQueueName(c.Campaign, c.Tenant, c.Domain, c.RoutingDomain)
}

// CheckMeta parses a value of the routing meta keys (MetaQueue: a whole queue name;
// MetaRoutingDomain: a destination) the way delivery will, and checks that a MetaTenant or
// MetaCampaign value can be told apart in the queue name it becomes part of, so that a bad one
// is refused where it is set (a plugin's set_meta, an admin rebind) instead of bouncing every
// message it touches at delivery. Other keys and empty values are not routing input: nil.
func CheckMeta(key, val string) error {
	switch {
	case val == "":
		return nil
	case key == MetaTenant && strings.IndexByte(val, '@') >= 0:
		// "acme@corp" + "@example.com" would parse back as tenant "acme", domain
		// "corp@example.com" (ParseQueueName splits at the first '@').
		return message.Errorf(550, "5.1.2", "invalid tenant %s: '@' ends the tenant in a queue name", show(val))
	case key == MetaCampaign && strings.ContainsAny(val, ":@"):
		return message.Errorf(550, "5.1.2", "invalid campaign %s: ':' ends the campaign and '@' the tenant in a queue name", show(val))
	case key != MetaQueue && key != MetaRoutingDomain:
		return nil
	}
	dest := val
	if key == MetaQueue {
		c, err := ParseQueueName(val)
		if err != nil {
			return err
		}
		dest = c.Destination()
	}
	_, err := ParseTarget(dest)
	return err
}
