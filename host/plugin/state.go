package plugin

import (
	"bytes"
	"context"
	"strings"
	"time"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/message"
)

// Message is what a message hook reads and changes (see message.Hook). A chain applies each
// plugin's effects to it in turn.
type Message = message.Hook

// msgState is a Message during one chain run, with a lazily built index of its header fields.
type msgState struct {
	*Message
	hdr     []field // lazily built index of Data's header fields
	hdrEnd  int     // offset of the blank line ending the header (or len(Data))
	indexed bool
}

type field struct {
	name  string
	value []byte // after "Name:" with leading whitespace removed, folding kept, no final CRLF
}

// QueueInput is what get_queue_config sees: the parts of the scheduled queue's name.
type QueueInput struct {
	Name, Domain, Tenant, Campaign, RoutingDomain string
}

// EgressPathInput is what get_egress_path_config sees, and how the host checks an answer.
type EgressPathInput struct {
	RoutingDomain, Site string
	// Check, when set, vets a config that parsed (abi.ParseEgressPathConfig) against what only
	// the server knows, for this routing domain and site: that a named secret exists and may be
	// used here. Its error text reaches the plugin through last_error, so it must not reveal a
	// secret's value.
	Check func(*abi.EgressPathConfig) error
}

type header struct{ name, value string }

type kv struct{ k, v string }

func (st *callState) setMeta(k, v string) {
	for i := range st.meta {
		if st.meta[i].k == k {
			st.meta[i].v = v
			return
		}
	}
	if st.meta == nil {
		st.meta = st.metaBuf[:0]
	}
	st.meta = append(st.meta, kv{k, v})
}

// callState is one hook call's view of the world and its staged effects. Host functions find
// it through the call's context; nothing here outlives the call except what commit applies.
type callState struct {
	gen  *Generation
	in   *instance // the instance the call runs on; nil while one starts
	hook string
	// start (mono) is when the chain began this call and took how long it lasted, waiting for
	// an instance included: the clock is read once at each end of a call, not by every layer
	// (a read costs about 50 ns on a VM).
	start  int64
	took   time.Duration
	msg    *msgState
	queue  *QueueInput
	egress *EgressPathInput

	meta        []kv  // staged sets, in call order; later sets of a key win
	metaBuf     [2]kv // meta's first storage: a hook sets one or two keys
	prepend     []header
	append      []header
	reject      *message.Reply
	queueConfig *abi.QueueConfig
	egressPath  *abi.EgressPathConfig
	dkim        []abi.DKIMSign
	errText     string
	lastErr     string
	calls       int
	headerEdits int
	logLines    int
	logBytes    int
}

// stateKey is the context key under which host functions find the call's state: a *callState,
// or the *instance whose st is the call's (instance.ctx).
type stateKey struct{}

// stateOf is the state of the call ctx belongs to; nil outside a hook call (_initialize).
func stateOf(ctx context.Context) *callState {
	switch v := ctx.Value(stateKey{}).(type) {
	case *callState:
		return v
	case *instance:
		return v.st
	}
	return nil
}

func (st *callState) errSuffix() string {
	if st.errText == "" {
		return ""
	}
	return ": " + st.errText
}

func (st *callState) messageHook() bool {
	return st.hook == abi.HookSMTPServerMessageReceived || st.hook == abi.HookHTTPMessageGenerated
}

// getMeta reads meta as the hook sees it: its own staged sets first.
func (st *callState) getMeta(k string) (string, bool) {
	for _, p := range st.meta {
		if p.k == k {
			return p.v, true
		}
	}
	v, ok := st.msg.Meta[k]
	return v, ok
}

// commit applies staged effects to the message (only after the hook returned 0).
func (st *callState) commit() {
	m := st.msg
	if len(st.meta) > 0 {
		if m.Meta == nil {
			m.Meta = map[string]string{}
		}
		for _, p := range st.meta {
			m.Meta[p.k] = p.v
		}
	}
	m.DKIM = append(m.DKIM, st.dkim...)
	if len(st.prepend) == 0 && len(st.append) == 0 {
		return
	}
	m.index()
	hdr, rest := m.Data[:m.hdrEnd], m.Data[m.hdrEnd:]
	var out bytes.Buffer
	out.Grow(len(m.Data) + 256)
	for _, h := range st.prepend {
		writeHeader(&out, h)
	}
	out.Write(hdr)
	if len(st.append) > 0 && len(hdr) > 0 {
		// Data that ends inside its last field ("A: 1", no line break): end that line first,
		// or the appended field would run into it.
		switch hdr[len(hdr)-1] {
		case '\n':
		case '\r':
			out.WriteByte('\n')
		default:
			out.WriteString("\r\n")
		}
	}
	for _, h := range st.append {
		writeHeader(&out, h)
	}
	if len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		// Data that starts with a folded line (no field to continue; index reads it as body):
		// written after a new field it would fold into it, so the blank line that ends a header
		// (RFC 5322 §2.1) goes first. Any other line that ends the header is left in place.
		out.WriteString("\r\n")
	}
	out.Write(rest)
	m.Data = out.Bytes()
	m.indexed = false
}

func writeHeader(b *bytes.Buffer, h header) {
	b.WriteString(h.name)
	b.WriteString(": ")
	b.WriteString(h.value)
	b.WriteString("\r\n")
}

// index finds the header fields of Data (RFC 5322 §2.2: a field ends at a CRLF not followed
// by whitespace; the header ends at the first empty line).
func (m *msgState) index() {
	if m.indexed {
		return
	}
	m.indexed, m.hdr, m.hdrEnd = true, m.hdr[:0], len(m.Data)
	d := m.Data
	pos := 0
	for pos < len(d) {
		eol := bytes.IndexByte(d[pos:], '\n')
		line := d[pos:]
		next := len(d)
		if eol >= 0 {
			line = d[pos : pos+eol]
			next = pos + eol + 1
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			m.hdrEnd = pos
			return
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(m.hdr) == 0 { // a fold with no field to continue: not a header line
				m.hdrEnd = pos
				return
			}
			f := &m.hdr[len(m.hdr)-1]
			f.value = append(append(f.value, "\r\n"...), line...)
		} else if i := bytes.IndexByte(line, ':'); i > 0 && fieldName(bytes.TrimRight(line[:i], " \t")) {
			// RFC 5322 §4.5.3 (obsolete syntax) allows whitespace before the colon.
			name := bytes.TrimRight(line[:i], " \t")
			m.hdr = append(m.hdr, field{name: string(name), value: append([]byte(nil), bytes.TrimLeft(line[i+1:], " \t")...)})
		} else {
			// Not a header line: the header ended without a blank line.
			m.hdrEnd = pos
			return
		}
		pos = next
	}
}

// fieldName reports whether b is an RFC 5322 §3.6.8 field name: printable ASCII except ':'. A
// line whose name is anything else (a space, a control character) is not a header field, so
// the header ends there, as most MTAs (Postfix among them) read it.
func fieldName(b []byte) bool {
	for _, c := range b {
		if c < 33 || c > 126 {
			return false
		}
	}
	return len(b) > 0
}

// Header returns the idx-th field named name (case-insensitive).
func (m *msgState) Header(name string, idx int) ([]byte, bool) {
	m.index()
	for _, f := range m.hdr {
		if strings.EqualFold(f.name, name) {
			if idx == 0 {
				return f.value, true
			}
			idx--
		}
	}
	return nil, false
}
