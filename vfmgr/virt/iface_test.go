package virt

import (
	"errors"
	"net"
	"strings"
	"testing"

	"libvirt.org/go/libvirtxml"

	"github.com/vflag/vflag/vfmgr"
)

// liveTeamed is what libvirt 11 shows for a running failover pair: the
// virtio standby and the VF primary share the MAC.
const liveTeamed = `<domain type='kvm' id='3'>
  <name>ha-app</name>
  <uuid>55555555-6666-7777-8888-999999999999</uuid>
  <devices>
    <interface type='direct'>
      <mac address='52:54:00:aa:00:01'/>
      <source dev='bond0' mode='bridge'/>
      <model type='virtio'/>
      <teaming type='persistent'/>
      <alias name='ua-standby'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </interface>
    <interface type='hostdev' managed='yes'>
      <mac address='52:54:00:AA:00:01'/>
      <driver name='vfio'/>
      <source>
        <address type='pci' domain='0x0000' bus='0x01' slot='0x10' function='0x2'/>
      </source>
      <vlan>
        <tag id='100'/>
      </vlan>
      <teaming type='transient' persistent='ua-standby'/>
      <alias name='hostdev0'/>
      <address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/>
    </interface>
  </devices>
</domain>`

func TestFindVFSkipsTheStandby(t *testing.T) {
	mac, _ := net.ParseMAC("52:54:00:aa:00:01")
	x, pci, err := findVF(liveTeamed, mac)
	if err != nil {
		t.Fatal(err)
	}
	if pci != "0000:01:10.2" || x.Teaming == nil || x.Teaming.Type != "transient" {
		t.Fatalf("found %s teaming %+v, want the VF 0000:01:10.2 (transient)", pci, x.Teaming)
	}
	other, _ := net.ParseMAC("52:54:00:aa:00:02")
	if _, _, err := findVF(liveTeamed, other); !errors.Is(err, errNoVF) {
		t.Fatalf("other MAC: %v, want errNoVF", err)
	}
}

func TestWithVFKeepsTheInterface(t *testing.T) {
	mac, _ := net.ParseMAC("52:54:00:aa:00:01")
	x, _, err := findVF(liveTeamed, mac)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := withVF(*x, "0000:02:10.1")
	if err != nil {
		t.Fatal(err)
	}
	var got libvirtxml.DomainInterface
	if err := got.Unmarshal(raw); err != nil {
		t.Fatal(err)
	}
	if pci, _ := sourcePCI(&got); pci != "0000:02:10.1" {
		t.Errorf("source %s, want 0000:02:10.1\n%s", pci, raw)
	}
	if got.Alias != nil {
		t.Errorf("libvirt's alias kept: %s", raw)
	}
	for _, want := range []string{`<mac address="52:54:00:AA:00:01">`, `<tag id="100">`, `<teaming type="transient" persistent="ua-standby">`, `bus="0x02" slot="0x00"`, `managed="yes"`} {
		if !strings.Contains(raw, want) {
			t.Errorf("re-plugged interface lacks %s:\n%s", want, raw)
		}
	}
	if _, err := withVF(*x, "not-a-pci"); err == nil {
		t.Error("bad address accepted")
	}
}

func TestHostdevInterface(t *testing.T) {
	mac, _ := net.ParseMAC("52:54:00:aa:00:09")
	raw, err := withVF(hostdevInterface(vfmgr.Allocation{MAC: mac, VLAN: 7}), "0000:01:10.3")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`type="hostdev"`, `managed="yes"`, `<mac address="52:54:00:aa:00:09">`, `<tag id="7">`, `function="0x3"`} {
		if !strings.Contains(raw, want) {
			t.Errorf("missing %s:\n%s", want, raw)
		}
	}
}
