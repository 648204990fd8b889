package smtpserver

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmta/wasmta/host/auth"
)

// limitListener caps concurrent connections (421 beyond the cap, design.md §7) and hands out
// *conn, which go-smtp reads and writes through (under STARTTLS, through tls.Conn). TCP_NODELAY
// is on (Go sets it on every TCP connection; without it small replies wait for delayed ACKs),
// TCP keep-alive off (see listenConfig).
type limitListener struct {
	net.Listener
	max      int
	hostname string
	idle     time.Duration
	n        atomic.Int64
	// clients counts connections per client address over all the server's listeners
	// (max_connections_per_ip); nil = no cap.
	clients *clientCounts
	// implicitTLS: a listen_tls listener; its connections start with the TLS handshake.
	implicitTLS bool
	// refused counts the connections this listener turned away, for all of the server's.
	refused *refusals
}

// refusals counts connections refused at accept, by the limit that refused them.
type refusals struct {
	maxConnections, perIP atomic.Int64
}

// listenConfig binds the SMTP listeners. Keep-alive probes are off: every read of a session has
// the idle_timeout deadline and every write go-smtp's write timeout (the same), so a vanished
// client is dropped by those first, and the four setsockopt calls Go makes to turn keep-alive on
// for each accepted connection would be spent for nothing, once per message with clients that
// open a connection per message.
var listenConfig = net.ListenConfig{KeepAlive: -1}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.max > 0 && l.n.Add(1) > int64(l.max) {
			l.n.Add(-1)
			l.refused.maxConnections.Add(1)
			_, _ = c.Write([]byte("421 4.3.2 " + l.hostname + " too many connections, try again later\r\n"))
			c.Close()
			continue
		}
		if l.max <= 0 {
			l.n.Add(1)
		}
		nc := &conn{Conn: c, l: l, idle: l.idle, slack: renewSlack(l.idle), closed: make(chan struct{})}
		if k, ok := clientKey(c.RemoteAddr()); ok && l.clients != nil {
			if !l.clients.acquire(k) {
				l.n.Add(-1)
				l.refused.perIP.Add(1)
				// Postfix's smtpd_client_connection_count_limit answers 421 4.7.0 too.
				_, _ = c.Write([]byte("421 4.7.0 " + l.hostname + " too many connections from your address, try again later\r\n"))
				c.Close()
				continue
			}
			nc.client, nc.counted = k, true
		}
		return nc, nil
	}
}

// clientKey is the client network of a connection's remote address (auth.Network).
func clientKey(a net.Addr) (netip.Prefix, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	return auth.Network(ip), true
}

// clientCounts counts open connections per client network, for every listener of a server
// together: a client that could open max_connections_per_ip on each listener would get as many
// times the cap as there are listeners. An entry lives while its network has a connection open,
// so the table is bounded by max_connections times the number of listeners.
type clientCounts struct {
	max int
	mu  sync.Mutex
	m   map[netip.Prefix]int
}

func newClientCounts(max int) *clientCounts {
	return &clientCounts{max: max, m: map[netip.Prefix]int{}}
}

// acquire counts one more connection of k, unless k already has max.
func (cc *clientCounts) acquire(k netip.Prefix) bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.m[k] >= cc.max {
		return false
	}
	cc.m[k]++
	return true
}

func (cc *clientCounts) release(k netip.Prefix) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if n := cc.m[k] - 1; n > 0 {
		cc.m[k] = n
	} else {
		delete(cc.m, k)
	}
}

