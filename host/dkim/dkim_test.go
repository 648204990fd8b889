package dkim

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// fixedNow is the clock of every golden signature (x= is computed from it). It lies far ahead
// so that a signature expiring a week later still verifies on the real clock of the verifier.
var fixedNow = time.Date(2099, 3, 1, 12, 0, 0, 0, time.UTC)

const msg = "Received: from client.test ([127.0.0.1])\r\n\tby mta.test (wasmta) with ESMTP id abc;\r\n\tSun, 1 Mar 2026 12:00:00 +0000\r\n" +
	"From: Alice <alice@example.com>\r\n" +
	"To: bob@example.net\r\n" +
	"Subject: quarterly   report\r\n" +
	"  folded\r\n" +
	"Date: Sun, 1 Mar 2026 12:00:00 +0000\r\n" +
	"Message-ID: <1@example.com>\r\n" +
	"\r\n" +
	"Hello Bob,  \r\n" +
	"\r\n" +
	"the numbers.\r\n" +
	"\r\n" +
	"\r\n"

func testKeys(t testing.TB) *Keys {
	t.Helper()
	ks, err := Load([]Entry{
		{Name: "rsa", KeyFile: "testdata/rsa2048.pem"},
		{Name: "rsa1", KeyFile: "testdata/rsa2048-pkcs1.pem"},
		{Name: "ed", KeyFile: "testdata/ed25519.pem"},
		{Name: "cfg", KeyFile: "testdata/ed25519.pem", SignSenderDomains: []string{"Example.COM"}, Domain: "example.com", Selector: "cfg"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// zone publishes every test key under <selector>._domainkey.example.com.
func zone(ks *Keys, selectors map[string]string) string {
	var b strings.Builder
	for name, sel := range selectors {
		b.WriteString(ZoneLine(sel+"._domainkey.example.com", ks.Get(name).Record()) + "\n")
	}
	return b.String()
}

// lookupTXT asks one DNS server (the loopback test server), never the system resolver. Each
// record's strings are joined (RFC 6376 §3.6.2.2).
func lookupTXT(server string) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
		c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
		r, _, err := c.Exchange(m, server)
		if err != nil {
			return nil, err
		}
		if r.Rcode != dns.RcodeSuccess {
			return nil, errors.New(dns.RcodeToString[r.Rcode])
		}
		var out []string
		for _, rr := range r.Answer {
			if txt, ok := rr.(*dns.TXT); ok {
				out = append(out, strings.Join(txt.Txt, ""))
			}
		}
		return out, nil
	}
}

func verify(t *testing.T, server string, signed []byte) []*msgdkim.Verification {
	t.Helper()
	vs, err := msgdkim.VerifyWithOptions(bytes.NewReader(signed), &msgdkim.VerifyOptions{LookupTXT: lookupTXT(server)})
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// mask replaces the parts of a signature that go-msgauth derives from the system clock (t=) and
// therefore the signature itself (b=) by same-length placeholders: the rest of the field, its
// folding included, is what the golden file pins down; verify checks b=.
var (
	maskT = regexp.MustCompile(`t=[0-9]+`)
	maskB = regexp.MustCompile(`\bb=[A-Za-z0-9+/=]*(\r\n [A-Za-z0-9+/=]+)*`)
	b64   = regexp.MustCompile(`[A-Za-z0-9+/=]`)
)

func mask(b []byte) []byte {
	b = maskT.ReplaceAllFunc(b, func(m []byte) []byte { return []byte("t=" + strings.Repeat("T", len(m)-2)) })
	return maskB.ReplaceAllFunc(b, func(m []byte) []byte {
		return append([]byte("b="), b64.ReplaceAll(m[2:], []byte("B"))...)
	})
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".eml")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("signed message differs from %s (go test -update rewrites it):\n%s\nwant:\n%s", path, got, want)
	}
}

func dur(d time.Duration) *abi.Duration { v := abi.Duration(d); return &v }

func TestSignGolden(t *testing.T) {
	ks := testKeys(t)
	dnsSrv := testutil.StartDNS(t, zone(ks, map[string]string{"rsa": "rsa", "rsa1": "rsa1", "ed": "ed", "cfg": "cfg"}))
	s := NewSigner(ks)
	s.Now = func() time.Time { return fixedNow }
	cases := []struct {
		name   string
		sender string
		reqs   []abi.DKIMSign
		data   string
	}{
		{"rsa-relaxed-default-headers", "other@example.org", []abi.DKIMSign{{Key: "rsa", Domain: "example.com", Selector: "rsa"}}, msg},
		{"rsa-pkcs1-simple", "other@example.org", []abi.DKIMSign{{Key: "rsa1", Domain: "example.com", Selector: "rsa1",
			HeaderCanonicalization: "simple", BodyCanonicalization: "simple", Headers: []string{"From", "Subject"}}}, msg},
		{"ed25519-expiring", "other@example.org", []abi.DKIMSign{{Key: "ed", Domain: "example.com", Selector: "ed",
			Expiration: dur(7 * 24 * time.Hour), Headers: []string{"From", "To", "Subject", "Date", "Message-ID"}}}, msg},
		{"rsa-and-ed25519", "other@example.org", []abi.DKIMSign{{Key: "rsa", Domain: "example.com", Selector: "rsa"}, {Key: "ed", Domain: "example.com", Selector: "ed"}}, msg},
		{"config-only-sender-domain", "alice@EXAMPLE.com", nil, msg},
		{"no-body", "alice@example.com", nil, "From: alice@example.com\r\nSubject: empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			signed, err := s.Sign(c.sender, c.reqs, []byte(c.data))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasSuffix(signed, []byte(c.data)) {
				t.Fatalf("the message itself changed:\n%s", signed)
			}
			golden(t, c.name, mask(signed))
			toVerify := signed
			if !strings.Contains(c.data, "\r\n\r\n") {
				toVerify = append(signed, "\r\n\r\n"...) // go-msgauth's verifier needs the header's end too
			}
			vs := verify(t, dnsSrv.Addr, toVerify)
			want := len(c.reqs)
			if want == 0 {
				want = 1
			}
			if len(vs) != want {
				t.Fatalf("%d signatures, want %d", len(vs), want)
			}
			for _, v := range vs {
				if v.Err != nil {
					t.Errorf("d=%s: %v", v.Domain, v.Err)
				}
			}
		})
	}
}

