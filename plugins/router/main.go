// Command router is wasmta's first-party routing plugin: every recipe of the seed document
// (routing_domain, queue, mx_list, literals) from its [plugins.config] table, no code to write.
// See README.md for the config.
package main

import (
	"errors"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/plugins/router/policy"
	wasmta "github.com/wasmta/wasmta/sdk/go"
)

var (
	cfg                                                 *policy.Config
	needRecipient, needSender, needTenant, needCampaign bool
)

func init() {
	wasmta.OnInit(func() error {
		var raw []byte
		if err := wasmta.Config((*rawJSON)(&raw)); err != nil {
			return err
		}
		c, err := policy.Parse(raw)
		if err != nil {
			return err
		}
		cfg = c
		needRecipient, needSender, needTenant, needCampaign = c.Needs()
		return nil
	})
	wasmta.OnMessageReceived(route)
	wasmta.OnHTTPMessageGenerated(route)
	wasmta.OnGetQueueConfig(func(q wasmta.Queue) (*wasmta.QueueConfig, error) {
		js, err := cfg.QueueDoc(q.Domain, q.RoutingDomain)
		if err != nil || js == nil {
			return nil, err
		}
		return wasmta.RawQueueConfig(js), nil
	})
}

func route(m *wasmta.Message) error {
	for _, h := range []struct{ header, meta string }{{cfg.TenantHeader, "tenant"}, {cfg.CampaignHeader, "campaign"}} {
		if h.header == "" {
			continue
		}
		if v, ok := m.Header(h.header); ok {
			// A value the relay refuses as a tenant or campaign ('@' in a tenant, ':' or '@'
			// in a campaign: it could not be told apart in the queue name) is the sender's
			// header, not the operator's mistake: the message goes on without it.
			var e *wasmta.Error
			if err := m.SetMeta(h.meta, v); err != nil && !(errors.As(err, &e) && e.Status == abi.Invalid) {
				return err
			}
		}
	}
	if len(cfg.Rules) == 0 {
		return nil
	}
	var env policy.Envelope
	if needRecipient {
		env.Recipient = m.Recipient(0)
	}
	if needSender {
		env.Sender = m.Sender()
	}
	if needTenant {
		env.Tenant, _ = m.Meta("tenant")
	}
	if needCampaign {
		env.Campaign, _ = m.Meta("campaign")
	}
	r := cfg.Route(env)
	switch {
	case r == nil:
		return nil
	case r.Queue != "":
		return m.SetMeta("queue", r.Queue)
	default:
		return m.SetMeta("routing_domain", r.RoutingDomain)
	}
}

// rawJSON keeps the config bytes as they are (json.RawMessage semantics).
type rawJSON []byte

func (r *rawJSON) UnmarshalJSON(b []byte) error { *r = append((*r)[:0], b...); return nil }

func main() {}
