// Package message holds the types every layer of the relay shares: the spooled message record,
// its spool id, and the one error type for SMTP outcomes (Reply / Error).
package message

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"time"
)

// ID is a spool id: 32 lower-case hex digits, like KumoMTA's, so log consumers feel at home.
// The first 8 bytes are the creation time in nanoseconds (big endian), so ids sort by age and a
// spool scan yields the oldest mail first; the last 8 bytes are random.
type ID string

// NewID returns a fresh, time-ordered spool id.
func NewID(now time.Time) ID {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	_, _ = rand.Read(b[8:])
	return ID(hex.EncodeToString(b[:]))
}

// Message is one spooled message: one envelope sender, one recipient (the relay spools one
// message per recipient, design.md §1), meta, and the scheduling state that survives a restart.
// The body is kept separately in the spool and loaded only for delivery.
type Message struct {
	ID        ID                `json:"id"`
	Sender    string            `json:"sender"`
	Recipient string            `json:"recipient"`
	Meta      map[string]string `json:"meta,omitempty"`
	Queue     string            `json:"queue"` // scheduled queue name, fixed at reception
	Created   time.Time         `json:"created"`
	Due       time.Time         `json:"due"`      // next attempt
	Attempts  int               `json:"attempts"` // attempts made so far
	Size      int               `json:"size"`     // body size in bytes
	// BodyID names the spooled body. The recipients of one transaction share one body.
	BodyID   ID     `json:"body_id"`
	Protocol string `json:"protocol"` // reception protocol: ESMTP or HTTP
	PeerName string `json:"peer_name,omitempty"`
	PeerAddr string `json:"peer_addr,omitempty"`
	// AuthnID is the user the client authenticated as (SMTP AUTH); "" when it did not.
	AuthnID string `json:"authn_id,omitempty"`
	// TLS is the session the message arrived over; nil for plain text.
	TLS *TLS `json:"tls,omitempty"`
	// Policy names the plugin generations ("router.wasm@3f2a…") whose message hook handled
	// this message at reception, in order.
	Policy []string `json:"policy,omitempty"`
	// DSN holds the client's delivery status notification parameters (RFC 3461); nil when it
	// gave none, which records from before the field existed also decode to.
	DSN *DSN `json:"dsn,omitempty"`
	// Failed is set on a message that ended without delivery (bounced or expired) while the
	// notification of its sender could not be spooled (no spool space): the message stays
	// spooled, is not attempted again, and its DSN is retried until it is spooled. nil
	// otherwise, which records from before the field existed also decode to.
	Failed *Failed `json:"failed,omitempty"`
}

// Failed is how a message ended, kept until its delivery status notification is spooled.
type Failed struct {
	Type  string `json:"type"`  // the log record that ended it: Bounce or Expiration
	Reply Reply  `json:"reply"` // that record's reply
	// Last is the reply of the attempt after which the message expired; zero otherwise.
	Last     Reply  `json:"last"`
	Site     string `json:"site,omitempty"`
	PeerName string `json:"peer_name,omitempty"` // the host that gave Reply or Last
	PeerAddr string `json:"peer_addr,omitempty"`
	// Notices counts the notifications refused so far (their retries back off).
	Notices int `json:"notices"`
	// Logged is set once the record of its end (Type) is in the log: a crash between the
	// mark and the record leaves it unset, and the record is written at the next retry.
	Logged bool `json:"logged,omitempty"`
}

