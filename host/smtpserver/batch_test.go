package smtpserver

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/testutil"
)

// domainPolicy acts like a routing plugin that reads only the first recipient: it routes the
// whole hook call by that recipient's domain and stamps the body with it. It refuses a call
// whose first recipient is in reject, and fails one whose first recipient is in fail.
type domainPolicy struct {
	reject, fail string
	mu           sync.Mutex
	calls        [][]string // recipients of each hook call
}

func (p *domainPolicy) Active() bool { return true }

func (p *domainPolicy) MessageHook(_ context.Context, _ string, m *message.Hook) (message.HookOutcome, error) {
	p.mu.Lock()
	p.calls = append(p.calls, slices.Clone(m.Recipients))
	p.mu.Unlock()
	_, dom, _ := strings.Cut(m.Recipients[0], "@")
	dom = strings.ToLower(dom)
	switch dom {
	case p.reject:
		return message.HookOutcome{Reject: &message.Reply{Code: 550, Enhanced: "5.7.1", Text: dom + " not wanted"}}, nil
	case p.fail:
		return message.HookOutcome{}, errors.New("plugin trapped")
	}
	m.Meta["routing_domain"] = "relay." + dom
	m.Data = append([]byte("X-Routed: "+dom+"\r\n"), m.Data...)
	return message.HookOutcome{Handled: []string{"test@1"}}, nil
}

func (p *domainPolicy) hookCalls() [][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

// A transaction to several recipient domains goes through the message hook once per domain
// (compared without regard to case), each batch with its own meta, queue and body, and the
// client gets one 250 naming every recipient's spool id; all batches arrive in one Submit.
func TestTransactionBatchedByRecipientDomain(t *testing.T) {
	rec, pol := &msgRecorder{}, &domainPolicy{}
	_, addr := start(t, func(o *Options) { o.Receiver = rec; o.Policy = pol })
	c := testutil.Dial(t, addr)
	defer c.Close()
	c.Hello("client.test")
	rcpts := []string{"a@x.test", "b@y.test", "c@X.Test", "d@y.test"}
	code, msg := c.Send("s@client.test", rcpts, hdr+"hi\r\n")
	if code != 250 || len(strings.Fields(msg)) != len(strings.Fields("2.0.0 OK queued as"))+len(rcpts) {
		t.Fatalf("%d %s", code, msg)
	}
	want := [][]string{{"a@x.test", "c@X.Test"}, {"b@y.test", "d@y.test"}}
	if got := pol.hookCalls(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("hook calls %q, want %q", got, want)
	}
	rec.mu.Lock()
	subs := slices.Clone(rec.batches)
	rec.mu.Unlock()
	if len(subs) != 1 || len(subs[0]) != 2 {
		t.Fatalf("want one Submit of 2 batches, got %d Submits: %v", len(subs), subs)
	}
	for _, b := range subs[0] {
		dom := strings.ToLower(b.Msgs[0].Recipient[strings.IndexByte(b.Msgs[0].Recipient, '@')+1:])
		if !strings.HasPrefix(string(b.Body), "X-Routed: "+dom+"\r\n") {
			t.Errorf("%s batch body starts %q", dom, string(b.Body)[:30])
		}
		for _, m := range b.Msgs {
			if !strings.Contains(msg, string(m.ID)) {
				t.Errorf("%s: id %s not in the reply %q", m.Recipient, m.ID, msg)
			}
			if m.Meta["routing_domain"] != "relay."+dom || !strings.Contains(m.Queue, "relay."+dom) || m.Size != len(b.Body) {
				t.Errorf("%s: meta %v queue %q size %d", m.Recipient, m.Meta, m.Queue, m.Size)
			}
		}
	}
}

// One batch refused or failing refuses the whole transaction with that batch's reply (SMTP has
// one reply to DATA) and nothing of it is spooled, also when an earlier batch was accepted.
func TestBatchRefusalRefusesTransaction(t *testing.T) {
	for _, tc := range []struct {
		name string
		pol  *domainPolicy
		code int
		text string
	}{
		{"reject", &domainPolicy{reject: "y.test"}, 550, "5.7.1 y.test not wanted"},
		{"hook failure", &domainPolicy{fail: "y.test"}, 451, "4.3.0 temporary policy failure"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &msgRecorder{}
			_, addr := start(t, func(o *Options) { o.Receiver = rec; o.Policy = tc.pol })
			c := testutil.Dial(t, addr)
			defer c.Close()
			c.Hello("client.test")
			code, msg := c.Send("s@client.test", []string{"a@x.test", "b@Y.TEST"}, hdr+"hi\r\n")
			if code != tc.code || !strings.Contains(msg, tc.text) {
				t.Fatalf("%d %s, want %d %s", code, msg, tc.code, tc.text)
			}
			if got := rec.all(); len(got) != 0 {
				t.Fatalf("spooled %d messages", len(got))
			}
			// The session goes on: the next transaction, to x.test only, is accepted.
			if code, msg := c.Send("s@client.test", []string{"a@x.test"}, hdr+"hi\r\n"); code != 250 {
				t.Fatalf("next transaction: %d %s", code, msg)
			}
		})
	}
}

// A Submit that fails answers 451 for the whole transaction: the client keeps every recipient.
func TestFailedSubmitOfBatchesAnswers451(t *testing.T) {
	rec := &recorder{err: errors.New("disk on fire")}
	_, addr := start(t, func(o *Options) { o.Receiver = rec; o.Policy = &domainPolicy{} })
	c := testutil.Dial(t, addr)
	defer c.Close()
	c.Hello("client.test")
	if code, msg := c.Send("s@client.test", []string{"a@x.test", "b@y.test"}, hdr+"hi\r\n"); code != 451 || strings.Contains(msg, "fire") {
		t.Fatalf("%d %s", code, msg)
	}
}
