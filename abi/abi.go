// Package abi is the contract between wasmta and its WebAssembly plugins (ABI v1.2, described in
// ABI.md): every export and import name, status code, log level, limit and version lives here
// and nowhere else. It uses only the standard library, so it builds for the host and for
// GOOS=wasip1 guests alike; the host and the Go SDK both import it.
package abi

// Version is the ABI version a host implements: major in the high 16 bits, minor in the low.
// A new host function, hook or feature bit is a minor change; a changed signature or meaning is
// a major one (and a new marker export).
const (
	Major   = 1
	Minor   = 2 // 1.1: dkim_sign; 1.2: get_egress_path_config, make_egress_path_config
	Version = Major<<16 | Minor
)

// HostModule is the import module name of every host function.
const HostModule = "wasmta"

// WASIModule is the only other module a plugin may import from, and only the functions ABI.md
// lists (language runtimes need them to start, read clocks and write diagnostics).
const WASIModule = "wasi_snapshot_preview1"

// WASI functions the host implements itself rather than as the WASI module does, to bound what
// one call can cost (ABI.md, section 2).
const (
	WASIFdWrite    = "fd_write"
	WASIFdRead     = "fd_read"
	WASIRandomGet  = "random_get"
	WASIPollOneoff = "poll_oneoff"
	// MaxIOVecs is how many iovecs one fd_write or fd_read takes (POSIX IOV_MAX as Linux has
	// it); more is errno inval.
	MaxIOVecs = 1024
	// MaxSubscriptions is how many subscriptions one poll_oneoff takes (as poll(2) with
	// Linux's default RLIMIT_NOFILE); more is errno inval.
	MaxSubscriptions = 1024
)

// Guest exports.
const (
	// ExportMarker must be exported with type () -> (): it declares ABI v1.
	ExportMarker = "wasmta_abi_v1"
	// ExportInit, optional, () -> i32, runs once per instance after _initialize; non-zero fails
	// the load or reload.
	ExportInit = "wasmta_init"
	// ExportInitialize is the reactor start function of Go c-shared and wasi-libc modules.
	ExportInitialize = "_initialize"
	ExportMemory     = "memory"
)

// Reserved export names: the host adds these exports to a plugin when it loads it (the
// termination checks of ABI.md §6), so a plugin that exports any of them itself is refused.
const (
	// ReservedStop is a mutable i32 global, added by the host and 0 while a call may run, that
	// the checks at guest function entries and loop heads read; the host sets it to 1 to end
	// an overdue call.
	ReservedStop = "wasmta.stop"
	// ReservedFuel is the countdown, added by the host, of the checks before the guest's next
	// trip into the host (where it also reads the stop global); the host sets it to 0 with
	// the stop global so the guest stops at its next check.
	ReservedFuel = "wasmta.fuel"
	// ReservedStart is the module's start function (the start section), which the host runs
	// as an export under the init deadline instead of inside instantiation.
	ReservedStart = "wasmta.start"
)

// Reserved lists the export names a plugin may not use.
var Reserved = []string{ReservedStop, ReservedFuel, ReservedStart}

// Hooks: optional guest exports with type () -> i32, named after KumoMTA's events.
const (
	HookSMTPServerMessageReceived = "smtp_server_message_received"
	HookHTTPMessageGenerated      = "http_message_generated"
	HookGetQueueConfig            = "get_queue_config"
	// HookGetEgressPathConfig (since ABI 1.2) is asked for the egress path of a site: the
	// limits and transport settings of the connections to it.
	HookGetEgressPathConfig = "get_egress_path_config"
)

// Hooks lists every hook name.
var Hooks = []string{HookSMTPServerMessageReceived, HookHTTPMessageGenerated, HookGetQueueConfig, HookGetEgressPathConfig}

// Host functions (module HostModule). Signatures are in ABI.md and in the host's table.
const (
	FnABIVersion      = "abi_version"       // () -> i32
	FnFeatures        = "features"          // (want i64) -> i64
	FnLog             = "log"               // (level, ptr, len i32)
	FnGetConfig       = "get_config"        // (buf, limit i32) -> i32
	FnSetError        = "set_error"         // (ptr, len i32)
	FnLastError       = "last_error"        // (buf, limit i32) -> i32
	FnGetMeta         = "get_meta"          // (key, key_len, buf, limit i32) -> i32
	FnSetMeta         = "set_meta"          // (key, key_len, val, val_len i32) -> i32
	FnGetSender       = "get_sender"        // (buf, limit i32) -> i32
	FnRecipientCount  = "recipient_count"   // () -> i32
	FnGetRecipient    = "get_recipient"     // (idx, buf, limit i32) -> i32
	FnGetHeader       = "get_header"        // (name, name_len, idx, buf, limit i32) -> i32
	FnPrependHeader   = "prepend_header"    // (name, name_len, val, val_len i32) -> i32
	FnAppendHeader    = "append_header"     // (name, name_len, val, val_len i32) -> i32
	FnGetBody         = "get_body"          // (buf, limit i32) -> i32
	FnReject          = "reject"            // (code, text, text_len i32) -> i32
	FnMakeQueueConfig = "make_queue_config" // (json, json_len i32) -> i32
	FnDKIMSign        = "dkim_sign"         // (json, json_len i32) -> i32; since ABI 1.1
	// FnMakeEgressPathConfig hands over an egress path config in get_egress_path_config.
	FnMakeEgressPathConfig = "make_egress_path_config" // (json, json_len i32) -> i32; since ABI 1.2
)

