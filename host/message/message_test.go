package message

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// A spool record written before messages had DSN parameters still decodes, with none: mail
// queued by an older version survives the upgrade and gets the default notifications.
func TestRecordBeforeDSN(t *testing.T) {
	b, err := os.ReadFile("testdata/record-before-dsn.json")
	if err != nil {
		t.Fatal(err)
	}
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.ID != "0189c1a2b3c4d5e6f708192a3b4c5d6e" || m.Recipient != "bob@example.com" || m.Attempts != 1 || m.DSN != nil {
		t.Fatalf("decoded %+v", m)
	}
	if !m.WantsFailureDSN() {
		t.Fatal("a message without DSN parameters must get a failure DSN")
	}
	// Without parameters nothing new is written either: the record keeps its old shape.
	out, err := json.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	var a, b2 map[string]any
	json.Unmarshal(b, &a)
	json.Unmarshal(out, &b2)
	if !reflect.DeepEqual(a, b2) {
		t.Fatalf("re-encoded record differs:\n%s\n%s", b, out)
	}
}

func TestDSNRoundTrip(t *testing.T) {
	in := Message{ID: "x", Sender: "a@b", Recipient: "c@d", DSN: &DSN{Ret: "HDRS", EnvID: "QQ314159",
		Notify: []string{NotifyFailure, NotifyDelay}, ORcptType: "rfc822", ORcpt: "C@D"}}
	b, err := json.Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	var out Message
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in.DSN, out.DSN) {
		t.Fatalf("round trip: %+v != %+v (%s)", in.DSN, out.DSN, b)
	}
}

func TestWantsFailureDSN(t *testing.T) {
	for _, c := range []struct {
		name   string
		sender string
		dsn    *DSN
		want   bool
	}{
		{"no parameters", "a@b", nil, true},
		{"parameters without NOTIFY", "a@b", &DSN{Ret: "FULL"}, true},
		{"null sender", "", nil, false},
		{"null sender asking", "", &DSN{Notify: []string{NotifyFailure}}, false},
		{"NEVER", "a@b", &DSN{Notify: []string{NotifyNever}}, false},
		{"FAILURE", "a@b", &DSN{Notify: []string{NotifyFailure}}, true},
		{"SUCCESS,DELAY", "a@b", &DSN{Notify: []string{NotifySuccess, NotifyDelay}}, false},
		{"DELAY,FAILURE", "a@b", &DSN{Notify: []string{NotifyDelay, NotifyFailure}}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := &Message{Sender: c.sender, DSN: c.dsn}
			if got := m.WantsFailureDSN(); got != c.want {
				t.Fatalf("WantsFailureDSN = %v, want %v", got, c.want)
			}
		})
	}
}

// An id's binary form spells the same id back; ids that are not 32 lower-case hex digits have
// none, and MapKey still tells them apart.
func TestIDKey(t *testing.T) {
	id := NewID(time.Now())
	k, ok := id.Key()
	if !ok || k.ID() != id {
		t.Fatalf("%s: key %x, %v; back %s", id, k, ok, k.ID())
	}
	if id.MapKey() != k {
		t.Fatal("MapKey of a spool id is not its Key")
	}
	for _, bad := range []ID{"", "x", ID(strings.ToUpper(string(id))), id + "0", id[:31] + "g"} {
		if _, ok := bad.Key(); ok {
			t.Errorf("%q has a binary form", bad)
		}
	}
	if ID("a").MapKey() == ID("b").MapKey() {
		t.Fatal("MapKey confuses two ids that are not spool ids")
	}
}
