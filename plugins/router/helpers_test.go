package main

import (
	osexec "os/exec"
	"strings"
)

func exec(dir, bin string, args ...string) (string, error) {
	cmd := osexec.Command(bin, args...)
	cmd.Dir = dir
	b, err := cmd.CombinedOutput()
	return string(b), err
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
