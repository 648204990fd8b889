package testutil

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Redis is a real redis-server (Debian's package) on a loopback port, without persistence,
// for the cluster tests. It can be stopped and started again on the same port, to play Redis
// going away mid-run.
type Redis struct {
	Addr string // 127.0.0.1:port
	t    testing.TB
	dir  string
	cmd  *exec.Cmd
	opt  RedisOptions
}

// RedisOptions make a Redis that needs more of its clients.
type RedisOptions struct {
	// TLS, when set, serves TLS only (rediss://) with a certificate for 127.0.0.1 from this CA.
	TLS *TestCA
	// Password, when set, is required of every client (requirepass).
	Password string
}

// StartRedis starts redis-server on a free loopback port and stops it when t ends. It fails
// (never skips) when redis-server is not installed: `make test` and .ci/run install it.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	return StartRedisWith(t, RedisOptions{})
}

// StartRedisWith is StartRedis with TLS or a password.
func StartRedisWith(t testing.TB, opt RedisOptions) *Redis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is not installed (apt-get install redis-server; make test does it): %v", err)
	}
	r := &Redis{t: t, dir: t.TempDir(), Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(MustListenPort(t, "127.0.0.1"))), opt: opt}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// URL is the redis:// (rediss:// with TLS) URL of the server, database 0.
func (r *Redis) URL() string {
	if r.opt.TLS != nil {
		return "rediss://" + r.Addr + "/0"
	}
	return "redis://" + r.Addr + "/0"
}

// Start runs the server (again) on r.Addr and waits until it answers PING.
func (r *Redis) Start() {
	r.t.Helper()
	if r.cmd != nil {
		r.t.Fatal("redis-server already running")
	}
	_, port, _ := net.SplitHostPort(r.Addr)
	args := []string{"--bind", "127.0.0.1", "--port", port,
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--daemonize", "no",
		"--protected-mode", "yes", "--loglevel", "warning"}
	if r.opt.TLS != nil {
		cert, key := r.opt.TLS.WriteServerPEM(r.t, r.dir, "127.0.0.1")
		args = append(args, "--port", "0", "--tls-port", port, "--tls-cert-file", cert,
			"--tls-key-file", key, "--tls-ca-cert-file", r.opt.TLS.WritePEM(r.t, r.dir, "ca.pem"),
			"--tls-auth-clients", "no")
	}
	if r.opt.Password != "" {
		args = append(args, "--requirepass", r.opt.Password)
	}
	cmd := exec.Command("redis-server", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("redis-server: %v", err)
	}
	r.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := r.ping(); err == nil {
			return
		} else if time.Now().After(deadline) {
			r.Stop()
			r.t.Fatalf("redis-server on %s did not answer PING within 10 s: %v", r.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server (SIGKILL: nothing is saved, clients see their connections drop) and
// waits for it to exit. Safe to call when it is not running.
func (r *Redis) Stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// Pause stops the server with SIGSTOP: it keeps its connections and data, and clients that
// send commands see them time out, as with a Redis stuck on a slow disk or a long script.
// Commands sent meanwhile are run when it resumes.
func (r *Redis) Pause() {
	r.t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		r.t.Fatalf("SIGSTOP redis-server: %v", err)
	}
}

// Resume continues a paused server (SIGCONT).
func (r *Redis) Resume() {
	r.t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		r.t.Fatalf("SIGCONT redis-server: %v", err)
	}
}

// Do sends one command over a fresh connection and returns the reply's first line (RESP2,
// inline) — enough for tests to look at keys without a client library.
func (r *Redis) Do(args ...string) (string, error) {
	var c net.Conn
	var err error
	if r.opt.TLS != nil {
		d := &net.Dialer{Timeout: 2 * time.Second}
		c, err = tls.DialWithDialer(d, "tcp", r.Addr, &tls.Config{RootCAs: r.opt.TLS.Pool(), ServerName: "127.0.0.1"})
	} else {
		c, err = net.DialTimeout("tcp", r.Addr, 2*time.Second)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	send := func(args ...string) (string, error) {
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := c.Write([]byte(b.String())); err != nil {
			return "", err
		}
		line, err := br.ReadString('\n')
		return strings.TrimRight(line, "\r\n"), err
	}
	if r.opt.Password != "" {
		if line, err := send("AUTH", r.opt.Password); err != nil || line != "+OK" {
			return line, fmt.Errorf("AUTH: %q %v", line, err)
		}
	}
	return send(args...)
}

func (r *Redis) ping() error {
	line, err := r.Do("PING")
	if err != nil {
		return err
	}
	if line != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}
