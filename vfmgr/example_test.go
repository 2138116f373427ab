package vfmgr_test

import (
	"fmt"
	"log"
	"net"
	"time"

	"github.com/vflag/vflag/vfmgr"
)

// newBond0 is bond0 over pf0 (active) and pf1 with two VFs each, as the
// daemon builds it from the config and its inventory.
func newBond0(policy vfmgr.Policy, failback time.Duration) *vfmgr.Pool {
	spec := vfmgr.PoolSpec{Bond: "bond0", Policy: policy, FailbackAfter: failback, Active: "pf0"}
	for i, name := range []string{"pf0", "pf1"} {
		spec.PFs[i] = vfmgr.PF{Name: name, PCI: fmt.Sprintf("0000:0%d:00.0", i+1), Carrier: true}
		for vf := range 2 {
			spec.VFs[i] = append(spec.VFs[i], vfmgr.VF{PF: name, Index: vf, PCI: fmt.Sprintf("0000:0%d:10.%d", i+1, vf)})
		}
	}
	p, err := vfmgr.NewPool(spec)
	if err != nil {
		log.Fatal(err)
	}
	return p
}

// The libvirt hook asks for a VF when a VM starts; the VF comes from the
// active PF, spilling to the backup PF when the active one is full.
func ExamplePool_Allocate() {
	p := newBond0(vfmgr.ActiveFirst, 0)
	for _, mac := range []string{"52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03", "52:54:00:00:00:04"} {
		hw, _ := net.ParseMAC(mac)
		a, err := p.Allocate(vfmgr.Request{VM: "web", Iface: mac, MAC: hw, VLAN: 100})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(a.MAC, "->", a.VF)
	}
	hw, _ := net.ParseMAC("52:54:00:00:00:05")
	_, err := p.Allocate(vfmgr.Request{VM: "db", MAC: hw})
	fmt.Println(err)
	// Output:
	// 52:54:00:00:00:01 -> pf0 vf 0
	// 52:54:00:00:00:02 -> pf0 vf 1
	// 52:54:00:00:00:03 -> pf1 vf 0
	// 52:54:00:00:00:04 -> pf1 vf 1
	// allocate VF for db/52:54:00:00:00:05 on bond0 (pf0 2/2 used; pf1 2/2 used): no free VF
}

// When the active PF loses carrier, the plan moves its VMs to the other
// PF with the same MAC and VLAN and announces them there.
func ExampleState_Plan() {
	s, err := vfmgr.NewState(newBond0(vfmgr.ActiveFirst, 0))
	if err != nil {
		log.Fatal(err)
	}
	hw, _ := net.ParseMAC("52:54:00:00:00:01")
	if _, err := s.Allocate(vfmgr.Request{VM: "web", Iface: "net0", MAC: hw, VLAN: 100}); err != nil {
		log.Fatal(err)
	}
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	pl := s.Plan(vfmgr.Event{Kind: vfmgr.CarrierLost, Bond: "bond0", PF: "pf0", At: at})
	fmt.Print(pl)
	// ... the executor carries out pl.Moves and pl.Announce, then:
	s = s.Apply(pl)
	a, _ := s.Allocation("web/net0")
	fmt.Println("web/net0 now on", a.VF, "home", a.Home)
	// Output:
	// event 10:00:00.000 bond0 carrier-lost pf0
	// status bond0 active-first active pf0: pf0 down 0/2, pf1 up 1/2
	// move web/net0 52:54:00:00:00:01 vlan 100 qos 0 trust off: pf0 vf 0 (0000:01:10.0) -> pf1 vf 0 (0000:02:10.0): pf0 has no carrier
	// announce web/net0 52:54:00:00:00:01 vlan 100 qos 0 on pf1: no addresses
	// web/net0 now on pf1 vf 0 home pf0
}

// The bond watcher's loop: messages go to Feed, and Tick is called at
// the deadline Feed and Tick return. Losses and active changes come out at
// once, regains after the hold-down.
func ExampleFSM() {
	s, err := vfmgr.NewState(newBond0(vfmgr.ActiveFirst, 0))
	if err != nil {
		log.Fatal(err)
	}
	f := vfmgr.NewFSM(200*time.Millisecond, s.Bonds()...)
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	msgs := []vfmgr.LinkMsg{
		{Index: 2, Name: "pf0", Master: "bond0", At: at},                                               // cable out
		{Index: 9, Name: "bond0", IsBond: true, ActiveSlave: "pf1", At: at},                            // bond fails over
		{Index: 2, Name: "pf0", Master: "bond0", Carrier: true, OperUp: true, At: at.Add(time.Second)}, // cable in
	}
	var next time.Time
	for _, m := range msgs {
		var evs []vfmgr.Event
		evs, next = f.Feed(m)
		for _, e := range evs {
			fmt.Println(e)
		}
	}
	fmt.Println("tick at", next.Format("15:04:05.000"))
	evs, _ := f.Tick(next)
	fmt.Println(evs[0])
	// Output:
	// 10:00:00.000 bond0 carrier-lost pf0
	// 10:00:00.000 bond0 active-changed pf0 -> pf1
	// tick at 10:00:01.200
	// 10:00:01.200 bond0 carrier-regained pf0
}
