package sriov

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/vflag/vflag/vfmgr"
)

// fakeVF is a VF in a fake sysfs tree.
type fakeVF struct {
	pci, netdev string // netdev "" = no host driver (passed through)
}

// fakePF describes a PF to lay out in a fake sysfs tree.
type fakePF struct {
	name, pci, driver string
	total, num        string // file contents; total "" = no SR-IOV
	carrier           string
	master            string // "bond0" a bond, "br0" a bridge, "" none
	vfs               []fakeVF
}

// newSysfs lays out pfs in a temporary directory as the kernel does under
// /sys (see doc.go) and returns its root.
func newSysfs(t *testing.T, pfs ...fakePF) string {
	t.Helper()
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mkdir := func(p ...string) string {
		t.Helper()
		dir := filepath.Join(append([]string{root}, p...)...)
		must(os.MkdirAll(dir, 0o755))
		return dir
	}
	write := func(dir, name, content string) {
		t.Helper()
		if content != "" {
			must(os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
		}
	}
	mkdir("class", "net")
	for _, bridgeOrBond := range []string{"bond0", "br0"} {
		if bridgeOrBond == "bond0" {
			mkdir("devices", "virtual", "net", bridgeOrBond, "bonding")
		} else {
			mkdir("devices", "virtual", "net", bridgeOrBond, "bridge")
		}
		must(os.Symlink("../../devices/virtual/net/"+bridgeOrBond, filepath.Join(root, "class", "net", bridgeOrBond)))
	}
	for _, pf := range pfs {
		dev := mkdir("devices", "pci0000:00", pf.pci)
		nd := mkdir("devices", "pci0000:00", pf.pci, "net", pf.name)
		must(os.Symlink("../../devices/pci0000:00/"+pf.pci+"/net/"+pf.name, filepath.Join(root, "class", "net", pf.name)))
		must(os.Symlink("../../../"+pf.pci, filepath.Join(nd, "device")))
		write(nd, "carrier", pf.carrier)
		if pf.master != "" {
			must(os.Symlink("../../../../virtual/net/"+pf.master, filepath.Join(nd, "master")))
		}
		if pf.driver != "" {
			mkdir("bus", "pci", "drivers", pf.driver)
			must(os.Symlink("../../../bus/pci/drivers/"+pf.driver, filepath.Join(dev, "driver")))
		}
		write(dev, "sriov_totalvfs", pf.total)
		write(dev, "sriov_numvfs", pf.num)
		for i, vf := range pf.vfs {
			vdev := mkdir("devices", "pci0000:00", vf.pci)
			must(os.Symlink("../"+vf.pci, filepath.Join(dev, virtfn(i))))
			must(os.Symlink("../"+pf.pci, filepath.Join(vdev, "physfn")))
			if vf.netdev != "" {
				mkdir("devices", "pci0000:00", vf.pci, "net", vf.netdev)
			}
		}
	}
	return root
}

// igbPF is a port of an 82576 with two of its seven VFs enabled: vf 0 bound
// to igbvf on the host, vf 1 passed through.
func igbPF(name, pci, master string) fakePF {
	bus := pci[:len("0000:01")]
	return fakePF{
		name: name, pci: pci, driver: "igb", total: "7\n", num: "2\n", carrier: "1\n", master: master,
		vfs: []fakeVF{{pci: bus + ":10.0", netdev: "eth2"}, {pci: bus + ":10.4"}},
	}
}

func TestPF(t *testing.T) {
	t.Parallel()
	root := newSysfs(t,
		igbPF("pf0", "0000:01:00.0", "bond0"),
		fakePF{name: "pf1", pci: "0000:01:00.1", driver: "igb", total: "7\n", num: "0\n", carrier: "0\n", master: "br0"},
		fakePF{name: "eth9", pci: "0000:02:00.0", driver: "e1000e", carrier: "1\n"},
	)
	k := &Kernel{Sysfs: root}
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		want    vfmgr.PF
		wantErr string
		is      error
	}{
		{name: "pf0", want: vfmgr.PF{Name: "pf0", PCI: "0000:01:00.0", Driver: "igb", Bond: "bond0", TotalVFs: 7, NumVFs: 2, Carrier: true}},
		// A bridge is a master but not a bond.
		{name: "pf1", want: vfmgr.PF{Name: "pf1", PCI: "0000:01:00.1", Driver: "igb", TotalVFs: 7}},
		{name: "eth9", wantErr: "pf eth9 (0000:02:00.0): no SR-IOV capability", is: ErrNoSRIOV},
		{name: "bond0", wantErr: "pf bond0: not a PCI device: readlink " + root + "/class/net/bond0/device: no such file or directory", is: os.ErrNotExist},
		{name: "nosuch", wantErr: "pf nosuch: no such network device: stat " + root + "/class/net/nosuch: no such file or directory", is: os.ErrNotExist},
	} {
		got, err := k.PF(ctx, tc.name)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr || !errors.Is(err, tc.is) {
				t.Errorf("PF(%s) = %v\nwant %q matching %v", tc.name, err, tc.wantErr, tc.is)
			}
			continue
		}
		if err != nil {
			t.Errorf("PF(%s): %v", tc.name, err)
		} else if got != tc.want {
			t.Errorf("PF(%s) = %+v\nwant       %+v", tc.name, got, tc.want)
		}
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := k.PF(cancelled, "pf0"); !errors.Is(err, context.Canceled) {
		t.Errorf("PF with a cancelled context: %v", err)
	}
}

