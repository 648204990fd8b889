// Package bounce builds the delivery status notifications (DSN, RFC 3464) the relay sends to a
// message's sender when the message bounces or expires, or when it was relayed to a next hop
// without DSN although the client asked for NOTIFY=SUCCESS (a "relayed" DSN, RFC 3461 §5.2.2):
// a multipart/report (RFC 6522) with a human-readable part, a message/delivery-status part, and
// the original message's header block (text/rfc822-headers) or, when the client asked with
// RET=FULL (RFC 3461 §4.3) and the message failed, the whole message (message/rfc822).
//
// A DSN has the null envelope sender, so it can never cause another one (RFC 5321 §4.5.5,
// RFC 3461 §6.2), comes From MAILER-DAEMON@hostname and says Auto-Submitted: auto-replied
// (RFC 3834 §5). The relay spools one message per recipient, so a DSN reports one recipient.
//
// Messages whose sender or recipient is not ASCII (SMTPUTF8, RFC 6531) get the RFC 6533 forms:
// the "utf-8" address type in message/global-delivery-status, message/global-headers and
// message/global.
package bounce

import (
	"bytes"
	"fmt"
	"mime"
	"slices"
	"strings"
	"time"

	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"

	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/route"
)

// Meta keys of a generated DSN, visible in its log records and to anything that reads the
// spooled message's meta.
const (
	// MetaBounceType is "dsn" on every DSN the relay generates.
	MetaBounceType = "bounce_type"
	// MetaBounceOf is the spool id of the message the DSN reports on.
	MetaBounceOf = "bounce_of"
)

// TypeDSN is MetaBounceType's value on a delivery status notification.
const TypeDSN = "dsn"

// Protocol is the reception protocol of a generated DSN (the Reception record's
// reception_protocol).
const Protocol = "DSN"

// MaxHeaderBlock caps the returned header block (text/rfc822-headers): a header section longer
// than this is cut at the last whole field that fits. Real header sections are a few KiB even
// with long DKIM and ARC chains; the cap keeps a hostile message from making a huge DSN.
const MaxHeaderBlock = 64 << 10

// DefaultMaxReturnedSize is the largest message returned whole on RET=FULL; a larger one is
// returned as its header block, as Exim (bounce_return_size_limit, 100K) and Postfix
// (bounce_size_limit) do.
const DefaultMaxReturnedSize = 100 << 10

// Options are the relay-wide settings of DSNs.
type Options struct {
	// Hostname is the relay's name: Reporting-MTA, the From address MAILER-DAEMON@Hostname
	// and the Message-ID's right-hand side.
	Hostname string
	// MaxReturnedSize is the largest original message returned whole when RET=FULL was given;
	// 0 means never (always the header block).
	MaxReturnedSize int
	// Tenant, when set, is the DSN's meta "tenant", so its queue is "tenant@domain" and
	// get_queue_config can tell DSNs from other mail to the same domain.
	Tenant string
}

// Failure is what a DSN reports of one recipient: a failed delivery, or with Relayed a
// delivery to a next hop that will not report further.
type Failure struct {
	Msg *message.Message // the message that failed (its sender gets the DSN)
	// Expired is set when the message ran out of time (Status 4.4.7) rather than bounced.
	Expired bool
	// Relayed is set when the message did not fail: it was delivered to a next hop that does
	// not offer DSN, so no notification of its final delivery can follow (Action relayed,
	// Status 2.0.0; RFC 3461 §5.2.2). Reply is then the next hop's acceptance.
	Relayed bool
	// Reply is the bounce's reply (the remote's, or the relay's own), or on expiry the last
	// attempt's reply (zero when not known, e.g. after a restart).
	Reply message.Reply
	// RemoteMTA is the name of the host that gave Reply; "" when no host did.
	RemoteMTA string
	// LastAttempt is when Reply was obtained; zero when no attempt is known.
	LastAttempt time.Time
}

