package smtpserver

import (
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/testutil"
)

// msgRecorder keeps the spool records reception would write.
type msgRecorder struct {
	mu      sync.Mutex
	msgs    []*message.Message
	batches [][]message.Batch // one entry per SubmitBatches call
}

func (r *msgRecorder) SubmitBatches(batches []message.Batch) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range batches {
		r.msgs = append(r.msgs, b.Msgs...)
	}
	r.batches = append(r.batches, batches)
	return nil
}

func (r *msgRecorder) all() []*message.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// With DSN on, EHLO offers it and each spooled message keeps the transaction's RET and ENVID
// and its own RCPT's NOTIFY and ORCPT (xtext-decoded); a message without parameters has none,
// also after a transaction that had them.
func TestDSNParametersKept(t *testing.T) {
	rec := &msgRecorder{}
	_, addr := start(t, func(o *Options) { o.DSN = true; o.Receiver = rec })
	c := testutil.Dial(t, addr)
	defer c.Close()
	if ext := c.Hello("client.test"); !slices.Contains(ext, "DSN") {
		t.Fatalf("EHLO does not offer DSN: %q", ext)
	}
	c.Expect(250, "MAIL FROM:<a@client.test> RET=HDRS ENVID=QQ+2B314159")
	c.Expect(250, "RCPT TO:<b@example.com> NOTIFY=FAILURE,DELAY ORCPT=rfc822;Bob+40Example.com")
	c.Expect(250, "RCPT TO:<c@example.com>")
	c.Expect(250, "RCPT TO:<d@example.com> NOTIFY=NEVER")
	if code, msg := c.Data(hdr + "hi\r\n"); code != 250 {
		t.Fatalf("DATA: %d %s", code, msg)
	}
	if code, msg := c.Send("a@client.test", []string{"e@example.com"}, hdr+"again\r\n"); code != 250 {
		t.Fatalf("second transaction: %d %s", code, msg)
	}
	got := rec.all()
	if len(got) != 4 {
		t.Fatalf("%d messages spooled, want 4", len(got))
	}
	want := []*message.DSN{
		{Ret: "HDRS", EnvID: "QQ+314159", Notify: []string{"FAILURE", "DELAY"}, ORcptType: "RFC822", ORcpt: "Bob@Example.com"},
		{Ret: "HDRS", EnvID: "QQ+314159"},
		{Ret: "HDRS", EnvID: "QQ+314159", Notify: []string{"NEVER"}},
		nil,
	}
	for i, m := range got {
		if !reflect.DeepEqual(m.DSN, want[i]) {
			t.Errorf("%s: DSN %+v, want %+v", m.Recipient, m.DSN, want[i])
		}
	}
	if got[2].WantsFailureDSN() || !got[0].WantsFailureDSN() || !got[1].WantsFailureDSN() {
		t.Error("NOTIFY=NEVER must turn the failure DSN off, and only for its recipient")
	}
}

// With DSN off (bounce.enabled = false) it is not offered and its parameters are refused, as
// RFC 1869 §6 asks of parameters not advertised.
func TestDSNOff(t *testing.T) {
	rec := &msgRecorder{}
	_, addr := start(t, func(o *Options) { o.Receiver = rec })
	c := testutil.Dial(t, addr)
	defer c.Close()
	if ext := c.Hello("client.test"); slices.Contains(ext, "DSN") {
		t.Fatalf("EHLO offers DSN: %q", ext)
	}
	if code, _ := c.Cmd("MAIL FROM:<a@client.test> RET=FULL"); code != 504 {
		t.Fatalf("RET without DSN: %d, want 504", code)
	}
	c.Expect(250, "MAIL FROM:<a@client.test>")
	if code, _ := c.Cmd("RCPT TO:<b@example.com> NOTIFY=NEVER"); code != 504 {
		t.Fatalf("NOTIFY without DSN: %d, want 504", code)
	}
}
