// Package wasmta is the Go SDK for wasmta policy plugins (ABI v1, abi/ABI.md).
//
// A plugin is a main package that registers handlers in init and is built as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugin.wasm .
//
//	func init() {
//		wasmta.OnMessageReceived(func(m *wasmta.Message) error {
//			return m.SetMeta("routing_domain", "my.smarthost.com")
//		})
//	}
//	func main() {}
//
// main is never called (c-shared); init runs when the host starts an instance. One instance
// runs one hook at a time, so handlers need no locking, and must not start goroutines that
// outlive the call.
package wasmta

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/wasmta/wasmta/abi"
)

var (
	onInit             func() error
	onMessageReceived  func(*Message) error
	onMessageGenerated func(*Message) error
	onQueueConfig      func(Queue) (*QueueConfig, error)
	onEgressPathConfig func(EgressSite) (*EgressPathConfig, error)
	// makeEgressPathConfig is set by OnGetEgressPathConfig, so that only plugins that register
	// the hook import make_egress_path_config (ABI 1.2): the others keep loading on 1.1 hosts.
	makeEgressPathConfig func(js unsafe.Pointer, n uint32) int32
)

// OnInit registers a function run once per instance before any hook (wasmta_init). An error
// refuses the plugin at load or reload, with the error's text in the host's message.
func OnInit(f func() error) { onInit = f }

// OnMessageReceived registers the smtp_server_message_received handler. Returning an error
// makes the host answer 451 4.3.0 (the client retries); nothing the handler set is applied.
func OnMessageReceived(f func(*Message) error) { onMessageReceived = f }

// OnHTTPMessageGenerated registers the http_message_generated handler (HTTP injection).
func OnHTTPMessageGenerated(f func(*Message) error) { onMessageGenerated = f }

// OnGetQueueConfig registers the get_queue_config handler. Return nil, nil to leave the queue
// to the next plugin or the server defaults.
func OnGetQueueConfig(f func(Queue) (*QueueConfig, error)) { onQueueConfig = f }

// OnGetEgressPathConfig registers the get_egress_path_config handler (ABI 1.2): asked for the
// egress path of a site (limits, TLS, AUTH credentials by secret name, EHLO name, source
// address). Return nil, nil to leave it to the next plugin and the server's [egress]. A plugin
// that registers it needs an ABI 1.2 host.
func OnGetEgressPathConfig(f func(EgressSite) (*EgressPathConfig, error)) {
	onEgressPathConfig, makeEgressPathConfig = f, hostMakeEgressPathConfig
}

