package rdmamgr

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

// errEPROTONOSUPPORT is what opening a NETLINK_RDMA socket gives on a
// kernel without ib_core.
var errEPROTONOSUPPORT error = unix.EPROTONOSUPPORT

func TestGUIDFromNetlink(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"cd:ab:00:00:03:c9:02:00", "0002:c903:0000:abcd"},
		{"56:34:12:fe:ff:00:54:50", "5054:00ff:fe12:3456"},
		{"00:00:00:00:00:00:00:00", "0000:0000:0000:0000"},
		{"", ""},
		{"52:54:00:12:34:56", "52:54:00:12:34:56"}, // not a GUID: unchanged
	} {
		if got := guidFromNetlink(tc.in); got != tc.want {
			t.Errorf("guidFromNetlink(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRequired(t *testing.T) {
	t.Parallel()
	p := netip.MustParseAddr
	for _, tc := range []struct {
		name string
		in   []netip.Addr
		want []netip.Addr
	}{
		{"none", nil, nil},
		{"IPv6 link-local only", []netip.Addr{p("fe80::1")}, nil},
		{
			"IPv4 and global IPv6, sorted, mapped and duplicates folded",
			[]netip.Addr{p("2001:db8::11"), p("::ffff:198.18.0.11"), p("198.18.0.11"), p("fe80::1"), p("127.0.0.1"), p("ff02::1")},
			[]netip.Addr{p("198.18.0.11"), p("2001:db8::11")},
		},
	} {
		if got := required(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: required(%v) = %v, want %v", tc.name, tc.in, got, tc.want)
		}
	}
}

// TestNetlinkWithoutRDMA runs the real Netlink.List against the kernel the
// tests run on. CI hosts have no RDMA core: the error must then say so
// (ErrNoRDMA). Everything else of Netlink is exercised in the testbed only.
func TestNetlinkWithoutRDMA(t *testing.T) {
	t.Parallel()
	links, err := (&Netlink{}).List(context.Background())
	if err == nil {
		t.Skipf("this kernel has an RDMA core (%d devices); the testbed covers Netlink", len(links))
	}
	if !errors.Is(err, ErrNoRDMA) {
		t.Fatalf("List() error = %v, want one matching ErrNoRDMA", err)
	}
	want := "kernel has no RDMA support loaded (NETLINK_RDMA: rdma dev show: protocol not supported): load it: modprobe rdma_rxe (or the NIC's RDMA driver)"
	if err.Error() != want {
		t.Errorf("List() error = %q\nwant %q", err, want)
	}
}

func TestModeValidate(t *testing.T) {
	t.Parallel()
	for _, m := range []Mode{ModeHW, ModeSoft, ModeOff} {
		if err := m.Validate(); err != nil {
			t.Errorf("%s.Validate() = %v", m, err)
		}
	}
	err := Mode("fast").Validate()
	if want := `unknown RDMA mode "fast": use hw, soft or off`; err == nil || err.Error() != want || !errors.Is(err, ErrUnknownMode) {
		t.Errorf(`Mode("fast").Validate() = %v, want %q`, err, want)
	}
}
