package smtpserver

import (
	"strings"
	"testing"

	"github.com/wasmta/wasmta/host/testutil"
)

// RFC 5321 §4.4: the FROM clause of the trace header is the name the client presented in
// EHLO; a client may send EHLO again (§4.1.4), and the name it gives then is the one that
// counts. The session kept the first name for the life of the connection.
func TestSecondEHLONameInTrace(t *testing.T) {
	rec, addr := start(t, nil)
	c := testutil.Dial(t, addr)
	c.Hello("first.test")
	c.Hello("second.test")
	if code, msg := c.Send("a@client.test", []string{"b@example.com"}, hdr+"x\r\n"); code != 250 {
		t.Fatalf("%d %s", code, msg)
	}
	got := rec.got()
	if len(got) != 1 {
		t.Fatalf("spooled %d messages", len(got))
	}
	if !strings.HasPrefix(got[0], "Received: from second.test ") {
		t.Fatalf("trace header after a second EHLO:\n%s", strings.SplitN(got[0], "\r\n\r\n", 2)[0])
	}
}
