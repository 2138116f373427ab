package netlinksafe_test

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vflag/vflag/internal/netlinksafe"
	"github.com/vflag/vflag/internal/privtest"
)

func TestRetry(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		interrupted int   // how many attempts end in ErrDumpInterrupted first
		final       error // what the attempt after those returns
		wantCalls   int
		wantRes     []int
		wantErr     string // substring; "" means no error
		wantIs      error
	}{
		{name: "clean", wantCalls: 1, wantRes: []int{1, 2}},
		{name: "one interruption", interrupted: 1, wantCalls: 2, wantRes: []int{1, 2}},
		{name: "interrupted until the last attempt", interrupted: netlinksafe.MaxAttempts - 1, wantCalls: netlinksafe.MaxAttempts, wantRes: []int{1, 2}},
		{
			name: "always interrupted", interrupted: 100, wantCalls: netlinksafe.MaxAttempts,
			wantErr: fmt.Sprintf("list things (dump interrupted %d times): ", netlinksafe.MaxAttempts), wantIs: netlink.ErrDumpInterrupted,
		},
		{name: "other error", final: syscall.EPERM, wantCalls: 1, wantErr: "list things: operation not permitted", wantIs: syscall.EPERM},
		{name: "other error after an interruption", interrupted: 1, final: syscall.EPERM, wantCalls: 2, wantErr: "list things: ", wantIs: syscall.EPERM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			calls := 0
			res, err := netlinksafe.Retry("list things", func() ([]int, error) {
				calls++
				if calls <= tc.interrupted {
					// netlink returns the partial list alongside the error.
					return []int{1}, netlink.ErrDumpInterrupted
				}
				if tc.final != nil {
					return nil, tc.final
				}
				return []int{1, 2}, nil
			})
			if calls != tc.wantCalls {
				t.Errorf("dump called %d times, want %d", calls, tc.wantCalls)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Retry: %v", err)
				}
				if fmt.Sprint(res) != fmt.Sprint(tc.wantRes) {
					t.Errorf("result %v, want %v", res, tc.wantRes)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
			if !errors.Is(err, tc.wantIs) {
				t.Errorf("error %v does not match %v", err, tc.wantIs)
			}
			if res != nil {
				t.Errorf("a failed dump returned a (partial) list %v", res)
			}
		})
	}
}

// TestHandleInNetns runs every wrapped call against a real kernel, in a
// namespace of the test's own.
func TestHandleInNetns(t *testing.T) {
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

	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "nls0"}, PeerName: "nls1"}
	if err := raw.LinkAdd(veth); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	h := netlinksafe.New(raw)
	link, err := h.LinkByName("nls0")
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.AddrAdd(link, &netlink.Addr{IPNet: netlink.NewIPNet([]byte{192, 0, 2, 1})}); err != nil {
		t.Fatalf("add address: %v", err)
	}

	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	if got := strings.Join(names, " "); got != "lo nls1 nls0" && got != "lo nls0 nls1" {
		t.Errorf("links %q, want lo and the veth pair", got)
	}
	byIndex, err := h.LinkByIndex(link.Attrs().Index)
	if err != nil || byIndex.Attrs().Name != "nls0" {
		t.Errorf("LinkByIndex(%d) = %v, %v; want nls0", link.Attrs().Index, byIndex, err)
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_V4)
	if err != nil || len(addrs) != 1 || addrs[0].IP.String() != "192.0.2.1" {
		t.Errorf("AddrList = %v, %v; want 192.0.2.1", addrs, err)
	}
	if _, err := h.NeighList(link.Attrs().Index, netlink.FAMILY_ALL); err != nil {
		t.Errorf("NeighList: %v", err)
	}
	_, err = h.LinkByName("nosuchlink")
	var notFound netlink.LinkNotFoundError
	if !errors.As(err, &notFound) {
		t.Errorf("LinkByName(nosuchlink) = %v, want a netlink.LinkNotFoundError", err)
	}
}
