package sriov

import (
	"errors"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vflag/vflag/internal/netlinksafe"
	"github.com/vflag/vflag/internal/privtest"
)

// TestNetlinkVFsWithoutSRIOV runs the rtnetlink side against a real kernel,
// in a namespace of its own, on a veth: a device without VFs. It checks the
// requests are well formed and the kernel's refusals come back named; the
// VF settings themselves need the testbed's igb.
func TestNetlinkVFsWithoutSRIOV(t *testing.T) {
	_, path := privtest.Netns(t)
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	raw, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(raw.Close)
	if err := raw.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "pf0"}, PeerName: "pf0p"}); err != nil {
		t.Fatal(err)
	}
	n := netlinkVFs{nl: netlinksafe.New(raw), raw: raw}

	link, vfs, err := n.vfs("pf0")
	if err != nil || link.name != "pf0" || link.index == 0 || len(vfs) != 0 {
		t.Fatalf("vfs(pf0) = %+v, %v, %v; want pf0 with its ifindex and no VFs", link, vfs, err)
	}
	err = n.setMAC(link, 0, mac1)
	if want := "ip link set pf0 vf 0 mac 52:54:00:00:00:01: operation not supported"; err == nil || err.Error() != want || !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Errorf("setMAC on a veth = %v, want %q", err, want)
	}
	if err := n.setTrust(link, 0, true); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Errorf("setTrust on a veth = %v, want EOPNOTSUPP", err)
	}
	var notFound netlink.LinkNotFoundError
	if _, _, err := n.vfs("nosuch"); !errors.As(err, &notFound) {
		t.Errorf("vfs(nosuch) = %v, want a netlink.LinkNotFoundError", err)
	}
}
