// Command conformance is the Go SDK's version of the conformance plugin (../SPEC.md).
package main

import (
	"errors"
	"strconv"
	"strings"

	wasmta "github.com/wasmta/wasmta/sdk/go"
)

func status(err error) string {
	var e *wasmta.Error
	if errors.As(err, &e) {
		return strconv.Itoa(int(e.Status))
	}
	if err == nil {
		return "0"
	}
	return "?"
}

func init() {
	wasmta.OnMessageReceived(func(m *wasmta.Message) error {
		rcpt := m.Recipient(0)
		d := rcpt[strings.LastIndexByte(rcpt, '@')+1:]
		switch d {
		case "fail.test":
			_ = m.SetMeta("tenant", "leak")
			return errors.New("conformance failure")
		case "reject.test":
			return m.Reject(550, "5.7.1 rejected by conformance")
		case "reject4.test":
			return m.Reject(451, "4.7.1 try later")
		case "routing.test":
			must(m.SetMeta("routing_domain", "my.smarthost.test"))
		case "queue.test":
			must(m.SetMeta("queue", "my.smarthost.test"))
		case "v4.test":
			must(m.SetMeta("queue", "[127.0.0.5]"))
		case "v6.test":
			must(m.SetMeta("routing_domain", "[IPv6:::1]"))
		case "nc.test":
			must(m.SetMeta("routing_domain", "[::1]"))
		case "badliteral.test":
			must(m.SetMeta("literal_status", status(m.SetMeta("routing_domain", "[10.0.0.1"))))
		}
		if s, ok := m.Header("Subject"); ok {
			must(m.SetMeta("subject", s))
		}
		if v, ok := m.Meta("in"); ok {
			must(m.SetMeta("out", v))
		}
		must(m.SetMeta("sender", m.Sender()))
		n := m.RecipientCount()
		must(m.SetMeta("rcpts", strconv.Itoa(n)))
		must(m.SetMeta("last_rcpt", m.Recipient(n-1)))
		var raw rawJSON
		must(wasmta.Config(&raw))
		must(m.SetMeta("config", string(raw)))
		must(m.PrependHeader("X-Conformance", "1"))
		must(m.AppendHeader("X-Conformance-End", "1"))
		must(m.SetMeta("inject_status", status(m.PrependHeader("X-Bad", "a\r\nInjected: yes"))))
		return nil
	})
	wasmta.OnGetQueueConfig(func(q wasmta.Queue) (*wasmta.QueueConfig, error) {
		switch q.Domain {
		case "mx.test":
			return &wasmta.QueueConfig{RetryInterval: 5e9, MxList: []wasmta.MXEntry{
				{Name: "smart.host.local"}, {Name: "mx.example.com", Addr: "127.0.0.3"},
			}}, nil
		case "badcfg.test":
			if err := wasmta.MakeQueueConfigJSON([]byte(`{"mx_lsit":["x"]}`)); err != nil {
				return nil, errors.New("bad config refused")
			}
		}
		return nil, nil
	})
	wasmta.OnGetEgressPathConfig(func(s wasmta.EgressSite) (*wasmta.EgressPathConfig, error) {
		switch s.RoutingDomain {
		case "smarthost.test":
			no := false
			return &wasmta.EgressPathConfig{ConnectionLimit: 1, MaxMessageRate: "10/s", EnableTLS: "Required",
				SMTPAuthPlainUsername: "relay-user", SMTPAuthPlainPassword: "smarthost", AllowSMTPAuthPlainWithoutTLS: &no,
				SourceAddress: "127.0.0.9", EHLODomain: "out." + s.Site}, nil
		case "typo.test":
			return wasmta.RawEgressPathConfig([]byte(`{"conection_limit":1}`)), nil
		}
		return nil, nil
	})
}

// must turns an unexpected host refusal into a failed hook (visible in the vectors).
func must(err error) {
	if err != nil {
		panic(err)
	}
}

type rawJSON []byte

func (r *rawJSON) UnmarshalJSON(b []byte) error { *r = append((*r)[:0], b...); return nil }

func main() {}