// New builds the DSN for f: its spool record (null sender, to f.Msg's sender, meta
// bounce_type=dsn, queued as mail to the sender's domain) and its body. original is the
// failed message as spooled (nil when its body is gone: the DSN then carries no copy).
func New(opt Options, f Failure, original []byte, now time.Time) (*message.Message, []byte, error) {
	if f.Msg.Sender == "" {
		return nil, nil, fmt.Errorf("bounce: message %s has the null sender: no DSN", f.Msg.ID)
	}
	_, domain, err := route.ParseMailbox(f.Msg.Sender)
	if err != nil {
		return nil, nil, fmt.Errorf("bounce: sender of %s: %w", f.Msg.ID, err)
	}
	id := message.NewID(now)
	body, err := Build(opt, f, original, id, now)
	if err != nil {
		return nil, nil, err
	}
	meta := map[string]string{MetaBounceType: TypeDSN, MetaBounceOf: string(f.Msg.ID)}
	if opt.Tenant != "" {
		meta[route.MetaTenant] = opt.Tenant
	}
	m := &message.Message{
		ID:        id,
		Sender:    "",
		Recipient: f.Msg.Sender,
		Meta:      meta,
		Queue:     route.QueueName(meta, domain),
		Created:   now,
		Due:       now,
		Size:      len(body),
		Protocol:  Protocol,
	}
	return m, body, nil
}

