package smtpserver

import (
	"bufio"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// An accept error other than a closed listener (EMFILE when the process is out of file
// descriptors, which a client can bring about by opening connections) ended the accept loop
// for good: the relay stayed up, ready by every probe, and never answered another connection.
// net/http retries such errors after a pause; so must we.
func TestAcceptSurvivesFDExhaustion(t *testing.T) {
	diag := &syncBuffer{}
	_, addr := start(t, func(o *Options) {
		o.MaxConnections = 100
		o.Diag = slog.New(slog.NewTextHandler(diag, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	_, port, _ := net.SplitHostPort(addr)
	// The client that meets the exhausted server is another process, so that it has file
	// descriptors of its own when this one has none.
	sh := exec.Command("bash", "-c", `read x; exec 3<>/dev/tcp/127.0.0.1/`+port+`; echo connected; read y`)
	stdin, err := sh.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := sh.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); _ = sh.Wait() })

	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	lowest := f.Fd() // the kernel hands out the lowest free descriptor
	f.Close()
	low := lim
	low.Cur = uint64(lowest)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("cannot lower RLIMIT_NOFILE: %v", err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer restore()
	if _, err := os.Open(os.DevNull); !errors.Is(err, syscall.EMFILE) {
		restore()
		t.Fatalf("descriptors not exhausted: %v", err)
	}
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		restore()
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "connected\n" {
		restore()
		t.Fatalf("client process: %q %v", line, err)
	}
	// The server's accept of that connection fails with EMFILE now (the connection waits in
	// the backlog meanwhile); once the server has said so, the descriptors come back.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(diag.String(), "too many open files"); {
		if time.Now().After(deadline) {
			restore()
			t.Fatalf("the server never met EMFILE; its log:\n%s", diag.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	restore()

	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	banner, err := bufio.NewReader(nc).ReadString('\n')
	if err != nil || !strings.HasPrefix(banner, "220 ") {
		t.Fatalf("no banner after the descriptors came back (%q, %v): the accept loop ended", banner, err)
	}
}

// syncBuffer is a log destination safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
