package main

import "os/exec"

func runBin(dir string, args ...string) (string, error) {
	cmd := exec.Command(relayBin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}
