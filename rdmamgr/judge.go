package rdmamgr

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// view is what Manager knows about one bond at one moment: read by gather,
// judged by the pure function judge.
type view struct {
	mode Mode
	bond bondInfo
	// addrs are the bond's addresses that need a GID (see required).
	addrs   []netip.Addr
	devices []Device
	// noRDMA: the kernel has no RDMA core, so no devices.
	noRDMA    bool
	rxeLoaded bool
	// gatherErr is set by regather when a re-read failed.
	gatherErr error
}

// required returns the addresses of addrs a GID must cover: IPv4 and
// global IPv6 addresses, the ones RDMA CM peers connect to. IPv6
// link-local addresses are left out: the port's default GID already is
// the MAC-derived one, and a stable-privacy link-local address need not
// match it.
func required(addrs []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		if !a.IsValid() || a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || (a.Is6() && a.IsLinkLocalUnicast()) {
			continue
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// finding is one problem judge found: kind is the sentinel error, text
// says what is wrong and how to fix it; for ErrNotReady, what is the part
// that says what is wrong.
type finding struct {
	kind error
	text string
	what string
}

// String is the finding as a Status problem line.
func (f finding) String() string { return f.kind.Error() + ": " + f.text }

// err is f as Ensure's error for v's bond and mode.
func (v view) err(f finding) error {
	return fmt.Errorf("rdma mode %s on %s: %w: %s", v.mode, v.bond.name, f.kind, f.text)
}

func find(fs []finding, kind error) (finding, bool) {
	for _, f := range fs {
		if errors.Is(f.kind, kind) {
			return f, true
		}
	}
	return finding{}, false
}

// failed is the Status of a bond that could not be checked at all.
func failed(bond string, mode Mode, err error) Status {
	return Status{Bond: bond, Mode: mode, Problems: []string{err.Error()}}
}

// devPort is a device and one of its ports.
type devPort struct {
	dev  *Device
	port *Port
}

// judge returns the status of v's bond in v's mode and the findings behind
// its problems. It reads nothing but v.
func judge(v view) (Status, []finding) {
	b := v.bond.name
	st := Status{Bond: b, Mode: v.mode}
	var fs []finding
	add := func(kind error, format string, args ...any) {
		fs = append(fs, finding{kind: kind, text: fmt.Sprintf(format, args...)})
	}
	on := v.carrier()
	noAddress := func(why string) {
		if len(v.addrs) == 0 {
			add(ErrNoAddress, "%s: add an address to %s (ip addr add ADDR/LEN dev %s)", why, on, on)
		}
	}
	switch v.mode {
	case ModeHW:
		dp, why := v.lagDevice()
		if dp.dev == nil {
			add(ErrNoLAG, "%s", why)
			break
		}
		st.use(dp)
		fs = append(fs, v.health(dp, "check that they are on "+b+" itself, not on a port, and that RoCE is enabled on the NIC")...)
		noAddress("RoCE reaches peers by IP, so " + b + " needs one")
	case ModeSoft:
		if !v.rxeLoaded {
			add(ErrNoRXEModule, "load it: modprobe rdma_rxe")
		}
		noAddress("the Soft-RoCE GID table of " + on + " needs one (RoCE v2 reaches peers by IP)")
		name := RXEName(b)
		if d := v.byName(name); d != nil {
			switch {
			case d.Driver != driverRXE:
				add(ErrNameTaken, "%s is a %s device, not Soft-RoCE: rename it (rdma dev set %s name NEWNAME)", name, d.Driver, name)
			case !onNetdev(d, on):
				add(ErrNameTaken, "%s is bound to %s, not %s: delete it (rdma link delete %s)", name, netdevs(d), on, name)
			}
		}
		if on == b {
			add(ErrGIDRenumber, "Soft-RoCE on %s itself: the kernel re-adds the bond's GIDs at new indexes on every failover, which fails every open RDMA connection: make %s a port of a bridge and move its address there (ip link add br0 type bridge; ip link set %s master br0; ip link set br0 up; ip addr del/add ADDR), then vflag binds %s to the bridge",
				b, b, b, name)
		}
		if prs := v.portRXE(); len(prs) > 0 {
			var on, del []string
			for _, dp := range prs {
				on = append(on, dp.dev.Name+" on "+dp.port.Netdev)
				del = append(del, "rdma link delete "+dp.dev.Name)
			}
			add(ErrPortRXE, "%s would not survive the loss of its port: delete it (%s), or let vflag replace it with %s (ReplacePortRXE)",
				joinAnd(on), strings.Join(del, "; "), name)
		}
		dp, p := v.softOnBond()
		if dp == nil {
			fs = append(fs, finding{
				kind: ErrNotReady,
				text: fmt.Sprintf("no Soft-RoCE device on %s: create it: ensure mode soft (rdma link add %s type rxe netdev %s)", on, name, on),
				what: "no Soft-RoCE device on " + on,
			})
			break
		}
		st.use(devPort{dp, p})
		fs = append(fs, v.health(devPort{dp, p}, "if they do not appear, recreate the device (rdma link delete "+dp.Name+", then ensure mode soft)")...)
	case ModeOff:
		name := RXEName(b)
		if d := v.byName(name); d != nil && d.Driver == driverRXE {
			st.Device = name
			if len(d.Ports) > 0 {
				st.use(devPort{d, &d.Ports[0]})
			}
			add(ErrLeftover, "%s still exists with RDMA off for %s: delete it: ensure mode off (rdma link delete %s)", name, b, name)
		}
	}
	for _, f := range fs {
		st.Problems = append(st.Problems, f.String())
	}
	st.Healthy = len(st.Problems) == 0
	return st, fs
}

// use fills st with the device and port that serve the bond.
func (st *Status) use(dp devPort) {
	st.Device, st.Port, st.State, st.Netdev, st.GIDs = dp.dev.Name, dp.port.Number, dp.port.State, dp.port.Netdev, dp.port.GIDs
}

// health lists what is wrong with the port dp that serves v's bond: a port
// that is not ACTIVE, and addresses of the bond without a GID; fix says what
// to do about missing GIDs.
func (v view) health(dp devPort, fix string) []finding {
	b, on := v.bond.name, v.carrier()
	var fs []finding
	if dp.port.State != PortActive {
		fs = append(fs, finding{kind: ErrPortDown, text: fmt.Sprintf(
			"%s port %d is %s, so RDMA on %s carries no traffic: bring %s up and check its ports' links (ip link show master %s)",
			dp.dev.Name, dp.port.Number, dp.port.State, b, b, b)})
	}
	var missing []string
	for _, a := range v.addrs {
		if !slices.ContainsFunc(dp.port.GIDs, func(g GID) bool { return g.Addr == a && (g.Netdev == "" || g.Netdev == on) }) {
			missing = append(missing, a.String())
		}
	}
	if len(missing) > 0 {
		what := fmt.Sprintf("%s has no GID for %s of %s", dp.dev.Name, joinAnd(missing), on)
		fs = append(fs, finding{
			kind: ErrNotReady,
			text: what + ", so RDMA CM cannot connect by that address: " + fix,
			what: what,
		})
	}
	return fs
}

func (v view) byName(name string) *Device {
	for i := range v.devices {
		if v.devices[i].Name == name {
			return &v.devices[i]
		}
	}
	return nil
}

// carrier is the netdev Soft-RoCE binds to for the bond and whose
// addresses need GIDs: the bridge the bond is a port of, else the bond.
// A bridge port's NETDEV_BONDING_FAILOVER stops at the bridge, so GIDs on
// the bridge keep their indexes across a failover (see ErrGIDRenumber).
func (v view) carrier() string {
	if v.bond.bridge != "" {
		return v.bond.bridge
	}
	return v.bond.name
}

// softOnBond returns the Soft-RoCE device bound to the bond's carrier,
// preferring rxe_<bond>, and its port; nil when there is none.
func (v view) softOnBond() (*Device, *Port) {
	var found *Device
	on := v.carrier()
	for i := range v.devices {
		d := &v.devices[i]
		if d.Driver != driverRXE || !onNetdev(d, on) {
			continue
		}
		if found == nil || d.Name == RXEName(v.bond.name) {
			found = d
		}
	}
	if found == nil {
		return nil, nil
	}
	return found, portOn(found, on)
}

// portRXE returns the Soft-RoCE devices bound to one of the bond's ports.
func (v view) portRXE() []devPort {
	var out []devPort
	for i := range v.devices {
		d := &v.devices[i]
		if d.Driver != driverRXE {
			continue
		}
		for _, s := range v.bond.slaves {
			if p := portOn(d, s); p != nil {
				out = append(out, devPort{d, p})
				break
			}
		}
	}
	return out
}

// lagDevice returns the hardware RDMA device that serves the whole bond,
// or why there is none. It is
//   - the one hardware device with a port on the bond itself, or
//   - the one hardware device with a port on one of the bond's ports, when
//     the bond has two or more ports, all driven by that device's driver:
//     that device covers them all, for without RoCE LAG each port of such a
//     NIC has a device of its own (mlx5: mlx5_0, mlx5_1), and with it mlx5
//     reports the active port as the LAG device's netdev.
func (v view) lagDevice() (devPort, string) {
	b := v.bond.name
	var onBond, onSlave []devPort
	hasDev := map[string]bool{}
	for i := range v.devices {
		d := &v.devices[i]
		if d.Soft() {
			continue
		}
		if p := portOn(d, b); p != nil {
			onBond = append(onBond, devPort{d, p})
			continue
		}
		for _, s := range v.bond.slaves {
			if p := portOn(d, s); p != nil {
				onSlave = append(onSlave, devPort{d, p})
				hasDev[s] = true
				break
			}
		}
	}
	switch {
	case len(onBond) == 1:
		return onBond[0], ""
	case len(onBond) > 1:
		var names []string
		for _, dp := range onBond {
			names = append(names, dp.dev.Name)
		}
		return devPort{}, fmt.Sprintf("%s are all on %s, so which one is the RoCE LAG is unclear: remove the extra ones, or use mode soft", joinAnd(names), b)
	case len(onSlave) == 1 && len(v.bond.slaves) >= 2 && v.allDriven(onSlave[0].dev.Driver):
		return onSlave[0], ""
	case len(onSlave) > 0:
		var on []string
		for _, dp := range onSlave {
			on = append(on, dp.dev.Name+" on "+dp.port.Netdev)
		}
		var without []string
		for _, s := range v.bond.slaves {
			if !hasDev[s] {
				without = append(without, s+v.driverNote(s))
			}
		}
		why := fmt.Sprintf("%s: RoCE LAG is not active", joinAnd(on))
		drv := onSlave[0].dev.Driver
		if hint := lagHint(drv); hint != "" {
			why += " (" + hint + ")"
		}
		if len(without) > 0 {
			why += fmt.Sprintf("; %s %s no RDMA device", joinAnd(without), plural(len(without), "has", "have"))
		}
		why += ": RDMA there dies with its port: use mode soft (Soft-RoCE on " + b + ")"
		if drv == "mlx5_core" {
			why += ", or set the eswitch to switchdev before creating VFs (devlink dev eswitch set pci/ADDR mode switchdev)"
		}
		return devPort{}, why
	default:
		ports := ""
		if len(v.bond.slaves) > 0 {
			ports = " " + strings.Join(v.bond.slaves, ", ")
		}
		var notes []string
		seen := map[string]bool{}
		for _, s := range v.bond.slaves {
			drv := v.bond.drivers[s]
			if drv == "" || seen[drv] {
				continue
			}
			seen[drv] = true
			notes = append(notes, noRDMAHint(drv))
		}
		if v.noRDMA {
			notes = append(notes, "the kernel's RDMA core (ib_core) is not loaded")
		}
		why := fmt.Sprintf("no RDMA device on %s or its ports%s", b, ports)
		if len(notes) > 0 {
			why += " (" + strings.Join(notes, "; ") + ")"
		}
		return devPort{}, why + ": use mode soft (Soft-RoCE on " + b + ")"
	}
}

// allDriven reports whether every port of the bond is driven by drv.
func (v view) allDriven(drv string) bool {
	for _, s := range v.bond.slaves {
		if v.bond.drivers[s] != drv {
			return false
		}
	}
	return drv != ""
}

// driverNote is " (DRIVER)" for port s, or "".
func (v view) driverNote(s string) string {
	if d := v.bond.drivers[s]; d != "" {
		return " (" + d + ")"
	}
	return ""
}

// lagHint says when drv's NICs engage RoCE LAG, for the drivers vflag
// knows; "" for others.
func lagHint(drv string) string {
	switch drv {
	case "mlx5_core":
		return "mlx5 activates it only when both ports of one NIC are in the bond and SR-IOV VFs are off or the eswitch is in switchdev mode"
	}
	return ""
}

// noRDMAHint says why a port driven by drv has no RDMA device.
func noRDMAHint(drv string) string {
	switch drv {
	case "igb", "igbvf", "igc", "e1000", "e1000e", "ixgbe", "ixgbevf", "virtio_net", "tg3", "r8169", "veth":
		return drv + " has no RDMA"
	case "ice":
		return "ice turns RDMA off when a PF joins a bond"
	case "mlx5_core":
		return "mlx5_core registered no RDMA device: is mlx5_ib loaded and RoCE enabled (devlink dev param show pci/ADDR name enable_roce)?"
	}
	return drv + " registered no RDMA device"
}

// portOn returns the port of d whose netdev is netdev, or nil.
func portOn(d *Device, netdev string) *Port {
	for i := range d.Ports {
		if d.Ports[i].Netdev == netdev {
			return &d.Ports[i]
		}
	}
	return nil
}

func onNetdev(d *Device, netdev string) bool { return portOn(d, netdev) != nil }

// netdevs names the netdevs d's ports sit on, for messages.
func netdevs(d *Device) string {
	var out []string
	for _, p := range d.Ports {
		if p.Netdev != "" && !slices.Contains(out, p.Netdev) {
			out = append(out, p.Netdev)
		}
	}
	if len(out) == 0 {
		return "no netdev"
	}
	return joinAnd(out)
}

// joinAnd joins "a", "a and b", "a, b and c".
func joinAnd(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
