package plugin

import (
	"strings"
	"testing"
)

// A kept string is a copy: it does not change when the guest memory it came from does, nor
// when later keeps fill its chunk or start new ones.
func TestKeepCopies(t *testing.T) {
	st := &callState{}
	guest := make([]byte, 200)
	var kept, want []string
	for i := range 60 {
		n := (i * 7) % (keepMax + 20) // empty, short, and longer than keepMax
		for j := range guest[:n] {
			guest[j] = byte('a' + (i+j)%26)
		}
		want = append(want, string(guest[:n]))
		kept = append(kept, st.keep(guest[:n]))
		for j := range guest {
			guest[j] = '#'
		}
		for k := range kept {
			if kept[k] != want[k] || strings.Contains(kept[k], "#") {
				t.Fatalf("after %d keeps, string %d is %q, want %q", i+1, k, kept[k], want[k])
			}
		}
	}
}

// A meta value is UTF-8 without control characters (C0 and DEL); other characters pass.
func TestPrintableMetaValue(t *testing.T) {
	for v, want := range map[string]bool{
		"": true, "plain ascii ~": true, "café": true, "日本": true, "\u0085 NEL is not C0": true,
		"tab\there": false, "line\nbreak": false, "\x00": false, "del\x7f": false, "caf\xe9": false,
		"é\x01": false, "\xff": false,
	} {
		if got := printable([]byte(v)); got != want {
			t.Errorf("printable(%q) = %v, want %v", v, got, want)
		}
	}
}