// Error is a failed host call: the ABI status and the host's explanation.
type Error struct {
	Op     string
	Status int32
	Text   string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("wasmta: %s: %s", e.Op, statusText(e.Status))
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

// ErrNotFound is matched by errors.Is for a NotFound status.
var ErrNotFound = errors.New("not found")

func (e *Error) Is(target error) bool { return target == ErrNotFound && e.Status == abi.NotFound }

func statusText(s int32) string {
	switch s {
	case abi.NotFound:
		return "not found"
	case abi.Invalid:
		return "invalid argument"
	case abi.NotAllowed:
		return "not allowed here"
	case abi.Limit:
		return "limit exceeded"
	case abi.Unimplemented:
		return "not implemented by this host"
	}
	return fmt.Sprintf("status %d", s)
}

func check(op string, rc int32) error {
	if rc >= 0 {
		return nil
	}
	return &Error{Op: op, Status: rc, Text: lastError()}
}

// scratch is the one receive buffer: an instance runs one call at a time.
var scratch [4096]byte

// fetch runs a (buf, limit) host call, retrying once with a buffer of the announced size.
func fetch(call func(buf unsafe.Pointer, limit uint32) int32) ([]byte, int32) {
	n := call(unsafe.Pointer(&scratch[0]), uint32(len(scratch)))
	if n < 0 {
		return nil, n
	}
	if int(n) <= len(scratch) {
		return append([]byte(nil), scratch[:n]...), n
	}
	b := make([]byte, n)
	n = call(unsafe.Pointer(&b[0]), uint32(len(b)))
	if n < 0 {
		return nil, n
	}
	return b[:n], n
}

// fetchString is fetch for text: one copy, straight from the scratch buffer into the string.
func fetchString(call func(buf unsafe.Pointer, limit uint32) int32) (string, int32) {
	n := call(unsafe.Pointer(&scratch[0]), uint32(len(scratch)))
	if n < 0 || int(n) <= len(scratch) {
		return string(scratch[:max(n, 0)]), n
	}
	b, n := fetch(call)
	return string(b), n
}

func ptr(s string) (unsafe.Pointer, uint32) {
	if s == "" {
		return unsafe.Pointer(&scratch[0]), 0
	}
	return unsafe.Pointer(unsafe.StringData(s)), uint32(len(s))
}

func lastError() string {
	s, n := fetchString(func(buf unsafe.Pointer, limit uint32) int32 { return hostLastError(buf, limit) })
	if n <= 0 {
		return ""
	}
	return s
}

// Config decodes the plugin's own config (its [plugins.config] table, as JSON) into v.
func Config(v any) error {
	b, n := fetch(func(buf unsafe.Pointer, limit uint32) int32 { return hostGetConfig(buf, limit) })
	if err := check("get_config", n); err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// ABIVersion is the host's ABI version (major<<16 | minor).
func ABIVersion() int32 { return hostABIVersion() }

// Features returns the subset of want the host grants (abi.Feature* bits).
func Features(want uint64) uint64 { return uint64(hostFeatures(int64(want))) }

func logAt(level int32, format string, args []any) {
	s := fmt.Sprintf(format, args...)
	p, n := ptr(s)
	hostLog(level, p, n)
}

// Debugf, Infof, Warnf and Errorf write to the server's diagnostics, tagged with the plugin.
func Debugf(format string, args ...any) { logAt(abi.LogDebug, format, args) }
func Infof(format string, args ...any)  { logAt(abi.LogInfo, format, args) }
func Warnf(format string, args ...any)  { logAt(abi.LogWarn, format, args) }
func Errorf(format string, args ...any) { logAt(abi.LogError, format, args) }

// Message is the message a message hook runs for. Changes are staged and take effect only if
// the handler returns nil.
type Message struct{}

// Meta returns a meta value and whether it is set.
func (*Message) Meta(key string) (string, bool) {
	kp, kn := ptr(key)
	v, n := fetchString(func(buf unsafe.Pointer, limit uint32) int32 { return hostGetMeta(kp, kn, buf, limit) })
	return v, n >= 0
}

// SetMeta sets a meta value. routing_domain and queue are checked at once: a malformed domain
// or literal is an error here, not a bounce later.
func (*Message) SetMeta(key, value string) error {
	kp, kn := ptr(key)
	vp, vn := ptr(value)
	return check("set_meta", hostSetMeta(kp, kn, vp, vn))
}

// Sender is the envelope sender ("" for the null sender <>).
func (*Message) Sender() string {
	v, _ := fetchString(func(buf unsafe.Pointer, limit uint32) int32 { return hostGetSender(buf, limit) })
	return v
}

// Recipients are the envelope recipients.
func (*Message) Recipients() []string {
	n := hostRecipientCount()
	out := make([]string, 0, max(n, 0))
	for i := int32(0); i < n; i++ {
		v, rc := fetchString(func(buf unsafe.Pointer, limit uint32) int32 { return hostGetRecipient(i, buf, limit) })
		if rc >= 0 {
			out = append(out, v)
		}
	}
	return out
}

// RecipientCount is the number of envelope recipients.
func (*Message) RecipientCount() int { return int(hostRecipientCount()) }

// Recipient returns envelope recipient i (0-based), or "" when out of range. Cheaper than
// Recipients when only the first one matters (each host call costs about half a microsecond).
func (*Message) Recipient(i int) string {
	v, rc := fetchString(func(buf unsafe.Pointer, limit uint32) int32 { return hostGetRecipient(int32(i), buf, limit) })
	if rc < 0 {
		return ""
	}
	return v
}

// Header returns the first header field named name (case-insensitive), unfolded as written.
func (*Message) Header(name string) (string, bool) {
	np, nn := ptr(name)
	v, rc := fetchString(func(buf unsafe.Pointer, l uint32) int32 { return hostGetHeader(np, nn, 0, buf, l) })
	return v, rc >= 0
}

// HeaderValues returns every field named name, in order.
func (*Message) HeaderValues(name string) []string {
	np, nn := ptr(name)
	var out []string
	for i := int32(0); ; i++ {
		v, rc := fetchString(func(buf unsafe.Pointer, l uint32) int32 { return hostGetHeader(np, nn, i, buf, l) })
		if rc < 0 {
			break
		}
		out = append(out, v)
	}
	return out
}

// PrependHeader adds a field above the existing header. CR or LF in name or value is refused.
func (*Message) PrependHeader(name, value string) error {
	np, nn := ptr(name)
	vp, vn := ptr(value)
	return check("prepend_header", hostPrependHeader(np, nn, vp, vn))
}

// AppendHeader adds a field at the end of the header.
func (*Message) AppendHeader(name, value string) error {
	np, nn := ptr(name)
	vp, vn := ptr(value)
	return check("append_header", hostAppendHeader(np, nn, vp, vn))
}

// Body returns the message body (after the header's blank line).
func (*Message) Body() ([]byte, error) {
	b, n := fetch(func(buf unsafe.Pointer, limit uint32) int32 { return hostGetBody(buf, limit) })
	return b, check("get_body", n)
}

// Reject refuses the message with an SMTP code (4xx or 5xx) and text, which may start with an
// enhanced status code: m.Reject(550, "5.7.1 not from here"). Return nil from the handler to
// make it take effect; later plugins are not run.
func (*Message) Reject(code int, text string) error {
	tp, tn := ptr(text)
	return check("reject", hostReject(int32(code), tp, tn))
}

// DKIMSign asks the host to DKIM-sign the message with a [[dkim]] key of the server config
// (ABI 1.1): Key, Domain (d=) and Selector (s=) are required; zero fields take the host's
// defaults (its default header list, relaxed/relaxed, no expiration). The host signs once the
// whole plugin chain ran, so later plugins' header edits are covered. Staged: it applies only if
// the handler returns nil. An unknown key name is an *Error with Status abi.Invalid whose Reason
// names it.
type DKIMSign struct {
	Key, Domain, Selector  string
	Headers                []string // h=; must include "From"
	HeaderCanonicalization string   // "relaxed" or "simple"
	BodyCanonicalization   string   // "relaxed" or "simple"
	Expiration             time.Duration
	OverSign               bool // h= lists each header once more than the message has it (ABI.md)
}

// JSON is the params document handed to dkim_sign.
func (d DKIMSign) JSON() ([]byte, error) {
	doc := struct {
		Key                    string        `json:"key"`
		Domain                 string        `json:"domain"`
		Selector               string        `json:"selector"`
		Headers                []string      `json:"headers,omitempty"`
		HeaderCanonicalization string        `json:"header_canonicalization,omitempty"`
		BodyCanonicalization   string        `json:"body_canonicalization,omitempty"`
		Expiration             *abi.Duration `json:"expiration,omitempty"`
		OverSign               bool          `json:"over_sign,omitempty"`
	}{Key: d.Key, Domain: d.Domain, Selector: d.Selector, Headers: d.Headers,
		HeaderCanonicalization: d.HeaderCanonicalization, BodyCanonicalization: d.BodyCanonicalization, OverSign: d.OverSign}
	if d.Expiration != 0 {
		v := abi.Duration(d.Expiration)
		doc.Expiration = &v
	}
	return json.Marshal(&doc)
}

// DKIMSign stages a DKIM signature request (see the DKIMSign type).
func (*Message) DKIMSign(d DKIMSign) error {
	js, err := d.JSON()
	if err != nil {
		return err
	}
	p, n := ptr(string(js))
	return check("dkim_sign", hostDKIMSign(p, n))
}

// Queue is the scheduled queue get_queue_config is asked about, from its parsed name.
type Queue struct {
	Name, Domain, Tenant, Campaign, RoutingDomain string
}

// QueueConfig is a queue's delivery config (design.md §5). Zero fields keep the server defaults.
type QueueConfig struct {
	RetryInterval    time.Duration
	MaxRetryInterval time.Duration
	MaxAge           time.Duration
	// MxList replaces MX resolution: hosts tried in order; names resolved for A/AAAA only.
	MxList []MXEntry

	raw []byte // set by RawQueueConfig
}

// MXEntry is one mx_list entry. Name alone is a host name or literal ("[10.0.0.1]",
// "smart.host.local:2525"); with Addr, the relay connects to Addr and uses Name for TLS and logs.
// In JSON (a plugin's config) it is a string or {"name": ..., "addr": ...}, as in KumoMTA.
type MXEntry = abi.MXEntry

// RawQueueConfig wraps a ready-made queue config document (abi.QueueConfig JSON), for plugins
// that build it from their own config.
func RawQueueConfig(doc []byte) *QueueConfig { return &QueueConfig{raw: doc} }

// JSON is the config document handed to the host (abi.QueueConfig).
func (c *QueueConfig) JSON() ([]byte, error) {
	if c.raw != nil {
		return c.raw, nil
	}
	var doc abi.QueueConfig
	dur := func(d time.Duration) *abi.Duration {
		if d == 0 {
			return nil
		}
		v := abi.Duration(d)
		return &v
	}
	doc.RetryInterval, doc.MaxRetryInterval, doc.MaxAge = dur(c.RetryInterval), dur(c.MaxRetryInterval), dur(c.MaxAge)
	if len(c.MxList) > 0 {
		doc.Protocol = &abi.Protocol{SMTP: &abi.SMTPProtocol{MXList: c.MxList}}
	}
	return json.Marshal(&doc)
}

// MakeQueueConfigJSON hands a raw queue config document to the host immediately (most plugins
// return a *QueueConfig from their OnGetQueueConfig handler instead). The error carries the
// host's reason, e.g. `queue config: json: unknown field "mx_lsit"`.
func MakeQueueConfigJSON(doc []byte) error {
	p, n := ptr(string(doc))
	return check("make_queue_config", hostMakeQueueConfig(p, n))
}

func queueInput(key string) string {
	kp, kn := ptr(key)
	v, _ := fetchString(func(buf unsafe.Pointer, limit uint32) int32 { return hostGetMeta(kp, kn, buf, limit) })
	return v
}

// EgressSite is what get_egress_path_config is asked about.
type EgressSite struct {
	// RoutingDomain is the destination of the message that first reached the site: its
	// routing_domain meta, else its domain.
	RoutingDomain string
	// Site is the site name: the MX host names, "mx_list:…", or the literal.
	Site string
}

// EgressPathConfig is an egress path's settings, with the names of the server's [egress]
// (abi.EgressPathConfig). Zero fields are not set: the server's [[egress.path]] and [egress]
// apply.
type EgressPathConfig struct {
	ConnectionLimit            int
	MaxDeliveriesPerConnection int
	MaxMessageRate             string // "N/period[,max_burst=M]", e.g. "100/s"
	MaxConnectionRate          string
	EnableTLS                  string // "Opportunistic", "OpportunisticInsecure", "Required", "RequiredInsecure", "Disabled"
	SMTPAuthPlainUsername      string
	// SMTPAuthPlainPassword is the NAME of a [secrets] entry of the server: a plugin never
	// sees a password. The host refuses a name it does not have, or a secret whose
	// allowed_sites / allowed_routing_domains exclude this site.
	SMTPAuthPlainPassword        string
	AllowSMTPAuthPlainWithoutTLS *bool
	EHLODomain                   string
	SourceAddress                string // a local IP address
	// SMTPPort is the port connected to when the destination names none (a literal, routing
	// domain or mx_list entry with its own port keeps it); 0: the server's.
	SMTPPort int
	// The delivery client's timeouts (ABI.md make_egress_path_config); 0: the server's.
	// ConnectTimeout is the TCP connect to each host; CommandTimeout every reply but the one to
	// the final dot, and every command write; DataTimeout the body's write and the reply to its
	// final dot; IdleTimeout how long an unused connection stays open for the next message.
	ConnectTimeout time.Duration
	CommandTimeout time.Duration
	DataTimeout    time.Duration
	IdleTimeout    time.Duration

	raw []byte // set by RawEgressPathConfig
}

// RawEgressPathConfig wraps a ready-made egress path config document (abi.EgressPathConfig
// JSON, the [egress] key names), for plugins that take it from their own config.
func RawEgressPathConfig(doc []byte) *EgressPathConfig { return &EgressPathConfig{raw: doc} }

// JSON is the document handed to make_egress_path_config.
func (c *EgressPathConfig) JSON() ([]byte, error) {
	if c.raw != nil {
		return c.raw, nil
	}
	var doc abi.EgressPathConfig
	num := func(n int) *int {
		if n == 0 {
			return nil
		}
		return &n
	}
	str := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	doc.ConnectionLimit, doc.MaxDeliveriesPerConnection = num(c.ConnectionLimit), num(c.MaxDeliveriesPerConnection)
	doc.MaxMessageRate, doc.MaxConnectionRate = str(c.MaxMessageRate), str(c.MaxConnectionRate)
	doc.EnableTLS, doc.EHLODomain, doc.SourceAddress = str(c.EnableTLS), str(c.EHLODomain), str(c.SourceAddress)
	doc.SMTPAuthPlainUsername, doc.SMTPAuthPlainPassword = str(c.SMTPAuthPlainUsername), str(c.SMTPAuthPlainPassword)
	doc.AllowSMTPAuthPlainWithoutTLS = c.AllowSMTPAuthPlainWithoutTLS
	doc.SMTPPort = num(c.SMTPPort)
	dur := func(d time.Duration) *abi.Duration {
		if d == 0 {
			return nil
		}
		v := abi.Duration(d)
		return &v
	}
	doc.ConnectTimeout, doc.CommandTimeout = dur(c.ConnectTimeout), dur(c.CommandTimeout)
	doc.DataTimeout, doc.IdleTimeout = dur(c.DataTimeout), dur(c.IdleTimeout)
	return json.Marshal(&doc)
}

// MakeEgressPathConfigJSON hands a raw egress path config document to the host immediately
// (ABI 1.2; most plugins return an *EgressPathConfig from OnGetEgressPathConfig instead). The
// error carries the host's reason, e.g. `egress path config: json: unknown field
// "conection_limit"`.
func MakeEgressPathConfigJSON(doc []byte) error {
	p, n := ptr(string(doc))
	return check("make_egress_path_config", hostMakeEgressPathConfig(p, n))
}

// Hook bodies, called by the exports in exports_wasip1.go.

func runInit() int32 {
	if onInit == nil {
		return 0
	}
	return fail(onInit())
}

func runMessage(h func(*Message) error) int32 {
	if h == nil {
		return 0
	}
	return fail(h(&Message{}))
}

func runQueueConfig() int32 {
	if onQueueConfig == nil {
		return 0
	}
	q := Queue{
		Name: queueInput(abi.QueueInputName), Domain: queueInput(abi.QueueInputDomain),
		Tenant: queueInput(abi.QueueInputTenant), Campaign: queueInput(abi.QueueInputCampaign),
		RoutingDomain: queueInput(abi.QueueInputRoutingDomain),
	}
	c, err := onQueueConfig(q)
	if err != nil || c == nil {
		return fail(err)
	}
	js, err := c.JSON()
	if err != nil {
		return fail(err)
	}
	p := unsafe.Pointer(unsafe.SliceData(js))
	return fail(check("make_queue_config", hostMakeQueueConfig(p, uint32(len(js)))))
}

func runEgressPathConfig() int32 {
	if onEgressPathConfig == nil {
		return 0
	}
	c, err := onEgressPathConfig(EgressSite{
		RoutingDomain: queueInput(abi.EgressInputRoutingDomain), Site: queueInput(abi.EgressInputSite),
	})
	if err != nil || c == nil {
		return fail(err)
	}
	js, err := c.JSON()
	if err != nil {
		return fail(err)
	}
	p := unsafe.Pointer(unsafe.SliceData(js))
	return fail(check("make_egress_path_config", makeEgressPathConfig(p, uint32(len(js)))))
}

func fail(err error) int32 {
	if err == nil {
		return 0
	}
	p, n := ptr(err.Error())
	hostSetError(p, n)
	return 1
}
