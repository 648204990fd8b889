package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// Users of the auth tests. The hashes come from the reference tools (htpasswd -nbB, the argon2
// CLI), not from the code under test.
const (
	aliceUser = "alice:$2y$05$EhE0EUIhfL0vb7XQNzZg7e2vfkfz6TsR5F6O892yKKMEcCnwK2M8e"                               // alice-pw
	carolUser = "carol:$argon2id$v=19$m=1024,t=2,p=1$c2FsdHNhbHRzYWx0$ydTGOV0ICALurlfhJyQhLudVf+aQuB5avPu5fctDXng" // carol-pw
)

// authEnv is a relay that lets only 127.0.0.1 relay without AUTH, with a users file, a
// listen_tls listener, the authn.wasm plugin (prepends X-Authn-Id from meta authn_id) and one
// sink (implicit.test → 127.0.0.4). smtpExtra goes into its [smtp] table.
type authEnv struct {
	*env
	tlsAddr string
	users   string
}

func newAuthEnv(t *testing.T, smtpExtra string) *authEnv {
	t.Helper()
	e := &env{t: t, sinks: map[string]*testutil.Sink{}}
	port, sinks := testutil.StartSinks(t, "127.0.0.4")
	e.port, e.sinks["127.0.0.4"] = port, sinks[0]
	e.dns = testutil.StartDNS(t, zone)
	dir := t.TempDir()
	users := filepath.Join(dir, "users.htpasswd")
	if err := os.WriteFile(users, []byte("# relay users\n"+aliceUser+"\n"+carolUser+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	plugin, err := filepath.Abs(filepath.Join("..", "..", "host", "smtpserver", "testdata", "authn.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	tlsAddr := fmt.Sprintf("127.0.0.1:%d", testutil.MustListenPort(t, "127.0.0.1"))
	cfg, addr := testutil.RelayConfig(t, dir, "watch = false\n"+testutil.DeliveryConfig(e.dns.Addr, e.port)+pluginConfig(plugin))
	cfg = strings.Replace(cfg, "[smtp]\n", fmt.Sprintf("[smtp]\nrelay_hosts = [\"127.0.0.1/32\"]\nauth_users_file = %q\nlisten_tls = [%q]\n%s", users, tlsAddr, smtpExtra), 1)
	e.relay = testutil.StartRelay(t, relayBin, dir, cfg, addr)
	return &authEnv{env: e, tlsAddr: tlsAddr, users: users}
}

// authClient is a line-level SMTP client that can switch to TLS (STARTTLS or from the start).
type authClient struct {
	t    *testing.T
	conn net.Conn
	tp   *textproto.Conn
}

func dialAuth(t *testing.T, src, addr string, implicit *tls.Config) (*authClient, string) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	if implicit != nil {
		tc := tls.Client(c, implicit)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			t.Fatalf("implicit TLS handshake: %v", err)
		}
		c = tc
	}
	a := &authClient{t: t, conn: c, tp: textproto.NewConn(c)}
	code, banner := a.read()
	if code != 220 {
		t.Fatalf("banner %d %s", code, banner)
	}
	return a, banner
}

func (a *authClient) read() (int, string) {
	a.t.Helper()
	a.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	code, msg, err := a.tp.ReadResponse(0)
	if err != nil {
		a.t.Fatalf("read reply: %v", err)
	}
	return code, msg
}

func (a *authClient) cmd(format string, args ...any) (int, string) {
	a.t.Helper()
	if err := a.tp.PrintfLine(format, args...); err != nil {
		a.t.Fatalf("write: %v", err)
	}
	return a.read()
}

func (a *authClient) expect(code int, format string, args ...any) string {
	a.t.Helper()
	got, msg := a.cmd(format, args...)
	if got != code {
		a.t.Fatalf("%s: got %d %s, want %d", fmt.Sprintf(format, args...), got, msg, code)
	}
	return msg
}

// startTLS runs STARTTLS and the handshake; it returns the server's certificate.
func (a *authClient) startTLS(cfg *tls.Config) *x509.Certificate {
	a.t.Helper()
	a.expect(220, "STARTTLS")
	tc := tls.Client(a.conn, cfg)
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		a.t.Fatalf("STARTTLS handshake: %v", err)
	}
	a.conn, a.tp = tc, textproto.NewConn(tc)
	return tc.ConnectionState().PeerCertificates[0]
}

func (a *authClient) send(from, to, body string) (int, string) {
	a.t.Helper()
	a.expect(250, "MAIL FROM:<%s>", from)
	a.expect(250, "RCPT TO:<%s>", to)
	a.expect(354, "DATA")
	w := a.tp.DotWriter()
	w.Write([]byte(body))
	w.Close()
	return a.read()
}

func plain(authz, user, pw string) string {
	return base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + user + "\x00" + pw))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func hasAuth(ehlo string) bool {
	for _, l := range strings.Split(ehlo, "\n") {
		if strings.HasPrefix(l, "AUTH") {
			return true
		}
	}
	return false
}