// Status codes returned by host functions. Non-negative results are lengths or counts.
const (
	OK            = 0
	NotFound      = -1 // unknown key, index out of range, no such header
	Invalid       = -2 // malformed argument: bad key, CR/LF in a header, bad JSON, bad code
	NotAllowed    = -3 // call outside the hook it belongs to, read-only key, feature not granted
	Limit         = -4 // a budget is exceeded (sizes, counts)
	Unimplemented = -5 // the host knows the name but does not implement it
)

// Log levels for FnLog.
const (
	LogDebug = -1
	LogInfo  = 0
	LogWarn  = 1
	LogError = 2
)

// Feature bits for FnFeatures: the host answers want ∩ granted. Unknown bits are 0.
const (
	FeatureHeaderWrite uint64 = 1 << 0 // prepend_header / append_header allowed
	FeatureBodyRead    uint64 = 1 << 1 // get_body allowed
)

// Meta keys with routing meaning (design.md §2), writable in message hooks.
const (
	MetaQueue         = "queue"
	MetaTenant        = "tenant"
	MetaCampaign      = "campaign"
	MetaRoutingDomain = "routing_domain"
)

// MetaAuthnID is set by reception, before the message hooks run, to the user an SMTP client
// authenticated as (AUTH, design.md §12); absent when it did not authenticate.
const MetaAuthnID = "authn_id"

// Read-only inputs of get_queue_config, read with FnGetMeta.
const (
	QueueInputName          = "queue"
	QueueInputDomain        = "domain"
	QueueInputTenant        = "tenant"
	QueueInputCampaign      = "campaign"
	QueueInputRoutingDomain = "routing_domain"
)

// Read-only inputs of get_egress_path_config, read with FnGetMeta; both are always present.
const (
	// EgressInputRoutingDomain is the destination of the message that first reached the site:
	// its routing_domain, else its domain.
	EgressInputRoutingDomain = "routing_domain"
	// EgressInputSite is the site name: the MX host names, the mx_list or the literal.
	EgressInputSite = "site"
)

// Limits enforced by the host.
const (
	MaxMetaKey         = 64        // bytes
	MaxMetaValue       = 1024      // bytes
	MaxMetaKeys        = 64        // per message
	MaxHeaderName      = 76        // RFC 5322 recommends ≤ 78 per line including ": "
	MaxHeaderValue     = 998       // RFC 5322 §2.1.1 line limit
	MaxHeaderLine      = 998       // bytes per line of an added field without CRLF (RFC 5322 §2.1.1): longer fields are folded
	MaxHeaderEdits     = 32        // prepends + appends per hook call, then Limit
	MaxQueueConfig     = 64 << 10  // bytes of JSON
	MaxLogLine         = 4 << 10   // bytes; longer lines are cut
	MaxLogLinesPerCall = 32        // log lines kept per hook call; more are dropped and counted
	MaxLogBytesPerCall = 16 << 10  // log bytes kept per hook call; more are dropped and counted
	MaxRejectText      = 512       // bytes
	MaxErrorText       = 1024      // bytes kept from set_error
	MaxHostCalls       = 100_000   // per hook call, inclusive; the next ones return Limit
	DefaultMaxMemory   = 64 << 20  // bytes of linear memory per instance unless configured
	MaxMemory          = 1 << 32   // bytes: 65536 pages of 64 KiB, all a 32-bit memory can address
	PageSize           = 64 << 10  // bytes per WebAssembly page; max_memory is rounded up to pages
	GoMinMemory        = 128 << 20 // bytes: what a Go guest gets at least
	MaxPoolSize        = 1024      // instances per plugin at most (pool_size)
	MaxTimeoutSeconds  = 600       // per hook call at most (timeout): RFC 5321 §4.5.3.2.6's DATA wait
	MaxDKIMParams      = 4 << 10   // bytes of dkim_sign JSON
	MaxDKIMSignatures  = 8         // dkim_sign requests per message, all plugins of the chain together
	MaxDKIMHeaders     = 64        // header names in one dkim_sign request
)

// HostFunctions lists every host function name of ABI v1 (up to this minor version).
var HostFunctions = []string{
	FnABIVersion, FnFeatures, FnLog, FnGetConfig, FnSetError, FnLastError, FnGetMeta, FnSetMeta,
	FnGetSender, FnRecipientCount, FnGetRecipient, FnGetHeader, FnPrependHeader, FnAppendHeader,
	FnGetBody, FnReject, FnMakeQueueConfig, FnDKIMSign, FnMakeEgressPathConfig,
}

// Exports lists every guest export name of ABI v1 (hooks included).
var Exports = append([]string{ExportMarker, ExportInit, ExportMemory}, Hooks...)
