package plugin

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasmta/wasmta/abi"
)

// WASI errno values (WASI preview 1, "errno").
const (
	errnoSuccess = 0
	errnoBadf    = 8
	errnoFault   = 21
	errnoInval   = 28
	errnoNotsup  = 58
)

// WASI event types (WASI preview 1, "eventtype").
const (
	eventClock   = 0
	eventFdRead  = 1
	eventFdWrite = 2
)

// randomChunk is how much random_get fills between looks at the call's stop flag: about 2.5 ms
// of the system's generator.
const randomChunk = 1 << 20

// errStoppedInHost ends a call that was stopped while a host function worked for it.
var errStoppedInHost = errors.New("wasmta: call stopped during a WASI call")

// instantiateWASI instantiates the WASI module a plugin imports, with four functions of its
// own in place of wazero's, whose cost a guest could otherwise make as large as it likes in one
// call that nothing interrupts: fd_write and fd_read take at most abi.MaxIOVecs iovecs (each
// costs a host write or read, and one call may list half a billion), poll_oneoff at most
// abi.MaxSubscriptions subscriptions, and random_get, whose length may be all of the guest's
// memory (about 10 s of the system's generator for 4 GiB), gives up when the call is stopped.
// out receives stdout and stderr.
func instantiateWASI(ctx context.Context, rt wazero.Runtime, out io.Writer) error {
	b := rt.NewHostModuleBuilder(abi.WASIModule)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	p4 := []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}
	r1 := []api.ValueType{api.ValueTypeI32}
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, mod api.Module, s []uint64) {
		s[0] = fdWrite(mod, out, u32(s[0]), u32(s[1]), u32(s[2]), u32(s[3]))
	}), p4, r1).WithParameterNames("fd", "iovs", "iovs_len", "result.nwritten").Export(abi.WASIFdWrite)
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, mod api.Module, s []uint64) {
		s[0] = fdRead(mod, u32(s[0]), u32(s[1]), u32(s[2]), u32(s[3]))
	}), p4, r1).WithParameterNames("fd", "iovs", "iovs_len", "result.nread").Export(abi.WASIFdRead)
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, s []uint64) {
		s[0] = randomGet(ctx, mod, u32(s[0]), u32(s[1]))
	}), p4[:2], r1).WithParameterNames("buf", "buf_len").Export(abi.WASIRandomGet)
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, mod api.Module, s []uint64) {
		s[0] = pollOneoff(mod, u32(s[0]), u32(s[1]), u32(s[2]), u32(s[3]))
	}), p4, r1).WithParameterNames("in", "out", "nsubscriptions", "result.nevents").Export(abi.WASIPollOneoff)
	_, err := b.Instantiate(ctx)
	return err
}

// pollOneoff is poll_oneoff as wazero's answers it for a plugin's descriptors (0 stdin, always
// ready with nothing; 1 and 2 stdout and stderr; no other), with at most abi.MaxSubscriptions
// subscriptions: wazero's took as many as the guest's memory holds (89 million with 4 GiB) and
// allocated host memory for each one on a descriptor, outside the plugin's memory cap. Clocks
// do not sleep (wazero's default, ABI.md): every subscription is answered at once, in order,
// except that those waiting to read come after the others, as wazero orders them.
func pollOneoff(mod api.Module, in, out, n, result uint32) uint64 {
	if n == 0 || n > abi.MaxSubscriptions {
		return errnoInval
	}
	mem := mod.Memory()
	subs, ok := mem.Read(in, 48*n)
	if !ok {
		return errnoFault
	}
	events, ok := mem.Read(out, 32*n)
	if !ok {
		return errnoFault
	}
	clear(events)
	if !mem.WriteUint32Le(result, n) {
		return errnoFault
	}
	event := func(i uint32, sub []byte, errno byte) {
		e := events[32*i:]
		copy(e, sub[:8]) // userdata
		e[8] = errno
		binary.LittleEndian.PutUint32(e[10:], uint32(sub[8]))
	}
	var nevents uint32
	var reads [abi.MaxSubscriptions]uint32 // waiting to read: answered after the others
	var nreads int
	for i := uint32(0); i < n; i++ {
		sub := subs[48*i : 48*i+48]
		switch sub[8] {
		case eventClock:
			switch binary.LittleEndian.Uint16(sub[40:]) { // subclockflags
			case 0: // relative: the host does not sleep
			case 1: // abstime
				return errnoNotsup
			default:
				return errnoInval
			}
			event(nevents, sub, 0)
			nevents++
		case eventFdRead, eventFdWrite:
			fd := int32(binary.LittleEndian.Uint32(sub[16:]))
			switch {
			case fd < 0:
				return errnoBadf
			case fd > 2:
				event(nevents, sub, errnoBadf)
				nevents++
			case sub[8] == eventFdWrite:
				event(nevents, sub, errnoNotsup)
				nevents++
			default:
				reads[nreads] = i
				nreads++
			}
		default:
			return errnoInval
		}
	}
	for _, i := range reads[:nreads] {
		event(nevents, subs[48*i:48*i+48], 0)
		nevents++
	}
	return errnoSuccess
}

