package store_test

import (
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"

	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/store"
)

// A failover written ahead: the plan is persisted before the kernel is
// touched, and committed after.
func Example() {
	dir, err := os.MkdirTemp("", "vflag-store")
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := os.RemoveAll(dir); err != nil {
			log.Print(err)
		}
	}()
	s, err := store.Open(filepath.Join(dir, "state.db"), store.Options{})
	if err != nil {
		log.Fatal(err) // "state file ... is locked: another vflagd running? ..."
	}
	defer func() {
		if err := s.Close(); err != nil {
			log.Print(err)
		}
	}()

	err = s.Put(vfmgr.Allocation{
		VM: "web-1", Iface: "eth0", MAC: net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1},
		Bond: "bond0", VF: vfmgr.VFRef{PF: "pf0", Index: 3},
	})
	if err != nil {
		log.Fatal(err)
	}

	moves := []store.Move{{Key: "web-1/eth0", From: vfmgr.VFRef{PF: "pf0", Index: 3}, To: vfmgr.VFRef{PF: "pf1", Index: 3}}}
	if err := s.BeginMoves("failover-1", moves); err != nil {
		log.Fatal(err)
	}
	// ... configure pf1 vf 3 with the VM's MAC and VLAN, re-point the VM ...
	if err := s.CommitMoves("failover-1"); err != nil {
		log.Fatal(err)
	}

	a, err := s.Get("web-1/eth0")
	if err != nil {
		log.Fatal(err)
	}
	pending, err := s.PendingMoves()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(a.Key(), a.MAC, a.VF, len(pending))
	// Output: web-1/eth0 52:54:00:00:00:01 pf1 vf 3 0
}