// Build writes the DSN message for f (RFC 3464, RFC 6522): id is its Message-ID's left-hand
// side and its MIME boundary, now its Date. original is the failed message (nil: not known).
func Build(opt Options, f Failure, original []byte, id message.ID, now time.Time) ([]byte, error) {
	m := f.Msg
	global := nonASCII(m.Sender) || nonASCII(m.Recipient) || (m.DSN != nil && nonASCII(m.DSN.ORcpt))
	origHeaders := headerBlock(original)
	top := []string{
		"Date", now.Format(time.RFC1123Z),
		"From", "Mail Delivery System <MAILER-DAEMON@" + opt.Hostname + ">",
		"To", "<" + addr(m.Sender, true) + ">",
		"Subject", subject(f),
		"Message-ID", "<" + string(id) + "@" + opt.Hostname + ">",
	}
	// RFC 3834 §3.1.5: an automatic response should reference the message it answers.
	if mid := messageID(origHeaders); mid != "" {
		top = append(top, "In-Reply-To", mid, "References", mid)
	}
	// RFC 6522 §3: report-type names the second part's subtype, global-delivery-status for the
	// RFC 6533 form.
	reportType := "delivery-status"
	if global {
		reportType = "global-delivery-status"
	}
	top = append(top,
		"Auto-Submitted", "auto-replied", // RFC 3834 §5
		"MIME-Version", "1.0",
		"Content-Type", contentType("multipart/report", map[string]string{
			"report-type": reportType,
			"boundary":    "wasmta-dsn-" + string(id),
		}),
	)
	var b bytes.Buffer
	w, err := gomessage.CreateWriter(&b, header(top...))
	if err != nil {
		return nil, err
	}

	// RET=FULL asks for the content in a DSN of failure; one that reports no failure returns
	// the headers only (RFC 3461 §4.3).
	retFull := m.DSN != nil && m.DSN.Ret == "FULL" && !f.Relayed
	// Why the whole message, asked for, is not returned ("" when it is, or was not asked for).
	var cut string
	switch {
	case !retFull || original == nil:
	case opt.MaxReturnedSize == 0:
		cut = "this relay does not return whole messages" // bounce.max_returned_size = 0
	case len(original) > opt.MaxReturnedSize:
		cut = fmt.Sprintf("it is larger than %d octets", opt.MaxReturnedSize)
	case longLine(original):
		// Reception takes lines up to smtp.max_line_length, but a message/rfc822 part is 7bit
		// or 8bit, at most 998 octets a line, and may not be encoded (RFC 2046 §5.2.1).
		cut = fmt.Sprintf("it has lines longer than %d octets", maxLine)
	}
	full := retFull && original != nil && cut == ""

	// Part 1: for people.
	text := humanText(opt, f, original != nil, full, cut)
	th := []string{"Content-Type", contentType("text/plain", map[string]string{"charset": "us-ascii"})}
	if nonASCII(text) {
		th = []string{"Content-Type", contentType("text/plain", map[string]string{"charset": "utf-8"}),
			"Content-Transfer-Encoding", "quoted-printable"}
	}
	if err := part(w, header(append(th, "Content-Description", "Notification")...), []byte(text)); err != nil {
		return nil, err
	}

	// Part 2: for programs (RFC 3464 §2).
	sh := []string{"Content-Type", "message/delivery-status"}
	if global {
		sh = []string{"Content-Type", "message/global-delivery-status", "Content-Transfer-Encoding", "8bit"} // RFC 6533 §6.2
	}
	status, err := deliveryStatus(opt, f, global)
	if err != nil {
		return nil, err
	}
	if err := part(w, header(append(sh, "Content-Description", "Delivery report")...), status); err != nil {
		return nil, err
	}

	// Part 3, optional (RFC 3464 §2): what is returned of the message.
	if original != nil {
		typ, desc, content := "text/rfc822-headers", "Undelivered message headers", origHeaders // RFC 6522 §4
		if f.Relayed {
			desc = "Relayed message headers"
		}
		utf8Headers := nonASCII(string(origHeaders))
		switch {
		case full && utf8Headers:
			typ, desc, content = "message/global", "Undelivered message", original // RFC 6532 §3.7
		case full:
			typ, desc, content = "message/rfc822", "Undelivered message", original
		case utf8Headers:
			typ = "message/global-headers" // RFC 6533 §6.3
		}
		// message/rfc822 cannot be base64 or quoted-printable (RFC 2046 §5.2.1): the octets go
		// as they are, declared 8bit when they need it. A header block with a line over 998
		// octets (which 7bit and 8bit forbid) is quoted-printable, which text/rfc822-headers
		// and message/global-headers (RFC 6533 §6.3) allow: it decodes to the very octets
		// received, where a line broken in two would split a field.
		cte := "7bit"
		switch {
		case !full && longLine(content):
			cte = "quoted-printable"
		case nonASCII(string(content)):
			cte = "8bit"
		}
		rh := header("Content-Type", typ, "Content-Transfer-Encoding", cte, "Content-Description", desc)
		if err := part(w, rh, content); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	out := b.Bytes()
	// A multipart's Content-Transfer-Encoding is the domain of all it holds (RFC 2045 §6.2,
	// §6.4; absent, 7bit): with an 8bit part inside, the top says 8bit. go-message drops the
	// field from a multipart header, so it goes in after, at the end of the header (whose
	// values are the relay's own or cleaned of line breaks, so its first blank line is its
	// end).
	if nonASCII(string(out)) {
		end := bytes.Index(out, []byte("\r\n\r\n")) + 2
		out = slices.Concat(out[:end], []byte("Content-Transfer-Encoding: 8bit\r\n"), out[end:])
	}
	return out, nil
}

func subject(f Failure) string {
	if f.Relayed {
		return "Delivery Status Notification (relayed)"
	}
	if f.Expired {
		return "Undelivered Mail Returned to Sender (delivery time expired)"
	}
	return "Undelivered Mail Returned to Sender"
}

// humanText is the first part: what happened, in words.
func humanText(opt Options, f Failure, haveOriginal, full bool, cut string) string {
	m := f.Msg
	var b strings.Builder
	fmt.Fprintf(&b, "This is the mail system at host %s.\r\n\r\n", opt.Hostname)
	switch {
	case f.Relayed:
		b.WriteString("Your message to the recipient below was relayed to a mail server that does\r\n" +
			"not offer delivery status notifications, so you will not be told whether it\r\n" +
			"reaches the recipient in the end.\r\n\r\n")
	case f.Expired:
		b.WriteString("Your message could not be delivered before it expired, and the relay has\r\n" +
			"stopped trying. No further attempts will be made.\r\n\r\n")
	default:
		b.WriteString("Your message could not be delivered to the recipient below, and no\r\n" +
			"further attempts will be made.\r\n\r\n")
	}
	// The reply goes on a line of its own: with the address and host names before it, a
	// long one could pass 998 octets.
	fmt.Fprintf(&b, "<%s>:\r\n", addr(m.Recipient, true))
	switch {
	case f.Expired && f.Reply.Code != 0 && f.RemoteMTA != "":
		fmt.Fprintf(&b, "delivery time expired; the last attempt, at host %s, got:\r\n    %s", printable(f.RemoteMTA), printable(f.Reply.String()))
	case f.Expired && f.Reply.Code != 0:
		fmt.Fprintf(&b, "delivery time expired; the last attempt got:\r\n    %s", printable(f.Reply.String()))
	case f.Expired:
		b.WriteString("delivery time expired")
	case f.Relayed && f.RemoteMTA != "":
		fmt.Fprintf(&b, "relayed to host %s, which said:\r\n    %s", printable(f.RemoteMTA), printable(f.Reply.String()))
	case f.RemoteMTA != "":
		fmt.Fprintf(&b, "host %s said:\r\n    %s", printable(f.RemoteMTA), printable(f.Reply.String()))
	default:
		fmt.Fprintf(&b, "    %s", printable(f.Reply.String()))
	}
	b.WriteString("\r\n\r\n")
	switch {
	case full:
		b.WriteString("The delivery report and your message are attached.\r\n")
	case cut != "":
		fmt.Fprintf(&b, "The delivery report and your message's headers are attached (the whole\r\n"+
			"message was asked for, but %s).\r\n", cut)
	case haveOriginal:
		b.WriteString("The delivery report and your message's headers are attached.\r\n")
	default:
		b.WriteString("The delivery report is attached; your message is no longer available.\r\n")
	}
	return b.String()
}

// deliveryStatus is the message/delivery-status body: the per-message fields, a blank line,
// the recipient's fields (RFC 3464 §2.2, §2.3, in the order of its grammar).
func deliveryStatus(opt Options, f Failure, global bool) ([]byte, error) {
	m := f.Msg
	var b bytes.Buffer
	var perMsg []string
	if m.DSN != nil && m.DSN.EnvID != "" {
		perMsg = append(perMsg, "Original-Envelope-Id", printable(m.DSN.EnvID)) // §2.2.1
	}
	perMsg = append(perMsg, "Reporting-MTA", "dns; "+opt.Hostname)
	if m.PeerName != "" {
		// §2.2.4: the MTA the message came from, as it named itself (its EHLO name).
		perMsg = append(perMsg, "Received-From-MTA", "dns; "+printable(m.PeerName))
	}
	perMsg = append(perMsg, "Arrival-Date", m.Created.Format(time.RFC1123Z))
	if err := writeFields(&b, perMsg); err != nil {
		return nil, err
	}

	var rcpt []string
	if d := m.DSN; d != nil && d.ORcpt != "" {
		// §2.3.1: the ORCPT as the client gave it (decoded from xtext).
		typ := strings.ToLower(d.ORcptType)
		if typ == "" {
			typ = "rfc822"
		}
		rcpt = append(rcpt, "Original-Recipient", typ+"; "+addr(d.ORcpt, global))
	}
	rcpt = append(rcpt,
		"Final-Recipient", addrType(m.Recipient)+"; "+addr(m.Recipient, global),
		"Action", action(f),
		"Status", status(f),
	)
	if f.RemoteMTA != "" {
		rcpt = append(rcpt, "Remote-MTA", "dns; "+printable(f.RemoteMTA))
	}
	if f.Reply.Code != 0 {
		// §2.3.6: every outcome the relay reports is an SMTP reply, the remote's or its own
		// in the same form; Remote-MTA tells which.
		rcpt = append(rcpt, "Diagnostic-Code", "smtp; "+printable(f.Reply.String()))
	}
	if !f.LastAttempt.IsZero() {
		rcpt = append(rcpt, "Last-Attempt-Date", f.LastAttempt.Format(time.RFC1123Z))
	}
	// §2.3.8: the relay's own id of the failed message, which its log records carry.
	rcpt = append(rcpt, "Final-Log-ID", string(m.ID))
	if err := writeFields(&b, rcpt); err != nil {
		return nil, err
	}
	// The blank line after the last block would only sit before the boundary's own CRLF.
	return bytes.TrimSuffix(b.Bytes(), []byte("\r\n")), nil
}

// action is the Action field (RFC 3464 §2.3.3).
func action(f Failure) string {
	if f.Relayed {
		return "relayed"
	}
	return "failed"
}

// status is the Status field (RFC 3464 §2.3.4, RFC 3463): the bounce's enhanced code when it
// has a well-formed permanent one, else 5.0.0; 4.4.7 "delivery time expired" on expiry; 2.0.0
// for a relayed message (the next hop's own code says nothing of the final delivery).
func status(f Failure) string {
	if f.Relayed {
		return "2.0.0"
	}
	if f.Expired {
		return "4.4.7"
	}
	if class, _, _, ok := f.Reply.EnhancedParts(); ok && class == 5 {
		return f.Reply.Enhanced
	}
	return "5.0.0"
}

// addrType is the address type of a recipient (RFC 3464 §2.3.2; "utf-8" RFC 6533 §3).
func addrType(a string) string {
	if nonASCII(a) {
		return "utf-8"
	}
	return "rfc822"
}

// addr keeps an address fit for a field: UTF-8 only in the global forms, never controls.
func addr(a string, global bool) string {
	if global {
		return strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return '?'
			}
			return r
		}, clip(a))
	}
	return printable(a)
}

