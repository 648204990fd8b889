package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/queue"
)

// adminServer is a server whose admin routes act on a real queue.Manager over the test's real
// Badger spool (not started: these tests exercise rules and requests, not delivery).
func adminServer(t *testing.T, mod func(*Options)) (*testServer, *queue.Manager) {
	t.Helper()
	var m *queue.Manager
	ts := startServer(t, func(o *Options) {
		if mod != nil {
			mod(o)
		}
	})
	// The spool exists only once startServer ran; rebuild the server around a manager on it.
	ts.srv.Shutdown(t.Context())
	m = queue.New(queue.Options{Store: ts.sp, Rules: ts.sp, Configs: queue.Static{MaxAge: time.Hour}})
	opt := ts.srv.opt
	opt.Admin = m
	ts.srv = New(opt)
	if err := ts.srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ts.srv.Serve()
	t.Cleanup(func() { ts.srv.Shutdown(t.Context()) })
	ts.url = "http://" + ts.srv.Addr().String()
	return ts, m
}

func (ts *testServer) req(method, path, body string, hdr ...string) (int, string) {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.url+path, strings.NewReader(body))
	if err != nil {
		ts.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return ts.do(req)
}

// With a token set, every admin route wants the admin token: none, a wrong one and the
// inject-only token all get 401. The probes answer without one.
func TestAdminAuth(t *testing.T) {
	ready := errors.New("spool below its free-space reserve")
	ts, _ := adminServer(t, func(o *Options) {
		o.Token, o.InjectToken = "admin-secret", "inject-secret"
		o.Control = func(cmd, reason string) (any, bool) { return map[string]string{"cmd": cmd, "reason": reason}, true }
		o.Ready = func() error { return ready }
	})
	routes := []struct{ method, path, body string }{
		{"GET", QueueSummaryPath, ""},
		{"GET", InspectMsgPath + "?id=abc", ""},
		{"GET", InspectSchedPath + "?queue_name=x", ""},
		{"POST", SuspendPath, `{"reason":"x"}`},
		{"GET", SuspendPath, ""},
		{"DELETE", SuspendPath, `{"id":"x"}`},
		{"POST", BouncePath, `{"reason":"x"}`},
		{"GET", BouncePath, ""},
		{"DELETE", BouncePath, `{"id":"x"}`},
		{"POST", RebindPath, `{"reason":"x","data":{}}`},
		{"POST", PluginReloadPath, ""},
		{"GET", PluginStatusPath, ""},
	}
	for _, r := range routes {
		for _, hdr := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "Bearer inject-secret"}} {
			if code, body := ts.req(r.method, r.path, r.body, hdr...); code != 401 {
				t.Errorf("%s %s with %v: %d %s, want 401", r.method, r.path, hdr, code, body)
			}
		}
	}
	if code, body := ts.req("GET", PluginStatusPath, "", "Authorization", "Bearer admin-secret"); code != 200 || !strings.Contains(body, `"reason":"http status"`) {
		t.Fatalf("status with the admin token: %d %s", code, body)
	}
	if code, body := ts.req("GET", LivenessPath, ""); code != 200 || body != "OK\n" {
		t.Fatalf("liveness without a token: %d %q", code, body)
	}
	if code, body := ts.req("GET", ReadinessPath, ""); code != 503 || !strings.Contains(body, "reserve") {
		t.Fatalf("readiness: %d %q", code, body)
	}
	ready = nil
	if code, _ := ts.req("GET", ReadinessPath, ""); code != 200 {
		t.Fatalf("readiness when ready: %d", code)
	}
}

func TestAdminRuleRequests(t *testing.T) {
	ts, m := adminServer(t, nil)
	for _, tc := range []struct{ body, want string }{
		{`{"domian":"example.com","reason":"x"}`, "unknown field"},
		{`{"domain":"example.com"}`, "reason is required"},
		{`{"reason":"x","duration":"soon"}`, "invalid duration"},
		{`{"reason":"x","duration":0}`, "positive"},
		{`{"reason":"x","expires":"2001-01-01T00:00:00Z"}`, "past"},
		{`{"reason":"x"} {}`, "more than one"},
	} {
		if code, body := ts.req("POST", SuspendPath, tc.body); code != 400 || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want 400 %q", tc.body, code, body, tc.want)
		}
	}
	code, body := ts.req("POST", SuspendPath, `{"domain":"example.com","reason":"block","duration":"2h"}`)
	var created struct{ ID string }
	if code != 200 || json.Unmarshal([]byte(body), &created) != nil || len(created.ID) != 36 {
		t.Fatalf("suspend: %d %s", code, body)
	}
	code, body = ts.req("GET", SuspendPath, "")
	var list []map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list) != 1 ||
		list[0]["id"] != created.ID || list[0]["domain"] != "example.com" || list[0]["reason"] != "block" || list[0]["duration"] != "2h0m0s" {
		t.Fatalf("list: %d %s", code, body)
	}
	// Persisted in the spool under its own prefix.
	if rules, err := ts.sp.Rules(); err != nil || len(rules) != 1 {
		t.Fatalf("stored rules %v %v", rules, err)
	}
	if code, body := ts.req("DELETE", SuspendPath, `{"id":"`+created.ID+`"}`); code != 200 {
		t.Fatalf("cancel: %d %s", code, body)
	}
	if code, _ := ts.req("DELETE", SuspendPath+"?id="+created.ID, ""); code != 404 {
		t.Fatalf("second cancel: %d, want 404", code)
	}
	if len(m.Rules(queue.KindSuspend)) != 0 {
		t.Fatal("rule still active")
	}
	// Bounce answers KumoMTA's shape, with the sweep's counts; a number is seconds.
	code, body = ts.req("POST", BouncePath, `{"tenant":"t1","reason":"bad","duration":60}`)
	if code != 200 || !strings.Contains(body, `"bounced":{}`) || !strings.Contains(body, `"total_bounced":0`) {
		t.Fatalf("bounce: %d %s", code, body)
	}
	if code, body := ts.req("GET", BouncePath, ""); code != 200 || !strings.Contains(body, `"duration":"1m0s"`) || !strings.Contains(body, `"tenant":"t1"`) {
		t.Fatalf("bounce list: %d %s", code, body)
	}
	if code, body := ts.req("POST", RebindPath, `{"reason":"x","data":{},"trigger_rebind_event":true}`); code != 400 {
		t.Fatalf("trigger_rebind_event: %d %s", code, body)
	}
	if code, body := ts.req("GET", InspectMsgPath+"?id=not-hex!", ""); code != 400 {
		t.Fatalf("bad id: %d %s", code, body)
	}
	if code, body := ts.req("GET", InspectMsgPath+"?id=00aa", ""); code != 404 {
		t.Fatalf("unknown id: %d %s", code, body)
	}
	if code, body := ts.req("GET", QueueSummaryPath, ""); code != 200 || !strings.Contains(body, `"scheduled_queues":[]`) {
		t.Fatalf("summary: %d %s", code, body)
	}
}
