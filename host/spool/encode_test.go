package spool

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
)

// FuzzEncode: the hand-written record encoder writes what json.Marshal writes, or fails when
// it fails, for any text in any field, any times (zones and out-of-range years included) and
// records decoded from arbitrary JSON.
func FuzzEncode(f *testing.F) {
	f.Add("0000000000000001aaaaaaaaaaaaaaaa", "s@x.test", "<r@y.test>", "tenant", "é\u2028\xff\"", int64(1796037224123456789), int64(0), 3600, 2, true)
	f.Add("", "", "", "", "", int64(0), int64(-62135596800), 0, 0, false)
	f.Add("x", "a", "b", "k", "v", int64(-1<<62), int64(1<<62), 86400, -1, true)
	f.Fuzz(func(t *testing.T, id, sender, rcpt, key, value string, created, due int64, offset, n int, all bool) {
		zone := time.FixedZone(key, offset)
		m := &message.Message{ID: message.ID(id), Sender: sender, Recipient: rcpt, Queue: value,
			Created: time.Unix(0, created).In(zone), Due: time.Unix(due, created%1e9).UTC(),
			Attempts: n, Size: -n, BodyID: message.ID(value), Protocol: key}
		if all {
			m.Meta = map[string]string{key: value, value: sender, "": id}
			m.PeerName, m.PeerAddr, m.AuthnID = sender, rcpt, key
			m.TLS = &message.TLS{Version: key, Cipher: value}
			m.Policy = []string{id, value}
			m.DSN = &message.DSN{Ret: key, EnvID: value, Notify: []string{sender}, ORcptType: id, ORcpt: rcpt}
		} else if n%2 == 0 {
			m.Meta = map[string]string{}
			m.DSN = &message.DSN{ORcpt: value} // only some of the omitempty fields
		}
		sameRecord(t, m)
		var decoded message.Message
		if json.Unmarshal([]byte(value), &decoded) == nil {
			sameRecord(t, &decoded)
		}
	})
}

func sameRecord(t *testing.T, m *message.Message) {
	t.Helper()
	want, werr := json.Marshal(m)
	got, gerr := encode(m)
	if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
		t.Fatalf("encode:\n%s (%v)\njson.Marshal:\n%s (%v)", got, gerr, want, werr)
	}
}

func TestEncodeEmptyDSN(t *testing.T) {
	sameRecord(t, &message.Message{ID: "x", DSN: &message.DSN{}})
	sameRecord(t, &message.Message{ID: "x", DSN: &message.DSN{EnvID: "e"}, Policy: []string{}})
}

// A message held for its DSN (message.Failed) round-trips, and the start-up scan reads its
// scheduling fields past the failed object.
func TestEncodeFailed(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m := &message.Message{ID: "0000000000000001aaaaaaaaaaaaaaaa", Queue: "q", Created: now, Due: now, Attempts: 2,
		BodyID: "0000000000000001aaaaaaaaaaaaaaaa",
		Failed: &message.Failed{Type: "Bounce", Reply: message.Reply{Code: 550, Enhanced: "5.1.1", Text: "no \"such\" user"},
			PeerName: "mx", PeerAddr: "192.0.2.1", Notices: 2}}
	sameRecord(t, m)
	v, err := encode(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeRecord(metaKey(m.ID), v)
	if err != nil || back.Failed == nil || *back.Failed != *m.Failed {
		t.Fatalf("decoded %+v, %v", back.Failed, err)
	}
	s, err := decodeSched(v)
	if err != nil || s.ID != m.ID || s.Attempts != 2 || s.BodyID != m.BodyID || !s.Due.Equal(now) {
		t.Fatalf("sched %+v, %v", s, err)
	}
}
