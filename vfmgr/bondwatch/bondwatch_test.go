package bondwatch

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vflag/vflag/internal/privtest"
	"github.com/vflag/vflag/vfmgr"
)

func TestDecode(t *testing.T) {
	at := time.Unix(100, 0)
	bond := netlink.NewLinkBond(netlink.LinkAttrs{Index: 5, Name: "bond0", RawFlags: unix.IFF_UP | unix.IFF_LOWER_UP, OperState: netlink.OperUp})
	bond.ActiveSlave = 3
	pf := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 3, Name: "pf1", MasterIndex: 5, RawFlags: unix.IFF_UP, OperState: netlink.OperDown}}
	for _, tc := range []struct {
		name string
		u    netlink.LinkUpdate
		want string
	}{
		{
			"bond with active slave",
			netlink.LinkUpdate{Header: unix.NlMsghdr{Type: unix.RTM_NEWLINK}, Link: bond},
			"{Index:5 Name:bond0 Master: MasterIndex:0 IsBond:true ActiveSlave: ActiveSlaveIndex:3 Carrier:true OperUp:true Deleted:false}",
		},
		{
			"port without carrier",
			netlink.LinkUpdate{Header: unix.NlMsghdr{Type: unix.RTM_NEWLINK}, Link: pf},
			"{Index:3 Name:pf1 Master: MasterIndex:5 IsBond:false ActiveSlave: ActiveSlaveIndex:0 Carrier:false OperUp:false Deleted:false}",
		},
		{
			"port removed",
			netlink.LinkUpdate{Header: unix.NlMsghdr{Type: unix.RTM_DELLINK}, Link: pf},
			"{Index:3 Name:pf1 Master: MasterIndex:5 IsBond:false ActiveSlave: ActiveSlaveIndex:0 Carrier:false OperUp:false Deleted:true}",
		},
	} {
		m := Decode(tc.u, at)
		if !m.At.Equal(at) {
			t.Errorf("%s: At = %v", tc.name, m.At)
		}
		m.At = time.Time{}
		got := fmtMsg(m)
		if got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

// fmtMsg renders a LinkMsg without its time, for comparisons.
func fmtMsg(m vfmgr.LinkMsg) string {
	s := fmt.Sprintf("%+v", m)
	if i := strings.Index(s, " At:"); i >= 0 {
		s = s[:i] + "}"
	}
	return s
}

// TestWatch: the real subscription reports existing links first and then a
// port's carrier loss, in a fresh namespace.
func TestWatch(t *testing.T) {
	name, path := privtest.Netns(t)
	for _, args := range [][]string{
		{"link", "add", "port0", "type", "veth", "peer", "name", "peer0"},
		{"link", "set", "port0", "up"},
		{"link", "set", "peer0", "up"},
	} {
		if out, err := exec.Command("ip", append([]string{"-n", name}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, errc, err := Watch(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	waitFor := func(what string, ok func(vfmgr.LinkMsg) bool) {
		t.Helper()
		for {
			select {
			case m, open := <-msgs:
				if !open {
					t.Fatalf("watch ended before %s", what)
				}
				if ok(m) {
					return
				}
			case err := <-errc:
				t.Fatalf("watch failed before %s: %v", what, err)
			case <-ctx.Done():
				t.Fatalf("no message for %s", what)
			}
		}
	}
	waitFor("port0 with carrier", func(m vfmgr.LinkMsg) bool { return m.Name == "port0" && m.Carrier })
	if out, err := exec.Command("ip", "-n", name, "link", "set", "peer0", "down").CombinedOutput(); err != nil {
		t.Fatalf("peer0 down: %v: %s", err, out)
	}
	waitFor("port0 losing carrier", func(m vfmgr.LinkMsg) bool { return m.Name == "port0" && !m.Carrier && !m.Deleted })
}
