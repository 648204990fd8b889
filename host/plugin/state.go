package plugin

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

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
	nameMax int     // the length of the longest field name in hdr
	indexed bool
}

type field struct {
	name  string // a view of Data (see index)
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

// header is a staged header edit; fold, when not 0, is where its value is folded (foldAt).
type header struct {
	name, value string
	fold        int
}

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
	in   *instance // the instance the call runs on; nil while one is instantiated
	hook string
	// start (mono) is when the chain began this call and took how long it lasted, waiting for
	// an instance included: the clock is read once at each end of a call, not by every layer
	// (a read costs about 50 ns on a VM).
	start  int64
	took   time.Duration
	msg    *msgState
	ctx    callCtx // what the call runs under (see Generation.call)
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
	// The host's last refusal (last_error): lastErr, or when errFormat is set
	// fmt.Sprintf(errFormat, errArgs[:errArgc]...) not built yet, or with errArgc -1
	// fmt.Sprintf(errFormat, errArg) (see fail, failOn, lastError).
	lastErr   string
	errFormat string
	errArg    string
	errArgs   [3]any
	errArgc   int
	// arena holds the strings the call keeps (keep) in a few allocations, not one each.
	arena       []byte
	calls       int
	headerEdits int
	logLines    int
	logBytes    int
}

// stateKey is the context key under which host functions find the call's state: a *callState,
// or the *instance whose st is the call's (instance.ctx).
type stateKey struct{}

// callCtx is the context a hook call runs under (callState.ctx): its state, found by a type
// assertion instead of a lookup by key, which cost a quarter of a bare host call.
type callCtx struct {
	context.Context
	st *callState
}

func (c *callCtx) Value(key any) any {
	if _, ok := key.(stateKey); ok {
		return c.st
	}
	return c.Context.Value(key)
}

// stateOf is the state of the call ctx belongs to; nil outside a hook call (_initialize).
func stateOf(ctx context.Context) *callState {
	if c, ok := ctx.(*callCtx); ok {
		return c.st
	}
	// Starting an instance (Generation.newInstance) puts its state in the context by key.
	switch v := ctx.Value(stateKey{}).(type) {
	case *callState:
		return v
	case *instance:
		return v.st
	}
	return nil
}

// lastError is the text of the host's last refusal, "" if none.
func (st *callState) lastError() string {
	switch {
	case st.errFormat == "":
		return st.lastErr
	case st.errArgc < 0:
		st.lastErr = fmt.Sprintf(st.errFormat, st.errArg)
	default:
		st.lastErr = fmt.Sprintf(st.errFormat, st.errArgs[:st.errArgc]...)
	}
	st.errFormat, st.errArg, st.errArgs = "", "", [3]any{}
	return st.lastErr
}

func (st *callState) setLastError(text string) {
	st.lastErr, st.errFormat, st.errArg, st.errArgs = text, "", "", [3]any{}
}

// keep returns b (guest memory, valid only during the host call) as a string that outlives the
// call, for what the call stages: meta keys and values, header edits. Short ones are copied
// into arena chunks, never written again once a string points into them: a hook that sets ten
// values allocates twice, not twenty times. A chunk lives while any of its strings does (the
// message's meta, for as long as the message is held), so chunks start small and double.
func (st *callState) keep(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > keepMax {
		return string(b)
	}
	if cap(st.arena)-len(st.arena) < len(b) {
		st.arena = make([]byte, 0, min(max(2*cap(st.arena), keepFirst), keepChunk))
	}
	i := len(st.arena)
	st.arena = append(st.arena, b...)
	return unsafe.String(&st.arena[i], len(b))
}

// keepFirst and keepChunk bound an arena chunk's size; keepMax is the longest text keep copies
// into one (a longer one would waste most of a chunk).
const (
	keepFirst = 64
	keepChunk = 512
	keepMax   = 64
)

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

