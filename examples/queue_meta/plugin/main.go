// Command plugin puts every message in one scheduled queue named by the queue meta: the
// seed's third recipe, in Go. Recipient domain, tenant and campaign are ignored for naming
// and routing; delivery resolves the MX of the queue's name.
package main

import (
	wasmta "github.com/wasmta/wasmta/sdk/go"
)

type config struct {
	Queue string `json:"queue"`
}

var cfg = config{Queue: "my.smarthost.com"}

func init() {
	wasmta.OnInit(func() error { return wasmta.Config(&cfg) })
	wasmta.OnMessageReceived(func(m *wasmta.Message) error {
		return m.SetMeta("queue", cfg.Queue)
	})
}

func main() {}
