package hooks_test

import (
	"fmt"

	"github.com/vflag/vflag/hooks"
)

// A domain on vflag's pool network, as the prepare hook sees it.
func ExampleParse() {
	x := `<domain type='kvm'><name>web1</name><devices>
	  <interface type='network'><mac address='52:54:00:6b:3c:01'/><source network='vflag-bond0'/><vlan><tag id='100'/></vlan></interface>
	  <interface type='bridge'><mac address='52:54:00:6b:3c:02'/><source bridge='mgmt'/></interface>
	</devices></domain>`
	d, err := hooks.Parse([]byte(x), hooks.Options{})
	if err != nil {
		panic(err)
	}
	for _, it := range d.Vflag() {
		fmt.Println(it, "bond", it.Bond, "vlan", it.VLAN, "by", it.Marker)
	}
	fmt.Println("problems:", d.Check())
	// Output:
	// interface 0 (MAC 52:54:00:6b:3c:01, network vflag-bond0) bond bond0 vlan 100 by network
	// problems: <nil>
}

// The migrate hook moves a VM's VF to one of this host.
func ExampleRewritePCI() {
	x := `<domain type='kvm'><name>cache3</name><devices>
<interface type='hostdev' managed='yes'><mac address='52:54:00:c0:ff:ee'/><source><address type='pci' domain='0x0000' bus='0x01' slot='0x10' function='0x1'/></source></interface>
</devices></domain>`
	out, err := hooks.RewritePCI([]byte(x), map[int]string{0: "0000:02:10.6"})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(out))
	// Output:
	// <domain type='kvm'><name>cache3</name><devices>
	// <interface type='hostdev' managed='yes'><mac address='52:54:00:c0:ff:ee'/><source><address type='pci' domain='0x0000' bus='0x02' slot='0x10' function='0x6'/></source></interface>
	// </devices></domain>
}

// The network through which VMs take VFs of bond0's pool.
func ExamplePoolNetwork() {
	x, err := hooks.PoolNetwork("bond0", []string{"0000:01:10.0", "0000:01:10.1"})
	if err != nil {
		panic(err)
	}
	fmt.Println(x)
	// Output:
	// <network>
	//   <name>vflag-bond0</name>
	//   <forward mode="hostdev" managed="yes">
	//     <driver name="vfio"></driver>
	//     <address type="pci" domain="0x0000" bus="0x01" slot="0x10" function="0x0"></address>
	//     <address type="pci" domain="0x0000" bus="0x01" slot="0x10" function="0x1"></address>
	//   </forward>
	// </network>
}
