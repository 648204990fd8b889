//go:build !wasip1

package wasmta

import (
	"unsafe"

	"github.com/wasmta/wasmta/abi"
)

// Outside WebAssembly there is no host: every call reports Unimplemented. This keeps plugin
// packages buildable (go vet ./...) and lets their pure logic be unit-tested natively.

func hostABIVersion() int32                                            { return 0 }
func hostFeatures(int64) int64                                         { return 0 }
func hostLog(int32, unsafe.Pointer, uint32)                            {}
func hostGetConfig(unsafe.Pointer, uint32) int32                       { return abi.Unimplemented }
func hostSetError(unsafe.Pointer, uint32)                              {}
func hostLastError(unsafe.Pointer, uint32) int32                       { return 0 }
func hostGetMeta(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int32 { return abi.Unimplemented }
func hostSetMeta(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int32 { return abi.Unimplemented }
func hostGetSender(unsafe.Pointer, uint32) int32                       { return abi.Unimplemented }
func hostRecipientCount() int32                                        { return 0 }
func hostGetRecipient(int32, unsafe.Pointer, uint32) int32             { return abi.Unimplemented }
func hostGetHeader(unsafe.Pointer, uint32, int32, unsafe.Pointer, uint32) int32 {
	return abi.Unimplemented
}
func hostPrependHeader(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int32 {
	return abi.Unimplemented
}
func hostAppendHeader(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int32 { return abi.Unimplemented }
func hostGetBody(unsafe.Pointer, uint32) int32                              { return abi.Unimplemented }
func hostReject(int32, unsafe.Pointer, uint32) int32                        { return abi.Unimplemented }
func hostMakeQueueConfig(unsafe.Pointer, uint32) int32                      { return abi.Unimplemented }
func hostDKIMSign(unsafe.Pointer, uint32) int32                             { return abi.Unimplemented }
func hostMakeEgressPathConfig(unsafe.Pointer, uint32) int32                 { return abi.Unimplemented }
