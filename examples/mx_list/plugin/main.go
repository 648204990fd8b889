// Command plugin overrides MX resolution for one domain with an ordered mx_list through
// get_queue_config: the seed's second recipe, in Go. Other domains keep the defaults.
package main

import (
	wasmta "github.com/wasmta/wasmta/sdk/go"
)

type config struct {
	Domain string           `json:"domain"`
	MxList []wasmta.MXEntry `json:"mx_list"`
}

var cfg config

func init() {
	wasmta.OnInit(func() error { return wasmta.Config(&cfg) })
	wasmta.OnGetQueueConfig(func(q wasmta.Queue) (*wasmta.QueueConfig, error) {
		if q.Domain == cfg.Domain {
			// Relay via internal infrastructure: hosts tried in this order, names resolved for
			// A/AAAA only, {name, addr} connects to addr.
			return &wasmta.QueueConfig{MxList: cfg.MxList}, nil
		}
		return nil, nil // otherwise, the defaults
	})
}

func main() {}
