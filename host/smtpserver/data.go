package smtpserver

import (
	"bytes"
	"io"

	"github.com/emersion/go-smtp"
)

// plainData reads the content of DATA on a plain-text connection straight from the conn, in
// place of go-smtp's data reader, and hands on exactly what that reader would: the same state
// machine (RFC 5321 §4.5.2 dot-stuffing, the end at CRLF "." CRLF, and go-smtp's slips that
// body.go describes, which bodyCheck then follows as before) and the same line limit as
// go-smtp's line reader (octets since the last LF, that LF included, must not pass
// max_line_length: ErrTooLongLine). go-smtp reads byte by byte; this copies the runs between
// CRs and LFs. It is used only when go-smtp's own buffer is empty (conn.Read hands it one line
// at a time), and once the end is read, conn makes go-smtp's reader end at once (endData).
type plainData struct {
	c     *conn
	state int
	line  int // go-smtp's line count: the DATA command's LF is the first octet
	max   int // max_line_length; 0 = none
	eof   bool
}

// go-smtp's data reader states.
const (
	dBeginLine = iota
	dDot
	dDotCR
	dCR
	dData
)

func newPlainData(c *conn, maxLine int) *plainData {
	return &plainData{c: c, line: 1, max: maxLine}
}

func (d *plainData) Read(p []byte) (int, error) {
	if d.eof {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if d.c.inPos == len(d.c.in) {
			if err := d.c.fill(); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF // as go-smtp's reader says
				}
				return 0, err
			}
		}
		n, err := d.scan(p)
		if d.eof {
			d.c.endData = true
		}
		if n > 0 || err != nil {
			return n, err
		}
		if d.eof {
			return 0, io.EOF
		}
	}
}

// scan moves buffered input to p through go-smtp's state machine.
func (d *plainData) scan(p []byte) (n int, err error) {
	in := d.c.in[d.c.inPos:]
	i := 0
	defer func() { d.c.inPos += i }()
	for i < len(in) && n < len(p) {
		if d.state == dData {
			// Ordinary octets up to the next CR (a state change) or LF (the line count).
			run := in[i:]
			if room := len(p) - n; len(run) > room {
				run = run[:room]
			}
			j := bytes.IndexByte(run, '\r')
			if j < 0 {
				j = len(run)
			}
			if k := bytes.IndexByte(run[:j], '\n'); k >= 0 {
				j = k
			}
			if d.max > 0 && d.line+j > d.max {
				return n, smtp.ErrTooLongLine
			}
			d.line += j
			n += copy(p[n:], run[:j])
			i += j
			if i == len(in) || n == len(p) {
				break
			}
		}
		c := in[i]
		i++
		if c == '\n' {
			d.line = 0
		}
		d.line++
		if d.max > 0 && d.line > d.max {
			return n, smtp.ErrTooLongLine
		}
		emit := true
		switch d.state {
		case dBeginLine:
			switch c {
			case '.':
				d.state, emit = dDot, false
			case '\r':
				d.state = dCR
			default:
				d.state = dData
			}
		case dDot:
			if c == '\r' {
				d.state, emit = dDotCR, false
			} else {
				d.state = dData
			}
		case dDotCR:
			if c == '\n' {
				d.eof = true
				return n, nil
			}
			d.state = dData
		case dCR:
			if c == '\n' {
				d.state = dBeginLine
			} else {
				d.state = dData
			}
		default: // dData
			if c == '\r' {
				d.state = dCR
			}
		}
		if emit {
			p[n] = c
			n++
		}
	}
	return n, nil
}

// finish reads the rest of the data when the session stopped early (a refused message must be
// read to its end for its reply to be heard), so that go-smtp's reader, which reads to the end
// after Data returns, gets endData. Nothing is read from a connection that failed or was shut.
func (d *plainData) finish() {
	var buf [4096]byte
	for !d.eof && !d.c.dead() {
		if _, err := d.Read(buf[:]); err != nil {
			return
		}
	}
}
