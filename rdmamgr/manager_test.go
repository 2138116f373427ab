package rdmamgr

import (
	"context"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// igbHost is the testbed's host: bond0 over the igb ports pf0 and pf1 with
// an IPv4 and an IPv6 address, rdma_rxe loaded, no RDMA device yet.
func igbHost(t *testing.T) *fakeHost {
	t.Helper()
	h := newHost(t)
	h.bond("bond0", "igb", "pf0", "pf1")
	h.setAddrs("bond0", "198.18.0.11", "2001:db8::11", "fe80::5054:ff:fe12:3456")
	h.module("rdma_rxe")
	return h
}

// bridgedHost is igbHost with bond0 a port of bridge br0, which holds
// the addresses: the layout mode soft keeps connections alive in.
func bridgedHost(t *testing.T) *fakeHost {
	t.Helper()
	h := newHost(t)
	h.bond("bond0", "igb", "pf0", "pf1")
	h.bridge("br0", "bond0")
	h.setAddrs("br0", "198.18.0.11", "2001:db8::11", "fe80::5054:ff:fe12:3456")
	h.module("rdma_rxe")
	return h
}

// mlx5Host is bond0 over the two ports of a ConnectX NIC.
func mlx5Host(t *testing.T) *fakeHost {
	t.Helper()
	h := newHost(t)
	h.bond("bond0", "mlx5_core", "ens1f0", "ens1f1")
	h.setAddrs("bond0", "198.18.0.11")
	return h
}

// rxeOnBond0 is a ready Soft-RoCE device on the igbHost's bond0.
func rxeOnBond0(name string) func(h *fakeHost) {
	return func(h *fakeHost) {
		h.rxe(name, "bond0", active(roce("fe80::5054:ff:fe12:3456", "bond0"), roce("198.18.0.11", "bond0"), roce("2001:db8::11", "bond0")))
	}
}

// rxeOnBr0 is a ready Soft-RoCE device on the bridgedHost's br0.
func rxeOnBr0(name string) func(h *fakeHost) {
	return func(h *fakeHost) {
		h.rxe(name, "br0", active(roce("fe80::5054:ff:fe12:3456", "br0"), roce("198.18.0.11", "br0"), roce("2001:db8::11", "br0")))
	}
}

// noGIDs makes Add create an rxe device that never gets a GID for an
// address (the kernel did not put them in its table).
func noGIDs(h *fakeHost, name, netdev string) {
	h.rxeLocked(name, netdev, active(roce("fe80::5054:ff:fe12:3456", netdev)))
}

func TestEnsure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		host    func(t *testing.T) *fakeHost // nil: igbHost
		setup   func(h *fakeHost)
		bond    string // "": bond0
		mode    Mode
		opts    Options
		runs    int // how many times Ensure runs; 0 means 1
		want    string
		calls   []string
		wantErr string // "": no error
		is      error
	}{
		{
			name:  "soft creates rxe_bond0 once, on the bridge above the bond",
			host:  bridgedHost,
			mode:  ModeSoft,
			runs:  2,
			want:  "soft bond0: rxe_bond0/1 ACTIVE on br0 gids [fe80::5054:ff:fe12:3456 198.18.0.11 2001:db8::11] healthy=true",
			calls: []string{"add rxe_bond0 rxe br0"},
		},
		{
			// Works, but every failover renumbers the bond's GIDs: the
			// status says so (ErrGIDRenumber), Ensure does not refuse.
			name:  "soft on a bond that is no bridge port binds to the bond and warns",
			mode:  ModeSoft,
			want:  "soft bond0: rxe_bond0/1 ACTIVE on bond0 gids [fe80::5054:ff:fe12:3456 198.18.0.11 2001:db8::11] healthy=false",
			calls: []string{"add rxe_bond0 rxe bond0"},
		},
		{
			name:    "soft without rdma_rxe",
			setup:   func(h *fakeHost) { h.must(os.RemoveAll(h.path("module", "rdma_rxe"))) },
			mode:    ModeSoft,
			want:    "soft bond0: none gids [] healthy=false",
			wantErr: "rdma mode soft on bond0: rdma_rxe module not loaded: load it: modprobe rdma_rxe",
			is:      ErrNoRXEModule,
		},
		{
			name:    "soft on a bond without address",
			setup:   func(h *fakeHost) { h.setAddrs("bond0", "fe80::5054:ff:fe12:3456") },
			mode:    ModeSoft,
			want:    "soft bond0: none gids [] healthy=false",
			wantErr: "rdma mode soft on bond0: no IP address on the bond: the Soft-RoCE GID table of bond0 needs one (RoCE v2 reaches peers by IP): add an address to bond0 (ip addr add ADDR/LEN dev bond0)",
			is:      ErrNoAddress,
		},
		{
			name:    "soft refuses while rxe sits on a port",
			setup:   func(h *fakeHost) { h.rxe("rxe0", "pf0", active(roce("198.18.0.11", "bond0"))) },
			mode:    ModeSoft,
			want:    "soft bond0: none gids [] healthy=false",
			wantErr: "rdma mode soft on bond0: rxe device on a port of the bond: rxe0 on pf0 would not survive the loss of its port: delete it (rdma link delete rxe0), or let vflag replace it with rxe_bond0 (ReplacePortRXE)",
			is:      ErrPortRXE,
		},
		{
			name:  "soft replaces rxe on a port when told",
			host:  bridgedHost,
			setup: func(h *fakeHost) { h.rxe("rxe0", "pf0", active(roce("198.18.0.11", "bond0"))) },
			mode:  ModeSoft,
			opts:  Options{ReplacePortRXE: true},
			want:  "soft bond0: rxe_bond0/1 ACTIVE on br0 gids [fe80::5054:ff:fe12:3456 198.18.0.11 2001:db8::11] healthy=true",
			calls: []string{"add rxe_bond0 rxe br0", "del rxe0"},
		},
		{
			name: "soft keeps the new device when replacing fails",
			setup: func(h *fakeHost) {
				h.rxe("rxe0", "pf0", active())
				h.fail["del rxe0"] = errInjected
			},
			mode:    ModeSoft,
			opts:    Options{ReplacePortRXE: true},
			want:    "soft bond0: rxe_bond0/1 ACTIVE on bond0 gids [fe80::5054:ff:fe12:3456 198.18.0.11 2001:db8::11] healthy=false",
			calls:   []string{"add rxe_bond0 rxe bond0", "del rxe0"},
			wantErr: "rdma mode soft on bond0: delete rxe0 on pf0 (replaced by rxe_bond0): injected failure",
			is:      errInjected,
		},
		{
			name:    "soft deletes what it created when the GIDs never come",
			setup:   func(h *fakeHost) { h.onAdd = noGIDs },
			mode:    ModeSoft,
			want:    "soft bond0: none gids [] healthy=false",
			calls:   []string{"add rxe_bond0 rxe bond0", "del rxe_bond0"},
			wantErr: "rdma mode soft on bond0: rdma device not ready: rxe_bond0 has no GID for 198.18.0.11 and 2001:db8::11 of bond0 within 200ms; vflag deleted rxe_bond0 again: check the addresses of bond0 (ip addr show bond0) and dmesg for rdma_rxe",
			is:      ErrNotReady,
		},
		{
			name: "soft reports both errors when the clean-up fails",
			setup: func(h *fakeHost) {
				h.onAdd = noGIDs
				h.fail["del rxe_bond0"] = errInjected
			},
			mode:    ModeSoft,
			want:    "soft bond0: rxe_bond0/1 ACTIVE on bond0 gids [fe80::5054:ff:fe12:3456] healthy=false",
			calls:   []string{"add rxe_bond0 rxe bond0", "del rxe_bond0"},
			wantErr: "rdma mode soft on bond0: rdma device not ready: rxe_bond0 has no GID for 198.18.0.11 and 2001:db8::11 of bond0 within 200ms; deleting rxe_bond0 again failed too: injected failure",
			is:      errInjected,
		},
		{
			name:    "soft when the kernel refuses the device",
			setup:   func(h *fakeHost) { h.fail["add"] = errInjected },
			mode:    ModeSoft,
			want:    "soft bond0: none gids [] healthy=false",
			calls:   []string{"add rxe_bond0 rxe bond0"},
			wantErr: "rdma mode soft on bond0: create the Soft-RoCE device on bond0: injected failure",
			is:      errInjected,
		},
		{
			name:  "soft accepts an rxe device already on the bridge above the bond",
			host:  bridgedHost,
			setup: rxeOnBr0("rxe0"),
			mode:  ModeSoft,
			want:  "soft bond0: rxe0/1 ACTIVE on br0 gids [fe80::5054:ff:fe12:3456 198.18.0.11 2001:db8::11] healthy=true",
		},
		{
			name: "soft does not delete an existing device that lacks GIDs",
			setup: func(h *fakeHost) {
				h.rxe("rxe_bond0", "bond0", active(roce("198.18.0.11", "bond0")))
			},
			mode:    ModeSoft,
			want:    "soft bond0: rxe_bond0/1 ACTIVE on bond0 gids [198.18.0.11] healthy=false",
			wantErr: "rdma mode soft on bond0: rdma device not ready: rxe_bond0 has no GID for 2001:db8::11 of bond0, so RDMA CM cannot connect by that address: if they do not appear, recreate the device (rdma link delete rxe_bond0, then ensure mode soft) (after 200ms)",
			is:      ErrNotReady,
		},
		{
			name:    "soft when rxe_bond0 sits elsewhere",
			setup:   func(h *fakeHost) { h.rxe("rxe_bond0", "eth5", active()) },
			mode:    ModeSoft,
			want:    "soft bond0: none gids [] healthy=false",
			wantErr: "rdma mode soft on bond0: device name taken: rxe_bond0 is bound to eth5, not bond0: delete it (rdma link delete rxe_bond0)",
			is:      ErrNameTaken,
		},
		{
			name: "hw with mlx5_bond_0 on the bond",
			host: mlx5Host,
			setup: func(h *fakeHost) {
				h.hca("mlx5_bond_0", "ens1f0", "", active(roce("fe80::1", "bond0"), roce("198.18.0.11", "bond0")))
			},
			mode: ModeHW,
			want: "hw bond0: mlx5_bond_0/1 ACTIVE on bond0 gids [fe80::1 198.18.0.11] healthy=true",
		},
		{
			// What the kernel shows: mlx5 reports the LAG device's active
			// port as its netdev (mlx5_lag_get_roce_netdev); the bond's
			// addresses are on the bond.
			name: "hw with mlx5_bond_0 reporting its active port",
			host: mlx5Host,
			setup: func(h *fakeHost) {
				h.hca("mlx5_bond_0", "ens1f0", "", active(roce("fe80::1", "ens1f0"), roce("198.18.0.11", "bond0")))
			},
			mode: ModeHW,
			want: "hw bond0: mlx5_bond_0/1 ACTIVE on ens1f0 gids [fe80::1 198.18.0.11] healthy=true",
		},
		{
			name: "hw with one mlx5 device per port",
			host: mlx5Host,
			setup: func(h *fakeHost) {
				h.hca("mlx5_0", "ens1f0", "", active(roce("fe80::1", "ens1f0"), roce("198.18.0.11", "bond0")))
				h.hca("mlx5_1", "ens1f1", "", fakePort{state: "1: DOWN"})
			},
			mode:    ModeHW,
			want:    "hw bond0: none gids [] healthy=false",
			wantErr: "rdma mode hw on bond0: no RoCE LAG on the bond: mlx5_0 on ens1f0 and mlx5_1 on ens1f1: RoCE LAG is not active (mlx5 activates it only when both ports of one NIC are in the bond and SR-IOV VFs are off or the eswitch is in switchdev mode): RDMA there dies with its port: use mode soft (Soft-RoCE on bond0), or set the eswitch to switchdev before creating VFs (devlink dev eswitch set pci/ADDR mode switchdev)",
			is:      ErrNoLAG,
		},
		{
			name:    "hw on igb",
			setup:   rxeOnBond0("rxe_bond0"), // Soft-RoCE is not hardware
			mode:    ModeHW,
			want:    "hw bond0: none gids [] healthy=false",
			wantErr: "rdma mode hw on bond0: no RoCE LAG on the bond: no RDMA device on bond0 or its ports pf0, pf1 (igb has no RDMA): use mode soft (Soft-RoCE on bond0)",
			is:      ErrNoLAG,
		},
		{
			name: "hw on ice in a bond",
			host: func(t *testing.T) *fakeHost {
				h := newHost(t)
				h.bond("bond0", "ice", "ens2f0", "ens2f1")
				return h
			},
			mode:    ModeHW,
			want:    "hw bond0: none gids [] healthy=false",
			wantErr: "rdma mode hw on bond0: no RoCE LAG on the bond: no RDMA device on bond0 or its ports ens2f0, ens2f1 (ice turns RDMA off when a PF joins a bond): use mode soft (Soft-RoCE on bond0)",
			is:      ErrNoLAG,
		},
		{
			name: "hw with RDMA on one port only",
			host: func(t *testing.T) *fakeHost {
				h := newHost(t)
				h.bond("bond0", "mlx5_core", "ens1f0")
				h.nic("eth3", pciOf("eth3"), "igb")
				h.write("ens1f0 eth3", "class", "net", "bond0", "bonding", "slaves")
				return h
			},
			setup:   func(h *fakeHost) { h.hca("mlx5_0", "ens1f0", "", active(roce("fe80::1", "ens1f0"))) },
			mode:    ModeHW,
			want:    "hw bond0: none gids [] healthy=false",
			wantErr: "rdma mode hw on bond0: no RoCE LAG on the bond: mlx5_0 on ens1f0: RoCE LAG is not active (mlx5 activates it only when both ports of one NIC are in the bond and SR-IOV VFs are off or the eswitch is in switchdev mode); eth3 (igb) has no RDMA device: RDMA there dies with its port: use mode soft (Soft-RoCE on bond0), or set the eswitch to switchdev before creating VFs (devlink dev eswitch set pci/ADDR mode switchdev)",
			is:      ErrNoLAG,
		},
		{
			name: "off deletes only rxe_bond0",
			setup: func(h *fakeHost) {
				rxeOnBond0("rxe_bond0")(h)
				h.rxe("rxe0", "pf0", active())
				h.bond("bond1", "igb", "pf2", "pf3")
				h.rxe("rxe_bond1", "bond1", active())
			},
			mode:  ModeOff,
			want:  "off bond0: none gids [] healthy=true",
			calls: []string{"del rxe_bond0"},
		},
		{
			name:  "off leaves an rxe device of another name on the bond",
			setup: rxeOnBond0("rxe0"),
			mode:  ModeOff,
			want:  "off bond0: none gids [] healthy=true",
		},
		{
			name:  "off on a bond that is gone",
			bond:  "bond7",
			mode:  ModeOff,
			want:  "off bond7: none gids [] healthy=true",
			calls: nil,
		},
		{
			name:    "not a bond",
			bond:    "pf0",
			mode:    ModeSoft,
			want:    "soft pf0: none gids [] healthy=false",
			wantErr: "rdma mode soft on pf0: pf0 is not a bond: ROOT/class/net/pf0 has no bonding directory: name the bond, not one of its ports",
			is:      ErrNotBond,
		},
		{
			name:    "no such bond",
			bond:    "bond9",
			mode:    ModeHW,
			want:    "hw bond9: none gids [] healthy=false",
			wantErr: "rdma mode hw on bond9: bond9 is not a bond: no network device bond9: create the bond first, or name an existing one",
			is:      ErrNotBond,
		},
		{
			name:    "unknown mode",
			mode:    "fast",
			want:    "fast bond0: none gids [] healthy=false",
			wantErr: `rdma on bond0: unknown RDMA mode "fast": use hw, soft or off`,
			is:      ErrUnknownMode,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			newH := tc.host
			if newH == nil {
				newH = igbHost
			}
			h := newH(t)
			if tc.setup != nil {
				tc.setup(h)
			}
			bond := tc.bond
			if bond == "" {
				bond = "bond0"
			}
			m := h.manager(tc.opts)
			runs := max(tc.runs, 1)
			var st Status
			var err error
			for range runs {
				st, err = m.Ensure(context.Background(), bond, tc.mode)
			}
			if got := render(st); got != tc.want {
				t.Errorf("status = %s\nwant     %s", got, tc.want)
			}
			if calls := h.takeCalls(); !reflect.DeepEqual(calls, tc.calls) {
				t.Errorf("calls = %q, want %q", calls, tc.calls)
			}
			wantErr := strings.ReplaceAll(tc.wantErr, "ROOT", h.root)
			switch {
			case wantErr == "" && err != nil:
				t.Errorf("error = %v, want none", err)
			case wantErr != "" && (err == nil || err.Error() != wantErr):
				t.Errorf("error = %v\nwant    %s", err, wantErr)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not match %v", err, tc.is)
			}
		})
	}
}

