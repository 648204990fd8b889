package testutil

import (
	"os/exec"
	"strings"
	"testing"
)

// ForbidDeps fails t when package pkg depends, directly or not, on any of forbidden (a package
// path, or a prefix of paths): the layering rules of the module, checked with `go list -deps`.
func ForbidDeps(t testing.TB, pkg string, forbidden ...string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
	}
	if !strings.Contains(string(out), pkg+"\n") {
		t.Fatalf("go list -deps %s does not list the package itself:\n%s", pkg, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
}
