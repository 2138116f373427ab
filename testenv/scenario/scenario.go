// Package scenario runs the testbed's measured cable-pull scenarios and
// writes their timelines: JSON per variant and one SVG picture.
//
// In these scenarios a "VM" is a network namespace inside a KVM-host VM
// that holds VF netdevs, the way a guest holds its passed-through VFs. The
// first scenario shows the problem vflag exists for, with real drivers:
//
//   - no-vflag: the VM has one VF, from the host bond's active PF. When that
//     port's cable is pulled the VF has no way out and the VM stays
//     unreachable.
//   - guest-bond: the status quo. The VM holds one VF from each PF in an
//     active-backup bond of its own (same MAC on both VFs). It recovers
//     after its bond notices and announces itself, at the price of bonding
//     configured inside every guest.
//   - vflag: the VM has one VF, handed out by vflagd from the active PF
//     (`vflag attach`). On the pull vflagd re-homes it onto a VF of the
//     surviving PF with the same MAC and announces the MAC there; the
//     guest, modelled by `vflag-guest hotplug` in the namespace, configures
//     the hot-plugged NIC as a guest OS would. No bonding in the guest.
//
// vflagd manages VFs 0..3 of each PF; the other two VMs use VFs 5 and 6,
// outside its pool.
//
// The guest bond uses ARP monitoring (arp_interval 100 ms towards the
// client), not miimon: QEMU's igb emulation keeps a VF's link up when its
// PF loses link, so carrier-based detection never fires in the testbed. ARP
// monitoring detects the path failure as guests with VFs do in practice.
package scenario

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/vflag/vflag/testenv"
	"github.com/vflag/vflag/testenv/probe"
)

// CablePull names the cable-pull scenario.
const CablePull = "cable-pull"

// Variants of CablePull.
const (
	NoVflag   = "no-vflag"
	GuestBond = "guest-bond"
	Vflag     = "vflag"
)

// vflagdPool is how many VFs per PF vflagd manages in the scenario.
const vflagdPool = 4

// Options tune a scenario run.
type Options struct {
	// Host is the KVM-host VM to use (default the testbed's first).
	Host string
	// Interval is the client's probe interval (default 10 ms).
	Interval time.Duration
	// Before is how long probes run before the pull (default 2 s).
	Before time.Duration
	// After is how long probes run after the pull (default 8 s).
	After time.Duration
	// Mode is how the cable is pulled (default testenv.Cable).
	Mode testenv.PullMode
}

func (o *Options) defaults(tb *testenv.Testbed) {
	if o.Host == "" {
		o.Host = tb.Hosts()[0]
	}
	if o.Interval == 0 {
		o.Interval = 10 * time.Millisecond
	}
	if o.Before == 0 {
		o.Before = 2 * time.Second
	}
	if o.After == 0 {
		o.After = 8 * time.Second
	}
}

// vm is a namespace "VM" inside a KVM host.
type vm struct {
	name    string
	variant string
	mac     net.HardwareAddr
	addr    netip.Addr
}

