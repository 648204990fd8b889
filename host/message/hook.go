package message

import "github.com/wasmta/wasmta/abi"

// Hook is what a message hook (smtp_server_message_received, http_message_generated) reads and
// changes: the envelope, meta and the message data (header and body, CRLF line ends). It lives
// here, not in the plugin runtime, so reception and injection hand messages to plugins without
// depending on the WebAssembly runtime (host/plugin implements the hooks).
type Hook struct {
	// Client identifies who sent the message (the peer IP, or IP:port, at reception; "" when
	// unknown). The plugin failure breaker counts distinct clients (IPv6 by /64), so one client
	// cannot stop a plugin for everyone.
	Client     string
	Sender     string
	Recipients []string
	Meta       map[string]string
	Data       []byte
	// DKIM lists the signatures plugins asked for (dkim_sign), in order; reception signs once
	// the whole chain ran.
	DKIM []abi.DKIMSign
}

// HookOutcome is the result of a message hook chain.
type HookOutcome struct {
	// Reject is set when a plugin rejected the message; the chain stopped there.
	Reject *Reply
	// Handled lists "plugin@generation" for every plugin that ran, in order.
	Handled []string
}
