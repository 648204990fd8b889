package plugin

import (
	"bytes"
	"strings"
	"testing"

	"github.com/wasmta/wasmta/abi"
)

// FuzzMessageHeader: indexing any message data never panics, finds the header's end within the
// data, and Header returns the fields in order.
func FuzzMessageHeader(f *testing.F) {
	f.Add([]byte("Received: from x\r\n\tby y\r\nSubject: Hello\r\n\r\nbody\r\n"), "subject")
	f.Add([]byte("A: 1\r\nSubject: Hello\r\n world\r\nsubject: second\r\n\r\nB: not a header\r\n"), "B")
	f.Add([]byte(" leading fold\r\nA: 1\r\n"), "a")
	f.Add([]byte("A: 1\nB:2\n\nbody"), "b")
	f.Add([]byte("no header at all"), "x")
	f.Add([]byte(":empty name\r\n\r\n"), "")
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		m := &msgState{Message: &Message{Data: data}}
		m.index()
		if m.hdrEnd < 0 || m.hdrEnd > len(data) {
			t.Fatalf("header end %d outside %d bytes", m.hdrEnd, len(data))
		}
		for i, f := range m.hdr {
			if f.name == "" || strings.ContainsAny(f.name, ":\r\n") || strings.ContainsAny(f.name[:1]+f.name[len(f.name)-1:], " \t") {
				t.Fatalf("field %d has name %q", i, f.name)
			}
		}
		var want [][]byte
		for _, f := range m.hdr {
			if strings.EqualFold(f.name, name) {
				want = append(want, f.value)
			}
		}
		for i := 0; i <= len(want); i++ {
			v, ok := m.Header(name, i)
			if ok != (i < len(want)) || (ok && !bytes.Equal(v, want[i])) {
				t.Fatalf("Header(%q, %d) = %q %v", name, i, v, ok)
			}
		}
	})
}

// FuzzHeaderEdit: an edit the host accepts lands as exactly one new field with exactly the
// given name and value, at the top (prepend) or the end of the header (append); every original
// field and the body are unchanged. No value can add a second field (header injection).
func FuzzHeaderEdit(f *testing.F) {
	f.Add([]byte("Received: from x\r\n\tby y\r\nSubject: Hello\r\n\r\nbody\r\n"), "X-Policy", "seen", false)
	f.Add([]byte("Subject: Hello\r\n\r\nbody\r\n"), "X-Trailer", "v", true)
	f.Add([]byte("A: 1"), "X", "v", true)
	f.Add([]byte(" leading fold\r\n"), "X", "v", false)
	f.Add([]byte("A: 1\r\nnot a header\r\n"), "X", "v", true)
	f.Add([]byte(""), "X", "", false)
	f.Add([]byte("A: 1\r\n\r\n"), "X", "a\r\nBcc: victim@x", false)
	f.Fuzz(func(t *testing.T, data []byte, name, value string, appendIt bool) {
		before := &msgState{Message: &Message{Data: append([]byte(nil), data...)}}
		before.index()
		st := &callState{hook: abi.HookSMTPServerMessageReceived, msg: &msgState{Message: &Message{Data: append([]byte(nil), data...)}}}
		to := &st.prepend
		if appendIt {
			to = &st.append
		}
		if st.stageHeader(name, value, to) != abi.OK {
			return
		}
		st.commit()
		after := st.msg
		after.index()
		if len(after.hdr) != len(before.hdr)+1 {
			t.Fatalf("%d fields became %d: %q", len(before.hdr), len(after.hdr), after.Data)
		}
		added, rest := after.hdr[0], after.hdr[1:]
		if appendIt {
			added, rest = after.hdr[len(after.hdr)-1], after.hdr[:len(after.hdr)-1]
		}
		if added.name != name || string(added.value) != strings.TrimLeft(value, " \t") {
			t.Fatalf("added %q: %q, want %q: %q (data %q)", added.name, added.value, name, value, after.Data)
		}
		for i := range rest {
			if rest[i].name != before.hdr[i].name || !bytes.Equal(rest[i].value, before.hdr[i].value) {
				t.Fatalf("field %d changed: %q -> %q", i, before.hdr[i].value, rest[i].value)
			}
		}
		if b, a := body(before), body(after); !bytes.Equal(a, b) {
			t.Fatalf("body changed: %q -> %q", b, a)
		}
	})
}

// body is what follows the header and the blank line that ends it.
func body(m *msgState) []byte {
	b := m.Data[m.hdrEnd:]
	if bytes.HasPrefix(b, []byte("\r\n")) {
		return b[2:]
	}
	return bytes.TrimPrefix(b, []byte("\n"))
}
