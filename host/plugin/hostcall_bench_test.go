package plugin

import "testing"

// BenchmarkHostCalls isolates what a host call costs: a hook that makes none (testdata/calls0),
// one that calls recipient_count 15 times (calls15: the transition into Go and the host's
// dispatch, nothing read or written) and one that calls get_sender 15 times (calls15sender: a
// short value copied into guest memory). (calls15 - calls0) / 15 is one bare host call.
func BenchmarkHostCalls(b *testing.B) {
	for _, name := range []string{"calls0", "calls15", "calls15sender"} {
		b.Run(name, func(b *testing.B) { benchHook(b, mustLoad(b, name)) })
	}
}