// maxText caps a value taken from a peer (a reply's text, an EHLO name, ENVID, ORCPT), so that
// a field stays under 998 octets per line however it folds: a remote reply may be 64KiB.
const maxText = 900

// clip cuts s to maxText octets at a UTF-8 boundary, marking the cut.
func clip(s string) string {
	if len(s) <= maxText {
		return s
	}
	return strings.ToValidUTF8(s[:maxText-3], "") + "..."
}

// printable replaces what may not appear in a header field of a plain (ASCII) report:
// controls (a CR or LF would end the field) and non-ASCII octets.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r >= 0x7f {
			return '?'
		}
		return r
	}, clip(s))
}

func nonASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return true
		}
	}
	return false
}

// header builds a header with fields in the order given as key, value pairs, with keys
// spelled as given ("Reporting-MTA", not go-message's canonical "Reporting-Mta"). go-message
// writes fields in the reverse order of adding, hence the reversed loop.
func header(kv ...string) gomessage.Header {
	var h gomessage.Header
	for i := len(kv) - 2; i >= 0; i -= 2 {
		h.AddRaw(fold(kv[i], kv[i+1]))
	}
	return h
}

// fold formats one field, folding at spaces before 78 octets where it can (RFC 5322 §2.1.1,
// §2.2.3). Values are bounded (maxText), so a line never exceeds 998 octets. It folds only
// before a word: folding inside a run of spaces (a peer's value may have hundreds) would make
// lines of white space only, which RFC 5322 §3.2.2 forbids and a receiver may take for the
// blank line that ends the header section.
func fold(k, v string) []byte {
	b := make([]byte, 0, len(k)+len(v)+8)
	b = append(b, k...)
	b = append(b, ':')
	line := len(b)
	for i, w := range strings.Split(v, " ") {
		if i > 0 && w != "" && line+1+len(w) > 78 {
			b = append(b, "\r\n"...)
			line = 0
		}
		b = append(b, ' ')
		b = append(b, w...)
		line += 1 + len(w)
	}
	return append(b, "\r\n"...)
}

