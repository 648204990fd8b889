package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"

	"github.com/wasmta/wasmta/host/dkim"
	"github.com/wasmta/wasmta/host/testutil"
)

// End-to-end DKIM: keys made here and written to PEM files, the real binary signing, and
// go-msgauth's verifier finding the public keys in TXT records of the loopback DNS server.

// dkimKeys writes an RSA-2048 (PKCS#1) and an Ed25519 (PKCS#8) key into dir and returns their
// [[dkim]] config (names "rsa" and "ed", plus extra(name) keys in each entry) and the zone lines
// publishing them as rsa._domainkey.example.com and ed._domainkey.example.com.
func dkimKeys(t testing.TB, dir string, extra func(name string) string) (config, zoneLines string) {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, ek, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ed8, err := x509.MarshalPKCS8PrivateKey(ek)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*pem.Block{
		"rsa": {Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)},
		"ed":  {Type: "PRIVATE KEY", Bytes: ed8},
	}
	var entries []dkim.Entry
	for _, name := range []string{"rsa", "ed"} {
		path := filepath.Join(dir, name+".pem")
		if err := os.WriteFile(path, pem.EncodeToMemory(files[name]), 0o600); err != nil {
			t.Fatal(err)
		}
		config += fmt.Sprintf("[[dkim]]\nname = %q\nkey_file = %q\n", name, path)
		if extra != nil {
			config += extra(name)
		}
		entries = append(entries, dkim.Entry{Name: name, KeyFile: path})
	}
	ks, err := dkim.Load(entries)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"rsa", "ed"} {
		zoneLines += dkim.ZoneLine(name+"._domainkey.example.com", ks.Get(name).Record()) + "\n"
	}
	return config, zoneLines
}

// verifyDKIM verifies every signature of data, looking keys up on the loopback DNS server only
// (over TCP: an RSA-2048 record is close to UDP's 512 octets), and returns them by selector.
func verifyDKIM(t *testing.T, dnsAddr string, data []byte) map[string]*msgdkim.Verification {
	t.Helper()
	lookup := func(name string) ([]string, error) {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
		r, _, err := (&dns.Client{Net: "tcp", Timeout: 5 * time.Second}).Exchange(m, dnsAddr)
		if err != nil {
			return nil, err
		}
		if r.Rcode != dns.RcodeSuccess {
			return nil, errors.New(dns.RcodeToString[r.Rcode])
		}
		var out []string
		for _, rr := range r.Answer {
			if txt, ok := rr.(*dns.TXT); ok {
				out = append(out, strings.Join(txt.Txt, "")) // RFC 6376 §3.6.2.2
			}
		}
		return out, nil
	}
	vs, err := msgdkim.VerifyWithOptions(bytes.NewReader(data), &msgdkim.VerifyOptions{LookupTXT: lookup})
	if err != nil {
		t.Fatalf("verify: %v\n%s", err, data)
	}
	out := map[string]*msgdkim.Verification{}
	for _, v := range vs {
		if v.Err != nil {
			t.Errorf("signature d=%s fails: %v\n%s", v.Domain, v.Err, data)
		}
		// go-msgauth's Verification has no selector: the tests tell the keys apart by a header
		// only the Ed25519 key's requests sign.
		name := "rsa"
		if strings.Contains(strings.Join(v.HeaderKeys, ":"), "X-Ed") {
			name = "ed"
		}
		out[name] = v
	}
	return out
}

// Two plugins ask for signatures (RSA-2048 and Ed25519) and a third, after them, edits the
// header (prepends X-Policy, appends X-Trailer, routes to my.smarthost.test): both signatures,
// which list those fields in h=, verify at the destination, so they were made over the final
// header. The first delivery attempt fails; the retry delivers the same two signatures, not new
// ones.
func TestDKIMPluginSignaturesVerifyAfterHeaderEdits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keys, txt := dkimKeys(t, dir, nil)
	sign := func(key, extraHeader string) string {
		return pluginConfig(fixture(t, "dkim")) + fmt.Sprintf("[plugins.config]\nkey = %q\ndomain = \"example.com\"\nselector = %q\n"+
			"headers = [\"From\", \"Subject\", \"X-Policy\", \"X-Trailer\", %q]\nexpiration = \"7d\"\n", key, key, extraHeader)
	}
	cfg := "[queue]\nretry_interval = \"1s\"\n" + keys + sign("rsa", "X-Rsa") + sign("ed", "X-Ed") + pluginConfig(fixture(t, "meta"))
	e := newEnv(t, zone+"my.smarthost.test. A 127.0.0.5\n"+txt, []string{"127.0.0.5"}, cfg)
	e.sinks["127.0.0.5"].SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "DATA", Times: 1})
	e.send("alice@example.com", "bob@implicit.test", "signed twice")
	got := e.sinks["127.0.0.5"].WaitCount(t, 1, 20*time.Second)
	data := got[0].Data
	if n := bytes.Count(data, []byte("DKIM-Signature:")); n != 2 {
		t.Fatalf("%d signatures after a retry, want the 2 made at reception:\n%s", n, data)
	}
	if !bytes.Contains(data, []byte("X-Policy: seen\r\n")) || !bytes.Contains(data, []byte("X-Trailer: seen\r\n")) {
		t.Fatalf("the header-editing plugin did not run:\n%s", data)
	}
	vs := verifyDKIM(t, e.dns.Addr, data)
	if len(vs) != 2 || vs["rsa"] == nil || vs["ed"] == nil {
		t.Fatalf("verifications %v, want one per key", vs)
	}
	for name, v := range vs {
		if v.Domain != "example.com" || v.Expiration.IsZero() || !strings.Contains(strings.Join(v.HeaderKeys, ":"), "X-Policy:X-Trailer") {
			t.Errorf("%s: %+v", name, v)
		}
	}
	// The copy above is the second attempt's: the first was refused at DATA.
	e.relay.WaitLog(recipientIs("TransientFailure", "bob@implicit.test"), 10*time.Second)
	e.relay.WaitLog(recipientIs("Delivery", "bob@implicit.test"), 10*time.Second)
}

