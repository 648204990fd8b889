package smtpserver

// The checks of message content as it arrives (design.md §7, RFC 5321 §2.3.8, §4.1.1.4, §4.5.2).
//
// go-smtp's DATA reader ends the data at CRLF "." CRLF and removes stuffed dots, but its state
// machine forgets a CR when a second CR follows it: after "\r\r" it is "in the middle of a
// line" and no longer sees "\r\n" as a line end, so "abc\r\r\n.\r\n" does not end the data (the
// client waits for a reply that never comes) and a stuffed dot after it is kept. We cannot
// replace that reader, but we see every byte it hands on, and while it is in the middle of a
// line or after a CR it hands on the client's bytes unchanged. bodyCheck therefore follows two
// machines over those bytes: go-smtp's (to know what it did with each byte) and the correct one
// (to find the true end of the data). They differ only after a bare CR, and a message with a
// bare CR (or a bare LF) is refused anyway: lines end with CRLF and nothing else, so no next
// hop that treats a lone CR or LF as a line end can read the message differently from us.
//
// One case stays invisible: go-smtp drops a "." followed by "\r" at the start of a line before
// it hands anything on, so ".\rX" arrives as "X". What we store and forward is then still free
// of bare CRs; only the client's malformed two bytes are gone.

import "bytes"

const (
	sLine  = iota // at the start of a line (after CRLF, or at the start of the data)
	sDot          // "." at the start of a line
	sDotCR        // ".\r" at the start of a line
	sCR           // after a CR
	sMid          // in the middle of a line
	sEnd          // after CRLF "." CRLF: the true end of the data
)

// bodyCheck follows the message bytes handed on by go-smtp. The zero value is ready for DATA;
// set chunked for BDAT content, which has neither dot-stuffing nor an end marker.
type bodyCheck struct {
	chunked bool
	maxLine int   // longest line in octets including its CRLF (BDAT only: go-smtp limits DATA lines itself); 0 = no limit
	max     int64 // most octets accepted; 0 = no limit

	g, t     uint8 // go-smtp's state (sLine, sCR or sMid) and the true state
	n        int64 // octets seen
	line     int   // octets of the current line so far
	bare     bool  // a CR not followed by LF, or an LF not preceded by CR
	longLine bool
}

// scan follows p, the next bytes go-smtp handed on. It returns how many of them belong to the
// message: fewer than len(p) only when the true end of the data lies inside p (after which
// go-smtp, which missed it, hands on whatever the client sends next).
func (b *bodyCheck) scan(p []byte) int {
	i := 0
	for i < len(p) {
		if b.g == sMid && b.t == sMid {
			// The common case: ordinary octets in the middle of a line, skipped with
			// bytes.IndexByte (vectorised) up to the next CR, then checked for a stray LF.
			j := bytes.IndexByte(p[i:], '\r')
			if j < 0 {
				j = len(p) - i
			}
			if k := bytes.IndexByte(p[i:i+j], '\n'); k >= 0 {
				j = k
			}
			b.line += j
			i += j
			if i == len(p) {
				break
			}
		}
		c := p[i]
		i++
		b.line++
		if c == '\n' {
			if b.maxLine > 0 && b.line > b.maxLine {
				b.longLine = true
			}
			b.line = 0
		}
		if b.chunked {
			// BDAT: raw octets, only CRLF pairing matters.
			if b.t == sCR && c != '\n' {
				b.bare = true
			}
			if b.t != sCR && c == '\n' {
				b.bare = true
			}
			if c == '\r' {
				b.t = sCR
			} else {
				b.t = sMid
			}
			continue
		}
		if b.g == sLine {
			// go-smtp dropped a leading "." (stuffing) if there was one; either way the true
			// machine, which is also at the start of a line here, ends where go-smtp does.
			switch c {
			case '\r':
				b.g, b.t = sCR, sCR
			case '\n':
				b.bare = true
				b.g, b.t = sMid, sMid
			default:
				b.g, b.t = sMid, sMid
			}
			continue
		}
		// go-smtp is after a CR or mid-line: c is exactly what the client sent.
		switch b.g {
		case sCR:
			if c == '\n' {
				b.g = sLine
			} else {
				b.g = sMid // go-smtp's slip: a CR after a CR should stay "after a CR"
			}
		default:
			if c == '\r' {
				b.g = sCR
			}
		}
		switch b.t {
		case sLine:
			switch c {
			case '.':
				b.t = sDot
			case '\r':
				b.t = sCR
			case '\n':
				b.bare, b.t = true, sMid
			default:
				b.t = sMid
			}
		case sDot:
			switch c {
			case '\r':
				b.t = sDotCR
			case '\n':
				b.bare, b.t = true, sMid
			default:
				b.t = sMid
			}
		case sDotCR, sCR:
			switch c {
			case '\n':
				if b.t == sDotCR {
					b.t = sEnd
					b.n += int64(i)
					return i
				}
				b.t = sLine
			case '\r':
				b.bare, b.t = true, sCR
			default:
				b.bare, b.t = true, sMid
			}
		default: // sMid
			switch c {
			case '\r':
				b.t = sCR
			case '\n':
				b.bare = true
			}
		}
	}
	b.n += int64(len(p))
	return len(p)
}

// ended reports whether the true end of the data has been seen (go-smtp missed it).
func (b *bodyCheck) ended() bool { return b.t == sEnd }

// tooBig reports whether more than max octets arrived.
func (b *bodyCheck) tooBig() bool { return b.max > 0 && b.n > b.max }

// finish is called when the content is complete (go-smtp's end of data, or the last BDAT
// chunk): content that stops after a CR ends with a bare CR.
func (b *bodyCheck) finish() {
	if b.chunked && b.t == sCR {
		b.bare = true
	}
	if b.maxLine > 0 && b.line > b.maxLine {
		b.longLine = true
	}
}
