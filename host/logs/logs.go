// Package logs writes the relay's JSON-lines log records (design.md §9): one record per event, to
// wasmta.jsonl under [logs] dir (rotated by size or day, reopened on SIGUSR1; rotate.go) or to
// standard output, and to the webhook's queue when one is configured. Field names follow
// KumoMTA's log records so existing consumers work.
//
// Log returns only once its record is in the kernel (written with write(2), not fsynced), so a
// record that was logged survives the process being killed (kill -9). Records logged at the same
// moment share one write(2) (a group commit, see Logger.write): the Reception records of the
// messages one spool commit accepted cost one system call, not one each.
package logs

import (
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/wasmta/wasmta/host/classify"
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
	// BounceClassification is the class of the reply (classify package) on Bounce and
	// TransientFailure records, set by Log; KumoMTA's field name.
	BounceClassification string `json:"bounce_classification,omitempty"`
	// EgressPool and EgressSource are the pool and source of a Delivery, TransientFailure or
	// Bounce (KumoMTA's field names); absent for the built-in pool "unspecified".
	EgressPool   string `json:"egress_pool,omitempty"`
	EgressSource string `json:"egress_source,omitempty"`
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
	// Command is the command the reply answered, as sent ("MAIL FROM:<a@b>", "RCPT TO:<c@d>",
	// "DATA", or "." for the end of the message data, as KumoMTA writes it, also when the
	// content went as BDAT's last chunk, RFC 3030); omitted when
	// the reply answered no command of ours (the relay's own replies, reception).
	Command string `json:"command,omitempty"`
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
	out := Response{Code: r.Code, Content: r.Text, Command: r.Command}
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

// Logger writes records: to the log file or standard output, and to the tee (the webhook's
// queue) when there is one.
type Logger struct {
	mu   sync.Mutex
	out  io.Writer
	file *File // nil when writing to standard output
	tee  Tee
	now  func() time.Time

	// The group commit (see write), under mu: pending holds the lines of batch taken+1, not yet
	// taken by a writer; batches up to done are written; writing is set while one is.
	pending, spare []byte
	taken, done    uint64
	writing        bool
	wrote          sync.Cond // on mu (set by write); broadcast when a batch is written
	// observe sees every record Log writes (metrics count them, so they agree with the log);
	// nil costs one comparison.
	observe  func(*Record)
	classify *classify.Classifier
	diag     *slog.Logger
	failing  bool // the last write failed: report the first failure of a run only
}

// Tee receives every record line as written, under the logger's lock (so in log order).
type Tee interface{ Append(line []byte) }

// Options configure a Logger.
type Options struct {
	File FileOptions // where records go, unless Stdout is set
	// Stdout, when not nil, receives the records instead of a file (containers, journald).
	Stdout io.Writer
	Tee    Tee
	// Classifier sorts Bounce and TransientFailure replies; nil uses the shipped rules.
	Classifier *classify.Classifier
}

// New opens the logger's output.
func New(opt Options) (*Logger, error) {
	l := &Logger{now: time.Now, tee: opt.Tee, classify: opt.Classifier, out: opt.Stdout}
	if l.classify == nil {
		l.classify = classify.Default()
	}
	if l.out == nil {
		f, err := OpenFile(opt.File)
		if err != nil {
			return nil, err
		}
		l.file, l.out = f, f
	}
	return l, nil
}

// Open logs to dir/wasmta.jsonl with no rotation.
func Open(dir string) (*Logger, error) {
	return New(Options{File: FileOptions{Dir: dir}})
}

// Observe makes f see every record Log writes, after its timestamps are set. f runs on the
// caller's goroutine and must be quick. Call it before the logger is shared.
func (l *Logger) Observe(f func(*Record)) { l.observe = f }

// Path is the file being written, or "stdout".
func (l *Logger) Path() string {
	if l.file == nil {
		return "stdout"
	}
	return l.file.Path()
}

// Reopen reopens the log file (after logrotate moved it); a no-op on standard output.
func (l *Logger) Reopen() error {
	if l == nil || l.file == nil {
		return nil
	}
	return l.file.Reopen()
}

// SetDiag sets where write failures are reported.
func (l *Logger) SetDiag(d *slog.Logger) { l.diag = d }

// Log writes one record, filling its timestamps.
func (l *Logger) Log(r Record) {
	if l == nil {
		return
	}
	now := l.now()
	r.Timestamp = now.Unix()
	r.EventTime = now.UTC().Format(time.RFC3339Nano)
	if r.Type == Bounce || r.Type == TransientFailure {
		e := ""
		if r.Response.EnhancedCode != nil {
			c := r.Response.EnhancedCode
			e = strconv.Itoa(c.Class) + "." + strconv.Itoa(c.Subject) + "." + strconv.Itoa(c.Detail)
		}
		r.BounceClassification = l.classify.Classify(r.Response.Code, e, r.Response.Content)
	}
	l.writeLine(append(appendRecord(make([]byte, 0, 1024), &r), '\n'))
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

// write logs one record and returns once it is written. Records are written in group commits:
// a record joins the pending batch; if no write is in progress, its caller takes the batch and
// writes it with one write(2) (outside the lock, so more records gather meanwhile); otherwise
// it waits for the write in progress to end, after which its batch is taken by one of the
// callers waiting for it. A batch is one write, so it lands wholly in one file across rotations.
func (l *Logger) write(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return // our record types always marshal; nothing sensible to do otherwise
	}
	l.writeLine(append(b, '\n'))
}

// writeLine is write for a line already encoded (with its newline).
func (l *Logger) writeLine(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending = append(l.pending, b...)
	if l.tee != nil {
		l.tee.Append(b) // under the lock: the tee sees the file's order
	}
	mine := l.taken + 1
	if l.wrote.L == nil {
		l.wrote.L = &l.mu
	}
	for l.done < mine {
		if l.writing {
			l.wrote.Wait()
			continue
		}
		// No write in progress and this record's batch not written: the batch is still
		// pending (batches are taken in order, one at a time).
		batch := l.pending
		l.pending, l.spare = l.spare[:0], nil
		l.taken++
		l.writing = true
		l.mu.Unlock()
		_, err := l.out.Write(batch)
		l.mu.Lock()
		if err != nil && !l.failing && l.diag != nil {
			l.diag.Error("logs: writing a record failed", "err", err)
		}
		l.failing = err != nil
		if cap(batch) <= maxSpare {
			l.spare = batch[:0]
		}
		l.done, l.writing = mine, false
		l.wrote.Broadcast()
	}
}

// maxSpare bounds the batch buffer kept for the next batch.
const maxSpare = 256 << 10

// Close syncs and closes the file (waiting for compressions in progress).
func (l *Logger) Close() error {
	if l.file == nil {
		return nil
	}
	return l.file.Close()
}