// contentType formats a Content-Type value.
func contentType(t string, params map[string]string) string { return mime.FormatMediaType(t, params) }

// writeFields writes one block of a delivery-status body: the fields (folded by go-message
// where long) and the blank line that ends the block.
func writeFields(b *bytes.Buffer, kv []string) error {
	return textproto.WriteHeader(b, header(kv...).Header)
}

// part writes one body part with header h.
func part(w *gomessage.Writer, h gomessage.Header, body []byte) error {
	pw, err := w.CreatePart(h)
	if err != nil {
		return err
	}
	if _, err := pw.Write(body); err != nil {
		return err
	}
	return pw.Close()
}

// maxLine is the longest line, CRLF excluded, a 7bit or 8bit part may carry (RFC 5322 §2.1.1,
// RFC 2045 §2.7).
const maxLine = 998

// longLine reports whether b has a line longer than maxLine octets.
func longLine(b []byte) bool {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return len(b) > maxLine
		}
		if len(bytes.TrimSuffix(b[:i], []byte("\r"))) > maxLine {
			return true
		}
		b = b[i+1:]
	}
	return false
}

// fieldsEnd is where msg's header section ends: at the blank line that ends it, or at the
// first line that is neither a field nor a field's folded continuation (a message sent
// without a header section: its text follows the relay's Received field directly), or at the
// end of a message that is all fields. A header block taken past it would not parse as one
// and would return text the sender did not ask back.
func fieldsEnd(msg []byte) int {
	n := 0
	for n < len(msg) {
		line := msg[n:]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i+1]
		}
		content := bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		cont := n > 0 && len(content) > 0 && (content[0] == ' ' || content[0] == '\t')
		if !cont && !isField(content) {
			return n
		}
		n += len(line)
	}
	return n
}

