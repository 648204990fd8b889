// Command plugin smarthosts all mail through one routing domain, keeping tenant and campaign:
// the seed's first recipe, in Go. Mail for example.com is queued as
// "example.com!my.smarthost.com" (or "campaign:tenant@example.com!my.smarthost.com") and is
// delivered to the MX hosts of my.smarthost.com.
package main

import (
	"errors"

	wasmta "github.com/wasmta/wasmta/sdk/go"
)

type config struct {
	Smarthost string `json:"smarthost"`
}

var cfg config

func init() {
	wasmta.OnInit(func() error {
		if err := wasmta.Config(&cfg); err != nil {
			return err
		}
		if cfg.Smarthost == "" {
			return errors.New("config: smarthost is required")
		}
		return nil
	})
	wasmta.OnMessageReceived(func(m *wasmta.Message) error {
		// Tenant and campaign from the message, so each gets its own scheduled queue.
		if t, ok := m.Header("X-Tenant"); ok {
			if err := m.SetMeta("tenant", t); err != nil {
				return err
			}
		}
		if c, ok := m.Header("X-Campaign"); ok {
			if err := m.SetMeta("campaign", c); err != nil {
				return err
			}
		}
		return m.SetMeta("routing_domain", cfg.Smarthost)
	})
}

func main() {}
