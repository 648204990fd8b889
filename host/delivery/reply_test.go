package delivery

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/wasmta/wasmta/host/message"
)

func TestReadReplyLimits(t *testing.T) {
	long := strings.Repeat("x", MaxReplyLine-4) // "250 " + text = MaxReplyLine octets
	many := strings.Repeat("250-"+strings.Repeat("y", 600)+"\r\n", 105)
	for _, tc := range []struct {
		name  string
		in    string
		code  int
		lines int
		limit bool // a replyError over a limit; otherwise any error when code is 0
	}{
		{"one line", "250 ok\r\n", 250, 1, false},
		{"bare LF", "250 ok\n", 250, 1, false},
		{"bare code", "250\r\n", 250, 1, false},
		{"multi-line", "250-a\r\n250-b\r\n250 c\r\n", 250, 3, false},
		{"line at the limit", "250 " + long + "\r\n", 250, 1, false},
		{"line over the limit", "250 " + long + "x\r\n", 0, 0, true},
		{"endless line", "220 " + strings.Repeat("z", 1<<20), 0, 0, true},
		{"lines at the limit", strings.Repeat("250-a\r\n", MaxReplyLines-1) + "250 a\r\n", 250, MaxReplyLines, false},
		{"too many lines", strings.Repeat("250-a\r\n", MaxReplyLines) + "250 a\r\n", 0, 0, true},
		{"too many octets", many, 0, 0, true},
		{"codes differ", "250-a\r\n251 b\r\n", 0, 0, false},
		{"no separator", "250ok\r\n", 0, 0, false},
		{"not a code", "ok\r\n", 0, 0, false},
		{"1xx", "150 x\r\n", 0, 0, false},
		{"cut short", "250-a\r\n250", 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &countingReader{r: strings.NewReader(tc.in)}
			code, lines, err := readReply(bufio.NewReaderSize(r, readBufferSize))
			if code != tc.code || len(lines) != tc.lines {
				t.Fatalf("got %d, %d lines, %v", code, len(lines), err)
			}
			var re *replyError
			if tc.code == 0 && (err == nil || errors.As(err, &re) && re.limit != tc.limit) {
				t.Fatalf("error %v, want limit=%v", err, tc.limit)
			}
			if r.n > MaxReplySize+readBufferSize {
				t.Fatalf("read %d octets", r.n)
			}
		})
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// FuzzReadReply feeds arbitrary server output to the reply reader and parser: no panic, and
// whatever is accepted respects the limits and parses into one-line text.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"250 ok\r\n",
		"250-mx.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 100\r\n",
		"550-5.1.1 no\r\n550 5.1.1 user\r\n",
		"421 4.3.2 bye\n",
		"250\r\n",
		"220 " + strings.Repeat("x", 3000),
		"25",
		"250-a\r\n251 b\r\n",
		"554 5.6.3 \xff\xfe\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := &countingReader{r: bytes.NewReader(in)}
		code, lines, err := readReply(bufio.NewReaderSize(r, readBufferSize))
		if r.n > MaxReplySize+readBufferSize {
			t.Fatalf("read %d octets", r.n)
		}
		if err != nil {
			if code != 0 || lines != nil {
				t.Fatalf("error %v with code %d and %d lines", err, code, len(lines))
			}
			return
		}
		if code < 200 || code > 599 || len(lines) == 0 || len(lines) > MaxReplyLines {
			t.Fatalf("code %d, %d lines", code, len(lines))
		}
		for _, l := range lines {
			if len(l) > MaxReplyLine || strings.Contains(l, "\n") {
				t.Fatalf("line %q", l)
			}
		}
		rep := parseReply(code, lines)
		if strings.Contains(rep.Text, "\n") || rep.Code != code {
			t.Fatalf("parsed %+v", rep)
		}
		if rep.Enhanced != "" {
			if c, _, _, ok := message.ParseEnhanced(rep.Enhanced); !ok || c != code/100 {
				t.Fatalf("enhanced %q for %d", rep.Enhanced, code)
			}
		}
	})
}