// conn is the TCP connection as go-smtp sees it. It
//   - gives the greeting wasmta's banner (go-smtp's fixed "ESMTP Service Ready" becomes "ESMTP
//     wasmta");
//   - makes the read timeout an inactivity timeout: go-smtp sets one deadline per command, so a
//     long DATA phase would have to finish within idle_timeout; here every read gets idle more,
//     capped by the phase deadline (data_timeout for a DATA phase);
//   - remembers that a read failed (timeout, EOF, reset): bufio hands go-smtp the part of a line
//     read before the failure as if it were complete, and such a line must never run;
//   - can be shut after a reply the session wrote itself (shut), so that go-smtp's own later
//     replies do not follow it;
//   - holds replies back until the session is about to wait for the client (see Write).
type conn struct {
	net.Conn
	l       *limitListener
	idle    time.Duration
	once    sync.Once
	closed  chan struct{}
	greeted bool
	// client is the connection's client network, counted in l.clients when counted.
	client  netip.Prefix
	counted bool

	// out holds replies not yet sent (Write). wmu guards it: Close may flush it from
	// another goroutine (go-smtp's Server.Close) while the session writes.
	wmu sync.Mutex
	out []byte

	phase atomic.Int64 // unix nanos; 0 = none
	// transfer is a BDAT transfer's deadline (unix nanos; 0 = none): unlike phase, the reads
	// of the BDAT commands between its chunks do not end it.
	transfer atomic.Int64
	failed   atomic.Bool // a read failed: the session is dead
	readErr  error       // the failure (set before failed)
	shut     atomic.Bool // the session wrote its last reply: drop writes, fail reads
	closing  atomic.Bool // Close began: the write deadline is Close's (SetWriteDeadline)

	// rdl and wdl are the read and write deadlines set on the socket (unix nanos; 0 = none),
	// kept so that a renewal within slack of them is skipped (see renewed).
	rdl, wdl atomic.Int64
	slack    time.Duration

	// yield and unseen implement the DATA hand-back (see errYield); only the connection's
	// goroutine touches them (DATA runs there).
	yield, unseen bool

	// Input (see Read), touched only by the connection's goroutine: in[inPos:] is read from
	// the socket and not yet handed on; bulk is set once the connection carries TLS; endData
	// makes the next Read answer endOfData.
	in      []byte
	inPos   int
	bulk    bool
	endData bool
}

// errYield makes go-smtp's DATA reader hand back what it has. That reader fills the whole
// buffer it is given before returning, so after a bare CR has made it miss the end of the data
// it would sit on the bytes we need to see that end. While a DATA phase runs, conn.Read
// therefore answers errYield, once, instead of blocking when bytes it delivered earlier have not
// been seen by the session yet: by then go-smtp has consumed everything (its bufio only reads
// when empty), and the error reaches the session's Read through bufio, which forgets it. It is
// a temporary net.Error so that tls.Conn passes it on without failing the connection.
var errYield net.Error = yieldError{}

type yieldError struct{}

func (yieldError) Error() string   { return "smtpserver: hand back data" }
func (yieldError) Timeout() bool   { return false }
func (yieldError) Temporary() bool { return true }

// handBack turns the DATA hand-back on or off. Bytes go-smtp's bufio read ahead with the
// DATA command count as unseen.
func (c *conn) handBack(on bool) { c.yield, c.unseen = on, on }

var (
	goSMTPBanner = []byte(" ESMTP Service Ready\r\n")
	ourBanner    = []byte(" ESMTP wasmta\r\n")
)

