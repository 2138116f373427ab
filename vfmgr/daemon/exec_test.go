package daemon_test

import (
	osexec "os/exec"
	"path/filepath"
)

// exec runs a host command inside a testbed namespace.
func exec(nsPath string, args ...string) (string, error) {
	out, err := osexec.Command("ip", append([]string{"netns", "exec", filepath.Base(nsPath)}, args...)...).CombinedOutput()
	return string(out), err
}
