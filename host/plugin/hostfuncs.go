package plugin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/route"
)

type hostFunc struct {
	params, results []api.ValueType
	fn              func(st *callState, mod api.Module, stack []uint64) int32
	noResult        bool
}

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

func ps(n int) []api.ValueType {
	out := make([]api.ValueType, n)
	for i := range out {
		out[i] = i32
	}
	return out
}

// hostTable is the ABI v1 host module: every name comes from package abi.
var hostTable = map[string]hostFunc{
	abi.FnABIVersion:           {params: nil, results: ps(1), fn: hABIVersion},
	abi.FnFeatures:             {params: []api.ValueType{i64}, results: []api.ValueType{i64}}, // special-cased: i64 result
	abi.FnLog:                  {params: ps(3), fn: hLog, noResult: true},
	abi.FnGetConfig:            {params: ps(2), results: ps(1), fn: hGetConfig},
	abi.FnSetError:             {params: ps(2), fn: hSetError, noResult: true},
	abi.FnLastError:            {params: ps(2), results: ps(1), fn: hLastError},
	abi.FnGetMeta:              {params: ps(4), results: ps(1), fn: hGetMeta},
	abi.FnSetMeta:              {params: ps(4), results: ps(1), fn: hSetMeta},
	abi.FnGetSender:            {params: ps(2), results: ps(1), fn: hGetSender},
	abi.FnRecipientCount:       {params: nil, results: ps(1), fn: hRecipientCount},
	abi.FnGetRecipient:         {params: ps(3), results: ps(1), fn: hGetRecipient},
	abi.FnGetHeader:            {params: ps(5), results: ps(1), fn: hGetHeader},
	abi.FnPrependHeader:        {params: ps(4), results: ps(1), fn: hPrependHeader},
	abi.FnAppendHeader:         {params: ps(4), results: ps(1), fn: hAppendHeader},
	abi.FnGetBody:              {params: ps(2), results: ps(1), fn: hGetBody},
	abi.FnReject:               {params: ps(3), results: ps(1), fn: hReject},
	abi.FnMakeQueueConfig:      {params: ps(2), results: ps(1), fn: hMakeQueueConfig},
	abi.FnDKIMSign:             {params: ps(2), results: ps(1), fn: hDKIMSign},
	abi.FnMakeEgressPathConfig: {params: ps(2), results: ps(1), fn: hMakeEgressPathConfig},
}

// budgetFree host functions keep working after abi.MaxHostCalls, so a guest that hit the
// budget can still say why it fails: each does a bounded amount of work, and the call's
// deadline still ends a loop of them.
var budgetFree = map[string]bool{abi.FnSetError: true, abi.FnLastError: true}

var budgetText = fmt.Sprintf("more than %d host calls in one hook call", abi.MaxHostCalls)

// granted is what every plugin may use; an operator switch per plugin can narrow it later.
const granted = abi.FeatureHeaderWrite | abi.FeatureBodyRead

