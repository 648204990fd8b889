package smtpserver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/testutil"
)

// Reception edge cases over real TCP on loopback. The receiver records what would be spooled
// (the spool itself is tested in host/spool and end to end in cmd/wasmta).

type recorder struct {
	mu        sync.Mutex
	bodies    []string
	envelopes []string // "sender>recipient" of every message spooled
	err       error    // returned by Submit when set
}

func (r *recorder) SubmitBatches(batches []message.Batch) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	for _, b := range batches {
		r.bodies = append(r.bodies, string(b.Body))
		for _, m := range b.Msgs {
			r.envelopes = append(r.envelopes, m.Sender+">"+m.Recipient)
		}
	}
	return nil
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies...)
}

// fakeSpace refuses room for more than limit octets.
type fakeSpace struct {
	limit int64
	mu    sync.Mutex
	asked []int64
}

func (f *fakeSpace) Room(n int64) error {
	f.mu.Lock()
	f.asked = append(f.asked, n)
	f.mu.Unlock()
	if n > f.limit {
		return message.Errorf(452, "4.3.1", "insufficient system storage").Wrap(errors.New("/var/spool: 12 bytes free"))
	}
	return nil
}

func start(t testing.TB, mod func(*Options)) (*recorder, string) {
	t.Helper()
	rec := &recorder{}
	opt := Options{
		Hostname: "mx.test", Listen: []string{"127.0.0.1:0"},
		RelayHosts:     []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		MaxMessageSize: 1000, MaxRecipients: 10, MaxLineLength: 200, MaxConnections: 10,
		IdleTimeout: 10 * time.Second, DataTimeout: time.Minute, Receiver: rec,
	}
	if mod != nil {
		mod(&opt)
	}
	s := New(opt)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	s.Serve()
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return rec, s.Addrs()[0].String()
}

// open connects, says EHLO and opens a transaction to one recipient.
func open(t *testing.T, addr string) *testutil.Client {
	c := testutil.Dial(t, addr)
	c.Hello("client.test")
	c.Expect(250, "MAIL FROM:<a@client.test>")
	c.Expect(250, "RCPT TO:<b@example.com>")
	return c
}

const hdr = "From: <a@client.test>\r\nSubject: t\r\n\r\n"

func TestBareCROrLFRefused(t *testing.T) {
	rec, addr := start(t, nil)
	for _, tc := range []struct{ name, data string }{
		{"bare CR mid-line", hdr + "line1\rMAIL FROM:<x@y>\r\n"},
		{"smuggling attempt", hdr + "line1\r.\rMAIL FROM:<x@y>\r\nRCPT TO:<v@victim.test>\r\n"},
		{"bare LF", hdr + "line1\nline2\r\n"},
		{"bare LF dot", hdr + "line1\n.\nMAIL FROM:<x@y>\r\n"},
		{"CR CR LF then stuffed dot", hdr + "abc\r\r\n..x\r\n"},
		{"CR at line start", hdr + "\rx\r\n"},
		{"dot LF at line start", hdr + ".\nx\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := open(t, addr)
			c.Expect(354, "DATA")
			c.Write(tc.data + ".\r\n")
			if r := c.ExpectReply(550); !strings.Contains(r, "5.6.0") || !strings.Contains(r, "CRLF") {
				t.Fatalf("reply %q", r)
			}
			c.Expect(250, "NOOP") // the session goes on: go-smtp saw the same end of data
		})
	}
	if got := rec.got(); len(got) != 0 {
		t.Fatalf("spooled %q", got)
	}
}

// After "\r\r" go-smtp no longer sees "\r\n.\r\n" as the end of the data; the client must still
// get its one reply at once, not after the idle timeout.
func TestCRCRLFEndsDataWithOneReply(t *testing.T) {
	rec, addr := start(t, func(o *Options) { o.IdleTimeout = time.Minute })
	for _, data := range []string{"abc\r\r\n.\r\n", hdr + "x\r\r\n.\r\n", hdr + "a\r\r\n.\r\nMAIL FROM:<x@y>\r\n"} {
		c := open(t, addr)
		c.Expect(354, "DATA")
		c.Write(data)
		if r := c.ExpectReply(550); !strings.Contains(r, "5.6.0") {
			t.Fatalf("reply %q", r)
		}
		c.ExpectClosed()
	}
	if got := rec.got(); len(got) != 0 {
		t.Fatalf("spooled %q", got)
	}
	// The server is still up.
	c := open(t, addr)
	if code, msg := c.Data(hdr + "fine\r\n"); code != 250 {
		t.Fatalf("%d %s", code, msg)
	}
}