// iovecs returns the guest's iovec array, or an errno: inval beyond abi.MaxIOVecs (checked
// before anything is read), fault outside its memory.
func iovecs(mod api.Module, iovs, n uint32) ([]byte, uint64) {
	if n > abi.MaxIOVecs {
		return nil, errnoInval
	}
	b, ok := mod.Memory().Read(iovs, 8*n)
	if !ok {
		return nil, errnoFault
	}
	return b, errnoSuccess
}

// fdWrite is fd_write for stdout and stderr, the only descriptors a plugin can write (no file
// can be opened): each iovec goes to out, as wazero's fd_write does.
func fdWrite(mod api.Module, out io.Writer, fd, iovs, n, result uint32) uint64 {
	if fd != 1 && fd != 2 {
		return errnoBadf
	}
	vec, errno := iovecs(mod, iovs, n)
	if errno != errnoSuccess {
		return errno
	}
	var written uint32
	for i := 0; i < len(vec); i += 8 {
		b, ok := mod.Memory().Read(binary.LittleEndian.Uint32(vec[i:]), binary.LittleEndian.Uint32(vec[i+4:]))
		if !ok {
			return errnoFault
		}
		k, _ := out.Write(b) // guestOutput never fails
		written += uint32(k)
	}
	if !mod.Memory().WriteUint32Le(result, written) {
		return errnoFault
	}
	return errnoSuccess
}

// fdRead is fd_read: stdin is empty (nothing is configured for it), so a read of it reads 0
// bytes, end of file; stdout and stderr cannot be read, and no other descriptor exists.
func fdRead(mod api.Module, fd, iovs, n, result uint32) uint64 {
	if fd != 0 {
		return errnoBadf
	}
	if _, errno := iovecs(mod, iovs, n); errno != errnoSuccess {
		return errno
	}
	if !mod.Memory().WriteUint32Le(result, 0) {
		return errnoFault
	}
	return errnoSuccess
}

// randomGet is random_get from the system's generator, in chunks, looking between them at the
// call's deadline: a call past it (or whose caller gave up) ends here, as it would at the
// guest's next check, instead of after filling all of a length the guest chose.
func randomGet(ctx context.Context, mod api.Module, buf, n uint32) uint64 {
	b, ok := mod.Memory().Read(buf, n)
	if !ok {
		return errnoFault
	}
	for len(b) > 0 {
		stopIfOverdue(ctx)
		k := min(len(b), randomChunk)
		rand.Read(b[:k]) // never fails (crypto/rand)
		b = b[k:]
	}
	return errnoSuccess
}

// stopIfOverdue ends the call ctx belongs to, from inside a host function, if it was stopped or
// is past its deadline: it claims it as the watchdog would (stopCall), so the caller reports a
// deadline, and panics, which wazero turns into the call's error.
func stopIfOverdue(ctx context.Context) {
	st := stateOf(ctx)
	if st == nil || st.in == nil {
		return
	}
	in := st.in
	d := in.deadline.Load()
	if d > 0 && mono() > d {
		stopCall(in, d, stoppedDeadline)
		d = in.deadline.Load()
	}
	if d < 0 {
		panic(errStoppedInHost)
	}
}
