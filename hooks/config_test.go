package hooks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vflag/vflag/vfmgr"
)

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := LoadConfig(filepath.Join(dir, "missing.yaml"))
	if err != nil || c.Socket != "/run/vflag/vflag.sock" || c.Timeout != 10*time.Second || c.FailOpen ||
		c.UnmanagedHostdev != "ignore" || c.Mode != "" || c.Sysfs != "/sys" || !*c.Syslog {
		t.Errorf("defaults: %+v, %v", c, err)
	}
	c, err = LoadConfig(write("all.yaml", `
socket: /run/vflag/test.sock
timeout: 3s
fail_open: true
unmanaged_hostdev: error
default_mode: adopt
sysfs: /tmp/sys
syslog: false
`))
	if err != nil || c.Socket != "/run/vflag/test.sock" || c.Timeout != 3*time.Second || !c.FailOpen ||
		c.UnmanagedHostdev != "error" || c.Mode != vfmgr.ModeAdopt || c.Sysfs != "/tmp/sys" || *c.Syslog {
		t.Errorf("every key: %+v, %v", c, err)
	}
	if c, err := LoadConfig(write("empty.yaml", "")); err != nil || c.Timeout != DefaultTimeout {
		t.Errorf("empty file: %+v, %v", c, err)
	}
	for text, want := range map[string]string{
		"fail_opne: true\n":           "line 1: unknown key fail_opne (the keys: socket,",
		"timeout: soon\n":             "line 1: cannot unmarshal !!str `soon` into time.Duration",
		"timeout: 1h\n":               "timeout 1h0m0s: want 1s..10m",
		"unmanaged_hostdev: warn\n":   `unmanaged_hostdev "warn"`,
		"default_mode: bonding\n":     `default_mode "bonding"`,
		"fail_open: [yes]\n":          "line 1: cannot unmarshal !!seq into bool",
		"socket: /a\nsocket: /b\n":    "socket",
		"- a list\n- not a mapping\n": "cannot unmarshal",
	} {
		p := write("bad.yaml", text)
		if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), p) {
			t.Errorf("LoadConfig(%q) = %v; want an error naming %s and saying %q", text, err, p, want)
		}
	}
}

// TestSysfs checks the bond lookup on a sysfs tree laid out as the kernel
// does (see makeSysfs).
func TestSysfs(t *testing.T) {
	s := Sysfs{Root: makeSysfs(t, []sysPF{
		{pci: "0000:01:00.0", name: "pf0", master: "bond0", vfs: []string{"0000:01:10.2"}},
		{pci: "0000:05:00.0", name: "ens5f0", master: "br0", vfs: []string{"0000:05:10.1"}},
		{pci: "0000:06:00.0", name: "ens6f0", vfs: []string{"0000:06:10.0"}},
	})}
	for pci, want := range map[string]string{
		"0000:01:10.2": "bond0", // a VF of a bond port
		"0000:05:10.1": "",      // its PF is in a bridge
		"0000:06:10.0": "",      // its PF is in nothing
		"0000:01:00.0": "",      // a PF
		"0000:09:10.0": "",      // no such device here
	} {
		if got, err := s.BondOf(pci); err != nil || got != want {
			t.Errorf("BondOf(%s) = %q, %v; want %q", pci, got, err, want)
		}
	}
	if _, err := s.BondOf("../../etc"); err == nil {
		t.Error("BondOf of a path: want an error")
	}
}

// sysPF is a PF of a fake sysfs tree.
type sysPF struct {
	pci, name string
	// master is the device the PF is enslaved to ("" none); names
	// starting with "br" are bridges, the others bonds.
	master string
	vfs    []string
}

// makeSysfs lays out a sysfs tree as the kernel does and returns its
// root: VFs link physfn to their PF, the PF's netdev links master to the
// bond (or bridge), a bond has a bonding directory, a bridge a bridge
// directory, /sys/bus/pci/devices links to every device.
func makeSysfs(t testing.TB, pfs []sysPF) string {
	t.Helper()
	root := t.TempDir()
	mk := func(p string) {
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, p string) {
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	mk("bus/pci/devices")
	for _, pf := range pfs {
		dev := "devices/pci0000:00/" + pf.pci
		mk(dev + "/net/" + pf.name)
		link("../../../devices/pci0000:00/"+pf.pci, "bus/pci/devices/"+pf.pci)
		if pf.master != "" {
			kind := "bonding"
			if strings.HasPrefix(pf.master, "br") {
				kind = "bridge"
			}
			mk("devices/virtual/net/" + pf.master + "/" + kind)
			link("../../../../virtual/net/"+pf.master, dev+"/net/"+pf.name+"/master")
		}
		for _, vf := range pf.vfs {
			mk("devices/pci0000:00/" + vf)
			link("../"+pf.pci, "devices/pci0000:00/"+vf+"/physfn")
			link("../../../devices/pci0000:00/"+vf, "bus/pci/devices/"+vf)
		}
	}
	return root
}