// go-smtp drops ".\r" at the start of a line before its bytes reach us (see body.go): the
// message is accepted, but what is stored carries no bare CR.
func TestDotCRAtLineStartStoresNoBareCR(t *testing.T) {
	rec, addr := start(t, nil)
	c := open(t, addr)
	c.Expect(354, "DATA")
	c.Write(hdr + ".\rX\r\n.\r\n")
	code, msg, err := c.Reply()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range rec.got() {
		if strings.Contains(strings.ReplaceAll(b, "\r\n", ""), "\r") {
			t.Fatalf("stored a bare CR: %q", b)
		}
	}
	t.Logf("reply %d %s", code, msg)
}

func TestBDATBareCRRefused(t *testing.T) {
	rec, addr := start(t, nil)
	c := open(t, addr)
	bad := hdr + "line1\r.\rMAIL FROM:<x@y>\r\n"
	c.Write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(bad), bad))
	if r := c.ExpectReply(550); !strings.Contains(r, "5.6.0") {
		t.Fatalf("reply %q", r)
	}
	c.Expect(250, "MAIL FROM:<a@client.test>")
	c.Expect(250, "RCPT TO:<b@example.com>")
	good := hdr + "fine\r\n"
	c.Write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(good), good))
	c.ExpectReply(250)
	if got := rec.got(); len(got) != 1 || !strings.HasSuffix(got[0], good) {
		t.Fatalf("spooled %q", got)
	}
}

func TestLongBodyLineOneReply(t *testing.T) {
	rec, addr := start(t, func(o *Options) { o.MaxMessageSize = 1 << 20 }) // max_line_length 200
	c := open(t, addr)
	c.Expect(354, "DATA")
	c.Write(hdr + strings.Repeat("x", 300) + "\r\nmore\r\n.\r\n")
	if r := c.ExpectReply(500); !strings.Contains(r, "5.5.2") || !strings.Contains(r, "200") {
		t.Fatalf("reply %q", r)
	}
	c.ExpectClosed()
	// BDAT: go-smtp lifts its line limit for chunks (once it has read the BDAT command: the
	// first 4 KiB read with the command still count against it, so the long line comes later
	// here); ours holds, and the session goes on.
	c = open(t, addr)
	long := hdr + lines(5000) + strings.Repeat("x", 300) + "\r\n"
	c.Write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(long), long))
	c.ExpectReply(500)
	c.Expect(250, "NOOP")
	if got := rec.got(); len(got) != 0 {
		t.Fatalf("spooled %q", got)
	}
}

func TestSizeLimitExact(t *testing.T) {
	rec, addr := start(t, nil) // max_message_size 1000
	c := testutil.Dial(t, addr)
	if ext := c.Hello("client.test"); !contains(ext, "SIZE 1000") {
		t.Fatalf("EHLO %q", ext)
	}
	c.Expect(552, "MAIL FROM:<a@client.test> SIZE=1001")
	c.Expect(250, "MAIL FROM:<a@client.test> SIZE=1000")
	c.Expect(250, "RCPT TO:<b@example.com>")
	// Within a transaction go-smtp's own check allows one more (see goSMTP); such a MAIL is
	// refused all the same, as nested (TestNestedMailRefused).
	c.Expect(503, "MAIL FROM:<a@client.test> SIZE=1001")
	exact := hdr + lines(1000-len(hdr))
	if code, msg := c.Data(exact); code != 250 {
		t.Fatalf("exactly the limit: %d %s", code, msg)
	}
	if ext := c.Hello("client.test"); !contains(ext, "SIZE 1000") {
		t.Fatalf("EHLO after a transaction %q", ext)
	}
	c.Expect(250, "MAIL FROM:<a@client.test>")
	c.Expect(250, "RCPT TO:<b@example.com>")
	over := hdr + lines(1001-len(hdr))
	if code, msg := c.Data(over); code != 552 || !strings.HasPrefix(msg, "5.3.4") {
		t.Fatalf("one over: %d %s", code, msg)
	}
	// BDAT: exactly, then one over.
	c.Expect(250, "MAIL FROM:<a@client.test>")
	c.Expect(250, "RCPT TO:<b@example.com>")
	c.Write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(exact), exact))
	c.ExpectReply(250)
	c.Expect(250, "MAIL FROM:<a@client.test>")
	c.Expect(250, "RCPT TO:<b@example.com>")
	c.Write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(over), over))
	if r := c.ExpectReply(552); !strings.Contains(r, "5.3.4") {
		t.Fatal(r)
	}
	c.Expect(250, "NOOP")
	if got := rec.got(); len(got) != 2 {
		t.Fatalf("spooled %d messages, want 2", len(got))
	}
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if strings.TrimSpace(l) == s {
			return true
		}
	}
	return false
}