// A header edited after signing breaks the signature: the verifier really checks what it signs.
func TestVerifyFailsAfterAnEdit(t *testing.T) {
	ks := testKeys(t)
	dnsSrv := testutil.StartDNS(t, zone(ks, map[string]string{"ed": "ed"}))
	signed, err := NewSigner(ks).Sign("x@example.org", []abi.DKIMSign{{Key: "ed", Domain: "example.com", Selector: "ed"}}, []byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(signed, []byte("quarterly"), []byte("annual"), 1)
	vs := verify(t, dnsSrv.Addr, edited)
	if len(vs) != 1 || vs[0].Err == nil {
		t.Fatalf("edited message verified: %+v", vs)
	}
}

func TestSignSenderDomains(t *testing.T) {
	s := NewSigner(testKeys(t))
	count := func(sender string, reqs []abi.DKIMSign) int {
		out, err := s.Sign(sender, reqs, []byte(msg))
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Count(out, []byte("DKIM-Signature:"))
	}
	for _, c := range []struct {
		sender string
		reqs   []abi.DKIMSign
		want   int
	}{
		{"alice@example.com", nil, 1},
		{"alice@Example.Com", nil, 1},
		{"alice@sub.example.com", nil, 0}, // exact domains only
		{"alice@example.org", nil, 0},
		{"", nil, 0}, // the null sender of a bounce
		// a plugin that names the key itself replaces the config-only signature
		{"alice@example.com", []abi.DKIMSign{{Key: "cfg", Domain: "example.com", Selector: "cfg"}}, 1},
		{"alice@example.com", []abi.DKIMSign{{Key: "rsa", Domain: "example.com", Selector: "rsa"}}, 2},
	} {
		if got := count(c.sender, c.reqs); got != c.want {
			t.Errorf("sender %q, %d requests: %d signatures, want %d", c.sender, len(c.reqs), got, c.want)
		}
	}
}

// A request naming a key a reload removed fails temporarily: the client keeps the message.
func TestSignUnknownKeyIsTemporary(t *testing.T) {
	s := NewSigner(testKeys(t))
	_, err := s.Sign("a@example.org", []abi.DKIMSign{{Key: "gone", Domain: "example.com", Selector: "x"}}, []byte(msg))
	var me *message.Error
	if !errors.As(err, &me) || me.Code != 451 || !strings.Contains(err.Error(), `"gone"`) {
		t.Fatalf("%v", err)
	}
}

func TestLoadRefusesBadKeys(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "key.txt")
	os.WriteFile(notPEM, []byte("not a key\n"), 0o600)
	for _, c := range []struct{ file, want string }{
		{filepath.Join(dir, "missing.pem"), "no such file"},
		{notPEM, "not a PEM file"},
		{"testdata/rsa512.pem", "RSA key of 512 bits; at least 1024 are needed"},
		{"testdata/ec256.pem", "is not supported: use an RSA or an Ed25519 key"},
		{"", "no key file given"},
	} {
		_, err := Load([]Entry{{Name: "ok", KeyFile: "testdata/ed25519.pem"}, {Name: "bad", KeyFile: c.file}})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `dkim[1].key_file ([[dkim]] "bad")`) {
			t.Errorf("%s: %v, want %q naming the entry", c.file, err, c.want)
		}
	}
	for file, algo := range map[string]string{"testdata/rsa2048.pem": "rsa-2048", "testdata/rsa2048-pkcs1.pem": "rsa-2048", "testdata/ed25519.pem": "ed25519"} {
		if _, got, err := LoadKeyFile(file); err != nil || got != algo {
			t.Errorf("%s: %q %v, want %s", file, got, err, algo)
		}
	}
}

