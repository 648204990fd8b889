package delivery

import (
	"bufio"
	"errors"
	"fmt"
	"strings"

	"github.com/wasmta/wasmta/host/message"
)

// Limits on one reply read from a server. RFC 5321 §4.5.3.1.5 allows 512 octets per reply line;
// real servers exceed that a little (long EHLO keyword lists, verbose rejections), so a line gets
// four times as much. A server that goes beyond any of these is hostile or broken: reading on
// would let it fill the relay's memory, so the reply fails the host and the connection is closed.
const (
	MaxReplyLine  = 2048     // octets per line, line end excluded
	MaxReplyLines = 100      // lines per reply
	MaxReplySize  = 64 << 10 // octets per reply, line ends included
)

// readBufferSize is the connection's read buffer; it must hold a whole line of MaxReplyLine
// octets plus CRLF so that bufio.Reader.ReadSlice can return it.
const readBufferSize = 4096

// replyError is a reply the relay refuses to read on: over a limit, or malformed.
type replyError struct {
	limit  bool
	reason string
}

func (e *replyError) Error() string { return e.reason }

// readReply reads one reply (RFC 5321 §4.2.1): lines "ddd-text" ending with "ddd text" (or a
// bare "ddd"), all with the same code. It returns the code and the text of each line. It never
// holds more than MaxReplySize octets of reply and never reads more than MaxReplySize plus one
// buffer from the connection.
func readReply(br *bufio.Reader) (code int, lines []string, err error) {
	total := 0
	for {
		if len(lines) == MaxReplyLines {
			return 0, nil, &replyError{limit: true, reason: fmt.Sprintf("more than %d lines", MaxReplyLines)}
		}
		raw, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) || len(raw) > MaxReplyLine+2 {
			return 0, nil, &replyError{limit: true, reason: fmt.Sprintf("a line longer than %d octets", MaxReplyLine)}
		}
		if err != nil {
			return 0, nil, err
		}
		total += len(raw)
		if total > MaxReplySize {
			return 0, nil, &replyError{limit: true, reason: fmt.Sprintf("more than %d octets", MaxReplySize)}
		}
		line := strings.TrimSuffix(string(raw[:len(raw)-1]), "\r")
		c, more, text, ok := parseReplyLine(line)
		if !ok || (len(lines) > 0 && c != code) {
			return 0, nil, &replyError{reason: "malformed reply line"}
		}
		code = c
		lines = append(lines, text)
		if !more {
			return code, lines, nil
		}
	}
}

// parseReplyLine splits "250-text", "250 text" or "250" into code, continuation flag and text.
// The first digit is 2 to 5 (RFC 5321 §4.2.1).
func parseReplyLine(l string) (code int, more bool, text string, ok bool) {
	if len(l) < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' || l[2] < '0' || l[2] > '9' {
		return 0, false, "", false
	}
	code = int(l[0]-'0')*100 + int(l[1]-'0')*10 + int(l[2]-'0')
	if len(l) == 3 {
		return code, false, "", true
	}
	switch l[3] {
	case '-':
		more = true
	case ' ':
	default:
		return 0, false, "", false
	}
	return code, more, l[4:], true
}

// parseReply turns the lines of a reply into a message.Reply. The enhanced status code of the
// first line (RFC 2034 §4) becomes Enhanced; the same code repeated on the other lines is dropped
// so that the text reads as one sentence.
func parseReply(code int, lines []string) message.Reply {
	r := message.Reply{Code: code}
	var b strings.Builder
	for i, l := range lines {
		if i == 0 {
			if enh, rest, ok := message.SplitEnhanced(code, l); ok {
				r.Enhanced, l = enh, rest
			}
		} else if r.Enhanced != "" {
			if enh, rest, ok := message.SplitEnhanced(code, l); ok && enh == r.Enhanced {
				l = rest
			}
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(l)
	}
	r.Text = b.String()
	return r
}