func instantiateHostModule(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(abi.HostModule)
	for name, hf := range hostTable {
		var fn api.GoModuleFunc
		if name == abi.FnFeatures {
			fn = func(ctx context.Context, mod api.Module, stack []uint64) {
				if st := stateOf(ctx); st != nil {
					if st.calls++; st.calls > abi.MaxHostCalls {
						stack[0] = 0 // Limit does not fit an i64 bit set: nothing is granted
						return
					}
				}
				stack[0] = stack[0] & uint64(granted)
			}
		} else {
			hf, name := hf, name
			fn = func(ctx context.Context, mod api.Module, stack []uint64) {
				st := stateOf(ctx)
				if st == nil {
					st = &callState{} // only reachable from _initialize: no context, no data
				}
				st.calls++
				var rc int32
				if st.calls > abi.MaxHostCalls && !budgetFree[name] {
					rc = abi.Limit
					st.setLastError(budgetText)
				} else {
					rc = hf.fn(st, mod, stack)
				}
				if !hf.noResult {
					stack[0] = api.EncodeI32(rc)
				}
			}
		}
		b.NewFunctionBuilder().WithGoModuleFunction(fn, hf.params, hf.results).Export(name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// errOutOfBounds traps the guest: it passed memory it does not have (ABI.md, "Traps").
var errOutOfBounds = errors.New("wasmta: guest passed an out-of-bounds pointer")

// read returns a view of guest memory [ptr, ptr+n); every guest pointer goes through here.
func read(mod api.Module, ptr, n uint32) []byte {
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		panic(errOutOfBounds)
	}
	return b
}

// out writes data to (buf, limit) if it fits and returns its full length either way, so the
// guest can retry with a bigger buffer.
func out(mod api.Module, buf, limit uint32, data []byte) int32 {
	if len(data) > 1<<30 {
		return abi.Limit
	}
	if uint32(len(data)) <= limit && len(data) > 0 {
		if !mod.Memory().Write(buf, data) {
			panic(errOutOfBounds)
		}
	}
	return int32(len(data))
}

// outString is out for a string, without converting it to bytes first.
func outString(mod api.Module, buf, limit uint32, data string) int32 {
	if len(data) > 1<<30 {
		return abi.Limit
	}
	if uint32(len(data)) <= limit && len(data) > 0 {
		if !mod.Memory().WriteString(buf, data) {
			panic(errOutOfBounds)
		}
	}
	return int32(len(data))
}

func u32(v uint64) uint32 { return uint32(v) }

func hABIVersion(*callState, api.Module, []uint64) int32 { return abi.Version }

// hLog writes a guest's log line to diagnostics within its budgets: abi.MaxLogLine per line,
// abi.MaxLogLinesPerCall and abi.MaxLogBytesPerCall per hook call, and the plugin's rate
// (logLimiter). What does not fit is dropped, counted, and reported in one line.
func hLog(st *callState, mod api.Module, s []uint64) int32 {
	msg := read(mod, u32(s[1]), u32(s[2]))
	if len(msg) > abi.MaxLogLine {
		msg = msg[:abi.MaxLogLine]
	}
	if st.gen == nil {
		return 0
	}
	p := st.gen.plugin
	if st.logLines >= abi.MaxLogLinesPerCall || st.logBytes+len(msg) > abi.MaxLogBytesPerCall {
		p.logs.drop(1, len(msg))
		return 0
	}
	if !p.logs.allow(len(msg)) {
		return 0
	}
	st.logLines++
	st.logBytes += len(msg)
	d := p.host.diag
	args := []any{"plugin", p.name, "hook", st.hook, "line", string(msg)}
	// Levels outside -1..2 are logged as errors (ABI.md, log).
	switch int32(s[0]) {
	case abi.LogDebug:
		d.Debug("plugin log", args...)
	case abi.LogInfo:
		d.Info("plugin log", args...)
	case abi.LogWarn:
		d.Warn("plugin log", args...)
	default:
		d.Error("plugin log", args...)
	}
	return 0
}

func hGetConfig(st *callState, mod api.Module, s []uint64) int32 {
	if st.gen == nil {
		return abi.NotAllowed
	}
	return out(mod, u32(s[0]), u32(s[1]), st.gen.spec.Config)
}

func hSetError(st *callState, mod api.Module, s []uint64) int32 {
	msg := read(mod, u32(s[0]), u32(s[1]))
	if len(msg) > abi.MaxErrorText {
		msg = msg[:abi.MaxErrorText]
	}
	st.errText = strings.ToValidUTF8(string(msg), "?")
	return 0
}

func hLastError(st *callState, mod api.Module, s []uint64) int32 {
	return outString(mod, u32(s[0]), u32(s[1]), st.lastError())
}

// fail records a readable reason for the guest (last_error) and returns the status. The text
// is fmt.Sprintf(format, args...), built only when read (lastError): most guests never ask, and
// formatting was a tenth of a hook that had one call refused. So args must not change after
// the call: strings the host owns (no views of guest memory), numbers, no errors (pass their
// text).
func (st *callState) fail(status int32, format string, args ...any) int32 {
	if len(args) > len(st.errArgs) {
		st.setLastError(fmt.Sprintf(format, args...))
		return status
	}
	copy(st.errArgs[:], args)
	st.errFormat, st.errArgc, st.lastErr = format, len(args), ""
	return status
}

// failOn is fail with one string argument, kept without boxing it (an allocation): for the
// refusals a working plugin meets, such as a header edit with a line break in it.
func (st *callState) failOn(status int32, format, arg string) int32 {
	st.errFormat, st.errArgc, st.errArg, st.lastErr = format, -1, arg, ""
	return status
}

func hGetMeta(st *callState, mod api.Module, s []uint64) int32 {
	key := read(mod, u32(s[0]), u32(s[1])) // compared as string(key): no copy
	if !st.messageHook() && st.queue == nil && st.egress == nil {
		return st.fail(abi.NotAllowed, "get_meta is available in hooks only")
	}
	if len(key) > abi.MaxMetaKey {
		// No key is longer (set_meta refuses one, and the relay's own are short), and looking
		// it up would hash all of a length the guest chose.
		return st.fail(abi.Invalid, "get_meta: meta key longer than %d bytes", abi.MaxMetaKey)
	}
	switch {
	case st.messageHook():
		v, ok := st.getMetaOf(key)
		if !ok {
			return st.fail(abi.NotFound, "get_meta: the message has no meta key by that name")
		}
		return outString(mod, u32(s[2]), u32(s[3]), v)
	case st.queue != nil:
		var v string
		switch string(key) {
		case abi.QueueInputName:
			v = st.queue.Name
		case abi.QueueInputDomain:
			v = st.queue.Domain
		case abi.QueueInputTenant:
			v = st.queue.Tenant
		case abi.QueueInputCampaign:
			v = st.queue.Campaign
		case abi.QueueInputRoutingDomain:
			v = st.queue.RoutingDomain
		default:
			return st.fail(abi.NotFound, "get_meta: the queue has no value for that key")
		}
		if v == "" && string(key) != abi.QueueInputName && string(key) != abi.QueueInputDomain {
			return st.fail(abi.NotFound, "get_meta: the queue has no value for that key")
		}
		return outString(mod, u32(s[2]), u32(s[3]), v)
	case st.egress != nil:
		switch string(key) {
		case abi.EgressInputRoutingDomain:
			return outString(mod, u32(s[2]), u32(s[3]), st.egress.RoutingDomain)
		case abi.EgressInputSite:
			return outString(mod, u32(s[2]), u32(s[3]), st.egress.Site)
		}
		return st.fail(abi.NotFound, "get_meta: the path has no value for that key")
	}
	return st.fail(abi.NotAllowed, "get_meta is available in hooks only")
}

func validMetaKey(k []byte) bool {
	if len(k) == 0 || len(k) > abi.MaxMetaKey {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// printable reports whether s is UTF-8 without control characters.
func printable(s []byte) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f { // not printable ASCII: look closer
			return printableUTF8(s)
		}
	}
	return true
}

func printableUTF8(s []byte) bool {
	if !utf8.Valid(s) {
		return false
	}
	for _, r := range string(s) { // a range over a conversion copies nothing
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// metaKey is b as a string that outlives the call, without a copy for the keys the relay
// itself reads.
func (st *callState) metaKey(b []byte) string {
	switch string(b) { // compiled without an allocation
	case abi.MetaQueue:
		return abi.MetaQueue
	case abi.MetaRoutingDomain:
		return abi.MetaRoutingDomain
	case abi.MetaTenant:
		return abi.MetaTenant
	case abi.MetaCampaign:
		return abi.MetaCampaign
	}
	return st.keep(b)
}

func hSetMeta(st *callState, mod api.Module, s []uint64) int32 {
	if !st.messageHook() {
		return st.fail(abi.NotAllowed, "set_meta is available in message hooks only")
	}
	rawKey := read(mod, u32(s[0]), u32(s[1]))
	raw := read(mod, u32(s[2]), u32(s[3]))
	if !validMetaKey(rawKey) {
		// Quoted up to one byte past the limit: the guest chose the length, and copying and
		// quoting all of it (up to its whole memory) would cost the host that much again.
		return st.fail(abi.Invalid, "meta key %q: use 1-%d of A-Z a-z 0-9 _ - .", string(rawKey[:min(len(rawKey), abi.MaxMetaKey+1)]), abi.MaxMetaKey)
	}
	key := st.metaKey(rawKey)
	routing := len(raw) > 0 && (key == abi.MetaRoutingDomain || key == abi.MetaQueue)
	// The length first: the routing cache hashes the value, and printable scans it.
	if len(raw) > abi.MaxMetaValue {
		return st.fail(abi.Limit, "meta %s: value longer than %d bytes", key, abi.MaxMetaValue)
	}
	val, known := "", false
	if routing {
		// A routing value found valid before passed every check below.
		val, known = st.knownRouting(key, raw)
	}
	if !known {
		if !printable(raw) {
			return st.failOn(abi.Invalid, "meta %s: value must be UTF-8 without control characters", key)
		}
		if routing {
			// Its own copy: the instance keeps it (routed) across messages.
			val = string(raw)
			if err := st.gen.plugin.host.routing.check(key, val); err != nil {
				return st.fail(abi.Invalid, "meta %s %q: %s", key, val, safeText(err))
			}
			if st.in != nil {
				st.in.routed[routedSlot(key)] = val
			}
		} else {
			val = st.keep(raw)
			if key == abi.MetaTenant || key == abi.MetaCampaign {
				// Parts of the queue name: one that cannot be told apart in it would send
				// the message to another domain (route.CheckMeta).
				if err := route.CheckMeta(key, val); err != nil {
					return st.fail(abi.Invalid, "meta %s %q: %s", key, val, safeText(err))
				}
			}
		}
	}
	if len(st.meta)+len(st.msg.Meta) >= abi.MaxMetaKeys && st.metaFull(key) {
		return st.fail(abi.Limit, "more than %d meta keys", abi.MaxMetaKeys)
	}
	st.setMeta(key, val)
	return abi.OK
}

// metaFull reports whether setting key would give the message more than abi.MaxMetaKeys keys.
// A staged key the message already has is one key, not two: counting it twice made a hook that
// changed an existing key lose room for a new one.
func (st *callState) metaFull(key string) bool {
	if _, exists := st.getMeta(key); exists {
		return false
	}
	n := len(st.msg.Meta)
	for _, p := range st.meta {
		if _, ok := st.msg.Meta[p.k]; !ok {
			n++
		}
	}
	return n >= abi.MaxMetaKeys
}

// knownRouting returns raw as a string if it was found valid for the routing key before: by
// this instance last (st.in.routed), else by any plugin of the host (routingCache).
func (st *callState) knownRouting(key string, raw []byte) (string, bool) {
	in, i := st.in, routedSlot(key)
	if in != nil && in.routed[i] != "" && in.routed[i] == string(raw) {
		return in.routed[i], true
	}
	v, ok := st.gen.plugin.host.routing.lookup(key, raw)
	if ok && in != nil {
		in.routed[i] = v
	}
	return v, ok
}

// routedSlot is the place of a routing key (abi.MetaQueue, abi.MetaRoutingDomain) in
// instance.routed.
func routedSlot(key string) int {
	if key == abi.MetaQueue {
		return 0
	}
	return 1
}

func safeText(err error) string {
	var e *message.Error
	if errors.As(err, &e) {
		return e.Text
	}
	return err.Error()
}

func hGetSender(st *callState, mod api.Module, s []uint64) int32 {
	if !st.messageHook() {
		return st.fail(abi.NotAllowed, "get_sender is available in message hooks only")
	}
	return outString(mod, u32(s[0]), u32(s[1]), st.msg.Sender)
}

func hRecipientCount(st *callState, _ api.Module, _ []uint64) int32 {
	if !st.messageHook() {
		return st.fail(abi.NotAllowed, "recipient_count is available in message hooks only")
	}
	return int32(len(st.msg.Recipients))
}

func hGetRecipient(st *callState, mod api.Module, s []uint64) int32 {
	if !st.messageHook() {
		return st.fail(abi.NotAllowed, "get_recipient is available in message hooks only")
	}
	i := int32(s[0])
	if i < 0 || int(i) >= len(st.msg.Recipients) {
		return st.fail(abi.NotFound, "get_recipient: no recipient at that index")
	}
	return outString(mod, u32(s[1]), u32(s[2]), st.msg.Recipients[i])
}

const noHeader = "get_header: the message has no such header field (at that index)"

func hGetHeader(st *callState, mod api.Module, s []uint64) int32 {
	if !st.messageHook() {
		return st.fail(abi.NotAllowed, "get_header is available in message hooks only")
	}
	name := read(mod, u32(s[0]), u32(s[1]))
	idx := int32(s[2])
	if idx < 0 {
		return st.fail(abi.NotFound, noHeader)
	}
	v, ok := st.msg.headerOf(name, int(idx))
	if !ok {
		return st.fail(abi.NotFound, noHeader)
	}
	return out(mod, u32(s[3]), u32(s[4]), v)
}

func hPrependHeader(st *callState, mod api.Module, s []uint64) int32 {
	return st.addHeader(mod, s, &st.prepend)
}

func hAppendHeader(st *callState, mod api.Module, s []uint64) int32 {
	return st.addHeader(mod, s, &st.append)
}

// addHeader reads a header edit's name and value from guest memory and stages it.
func (st *callState) addHeader(mod api.Module, s []uint64, to *[]header) int32 {
	if !st.messageHook() {
		return st.fail(abi.NotAllowed, "header edits are available in message hooks only")
	}
	rawName := read(mod, u32(s[0]), u32(s[1]))
	// A name one byte over the limit is refused all the same (stageHeader), without copying
	// the rest of a length the guest chose.
	name := st.keep(rawName[:min(len(rawName), abi.MaxHeaderName+1)])
	raw := read(mod, u32(s[2]), u32(s[3]))
	// The value is checked as a view of guest memory (stageHeader's texts never quote it) and
	// copied only once staged.
	rc := st.stageHeader(name, unsafe.String(unsafe.SliceData(raw), len(raw)), to)
	if rc == abi.OK {
		(*to)[len(*to)-1].value = st.keep(raw)
	}
	return rc
}

// stageHeader validates a header edit and stages it. A CR or LF in a name or value is refused:
// it would let a plugin (or data it copies from the message) inject header lines.
func (st *callState) stageHeader(name, val string, to *[]header) int32 {
	if name == "" || len(name) > abi.MaxHeaderName {
		return st.fail(abi.Invalid, "header name must be 1-%d characters", abi.MaxHeaderName)
	}
	for i := 0; i < len(name); i++ { // RFC 5322 §3.6.8 ftext: printable ASCII except ':'
		if c := name[i]; c < 33 || c > 126 || c == ':' {
			return st.failOn(abi.Invalid, "header name %q: only printable ASCII without ':' or spaces", name)
		}
	}
	// The length before anything that reads the value: the guest chose it, up to its whole
	// memory, and a scan of that costs time the call's deadline cannot interrupt.
	if len(val) > abi.MaxHeaderValue {
		return st.fail(abi.Limit, "header %s: value longer than %d bytes", name, abi.MaxHeaderValue)
	}
	if strings.IndexByte(val, '\r') >= 0 || strings.IndexByte(val, '\n') >= 0 {
		return st.failOn(abi.Invalid, "header %s: CR or LF in the value (header injection refused)", name)
	}
	if !utf8.ValidString(val) {
		return st.failOn(abi.Invalid, "header %s: value is not UTF-8", name)
	}
	fold, ok := foldAt(name, val)
	if !ok {
		return st.fail(abi.Limit, "header %s: the field is longer than %d bytes and has no space or tab to fold it at", name, abi.MaxHeaderLine)
	}
	if st.headerEdits >= abi.MaxHeaderEdits {
		return st.fail(abi.Limit, "more than %d header edits in one call", abi.MaxHeaderEdits)
	}
	st.headerEdits++
	*to = append(*to, header{name, val, fold})
	return abi.OK
}

// foldAt is where to fold the field "name: val" so that no line of it is longer than
// abi.MaxHeaderLine (RFC 5322 §2.1.1; RFC 5321 §4.5.3.1.6: 1000 octets with the CRLF): 0 when
// it fits on one line, else the index of the space or tab in val that starts the second line
// (RFC 5322 §2.2.3: a CRLF is inserted before it, and unfolding removes only that CRLF, so the
// value reads back as set). Names are at most abi.MaxHeaderName bytes and values
// abi.MaxHeaderValue, so one fold always leaves a second line short enough. The latest space
// that fits is chosen, but not one the rest of the value has only whitespace after: a line of
// nothing but whitespace is not allowed (RFC 5322 §3.2.2). ok is false when no space or tab
// qualifies (a run of text too long for a line): such a field cannot be written.
func foldAt(name, val string) (at int, ok bool) {
	if len(name)+len(": ")+len(val) <= abi.MaxHeaderLine {
		return 0, true
	}
	last := len(val) - 1 // the last byte that is not whitespace
	for last >= 0 && (val[last] == ' ' || val[last] == '\t') {
		last--
	}
	for i := min(abi.MaxHeaderLine-len(name)-len(": "), last); i >= 1; i-- {
		if val[i] == ' ' || val[i] == '\t' {
			return i, true
		}
	}
	return 0, false
}

func hGetBody(st *callState, mod api.Module, s []uint64) int32 {
	if !st.messageHook() {
		return st.fail(abi.NotAllowed, "get_body is available in message hooks only")
	}
	st.msg.index()
	body := st.msg.Data[st.msg.hdrEnd:]
	if len(body) >= 2 && body[0] == '\r' && body[1] == '\n' {
		body = body[2:]
	} else if len(body) >= 1 && body[0] == '\n' {
		body = body[1:]
	}
	return out(mod, u32(s[0]), u32(s[1]), body)
}

func hReject(st *callState, mod api.Module, s []uint64) int32 {
	if !st.messageHook() {
		return st.fail(abi.NotAllowed, "reject is available in message hooks only")
	}
	code := int32(s[0])
	raw := read(mod, u32(s[1]), u32(s[2]))
	if code < 400 || code > 599 {
		return st.fail(abi.Invalid, "reject code %d: must be 4xx or 5xx", code)
	}
	if len(raw) > abi.MaxRejectText {
		return st.fail(abi.Limit, "reject text longer than %d bytes", abi.MaxRejectText)
	}
	text := string(raw) // copied once its length is known to be small
	for i := 0; i < len(text); i++ {
		if c := text[i]; c < 32 || c > 126 {
			return st.fail(abi.Invalid, "reject text must be printable ASCII (RFC 5321 replies)")
		}
	}
	r := message.Reply{Code: int(code), Text: text}
	enh, rest, _ := strings.Cut(text, " ")
	if class, _, _, ok := message.ParseEnhanced(enh); ok {
		// RFC 3463 §2: the class of the enhanced code must match the reply's first digit.
		if class != int(code)/100 {
			return st.fail(abi.Invalid, "reject %d with enhanced code %s: the class must be %d", code, enh, code/100)
		}
		r.Enhanced, r.Text = enh, rest
	} else {
		r.Enhanced = fmt.Sprintf("%d.0.0", code/100)
	}
	if r.Text == "" {
		r.Text = "rejected by policy"
	}
	st.reject = &r
	return abi.OK
}

func hMakeQueueConfig(st *callState, mod api.Module, s []uint64) int32 {
	if st.queue == nil {
		return st.fail(abi.NotAllowed, "make_queue_config is available in get_queue_config only")
	}
	if u32(s[1]) > abi.MaxQueueConfig {
		return st.fail(abi.Limit, "queue config longer than %d bytes", abi.MaxQueueConfig)
	}
	c, err := abi.ParseQueueConfig(read(mod, u32(s[0]), u32(s[1])))
	if err != nil {
		return st.fail(abi.Invalid, "%s", err.Error())
	}
	for _, e := range c.MXList() {
		if err := (route.MXEntry{Name: e.Name, Addr: e.Addr}).Validate(); err != nil {
			return st.fail(abi.Invalid, "queue config: mx_list entry %q: %s", e.Name, safeText(err))
		}
	}
	st.queueConfig = c
	return abi.OK
}

// hDKIMSign stages a DKIM signature request (ABI 1.1). The host signs once, after the whole
// chain ran, so the signature covers every later plugin's header edits; the plugin only names a
// [[dkim]] key and never sees it.
func hDKIMSign(st *callState, mod api.Module, s []uint64) int32 {
	if !st.messageHook() {
		return st.fail(abi.NotAllowed, "dkim_sign is available in message hooks only")
	}
	if u32(s[1]) > abi.MaxDKIMParams {
		return st.fail(abi.Limit, "dkim_sign params longer than %d bytes", abi.MaxDKIMParams)
	}
	p, err := abi.ParseDKIMSign(read(mod, u32(s[0]), u32(s[1])))
	if err != nil {
		return st.fail(abi.Invalid, "%s", err.Error())
	}
	if !st.gen.plugin.host.hasDKIMKey(p.Key) {
		return st.fail(abi.Invalid, "dkim_sign: no [[dkim]] key named %q in the server config", p.Key)
	}
	if len(st.msg.DKIM)+len(st.dkim) >= abi.MaxDKIMSignatures {
		return st.fail(abi.Limit, "more than %d dkim_sign requests for one message", abi.MaxDKIMSignatures)
	}
	st.dkim = append(st.dkim, *p)
	return abi.OK
}

// hMakeEgressPathConfig stages the egress path config of get_egress_path_config (ABI 1.2):
// decoded strictly (an unknown field is Invalid, naming it), then checked by the server
// (EgressPathInput.Check: secrets are named, never read).
func hMakeEgressPathConfig(st *callState, mod api.Module, s []uint64) int32 {
	if st.egress == nil {
		return st.fail(abi.NotAllowed, "make_egress_path_config is available in get_egress_path_config only")
	}
	if u32(s[1]) > abi.MaxEgressPathConfig {
		return st.fail(abi.Limit, "egress path config longer than %d bytes", abi.MaxEgressPathConfig)
	}
	c, err := abi.ParseEgressPathConfig(read(mod, u32(s[0]), u32(s[1])))
	if err != nil {
		return st.fail(abi.Invalid, "%s", err.Error())
	}
	if st.egress.Check != nil {
		if err := st.egress.Check(c); err != nil {
			return st.fail(abi.Invalid, "egress path config: %s", err.Error())
		}
	}
	st.egressPath = c
	return abi.OK
}