// A stranger (127.0.0.9, outside relay_hosts) relays only after AUTH over STARTTLS; in plain
// text AUTH is neither offered nor accepted; wrong credentials get 535 and the second failure
// waits; the identity reaches the Reception record, the plugin (meta authn_id) and the trace
// header; with no certificate configured STARTTLS uses the generated one and the log says so.
func TestAuthSTARTTLSRelay(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, "")
	e.relay.WaitStderr("STARTTLS and listen_tls use a self-signed certificate generated at start", 5*time.Second)
	if n := strings.Count(e.relay.Stderr(), "self-signed certificate"); n != 1 {
		t.Fatalf("%d self-signed warnings in the log, want 1:\n%s", n, e.relay.Stderr())
	}

	c, _ := dialAuth(t, "127.0.0.9", e.relay.SMTP, nil)
	ehlo := c.expect(250, "EHLO stranger.test")
	if !strings.Contains(ehlo, "STARTTLS") || hasAuth(ehlo) {
		t.Fatalf("plain-text EHLO: want STARTTLS and no AUTH:\n%s", ehlo)
	}
	if code, msg := c.cmd("AUTH PLAIN %s", plain("", "alice", "alice-pw")); code != 538 || msg != "5.7.11 Encryption required for requested authentication mechanism" {
		t.Fatalf("plain-text AUTH: %d %s, want 538 5.7.11", code, msg)
	}
	if code, msg := c.cmd("AUTH LOGIN"); code != 538 {
		t.Fatalf("plain-text AUTH LOGIN: %d %s, want 538", code, msg)
	}
	c.expect(250, "MAIL FROM:<a@sender.test>")
	if code, msg := c.cmd("RCPT TO:<x@implicit.test>"); code != 550 || !strings.HasPrefix(msg, "5.7.1") {
		t.Fatalf("stranger RCPT before AUTH: %d %s, want 550 5.7.1", code, msg)
	}
	c.expect(250, "RSET")

	cert := c.startTLS(&tls.Config{InsecureSkipVerify: true}) // self-signed: checked below
	if cert.Subject.CommonName != "relay.test" || cert.Issuer.String() != cert.Subject.String() || cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) != nil {
		t.Fatalf("STARTTLS certificate: subject %s issuer %s, want a self-signed one for relay.test", cert.Subject, cert.Issuer)
	}
	ehlo = c.expect(250, "EHLO stranger.test")
	if !strings.Contains(ehlo, "AUTH PLAIN LOGIN") || strings.Contains(ehlo, "STARTTLS") {
		t.Fatalf("EHLO under TLS: want AUTH PLAIN LOGIN and no STARTTLS:\n%s", ehlo)
	}
	c.expect(250, "MAIL FROM:<a@sender.test>")
	if code, _ := c.cmd("RCPT TO:<x@implicit.test>"); code != 550 {
		t.Fatalf("RCPT under TLS but before AUTH: %d, want 550", code)
	}
	c.expect(250, "RSET")

	// Wrong password (PLAIN), then unknown user (LOGIN): 535, the second after a delay.
	if code, msg := c.cmd("AUTH PLAIN %s", plain("", "alice", "wrong")); code != 535 || msg != "5.7.8 Authentication credentials invalid" {
		t.Fatalf("wrong password: %d %s, want 535 5.7.8 Authentication credentials invalid", code, msg)
	}
	if code, msg := c.cmd("AUTH LOGIN"); code != 334 || msg != b64("Username:") {
		t.Fatalf("AUTH LOGIN: %d %s, want 334 Username:", code, msg)
	}
	c.expect(334, "%s", b64("mallory"))
	start := time.Now()
	if code, msg := c.cmd("%s", b64("alice-pw")); code != 535 {
		t.Fatalf("unknown user: %d %s, want 535", code, msg)
	}
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Fatalf("second failure answered after %v, want the 1 s failure delay", waited)
	}
	// An authorization identity other than the user is refused.
	if code, _ := c.cmd("AUTH PLAIN %s", plain("carol", "alice", "alice-pw")); code != 535 {
		t.Fatalf("AUTH as alice for carol: %d, want 535", code)
	}

	c.expect(235, "AUTH PLAIN %s", plain("", "alice", "alice-pw"))
	if code, msg := c.send("a@sender.test", "x@implicit.test", testutil.Message("a@sender.test", "x@implicit.test", "authed", "hi")); code != 250 {
		t.Fatalf("DATA after AUTH: %d %s", code, msg)
	}
	got := e.sinks["127.0.0.4"].WaitCount(t, 1, 10*time.Second)
	data := string(got[0].Data)
	if !strings.Contains(data, "X-Authn-Id: alice\r\n") {
		t.Fatalf("the plugin did not see meta authn_id = alice:\n%s", data)
	}
	if !strings.Contains(data, "with ESMTPSA id") {
		t.Fatalf("trace header should say ESMTPSA (RFC 3848):\n%s", data)
	}
	rec := e.relay.WaitLog(recipientIs("Reception", "x@implicit.test"), 5*time.Second)
	if rec["authn_id"] != "alice" {
		t.Fatalf("Reception authn_id = %v, want alice: %v", rec["authn_id"], rec)
	}
	tlsRec, _ := rec["tls"].(map[string]any)
	if tlsRec["version"] != "TLS1.3" || !strings.HasPrefix(fmt.Sprint(tlsRec["cipher"]), "TLS_") {
		t.Fatalf("Reception tls = %v, want version TLS1.3 and a cipher", rec["tls"])
	}
	if meta, _ := rec["meta"].(map[string]any); meta["authn_id"] != "alice" {
		t.Fatalf("Reception meta = %v, want authn_id alice", rec["meta"])
	}
	// The failures left Rejection records with the 535.
	recs := e.relay.LogRecords()
	n := 0
	for _, r := range recs {
		if r["type"] == "Rejection" && testutil.Code(r) == 535 {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d Rejection records with 535, want 3", n)
	}
}

