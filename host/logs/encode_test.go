package logs

import (
	"bytes"
	"encoding/json"
	"testing"
)

// sampleRecords are the shapes the relay logs, plus every optional part set.
func sampleRecords() []Record {
	yes := true
	return []Record{
		{},
		{Type: Reception, ID: "0123456789abcdef0123456789abcdef", Sender: "a@sender.test", Recipient: "r@example.com",
			Queue: "example.com", Size: 4242, Response: Response{Code: 250, Content: "OK queued as 0123"},
			PeerAddress: &PeerAddress{Name: "client.test", Addr: "127.0.0.1"}, Timestamp: 1796037224,
			EventTime: "2026-11-30T11:20:32.123456789Z", Created: 1796037224, Meta: map[string]string{},
			ReceptionProtocol: "ESMTP", Policy: []string{"router.wasm@3f2a"}, AuthnID: "user",
			TLS: &TLS{Version: "TLS1.3", Cipher: "TLS_AES_128_GCM_SHA256"}},
		{Type: Delivery, ID: "x", Response: Response{Code: 250, EnhancedCode: &EnhancedCode{2, 0, 0}, Content: "Ok", Command: "."},
			Meta: map[string]string{"z": "1", "a": "<b>&\"\\\n\t\x01\x7f", "m": "é\u2028\u2029\xff"}, NumAttempts: 3,
			DeliveryProtocol: "ESMTP", TLS: &TLS{Version: "TLS1.2", Cipher: "c", Verified: &yes},
			BounceClassification: "Uncategorized", EgressPool: "p", EgressSource: "s"},
	}
}

// FuzzAppendRecord: the hand-written encoder writes exactly what encoding/json writes, for any
// text in any string field and any numbers.
func FuzzAppendRecord(f *testing.F) {
	f.Add("Delivery", "<a@b>", "quoted \"x\" \\ \n", "k", "é\u2028\xff\x00", int64(-5), 250, true)
	f.Add("", "", "", "", "", int64(0), 0, false)
	f.Fuzz(func(t *testing.T, typ, addr, text, key, value string, n int64, code int, opt bool) {
		r := Record{Type: typ, ID: text, Sender: addr, Recipient: value, Queue: key, Site: text,
			Size: code, Response: Response{Code: code, Content: text, Command: addr},
			Timestamp: n, EventTime: value, Created: -n, NumAttempts: code, Meta: map[string]string{key: value, text: addr}}
		if opt {
			r.Response.EnhancedCode = &EnhancedCode{code, -code, int(n)}
			r.PeerAddress = &PeerAddress{Name: addr, Addr: value}
			r.ReceptionProtocol, r.DeliveryProtocol, r.AuthnID = text, value, key
			r.Policy = []string{typ, text}
			r.TLS = &TLS{Version: key, Cipher: value, Verified: &opt}
			r.BounceClassification, r.EgressPool, r.EgressSource = value, key, typ
		} else {
			r.Meta = nil
		}
		same(t, r)
	})
}

func TestAppendRecordSamples(t *testing.T) {
	for _, r := range sampleRecords() {
		same(t, r)
	}
}

func same(t *testing.T, r Record) {
	t.Helper()
	want, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if got := appendRecord(nil, &r); !bytes.Equal(got, want) {
		t.Fatalf("appendRecord:\n%s\nencoding/json:\n%s", got, want)
	}
}

// BenchmarkEncodeRecord compares the two encoders on a Delivery record.
func BenchmarkEncodeRecord(b *testing.B) {
	r := sampleRecords()[1]
	b.Run("appendRecord", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			appendRecord(make([]byte, 0, 512), &r)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			json.Marshal(r)
		}
	})
}
