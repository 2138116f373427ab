// Package privtest holds the shared rules of vflag's privileged test tier:
// tests that need root and create network namespaces of their own.
//
// A privileged test calls Root first. Without root it is skipped, unless the
// environment says the tier is required (VFLAG_REQUIRE_PRIVILEGED=1, set by
// `make test`), in which case it fails: a skipped test must never be counted
// as a passing one in CI.
package privtest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RequireEnv is the environment variable that turns skips into failures.
const RequireEnv = "VFLAG_REQUIRE_PRIVILEGED"

// NetnsPrefix starts the name of every namespace a privileged test creates, so
// that leftovers of an interrupted run are recognisable.
const NetnsPrefix = "vflag-t-"

// Root skips (or, when required, fails) the test unless it runs as root.
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("privileged test needs root, and %s=1 says this tier must run", RequireEnv)
	}
	t.Skip("privileged test: needs root (run `sudo make test`)")
}

// Netns creates a fresh named network namespace with its loopback up and
// removes it when the test ends. It returns the name and the bind-mount path.
func Netns(t testing.TB) (name, path string) {
	t.Helper()
	Root(t)
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name = NetnsPrefix + hex.EncodeToString(b[:])
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up in %s: %v: %s", name, err, out)
	}
	return name, filepath.Join("/var/run/netns", name)
}
