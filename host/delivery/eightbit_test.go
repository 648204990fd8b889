package delivery

import "testing"

// bodyHas8bit tests eight octets at a time; it must agree with the plain definition (an octet
// above 127 anywhere) wherever that octet falls: in a full word, in the tail, at either edge.
func TestBodyHas8bit(t *testing.T) {
	for n := range 40 {
		clean := make([]byte, n)
		for i := range clean {
			clean[i] = byte('a' + i%26)
		}
		if bodyHas8bit(clean) {
			t.Fatalf("%d ASCII octets reported as 8-bit", n)
		}
		for at := range n {
			for _, c := range []byte{0x80, 0xC3, 0xFF} {
				b := append([]byte(nil), clean...)
				b[at] = c
				if !bodyHas8bit(b) {
					t.Fatalf("octet %#x at %d of %d not seen", c, at, n)
				}
			}
		}
	}
}

func FuzzBodyHas8bit(f *testing.F) {
	f.Add([]byte("plain text\r\n"))
	f.Add([]byte("caf\xc3\xa9 au lait, eight more"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := bodyHas8bit(b), has8bit(string(b)); got != want {
			t.Fatalf("bodyHas8bit(%q) = %v, want %v", b, got, want)
		}
	})
}

// go test -run=^$ -bench=Has8bit ./host/delivery/ (a 4 KiB ASCII body, the usual case: read to
// the end).
func BenchmarkHas8bit(b *testing.B) {
	body := make([]byte, 4096)
	for i := range body {
		body[i] = 'x'
	}
	b.Run("words", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			bodyHas8bit(body)
		}
	})
	b.Run("octets", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		s := string(body)
		for b.Loop() {
			has8bit(s)
		}
	})
}
