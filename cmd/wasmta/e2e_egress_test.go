package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// Egress end-to-end tests: the real binary delivering to sinks that play smarthosts (STARTTLS
// with a certificate from a CA made here, AUTH), with the [egress] settings of design.md §6 and §12.

const smarthostPassword = "Sm4rt-h0st-pa55"

// egressEnv starts the DNS server and the relay with extra config; sinks are the caller's.
func egressEnv(t *testing.T, zone string, port int, extra string) *testutil.Relay {
	t.Helper()
	dns := testutil.StartDNS(t, zone)
	dir := t.TempDir()
	extra = strings.ReplaceAll(extra, "$DIR", dir)
	cfg, addr := testutil.RelayConfig(t, dir, testutil.DeliveryConfig(dns.Addr, port)+extra)
	return testutil.StartRelay(t, relayBin, dir, cfg, addr)
}

func sendTo(t *testing.T, r *testutil.Relay, rcpts ...string) {
	t.Helper()
	c := testutil.Dial(t, r.SMTP)
	defer c.Close()
	c.Hello("client.test")
	for _, to := range rcpts {
		if code, msg := c.Send("a@sender.test", []string{to}, testutil.Message("a@sender.test", to, "egress", "hello")); code != 250 {
			t.Fatalf("DATA for %s: %d %s", to, code, msg)
		}
	}
}

