package plugin

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"strconv"
	"sync"
	"testing"
)

// The subprocess tests run this test binary as the backend: with
// $VFLAG_TEST_BACKEND set (to a fakeBackend mode, "ok" for none) it
// serves a fake backend named $VFLAG_TEST_BACKEND_NAME (default "fake")
// speaking protocol version $VFLAG_TEST_BACKEND_VERSION (default
// ProtocolVersion) instead of running the tests.
func TestMain(m *testing.M) {
	if mode, ok := os.LookupEnv("VFLAG_TEST_BACKEND"); ok {
		if mode == "ok" {
			mode = ""
		}
		name := os.Getenv("VFLAG_TEST_BACKEND_NAME")
		if name == "" {
			name = "fake"
		}
		version := ProtocolVersion
		if v, err := strconv.Atoi(os.Getenv("VFLAG_TEST_BACKEND_VERSION")); err == nil {
			version = v
		}
		b := newFake(name, mode)
		b.log = NewLogger(os.Stderr)
		serve(b, version)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var (
	selfOnce sync.Once
	selfPath string
	selfSum  string
	selfErr  error
)

// self returns this test binary's path and SHA-256.
func self(t testing.TB) (path, sum string) {
	t.Helper()
	selfOnce.Do(func() {
		if selfPath, selfErr = os.Executable(); selfErr != nil {
			return
		}
		f, err := os.Open(selfPath)
		if err != nil {
			selfErr = err
			return
		}
		defer f.Close()
		h := sha256.New()
		if _, selfErr = io.Copy(h, f); selfErr == nil {
			selfSum = hex.EncodeToString(h.Sum(nil))
		}
	})
	if selfErr != nil {
		t.Fatal(selfErr)
	}
	return selfPath, selfSum
}
