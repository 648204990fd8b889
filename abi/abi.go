// Package abi is the contract between wasmta and its WebAssembly plugins: every export and
// import name, status code and version lives here and nowhere else. It uses only the standard
// library so that it builds for the host and for GOOS=wasip1 guests alike.
package abi

// Hook names are the events a plugin may export (SPEC §10); they match KumoMTA's event names.
const (
	HookSMTPServerMessageReceived = "smtp_server_message_received"
	HookHTTPMessageGenerated      = "http_message_generated"
	HookGetQueueConfig            = "get_queue_config"
)

// Meta keys with routing meaning (SPEC §2).
const (
	MetaQueue         = "queue"
	MetaTenant        = "tenant"
	MetaCampaign      = "campaign"
	MetaRoutingDomain = "routing_domain"
)