func TestVFs(t *testing.T) {
	t.Parallel()
	root := newSysfs(t, igbPF("pf0", "0000:01:00.0", "bond0"), fakePF{name: "pf1", pci: "0000:01:00.1", total: "7\n", num: "0\n"})
	links := newFakeLinks()
	links.set("pf0", 0, VFConfig{MAC: net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}, VLAN: 100, QoS: 2, SpoofChk: true, Trust: true})
	links.set("pf0", 1, VFConfig{SpoofChk: true})
	k := &Kernel{Sysfs: root, links: links}

	got, err := k.VFs(context.Background(), "pf0")
	if err != nil {
		t.Fatal(err)
	}
	want := []vfmgr.VF{
		{PF: "pf0", Index: 0, PCI: "0000:01:10.0", Netdev: "eth2", MAC: net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}, VLAN: 100, QoS: 2, SpoofChk: true, Trust: true},
		{PF: "pf0", Index: 1, PCI: "0000:01:10.4", SpoofChk: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("VFs(pf0) =\n%+v\nwant\n%+v", got, want)
	}

	if got, err := k.VFs(context.Background(), "pf1"); err != nil || len(got) != 0 {
		t.Errorf("VFs(pf1) = %v, %v; want none", got, err)
	}

	// rtnetlink reports fewer VFs than sysfs has (sriov_numvfs changing).
	short := newFakeLinks()
	short.set("pf0", 0, VFConfig{})
	k.links = short
	_, err = k.VFs(context.Background(), "pf0")
	if want := "list VFs of pf0 (0000:01:00.0): pf0 vf 1 (0000:01:10.4): not in the PF's rtnetlink VF list (1 entries)"; err == nil || err.Error() != want {
		t.Errorf("VFs with a short rtnetlink list: %v\nwant %q", err, want)
	}
}

func TestNumVFsWrites(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cur, n, total int
		want          string
	}{
		{0, 4, 7, "[4]"},
		{4, 4, 7, "[]"},
		{4, 0, 7, "[0]"},
		{4, 2, 7, "[0 2]"}, // a non-zero count changes through 0
		{2, 7, 7, "[0 7]"},
		{0, 8, 7, "error: 8 VFs requested, sriov_totalvfs is 7"},
		{0, -1, 7, "error: negative VF count -1"},
	} {
		w, err := numVFsWrites(tc.cur, tc.n, tc.total)
		got := fmt.Sprint(w)
		if err != nil {
			got = "error: " + err.Error()
		}
		if got != tc.want {
			t.Errorf("numVFsWrites(%d, %d, %d) = %s, want %s", tc.cur, tc.n, tc.total, got, tc.want)
		}
	}
}

func TestSetNumVFs(t *testing.T) {
	t.Parallel()
	root := newSysfs(t, igbPF("pf0", "0000:01:00.0", "bond0"), fakePF{name: "eth9", pci: "0000:02:00.0", carrier: "1\n"})
	k := &Kernel{Sysfs: root}
	ctx := context.Background()
	numvfs := filepath.Join(root, "devices", "pci0000:00", "0000:01:00.0", "sriov_numvfs")
	read := func() string {
		t.Helper()
		b, err := os.ReadFile(numvfs)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	if err := k.SetNumVFs(ctx, "pf0", 7); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "7\n" {
		t.Errorf("sriov_numvfs = %q, want 7", got)
	}
	if err := k.SetNumVFs(ctx, "pf0", 3); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "3\n" {
		t.Errorf("sriov_numvfs = %q, want 3", got)
	}
	err := k.SetNumVFs(ctx, "pf0", 8)
	if want := "set sriov_numvfs of pf0 (0000:01:00.0) to 8: 8 VFs requested, sriov_totalvfs is 7"; err == nil || err.Error() != want {
		t.Errorf("SetNumVFs(8) = %v\nwant %q", err, want)
	}
	if got := read(); got != "3\n" {
		t.Errorf("a refused SetNumVFs changed sriov_numvfs to %q", got)
	}
	err = k.SetNumVFs(ctx, "eth9", 1)
	if want := "set sriov_numvfs of eth9 (0000:02:00.0) to 1: no SR-IOV capability"; err == nil || err.Error() != want || !errors.Is(err, ErrNoSRIOV) {
		t.Errorf("SetNumVFs(eth9) = %v\nwant %q", err, want)
	}
}
