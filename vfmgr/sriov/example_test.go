package sriov_test

import (
	"context"
	"log"
	"net"

	"github.com/vflag/vflag/vfmgr/sriov"
)

// Give VF 3 of pf0 a VM's MAC and port VLAN, as vflagd does on allocation.
// (Not run: it needs a NIC with SR-IOV.)
func ExampleKernel_ConfigureVF() {
	ctx := context.Background()
	k := &sriov.Kernel{} // /sys and the host's rtnetlink
	pf, err := k.PF(ctx, "pf0")
	if err != nil {
		log.Fatal(err)
	}
	if pf.NumVFs == 0 {
		if err := k.SetNumVFs(ctx, pf.Name, pf.TotalVFs); err != nil {
			log.Fatal(err)
		}
	}
	mac := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	err = k.ConfigureVF(ctx, pf.Name, 3, sriov.VFConfig{MAC: mac, VLAN: 100, SpoofChk: true})
	if err != nil {
		log.Fatal(err) // names the VF, its PCI address, the refused setting, and a failed rollback
	}
	vfs, err := k.VFs(ctx, pf.Name)
	if err != nil {
		log.Fatal(err)
	}
	log.Println(vfs[3].ID(), vfs[3].MAC, vfs[3].VLAN)
}