// RunCablePull builds the two VMs on opts.Host, probes both from the
// client every opts.Interval while the cable of the host bond's active port
// is pulled, and returns one timeline per variant. The cable is plugged
// back before it returns.
func RunCablePull(ctx context.Context, tb *testenv.Testbed, opts Options) ([]probe.Timeline, error) {
	opts.defaults(tb)
	out, err := tb.MustExec(ctx, opts.Host, "cat /sys/class/net/bond0/bonding/active_slave")
	if err != nil {
		return nil, err
	}
	active := strings.TrimSpace(out)
	if active != "pf0" && active != "pf1" {
		return nil, fmt.Errorf("%s: bond0 has no active port (%q)", opts.Host, active)
	}
	backup := map[string]string{"pf0": "pf1", "pf1": "pf0"}[active]
	port := opts.Host + "-p" + active[2:]

	single := vm{name: "vm1", variant: NoVflag, mac: vmMAC(1), addr: vmAddr(1)}
	bonded := vm{name: "vm2", variant: GuestBond, mac: vmMAC(2), addr: vmAddr(2)}
	flagged := vm{name: "vm3", variant: Vflag, mac: vmMAC(3), addr: vmAddr(3)}
	if _, err := tb.MustExec(ctx, opts.Host, singleVFScript(single, active, 6)); err != nil {
		return nil, fmt.Errorf("create %s: %w", single.name, err)
	}
	if _, err := tb.MustExec(ctx, opts.Host, guestBondScript(bonded, active, backup, 5)); err != nil {
		return nil, fmt.Errorf("create %s: %w", bonded.name, err)
	}
	if _, err := tb.MustExec(ctx, opts.Host, StartVflagdScript(vflagdPool, "", "")); err != nil {
		return nil, fmt.Errorf("start vflagd: %w", err)
	}
	if _, err := tb.MustExec(ctx, opts.Host, vflagVMScript(flagged)); err != nil {
		return nil, fmt.Errorf("create %s: %w", flagged.name, err)
	}
	vms := []vm{single, bonded, flagged}
	for _, v := range vms {
		if err := WaitReachable(ctx, tb, v.addr, 30*time.Second); err != nil {
			return nil, fmt.Errorf("%s (%s) before the pull: %w", v.name, v.addr, err)
		}
	}

	var macs []net.HardwareAddr
	for _, v := range vms {
		macs = append(macs, v.mac)
	}
	fdb, err := probe.FDBWatcher{Netns: tb.FabricNetns(), MACs: macs}.Start(ctx)
	if err != nil {
		return nil, err
	}
	defer fdb.Stop()

	pctx, stop := context.WithCancel(ctx)
	defer stop()
	samples := make([][]probe.Sample, len(vms))
	var g errgroup.Group
	for i, v := range vms {
		g.Go(func() error {
			s, err := (&probe.Pinger{Netns: tb.ClientNetns(), Target: v.addr, Interval: opts.Interval}).Run(pctx)
			samples[i] = s
			return err
		})
	}
	var fault time.Time
	pullErr := func() error {
		select {
		case <-time.After(opts.Before):
		case <-ctx.Done():
			return ctx.Err()
		}
		var err error
		fault, err = tb.Pull(ctx, port, opts.Mode)
		if err != nil {
			return err
		}
		select {
		case <-time.After(opts.After):
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}()
	stop()
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	if pullErr != nil {
		return nil, pullErr
	}
	if _, err := tb.Plug(ctx, port); err != nil {
		return nil, err
	}
	if err := fdb.Stop(); err != nil {
		return nil, fmt.Errorf("watch FDB: %w", err)
	}
	events := fdb.Events()

	label := "pull " + port
	if opts.Mode == testenv.Silent {
		label += " (silent)"
	}
	var tls []probe.Timeline
	for i, v := range vms {
		tl := probe.Timeline{
			Scenario: CablePull, Variant: v.variant, Interval: opts.Interval,
			Fault: fault, FaultLabel: label, Samples: samples[i],
		}
		for _, e := range events {
			if strings.EqualFold(e.MAC, v.mac.String()) {
				tl.FDB = append(tl.FDB, e)
			}
		}
		tls = append(tls, tl)
	}
	return tls, nil
}

// vmMAC and vmAddr number the scenario VMs.
func vmMAC(n int) net.HardwareAddr { return net.HardwareAddr{0x52, 0x54, 0x00, 0xa0, 0x01, byte(n)} }

func vmAddr(n int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 0, byte(100 + n)}) }

// vfSetup gives VF idx of pf the VM's MAC as the administrator would
// (ip link set PF vf N mac M), moves its netdev into the VM's namespace
// under name, and waits until the VF driver has taken the MAC.
const vfSetup = `
vf_to_vm() { # pf idx ns name mac
	ip link set "$1" vf "$2" mac "$5"
	dev=$(ls "/sys/class/net/$1/device/virtfn$2/net/")
	# igbvf reads the MAC the PF set only when it probes ("Reload the VF
	# driver to make this change effective"): a VF it already had (the
	# libvirt flavour loads igbvf before the VFs exist) is probed again.
	# Under TCG the probe's mailbox handshake with the PF sometimes misses
	# its one-second deadline ("PF still in reset state") and igbvf makes a
	# MAC up: then it is probed once more, up to five times.
	n=0
	while [ "$(cat "/sys/class/net/$dev/address")" != "$5" ] && [ $n -lt 5 ]; do
		n=$((n+1))
		pci=$(basename "$(readlink "/sys/class/net/$1/device/virtfn$2")")
		echo "$pci" > /sys/bus/pci/drivers/igbvf/unbind
		echo "$pci" > /sys/bus/pci/drivers/igbvf/bind
		dev=$(ls "/sys/class/net/$1/device/virtfn$2/net/")
	done
	ip link set "$dev" netns "$3"
	ip -n "$3" link set "$dev" name "$4"
	ip -n "$3" link set "$4" up
	i=0
	until [ "$(ip netns exec "$3" cat "/sys/class/net/$4/address")" = "$5" ]; do
		i=$((i+1)); [ $i -lt 100 ] || { echo "VF $2 of $1: MAC $5 not applied; the kernel says:"; dmesg | grep -E 'igb|vf' | tail -n 8; exit 1; } >&2
		sleep 0.1
	done
}
`

