package rdmamgr

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestDevices(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	h.bond("bond0", "mlx5_core", "ens1f0", "ens1f1")
	h.nic("eth9", "0000:01:00.9", "ice")
	// Soft-RoCE on the bond: default GID, an empty entry, the bond's IPv4.
	h.rxe("rxe_bond0", "bond0", active(roce("fe80::5054:ff:fe12:3456", "bond0"), fakeGID{}, roce("198.18.0.11", "bond0")))
	// mlx5 without RoCE LAG: the active port's device carries the bond's
	// address; the inactive port's lost its default GID (roce_gid_mgmt.c),
	// so its netdev comes from its PCI function.
	h.hca("mlx5_0", "ens1f0", "0002:c903:0000:abcd", active(
		roce1("fe80::2:c9ff:fe00:abcd", "ens1f0"), roce("fe80::2:c9ff:fe00:abcd", "ens1f0"),
		roce1("198.18.0.11", "bond0"), roce("198.18.0.11", "bond0")))
	h.hca("mlx5_1", "ens1f1", "0002:c903:0000:abce", fakePort{state: "1: DOWN"})
	h.siw("siw0", "eth9", active(fakeGID{gid: gidText(netip.MustParseAddr("fe80::1"))}))
	// Listed over netlink but gone from sysfs by the time it is read.
	h.register("rxe_gone", "", "")

	got, err := h.manager(Options{}).Devices(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr
	want := []Device{
		{Name: "mlx5_0", Index: 2, Driver: "mlx5_core", NodeGUID: "0002:c903:0000:abcd", FirmwareVersion: "16.35.2000", Ports: []Port{{
			Number: 1, State: PortActive, Netdev: "ens1f0", GIDs: []GID{
				{Index: 0, Addr: a("fe80::2:c9ff:fe00:abcd"), Type: RoCEv1, Netdev: "ens1f0"},
				{Index: 1, Addr: a("fe80::2:c9ff:fe00:abcd"), Type: RoCEv2, Netdev: "ens1f0"},
				{Index: 2, Addr: a("198.18.0.11"), Type: RoCEv1, Netdev: "bond0"},
				{Index: 3, Addr: a("198.18.0.11"), Type: RoCEv2, Netdev: "bond0"},
			},
		}}},
		{Name: "mlx5_1", Index: 3, Driver: "mlx5_core", NodeGUID: "0002:c903:0000:abce", FirmwareVersion: "16.35.2000", Ports: []Port{{
			Number: 1, State: PortDown, Netdev: "ens1f1",
		}}},
		{Name: "rxe_bond0", Index: 1, Driver: "rxe", NodeGUID: "5054:00ff:fe12:3456", Ports: []Port{{
			Number: 1, State: PortActive, Netdev: "bond0", GIDs: []GID{
				{Index: 0, Addr: a("fe80::5054:ff:fe12:3456"), Type: RoCEv2, Netdev: "bond0"},
				{Index: 2, Addr: a("198.18.0.11"), Type: RoCEv2, Netdev: "bond0"},
			},
		}}},
		// siw has no parent attribute and this entry no netdev attribute.
		{Name: "siw0", Index: 4, Driver: "siw", NodeGUID: "5054:00ff:fe12:3457", Ports: []Port{{
			Number: 1, State: PortActive, GIDs: []GID{{Index: 0, Addr: a("fe80::1")}},
		}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Devices() =\n%+v\nwant\n%+v", got, want)
	}
	if !got[2].Soft() || got[0].Soft() {
		t.Errorf("Soft(): rxe_bond0 %t, mlx5_0 %t; want true, false", got[2].Soft(), got[0].Soft())
	}
}

func TestDevicesErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		setup   func(h *fakeHost)
		wantErr string
		is      error
	}{
		{
			name:    "netlink fails",
			setup:   func(h *fakeHost) { h.fail["list"] = errInjected },
			wantErr: "list RDMA devices: injected failure",
			is:      errInjected,
		},
		{
			name: "no RDMA core",
			setup: func(h *fakeHost) {
				h.fail["list"] = noRDMA(errEPROTONOSUPPORT)
			},
			wantErr: "list RDMA devices: kernel has no RDMA support loaded (NETLINK_RDMA: protocol not supported): load it: modprobe rdma_rxe (or the NIC's RDMA driver)",
			is:      ErrNoRDMA,
		},
		{
			name: "device without ports directory",
			setup: func(h *fakeHost) {
				h.mkdir("class", "infiniband", "broken0")
				h.register("broken0", "", "")
			},
			wantErr: "list RDMA devices: broken0: ports: open " + "ROOT" + "/class/infiniband/broken0/ports: no such file or directory",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHost(t)
			tc.setup(h)
			_, err := h.manager(Options{}).Devices(context.Background())
			want := strings.ReplaceAll(tc.wantErr, "ROOT", h.root)
			if err == nil || err.Error() != want {
				t.Fatalf("Devices() error = %v\nwant %s", err, want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error does not match %v", tc.is)
			}
		})
	}
}

func TestBondErrors(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	h.bond("bond0", "igb", "pf0", "pf1")
	m := h.manager(Options{})
	for _, tc := range []struct {
		bond, wantErr string
	}{
		{"pf0", "pf0 is not a bond: ROOT/class/net/pf0 has no bonding directory: name the bond, not one of its ports"},
		{"bond9", "bond9 is not a bond: no network device bond9: create the bond first, or name an existing one"},
		{"", `"" is not a bond: not a netdev name: name the bond (bond0)`},
		{"../net", `"../net" is not a bond: not a netdev name: name the bond (bond0)`},
	} {
		_, err := m.bond(tc.bond)
		want := strings.ReplaceAll(tc.wantErr, "ROOT", h.root)
		if err == nil || err.Error() != want || !errors.Is(err, ErrNotBond) {
			t.Errorf("bond(%q) error = %v\nwant %s (ErrNotBond)", tc.bond, err, want)
		}
	}
	b, err := m.bond("bond0")
	if err != nil || !reflect.DeepEqual(b.slaves, []string{"pf0", "pf1"}) || b.drivers["pf1"] != "igb" {
		t.Errorf("bond(bond0) = %+v, %v; want slaves pf0 pf1 driven by igb", b, err)
	}
}
