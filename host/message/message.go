// Package message holds the types every layer of the relay shares: the spooled message record,
// its spool id, and the one error type for SMTP outcomes (Reply / Error).
package message

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
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
}

// TLS names a TLS session's protocol version ("TLS1.3") and cipher suite (IANA name).
type TLS struct {
	Version string `json:"version"`
	Cipher  string `json:"cipher"`
}
