package delivery

import (
	"bufio"
	"bytes"
	"net/textproto"
	"testing"
)

// dotWriterOut is what net/textproto's DotWriter makes of body, the reference for writeData.
func dotWriterOut(body []byte) []byte {
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	dw := textproto.NewWriter(w).DotWriter()
	dw.Write(body)
	dw.Close()
	return out.Bytes()
}

func writeDataOut(t testing.TB, body []byte) []byte {
	var out bytes.Buffer
	w := bufio.NewWriterSize(&out, 16) // small: runs longer than the buffer go through
	if err := writeData(w, body); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

var dataCases = []string{
	"",
	"x",
	".",
	"\r\n",
	".\r\n",
	"..\r\n",
	"Subject: a\r\n\r\nbody\r\n",
	"Subject: a\r\n\r\n.hidden\r\n..two\r\n.\r\nafter\r\n",
	"no final line end",
	"line\r\n.",
	"bare LF\nline\r\n",
	"bare CR\rline\r\n",
	"CR CR LF\r\r\n.x\r\n",
	"ends in CR\r",
	"\n.\n",
	"\r\n.\r\n.\r\n",
}

// The fast path writes exactly what the DotWriter writes, for clean bodies and the others.
func TestWriteDataMatchesDotWriter(t *testing.T) {
	for _, c := range dataCases {
		if got, want := writeDataOut(t, []byte(c)), dotWriterOut([]byte(c)); !bytes.Equal(got, want) {
			t.Errorf("%q: wrote %q, DotWriter %q", c, got, want)
		}
	}
}

func FuzzWriteData(f *testing.F) {
	for _, c := range dataCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if got, want := writeDataOut(t, body), dotWriterOut(body); !bytes.Equal(got, want) {
			t.Fatalf("%q: wrote %q, DotWriter %q", body, got, want)
		}
	})
}

func BenchmarkWriteData(b *testing.B) {
	body := bytes.Repeat([]byte("0123456789 abcdefghij 0123456789 abcdefghij 0123456789 abcdefghij 0123456789\r\n"), 52)
	var sink bytes.Buffer
	w := bufio.NewWriterSize(&sink, 32<<10)
	b.Run("writeData", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for i := 0; i < b.N; i++ {
			sink.Reset()
			writeData(w, body)
		}
	})
	b.Run("DotWriter", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for i := 0; i < b.N; i++ {
			sink.Reset()
			dw := textproto.NewWriter(w).DotWriter()
			dw.Write(body)
			dw.Close()
		}
	})
}
