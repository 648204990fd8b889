package plugin

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/wasmta/wasmta/abi"
)

func withConfig(js string) func(*Spec) { return func(s *Spec) { s.Config = []byte(js) } }

func mustLoadWith(t *testing.T, name, config string) *Plugin {
	t.Helper()
	p, err := load(t, name, withConfig(config))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var egressIn = EgressPathInput{RoutingDomain: "smarthost.test", Site: "mx.smarthost.test"}

// get_egress_path_config reads the routing domain and the site with get_meta (nothing else is
// there), and the first plugin that makes a config wins; one without an opinion passes.
func TestEgressPathConfigInputsAndChain(t *testing.T) {
	ctx := context.Background()
	c := NewChain(mustLoad(t, "meta"), mustLoadWith(t, "egresspath", `{}`), mustLoad(t, "egressecho"))
	cfg, by, err := c.EgressPathConfig(ctx, egressIn)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(by, "egressecho.wasm@") || cfg == nil || cfg.EHLODomain == nil || *cfg.EHLODomain != "mx.smarthost.test" ||
		cfg.SMTPAuthPlainUsername == nil || *cfg.SMTPAuthPlainUsername != "smarthost.test" {
		t.Fatalf("config %+v by %q", cfg, by)
	}

	c = NewChain(mustLoadWith(t, "egresspath", `{"connection_limit":1,"ehlo_domain":"out.test"}`), mustLoad(t, "egressecho"))
	cfg, by, err = c.EgressPathConfig(ctx, egressIn)
	if err != nil || !strings.HasPrefix(by, "egresspath.wasm@") || *cfg.ConnectionLimit != 1 || *cfg.EHLODomain != "out.test" || cfg.SMTPAuthPlainUsername != nil {
		t.Fatalf("first plugin should win: %+v by %q, %v", cfg, by, err)
	}

	cfg, by, err = NewChain(mustLoad(t, "meta"), mustLoad(t, "queuecfg")).EgressPathConfig(ctx, egressIn)
	if cfg != nil || by != "" || err != nil {
		t.Fatalf("no plugin with the hook: %+v %q %v", cfg, by, err)
	}
}

// A refused config fails the hook (it returns the status) with the host's reason: strict
// decoding names an unknown field, the server's check names a missing secret, and a document
// over the limit is Limit.
func TestEgressPathConfigRefusals(t *testing.T) {
	noSecret := func(c *abi.EgressPathConfig) error {
		if c.SMTPAuthPlainPassword != nil {
			return errors.New(`smtp_auth_plain_password: no secret named "nope" in [secrets]`)
		}
		return nil
	}
	for _, tc := range []struct{ name, config, want string }{
		{"unknown field", `{"conection_limit":1}`, `returned -2 (last host error: egress path config: json: unknown field "conection_limit")`},
		{"bad value", `{"enable_tls":"Maybe"}`, "enable_tls"},
		{"ehlo injection", `{"ehlo_domain":"x.test\r\nRSET"}`, "ehlo_domain"},
		{"missing secret", `{"smtp_auth_plain_username":"u","smtp_auth_plain_password":"nope"}`, `returned -2 (last host error: egress path config: smtp_auth_plain_password: no secret named "nope" in [secrets])`},
		{"too long", `{"pad":"` + strings.Repeat("x", abi.MaxEgressPathConfig) + `"}`, "returned -4 (last host error: egress path config longer than 16384 bytes)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := egressIn
			in.Check = noSecret
			cfg, _, err := NewChain(mustLoadWith(t, "egresspath", tc.config)).EgressPathConfig(context.Background(), in)
			var f *Failure
			if cfg != nil || !errors.As(err, &f) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%+v %v, want a Failure with %q", cfg, err, tc.want)
			}
		})
	}
}

// make_egress_path_config belongs to get_egress_path_config: NotAllowed in a message hook.
func TestMakeEgressPathConfigOnlyInItsHook(t *testing.T) {
	m := testMessage()
	if _, err := NewChain(mustLoad(t, "egressecho")).MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m); err != nil {
		t.Fatal(err)
	}
	if m.Meta["status"] != "-3" {
		t.Fatalf("status %q, want -3 (NotAllowed)", m.Meta["status"])
	}
}
