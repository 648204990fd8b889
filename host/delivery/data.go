package delivery

import (
	"bufio"
	"bytes"
	"net/textproto"
	"strconv"
)

// writeData writes body as the content of DATA (RFC 5321 §4.5.2: a line starting with "." gets
// one more, and "." CRLF ends the data) and flushes. It writes exactly what net/textproto's
// DotWriter would, which also ends a bare LF with CR and closes a last line that lacks CRLF;
// but the DotWriter copies byte by byte, and message bodies are almost always CRLF-clean
// (reception refuses bare CR and LF, RFC 5321 §2.3.8), so such a body is copied in runs between
// the lines that start with a dot.
func writeData(w *bufio.Writer, body []byte) error {
	if !crlfClean(body) {
		dw := textproto.NewWriter(w).DotWriter()
		if _, err := dw.Write(body); err != nil {
			return err
		}
		return dw.Close()
	}
	rest := body
	if len(rest) > 0 && rest[0] == '.' {
		w.WriteByte('.')
	}
	for {
		i := bytes.Index(rest, dotLine)
		if i < 0 {
			w.Write(rest)
			break
		}
		w.Write(rest[:i+1]) // through the LF
		w.WriteByte('.')
		rest = rest[i+1:] // from the line's own dot
	}
	if len(body) > 0 && body[len(body)-1] == '\n' {
		w.WriteString(".\r\n")
	} else {
		w.WriteString("\r\n.\r\n") // the last line (or an empty body) ends first
	}
	return w.Flush()
}

var dotLine = []byte("\n.")

// crlfClean reports whether every CR in b is followed by LF and every LF follows a CR: with
// as many CRs as LFs and a CR before every LF, no CR is left over to stand alone.
func crlfClean(b []byte) bool {
	if bytes.Count(b, cr) != bytes.Count(b, lf) {
		return false
	}
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return true
		}
		i += j
		if i == 0 || b[i-1] != '\r' {
			return false
		}
		i++
	}
}

var cr, lf = []byte{'\r'}, []byte{'\n'}

// maxPipelinedChunk is the largest body sent in the same write as its envelope. A server that
// refuses the sender or the recipient must still read the whole chunk (RFC 3030 §2), so a
// larger body waits for the envelope's replies: one more round trip, small beside the
// transfer, and no megabytes pushed at a server that has already said no.
const maxPipelinedChunk = 64 << 10

// chunkable reports whether body goes out as one BDAT chunk exactly as DATA would deliver it:
// not empty, CRLF-clean and ending in CRLF (writeData would repair anything else).
func chunkable(body []byte) bool {
	return len(body) > 0 && body[len(body)-1] == '\n' && crlfClean(body)
}

// writeChunk writes body as the only and last chunk of BDAT (RFC 3030 §2): the command with
// the chunk's size in octets, then the octets as they are.
func writeChunk(w *bufio.Writer, body []byte) {
	var n [20]byte
	w.WriteString("BDAT ")
	w.Write(strconv.AppendInt(n[:0], int64(len(body)), 10))
	w.WriteString(" LAST\r\n")
	w.Write(body)
}
