package plugin

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/dkim"
)

// loadDKIM loads testdata/dkim.wasm with config as its dkim_sign params, on a host that knows
// the [[dkim]] key "main" (unless noKeys).
func loadDKIM(t *testing.T, config string, noKeys bool) *Plugin {
	t.Helper()
	p, err := load(t, "dkim", func(s *Spec) { s.Config = []byte(config) })
	if err != nil {
		t.Fatal(err)
	}
	if !noKeys {
		ks, err := dkim.Load([]dkim.Entry{{Name: "main", KeyFile: "../dkim/testdata/ed25519.pem"}})
		if err != nil {
			t.Fatal(err)
		}
		p.host.SetDKIMKeys(dkim.NewSigner(ks))
	}
	return p
}

const mainParams = `{"key": "main", "domain": "example.com", "selector": "s2026", "headers": ["From", "Subject"],
	"header_canonicalization": "simple", "body_canonicalization": "relaxed", "expiration": "7d"}`

func TestDKIMSignStagesARequest(t *testing.T) {
	m := testMessage()
	if _, err := NewChain(loadDKIM(t, mainParams, false)).MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m); err != nil {
		t.Fatal(err)
	}
	if len(m.DKIM) != 1 {
		t.Fatalf("%d requests staged, want 1", len(m.DKIM))
	}
	r := m.DKIM[0]
	if r.Key != "main" || r.Domain != "example.com" || r.Selector != "s2026" || strings.Join(r.Headers, ",") != "From,Subject" ||
		r.HeaderCanonicalization != "simple" || r.BodyCanonicalization != "relaxed" || r.Expiration == nil || time.Duration(*r.Expiration) != 7*24*time.Hour {
		t.Fatalf("%+v", r)
	}
	if !strings.HasPrefix(string(m.Data), "Received:") {
		t.Fatalf("dkim_sign changed the message itself: reception signs after the chain\n%s", m.Data)
	}
}

// Every refusal is a status the plugin sees, with last_error saying why (the fixture fails its
// hook with that text, which the Failure carries).
func TestDKIMSignRefusals(t *testing.T) {
	for _, c := range []struct {
		name, params string
		noKeys       bool
		meta         map[string]string
		want         string
	}{
		{"unknown key", `{"key": "nope", "domain": "example.com", "selector": "s"}`, false, nil, `no [[dkim]] key named "nope"`},
		{"no keys configured", mainParams, true, nil, `no [[dkim]] key named "main"`},
		{"unknown field", `{"key": "main", "domain": "example.com", "selectr": "s"}`, false, nil, `unknown field "selectr"`},
		{"missing selector", `{"key": "main", "domain": "example.com"}`, false, nil, "selector is required"},
		{"missing key", `{"domain": "example.com", "selector": "s"}`, false, nil, `"key" is required`},
		{"From not signed", `{"key": "main", "domain": "example.com", "selector": "s", "headers": ["Subject"]}`, false, nil, `"From" must be signed`},
		{"header injection", `{"key": "main", "domain": "example.com; x=1", "selector": "s"}`, false, nil, "only ASCII letters"},
		{"bad canonicalization", `{"key": "main", "domain": "example.com", "selector": "s", "body_canonicalization": "loose"}`, false, nil, `body_canonicalization "loose"`},
		{"bad expiration", `{"key": "main", "domain": "example.com", "selector": "s", "expiration": "soon"}`, false, nil, "invalid duration"},
		{"not JSON", `{"key": "main",`, false, nil, "dkim_sign:"},
		{"too many", mainParams, false, map[string]string{"dkim_times": "9"}, "more than 8 dkim_sign requests"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := testMessage()
			for k, v := range c.meta {
				m.Meta[k] = v
			}
			_, err := NewChain(loadDKIM(t, c.params, c.noKeys)).MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m)
			var f *Failure
			if !errors.As(err, &f) || !strings.Contains(f.Reason, c.want) {
				t.Fatalf("%v, want a failure with %q", err, c.want)
			}
			if len(m.DKIM) != 0 {
				t.Fatalf("a failed hook staged %d requests", len(m.DKIM))
			}
		})
	}
}

// The cap on requests holds for the message, across the plugins of a chain.
func TestDKIMSignLimitAcrossTheChain(t *testing.T) {
	m := testMessage()
	m.Meta["dkim_times"] = "5"
	c := NewChain(loadDKIM(t, mainParams, false), loadDKIM(t, mainParams, false))
	_, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m)
	if err == nil || !strings.Contains(err.Error(), "more than 8 dkim_sign requests for one message") {
		t.Fatalf("%v", err)
	}
	if len(m.DKIM) != 5 {
		t.Fatalf("%d requests kept, want the first plugin's 5", len(m.DKIM))
	}
}

// Staged like every effect: a hook that fails after dkim_sign leaves no request behind.
func TestDKIMSignDiscardedWhenTheHookFails(t *testing.T) {
	m := testMessage()
	m.Meta["dkim_fail"] = "yes"
	_, err := NewChain(loadDKIM(t, mainParams, false)).MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m)
	if err == nil || !strings.Contains(err.Error(), "asked to fail after signing") {
		t.Fatalf("%v", err)
	}
	if len(m.DKIM) != 0 {
		t.Fatalf("%d requests survived a failed hook", len(m.DKIM))
	}
}

func TestDKIMSignOnlyInMessageHooks(t *testing.T) {
	p := mustLoad(t, "dkimqueue")
	ks, err := dkim.Load([]dkim.Entry{{Name: "main", KeyFile: "../dkim/testdata/ed25519.pem"}})
	if err != nil {
		t.Fatal(err)
	}
	p.host.SetDKIMKeys(dkim.NewSigner(ks))
	_, _, err = NewChain(p).QueueConfig(context.Background(), QueueInput{Name: "example.com", Domain: "example.com"})
	if err == nil || !strings.Contains(err.Error(), "dkim_sign is available in message hooks only") {
		t.Fatalf("%v", err)
	}
}
