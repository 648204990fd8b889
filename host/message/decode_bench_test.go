package message

import (
	"encoding/json"
	"testing"
	"time"
)

// A record as reception writes it, decoded whole (what Scan did at start-up) and as the Sched
// the queue keeps (what it does now).
func benchRecord(b *testing.B) []byte {
	now := time.Now()
	m := Message{ID: NewID(now), Sender: "bench@example.com", Recipient: "rcpt@example.net", Queue: "example.net",
		Created: now, Due: now.Add(24 * time.Hour), Attempts: 1, Size: 1024, BodyID: NewID(now), Protocol: "ESMTP",
		PeerName: "localhost", PeerAddr: "127.0.0.1:45678", Meta: map[string]string{"tenant": "t"}}
	v, err := json.Marshal(&m)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

func BenchmarkDecodeMessage(b *testing.B) {
	v := benchRecord(b)
	b.ReportAllocs()
	for b.Loop() {
		var m Message
		if err := json.Unmarshal(v, &m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeSched(b *testing.B) {
	v := benchRecord(b)
	b.ReportAllocs()
	for b.Loop() {
		var m Sched
		if err := json.Unmarshal(v, &m); err != nil {
			b.Fatal(err)
		}
	}
}