// Without any plugin, [[dkim]] sign_sender_domains signs mail whose envelope sender's domain is
// listed, over SMTP and over the HTTP API; other senders' mail goes out unsigned.
func TestDKIMConfigOnlySigning(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keys, txt := dkimKeys(t, dir, func(name string) string {
		s := fmt.Sprintf("sign_sender_domains = [\"example.com\"]\ndomain = \"example.com\"\nselector = %q\n", name)
		if name == "ed" {
			s += "headers = [\"From\", \"Subject\", \"X-Ed\"]\n"
		}
		return s
	})
	e := newHTTPEnv(t, []string{"127.0.0.4"}, "", keys)
	if err := e.dns.SetZone(httpZone + txt); err != nil {
		t.Fatal(err)
	}
	sink := e.sinks["127.0.0.4"]

	e.send("alice@example.com", "smtp@implicit.test", "config only")
	e.inject(map[string]any{"envelope_sender": "alice@example.com", "recipients": []map[string]string{{"email": "http@implicit.test"}},
		"content": "From: alice@example.com\r\nSubject: over http\r\n\r\nhello\r\n"})
	e.send("a@sender.test", "plain@implicit.test", "not ours")
	got := sink.WaitCount(t, 3, 20*time.Second)
	for _, m := range got {
		n := bytes.Count(m.Data, []byte("DKIM-Signature:"))
		switch m.To[0] {
		case "plain@implicit.test":
			if n != 0 {
				t.Errorf("mail from sender.test was signed:\n%s", m.Data)
			}
		default:
			if n != 2 {
				t.Errorf("%s: %d signatures, want 2 (rsa and ed):\n%s", m.To[0], n, m.Data)
				continue
			}
			if vs := verifyDKIM(t, e.dns.Addr, m.Data); len(vs) != 2 {
				t.Errorf("%s: verifications %v", m.To[0], vs)
			}
		}
	}
}

// A bad key stops `wasmta serve` and fails `wasmta config check`, with the same message naming
// the [[dkim]] entry.
func TestDKIMBadKeyStopsServeAndConfigCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ec8, err := x509.MarshalPKCS8PrivateKey(ek)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	small, err := filepath.Abs("../../host/dkim/testdata/rsa512.pem") // Go refuses to make one
	if err != nil {
		t.Fatal(err)
	}
	base := "[spool]\npath = \"spool\"\n[logs]\ndir = \"logs\"\n[smtp]\nlisten = [\"127.0.0.1:0\"]\n[http]\nlisten = \"\"\n[dns]\nresolvers = [\"127.0.0.1:1\"]\n"
	for _, c := range []struct{ name, file, want string }{
		{"missing file", filepath.Join(dir, "nope.pem"), "no such file"},
		{"not PEM", write("junk.pem", []byte("hello\n")), "not a PEM file"},
		{"RSA 512", small, "RSA key of 512 bits; at least 1024 are needed"},
		{"ECDSA", write("ec.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ec8})), "use an RSA or an Ed25519 key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".toml")
			text := base + fmt.Sprintf("[[dkim]]\nname = \"main\"\nkey_file = %q\n", c.file)
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			entry := `configuration key dkim[0].key_file ([[dkim]] "main")`
			checkOut, err := runBin(dir, "config", "check", path)
			if err == nil || !strings.Contains(checkOut, c.want) || !strings.Contains(checkOut, entry) {
				t.Fatalf("config check: err=%v output %q, want a failure naming %s and %q", err, checkOut, entry, c.want)
			}
			serveOut, err := runBin(dir, "serve", "--config", path)
			if err == nil || errLine(checkOut) != errLine(serveOut) {
				t.Fatalf("serve: err=%v\ncheck: %s\nserve: %s", err, errLine(checkOut), errLine(serveOut))
			}
		})
	}
}
