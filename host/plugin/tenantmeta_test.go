package plugin

import (
	"context"
	"testing"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/route"
)

// tenant and campaign become parts of the queue name "[campaign:][tenant@]domain", which is
// split at its first '@' and a campaign at its first ':'. A tenant with an '@' (an
// authenticated user's address copied into it) or a campaign with ':' or '@' would make the
// name parse back with another domain ("acme@corp@example.com": domain "corp@example.com"),
// and every message of the queue would bounce at delivery (550 5.1.2). set_meta refuses such a
// value at once, as it refuses a bad routing_domain; a value that round-trips is taken.
func TestTenantAndCampaignMustKeepTheQueueNameParsable(t *testing.T) {
	for _, tc := range []struct {
		config string
		status int32
	}{
		{"tenant=acme@corp", abi.Invalid},
		{"campaign=spring@2026", abi.Invalid},
		{"campaign=q1:spring", abi.Invalid},
		{"tenant=acme", abi.OK},
		{"tenant=a:b", abi.OK}, // written ":a:b@domain", which parses back
		{"campaign=spring-2026", abi.OK},
		{"tenant=a!b", abi.OK},
	} {
		t.Run(tc.config, func(t *testing.T) {
			p, err := load(t, "metaconfig", withConfig(tc.config))
			if err != nil {
				t.Fatal(err)
			}
			m := testMessage()
			if _, err := NewChain(p).MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m); err != nil {
				t.Fatal(err)
			}
			if want := string(rune('0' - tc.status)); m.Meta["rc"] != want {
				t.Errorf("set_meta returned -%s, want %d", m.Meta["rc"], tc.status)
			}
			// Whatever was set must route: the queue name parses back to the recipient's domain.
			name := route.QueueName(m.Meta, "example.com")
			c, err := route.ParseQueueName(name)
			if err != nil || c.Destination() != "example.com" {
				t.Fatalf("queue %q parses to %+v, %v: its messages would not go to example.com", name, c, err)
			}
		})
	}
}