func TestLongHeloCappedInTrace(t *testing.T) {
	rec, addr := start(t, func(o *Options) { o.MaxLineLength = 4000 })
	c := testutil.Dial(t, addr)
	c.Hello(strings.Repeat("h", 1990))
	c.Expect(250, "MAIL FROM:<a@client.test>")
	c.Expect(250, "RCPT TO:<b@example.com>")
	if code, msg := c.Data(hdr + "x\r\n"); code != 250 {
		t.Fatalf("%d %s", code, msg)
	}
	got := rec.got()
	if len(got) != 1 {
		t.Fatalf("spooled %d", len(got))
	}
	for _, l := range strings.Split(got[0], "\r\n") {
		if len(l) > 998 {
			t.Fatalf("header line of %d octets: %.80q...", len(l), l)
		}
	}
	if !strings.Contains(got[0], "Received: from "+strings.Repeat("h", 255)+"...") {
		t.Fatalf("trace %.400q", got[0])
	}
}

func TestEightBitAddressNeedsSMTPUTF8(t *testing.T) {
	rec, addr := start(t, nil)
	c := testutil.Dial(t, addr)
	c.Hello("client.test")
	if msg := c.Expect(553, "MAIL FROM:<jörg@client.test>"); !strings.HasPrefix(msg, "5.6.7") {
		t.Fatal(msg)
	}
	c.Expect(250, "MAIL FROM:<a@client.test>")
	if msg := c.Expect(553, "RCPT TO:<jürgen@example.com>"); !strings.HasPrefix(msg, "5.6.7") {
		t.Fatal(msg)
	}
	c.Expect(250, "RSET")
	c.Expect(250, "MAIL FROM:<jörg@client.test> SMTPUTF8")
	c.Expect(250, "RCPT TO:<jürgen@example.com>")
	if code, msg := c.Data(hdr + "x\r\n"); code != 250 {
		t.Fatalf("%d %s", code, msg)
	}
	if len(rec.got()) != 1 {
		t.Fatal("not spooled")
	}
}

// A second MAIL inside a transaction is refused with 503 (RFC 5321 §4.1.4: a transaction is
// MAIL, RCPTs, DATA, in that order; RSET or a new EHLO ends one), as Postfix and sendmail do. go-smtp
// took it and kept the recipients already given, so the message went to them under the second
// sender.
func TestNestedMailRefused(t *testing.T) {
	rec, addr := start(t, nil)
	c := testutil.Dial(t, addr)
	c.Hello("client.test")
	c.Expect(250, "MAIL FROM:<first@client.test>")
	c.Expect(250, "RCPT TO:<one@example.com>")
	if msg := c.Expect(503, "MAIL FROM:<second@client.test>"); !strings.HasPrefix(msg, "5.5.1") {
		t.Fatal(msg)
	}
	c.Expect(250, "RCPT TO:<two@example.com>")
	if code, msg := c.Data(hdr + "x\r\n"); code != 250 {
		t.Fatalf("%d %s", code, msg)
	}
	// After a transaction (and after RSET) MAIL starts a new one, the null sender included.
	c.Expect(250, "MAIL FROM:<>")
	c.Expect(250, "RSET")
	c.Expect(250, "MAIL FROM:<third@client.test>")
	c.Expect(250, "RCPT TO:<three@example.com>")
	if code, msg := c.Data(hdr + "y\r\n"); code != 250 {
		t.Fatalf("%d %s", code, msg)
	}
	rec.mu.Lock()
	got := strings.Join(rec.envelopes, " ")
	rec.mu.Unlock()
	if want := "first@client.test>one@example.com first@client.test>two@example.com third@client.test>three@example.com"; got != want {
		t.Fatalf("spooled %q, want %q", got, want)
	}
}

