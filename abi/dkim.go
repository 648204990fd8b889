package abi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// DKIM canonicalization algorithms (RFC 6376 §3.4).
const (
	CanonSimple  = "simple"
	CanonRelaxed = "relaxed"
)

// DefaultDKIMHeaders are the header fields signed when a request names none: RFC 6376 §5.4.1's
// recommendation, less the Resent-* and List-* fields a relay rarely sees. A name missing from
// the message is still listed in h=, so the field cannot be added later without breaking the
// signature (§5.4.2).
var DefaultDKIMHeaders = []string{"From", "Reply-To", "Subject", "Date", "To", "Cc", "Message-ID",
	"In-Reply-To", "References", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"}

// DKIMSign is the JSON document a plugin hands to dkim_sign in a message hook (ABI 1.1). Decoding
// is strict (an unknown field is an error naming it). Key, Domain and Selector are required; the
// rest default to DefaultDKIMHeaders, relaxed/relaxed and no expiration.
type DKIMSign struct {
	// Key is the name of a [[dkim]] entry of the server config; the plugin never sees the key.
	Key string `json:"key"`
	// Domain is the signing domain (d=), Selector the key's selector (s=): the verifier finds
	// the public key in the TXT record Selector._domainkey.Domain.
	Domain   string `json:"domain"`
	Selector string `json:"selector"`
	// Headers are the header field names to sign (h=); "From" must be one of them.
	Headers                []string  `json:"headers,omitempty"`
	HeaderCanonicalization string    `json:"header_canonicalization,omitempty"`
	BodyCanonicalization   string    `json:"body_canonicalization,omitempty"`
	Expiration             *Duration `json:"expiration,omitempty"` // x= is the signing time plus this
	// OverSign lists each header name in h= once more than the message has that field (RFC 6376
	// §5.4.2, §8.15), so a field of that name added after signing (a second From, a Subject
	// prepended by a list) breaks the signature. KumoMTA's over_sign, off by default as there.
	OverSign bool `json:"over_sign,omitempty"`
}

// ParseDKIMSign decodes and checks a dkim_sign document; the key name is checked by the host.
func ParseDKIMSign(b []byte) (*DKIMSign, error) {
	if len(b) > MaxDKIMParams {
		return nil, fmt.Errorf("dkim_sign params are %d bytes, more than the %d allowed", len(b), MaxDKIMParams)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var p DKIMSign
	if err := d.Decode(&p); err != nil {
		return nil, fmt.Errorf("dkim_sign: %w", err)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("dkim_sign: trailing data after the JSON object")
	}
	if p.Key == "" {
		return nil, errors.New(`dkim_sign: "key" is required (the name of a [[dkim]] entry)`)
	}
	if err := p.Check(); err != nil {
		return nil, fmt.Errorf("dkim_sign: %w", err)
	}
	return &p, nil
}

// Check validates everything but the key name: the domain and selector are DNS names, the header
// names are field names and include From, the canonicalizations are known, the expiration is
// positive. These values end up in the DKIM-Signature field, so nothing that could break it
// (';', whitespace, CR, LF) gets through.
func (p *DKIMSign) Check() error {
	if err := CheckDKIMName("domain", p.Domain); err != nil {
		return err
	}
	if err := CheckDKIMName("selector", p.Selector); err != nil {
		return err
	}
	if err := CheckDKIMHeaders(p.Headers); err != nil {
		return err
	}
	for _, c := range []struct{ key, v string }{{"header_canonicalization", p.HeaderCanonicalization}, {"body_canonicalization", p.BodyCanonicalization}} {
		if c.v != "" && c.v != CanonSimple && c.v != CanonRelaxed {
			return fmt.Errorf("%s %q: use %q or %q", c.key, c.v, CanonSimple, CanonRelaxed)
		}
	}
	if p.Expiration != nil && *p.Expiration <= 0 {
		return errors.New("expiration must be greater than zero")
	}
	return nil
}

// CheckDKIMName checks a d= or s= value: dot-separated labels of ASCII letters, digits, '-' and
// '_' (RFC 6376 §3.5 takes sub-domains; '_' is common in selectors), each 1-63 octets, 253 in all.
func CheckDKIMName(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is required", what)
	}
	if len(s) > 253 {
		return fmt.Errorf("%s is longer than 253 characters", what)
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("%s %q: every dot-separated label needs 1-63 characters", what, s)
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%s %q: only ASCII letters, digits, '-', '_' and dots (an internationalized domain in its xn-- form)", what, s)
			}
		}
	}
	return nil
}

// CheckDKIMHeaders checks a list of header field names to sign (nil is the default list).
func CheckDKIMHeaders(h []string) error {
	if h == nil {
		return nil
	}
	if len(h) > MaxDKIMHeaders {
		return fmt.Errorf("headers: more than %d names", MaxDKIMHeaders)
	}
	from := false
	for _, n := range h {
		if n == "" || len(n) > MaxHeaderName {
			return fmt.Errorf("headers: a name needs 1-%d characters", MaxHeaderName)
		}
		for i := 0; i < len(n); i++ { // RFC 5322 §3.6.8 ftext
			if c := n[i]; c < 33 || c > 126 || c == ':' || c == ';' {
				return fmt.Errorf("headers: %q is not a header field name", n)
			}
		}
		from = from || strings.EqualFold(n, "From")
	}
	if !from {
		return errors.New(`headers: "From" must be signed (RFC 6376 §5.4)`)
	}
	return nil
}
