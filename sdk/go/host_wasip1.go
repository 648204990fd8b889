//go:build wasip1

package wasmta

import "unsafe"

// Host imports. Names must match package abi (TestDirectivesMatchABI checks them).

//go:wasmimport wasmta abi_version
func hostABIVersion() int32

//go:wasmimport wasmta features
func hostFeatures(want int64) int64

//go:wasmimport wasmta log
func hostLog(level int32, msg unsafe.Pointer, n uint32)

//go:wasmimport wasmta get_config
func hostGetConfig(buf unsafe.Pointer, limit uint32) int32

//go:wasmimport wasmta set_error
func hostSetError(msg unsafe.Pointer, n uint32)

//go:wasmimport wasmta last_error
func hostLastError(buf unsafe.Pointer, limit uint32) int32

//go:wasmimport wasmta get_meta
func hostGetMeta(key unsafe.Pointer, keyLen uint32, buf unsafe.Pointer, limit uint32) int32

//go:wasmimport wasmta set_meta
func hostSetMeta(key unsafe.Pointer, keyLen uint32, val unsafe.Pointer, valLen uint32) int32

//go:wasmimport wasmta get_sender
func hostGetSender(buf unsafe.Pointer, limit uint32) int32

//go:wasmimport wasmta recipient_count
func hostRecipientCount() int32

//go:wasmimport wasmta get_recipient
func hostGetRecipient(idx int32, buf unsafe.Pointer, limit uint32) int32

//go:wasmimport wasmta get_header
func hostGetHeader(name unsafe.Pointer, nameLen uint32, idx int32, buf unsafe.Pointer, limit uint32) int32

//go:wasmimport wasmta prepend_header
func hostPrependHeader(name unsafe.Pointer, nameLen uint32, val unsafe.Pointer, valLen uint32) int32

//go:wasmimport wasmta append_header
func hostAppendHeader(name unsafe.Pointer, nameLen uint32, val unsafe.Pointer, valLen uint32) int32

//go:wasmimport wasmta get_body
func hostGetBody(buf unsafe.Pointer, limit uint32) int32

//go:wasmimport wasmta reject
func hostReject(code int32, text unsafe.Pointer, n uint32) int32

//go:wasmimport wasmta make_queue_config
func hostMakeQueueConfig(js unsafe.Pointer, n uint32) int32

//go:wasmimport wasmta dkim_sign
func hostDKIMSign(js unsafe.Pointer, n uint32) int32

//go:wasmimport wasmta make_egress_path_config
func hostMakeEgressPathConfig(js unsafe.Pointer, n uint32) int32

// Exports.

//go:wasmexport wasmta_abi_v1
func exportABIV1() {}

//go:wasmexport wasmta_init
func exportInit() int32 { return runInit() }

//go:wasmexport smtp_server_message_received
func exportSMTPServerMessageReceived() int32 { return runMessage(onMessageReceived) }

//go:wasmexport http_message_generated
func exportHTTPMessageGenerated() int32 { return runMessage(onMessageGenerated) }

//go:wasmexport get_queue_config
func exportGetQueueConfig() int32 { return runQueueConfig() }

//go:wasmexport get_egress_path_config
func exportGetEgressPathConfig() int32 { return runEgressPathConfig() }
