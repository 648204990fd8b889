package plugin

import (
	"bytes"
	"testing"
)

// referenceIndex is how index read a header before its fields became views of Data (every
// name and value copied): index must find the same fields, values and header end.
func referenceIndex(d []byte) (hdr []field, hdrEnd int) {
	hdrEnd = len(d)
	pos := 0
	for pos < len(d) {
		eol := bytes.IndexByte(d[pos:], '\n')
		line := d[pos:]
		next := len(d)
		if eol >= 0 {
			line = d[pos : pos+eol]
			next = pos + eol + 1
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			return hdr, pos
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(hdr) == 0 {
				return hdr, pos
			}
			f := &hdr[len(hdr)-1]
			f.value = append(append(f.value, "\r\n"...), line...)
		} else if i := bytes.IndexByte(line, ':'); i > 0 && fieldName(bytes.TrimRight(line[:i], " \t")) {
			name := bytes.TrimRight(line[:i], " \t")
			hdr = append(hdr, field{name: string(name), value: append([]byte(nil), bytes.TrimLeft(line[i+1:], " \t")...)})
		} else {
			return hdr, pos
		}
		pos = next
	}
	return hdr, hdrEnd
}

var headerCases = []string{
	"Received: from x\r\n\tby y\r\nSubject: Hello\r\n\r\nbody\r\n",
	"A: 1\r\nSubject: Hello\r\n world\r\n  again\r\nsubject: second\r\n\r\nB: not a header\r\n",
	"A: 1\nB: folded\n with LF\n\tand again\r\n and CRLF\r\nC: 3\n\nbody",
	"A: x\r\n b\n c\r\n d\r\n\r\n",
	"A:\r\n empty first line\r\n\r\n",
	"A: trailing CR\r\r\n fold\r\n\r\n",
	"Kelvin: k\r\nKEY: 1\r\nkey: 2\r\n\r\n",
	" leading fold\r\nA: 1\r\n",
	"A: 1\r\nnot a header\r\nB: 2\r\n",
	"A: ends inside the field",
	"A: 1\r\n fold at the end",
	"",
}

// index must read every header as the copying reader did; with views, a later fold must not
// write into Data (the check after each case).
func TestIndexMatchesReference(t *testing.T) {
	for _, c := range headerCases {
		checkIndex(t, []byte(c))
	}
}

func FuzzIndexMatchesReference(f *testing.F) {
	for _, c := range headerCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkIndex(t, data) })
}

func checkIndex(t *testing.T, data []byte) {
	t.Helper()
	orig := string(data)
	want, wantEnd := referenceIndex([]byte(orig))
	m := &msgState{Message: &Message{Data: data}}
	m.index()
	if m.hdrEnd != wantEnd || len(m.hdr) != len(want) {
		t.Fatalf("%q: %d fields ending at %d, want %d ending at %d", orig, len(m.hdr), m.hdrEnd, len(want), wantEnd)
	}
	for i := range want {
		if m.hdr[i].name != want[i].name || !bytes.Equal(m.hdr[i].value, want[i].value) {
			t.Fatalf("%q: field %d is %q: %q, want %q: %q", orig, i, m.hdr[i].name, m.hdr[i].value, want[i].name, want[i].value)
		}
	}
	if string(data) != orig {
		t.Fatalf("index changed the data: %q -> %q", orig, data)
	}
}

// get_header's lookup of a name in guest memory (headerOf) finds what Header finds for the same
// name: ASCII case-insensitively, and with Unicode case folding for other names, as before.
func TestHeaderOfMatchesHeader(t *testing.T) {
	m := &msgState{Message: &Message{Data: []byte(headerCases[6] + headerCases[1])}}
	names := []string{"key", "KEY", "Key", "kelvin", "KELVIN", "\u212aey", "\u212aelvin", "ke", "keyy", "", "subject", "a", "K", "kEY\x00"}
	for _, name := range names {
		for idx := 0; idx < 3; idx++ {
			want, wantOK := m.Header(name, idx)
			got, ok := m.headerOf([]byte(name), idx)
			if ok != wantOK || !bytes.Equal(got, want) {
				t.Errorf("headerOf(%q, %d) = %q %v, Header: %q %v", name, idx, got, ok, want, wantOK)
			}
		}
	}
	if v, ok := m.headerOf([]byte("\u212aEY"), 1); !ok || string(v) != "2" {
		t.Errorf("KELVIN SIGN: %q %v, want the second Key field as before", v, ok)
	}
}
