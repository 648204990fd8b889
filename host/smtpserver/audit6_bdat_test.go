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
	var rejections []map[string]any
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		rejections = rejections[:0]
		for _, r := range testutil.ReadLogRecords(t, dir) {
			if r["type"] == "Rejection" {
				rejections = append(rejections, r)
			}
		}
		if len(rejections) >= rounds || time.Now().After(deadline) {
			break
		}
	}
	if len(rejections) != rounds {
		t.Fatalf("%d Rejection records, want %d (one per aborted BDAT)", len(rejections), rounds)
	}
	for _, r := range rejections {
		if r["sender"] != "first@client.test" || r["recipient"] != "one@example.com" {
			t.Fatalf("Rejection record of an aborted BDAT names sender %q, recipient %q; want first@client.test, one@example.com",
				r["sender"], r["recipient"])
		}
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
