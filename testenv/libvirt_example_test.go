package testenv_test

import (
	"fmt"

	"github.com/vflag/vflag/testenv"
)

// A VF of a libvirt-flavour host, passed to a nested guest the way libvirt
// users do it. Scenario code gets the PCI address from Testbed.VFAddress,
// then calls DefineNested, Virsh(ctx, host, "start", name), WaitNested and
// NestedExec.
func ExampleHostdevInterfaceXML() {
	x, err := testenv.HostdevInterfaceXML("0000:01:10.2", "52:54:00:aa:00:01", 10)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(x)
	// Output:
	//     <interface type='hostdev' managed='yes'>
	//       <mac address='52:54:00:aa:00:01'/>
	//       <source>
	//         <address type='pci' domain='0x0000' bus='0x01' slot='0x10' function='0x2'/>
	//       </source>
	//       <vlan><tag id='10'/></vlan>
	//     </interface>
}
