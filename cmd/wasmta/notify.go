package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// sdNotify tells the service manager about the server's state, as sd_notify(3) does: one
// datagram of "KEY=value" lines to the Unix socket named by $NOTIFY_SOCKET (a path, or an
// abstract socket written "@name"). Without $NOTIFY_SOCKET (not started by systemd with
// Type=notify) it does nothing. The unit in docs/dist/wasmta.service relies on READY=1 being
// sent only once every listener is up.
func sdNotify(state ...string) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	if addr[0] != '/' && addr[0] != '@' {
		// systemd also knows vsock addresses ("vsock:CID:PORT"), for virtual machines.
		return fmt.Errorf("NOTIFY_SOCKET %q: only a path or an abstract (@) socket is supported", addr)
	}
	// Go's net package turns a leading '@' into the abstract namespace's NUL on Linux.
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("NOTIFY_SOCKET %s: %w", addr, err)
	}
	defer c.Close()
	// A datagram, so the whole state arrives at once or not at all; a stuck manager must not
	// hold the server up.
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(strings.Join(state, "\n") + "\n")); err != nil {
		return fmt.Errorf("NOTIFY_SOCKET %s: %w", addr, err)
	}
	return nil
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, which systemd wants with RELOADING=1
// (MONOTONIC_USEC) to tell this reload from an earlier one.
func monotonicUsec() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return "0"
	}
	return fmt.Sprint(ts.Nano() / 1000)
}