// DSN is what a client asked of delivery status notifications (RFC 3461): the transaction's
// RET and ENVID from MAIL, and this recipient's NOTIFY and ORCPT from RCPT. Values are stored
// decoded (xtext removed), as go-smtp hands them over.
type DSN struct {
	// Ret is "FULL" or "HDRS" (RFC 3461 §4.3); "" when absent.
	Ret string `json:"ret,omitempty"`
	// EnvID is the envelope identifier (RFC 3461 §4.4), printable ASCII; "" when absent.
	EnvID string `json:"envid,omitempty"`
	// Notify is "NEVER" alone or some of "SUCCESS", "FAILURE", "DELAY" (RFC 3461 §4.1); nil
	// when absent, which means FAILURE and DELAY.
	Notify []string `json:"notify,omitempty"`
	// ORcptType and ORcpt are the ORCPT parameter (RFC 3461 §4.2): address type ("RFC822" or
	// "UTF-8", RFC 6533) and original recipient; "" when absent.
	ORcptType string `json:"orcpt_type,omitempty"`
	ORcpt     string `json:"orcpt,omitempty"`
}

// Notify values (RFC 3461 §4.1).
const (
	NotifyNever   = "NEVER"
	NotifySuccess = "SUCCESS"
	NotifyFailure = "FAILURE"
	NotifyDelay   = "DELAY"
)

// WantsFailureDSN reports whether a failure of m should be reported to its sender: never for
// the null sender (RFC 5321 §4.5.5: no notification about a notification), and otherwise
// unless the client's NOTIFY left FAILURE out (NEVER included). Without NOTIFY the default
// is FAILURE and DELAY (RFC 3461 §4.1).
func (m *Message) WantsFailureDSN() bool {
	if m.Sender == "" {
		return false
	}
	if m.DSN == nil || len(m.DSN.Notify) == 0 {
		return true
	}
	for _, n := range m.DSN.Notify {
		if n == NotifyFailure {
			return true
		}
	}
	return false
}

// TLS names a TLS session's protocol version ("TLS1.3") and cipher suite (IANA name).
type TLS struct {
	Version string `json:"version"`
	Cipher  string `json:"cipher"`
}

// Batch is messages that share one body: the recipients of one SMTP transaction that went
// through the message hook together (one recipient domain, design.md §7).
type Batch struct {
	Msgs []*Message
	Body []byte
}

// ErrNotInSpool is what a store returns for a message (or body) it does not hold: one that
// was delivered or removed meanwhile.
var ErrNotInSpool = errors.New("message not in spool")

// Key is an ID in binary form: the 16 bytes its 32 hex digits spell. The queue keeps a Key, not
// the ID's string, for each message waiting for its next attempt (half the bytes, and no
// allocation of its own).
type Key [16]byte

// Key returns id's binary form; ok is false for an id that is not 32 lower-case hex digits
// (records written by hand, tests), which has none.
func (id ID) Key() (k Key, ok bool) {
	if len(id) != 2*len(k) {
		return k, false
	}
	for i := range k {
		hi, ok1 := unhex(id[2*i])
		lo, ok2 := unhex(id[2*i+1])
		if !ok1 || !ok2 {
			return Key{}, false
		}
		k[i] = hi<<4 | lo
	}
	return k, true
}

// unhex is a lower-case hex digit's value; upper case would not survive the round trip through
// Key.ID.
func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// ID returns the id k is the binary form of.
func (k Key) ID() ID { return ID(hex.EncodeToString(k[:])) }

// Sched is the part of a spooled message record that scheduling needs: what the queue holds for
// a message waiting for its next attempt, and the spool reads at start-up (the rest of the
// record is read again from the spool when the attempt starts). Its JSON names are Message's.
type Sched struct {
	ID       ID        `json:"id"`
	Queue    string    `json:"queue"`
	Created  time.Time `json:"created"`
	Due      time.Time `json:"due"`
	Attempts int       `json:"attempts"`
	BodyID   ID        `json:"body_id"`
}

// MapKey is a Key to index id by in a map: its binary form, or for an id that is not a spool id
// (Key's ok false) a digest of it, which no spool id's binary form meets in practice (2^-128).
func (id ID) MapKey() Key {
	if k, ok := id.Key(); ok {
		return k
	}
	sum := sha256.Sum256([]byte(id))
	return Key(sum[:16])
}