func singleVFScript(v vm, pf string, vf int) string {
	return fmt.Sprintf(`set -e
%s
ip netns add %[2]s
ip -n %[2]s link set lo up
vf_to_vm %[3]s %[4]d %[2]s eth0 %[5]s
ip -n %[2]s addr add %[6]s/24 dev eth0
`, vfSetup, v.name, pf, vf, v.mac, v.addr)
}

func guestBondScript(v vm, active, backup string, vf int) string {
	return fmt.Sprintf(`set -e
%s
ip netns add %[2]s
ip -n %[2]s link set lo up
ip -n %[2]s link add bond0 type bond mode active-backup arp_interval 100 arp_ip_target %[7]s
for pf in %[3]s %[4]s; do
	vf_to_vm $pf %[5]d %[2]s v$pf %[6]s
	ip -n %[2]s link set v$pf down
	ip -n %[2]s link set v$pf master bond0
done
ip -n %[2]s link set bond0 up
ip -n %[2]s addr add %[8]s/24 dev bond0
# Make the VF on the host's active port the guest bond's active one, as
# soon as the ARP monitor has it up.
i=0
until ip netns exec %[2]s sh -c 'echo v%[3]s > /sys/class/net/bond0/bonding/active_slave' 2>/dev/null &&
	[ "$(ip netns exec %[2]s cat /sys/class/net/bond0/bonding/active_slave)" = v%[3]s ]; do
	i=$((i+1)); [ $i -lt 100 ] || { echo "guest bond: v%[3]s never became active" >&2; exit 1; }
	sleep 0.1
done
`, vfSetup, v.name, active, backup, vf, v.mac, testenv.ClientAddr(), v.addr)
}

// StartVflagdScript writes a vflagd configuration managing bond0 over
// pf0/pf1 with n VFs per PF (plus the YAML lines bondExtra in the bond's
// entry and extra at the top), starts vflagd (log in /tmp/vflagd.log) and
// waits for its API.
func StartVflagdScript(n int, bondExtra, extra string) string {
	return fmt.Sprintf(`set -e
mkdir -p /etc/vflag
cat > /etc/vflag/vflag.yaml <<EOF
bonds:
  - name: bond0
    pfs: [pf0, pf1]
    vfs_per_pf: %d
%s
announce:
  count: 3
  interval: 100ms
hold_down: 200ms
%s
EOF
vflag config validate
(vflagd -config /etc/vflag/vflag.yaml >> /tmp/vflagd.log 2>&1 &)
i=0
until vflag status >/dev/null 2>&1; do
	i=$((i+1)); [ $i -lt 200 ] || { echo "vflagd did not come up:" >&2; cat /tmp/vflagd.log >&2; exit 1; }
	sleep 0.05
done
`, n, bondExtra, extra)
}

// vflagVMScript creates a namespace VM whose guest configures eth0 when it
// appears, and asks vflagd for its VF.
func vflagVMScript(v vm) string {
	return fmt.Sprintf(`set -e
ip netns add %[1]s
ip -n %[1]s link set lo up
(ip netns exec %[1]s vflag-guest hotplug eth0 %[2]s/24 > /tmp/%[1]s-guest.log 2>&1 &)
vflag attach %[1]s --mac %[3]s --netns %[1]s --netns-ifname eth0
`, v.name, v.addr, v.mac)
}

// WaitReachable probes addr from the client until one probe in a short
// burst is answered.
func WaitReachable(ctx context.Context, tb *testenv.Testbed, addr netip.Addr, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		bctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		s, err := (&probe.Pinger{Netns: tb.ClientNetns(), Target: addr, Interval: 50 * time.Millisecond, Timeout: 200 * time.Millisecond}).Run(bctx)
		cancel()
		if err != nil {
			return err
		}
		for _, x := range s {
			if x.Replied {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no reply within %v", d)
		}
	}
}