func TestSpaceAndSubmitErrors(t *testing.T) {
	sp := &fakeSpace{limit: 500}
	rec, addr := start(t, func(o *Options) { o.Space = sp })
	c := testutil.Dial(t, addr)
	c.Hello("client.test")
	msg := c.Expect(452, "MAIL FROM:<a@client.test> SIZE=600")
	if msg != "4.3.1 insufficient system storage" {
		t.Fatalf("reply %q (the cause must not show)", msg)
	}
	c.Expect(250, "MAIL FROM:<a@client.test> SIZE=400")
	c.Expect(250, "RCPT TO:<b@example.com>")
	// The body with its trace header is over 500: refused after DATA, before spooling.
	if code, msg := c.Data(hdr + lines(450)); code != 452 || msg != "4.3.1 insufficient system storage" {
		t.Fatalf("%d %q", code, msg)
	}
	c.Expect(250, "MAIL FROM:<a@client.test>")
	c.Expect(250, "RCPT TO:<b@example.com>")
	if code, msg := c.Data(hdr + "small\r\n"); code != 250 {
		t.Fatalf("%d %q", code, msg)
	}
	if got := rec.got(); len(got) != 1 {
		t.Fatalf("spooled %d", len(got))
	}
	if sp.asked[0] != 600 || sp.asked[1] != 400 {
		t.Fatalf("Room asked %v", sp.asked)
	}
	// A Submit that fails with a *message.Error: its reply, not the generic 451.
	rec.mu.Lock()
	rec.err = message.Errorf(452, "4.3.1", "insufficient system storage").Wrap(errors.New("ENOSPC"))
	rec.mu.Unlock()
	c.Expect(250, "MAIL FROM:<a@client.test>")
	c.Expect(250, "RCPT TO:<b@example.com>")
	if code, msg := c.Data(hdr + "small\r\n"); code != 452 || msg != "4.3.1 insufficient system storage" {
		t.Fatalf("%d %q", code, msg)
	}
}

// A command cut short by the idle timeout must not run: bufio hands the partial line to
// go-smtp as if it were complete.
func TestPartialCommandAtTimeoutDoesNotRun(t *testing.T) {
	rec, addr := start(t, func(o *Options) { o.IdleTimeout = 300 * time.Millisecond })
	for _, partial := range []string{"RCPT TO:user@example.com", "RCPT TO:<user@example.com>"} {
		c := testutil.Dial(t, addr)
		c.Hello("client.test")
		c.Expect(250, "MAIL FROM:<a@client.test>")
		c.Write(partial) // no CRLF: the client stalls mid-line
		code, msg, err := c.Reply()
		if err != nil {
			t.Fatal(err)
		}
		if code != 421 || !strings.HasPrefix(msg, "4.4.2") {
			t.Fatalf("%s: got %d %s, want 421 4.4.2", partial, code, msg)
		}
		// Whatever the client sends now goes nowhere.
		c.Write("\r\nDATA\r\n" + hdr + "x\r\n.\r\n")
		c.ExpectClosed()
	}
	if got := rec.got(); len(got) != 0 {
		t.Fatalf("spooled %q", got)
	}
}

// idle_timeout is inactivity: a DATA phase longer than it succeeds while data keeps coming;
// data_timeout caps the phase.
func TestSlowDataWithinDataTimeout(t *testing.T) {
	rec, addr := start(t, func(o *Options) { o.IdleTimeout = 400 * time.Millisecond; o.MaxMessageSize = 1 << 20 })
	c := open(t, addr)
	c.Expect(354, "DATA")
	c.Write(hdr)
	for range 12 { // about 1.2 s in all, three idle timeouts
		time.Sleep(100 * time.Millisecond)
		c.Write("part\r\n")
	}
	c.Write(".\r\n")
	c.ExpectReply(250)
	if len(rec.got()) != 1 {
		t.Fatal("not spooled")
	}
}

