package scenario

import (
	"strings"
	"testing"

	"github.com/vflag/vflag/testenv"
)

// TestLibvirtDomainVFs checks, without a testbed, how the scenario reads
// a live domain XML and finds leaked VFs.
func TestLibvirtDomainVFs(t *testing.T) {
	vfs := map[string]hostVF{
		"0000:01:10.0": {pf: "pf0", idx: 0, driver: "vfio-pci"},
		"0000:02:10.0": {pf: "pf1", idx: 0, driver: "vfio-pci"},
		"0000:02:10.2": {pf: "pf1", idx: 1, driver: "igbvf"},
	}
	x, err := testenv.TeamedInterfacesXML("0000:02:10.0", "52:54:00:a0:02:01", "bond0")
	if err != nil {
		t.Fatal(err)
	}
	x = strings.Replace(x, "      <teaming type='transient'", "      <address type='pci' domain='0x0000' bus='0x03' slot='0x00' function='0x0'/>\n      <teaming type='transient'", 1)
	got, err := domainVFs("<domain type='qemu'><name>a</name><devices>"+x+"</devices></domain>", vfs)
	if err != nil {
		t.Fatal(err)
	}
	want := LibvirtNIC{MAC: "52:54:00:a0:02:01", VF: "0000:02:10.0", PFVF: "pf1 vf 0", Teaming: "transient", GuestPCI: "0000:03:00.0"}
	if len(got) != 1 || got[0] != want {
		t.Errorf("domainVFs = %+v, want [%+v] (the standby is no VF)", got, want)
	}
	if _, err := domainVFs("<domain", vfs); err == nil {
		t.Error("domainVFs of broken XML succeeded")
	}

	leaked := leaks(vfs, map[string]string{"0000:02:10.0": "vm-failover"}, nil)
	if len(leaked) != 1 || !strings.Contains(leaked[0], "0000:01:10.0 (pf0 vf 0) is on vfio-pci but no domain holds it") {
		t.Errorf("leaks = %q, want VF 0000:01:10.0 alone", leaked)
	}
}

// TestPCIHasDevice checks the reading of QMP query-pci: a device behind a
// root port counts, a device of another id does not.
func TestPCIHasDevice(t *testing.T) {
	answer := `{"return":[{"bus":0,"devices":[{"bus":0,"slot":0,"qdev_id":""},
{"bus":0,"slot":1,"qdev_id":"pci.4","pci_bridge":{"bus":{"number":4},"devices":[{"bus":4,"slot":0,"qdev_id":"hostdev0"}]}},
{"bus":0,"slot":2,"qdev_id":"pci.1","pci_bridge":{"bus":{"number":1},"devices":[{"bus":1,"slot":0,"qdev_id":"ua-standby0"}]}}]}],"id":"libvirt-1"}`
	if !pciHasDevice(answer, "hostdev0") {
		t.Error("hostdev0 behind pci.4 not found")
	}
	if pciHasDevice(answer, "hostdev1") || pciHasDevice("not json", "hostdev0") {
		t.Error("found a device that is not there")
	}
}