// The implicit-TLS listener: TLS first (the configured certificate, verified), wasmta's
// banner, AUTH offered at once and no STARTTLS; AUTH LOGIN then relays. Before AUTH a stranger
// is refused there as on the plain port.
func TestAuthImplicitTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, pool := writeCert(t, dir, "relay.test")
	e := newAuthEnv(t, fmt.Sprintf("tls_certificate = %q\ntls_private_key = %q\n", certFile, keyFile))
	if strings.Contains(e.relay.Stderr(), "self-signed") {
		t.Fatalf("self-signed warning although a certificate is configured:\n%s", e.relay.Stderr())
	}
	c, banner := dialAuth(t, "127.0.0.9", e.tlsAddr, &tls.Config{RootCAs: pool, ServerName: "relay.test"})
	if banner != "relay.test ESMTP wasmta" {
		t.Fatalf("banner %q", banner)
	}
	ehlo := c.expect(250, "EHLO stranger.test")
	if !strings.Contains(ehlo, "AUTH PLAIN LOGIN") || strings.Contains(ehlo, "STARTTLS") {
		t.Fatalf("EHLO on listen_tls: want AUTH and no STARTTLS:\n%s", ehlo)
	}
	if code, _ := c.cmd("STARTTLS"); code != 502 {
		t.Fatalf("STARTTLS inside TLS: %d, want 502", code)
	}
	c.expect(250, "MAIL FROM:<a@sender.test>")
	if code, _ := c.cmd("RCPT TO:<x@implicit.test>"); code != 550 {
		t.Fatalf("RCPT before AUTH: %d, want 550", code)
	}
	c.expect(250, "RSET")
	c.expect(334, "AUTH LOGIN %s", b64("carol")) // user name with the command: straight to Password:
	c.expect(235, "%s", b64("carol-pw"))
	if code, msg := c.send("a@sender.test", "y@implicit.test", testutil.Message("a@sender.test", "y@implicit.test", "tls", "hi")); code != 250 {
		t.Fatalf("DATA: %d %s", code, msg)
	}
	got := e.sinks["127.0.0.4"].WaitCount(t, 1, 10*time.Second)
	if !strings.Contains(string(got[0].Data), "X-Authn-Id: carol\r\n") {
		t.Fatalf("plugin did not see carol:\n%s", got[0].Data)
	}
	rec := e.relay.WaitLog(recipientIs("Reception", "y@implicit.test"), 5*time.Second)
	if tlsRec, _ := rec["tls"].(map[string]any); rec["authn_id"] != "carol" || tlsRec["version"] != "TLS1.3" {
		t.Fatalf("Reception authn_id %v tls %v", rec["authn_id"], rec["tls"])
	}
	// A plain-text client on the TLS port gets no SMTP at all.
	raw, err := net.DialTimeout("tcp", e.tlsAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.Write([]byte("EHLO plain.test\r\n"))
	raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	if n, _ := raw.Read(buf); strings.HasPrefix(string(buf[:n]), "220") || strings.HasPrefix(string(buf[:n]), "250") {
		t.Fatalf("plain text on listen_tls got %q", buf[:n])
	}
}

