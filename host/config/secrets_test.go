package config

import (
	"strings"
	"testing"
)

// A secret may list the sites and routing domains it may be sent to; a [[egress.path]] entry
// that names it for another destination is refused at load, naming the key.
func TestSecretAllowedDestinations(t *testing.T) {
	c, err := Parse(`
[secrets]
smarthost = { value = "pa55", allowed_sites = ["mx.smarthost.test"], allowed_routing_domains = ["Smarthost.test"] }
open = "any"
`)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Secrets["smarthost"]
	if s.Value() != "pa55" {
		t.Fatal("value not read")
	}
	if err := s.Allows("smarthost.TEST", "MX.smarthost.test"); err != nil {
		t.Fatalf("allowed destination refused: %v", err)
	}
	if err := s.Allows("smarthost.test", "mx.evil.test"); err == nil || !strings.Contains(err.Error(), `not allowed for site "mx.evil.test"`) {
		t.Fatalf("other site: %v", err)
	}
	if err := s.Allows("evil.test", "mx.smarthost.test"); err == nil || !strings.Contains(err.Error(), "allowed_routing_domains") {
		t.Fatalf("other routing domain: %v", err)
	}
	if err := c.Secrets["open"].Allows("evil.test", "mx.evil.test"); err != nil {
		t.Fatalf("a secret without lists: %v", err)
	}
	for cfg, want := range map[string]string{
		`[secrets]
s = { value = "x", allowed_sites = ["mx.smarthost.test"] }
[[egress.path]]
site = "mx.evil.test"
smtp_auth_plain_username = "u"
smtp_auth_plain_password = "s"`: `egress.path[0].smtp_auth_plain_password: secret "s": not allowed for site "mx.evil.test"`,
		"[secrets]\ns = { value = \"x\", file = \"f\" }":                  "a secret is a string or",
		"[secrets]\ns = { allowed_sites = [\"a\"] }":                      "a secret is a string or",
		"[secrets]\ns = { value = \"x\", sites = [\"a\"] }":               `unknown key "sites"`,
		"[secrets]\ns = { value = \"x\", allowed_sites = [] }":            "allowed_sites must be a non-empty list",
		"[secrets]\ns = { value = \"x\", allowed_routing_domains = [1] }": "allowed_routing_domains must be a non-empty list",
		"[secrets]\ns = { value = \"\" }":                                 "secret is empty",
	} {
		if _, err := Parse(cfg); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s:\n%v, want %q", cfg, err, want)
		}
	}
	// A routing_domain entry for an allowed domain loads (the site is checked per destination).
	if _, err := Parse(`[secrets]
s = { value = "x", allowed_sites = ["mx.smarthost.test"], allowed_routing_domains = ["smarthost.test"] }
[[egress.path]]
routing_domain = "smarthost.test"
smtp_auth_plain_username = "u"
smtp_auth_plain_password = "s"`); err != nil {
		t.Fatal(err)
	}
}