// isField reports whether line starts a header field: a name of printable ASCII other than
// ':' (RFC 5322 §2.2; white space before the colon is obsolete syntax, §4.5), then ':'.
func isField(line []byte) bool {
	name, _, ok := bytes.Cut(line, []byte(":"))
	name = bytes.TrimRight(name, " \t")
	if !ok || len(name) == 0 {
		return false
	}
	for _, c := range name {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// headerBlock returns the header section of a message (see fieldsEnd), without the blank line
// that ends it, cut to MaxHeaderBlock at a field boundary.
func headerBlock(msg []byte) []byte {
	if msg == nil {
		return nil
	}
	h := msg[:fieldsEnd(msg)]
	if len(h) <= MaxHeaderBlock {
		return h
	}
	// Cut after the last CRLF within the cap that starts a new field (not a folded line).
	for i := MaxHeaderBlock - 2; i > 0; i-- {
		if h[i] == '\r' && h[i+1] == '\n' && i+2 < len(h) && h[i+2] != ' ' && h[i+2] != '\t' {
			return h[:i+2]
		}
	}
	return []byte{}
}

// messageID returns the original's Message-ID when it is one msg-id (RFC 5322 §3.6.4), else "".
func messageID(headers []byte) string {
	for len(headers) > 0 {
		line := headers
		if i := bytes.Index(headers, []byte("\r\n")); i >= 0 {
			line, headers = headers[:i], headers[i+2:]
		} else {
			headers = nil
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || !strings.EqualFold(string(bytes.TrimSpace(k)), "Message-ID") {
			continue
		}
		id := strings.TrimSpace(string(v))
		if len(id) < 3 || len(id) > 250 || id[0] != '<' || id[len(id)-1] != '>' ||
			strings.ContainsAny(id[1:len(id)-1], "<> \t") || printable(id) != id {
			return "" // folded, several, or malformed: referencing it could do harm
		}
		return id
	}
	return ""
}
