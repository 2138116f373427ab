package hooks

import "testing"

// TestPF is sysPF for the external tests (package hooks_test).
type TestPF struct {
	PCI, Name, Master string
	VFs               []string
}

// MakeTestSysfs is makeSysfs for the external tests.
func MakeTestSysfs(t testing.TB, pfs []TestPF) string {
	var in []sysPF
	for _, p := range pfs {
		in = append(in, sysPF{pci: p.PCI, name: p.Name, master: p.Master, vfs: p.VFs})
	}
	return makeSysfs(t, in)
}

// ReadTestdata is readTestdata for the external tests.
func ReadTestdata(t testing.TB, name string) []byte { return readTestdata(t, name) }

// Diff is diff for the external tests.
func Diff(t *testing.T, what, got, want string) { t.Helper(); diff(t, what, got, want) }
