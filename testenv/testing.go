package testenv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// RequireEnv makes a missing testbed prerequisite fail a test instead of
// skipping it (`make test` sets it, so CI never counts a skip as a pass).
const RequireEnv = "VFLAG_REQUIRE_TESTBED"

// ForTest starts a testbed with the given hosts for t and tears it down at
// cleanup, saving each host's console log in t.ArtifactDir() if t failed.
// Without root, QEMU with igb or the guest kernel, or under -short, it
// skips t, unless VFLAG_REQUIRE_TESTBED=1. The guest binaries come from $VFLAG_BIN_DIR or
// are built once per test binary from this module's source.
func ForTest(t testing.TB, specs ...HostSpec) *Testbed {
	t.Helper()
	if testing.Short() && os.Getenv(RequireEnv) != "1" {
		t.Skip("testbed tier: skipped under -short (make unit)")
	}
	err := checkTools()
	for _, s := range specs {
		if err == nil && s.Flavour == FlavourLibvirt {
			err = checkLibvirtTools()
		}
	}
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("testbed required (%s=1): %v", RequireEnv, err)
		}
		t.Skipf("testbed tier: %v", err)
	}
	bins, err := testBinDir()
	if err != nil {
		t.Fatalf("build the guest binaries: %v", err)
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	tb, err := New(Config{
		Name:   "t" + hex.EncodeToString(b[:]),
		BinDir: bins,
		Log:    testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		if err := tb.AddHost(s); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, h := range tb.hosts {
				dst := filepath.Join(t.ArtifactDir(), h.spec.Name+"-console.log")
				if b, err := os.ReadFile(h.path("console.log")); err == nil && os.WriteFile(dst, b, 0o644) == nil {
					t.Logf("console of %s saved to %s", h.spec.Name, dst)
				}
			}
		}
		if err := tb.Close(); err != nil {
			t.Errorf("tear down testbed %s: %v", tb.Name(), err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if err := tb.Start(ctx); err != nil {
		t.Fatalf("start testbed: %v", err)
	}
	return tb
}

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// testBinDir returns $VFLAG_BIN_DIR or builds the guest binaries
// (vflag-guest, vflagd, vflag, vflag-hook, vflag-backend-generic with its .sha256)
// statically, once per test binary.
func testBinDir() (string, error) {
	if p := os.Getenv("VFLAG_BIN_DIR"); p != "" {
		return p, nil
	}
	binOnce.Do(func() {
		mod, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil || strings.TrimSpace(string(mod)) == "" || strings.TrimSpace(string(mod)) == os.DevNull {
			binErr = errors.New("not inside the vflag module; set VFLAG_BIN_DIR")
			return
		}
		if binDir, binErr = os.MkdirTemp("", "vflag-bin-"); binErr != nil {
			return
		}
		// vflagd alone is cgo (libvirt, loaded at run time): see the Makefile.
		for _, args := range [][]string{
			{"CGO_ENABLED=0", "build", "-o", binDir + "/", "./cmd/vflag-guest", "./cmd/vflag", "./cmd/vflag-hook", "./cmd/vflag-backend-generic"},
			{"CGO_ENABLED=1", "build", "-tags", "libvirt_dlopen", "-o", binDir + "/", "./cmd/vflagd"},
		} {
			cmd := exec.Command("go", args[1:]...)
			cmd.Dir = filepath.Dir(strings.TrimSpace(string(mod)))
			cmd.Env = append(os.Environ(), args[0])
			if out, err := cmd.CombinedOutput(); err != nil {
				binErr = errors.New(strings.TrimSpace(string(out)))
				return
			}
		}
		// The backend's checksum beside it, as `make build` writes it.
		backend := filepath.Join(binDir, "vflag-backend-generic")
		data, err := os.ReadFile(backend)
		if err != nil {
			binErr = err
			return
		}
		sum := sha256.Sum256(data)
		binErr = os.WriteFile(backend+".sha256", []byte(hex.EncodeToString(sum[:])+"  vflag-backend-generic\n"), 0o644)
	})
	return binDir, binErr
}

// testLogger logs through t.Log.
func testLogger(t testing.TB) *slog.Logger { return slog.New(slog.NewTextHandler(testWriter{t}, nil)) }

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = testWriter{}
