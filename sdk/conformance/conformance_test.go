// Package conformance runs the same conformance plugin written in every SDK's language
// (SPEC.md) through the same vectors on the real plugin host, and asserts identical effects:
// meta, headers, queue config, egress path config, reply. A language is a folder holding
// conformance.wasm (Go's is built here with the standard toolchain).
package conformance

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/plugin"
	"github.com/wasmta/wasmta/host/testutil"
)

const config = `{"tag":"conformance"}`

// messageVector is one message hook call and the effects every language must produce.
type messageVector struct {
	name     string
	sender   string
	rcpts    []string
	meta     map[string]string
	data     string
	wantMeta map[string]string // complete meta after the hook
	wantData string            // message after the hook ("" = unchanged)
	reject   *message.Reply
	failure  string // substring of the failure
}

const hi = "Subject: Hi there\r\nFrom: a@sender.test\r\n\r\nbody\r\n"

func common(extra map[string]string) map[string]string {
	m := map[string]string{"config": config, "inject_status": "-2"}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

var messageVectors = []messageVector{
	{name: "routing_domain", sender: "a@sender.test", rcpts: []string{"bob@routing.test"}, meta: map[string]string{"in": "hello"}, data: hi,
		wantMeta: common(map[string]string{"in": "hello", "out": "hello", "routing_domain": "my.smarthost.test", "subject": "Hi there",
			"sender": "a@sender.test", "rcpts": "1", "last_rcpt": "bob@routing.test"}),
		wantData: "X-Conformance: 1\r\nSubject: Hi there\r\nFrom: a@sender.test\r\nX-Conformance-End: 1\r\n\r\nbody\r\n"},
	{name: "queue meta, null sender, two recipients", sender: "", rcpts: []string{"x@queue.test", "y@other.test"}, data: "From: b@x.test\r\n\r\nno subject\r\n",
		wantMeta: common(map[string]string{"queue": "my.smarthost.test", "sender": "", "rcpts": "2", "last_rcpt": "y@other.test"}),
		wantData: "X-Conformance: 1\r\nFrom: b@x.test\r\nX-Conformance-End: 1\r\n\r\nno subject\r\n"},
	{name: "ipv4 literal queue", sender: "a@sender.test", rcpts: []string{"c@v4.test"}, data: hi,
		wantMeta: common(map[string]string{"queue": "[127.0.0.5]", "subject": "Hi there", "sender": "a@sender.test", "rcpts": "1", "last_rcpt": "c@v4.test"})},
	{name: "ipv6 literal routing domain", sender: "a@sender.test", rcpts: []string{"c@v6.test"}, data: hi,
		wantMeta: common(map[string]string{"routing_domain": "[IPv6:::1]", "subject": "Hi there", "sender": "a@sender.test", "rcpts": "1", "last_rcpt": "c@v6.test"})},
	{name: "non-conforming literal", sender: "a@sender.test", rcpts: []string{"c@nc.test"}, data: hi,
		wantMeta: common(map[string]string{"routing_domain": "[::1]", "subject": "Hi there", "sender": "a@sender.test", "rcpts": "1", "last_rcpt": "c@nc.test"})},
	{name: "bad literal refused", sender: "a@sender.test", rcpts: []string{"c@badliteral.test"}, data: hi,
		wantMeta: common(map[string]string{"literal_status": "-2", "subject": "Hi there", "sender": "a@sender.test", "rcpts": "1", "last_rcpt": "c@badliteral.test"})},
	{name: "reject 5xx", sender: "a@sender.test", rcpts: []string{"c@reject.test"}, meta: map[string]string{"in": "x"}, data: hi,
		wantMeta: map[string]string{"in": "x"}, reject: &message.Reply{Code: 550, Enhanced: "5.7.1", Text: "rejected by conformance"}},
	{name: "reject 4xx", sender: "a@sender.test", rcpts: []string{"c@reject4.test"}, data: hi,
		wantMeta: map[string]string{}, reject: &message.Reply{Code: 451, Enhanced: "4.7.1", Text: "try later"}},
	{name: "failing hook applies nothing", sender: "a@sender.test", rcpts: []string{"c@fail.test"}, meta: map[string]string{"tenant": "t1"}, data: hi,
		wantMeta: map[string]string{"tenant": "t1"}, failure: "conformance failure"},
}

type queueVector struct {
	name, domain string
	want         *abi.QueueConfig
	failure      string
}

func dur(d time.Duration) *abi.Duration { v := abi.Duration(d); return &v }

var queueVectors = []queueVector{
	{name: "mx_list", domain: "mx.test", want: &abi.QueueConfig{RetryInterval: dur(5 * time.Second),
		Protocol: &abi.Protocol{SMTP: &abi.SMTPProtocol{MXList: []abi.MXEntry{{Name: "smart.host.local"}, {Name: "mx.example.com", Addr: "127.0.0.3"}}}}}},
	{name: "invalid config refused", domain: "badcfg.test", failure: "bad config refused"},
	{name: "no opinion", domain: "other.test"},
}

type egressVector struct {
	name, routingDomain, site string
	want                      *abi.EgressPathConfig
	failure                   string
}

func ptr[T any](v T) *T { return &v }

var egressVectors = []egressVector{
	{name: "configured routing domain", routingDomain: "smarthost.test", site: "mx.smarthost.test", want: &abi.EgressPathConfig{
		ConnectionLimit: ptr(1), MaxMessageRate: ptr("10/s"), EnableTLS: ptr("Required"),
		SMTPAuthPlainUsername: ptr("relay-user"), SMTPAuthPlainPassword: ptr("smarthost"),
		AllowSMTPAuthPlainWithoutTLS: ptr(false), SourceAddress: ptr("127.0.0.9"), EHLODomain: ptr("out.mx.smarthost.test")}},
	{name: "unknown field refused by the host", routingDomain: "typo.test", site: "mx.typo.test",
		failure: `egress path config: json: unknown field "conection_limit"`},
	{name: "no opinion", routingDomain: "other.test", site: "mx.other.test"},
}

// languages finds every language folder and its conformance.wasm.
func languages(t testing.TB) map[string]string {
	dirs, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		wasm := filepath.Join(d.Name(), "conformance.wasm")
		if d.Name() == "go" {
			tmp := t.TempDir()
			w, err := testutil.BuildGoPlugin(tmp, "./sdk/conformance/go", "conformance")
			if err != nil {
				t.Fatal(err)
			}
			wasm = w
		}
		if _, err := os.Stat(wasm); err != nil {
			t.Errorf("language %s has no conformance.wasm (run make plugins)", d.Name())
			continue
		}
		out[d.Name()] = wasm
	}
	return out
}