func TestZoneLineSplitsLongRecords(t *testing.T) {
	ks := testKeys(t)
	line := ZoneLine("rsa._domainkey.example.com", ks.Get("rsa").Record())
	if !strings.HasPrefix(line, `rsa._domainkey.example.com. TXT "v=DKIM1; k=rsa; p=`) || strings.Count(line, `"`) != 4 {
		t.Fatalf("%s", line)
	}
}

// BenchmarkSign measures what DKIM adds to one 4 KB message: go-msgauth's signer (header and
// body canonicalization, SHA-256, the key operation) and the copy with the field prepended.
func BenchmarkSign(b *testing.B) {
	ks := testKeys(b)
	body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n", 4096/74)
	data := []byte(msg[:strings.Index(msg, "\r\n\r\n")+4] + body)
	for _, k := range []struct{ name, key string }{{"rsa-2048", "rsa"}, {"ed25519", "ed"}} {
		b.Run(k.name, func(b *testing.B) {
			s := NewSigner(ks)
			reqs := []abi.DKIMSign{{Key: k.key, Domain: "example.com", Selector: "s"}}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Sign("x@example.org", reqs, data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// With over_sign, a From: field added above the signed one after signing fails verification;
// without it the verifier, which takes fields bottom-up, still finds the signed From and passes,
// so the added one rides on the signature (RFC 6376 §8.15). The DKIM-Signature lists From once
// more than the message has it.
func TestOverSignCatchesAnAddedField(t *testing.T) {
	ks := testKeys(t)
	dnsSrv := testutil.StartDNS(t, zone(ks, map[string]string{"ed": "ed"}))
	for _, over := range []bool{false, true} {
		req := abi.DKIMSign{Key: "ed", Domain: "example.com", Selector: "ed", Headers: []string{"From", "Subject", "Received"}, OverSign: over}
		signed, err := NewSigner(ks).Sign("x@example.org", []abi.DKIMSign{req}, []byte("Received: a\r\nReceived: b\r\n"+msg))
		if err != nil {
			t.Fatal(err)
		}
		h := regexp.MustCompile(`[; ]h=([^;]*);`).FindSubmatch(bytes.ReplaceAll(signed, []byte("\r\n "), nil))
		if h == nil {
			t.Fatalf("no h= in %q", signed)
		}
		wantH := "From:Subject:Received"
		if over { // one From and one Subject; three Received (msg has one)
			wantH = "From:From:Subject:Subject:Received:Received:Received:Received"
		}
		if got := strings.ReplaceAll(string(h[1]), " ", ""); !strings.EqualFold(got, wantH) {
			t.Errorf("over_sign %v: h=%s, want %s", over, got, wantH)
		}
		if vs := verify(t, dnsSrv.Addr, signed); len(vs) != 1 || vs[0].Err != nil {
			t.Fatalf("over_sign %v: the signed message does not verify: %+v", over, vs)
		}
		i := bytes.Index(signed, []byte("\r\nFrom:")) + 2
		forged := append(append(bytes.Clone(signed[:i]), "From: <ceo@example.com>\r\n"...), signed[i:]...)
		vs := verify(t, dnsSrv.Addr, forged)
		if failed := len(vs) == 1 && vs[0].Err != nil; failed != over {
			t.Errorf("over_sign %v: a second From: added after signing fails verification: %v, want %v", over, failed, over)
		}
	}
}

// [[dkim]] over_sign does the same for signing by sender domain.
func TestOverSignBySenderDomain(t *testing.T) {
	ks, err := Load([]Entry{{Name: "cfg", KeyFile: "testdata/ed25519.pem", SignSenderDomains: []string{"example.com"},
		Domain: "example.com", Selector: "cfg", Headers: []string{"From", "To"}, OverSign: true}})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := NewSigner(ks).Sign("alice@example.com", nil, []byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	if h := regexp.MustCompile(`[; ]h=([^;]*);`).FindSubmatch(bytes.ReplaceAll(signed, []byte("\r\n "), nil)); h == nil ||
		!strings.EqualFold(strings.ReplaceAll(string(h[1]), " ", ""), "From:From:To:To") {
		t.Fatalf("h= of %q, want From:From:To:To", signed)
	}
}
