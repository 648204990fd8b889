package testutil

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BuildRelay compiles ./cmd/wasmta (from the module root) into dir and returns the binary path.
// End-to-end tests run the real binary.
func BuildRelay(dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "wasmta")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/wasmta")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// Relay is a wasmta process started by a test.
type Relay struct {
	t      testing.TB
	Bin    string
	Dir    string // working directory: config, spool and logs live under it
	Config string // path of the config file
	SMTP   string // SMTP listen address
	cmd    *exec.Cmd
	stderr *LockedBuffer
	exited chan struct{}
}

// RelayConfig fills the parts of a test config every relay needs: an SMTP port on 127.0.0.1,
// and spool and logs under dir (with a small free-space reserve, so tests pass on a machine with
// little disk; the disk-full tests set their own). extra is added verbatim (DNS, delivery, queue sections); its
// top-level keys, the lines before its first [table], go before the relay's own tables.
func RelayConfig(t testing.TB, dir, extra string) (cfg, smtpAddr string) {
	port := MustListenPort(t, "127.0.0.1")
	smtpAddr = fmt.Sprintf("127.0.0.1:%d", port)
	top, tables := "", extra
	lines := strings.SplitAfter(extra, "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "[") {
			top, tables = strings.Join(lines[:i], ""), strings.Join(lines[i:], "")
			break
		}
		if i == len(lines)-1 {
			top, tables = extra, ""
		}
	}
	cfg = fmt.Sprintf(`hostname = "relay.test"
%s
[spool]
path = %q
min_free = "32MiB"
[logs]
dir = %q
[smtp]
listen = [%q]
`, top, filepath.Join(dir, "spool"), filepath.Join(dir, "logs"), smtpAddr) + tables
	if !strings.Contains(extra, "[http]") {
		// The HTTP API's default port is fixed (127.0.0.1:8025): relays started in parallel
		// would fight over it. A test that wants HTTP brings its own [http] table.
		cfg += "[http]\nlisten = \"\"\n"
	}
	return cfg, smtpAddr
}

// StartRelay writes config into dir and starts bin serve with it, waiting until SMTP answers.
// The process is killed at cleanup if still running.
func StartRelay(t testing.TB, bin, dir, config, smtpAddr string) *Relay {
	t.Helper()
	path := filepath.Join(dir, "wasmta.toml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &Relay{t: t, Bin: bin, Dir: dir, Config: path, SMTP: smtpAddr}
	r.Start()
	t.Cleanup(func() { r.Kill() })
	return r
}

// Start (re)starts the process with the same config and waits until SMTP answers.
func (r *Relay) Start() {
	r.t.Helper()
	r.StartNoWait()
	r.WaitListening(60 * time.Second) // a bound, not a speed check: a Go plugin compiles slowly on a loaded machine
}

// StartNoWait (re)starts the process with the same config and returns at once, for a process
// expected not to listen yet (say, one waiting for disk space).
func (r *Relay) StartNoWait() {
	r.t.Helper()
	r.stderr = &LockedBuffer{}
	r.cmd = exec.Command(r.Bin, "serve", "--config", r.Config, "--log-level", "debug")
	r.cmd.Dir = r.Dir
	r.cmd.Stderr = r.stderr
	r.cmd.Stdout = r.stderr
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.exited = make(chan struct{})
	go func(c *exec.Cmd, ch chan struct{}) { _ = c.Wait(); close(ch) }(r.cmd, r.exited)
}

// WaitListening waits until SMTP answers; the test fails if the process exits first.
func (r *Relay) WaitListening(timeout time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", r.SMTP, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-r.exited:
			r.t.Fatalf("wasmta exited during start-up:\n%s", r.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("wasmta did not listen on %s within %s:\n%s", r.SMTP, timeout, r.stderr.String())
		}
	}
}

// Exited reports whether the process has ended, and how ("" while it runs): a test that must
// not see the relay die checks this.
func (r *Relay) Exited() string {
	select {
	case <-r.exited:
		return r.cmd.ProcessState.String()
	default:
		return ""
	}
}

// CPUTime is the CPU time (user + system) the relay process has used so far, from
// /proc/<pid>/stat: benchmarks divide it by the messages they sent.
func (r *Relay) CPUTime() time.Duration {
	r.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", r.cmd.Process.Pid))
	if err != nil {
		r.t.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) start after the last ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
}

// Kill sends SIGKILL (no chance to flush anything) and waits for the process to end.
func (r *Relay) Kill() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.exited
}

// Stop sends SIGTERM and waits for a graceful exit.
func (r *Relay) Stop() error {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(30 * time.Second):
		r.Kill()
		return fmt.Errorf("wasmta did not stop within 30s")
	}
	if !r.cmd.ProcessState.Success() {
		return fmt.Errorf("wasmta exited with %v:\n%s", r.cmd.ProcessState, r.stderr.String())
	}
	return nil
}

