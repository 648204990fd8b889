package message

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Reply is an SMTP reply as users see it in replies and log records: a three-digit code, an
// enhanced status code ("5.1.10", may be empty) and text that is safe to show to a peer.
type Reply struct {
	Code     int
	Enhanced string
	Text     string
	// Command is the command this reply answered, as the delivery client sent it ("RCPT
	// TO:<a@b>", "DATA", "." for the end of data); empty for the relay's own replies. Log
	// records carry it as response.command; it is never part of a reply sent to a peer.
	Command string
}

func (r Reply) String() string {
	if r.Enhanced == "" {
		return strconv.Itoa(r.Code) + " " + r.Text
	}
	return strconv.Itoa(r.Code) + " " + r.Enhanced + " " + r.Text
}

// Class is the first digit of the code: 2 success, 4 transient, 5 permanent.
func (r Reply) Class() int { return r.Code / 100 }

// EnhancedParts splits Enhanced into its three numbers; ok is false when it is absent or malformed
// (see ParseEnhanced).
func (r Reply) EnhancedParts() (class, subject, detail int, ok bool) {
	return ParseEnhanced(r.Enhanced)
}

// ParseEnhanced parses an enhanced status code (RFC 3463 §2): class "." subject "." detail, where
// class is 2, 4 or 5 and subject and detail have one to three digits. It is the relay's one parser
// of enhanced codes, for replies read from peers, plugin rejections and our own replies alike.
func ParseEnhanced(s string) (class, subject, detail int, ok bool) {
	// The longest valid code is "5.999.999"; checking the length first keeps a hostile string cheap.
	if len(s) < 5 || len(s) > 9 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.' {
		return 0, 0, 0, false
	}
	subject, rest, ok := digits(s[2:])
	if !ok || rest == "" || rest[0] != '.' {
		return 0, 0, 0, false
	}
	detail, rest, ok = digits(rest[1:])
	if !ok || rest != "" {
		return 0, 0, 0, false
	}
	return int(s[0] - '0'), subject, detail, true
}

// digits reads one to three decimal digits off the front of s.
func digits(s string) (n int, rest string, ok bool) {
	i := 0
	for i < len(s) && i < 3 && s[i] >= '0' && s[i] <= '9' {
		n = n*10 + int(s[i]-'0')
		i++
	}
	return n, s[i:], i > 0
}

// SplitEnhanced splits a leading enhanced status code off reply text: for code 550,
// "5.1.1 no such user" gives ("5.1.1", "no such user", true). The enhanced code's class must
// be the reply code's first digit (RFC 3463 §2, RFC 2034 §4); otherwise, or when the text
// does not start with a well-formed code followed by a space or the end, ok is false and rest
// is text unchanged.
func SplitEnhanced(code int, text string) (enhanced, rest string, ok bool) {
	enh, after, _ := strings.Cut(text, " ")
	class, _, _, valid := ParseEnhanced(enh)
	if !valid || class != code/100 {
		return "", text, false
	}
	return enh, after, true
}

// Error is the one error type for SMTP outcomes, at reception and at delivery. Reply is what a
// peer or a log reader sees; Cause carries the internal detail for diagnostics only and never
// reaches a reply. Retries are decided by Temporary, never by matching error text.
type Error struct {
	Reply
	Cause error
}

// Errorf builds an Error from a code, an enhanced code and formatted safe text.
func Errorf(code int, enhanced, format string, args ...any) *Error {
	return &Error{Reply: Reply{Code: code, Enhanced: enhanced, Text: fmt.Sprintf(format, args...)}}
}

// Wrap returns a copy of e that carries cause for diagnostics.
func (e *Error) Wrap(cause error) *Error {
	c := *e
	c.Cause = cause
	return &c
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Reply.String() + ": " + e.Cause.Error()
	}
	return e.Reply.String()
}

func (e *Error) Unwrap() error { return e.Cause }

// Temporary reports whether the outcome is worth retrying (4xx, or anything not 5xx).
func (e *Error) Temporary() bool { return e.Code/100 != 5 }

// AsError returns err as an *Error; anything else becomes a transient 451 4.4.0 with err as cause,
// because an unclassified failure must never destroy mail.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Reply: Reply{Code: 451, Enhanced: "4.4.0", Text: "temporary failure"}, Cause: err}
}