func TestEnsureCanceled(t *testing.T) {
	t.Parallel()
	h := igbHost(t)
	m := h.manager(Options{})
	m.verifyTimeout = DefaultVerifyTimeout * 100 // only the context ends the wait
	ctx, cancel := context.WithCancel(context.Background())
	h.onAdd = func(h *fakeHost, name, netdev string) {
		noGIDs(h, name, netdev)
		cancel()
	}
	_, err := m.Ensure(ctx, "bond0", ModeSoft)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
	// Nothing half-created, even when the caller gave up.
	if calls, want := h.takeCalls(), []string{"add rxe_bond0 rxe bond0", "del rxe_bond0"}; !reflect.DeepEqual(calls, want) {
		t.Errorf("calls = %q, want %q", calls, want)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		host     func(t *testing.T) *fakeHost // nil: igbHost
		setup    func(h *fakeHost)
		bond     string // "": bond0
		mode     Mode
		want     string
		problems []string
	}{
		{
			name:  "soft healthy",
			host:  bridgedHost,
			setup: rxeOnBr0("rxe_bond0"),
			mode:  ModeSoft,
			want:  "soft bond0: rxe_bond0/1 ACTIVE on br0 gids [fe80::5054:ff:fe12:3456 198.18.0.11 2001:db8::11] healthy=true",
		},
		{
			name:  "soft on the bond itself",
			setup: rxeOnBond0("rxe_bond0"),
			mode:  ModeSoft,
			want:  "soft bond0: rxe_bond0/1 ACTIVE on bond0 gids [fe80::5054:ff:fe12:3456 198.18.0.11 2001:db8::11] healthy=false",
			problems: []string{
				"connections do not survive a failover: Soft-RoCE on bond0 itself: the kernel re-adds the bond's GIDs at new indexes on every failover, which fails every open RDMA connection: make bond0 a port of a bridge and move its address there (ip link add br0 type bridge; ip link set bond0 master br0; ip link set br0 up; ip addr del/add ADDR), then vflag binds rxe_bond0 to the bridge",
			},
		},
		{
			name: "soft with the bond down and a GID missing",
			setup: func(h *fakeHost) {
				h.rxe("rxe_bond0", "bond0", fakePort{state: "1: DOWN", gids: []fakeGID{roce("198.18.0.11", "bond0")}})
			},
			mode: ModeSoft,
			want: "soft bond0: rxe_bond0/1 DOWN on bond0 gids [198.18.0.11] healthy=false",
			problems: []string{
				"connections do not survive a failover: Soft-RoCE on bond0 itself: the kernel re-adds the bond's GIDs at new indexes on every failover, which fails every open RDMA connection: make bond0 a port of a bridge and move its address there (ip link add br0 type bridge; ip link set bond0 master br0; ip link set br0 up; ip addr del/add ADDR), then vflag binds rxe_bond0 to the bridge",
				"rdma port not active: rxe_bond0 port 1 is DOWN, so RDMA on bond0 carries no traffic: bring bond0 up and check its ports' links (ip link show master bond0)",
				"rdma device not ready: rxe_bond0 has no GID for 2001:db8::11 of bond0, so RDMA CM cannot connect by that address: if they do not appear, recreate the device (rdma link delete rxe_bond0, then ensure mode soft)",
			},
		},
		{
			name: "soft with nothing in place",
			setup: func(h *fakeHost) {
				h.must(os.RemoveAll(h.path("module", "rdma_rxe")))
				h.rxe("rxe0", "pf1", active())
			},
			mode: ModeSoft,
			want: "soft bond0: none gids [] healthy=false",
			problems: []string{
				"rdma_rxe module not loaded: load it: modprobe rdma_rxe",
				"connections do not survive a failover: Soft-RoCE on bond0 itself: the kernel re-adds the bond's GIDs at new indexes on every failover, which fails every open RDMA connection: make bond0 a port of a bridge and move its address there (ip link add br0 type bridge; ip link set bond0 master br0; ip link set br0 up; ip addr del/add ADDR), then vflag binds rxe_bond0 to the bridge",
				"rxe device on a port of the bond: rxe0 on pf1 would not survive the loss of its port: delete it (rdma link delete rxe0), or let vflag replace it with rxe_bond0 (ReplacePortRXE)",
				"rdma device not ready: no Soft-RoCE device on bond0: create it: ensure mode soft (rdma link add rxe_bond0 type rxe netdev bond0)",
			},
		},
		{
			name:  "off with rxe_bond0 left",
			setup: rxeOnBond0("rxe_bond0"),
			mode:  ModeOff,
			want:  "off bond0: rxe_bond0/1 ACTIVE on bond0 gids [fe80::5054:ff:fe12:3456 198.18.0.11 2001:db8::11] healthy=false",
			problems: []string{
				"rdma device left over: rxe_bond0 still exists with RDMA off for bond0: delete it: ensure mode off (rdma link delete rxe_bond0)",
			},
		},
		{
			name:  "hw healthy",
			host:  mlx5Host,
			setup: func(h *fakeHost) { h.hca("mlx5_bond_0", "ens1f0", "", active(roce("198.18.0.11", "bond0"))) },
			mode:  ModeHW,
			want:  "hw bond0: mlx5_bond_0/1 ACTIVE on bond0 gids [198.18.0.11] healthy=true",
		},
		{
			name: "hw without address",
			host: mlx5Host,
			setup: func(h *fakeHost) {
				h.setAddrs("bond0")
				h.hca("mlx5_bond_0", "ens1f0", "", active(roce("fe80::1", "ens1f0")))
			},
			mode: ModeHW,
			want: "hw bond0: mlx5_bond_0/1 ACTIVE on ens1f0 gids [fe80::1] healthy=false",
			problems: []string{
				"no IP address on the bond: RoCE reaches peers by IP, so bond0 needs one: add an address to bond0 (ip addr add ADDR/LEN dev bond0)",
			},
		},
		{
			name: "hw GID on a port, not the bond",
			host: mlx5Host,
			setup: func(h *fakeHost) {
				h.hca("mlx5_bond_0", "ens1f0", "", active(roce("198.18.0.11", "ens1f0")))
			},
			mode: ModeHW,
			want: "hw bond0: mlx5_bond_0/1 ACTIVE on ens1f0 gids [198.18.0.11] healthy=false",
			problems: []string{
				"rdma device not ready: mlx5_bond_0 has no GID for 198.18.0.11 of bond0, so RDMA CM cannot connect by that address: check that they are on bond0 itself, not on a port, and that RoCE is enabled on the NIC",
			},
		},
		{
			name: "hw on a kernel without RDMA",
			setup: func(h *fakeHost) {
				h.fail["list"] = noRDMA(errEPROTONOSUPPORT)
			},
			mode: ModeHW,
			want: "hw bond0: none gids [] healthy=false",
			problems: []string{
				"no RoCE LAG on the bond: no RDMA device on bond0 or its ports pf0, pf1 (igb has no RDMA; the kernel's RDMA core (ib_core) is not loaded): use mode soft (Soft-RoCE on bond0)",
			},
		},
		{
			name: "addresses unreadable",
			setup: func(h *fakeHost) {
				h.fail["addrs"] = errInjected
			},
			mode:     ModeSoft,
			want:     "soft bond0: none gids [] healthy=false",
			problems: []string{"addresses of bond0: injected failure"},
		},
		{
			name:     "not a bond",
			bond:     "pf1",
			mode:     ModeHW,
			want:     "hw pf1: none gids [] healthy=false",
			problems: []string{"pf1 is not a bond: ROOT/class/net/pf1 has no bonding directory: name the bond, not one of its ports"},
		},
		{
			name:     "unknown mode",
			mode:     "",
			want:     " bond0: none gids [] healthy=false",
			problems: []string{`unknown RDMA mode "": use hw, soft or off`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			newH := tc.host
			if newH == nil {
				newH = igbHost
			}
			h := newH(t)
			if tc.setup != nil {
				tc.setup(h)
			}
			bond := tc.bond
			if bond == "" {
				bond = "bond0"
			}
			st := h.manager(Options{}).Check(context.Background(), bond, tc.mode)
			if got := render(st); got != tc.want {
				t.Errorf("status = %s\nwant     %s", got, tc.want)
			}
			var want []string
			for _, p := range tc.problems {
				want = append(want, strings.ReplaceAll(p, "ROOT", h.root))
			}
			if !reflect.DeepEqual(st.Problems, want) {
				t.Errorf("problems =\n%s\nwant\n%s", strings.Join(st.Problems, "\n"), strings.Join(want, "\n"))
			}
			if calls := h.takeCalls(); len(calls) > 0 {
				t.Errorf("Check changed things: %q", calls)
			}
		})
	}
}
