package dkim

import (
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strings"
)

// Record is the TXT record to publish at Selector._domainkey.Domain for k's public key
// (RFC 6376 §3.6.1): "v=DKIM1; k=rsa; p=<SubjectPublicKeyInfo>" or, for Ed25519 (RFC 8463 §4),
// "v=DKIM1; k=ed25519; p=<the 32 raw key octets>", both base64.
func (k *Key) Record() string {
	switch pub := k.signer.Public().(type) {
	case *rsa.PublicKey:
		der, _ := x509.MarshalPKIXPublicKey(pub) // cannot fail for an RSA key
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
	}
	return "" // Load accepts no other type
}

// ZoneLine is the record as a zone file line, its text cut into strings of at most 255 octets
// (one TXT string's limit, RFC 1035 §3.3.14; verifiers join them, RFC 6376 §3.6.2.2).
func ZoneLine(name, record string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s. TXT", strings.TrimSuffix(name, "."))
	for len(record) > 0 {
		n := min(len(record), 255)
		fmt.Fprintf(&b, " %q", record[:n])
		record = record[n:]
	}
	return b.String()
}

// Get returns the key named name, or nil.
func (ks *Keys) Get(name string) *Key { return ks.byName[name] }
