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
}

func (r Reply) String() string {
	if r.Enhanced == "" {
		return strconv.Itoa(r.Code) + " " + r.Text
	}
	return strconv.Itoa(r.Code) + " " + r.Enhanced + " " + r.Text
}

// Class is the first digit of the code: 2 success, 4 transient, 5 permanent.
func (r Reply) Class() int { return r.Code / 100 }

// EnhancedParts splits Enhanced into its three numbers; ok is false when it is absent or malformed.
func (r Reply) EnhancedParts() (class, subject, detail int, ok bool) {
	p := strings.Split(r.Enhanced, ".")
	if len(p) != 3 {
		return 0, 0, 0, false
	}
	var n [3]int
	for i, s := range p {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return 0, 0, 0, false
		}
		n[i] = v
	}
	return n[0], n[1], n[2], true
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
