package smtpserver

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/logs"
	"github.com/wasmta/wasmta/host/testutil"
)

// RSET between BDAT chunks ends the transaction while the session's Data, which go-smtp runs
// in a goroutine of its own for BDAT, still reads the aborted content: its Rejection record
// took the sender and recipients from the session after RSET had cleared them (or after the
// next MAIL had set them), so it named no one, or the wrong transaction (a data race too).
// And it claimed "451 4.3.0 error reading message data", a reply the client never got: the
// client got 250 to its RSET. The client abandoned the transfer; nothing was refused, so
// nothing is recorded.
func TestRsetBetweenBDATChunksRecord(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	lg, err := logs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	rec, addr := start(t, func(o *Options) { o.Log = lg })
	c := testutil.Dial(t, addr)
	c.Hello("client.test")
	const rounds = 50
	for round := range rounds {
		c.Expect(250, "MAIL FROM:<first@client.test>")
		c.Expect(250, "RCPT TO:<one@example.com>")
		c.Write("BDAT 10\r\n0123456789")
		c.ExpectReply(250)
		// Pipelined (RFC 2920): go-smtp takes the next transaction at once.
		c.Write("RSET\r\nMAIL FROM:<second@client.test>\r\nRCPT TO:<two@example.com>\r\nBDAT 12 LAST\r\nSubject: x\r\n")
		for _, cmd := range []string{"RSET", "MAIL", "RCPT", "BDAT LAST"} {
			if code, msg, err := c.Reply(); err != nil || code != 250 {
				n := 0
				for deadline := time.Now().Add(2 * time.Second); n <= round && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
					rec.mu.Lock()
					n = len(rec.envelopes)
					rec.mu.Unlock()
				}
				t.Fatalf("round %d, %s: %d %s %v (messages spooled: %d, this one included when %d)", round, cmd, code, msg, err, n, round+1)
			}
		}
	}
	rec.mu.Lock()
	for _, e := range rec.envelopes {
		if e != "second@client.test>two@example.com" {
			t.Errorf("spooled %q", e)
		}
	}
	rec.mu.Unlock()
	// A refusal the client does get, as a marker: records are written before the reply, in
	// order, so once it is there any record of the aborted transfers is there too.
	c.Expect(501, "MAIL FROM:<marker@@client.test>")
	var rejections []map[string]any
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		rejections = rejections[:0]
		marker := false
		for _, r := range testutil.ReadLogRecords(t, dir) {
			if r["type"] == "Rejection" {
				rejections = append(rejections, r)
				marker = marker || r["sender"] == "marker@@client.test"
			}
		}
		if marker {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no Rejection record for the marker's 501")
		}
	}
	if len(rejections) != 1 {
		t.Fatalf("%d Rejection records, want only the marker's (an aborted BDAT refused nothing); the first: %v", len(rejections), rejections[0])
	}
}

// The same with the transfer cut short by a chunk over max_message_size (go-smtp answers 552
// and resets): the pipelined next transaction gets its own reply.
func TestOversizedBDATChunkThenNextTransaction(t *testing.T) {
	rec, addr := start(t, nil) // max_message_size 1000
	c := testutil.Dial(t, addr)
	c.Hello("client.test")
	const rounds = 50
	big := strings.Repeat(strings.Repeat("x", 98)+"\r\n", 12) // lines within max_line_length: go-smtp discards the refused chunk under the command line limit
	for round := range rounds {
		c.Expect(250, "MAIL FROM:<first@client.test>")
		c.Expect(250, "RCPT TO:<one@example.com>")
		c.Write("BDAT 10\r\n0123456789")
		c.ExpectReply(250)
		c.Write("BDAT 1200\r\n" + big + "MAIL FROM:<second@client.test>\r\nRCPT TO:<two@example.com>\r\nBDAT 12 LAST\r\nSubject: x\r\n")
		for _, want := range []int{552, 250, 250, 250} {
			if code, msg, err := c.Reply(); err != nil || code != want {
				t.Fatalf("round %d: %d %s %v, want %d", round, code, msg, err, want)
			}
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.envelopes) != rounds {
		t.Fatalf("%d spooled, want %d", len(rec.envelopes), rounds)
	}
}

// A BDAT chunk that takes the message over max_message_size gets 552 5.3.4, and its Rejection
// record says so: go-smtp refused such a chunk itself and ended the transfer, and the record
// claimed "451 error reading message data" (or, once an ended transfer was no longer taken
// for a refusal, there was none).
func TestOversizedBDATChunkRecord(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	lg, err := logs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	rec, addr := start(t, func(o *Options) { o.Log = lg }) // max_message_size 1000
	c := testutil.Dial(t, addr)
	c.Hello("client.test")
	c.Expect(250, "MAIL FROM:<first@client.test>")
	c.Expect(250, "RCPT TO:<one@example.com>")
	c.Write("BDAT 10\r\n0123456789")
	c.ExpectReply(250)
	c.Write("BDAT 1200\r\n" + strings.Repeat(strings.Repeat("x", 98)+"\r\n", 12))
	if got := c.ExpectReply(552); !strings.HasPrefix(got, "552 5.3.4 ") {
		t.Fatalf("oversized chunk: %s, want 552 5.3.4", got)
	}
	// The session goes on: a message within the limit is taken.
	c.Expect(250, "MAIL FROM:<second@client.test>")
	c.Expect(250, "RCPT TO:<two@example.com>")
	c.Write("BDAT 12 LAST\r\nSubject: x\r\n")
	c.ExpectReply(250)
	c.Expect(501, "MAIL FROM:<marker@@client.test>") // records are written in order, before the reply
	var rejections []map[string]any
	for _, r := range testutil.ReadLogRecords(t, dir) {
		if r["type"] == "Rejection" && r["sender"] != "marker@@client.test" {
			rejections = append(rejections, r)
		}
	}
	if len(rejections) != 1 || testutil.Code(rejections[0]) != 552 || rejections[0]["sender"] != "first@client.test" || rejections[0]["recipient"] != "one@example.com" {
		t.Fatalf("Rejection records %v, want one 552 for first@client.test -> one@example.com", rejections)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.envelopes) != 1 || rec.envelopes[0] != "second@client.test>two@example.com" {
		t.Fatalf("spooled %v", rec.envelopes)
	}
}
