package spool

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeRecord feeds decodeRecord (what Scan reads back from disk at every start) with
// arbitrary keys and values: it must never panic, and a record it accepts must name itself
// under its key and survive a re-encode unchanged, as Update rewrites it.
func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte("m/0000000000000001aaaaaaaaaaaaaaaa"), []byte(`{"id":"0000000000000001aaaaaaaaaaaaaaaa","sender":"s@x.test","recipient":"r@y.test","meta":{"tenant":"t"},"queue":"y.test","created":"2026-01-02T03:04:05Z","due":"2026-01-02T03:04:05Z","attempts":2,"size":10,"body_id":"0000000000000001aaaaaaaaaaaaaaaa","protocol":"ESMTP","policy":["a.wasm@1"]}`))
	f.Add([]byte("m/x"), []byte(`{"id":"y"}`))
	f.Add([]byte("m/"), []byte(`{"id":""}`))
	f.Add([]byte("m/x"), []byte(`null`))
	f.Add([]byte("m/x"), []byte(`{"id":"x","meta":{"a":1}}`))
	f.Fuzz(func(t *testing.T, key, val []byte) {
		m, err := decodeRecord(key, val)
		if err != nil {
			return
		}
		if m.ID == "" || string(key) != "m/"+string(m.ID) {
			t.Fatalf("accepted record %q under key %q", m.ID, key)
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		m2, err := decodeRecord(key, again)
		if err != nil {
			t.Fatalf("re-encoded record refused: %v\n%s", err, again)
		}
		third, _ := json.Marshal(m2)
		if string(third) != string(again) {
			t.Fatalf("record changes when rewritten:\n%s\n%s", again, third)
		}
	})
}