// Stderr is the process's diagnostic output so far.
func (r *Relay) Stderr() string { return r.stderr.String() }

// LogRecords reads every JSON log record written under dir/logs so far.
func (r *Relay) LogRecords() []map[string]any {
	return ReadLogRecords(r.t, filepath.Join(r.Dir, "logs"))
}

// WaitLog waits until a record satisfies match and returns it.
func (r *Relay) WaitLog(match func(map[string]any) bool, timeout time.Duration) map[string]any {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, rec := range r.LogRecords() {
			if match(rec) {
				return rec
			}
		}
		if time.Now().After(deadline) {
			var types []string
			for _, rec := range r.LogRecords() {
				types = append(types, fmt.Sprintf("%v %v %v", rec["type"], rec["recipient"], rec["response"]))
			}
			r.t.Fatalf("no matching log record within %s; records:\n%s\nstderr:\n%s", timeout, strings.Join(types, "\n"), r.Stderr())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ReadLogRecords parses every *.jsonl file in dir.
func ReadLogRecords(t testing.TB, dir string) []map[string]any {
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	var out []map[string]any
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if len(sc.Bytes()) == 0 {
				continue
			}
			var rec map[string]any
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				continue // a line being written right now
			}
			out = append(out, rec)
		}
	}
	return out
}

// Type, Recipient match log records.
func Type(typ string) func(map[string]any) bool {
	return func(r map[string]any) bool { return r["type"] == typ }
}

// Code returns a record's response code.
func Code(r map[string]any) int {
	resp, _ := r["response"].(map[string]any)
	c, _ := resp["code"].(float64)
	return int(c)
}

// LockedBuffer is a bytes.Buffer one goroutine (or a process's output) writes while another
// reads it.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// BuildGoPlugin compiles the Go plugin package pkg (a path relative to the module root, like
// "./examples/routing_domain/plugin") into dir/name.wasm and returns that path.
func BuildGoPlugin(dir, pkg, name string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, name+".wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build plugin %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}

// PluginSection returns the [[plugins]] part of an example's config file (everything from
// the first "[[plugins]]" on), with each `path = "..."` pointing at wasm and every old → new
// pair of replace applied (e.g. a documentation address swapped for a loopback one).
func PluginSection(t testing.TB, configFile, wasm string, replace ...string) string {
	t.Helper()
	b, err := os.ReadFile(configFile)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "[[plugins]]")
	if i < 0 {
		t.Fatalf("%s has no [[plugins]] section", configFile)
	}
	s = s[i:]
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "path =") {
			l = fmt.Sprintf("path = %q", wasm)
		}
		lines = append(lines, l)
	}
	s = strings.Join(lines, "\n")
	if len(replace)%2 != 0 {
		t.Fatal("PluginSection: replace needs old/new pairs")
	}
	for j := 0; j < len(replace); j += 2 {
		if !strings.Contains(s, replace[j]) {
			t.Fatalf("%s does not contain %q", configFile, replace[j])
		}
		s = strings.ReplaceAll(s, replace[j], replace[j+1])
	}
	return s
}

// DeliveryConfig is the [dns] and [delivery] part of a test config: resolve through dnsAddr,
// deliver to port, loopback allowed, short timeouts.
func DeliveryConfig(dnsAddr string, port int) string {
	return fmt.Sprintf(`
[dns]
resolvers = [%q]
[delivery]
smtp_port = %d
prohibited_hosts = ["0.0.0.0/8", "::/128"]
connect_timeout = "2s"
command_timeout = "5s"
data_timeout = "5s"
idle_timeout = "200ms"
`, dnsAddr, port)
}

// WaitStderr waits until the diagnostics contain substr (they arrive through a pipe, a little
// after the log records they accompany).
func (r *Relay) WaitStderr(substr string, timeout time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(r.Stderr(), substr) {
		if time.Now().After(deadline) {
			r.t.Fatalf("diagnostics lack %q:\n%s", substr, r.Stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Process is the running relay process (for signals).
func (r *Relay) Process() *os.Process {
	if r.cmd == nil {
		return nil
	}
	return r.cmd.Process
}

// MainWithPlugin is a TestMain for end-to-end tests of one Go plugin: it builds the relay binary
// and the plugin package pkg (as name.wasm) once, runs the tests, and cleans up.
func MainWithPlugin(m *testing.M, pkg, name string, relayBin, pluginWasm *string) {
	dir, err := os.MkdirTemp("", "wasmta-e2e")
	if err == nil {
		if *relayBin, err = BuildRelay(dir); err == nil {
			*pluginWasm, err = BuildGoPlugin(dir, pkg, name)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
