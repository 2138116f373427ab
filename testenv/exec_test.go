package testenv

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// runIn runs a host command inside a testbed namespace.
func runIn(nsPath string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", filepath.Base(nsPath)}, args...)...).CombinedOutput()
	return string(out), err
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
