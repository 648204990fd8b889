// Package dkim signs outgoing mail with the keys of the [[dkim]] config entries (RFC 6376),
// through go-msgauth's signer.
//
// Keys are loaded and checked once (start-up, reload, `wasmta config check`): a missing file, a
// file that is not PEM, an RSA key under 1024 bits (RFC 8301 §3.2) or any other key type stops
// the server with an error naming the entry. Plugins name keys, never see them: dkim_sign stages
// an abi.DKIMSign request, and reception calls Sign once, after the whole plugin chain ran and
// before the message is spooled, so every signature covers the final header and a delivery
// retry never signs again. Entries with sign_sender_domains sign, without any plugin, mail whose
// envelope sender's domain is listed.
package dkim

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/message"
)

// MinRSABits is the smallest RSA key accepted: RFC 8301 §3.2 makes verifiers refuse anything
// shorter than 1024 bits.
const MinRSABits = 1024

// Entry is one [[dkim]] config entry.
type Entry struct {
	Name    string // what plugins call the key
	KeyFile string // PEM: RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8)
	// SignSenderDomains, when set, signs mail whose envelope sender's domain is listed (exact
	// match, case-insensitive) with Domain, Selector and Headers, with no plugin involved.
	SignSenderDomains []string
	Domain, Selector  string
	Headers           []string // nil: abi.DefaultDKIMHeaders
	OverSign          bool     // sign each of Headers once more than the message has it (abi.DKIMSign.OverSign)
}

// Key is a loaded entry.
type Key struct {
	Entry
	signer crypto.Signer
	// Algorithm is "rsa-2048", "ed25519", … (for logs and checks).
	Algorithm string
}

// Keys is a set of loaded entries, by name.
type Keys struct {
	byName  map[string]*Key
	ordered []*Key
}

// Load reads and checks every entry's key. Errors name the entry as the config does:
// `configuration key dkim[0].key_file ([[dkim]] "main"): …`.
func Load(entries []Entry) (*Keys, error) {
	ks := &Keys{byName: map[string]*Key{}}
	for i, e := range entries {
		if _, dup := ks.byName[e.Name]; dup {
			return nil, fmt.Errorf("configuration key dkim[%d].name: %q is used by an earlier [[dkim]] entry", i, e.Name)
		}
		s, algo, err := LoadKeyFile(e.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("configuration key dkim[%d].key_file ([[dkim]] %q): %w", i, e.Name, err)
		}
		k := &Key{Entry: e, signer: s, Algorithm: algo}
		ks.byName[e.Name] = k
		ks.ordered = append(ks.ordered, k)
	}
	return ks, nil
}

// Len is the number of keys.
func (ks *Keys) Len() int { return len(ks.ordered) }

// LoadKeyFile reads a PEM private key: RSA in PKCS#1 ("RSA PRIVATE KEY") or PKCS#8 ("PRIVATE
// KEY"), or Ed25519 in PKCS#8 (RFC 8463). The error says what is wrong without the key's bytes.
func LoadKeyFile(path string) (crypto.Signer, string, error) {
	if path == "" {
		return nil, "", errors.New("no key file given")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, "", fmt.Errorf("%s: not a PEM file", path)
	}
	var key any
	switch blk.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	default:
		return nil, "", fmt.Errorf("%s: PEM block %q is not supported: use an RSA key (PKCS#1 or PKCS#8) or an Ed25519 key (PKCS#8), unencrypted", path, blk.Type)
	}
	if err != nil {
		return nil, "", fmt.Errorf("%s: %s key unreadable: %w", path, blk.Type, err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if n := k.N.BitLen(); n < MinRSABits {
			return nil, "", fmt.Errorf("%s: RSA key of %d bits; at least %d are needed (RFC 8301)", path, n, MinRSABits)
		}
		return k, fmt.Sprintf("rsa-%d", k.N.BitLen()), nil
	case ed25519.PrivateKey:
		return k, "ed25519", nil
	default:
		return nil, "", fmt.Errorf("%s: a %T is not supported: use an RSA or an Ed25519 key", path, key)
	}
}

// Signer signs messages with the current key set, which a reload may replace while messages
// are being signed (each Sign call uses one set throughout).
type Signer struct {
	keys atomic.Pointer[Keys]
	// Now is the clock for x= (expiration); go-msgauth takes t= from the system clock.
	Now func() time.Time
}

// NewSigner returns a signer using ks.
func NewSigner(ks *Keys) *Signer {
	s := &Signer{Now: time.Now}
	s.Set(ks)
	return s
}

// Set replaces the key set (reload).
func (s *Signer) Set(ks *Keys) {
	if ks == nil {
		ks = &Keys{byName: map[string]*Key{}}
	}
	s.keys.Store(ks)
}

// HasKey reports whether a [[dkim]] entry named name exists (dkim_sign checks it at once).
func (s *Signer) HasKey(name string) bool {
	_, ok := s.keys.Load().byName[name]
	return ok
}

