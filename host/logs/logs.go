// Package logs writes the relay's JSON-lines log records (design.md §9): one record per event in a
// file under [logs] dir. Field names follow KumoMTA's log records so existing consumers work.
//
// Each record is written with one write(2) under a mutex and no user-space buffer, so a record
// that was written survives the process being killed (kill -9); it is not fsynced.
package logs

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/wasmta/wasmta/host/message"
)

// Record types.
const (
	Reception        = "Reception"
	Delivery         = "Delivery"
	TransientFailure = "TransientFailure"
	Bounce           = "Bounce"
	Expiration       = "Expiration"
	AdminBounce      = "AdminBounce"
	AdminRebind      = "AdminRebind"
	Rejection        = "Rejection"
)

// Record is one log line.
type Record struct {
	Type              string            `json:"type"`
	ID                string            `json:"id"`
	Sender            string            `json:"sender"`
	Recipient         string            `json:"recipient"`
	Queue             string            `json:"queue"`
	Site              string            `json:"site"`
	Size              int               `json:"size"`
	Response          Response          `json:"response"`
	PeerAddress       *PeerAddress      `json:"peer_address"`
	Timestamp         int64             `json:"timestamp"`
	EventTime         string            `json:"event_time"`
	Created           int64             `json:"created"`
	NumAttempts       int               `json:"num_attempts"`
	Meta              map[string]string `json:"meta"`
	ReceptionProtocol string            `json:"reception_protocol,omitempty"`
	DeliveryProtocol  string            `json:"delivery_protocol,omitempty"`
	// Policy names the plugin generations that handled the message at reception.
	Policy []string `json:"policy,omitempty"`
	// AuthnID is the SMTP AUTH identity of the client (Reception).
	AuthnID string `json:"authn_id,omitempty"`
	// TLS is the session's TLS (Reception: the client's inbound session).
	TLS *TLS `json:"tls,omitempty"`
}

// TLS is the TLS of the connection an event happened on (design.md §12).
type TLS struct {
	Version string `json:"version"` // "TLS1.2", "TLS1.3"
	Cipher  string `json:"cipher"`  // IANA name, e.g. TLS_AES_128_GCM_SHA256
	// Verified: the peer's certificate was checked (delivery); absent on reception.
	Verified *bool `json:"verified,omitempty"`
}

// Response is the SMTP reply of the event.
type Response struct {
	Code         int           `json:"code"`
	EnhancedCode *EnhancedCode `json:"enhanced_code"`
	Content      string        `json:"content"`
}

// EnhancedCode is RFC 3463's class.subject.detail.
type EnhancedCode struct {
	Class   int `json:"class"`
	Subject int `json:"subject"`
	Detail  int `json:"detail"`
}

// PeerAddress is the EHLO name and IP of the client on reception, the MX name and IP on delivery.
type PeerAddress struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
}

// ResponseOf converts a reply into a log response.
func ResponseOf(r message.Reply) Response {
	out := Response{Code: r.Code, Content: r.Text}
	if c, s, d, ok := r.EnhancedParts(); ok {
		out.EnhancedCode = &EnhancedCode{Class: c, Subject: s, Detail: d}
	}
	return out
}

// For fills the message fields of a record.
func For(typ string, m *message.Message, r message.Reply) Record {
	rec := Record{
		Type:              typ,
		ID:                string(m.ID),
		Sender:            m.Sender,
		Recipient:         m.Recipient,
		Queue:             m.Queue,
		Size:              m.Size,
		Response:          ResponseOf(r),
		Created:           m.Created.Unix(),
		NumAttempts:       m.Attempts,
		Meta:              m.Meta,
		ReceptionProtocol: m.Protocol,
		Policy:            m.Policy,
	}
	if rec.Meta == nil {
		rec.Meta = map[string]string{}
	}
	if typ == Reception {
		// How the message came in; other records describe their own connection.
		rec.AuthnID = m.AuthnID
		if m.TLS != nil {
			rec.TLS = &TLS{Version: m.TLS.Version, Cipher: m.TLS.Cipher}
		}
	}
	return rec
}

// Logger appends records to a JSON-lines file.
type Logger struct {
	mu   sync.Mutex
	f    *os.File
	path string
	buf  []byte
	now  func() time.Time
	// observe sees every record Log writes (metrics count them, so they agree with the log);
	// nil costs one comparison.
	observe func(*Record)
}

// Open creates dir if needed and opens a new log file in it named after the start time.
func Open(dir string) (*Logger, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	name := fmt.Sprintf("wasmta-%s-%d.jsonl", time.Now().UTC().Format("20060102T150405"), os.Getpid())
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	return &Logger{f: f, path: path, now: time.Now}, nil
}

// Observe makes f see every record Log writes, after its timestamps are set. f runs on the
// caller's goroutine and must be quick. Call it before the logger is shared.
func (l *Logger) Observe(f func(*Record)) { l.observe = f }

// Path is the file being written.
func (l *Logger) Path() string { return l.path }

// Log writes one record, filling its timestamps.
func (l *Logger) Log(r Record) {
	if l == nil {
		return
	}
	now := l.now()
	r.Timestamp = now.Unix()
	r.EventTime = now.UTC().Format(time.RFC3339Nano)
	l.write(r)
	if l.observe != nil {
		l.observe(&r)
	}
}

// PluginReload records a plugin reload attempt: the generation now serving, the one before,
// and the error when the new version was refused (the old one then keeps serving).
type PluginReload struct {
	Type       string `json:"type"` // "PluginReload"
	Plugin     string `json:"plugin"`
	Path       string `json:"path"`
	Generation string `json:"generation"`
	Previous   string `json:"previous,omitempty"`
	Error      string `json:"error,omitempty"`
	Reason     string `json:"reason"`
	Timestamp  int64  `json:"timestamp"`
	EventTime  string `json:"event_time"`
}

// LogPluginReload writes a PluginReload record.
func (l *Logger) LogPluginReload(r PluginReload) {
	if l == nil {
		return
	}
	now := l.now()
	r.Type, r.Timestamp, r.EventTime = "PluginReload", now.Unix(), now.UTC().Format(time.RFC3339Nano)
	l.write(r)
}

func (l *Logger) write(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return // our record types always marshal; nothing sensible to do otherwise
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(append(l.buf[:0], b...), '\n')
	_, _ = l.f.Write(l.buf)
}

// Close syncs and closes the file.
func (l *Logger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.f.Sync()
	return l.f.Close()
}
