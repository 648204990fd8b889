package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// runBinEnv is runBin with extra environment variables (NAME=value).
func runBinEnv(dir string, env []string, args ...string) (string, error) {
	cmd := exec.Command(relayBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// WASMTA_TOKEN is the admin token. It was the --token flag's default, so `--help` printed it
// (`(default "…")`) and `wasmta man` (run by `make install`) wrote it into the installed,
// world-readable man pages. It must reach the server and never appear in help or man pages;
// WASMTA_API likewise is read when a command runs, not baked into the pages as their default.
func TestAudit11EnvTokenNeverInHelpOrManPages(t *testing.T) {
	t.Parallel()
	const secret = "env-s3cret-4f9a"
	e := newAdminEnv(t, []string{"127.0.0.4"}, "")
	env := []string{"WASMTA_TOKEN=" + adminToken + secret, "WASMTA_API=http://127.0.0.1:1/" + secret}
	dir := t.TempDir()
	for _, args := range [][]string{{"queue", "--help"}, {"queue", "summary", "--help"}, {"inject", "--help"}} {
		out, err := runBinEnv(dir, env, args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		if strings.Contains(out, secret) {
			t.Errorf("wasmta %s shows the environment's token or API:\n%s", strings.Join(args, " "), out)
		}
	}
	man := filepath.Join(dir, "man")
	if out, err := runBinEnv(dir, env, "man", man); err != nil {
		t.Fatalf("man: %v\n%s", err, out)
	}
	pages, _ := filepath.Glob(filepath.Join(man, "*.1"))
	if len(pages) == 0 {
		t.Fatal("no man page written")
	}
	for _, p := range pages {
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), secret) {
			t.Errorf("%s carries the environment's token or API", filepath.Base(p))
		}
	}

	// The environment still works: the token and the API from it alone, and flags override it.
	good := []string{"WASMTA_TOKEN=" + adminToken, "WASMTA_API=" + e.url}
	if out, err := runBinEnv(dir, good, "queue", "summary", "--json"); err != nil || !strings.Contains(out, `"queued"`) {
		t.Fatalf("queue summary from the environment: %v\n%s", err, out)
	}
	if out, err := runBinEnv(dir, good, "queue", "summary", "--token", "wrong"); err == nil || !strings.Contains(out, "401") {
		t.Fatalf("--token must override WASMTA_TOKEN: %v\n%s", err, out)
	}
	if out, err := runBinEnv(dir, env, "queue", "summary", "--api", e.url, "--token", adminToken); err != nil {
		t.Fatalf("--api must override WASMTA_API: %v\n%s", err, out)
	}
}

// `wasmta inject` exits 1 when a recipient failed; with --json it printed the answer and
// exited 0, so a script reading the JSON output believed a refused recipient was accepted.
func TestAudit11InjectJSONFailedRecipientExitStatus(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t, []string{"127.0.0.6"}, "", pluginConfig(httpFixture(t, "httproute")))
	dir := t.TempDir()
	args := []string{"inject", "--api", e.url, "--from", "a@sender.test", "--to", "ok@example.com",
		"--to", "reject-me@example.com", "--subject", "s", "--text", "t"}
	out, err := runBin(dir, args...)
	if err == nil || !strings.Contains(out, "1 accepted, 1 failed") {
		t.Fatalf("without --json: %v\n%s", err, out)
	}
	out, err = runBin(dir, append(args, "--json")...)
	var resp struct {
		FailCount int `json:"fail_count"`
	}
	if jerr := json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &resp); jerr != nil || resp.FailCount != 1 {
		t.Fatalf("--json output (%v):\n%s", jerr, out)
	}
	if err == nil {
		t.Fatalf("--json with a failed recipient exited 0:\n%s", out)
	}
}

// `wasmta plugin check --config` refuses JSON that does not parse; `plugin test --config`
// handed it to the plugin, whose get_config then failed it, and the command blamed the plugin
// ("FAILED (the client would get 451 4.3.0)") for the operator's typo. serve can never pass a
// plugin such a config ([plugins.config] is TOML turned into JSON).
func TestAudit11PluginTestRefusesBadJSONConfig(t *testing.T) {
	t.Parallel()
	out, err := runBin(t.TempDir(), "plugin", "test", fixture(t, "metaconfig"), "--rcpt", "a@example.com", "--config", "{bad")
	if err == nil || !strings.Contains(out, "--config: not valid JSON") || strings.Contains(out, "451") {
		t.Fatalf("plugin test with --config '{bad': %v\n%s", err, out)
	}
}

// A config with control_socket = "" has no control socket (serve opens none); `wasmta plugin
// status` with it dialled the empty path and answered "control socket : dial unix: missing
// address (is the server running with this config?)".
func TestAudit11ControlCommandWithoutSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	if err := os.WriteFile(cfg, []byte("control_socket = \"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"status", "reload"} {
		out, err := runBin(dir, "plugin", cmd, "--config", cfg)
		if err == nil || !strings.Contains(out, "control_socket is empty") || strings.Contains(out, "missing address") {
			t.Fatalf("plugin %s without a control socket: %v\n%s", cmd, err, out)
		}
	}
}

// `wasmta plugin status` prints the queue's counts so that an operator can tell where mail
// went: queued = received - delivered - bounced - expired - bounced by an operator. The last
// was left out, so after `wasmta queue bounce` the message count dropped with no count
// explaining it.
func TestAudit11PluginStatusCountsOperatorBounces(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, []string{"127.0.0.4"}, "[queue]\nretry_interval = \"1h\"\n")
	e.sinks["127.0.0.4"].SetBehavior(testutil.Behavior{Mode: testutil.TempFail, At: "RCPT"})
	e.send("a@sender.test", "a@implicit.test", "bounce me")
	e.relay.WaitLog(recipientIs("TransientFailure", "a@implicit.test"), 10*time.Second)
	if out := e.mustCLI("bounce", "--domain", "implicit.test", "--reason", "audit", "--duration", "1m"); !strings.Contains(out, "bounced 1 message(s)") {
		t.Fatalf("bounce: %s", out)
	}
	out, err := runBin(e.relay.Dir, "plugin", "status", "--config", e.relay.Config)
	if err != nil {
		t.Fatalf("plugin status: %v\n%s", err, out)
	}
	if !strings.Contains(out, "queue: 0 queued, 1 received, 0 delivered, 1 transient failures, 0 bounced, 0 expired, 1 bounced by an operator") {
		t.Fatalf("plugin status:\n%s", out)
	}
}

// `queue suspend --list` lists every rule; a selector beside it was silently ignored, so an
// operator asking for one domain's rules read them all as that domain's. It is refused now.
// --api takes the address as [http] listen is written, without http://.
func TestQueueRuleListFlags(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, []string{"127.0.0.4"}, "")
	e.mustCLI("suspend", "--domain", "held.test", "--reason", "r", "--duration", "1h")
	if out, err := e.cli("suspend", "--list", "--domain", "other.test"); err == nil || !strings.Contains(out, "--list and --cancel take no selector") {
		t.Fatalf("--list with a selector: %v\n%s", err, out)
	}
	bare := strings.TrimPrefix(e.url, "http://")
	out, err := runBin(e.relay.Dir, "queue", "suspend", "--list", "--api", bare, "--token", adminToken)
	if err != nil || !strings.Contains(out, "held.test") {
		t.Fatalf("--api %s: %v\n%s", bare, err, out)
	}
}
