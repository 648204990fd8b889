// Command plugin routes by recipient domain to domain literals, set as queue or routing_domain
// meta: the seed's note on IPv4 and IPv6 literals, in Go. [10.0.0.1] and [IPv6:::1] are valid
// literals; [::1] is non-conforming but accepted for routing, as KumoMTA does.
package main

import (
	"strings"

	wasmta "github.com/wasmta/wasmta/sdk/go"
)

// route is what one recipient domain gets: a queue or a routing domain.
type route struct {
	Queue         string `json:"queue"`
	RoutingDomain string `json:"routing_domain"`
}

var routes map[string]route

func init() {
	wasmta.OnInit(func() error { return wasmta.Config(&routes) })
	wasmta.OnMessageReceived(func(m *wasmta.Message) error {
		rcpts := m.Recipients()
		if len(rcpts) == 0 {
			return nil
		}
		domain := strings.ToLower(rcpts[0][strings.LastIndexByte(rcpts[0], '@')+1:])
		r, ok := routes[domain]
		switch {
		case !ok:
			return nil
		case r.Queue != "":
			return m.SetMeta("queue", r.Queue)
		default:
			return m.SetMeta("routing_domain", r.RoutingDomain)
		}
	})
}

func main() {}
