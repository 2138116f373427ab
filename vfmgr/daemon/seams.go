package daemon

import (
	"context"
	"net/netip"

	"github.com/vflag/vflag/announce"
	"github.com/vflag/vflag/rdmamgr"
	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/sriov"
	"github.com/vflag/vflag/vfmgr/store"
)

// Kernel is the SR-IOV side of the kernel. In vflagd the bonds' NIC
// backends serve it out of process (BackendKernel, ResetVF being their
// ReleaseVF); vfmgr/sriov serves it in process.
type Kernel interface {
	PF(ctx context.Context, name string) (vfmgr.PF, error)
	VFs(ctx context.Context, pf string) ([]vfmgr.VF, error)
	SetNumVFs(ctx context.Context, pf string, n int) error
	ConfigureVF(ctx context.Context, pf string, idx int, cfg sriov.VFConfig) error
	ResetVF(ctx context.Context, pf string, idx int) error
}

var _ Kernel = (*sriov.Kernel)(nil)

// Bonds reads and sets a bond's active port.
type Bonds interface {
	Active(ctx context.Context, bond string) (string, error)
	SetActive(ctx context.Context, bond, pf string) error
}

// Store is the crash-safe allocation table (vfmgr/store).
type Store interface {
	List() ([]vfmgr.Allocation, error)
	Put(a vfmgr.Allocation) error
	Delete(key string) error
	BeginMoves(id string, moves []store.Move) error
	CommitMoves(id string) error
	AbortMoves(id string) error
	PendingMoves() ([]store.Intent, error)
}

var _ Store = (*store.Store)(nil)

// VMSide hands VFs to VMs and takes them back (vfmgr/nsvm for namespace
// VMs). Allocations without a VM side (Netns empty) are configured on the
// PF only: whoever attached the VF to the guest keeps it.
type VMSide interface {
	Plug(ctx context.Context, a vfmgr.Allocation, vf vfmgr.VFRef) error
	Unplug(ctx context.Context, a vfmgr.Allocation) error
	Addrs(ctx context.Context, a vfmgr.Allocation) ([]netip.Addr, error)
}

// Domains is vflagd's libvirt side (vfmgr/virt.Conn): the VM side of
// libvirt domains' failover and hotswap interfaces (hot-unplug and
// hot-plug through libvirt), and the keeper of the vflag-<bond> pool
// networks, told which VFs (PCI addresses) each should list.
type Domains interface {
	VMSide
	SetPools(pools map[string][]string)
	// State says whether it is connected, for vflag status.
	State() string
}

// RDMA keeps the host's RDMA working on a bond (rdmamgr).
type RDMA interface {
	Ensure(ctx context.Context, bond string, mode rdmamgr.Mode) (rdmamgr.Status, error)
	Check(ctx context.Context, bond string, mode rdmamgr.Mode) rdmamgr.Status
}

var _ RDMA = (*rdmamgr.Manager)(nil)

// Announcer sends the frames that tell the switches where a MAC is.
type Announcer interface {
	Announce(ctx context.Context, ifname string, anns []announce.Announcement) (int, error)
}

var _ Announcer = (*announce.Announcer)(nil)
