package scenario

import (
	"strings"
	"testing"
	"time"

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

// TestPrimaryRegistered checks the reading of the guest's kernel log for
// when net_failover took the VF: dated back from the guest's uptime, and
// nothing for an unregistration or no line.
func TestPrimaryRegistered(t *testing.T) {
	answered := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	out := "igbvf\nuptime 200.50\n[  190.704605] virtio_net virtio0 eth0: failover primary slave:eth2 registered\n"
	want := answered.Add(-9795395 * time.Microsecond)
	if got := primaryRegistered(out, answered); got.Sub(want).Abs() > time.Microsecond {
		t.Errorf("primaryRegistered = %v, want %v", got, want)
	}
	for _, out := range []string{
		"uptime 200.50\n[  150.1] virtio_net virtio0 eth0: failover primary slave:eth2 unregistered\n",
		"igbvf\nuptime 200.50\n",
		"igbvf\n[  190.7] virtio_net virtio0 eth0: failover primary slave:eth2 registered\n",
	} {
		if got := primaryRegistered(out, answered); !got.IsZero() {
			t.Errorf("primaryRegistered(%q) = %v, want none", out, got)
		}
	}
}