// A smarthost route with credentials: the relay verifies the smarthost's certificate against
// the configured CA, authenticates as the configured user with the password from a secret
// file, leaves from the configured source address, and the Delivery record says how TLS went.
// The password appears in no log record and no diagnostic.
func TestEgressSmarthostAuth(t *testing.T) {
	t.Parallel()
	ca := testutil.NewTestCA(t)
	port, sinks := testutil.StartSinksWith(t, testutil.SinkOptions{
		TLS:   ca.ServerTLS(t, "mx.smarthost.test"),
		Users: map[string]string{"relay-user": smarthostPassword},
	}, "127.0.0.21")
	sink := sinks[0]
	secrets := t.TempDir()
	pwFile := filepath.Join(secrets, "smarthost.txt")
	if err := os.WriteFile(pwFile, []byte(smarthostPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	caFile := ca.WritePEM(t, secrets, "ca.pem")
	r := egressEnv(t, "smarthost.test. MX 10 mx.smarthost.test.\nmx.smarthost.test. A 127.0.0.21\n", port, fmt.Sprintf(`
[secrets]
smarthost = { file = %q }
[egress]
tls_ca_file = %q
[[egress.path]]
routing_domain = "smarthost.test"
enable_tls = "Required"
smtp_auth_plain_username = "relay-user"
smtp_auth_plain_password = "smarthost"
source_address = "127.0.0.29"
`, pwFile, caFile))
	sendTo(t, r, "bob@smarthost.test")
	got := sink.WaitCount(t, 1, 10*time.Second)[0]
	if got.AuthUser != "relay-user" || !got.TLS || got.Remote != "127.0.0.29" {
		t.Fatalf("smarthost saw user %q, TLS %v, from %s; want relay-user over TLS from 127.0.0.29", got.AuthUser, got.TLS, got.Remote)
	}
	rec := r.WaitLog(recipientIs("Delivery", "bob@smarthost.test"), 5*time.Second)
	tls, _ := rec["tls"].(map[string]any)
	if tls == nil || tls["version"] != "TLS1.3" || tls["verified"] != true || !strings.HasPrefix(fmt.Sprint(tls["cipher"]), "TLS_") {
		t.Fatalf("Delivery record tls: %v", rec["tls"])
	}
	if sink.AuthFailures() != 0 {
		t.Fatalf("%d failed AUTH attempts", sink.AuthFailures())
	}
	for _, where := range []string{r.Stderr(), fmt.Sprint(r.LogRecords())} {
		if strings.Contains(where, smarthostPassword) {
			t.Fatal("the smarthost password was written to the logs")
		}
	}
}

// Required TLS to a server that does not offer STARTTLS: nothing is sent in plain text, and
// the TransientFailure record says why.
func TestEgressRequiredTLSWithoutSTARTTLS(t *testing.T) {
	t.Parallel()
	port, sinks := testutil.StartSinks(t, "127.0.0.22")
	r := egressEnv(t, "plain.test. A 127.0.0.22\n", port, "[egress]\nenable_tls = \"Required\"\n")
	sendTo(t, r, "carol@plain.test")
	rec := r.WaitLog(recipientIs("TransientFailure", "carol@plain.test"), 10*time.Second)
	if testutil.Code(rec) != 451 || !strings.Contains(content(rec), "TLS required but plain.test does not offer STARTTLS") {
		t.Fatalf("TransientFailure record: %v", rec)
	}
	if n := sinks[0].Count(); n != 0 {
		t.Fatalf("%d message(s) delivered in plain text", n)
	}
}

// A certificate from an authority the relay does not know: RequiredInsecure delivers (and the
// record says the certificate was not verified), Required defers with a reason.
func TestEgressRequiredInsecureVsRequired(t *testing.T) {
	t.Parallel()
	ca := testutil.NewTestCA(t)
	port, sinks := testutil.StartSinksWith(t, testutil.SinkOptions{TLS: ca.ServerTLS(t, "mxa.test", "mxb.test")}, "127.0.0.23")
	r := egressEnv(t, "a.test. MX 10 mxa.test.\nb.test. MX 10 mxb.test.\nmxa.test. A 127.0.0.23\nmxb.test. A 127.0.0.23\n", port, `
[[egress.path]]
routing_domain = "a.test"
enable_tls = "Required"
[[egress.path]]
routing_domain = "b.test"
enable_tls = "RequiredInsecure"
`)
	sendTo(t, r, "x@a.test", "y@b.test")
	d := r.WaitLog(recipientIs("Delivery", "y@b.test"), 10*time.Second)
	if tls, _ := d["tls"].(map[string]any); tls == nil || tls["verified"] != false {
		t.Fatalf("RequiredInsecure Delivery tls: %v", d["tls"])
	}
	f := r.WaitLog(recipientIs("TransientFailure", "x@a.test"), 10*time.Second)
	if testutil.Code(f) != 451 || !strings.Contains(content(f), "TLS certificate of mxa.test did not verify") {
		t.Fatalf("Required TransientFailure: %v", f)
	}
	if got := sinks[0].Messages(); len(got) != 1 || got[0].To[0] != "y@b.test" || !got[0].TLS {
		t.Fatalf("sink received %+v", got)
	}
}

// max_message_rate = "10/s" on a path: the sink receives the messages evenly spaced, within
// 10 % of 10 a second, measured over 5 s.
func TestEgressMaxMessageRate(t *testing.T) {
	t.Parallel()
	port, sinks := testutil.StartSinks(t, "127.0.0.24")
	r := egressEnv(t, "rate.test. A 127.0.0.24\n", port, "[[egress.path]]\nrouting_domain = \"rate.test\"\nmax_message_rate = \"10/s\"\n")
	var rcpts []string
	for i := range 51 {
		rcpts = append(rcpts, fmt.Sprintf("r%d@rate.test", i))
	}
	sendTo(t, r, rcpts...)
	got := sinks[0].WaitCount(t, 51, 30*time.Second)
	at := make([]time.Time, len(got))
	for i, m := range got {
		at[i] = m.At
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	span := at[50].Sub(at[0])
	rate := 50 / span.Seconds()
	t.Logf("51 messages over %v: %.2f/s", span, rate)
	if rate < 9 || rate > 11 {
		t.Fatalf("%.2f messages a second, want 10 ± 10%%", rate)
	}
	// No two seconds hold more than the rate allows (two more: a window that straddles slots,
	// and a delivery a loaded machine paused that arrives beside the next one on time).
	for i := range at {
		n := 0
		for j := i; j < len(at) && at[j].Sub(at[i]) < 2*time.Second; j++ {
			n++
		}
		if n > 22 {
			t.Fatalf("%d messages within two seconds from %v", n, at[i])
		}
	}
}

// connection_limit = 2 on a path: a slow sink with 12 messages waiting never sees a third
// connection at once.
func TestEgressConnectionLimit(t *testing.T) {
	t.Parallel()
	port, sinks := testutil.StartSinksWith(t, testutil.SinkOptions{DataDelay: 300 * time.Millisecond}, "127.0.0.25")
	r := egressEnv(t, "limit.test. A 127.0.0.25\n", port, "[[egress.path]]\nsite = \"limit.test\"\nconnection_limit = 2\n")
	var rcpts []string
	for i := range 12 {
		rcpts = append(rcpts, fmt.Sprintf("r%d@limit.test", i))
	}
	sendTo(t, r, rcpts...)
	sinks[0].WaitCount(t, 12, 30*time.Second)
	if n := sinks[0].MaxOpen(); n != 2 {
		t.Fatalf("%d connections open at once, want 2 (the limit, reached)", n)
	}
}
