package nicview_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/vflag/vflag/firmware/nicview"
	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/sriov"
)

func load(t *testing.T, name string) *nicview.Recording {
	t.Helper()
	r, err := nicview.LoadRecording("../testdata/"+name, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The recorded E810 (modelled on ice.rst, not captured) read through
// vfmgr/sriov's own sysfs code and the bond reader.
func TestRecordingSysfsTree(t *testing.T) {
	ctx := context.Background()
	r := load(t, "e810-good.yaml")
	pf, err := r.PF(ctx, "ens1f0")
	if err != nil {
		t.Fatal(err)
	}
	want := vfmgr.PF{Name: "ens1f0", PCI: "0000:af:00.0", Driver: "ice", Bond: "bond0", TotalVFs: 128, NumVFs: 4, Carrier: true}
	if pf != want {
		t.Errorf("PF = %+v, want %+v", pf, want)
	}
	bond, err := nicview.ReadBond(r.Sysfs(), "bond0")
	if err != nil {
		t.Fatal(err)
	}
	wantBond := nicview.Bond{Name: "bond0", Mode: "active-backup", Slaves: []string{"ens1f0", "ens1f1"}, Primary: "ens1f0", Active: "ens1f0", MIIMon: 100, FailOverMAC: "none"}
	if !reflect.DeepEqual(bond, wantBond) {
		t.Errorf("bond = %+v, want %+v", bond, wantBond)
	}
	if _, err := nicview.ReadBond(r.Sysfs(), "ens1f0"); !errors.Is(err, nicview.ErrNotBond) {
		t.Errorf("ReadBond(ens1f0) = %v, want ErrNotBond", err)
	}
	vfs, err := r.VFs(ctx, "ens1f1")
	if err != nil {
		t.Fatal(err)
	}
	if len(vfs) != 4 || vfs[3].PCI != "0000:af:11.3" || vfs[3].Netdev != "ens1f1v3" || !vfs[3].SpoofChk {
		t.Errorf("VFs of ens1f1 = %+v", vfs)
	}
}

// Changes are applied and logged as the commands that make them; refused
// commands fail with the recorded answer.
func TestRecordingChanges(t *testing.T) {
	ctx := context.Background()
	r := load(t, "e810-vfs-before-switchdev.yaml")
	if err := r.SetEswitchMode(ctx, "0000:af:00.0", nicview.EswitchSwitchdev); err == nil {
		t.Error("switchdev with VFs present: no error, want the recorded refusal")
	}
	if err := r.SetPrivFlag(ctx, "ens1f1", "fw-lldp-agent", true); err != nil {
		t.Fatal(err)
	}
	if et, _ := r.Ethtool(ctx, "ens1f1"); !et.PrivFlags["fw-lldp-agent"] {
		t.Error("fw-lldp-agent still off after setting it on")
	}
	if err := r.SetPrivFlag(ctx, "ens1f1", "no-such-flag", true); err == nil {
		t.Error("unknown private flag: no error")
	}
	if err := r.SetNumVFs(ctx, "ens1f0", 2); err != nil {
		t.Fatal(err)
	}
	if pf, _ := r.PF(ctx, "ens1f0"); pf.NumVFs != 2 {
		t.Errorf("sriov_numvfs = %d after SetNumVFs 2", pf.NumVFs)
	}
	if err := r.SetNumVFs(ctx, "ens1f0", 129); err == nil {
		t.Error("129 VFs of 128: no error")
	}
	if err := r.ConfigureVF(ctx, "ens1f0", 1, sriov.VFConfig{MAC: []byte{2, 0, 0, 0, 0, 1}, VLAN: 100, SpoofChk: true}); err != nil {
		t.Fatal(err)
	}
	drv, err := r.Unbind(ctx, "0000:af:01.1")
	if err != nil || drv != "iavf" {
		t.Fatalf("Unbind = %q, %v", drv, err)
	}
	if vfs, _ := r.VFs(ctx, "ens1f0"); vfs[1].Netdev != "" || vfs[1].MAC.String() != "02:00:00:00:00:01" || vfs[1].VLAN != 100 {
		t.Errorf("VF 1 after configure and unbind: %+v", vfs[1])
	}
	if err := r.Bind(ctx, "0000:af:01.1", "iavf"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"devlink dev eswitch set pci/0000:af:00.0 mode switchdev",
		"ethtool --set-priv-flags ens1f1 fw-lldp-agent on",
		"ethtool --set-priv-flags ens1f1 no-such-flag on",
		"echo 0 > /sys/class/net/ens1f0/device/sriov_numvfs",
		"echo 2 > /sys/class/net/ens1f0/device/sriov_numvfs",
		"ip link set ens1f0 vf 1 mac 02:00:00:00:00:01 vlan 100 qos 0 spoofchk on trust off",
		"echo 0000:af:01.1 > /sys/bus/pci/drivers/iavf/unbind",
		"echo 0000:af:01.1 > /sys/bus/pci/drivers/iavf/bind",
	}
	if got := r.Log(); !reflect.DeepEqual(got, want) {
		t.Errorf("log:\n%q\nwant:\n%q", got, want)
	}
}

// A device without devlink or DCB (igb) answers the sentinel errors.
func TestRecordingNoDevlink(t *testing.T) {
	ctx := context.Background()
	r := load(t, "igb-good.yaml")
	if _, err := r.Devlink(ctx, "0000:01:00.0"); !errors.Is(err, nicview.ErrNoDevlink) {
		t.Errorf("Devlink = %v, want ErrNoDevlink", err)
	}
	if _, err := r.DCB(ctx, "pf0"); !errors.Is(err, nicview.ErrNoDCB) {
		t.Errorf("DCB = %v, want ErrNoDCB", err)
	}
}

func TestParsePCI(t *testing.T) {
	a, err := nicview.ParsePCI("0000:af:00.1")
	if err != nil || a != (nicview.PCIAddr{Bus: 0xaf, Function: 1}) {
		t.Errorf("ParsePCI = %+v, %v", a, err)
	}
	for _, bad := range []string{"af:00.1", "0000:af:00", "0000:af:00.1x", ""} {
		if _, err := nicview.ParsePCI(bad); err == nil {
			t.Errorf("ParsePCI(%q): no error", bad)
		}
	}
}