func TestDataTimeoutCapsPhase(t *testing.T) {
	rec, addr := start(t, func(o *Options) { o.IdleTimeout = 5 * time.Second; o.DataTimeout = 500 * time.Millisecond })
	c := open(t, addr)
	c.Expect(354, "DATA")
	c.Write(hdr)
	done := make(chan struct{})
	go func() { // keep trickling until the server gives up
		defer close(done)
		for range 100 {
			time.Sleep(50 * time.Millisecond)
			if _, err := c.WriteErr("part\r\n"); err != nil {
				return
			}
		}
	}()
	if r := c.ExpectReply(421); !strings.Contains(r, "4.4.2") {
		t.Fatal(r)
	}
	c.ExpectClosed()
	<-done
	if got := rec.got(); len(got) != 0 {
		t.Fatalf("spooled %q", got)
	}
}

// data_timeout bounds a BDAT transfer as it bounds DATA: a client that sends one small chunk
// just within each idle_timeout cannot hold its transaction (and a place under
// max_connections, and shutdown) open for ever. Each BDAT command's read began a new phase, so
// the transfer had no bound but the idle timeout between chunks.
func TestDataTimeoutCapsBDAT(t *testing.T) {
	rec, addr := start(t, func(o *Options) { o.IdleTimeout = 5 * time.Second; o.DataTimeout = 500 * time.Millisecond })
	c := open(t, addr)
	start := time.Now()
	for i := 0; ; i++ {
		if i == 100 {
			t.Fatalf("100 chunks over %s accepted; data_timeout is 500ms", time.Since(start))
		}
		chunk := "part\r\n"
		if i == 0 {
			chunk = hdr
		}
		if _, err := c.WriteErr(fmt.Sprintf("BDAT %d\r\n%s", len(chunk), chunk)); err != nil {
			break // closed: the reply was read below
		}
		code, msg, err := c.Reply()
		if err != nil {
			t.Fatalf("chunk %d: %v, want 250 or 421", i, err)
		}
		if code == 421 {
			if !strings.HasPrefix(msg, "4.4.2") {
				t.Fatalf("421 %s", msg)
			}
			break
		}
		if code != 250 {
			t.Fatalf("chunk %d: %d %s", i, code, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.ExpectClosed()
	if got := rec.got(); len(got) != 0 {
		t.Fatalf("spooled %q", got)
	}
}

// After smtp.max_errors refused commands a session is closed (Postfix's
// smtpd_hard_error_limit): each refusal writes a Rejection record, so a client trying recipient
// after recipient could otherwise fill the log for as long as it likes.
func TestTooManyErrorsCloses(t *testing.T) {
	_, addr := start(t, func(o *Options) { o.RelayHosts, o.MaxErrors = nil, 3 })
	c := testutil.Dial(t, addr)
	c.Hello("client.test")
	c.Expect(250, "MAIL FROM:<a@client.test>")
	c.Expect(550, "RCPT TO:<b@example.com>")
	c.Expect(550, "RCPT TO:<c@example.com>")
	if msg := c.Expect(421, "RCPT TO:<d@example.com>"); !strings.HasPrefix(msg, "4.7.0") {
		t.Fatal(msg)
	}
	c.ExpectClosed()

	// Refusals are counted per connection, not per transaction: RSET does not start over.
	c = testutil.Dial(t, addr)
	c.Hello("client.test")
	c.Expect(250, "MAIL FROM:<a@client.test>")
	c.Expect(550, "RCPT TO:<b@example.com>")
	c.Expect(250, "RSET")
	c.Expect(250, "MAIL FROM:<a@client.test>")
	c.Expect(550, "RCPT TO:<c@example.com>")
	c.Expect(421, "RCPT TO:<d@example.com>")
	c.ExpectClosed()
}

// lines is n (>= 2) octets of CRLF-terminated lines of at most 120 octets.
func lines(n int) string {
	var b strings.Builder
	for n > 0 {
		l := 60
		if n < 120 {
			l = n
		}
		b.WriteString(strings.Repeat("y", l-2) + "\r\n")
		n -= l
	}
	return b.String()
}
