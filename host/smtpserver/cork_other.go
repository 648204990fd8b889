//go:build !linux

package smtpserver

import "net"

// corkForClose does nothing where TCP_CORK is not known (see cork_linux.go).
func corkForClose(*net.TCPConn) {}
