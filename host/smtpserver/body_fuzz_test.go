package smtpserver

import (
	"bytes"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// refData is the reference model of DATA (RFC 5321 §4.1.1.4, §4.5.2) on the raw bytes the
// client sends: the data ends at the first CRLF "." CRLF (the leading CRLF may be the one that
// ended the DATA command); a line's leading "." is removed; a CR not followed by LF, or an LF
// not preceded by CR, makes the message bad. hidden reports the one thing go-smtp removes before
// we can see it: a "." then a CR that is not followed by LF at the start of a line.
func refData(raw []byte) (content []byte, end, bad, hidden bool) {
	lineStart := true
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if lineStart && c == '.' {
			if i+2 < len(raw) && raw[i+1] == '\r' && raw[i+2] == '\n' {
				return content, true, bad, hidden
			}
			if i+1 < len(raw) && raw[i+1] == '\r' && (i+2 >= len(raw) || raw[i+2] != '\n') {
				hidden = true
			}
			if i+2 == len(raw) && raw[i+1] == '\r' {
				return content, false, bad, hidden // could still become ".\r\n"
			}
			lineStart = false
			continue
		}
		lineStart = false
		switch c {
		case '\r':
			if i+1 < len(raw) && raw[i+1] == '\n' {
				content = append(content, '\r', '\n')
				i++
				lineStart = true
				continue
			}
			bad = true
		case '\n':
			bad = true
		}
		content = append(content, c)
	}
	return content, false, bad, hidden
}

// FuzzBodyCheck sends raw DATA bytes to the real server (go-smtp and bodyCheck together) over
// loopback and holds the outcome to the reference model: a clean message is stored exactly, a
// bad one gets 550 5.6.0 and is never stored, data without its end is never stored, and the one
// reply comes without waiting for a timeout (the client half-closes only when the data has no
// end). The committed corpus is in testdata/fuzz/FuzzBodyCheck.
func FuzzBodyCheck(f *testing.F) {
	for _, s := range []string{
		"x\r\n.\r\n", "abc\r\r\n.\r\n", "\r\r\n..x\r\n.\r\n", ".\rX\r\n.\r\n", "line1\r.\rMAIL FROM:<a@b>\r\n.\r\n",
		"a\nb\r\n.\r\n", ".\n.\r\n", "..\r\n.\r\n", "\r\n.\r\n", ".\r\n", "a\r\r\r\n.\r\n", ".\r\r\n.\r\n", "a\r\n.\rx\r\n.\r\n",
	} {
		f.Add([]byte(s))
	}
	rec, addr := start(f, func(o *Options) {
		o.MaxMessageSize, o.MaxLineLength, o.IdleTimeout = 1<<20, 1<<20, time.Second
		o.Now = func() time.Time { return time.Now().UTC() }
	})
	f.Fuzz(func(t *testing.T, raw []byte) {
		want, end, bad, hidden := refData(raw)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		tp := textproto.NewConn(c)
		before := len(rec.got())
		c.Write([]byte("EHLO f\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n"))
		for _, w := range []int{220, 250, 250, 250, 354} {
			if code, msg, err := tp.ReadResponse(w); err != nil {
				t.Fatalf("before the data: %d %s %v", code, msg, err)
			}
		}
		c.Write(raw)
		if !end {
			c.(*net.TCPConn).CloseWrite()
		}
		code, msg, err := tp.ReadResponse(0)
		got := rec.got()[before:]
		switch {
		case !end:
			if len(got) != 0 || code == 250 {
				t.Fatalf("data without its end: %d %s, stored %q", code, msg, got)
			}
		case err != nil && !hidden:
			t.Fatalf("no reply: %v", err)
		case hidden:
			// go-smtp dropped ".\r"; whatever was stored must be free of bare CR and LF.
			for _, b := range got {
				if bytes.Contains(bytes.ReplaceAll([]byte(b), []byte("\r\n"), nil), []byte("\r")) ||
					bytes.Contains(bytes.ReplaceAll([]byte(b), []byte("\r\n"), nil), []byte("\n")) {
					t.Fatalf("stored a bare CR or LF: %q", b)
				}
			}
		case bad:
			if code != 550 || !strings.HasPrefix(msg, "5.6.0") || len(got) != 0 {
				t.Fatalf("bad message: %d %s, stored %q", code, msg, got)
			}
		default:
			if code != 250 || len(got) != 1 {
				t.Fatalf("clean message: %d %s, stored %d", code, msg, len(got))
			}
			if _, body, _ := strings.Cut(got[0], "+0000\r\n"); body != string(want) {
				t.Fatalf("stored %q, want %q", body, want)
			}
		}
	})
}

// BenchmarkBodyCheck is the per-octet cost DATA adds: scan over a 4 KB message of 66-octet lines.
func BenchmarkBodyCheck(b *testing.B) {
	msg := []byte(strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 62))
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		var chk bodyCheck
		chk.scan(msg)
		if chk.bare {
			b.Fatal("bare")
		}
	}
}
