package smtpserver

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
)

// limitListener caps concurrent connections (421 beyond the cap, SPEC §7), turns on TCP_NODELAY
// (Go's default, kept explicit: without it small replies wait for delayed ACKs), and gives the
// greeting wasmta's banner: go-smtp's fixed "ESMTP Service Ready" becomes "ESMTP wasmta".
type limitListener struct {
	net.Listener
	max      int
	hostname string
	n        atomic.Int64
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		if l.max > 0 && l.n.Add(1) > int64(l.max) {
			l.n.Add(-1)
			_, _ = c.Write([]byte("421 4.3.2 " + l.hostname + " too many connections, try again later\r\n"))
			c.Close()
			continue
		}
		if l.max <= 0 {
			l.n.Add(1)
		}
		return &countedConn{Conn: c, l: l}, nil
	}
}

type countedConn struct {
	net.Conn
	l       *limitListener
	once    sync.Once
	greeted bool
}

var (
	goSMTPBanner = []byte(" ESMTP Service Ready\r\n")
	ourBanner    = []byte(" ESMTP wasmta\r\n")
)

func (c *countedConn) Write(p []byte) (int, error) {
	if !c.greeted {
		c.greeted = true
		if bytes.HasPrefix(p, []byte("220 ")) && bytes.HasSuffix(p, goSMTPBanner) {
			q := append(append([]byte{}, p[:len(p)-len(goSMTPBanner)]...), ourBanner...)
			if _, err := c.Conn.Write(q); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	return c.Conn.Write(p)
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.n.Add(-1) })
	return c.Conn.Close()
}
