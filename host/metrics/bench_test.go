package metrics

import (
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/logs"
)

// What each observer adds to the path that calls it (reception and delivery: Record; the
// spool committer: Commit; a plugin call: HookCall). Parallel, as the relay calls them.
func BenchmarkObservers(b *testing.B) {
	m := New(Sources{}, nil)
	b.Run("Record/Reception", func(b *testing.B) {
		r := &logs.Record{Type: logs.Reception, ReceptionProtocol: "ESMTP", Queue: "example.com"}
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.Record(r)
			}
		})
	})
	b.Run("Record/Delivery", func(b *testing.B) {
		r := &logs.Record{Type: logs.Delivery, Queue: "example.com", Site: "mx.example.com"}
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.Record(r)
			}
		})
	})
	b.Run("Commit", func(b *testing.B) {
		for range b.N {
			m.Commit(time.Millisecond, 20)
		}
	})
	b.Run("HookCall", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.HookCall("router.wasm", "smtp_server_message_received", 5*time.Microsecond, false)
			}
		})
	})
}
