package plugin

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/abi"
)

func load(t testing.TB, name string, mod func(*Spec)) (*Plugin, error) {
	t.Helper()
	h, err := NewHost(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	spec := Spec{Path: "testdata/" + name + ".wasm", Config: []byte(`{"k":"v"}`), Timeout: 200 * time.Millisecond, MaxMemory: 2 << 20}
	if mod != nil {
		mod(&spec)
	}
	p, err := h.Load(context.Background(), spec)
	if err == nil {
		t.Cleanup(func() { p.Close(context.Background()) })
	}
	return p, err
}

func mustLoad(t testing.TB, name string) *Plugin {
	t.Helper()
	p, err := load(t, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func testMessage() *Message {
	return &Message{
		Sender:     "a@sender.test",
		Recipients: []string{"b@example.com"},
		Meta:       map[string]string{"tenant": "t1"},
		Data:       []byte("Received: from x\r\n\tby y\r\nSubject: Hello\r\n\r\nbody\r\n"),
	}
}

func TestMessageHookEffects(t *testing.T) {
	c := NewChain(mustLoad(t, "meta"))
	m := testMessage()
	o, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m)
	if err != nil {
		t.Fatal(err)
	}
	if o.Reject != nil || len(o.Handled) != 1 || !strings.HasPrefix(o.Handled[0], "meta.wasm@") {
		t.Fatalf("outcome %+v", o)
	}
	if m.Meta["routing_domain"] != "my.smarthost.test" || m.Meta["tenant"] != "t1" {
		t.Fatalf("meta %v", m.Meta)
	}
	if m.Meta["subject"] != "Hello" {
		t.Fatalf("folded subject read back as %q", m.Meta["subject"])
	}
	want := "X-Policy: seen\r\nReceived: from x\r\n\tby y\r\nSubject: Hello\r\nX-Trailer: seen\r\n\r\nbody\r\n"
	if string(m.Data) != want {
		t.Fatalf("data:\n%q\nwant\n%q", m.Data, want)
	}
}

func TestRejectWithCustomCode(t *testing.T) {
	c := NewChain(mustLoad(t, "reject"), mustLoad(t, "meta"))
	m := testMessage()
	o, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m)
	if err != nil {
		t.Fatal(err)
	}
	if o.Reject == nil || o.Reject.Code != 550 || o.Reject.Enhanced != "5.7.1" || o.Reject.Text != "no thanks" {
		t.Fatalf("reject %+v", o.Reject)
	}
	if _, ok := m.Meta["routing_domain"]; ok || len(o.Handled) != 1 {
		t.Fatal("the chain went on after a reject")
	}
}

func TestFailedHookAppliesNothing(t *testing.T) {
	c := NewChain(mustLoad(t, "failing"))
	m := testMessage()
	_, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m)
	var f *Failure
	if !errors.As(err, &f) || !strings.Contains(f.Reason, "returned 7: boom") {
		t.Fatalf("err %v", err)
	}
	if m.Meta["tenant"] != "t1" {
		t.Fatalf("staged meta leaked: %v", m.Meta)
	}
}

func TestHeaderInjectionRefused(t *testing.T) {
	c := NewChain(mustLoad(t, "inject"))
	m := testMessage()
	if _, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m); err != nil {
		t.Fatal(err)
	}
	if m.Meta["status"] != "-2" || strings.Contains(string(m.Data), "Bcc") {
		t.Fatalf("status %q data %q", m.Meta["status"], m.Data)
	}
}

func TestQueueConfigChain(t *testing.T) {
	c := NewChain(mustLoad(t, "meta"), mustLoad(t, "queuecfg"))
	cfg, by, err := c.QueueConfig(context.Background(), QueueInput{Name: "smart.example", Domain: "smart.example"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(by, "queuecfg.wasm@") || cfg == nil {
		t.Fatalf("config %v by %q", cfg, by)
	}
	mx := cfg.MXList()
	if len(mx) != 2 || mx[0].Name != "smart.host.local" || mx[1] != (abi.MXEntry{Name: "mx.example.com", Addr: "127.0.0.3"}) {
		t.Fatalf("mx_list %+v", mx)
	}
	if time.Duration(*cfg.RetryInterval) != 5*time.Second {
		t.Fatalf("retry_interval %v", *cfg.RetryInterval)
	}
	cfg, _, err = c.QueueConfig(context.Background(), QueueInput{Name: "other.example", Domain: "other.example"})
	if err != nil || cfg != nil {
		t.Fatalf("other domain: %v %v", cfg, err)
	}
}

func TestInvalidQueueConfigIsPrecise(t *testing.T) {
	c := NewChain(mustLoad(t, "badconfig"))
	_, _, err := c.QueueConfig(context.Background(), QueueInput{Name: "x.test", Domain: "x.test"})
	if err == nil || !strings.Contains(err.Error(), `unknown field "mx_lsit"`) {
		t.Fatalf("err %v", err)
	}
}

// Broken plugins: each failure is precise, the instance is discarded, and the next call works
// on a fresh instance (a host that survives).
func TestMisbehavingPlugins(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"trap", "unreachable"},
		{"loop", "deadline"},
		{"brtableloop", "deadline"},
		{"indirectrecurse", "deadline"},
		{"memory", "unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustLoad(t, tc.name)
			c := NewChain(p)
			for i := 0; i < 3; i++ {
				start := time.Now()
				_, err := c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, testMessage())
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("call %d: %v, want %q", i, err, tc.want)
				}
				if el := time.Since(start); el > 5*time.Second {
					t.Fatalf("call took %s", el)
				}
			}
			if n := p.gen.Load().Busy(); n != 0 {
				t.Fatalf("%d instances alive after failures: failed instances must be discarded", n)
			}
		})
	}
}