// Active reports whether any key is loaded: with none, Sign has nothing to do.
func (s *Signer) Active() bool { return s.keys.Load().Len() > 0 }

// ErrSign is what the client gets when signing fails (a key removed by a reload after a plugin
// asked for it, a signer error): a temporary failure, so the client keeps the message.
var ErrSign = message.Errorf(451, "4.3.0", "temporary failure signing the message, try again later")

// Sign returns data with a DKIM-Signature field prepended for each request of the plugins, in
// request order, then one for each entry whose sign_sender_domains lists the envelope sender's
// domain and that no request already used. Every signature covers data as given (earlier
// signatures are not signed over). Without any signature to make it returns data unchanged.
// Errors are *message.Error (ErrSign) wrapping the cause.
func (s *Signer) Sign(sender string, reqs []abi.DKIMSign, data []byte) ([]byte, error) {
	ks := s.keys.Load()
	if len(reqs) == 0 && ks.Len() == 0 {
		return data, nil
	}
	now := s.Now()
	var opts []*msgdkim.SignOptions
	used := map[string]bool{}
	for _, r := range reqs {
		k, ok := ks.byName[r.Key]
		if !ok {
			return nil, ErrSign.Wrap(fmt.Errorf("dkim: no [[dkim]] entry named %q (removed by a reload?)", r.Key))
		}
		used[r.Key] = true
		o := options(k, r.Domain, r.Selector, r.Headers, r.HeaderCanonicalization, r.BodyCanonicalization)
		if r.OverSign {
			o.HeaderKeys = overSign(o.HeaderKeys, data)
		}
		if r.Expiration != nil {
			o.Expiration = now.Add(time.Duration(*r.Expiration))
		}
		opts = append(opts, o)
	}
	if _, dom, ok := strings.Cut(sender, "@"); ok {
		for _, k := range ks.ordered {
			if used[k.Name] || !containsFold(k.SignSenderDomains, dom) {
				continue
			}
			o := options(k, k.Domain, k.Selector, k.Headers, "", "")
			if k.OverSign {
				o.HeaderKeys = overSign(o.HeaderKeys, data)
			}
			opts = append(opts, o)
		}
	}
	if len(opts) == 0 {
		return data, nil
	}
	signed := data
	if !bytes.Contains(data, []byte("\r\n\r\n")) {
		// A message without a body may lack the empty line that ends the header; go-msgauth
		// needs it to find the header's end. The body is empty either way (RFC 6376 §3.4.3).
		signed = append(bytes.Clone(data), "\r\n"...)
		if !bytes.HasSuffix(data, []byte("\r\n")) {
			signed = append(signed, "\r\n"...)
		}
	}
	var sigs bytes.Buffer
	for _, o := range opts {
		sg, err := msgdkim.NewSigner(o)
		if err != nil {
			return nil, ErrSign.Wrap(fmt.Errorf("dkim: %s: %w", o.Domain, err))
		}
		_, err = sg.Write(signed)
		if cerr := sg.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, ErrSign.Wrap(fmt.Errorf("dkim: d=%s s=%s: %w", o.Domain, o.Selector, err))
		}
		sigs.WriteString(sg.Signature())
	}
	out := make([]byte, 0, sigs.Len()+len(data))
	return append(append(out, sigs.Bytes()...), data...), nil
}

func options(k *Key, domain, selector string, headers []string, hc, bc string) *msgdkim.SignOptions {
	if headers == nil {
		headers = abi.DefaultDKIMHeaders
	}
	if hc == "" {
		hc = abi.CanonRelaxed
	}
	if bc == "" {
		bc = abi.CanonRelaxed
	}
	return &msgdkim.SignOptions{
		Domain:                 domain,
		Selector:               selector,
		Signer:                 k.signer,
		HeaderCanonicalization: msgdkim.Canonicalization(hc),
		BodyCanonicalization:   msgdkim.Canonicalization(bc),
		HeaderKeys:             headers,
	}
}

// overSign returns names with each name repeated once more than data's header has that field
// (names compared without case, as RFC 6376 §3.4 does): go-msgauth signs the fields of a name
// bottom-up and lists a name with no field left as the empty field that RFC 6376 §5.4.2 makes
// verifiers expect, so one added later fails verification. A name listed twice counts once.
func overSign(names []string, data []byte) []string {
	header := data
	if i := bytes.Index(data, []byte("\r\n\r\n")); i >= 0 {
		header = data[:i+2]
	}
	count := map[string]int{}
	for line := range bytes.Lines(header) {
		if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
			continue // a continuation line
		}
		if name, _, ok := bytes.Cut(line, []byte(":")); ok {
			count[strings.ToLower(string(bytes.TrimRight(name, " \t")))]++
		}
	}
	out := make([]string, 0, 2*len(names))
	seen := map[string]bool{}
	for _, n := range names {
		k := strings.ToLower(n)
		if seen[k] {
			continue
		}
		seen[k] = true
		for range count[k] + 1 {
			out = append(out, n)
		}
	}
	return out
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