type effects struct {
	Meta   map[string]string
	Data   string
	Reject *message.Reply
	Failed bool
}

func TestConformance(t *testing.T) {
	langs := languages(t)
	if len(langs) < 5 {
		t.Fatalf("languages found: %v", langs)
	}
	h, err := plugin.NewHost(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	results := map[string][]effects{} // language -> per vector
	for lang, wasm := range langs {
		t.Run(lang, func(t *testing.T) {
			p, err := h.Load(context.Background(), plugin.Spec{Path: wasm, Config: []byte(config)})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(context.Background())
			c := plugin.NewChain(p)
			for _, v := range messageVectors {
				meta := map[string]string{}
				for k, x := range v.meta {
					meta[k] = x
				}
				m := &plugin.Message{Sender: v.sender, Recipients: v.rcpts, Meta: meta, Data: []byte(v.data)}
				o, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m)
				e := effects{Meta: m.Meta, Data: string(m.Data), Reject: o.Reject, Failed: err != nil}
				results[lang] = append(results[lang], e)
				switch {
				case v.failure != "":
					if err == nil || !strings.Contains(err.Error(), v.failure) {
						t.Errorf("%s: error %v, want a failure with %q", v.name, err, v.failure)
					}
				case err != nil:
					t.Errorf("%s: %v", v.name, err)
					continue
				}
				if !reflect.DeepEqual(m.Meta, v.wantMeta) {
					t.Errorf("%s: meta\n got %v\nwant %v", v.name, m.Meta, v.wantMeta)
				}
				wantData := v.wantData
				if wantData == "" && v.reject == nil && v.failure == "" {
					wantData = "X-Conformance: 1\r\n" + strings.Replace(v.data, "\r\n\r\n", "\r\nX-Conformance-End: 1\r\n\r\n", 1)
				}
				if wantData == "" {
					wantData = v.data
				}
				if string(m.Data) != wantData {
					t.Errorf("%s: data\n got %q\nwant %q", v.name, m.Data, wantData)
				}
				if !reflect.DeepEqual(o.Reject, v.reject) {
					t.Errorf("%s: reject %+v, want %+v", v.name, o.Reject, v.reject)
				}
			}
			for _, v := range queueVectors {
				cfg, _, err := c.QueueConfig(context.Background(), plugin.QueueInput{Name: v.domain, Domain: v.domain})
				switch {
				case v.failure != "":
					if err == nil || !strings.Contains(err.Error(), v.failure) {
						t.Errorf("%s: error %v, want a failure with %q", v.name, err, v.failure)
					}
				case err != nil:
					t.Errorf("%s: %v", v.name, err)
				case !reflect.DeepEqual(cfg, v.want):
					t.Errorf("%s: config\n got %s\nwant %s", v.name, js(cfg), js(v.want))
				}
			}
			for _, v := range egressVectors {
				cfg, _, err := c.EgressPathConfig(context.Background(), plugin.EgressPathInput{RoutingDomain: v.routingDomain, Site: v.site})
				switch {
				case v.failure != "":
					if cfg != nil || err == nil || !strings.Contains(err.Error(), v.failure) {
						t.Errorf("egress %s: %s, error %v, want a failure with %q", v.name, js(cfg), err, v.failure)
					}
				case err != nil:
					t.Errorf("egress %s: %v", v.name, err)
				case !reflect.DeepEqual(cfg, v.want):
					t.Errorf("egress %s: config\n got %s\nwant %s", v.name, js(cfg), js(v.want))
				}
			}
		})
	}
	// Identical effects across languages, vector by vector (the expectations above already
	// imply it; this names the two languages that differ).
	var ref string
	for lang := range results {
		if ref == "" || lang < ref {
			ref = lang
		}
	}
	for lang, r := range results {
		for i := range r {
			if i < len(results[ref]) && !reflect.DeepEqual(r[i], results[ref][i]) {
				t.Errorf("%s and %s differ on %q:\n%+v\n%+v", lang, ref, messageVectors[i].name, r[i], results[ref][i])
			}
		}
	}
}

func js[T any](c *T) string {
	if c == nil {
		return "<nil>"
	}
	b, _ := jsonMarshal(c)
	return string(b)
}
