package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A scaffolded Go plugin builds offline and passes its own test out of the box. (Every
// language's scaffold is run by `make check-scaffolds`, which CI runs with the toolchains.)
func TestPluginNewGo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out, err := runBin(dir, "plugin", "new", "--lang", "go", "my-policy")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	cmd := exec.Command("./test.sh")
	cmd.Dir = filepath.Join(dir, "my-policy")
	cmd.Env = append(os.Environ(), "WASMTA="+relayBin)
	b, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "PASS") {
		t.Fatalf("scaffold test: %v\n%s", err, b)
	}
	for _, bad := range [][]string{{"--lang", "cobol", "x"}, {"--lang", "go", "Bad Name"}, {"--lang", "go", "my-policy"}} {
		if out, err := runBin(dir, append([]string{"plugin", "new"}, bad...)...); err == nil {
			t.Errorf("plugin new %v succeeded:\n%s", bad, out)
		}
	}
}