// SIGHUP re-reads the users file; a broken file keeps the users in use, with an error logged.
func TestAuthUsersReloadOnSIGHUP(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, "")
	login := func(user, pw string) int {
		c, _ := dialAuth(t, "127.0.0.9", e.tlsAddr, &tls.Config{InsecureSkipVerify: true})
		c.expect(250, "EHLO stranger.test")
		code, _ := c.cmd("AUTH PLAIN %s", plain("", user, pw))
		return code
	}
	if code := login("alice", "alice-pw"); code != 235 {
		t.Fatalf("alice before reload: %d", code)
	}
	// Only carol now.
	os.WriteFile(e.users, []byte(carolUser+"\n"), 0o600)
	relayProcess(t, e.relay).Signal(syscall.SIGHUP)
	e.relay.WaitStderr("users file reloaded", 10*time.Second)
	if code := login("carol", "carol-pw"); code != 235 {
		t.Fatalf("carol after reload: %d", code)
	}
	if code := login("alice", "alice-pw"); code != 535 {
		t.Fatalf("alice after she was removed: %d, want 535", code)
	}
	// A broken file: refused, carol still logs in.
	os.WriteFile(e.users, []byte(aliceUser+"\nbob:plaintext\n"), 0o600)
	relayProcess(t, e.relay).Signal(syscall.SIGHUP)
	e.relay.WaitStderr("users file refused", 10*time.Second)
	if !strings.Contains(e.relay.Stderr(), e.users+":2:") {
		t.Fatalf("the error does not name %s:2:\n%s", e.users, e.relay.Stderr())
	}
	if code := login("carol", "carol-pw"); code != 235 {
		t.Fatalf("carol after a refused reload: %d", code)
	}
}

// A bad users file stops `config check` and `serve` with the file and line.
func TestAuthUsersFileBadLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	users := filepath.Join(dir, "users.htpasswd")
	os.WriteFile(users, []byte(aliceUser+"\n\nbob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"), 0o600)
	path := filepath.Join(dir, "bad.toml")
	text := fmt.Sprintf("[spool]\npath = \"spool\"\n[logs]\ndir = \"logs\"\n[http]\nlisten = \"\"\n[smtp]\nlisten = [\"127.0.0.1:0\"]\nauth_users_file = %q\n[dns]\nresolvers = [\"127.0.0.1:1\"]\n", users)
	os.WriteFile(path, []byte(text), 0o644)
	want := "smtp.auth_users_file: " + users + ":3: user \"bob\": unsupported hash"
	for _, args := range [][]string{{"config", "check", path}, {"serve", "--config", path}} {
		out, err := runBin(dir, args...)
		if err == nil || !strings.Contains(out, want) {
			t.Fatalf("%v: err=%v output %q, want %q", args, err, out, want)
		}
	}
}

// writeCert makes a CA-less self-signed certificate for name and returns the PEM files and a
// pool that trusts it.
func writeCert(t *testing.T, dir, name string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