// getMetaOf is getMeta for a key in guest memory, without copying it.
func (st *callState) getMetaOf(k []byte) (string, bool) {
	for _, p := range st.meta {
		if p.k == string(k) {
			return p.v, true
		}
	}
	v, ok := st.msg.Meta[string(k)]
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
	n := len(m.Data) + 4 // room for the line breaks below
	for _, h := range st.prepend {
		n += len(h.name) + len(h.value) + 6 // ": ", a fold's CRLF, the final CRLF
	}
	for _, h := range st.append {
		n += len(h.name) + len(h.value) + 6
	}
	out := make([]byte, 0, n)
	for _, h := range st.prepend {
		out = appendHeader(out, h)
	}
	out = append(out, hdr...)
	if len(st.append) > 0 && len(hdr) > 0 {
		// Data that ends inside its last field ("A: 1", no line break): end that line first,
		// or the appended field would run into it.
		switch hdr[len(hdr)-1] {
		case '\n':
		case '\r':
			out = append(out, '\n')
		default:
			out = append(out, "\r\n"...)
		}
	}
	for _, h := range st.append {
		out = appendHeader(out, h)
	}
	if len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		// Data that starts with a folded line (no field to continue; index reads it as body):
		// written after a new field it would fold into it, so the blank line that ends a header
		// (RFC 5322 §2.1) goes first. Any other line that ends the header is left in place.
		out = append(out, "\r\n"...)
	}
	m.Data = append(out, rest...)
	m.indexed = false
}

func appendHeader(b []byte, h header) []byte {
	b = append(b, h.name...)
	b = append(b, ": "...)
	if h.fold > 0 {
		b = append(b, h.value[:h.fold]...)
		b = append(b, "\r\n"...)
		b = append(b, h.value[h.fold:]...)
	} else {
		b = append(b, h.value...)
	}
	return append(b, "\r\n"...)
}

// index finds the header fields of Data (RFC 5322 §2.2: a field ends at a CRLF not followed
// by whitespace; the header ends at the first empty line). Names and values are views of Data,
// which nothing changes while a chain runs (commit writes a new one and indexes it again); only
// a value folded with bare LFs is copied, because its value spells every line break CRLF.
func (m *msgState) index() {
	if m.indexed {
		return
	}
	m.indexed, m.hdr, m.hdrEnd, m.nameMax = true, m.hdr[:0], len(m.Data), 0
	d := m.Data
	pos := 0
	end := -1 // where the last field's value ends in d while that value is a view of d, else -1
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
			if end >= 0 && end+2 == pos && d[end] == '\r' {
				// The value so far, CRLF and this line are contiguous in d: extend the view.
				start := end - len(f.value)
				end = pos + len(line)
				f.value = d[start:end:end]
			} else {
				// A view's capacity ends with it (d[a:b:b]), so this append copies it.
				f.value, end = append(append(f.value, "\r\n"...), line...), -1
			}
		} else if i := bytes.IndexByte(line, ':'); i > 0 && fieldName(bytes.TrimRight(line[:i], " \t")) {
			// RFC 5322 §4.5.3 (obsolete syntax) allows whitespace before the colon.
			name := bytes.TrimRight(line[:i], " \t")
			value := bytes.TrimLeft(line[i+1:], " \t")
			end = pos + len(line)
			m.nameMax = max(m.nameMax, len(name))
			m.hdr = append(m.hdr, field{name: unsafe.String(unsafe.SliceData(name), len(name)), value: value[:len(value):len(value)]})
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

// headerOf is Header for a name in guest memory, without copying it: field names are ASCII
// (fieldName), so an ASCII name compares byte by byte, ignoring the case of letters. Any other
// name goes through Header, whose Unicode case folding can match ASCII too (U+212A KELVIN SIGN
// folds to k).
func (m *msgState) headerOf(name []byte, idx int) ([]byte, bool) {
	m.index()
	// A name longer than every field's cannot match, and is not read: the guest chose its
	// length, up to its whole memory. Field names are ASCII, and case folding maps an ASCII
	// letter to at most one rune of utf8.UTFMax bytes (U+212A KELVIN SIGN, 3 bytes, folds to k).
	if len(name) > utf8.UTFMax*m.nameMax {
		return nil, false
	}
	for _, c := range name {
		if c >= utf8.RuneSelf {
			// A view, not a copy: Header keeps nothing of name, whose length the guest chose.
			return m.Header(unsafe.String(unsafe.SliceData(name), len(name)), idx)
		}
	}
	for _, f := range m.hdr {
		if equalFoldASCII(f.name, name) {
			if idx == 0 {
				return f.value, true
			}
			idx--
		}
	}
	return nil, false
}

// equalFoldASCII reports whether the ASCII texts a and b are equal ignoring the case of letters.
func equalFoldASCII(a string, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
