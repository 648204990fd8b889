package spool

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/wasmta/wasmta/host/message"
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

// FuzzDecodeSched checks decodeSched's fast path against encoding/json: whatever record it
// reads without json.Unmarshal, json.Unmarshal reads too, to the same fields. Start-up with an
// old or odd record must not differ from a plain decode.
func FuzzDecodeSched(f *testing.F) {
	f.Add([]byte(`{"id":"0000000000000001aaaaaaaaaaaaaaaa","sender":"s@x.test","recipient":"r@y.test","meta":{"tenant":"t"},"queue":"y.test","created":"2026-01-02T03:04:05Z","due":"2026-01-02T03:04:05.123456789+01:00","attempts":2,"size":10,"body_id":"0000000000000001aaaaaaaaaaaaaaaa","protocol":"ESMTP","policy":["a.wasm@1"],"tls":{"version":"TLS1.3","cipher":"x"},"dsn":{"notify":["FAILURE"]}}`))
	f.Add([]byte(`{"id":"x","ID":"y"}`))
	f.Add([]byte(`{"id":"x","attempts":1e2}`))
	f.Add([]byte(`{"id":"x","attempts":-0,"size":-1.5e+3,"a":[true,false,null,{"b":[]}]}`))
	f.Add([]byte(`{"id":"\u0078","queue":"a\"b"}`))
	f.Add([]byte(`{"id":"x"} `))
	f.Add([]byte(`{"queue":null,"due":"bad"}`))
	f.Add([]byte(`{"attempt\u017f":3}`))
	f.Fuzz(func(t *testing.T, v []byte) {
		fast, ok := fastSched(v)
		if !ok {
			return
		}
		var slow message.Sched
		if err := json.Unmarshal(v, &slow); err != nil {
			t.Fatalf("fast path read %q, which json.Unmarshal refuses: %v", v, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q: fast path %+v, json.Unmarshal %+v", v, fast, slow)
		}
	})
}