// netConn finds the *conn under go-smtp's current connection (tls.Conn after STARTTLS).
func netConn(c net.Conn) *conn {
	for {
		switch v := c.(type) {
		case *conn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
}

// maxHeld bounds the replies Write holds back; a write that would pass it goes out at once,
// with what was held before it.
const maxHeld = 16 << 10

// Write holds p back until the session next waits for the client (Read, flush) or the
// connection closes, and then sends everything held in one write. go-smtp writes each reply
// line with its own flush, so a multi-line EHLO reply would otherwise take one system call and
// one TCP segment per line, and each reply to a pipelined group (RFC 2920) one more. RFC 2920
// §3.2 lets a server hold replies as long as it sends them before it waits for more input:
// go-smtp only reads from the connection when its own buffer is empty, so a Read here means
// it has answered every command the client has sent so far, and flush runs first.
func (c *conn) Write(p []byte) (int, error) {
	if c.shut.Load() {
		return 0, net.ErrClosed
	}
	if !c.greeted {
		c.greeted = true
		if q, ok := rewriteBanner(p); ok {
			if err := c.hold(q); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	if err := c.hold(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *conn) hold(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(c.out)+len(p) <= maxHeld {
		c.out = append(c.out, p...)
		return nil
	}
	if err := c.flushLocked(); err != nil {
		return err
	}
	_, err := c.Conn.Write(p)
	return err
}

// flush sends the replies Write held back. An error here is the connection's write error,
// reported to whoever flushes (the next Read, or Close).
func (c *conn) flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.flushLocked()
}

func (c *conn) flushLocked() error {
	if len(c.out) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.out)
	c.out = c.out[:0]
	if cap(c.out) > 4096 {
		c.out = nil // a rare large reply (TLS handshake, long EHLO) is not kept for the session's life
	}
	return err
}

// rewriteBanner turns go-smtp's greeting into wasmta's; ok is false for any other write.
func rewriteBanner(p []byte) (q []byte, ok bool) {
	if bytes.HasPrefix(p, []byte("220 ")) && bytes.HasSuffix(p, goSMTPBanner) {
		return append(append([]byte{}, p[:len(p)-len(goSMTPBanner)]...), ourBanner...), true
	}
	return nil, false
}

// implicitTLS is go-smtp's view of a listen_tls connection: the TLS session (handshake done,
// Server.startTLS) over the *conn. It is not a *tls.Conn, so go-smtp neither offers STARTTLS
// nor knows of TLS (the session asks tlsState), and it can rewrite go-smtp's greeting, which
// conn under it only sees encrypted.
type implicitTLS struct {
	*tls.Conn // NetConn() is the *conn
	greeted   bool
}

func (t *implicitTLS) Write(p []byte) (int, error) {
	if !t.greeted {
		t.greeted = true
		if q, ok := rewriteBanner(p); ok {
			if _, err := t.Conn.Write(q); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	return t.Conn.Write(p)
}

// SetReadDeadline is what go-smtp calls before reading each command: a new command phase
// begins, so any phase deadline ends. The deadline itself is set by Read.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.phase.Store(0)
	if renewed(&c.rdl, t, c.slack) {
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline is SetReadDeadline plus the write deadline (tls.Conn's handshake uses it).
func (c *conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetWriteDeadline is what go-smtp calls before each reply. Once Close has begun it is
// ignored: Close bounds the last writes itself, and the session, still answering commands it
// had read, would otherwise push that bound out to idle_timeout again.
func (c *conn) SetWriteDeadline(t time.Time) error {
	if c.closing.Load() {
		return nil
	}
	if renewed(&c.wdl, t, c.slack) {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}

// renewSlack is how much earlier than asked a renewed deadline may fire: a second, or less
// for an idle timeout under half a minute.
func renewSlack(idle time.Duration) time.Duration {
	return min(time.Second, idle/32)
}

// renewed reports whether the socket deadline cur already serves for t, and otherwise takes t
// as the new one (the caller sets it). go-smtp renews the read deadline before each command and
// the write deadline before each reply, and so does readRaw; each renewal is a runtime timer
// update, together about 1.5 % of the relay's CPU at seven replies a message. A deadline kept
// that way fires at most slack early, against idle timeouts of minutes; an earlier deadline (a
// phase's cap) and clearing are always set.
func renewed(cur *atomic.Int64, t time.Time, slack time.Duration) bool {
	var n int64
	if !t.IsZero() {
		n = t.UnixNano()
	}
	if c := cur.Load(); c != 0 && n >= c && n-c < int64(slack) {
		return true
	}
	cur.Store(n)
	return false
}

// startPhase caps the reads of a phase (DATA) at d from now, whatever the progress.
func (c *conn) startPhase(d time.Duration) {
	if d > 0 {
		c.phase.Store(time.Now().Add(d).UnixNano())
	}
}

// startTransfer caps every read of a BDAT transfer, its chunks and the commands between them,
// at d from now; endTransfer lifts the cap.
func (c *conn) startTransfer(d time.Duration) {
	if d > 0 {
		c.transfer.Store(time.Now().Add(d).UnixNano())
	}
}

func (c *conn) endTransfer() { c.transfer.Store(0) }

// Read hands go-smtp what the client sent. On a plain-text connection it reads from the socket
// into the conn's own buffer and hands on at most one line per call, so that go-smtp's bufio
// never holds more than the line it is reading: when go-smtp calls Data, nothing of the message
// sits in its buffer, and the session may read the content from here itself (plainData), which
// is much cheaper than go-smtp's byte-at-a-time data reader. Under TLS (bulk) the conn only
// carries ciphertext and hands on whatever it has.
func (c *conn) Read(p []byte) (int, error) {
	if c.shut.Load() {
		return 0, net.ErrClosed
	}
	if c.endData {
		// The session read the data itself (plainData): go-smtp's reader, which comes
		// after it, finds the end of the data at once.
		c.endData = false
		return copy(p, endOfData), nil
	}
	if c.failed.Load() {
		return 0, c.readErr
	}
	if c.inPos < len(c.in) {
		return c.serve(p), nil
	}
	if c.yield && c.unseen {
		c.unseen = false
		return 0, errYield
	}
	if c.bulk {
		n, err := c.readRaw(p)
		if n > 0 && c.yield {
			c.unseen = true
		}
		return n, err
	}
	if err := c.fill(); err != nil {
		return 0, err
	}
	if c.yield {
		c.unseen = true
	}
	return c.serve(p), nil
}

// endOfData is what go-smtp's data reader needs to see to end the data at once.
var endOfData = []byte(".\r\n")

// inSize is the conn's read buffer (go-smtp's bufio has the same).
const inSize = 4096

// fill reads from the socket into the empty buffer (at least one octet, or an error).
func (c *conn) fill() error {
	if c.in == nil {
		c.in = make([]byte, 0, inSize)
	}
	n, err := c.readRaw(c.in[:cap(c.in)])
	c.in, c.inPos = c.in[:n], 0
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// serve copies buffered input to p, up to the end of the first line.
func (c *conn) serve(p []byte) int {
	b := c.in[c.inPos:]
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	}
	n := copy(p, b)
	c.inPos += n
	return n
}

// readRaw reads from the socket under the inactivity deadline (capped by the phase's), after
// sending the replies held back; a failure is remembered.
func (c *conn) readRaw(p []byte) (int, error) {
	if c.idle > 0 {
		dl := time.Now().Add(c.idle)
		if ph := c.phase.Load(); ph != 0 && ph < dl.UnixNano() {
			dl = time.Unix(0, ph)
		}
		if tr := c.transfer.Load(); tr != 0 && tr < dl.UnixNano() {
			dl = time.Unix(0, tr)
		}
		if !renewed(&c.rdl, dl, c.slack) {
			if err := c.Conn.SetReadDeadline(dl); err != nil {
				c.fail(err)
				return 0, err
			}
		}
	}
	// Everything the session has answered goes out before it waits for more (see Write).
	if err := c.flush(); err != nil {
		c.fail(err)
		return 0, err
	}
	n, err := c.Conn.Read(p)
	if err != nil {
		c.fail(err)
	}
	return n, err
}

func (c *conn) fail(err error) {
	if !c.failed.Load() {
		c.readErr = err
		c.failed.Store(true)
	}
}

// dead reports whether a read has failed or the session has been shut: nothing read from now
// on may act (a command line cut short by the failure looks complete to go-smtp).
func (c *conn) dead() bool { return c.failed.Load() || c.shut.Load() }

// closeFlushTimeout bounds sending the replies still held when the connection closes.
const closeFlushTimeout = 10 * time.Second

// lingerTimeout bounds how long a shut connection drains what the client still sends.
const lingerTimeout = 2 * time.Second

func (c *conn) Close() error {
	var err error
	c.once.Do(func() {
		c.l.n.Add(-1)
		// Before the last replies go out: a client that has read its 221 may connect again at
		// once, and must find its connection no longer counted.
		if c.counted {
			c.l.clients.release(c.client)
		}
		// The last replies (221 to QUIT, the session's own final reply) go out now, under a
		// deadline of their own: tls.Conn.Close has just set the write deadline to "now". It
		// is set before taking wmu: a Close from another goroutine (Shutdown) may find the
		// session blocked in a write to a client that does not read, holding wmu until the
		// session's own deadline (idle_timeout); this one cuts that wait short.
		c.closing.Store(true) // go-smtp's later write deadlines must not undo this one
		_ = c.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
		c.wmu.Lock()
		if len(c.out) > 0 {
			if tc, ok := c.Conn.(*net.TCPConn); ok && !c.shut.Load() {
				corkForClose(tc) // the reply and the FIN in one segment
			}
			_ = c.flushLocked()
		}
		c.wmu.Unlock()
		if c.shut.Load() {
			// The client may still be sending (a refused body). Closing with unread input makes
			// the kernel send RST, which can destroy our reply before the client reads it:
			// send FIN first and drain for a while (as HTTP servers do).
			if tc, ok := c.Conn.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
				_ = tc.SetReadDeadline(time.Now().Add(lingerTimeout))
				_, _ = io.CopyN(io.Discard, tc, 1<<20)
			}
		}
		err = c.Conn.Close()
		close(c.closed)
	})
	if err == nil && c.shut.Load() {
		return nil
	}
	return err
}

// oneConn is a listener that yields one connection, then blocks until that connection is
// closed: each connection gets its own go-smtp Server (see Server.serveConn).
type oneConn struct {
	c    *conn
	nc   net.Conn // what go-smtp gets: c, or a *tls.Conn over it (listen_tls)
	used bool
}

var errOneConnDone = errors.New("connection done")

func (o *oneConn) Accept() (net.Conn, error) {
	if !o.used {
		o.used = true
		return o.nc, nil
	}
	<-o.c.closed
	return nil, errOneConnDone
}

func (o *oneConn) Close() error   { return nil }
func (o *oneConn) Addr() net.Addr { return o.c.LocalAddr() }