func TestLoadTimeChecks(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"nomarker", `missing export "wasmta_abi_v1"`},
		{"unknownimport", "imports wasmta.frobnicate, which this host (ABI 1.2) does not provide"},
		{"badsig", `export "smtp_server_message_received" must have type () -> i32, has (i32) -> (i32)`},
		{"wasi", "imports WASI function path_open"},
		{"initfail", "wasmta_init returned 3: config missing"},
	} {
		_, err := load(t, tc.name, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	_, err := load(t, "meta", func(s *Spec) { s.Path = "testdata/absent.wasm" })
	if err == nil {
		t.Fatal("missing file loaded")
	}
}

func TestHeaderIndex(t *testing.T) {
	m := &msgState{Message: &Message{Data: []byte("A: 1\r\nSubject: Hello\r\n world\r\nsubject: second\r\n\r\nB: not a header\r\n")}}
	if v, ok := m.Header("SUBJECT", 0); !ok || string(v) != "Hello\r\n world" {
		t.Fatalf("folded: %q", v)
	}
	if v, ok := m.Header("subject", 1); !ok || string(v) != "second" {
		t.Fatalf("second: %q", v)
	}
	if _, ok := m.Header("B", 0); ok {
		t.Fatal("a body line was read as a header")
	}
}

// Each message hook runs only for its own event: http_message_generated for HTTP injection,
// smtp_server_message_received for SMTP.
func TestHookSelection(t *testing.T) {
	c := NewChain(mustLoad(t, "http"), mustLoad(t, "meta"))
	m := testMessage()
	o, err := c.MessageHook(context.Background(), abi.HookHTTPMessageGenerated, m)
	if err != nil {
		t.Fatal(err)
	}
	if m.Meta["campaign"] != "http" || m.Meta["routing_domain"] != "" || len(o.Handled) != 1 {
		t.Fatalf("http hook: meta %v handled %v", m.Meta, o.Handled)
	}
	m = testMessage()
	if o, err = c.MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m); err != nil {
		t.Fatal(err)
	}
	if m.Meta["campaign"] != "" || m.Meta["routing_domain"] != "my.smarthost.test" || len(o.Handled) != 1 {
		t.Fatalf("smtp hook: meta %v handled %v", m.Meta, o.Handled)
	}
}

// Calls outside their hook get NotAllowed, not a crash: set_meta from get_queue_config.
func TestGetMetaInQueueHookIsReadOnlyInput(t *testing.T) {
	c := NewChain(mustLoad(t, "queuecfg"))
	cfg, _, err := c.QueueConfig(context.Background(), QueueInput{Name: "t@smart.example", Domain: "smart.example", Tenant: "t"})
	if err != nil || cfg == nil {
		t.Fatalf("%v %v", cfg, err)
	}
}

// A caller that cancels its context ends a running guest call at once, long before the
// plugin's own deadline (the host sets the instance's stop global when the context ends; calls
// under a context that can never end skip that machinery).
func TestCallerCancelEndsGuest(t *testing.T) {
	p, err := load(t, "loop", func(s *Spec) { s.Timeout = 10 * time.Minute })
	if err != nil {
		t.Fatal(err)
	}
	c := NewChain(p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.MessageHook(ctx, abi.HookSMTPServerMessageReceived, testMessage())
		done <- err
	}()
	for p.host.running.taken() == 0 { // the call took its run slot: it is about to run or running
		select {
		case err := <-done:
			t.Fatalf("returned before it ran: %v", err)
		default:
			time.Sleep(time.Millisecond)
		}
	}
	cancel()
	select {
	case err := <-done:
		var f *Failure
		if !errors.As(err, &f) {
			t.Fatalf("got %v, want a Failure", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the guest kept running after its caller's context was cancelled")
	}
}
