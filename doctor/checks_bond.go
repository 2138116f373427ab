package doctor

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/vflag/vflag/plugin"
	"github.com/vflag/vflag/rdmamgr"
	"github.com/vflag/vflag/vfmgr/config"
)

// Check names of the per-bond and per-PF checks.
const (
	CheckBackend     = "backend"
	CheckBond        = "bond"
	CheckBondMode    = "bond-mode"
	CheckBondMonitor = "bond-monitor"
	CheckBondPorts   = "bond-ports"
	CheckPF          = "pf"
	CheckDriver      = "driver"
	CheckSRIOV       = "sriov"
	CheckEswitch     = "eswitch-mode"
	CheckLLDP        = "lldp-agent"
	CheckVFs         = "vfs-in-use"
	CheckSpoofchk    = "vf-spoofchk"
	CheckTrust       = "vf-trust"
	CheckRDMA        = "rdma"
	CheckPreflight   = "backend-preflight"
)

// The NIC backends a configuration resolves to.
const (
	backendGeneric = string(config.BackendGeneric)
	backendICE     = string(config.BackendICE)
	backendMLX5    = string(config.BackendMLX5)
)

// PF drivers with hardware VF-LAG.
const (
	driverICE  = "ice"
	driverMLX5 = "mlx5_core"
)

// bondView is one configured bond with what was read about its PFs and
// the backend and mode its configuration resolves to.
type bondView struct {
	cfg  config.Bond
	conf *config.Config
	// key is the bond's key in the configuration, "bonds[0]".
	key string
	pfs []pfView
	// backend is the resolved backend; mode follows from it.
	backend string
	mode    plugin.Mode
	// explicit: the configuration names the backend (not auto), so a
	// hardware precondition that fails stops the bond instead of letting
	// vflagd fall back to software.
	explicit bool
}

// pfView is what was read about one configured PF.
type pfView struct {
	name string
	// key is its key in the configuration, "bonds[0].pfs[1]".
	key    string
	exists bool
	// pci is its PCI address ("" when it is not a PCI device).
	pci string
	// driver is the bound driver as sysfs says.
	driver  string
	info    DriverInfo
	infoErr error
}

// driverName is the PF's driver: ethtool's, else sysfs'.
func (p pfView) driverName() string {
	if p.infoErr == nil && p.info.Driver != "" {
		return p.info.Driver
	}
	return p.driver
}

// at renders the configuration position of key: "FILE:LINE".
func (b bondView) at(key string) string {
	if l := b.conf.Line(key); l > 0 {
		return fmt.Sprintf("%s:%d", b.conf.File(), l)
	}
	return b.conf.File()
}

// hardwareSeverity is how bad an unmet hardware precondition is: it stops
// an explicitly configured ice or mlx5 backend; with auto, vflagd re-homes
// VFs in software instead, which works but loses the hardware path.
func (b bondView) hardwareSeverity() plugin.Severity {
	if b.explicit {
		return plugin.SeverityFail
	}
	return plugin.SeverityWarn
}

// fallback says what happens with auto when a hardware precondition fails.
func (b bondView) fallback() string {
	if b.explicit {
		return ""
	}
	return " (backend auto: vflagd re-homes the VFs in software instead)"
}

// viewBond reads the bond's PFs and resolves its backend.
func (d *Doctor) viewBond(ctx context.Context, cfg *config.Config, i int, cb config.Bond) bondView {
	b := bondView{cfg: cb, conf: cfg, key: fmt.Sprintf("bonds[%d]", i)}
	for j, name := range cb.PFs {
		p := pfView{name: name, key: fmt.Sprintf("%s.pfs[%d]", b.key, j)}
		dir := "/sys/class/net/" + name
		p.exists = d.exists(dir)
		if p.exists {
			p.pci, _ = d.linkBase(dir + "/device")
			p.driver, _ = d.linkBase(dir + "/device/driver")
			p.info, p.infoErr = d.NIC.DriverInfo(ctx, name)
		}
		b.pfs = append(b.pfs, p)
	}
	b.backend, b.mode, b.explicit = resolveBackend(cb.Backend, b.drivers())
	return b
}

// drivers are the PFs' drivers, in order ("" for an unknown one).
func (b bondView) drivers() []string {
	out := make([]string, len(b.pfs))
	for i, p := range b.pfs {
		out[i] = p.driverName()
	}
	return out
}

// resolveBackend is the backend and mode a bond's backend key gives with
// its PFs' drivers: auto is ice when every PF is driven by ice, mlx5 when
// every one is by mlx5_core, generic otherwise. ice and mlx5 run in
// hardware mode (the NIC's VF-LAG), generic in software mode.
func resolveBackend(key config.Backend, drivers []string) (backend string, mode plugin.Mode, explicit bool) {
	all := func(drv string) bool {
		return len(drivers) > 0 && !slices.ContainsFunc(drivers, func(d string) bool { return d != drv })
	}
	switch key {
	case config.BackendGeneric:
		return backendGeneric, plugin.ModeSoftware, true
	case config.BackendICE:
		return backendICE, plugin.ModeHardware, true
	case config.BackendMLX5:
		return backendMLX5, plugin.ModeHardware, true
	}
	switch {
	case all(driverICE):
		return backendICE, plugin.ModeHardware, false
	case all(driverMLX5):
		return backendMLX5, plugin.ModeHardware, false
	}
	return backendGeneric, plugin.ModeSoftware, false
}

// checkBond runs the checks of one bond and its PFs. inUse are the VFs
// vflagd says it handed out (when daemonUp).
func (d *Doctor) checkBond(ctx context.Context, b bondView, inUse []InUseVF, daemonUp bool) []plugin.Finding {
	var out []plugin.Finding
	out = append(out, d.checkBackend(b))
	bondOK, fs := d.checkBondDevice(b)
	out = append(out, fs...)
	for i, p := range b.pfs {
		out = append(out, d.checkPF(ctx, b, i, p, inUse, daemonUp)...)
	}
	if bondOK {
		out = append(out, d.checkRDMA(ctx, b)...)
	}
	out = append(out, d.preflight(ctx, b)...)
	return out
}

// checkBackend reports the backend and mode the bond resolves to, and
// whether its PFs suit it.
func (d *Doctor) checkBackend(b bondView) plugin.Finding {
	name := b.cfg.Name
	drivers := b.drivers()
	var described []string
	for i, p := range b.pfs {
		described = append(described, fmt.Sprintf("%s %s", p.name, orNone(drivers[i])))
	}
	how := "configured"
	if !b.explicit {
		how = "auto"
	}
	summary := fmt.Sprintf("%s (%s; %s)", b.backend, how, strings.Join(described, ", "))
	if b.mode == plugin.ModeSoftware {
		return ok(CheckBackend, name, summary+": software mode, vflagd moves each VM to a VF of the surviving port")
	}
	want := map[string]string{backendICE: driverICE, backendMLX5: driverMLX5}[b.backend]
	for i, p := range b.pfs {
		if p.exists && drivers[i] != want {
			return finding(CheckBackend, name, plugin.SeverityFail,
				fmt.Sprintf("%s: backend %s needs PFs driven by %s, but %s is driven by %s", summary, b.backend, want, p.name, orNone(drivers[i])),
				fmt.Sprintf("set backend: auto (or generic) at %s", b.at(b.key+".backend")))
		}
	}
	if len(b.pfs) == 2 && b.pfs[0].pci != "" && b.pfs[1].pci != "" && !sameNIC(b.pfs[0].pci, b.pfs[1].pci) {
		return finding(CheckBackend, name, b.hardwareSeverity(),
			fmt.Sprintf("%s: %s (%s) and %s (%s) are on different NICs, and VF-LAG joins the two ports of one NIC%s",
				summary, b.pfs[0].name, b.pfs[0].pci, b.pfs[1].name, b.pfs[1].pci, b.fallback()),
			fmt.Sprintf("name two ports of one NIC at %s", b.at(b.key+".pfs")))
	}
	return ok(CheckBackend, name, summary+": hardware mode, the NIC's VF-LAG carries VFs to the surviving port; vflagd verifies and announces")
}

// sameNIC reports whether two PCI addresses are functions of one device
// (domain:bus:device equal).
func sameNIC(a, b string) bool {
	da, _, okA := strings.Cut(a, ".")
	db, _, okB := strings.Cut(b, ".")
	return okA && okB && da == db
}

// checkBondDevice checks the bond netdev: it exists, is active-backup,
// monitors its links and has the configured PFs as its ports. bondOK says
// whether it is a bond at all.
func (d *Doctor) checkBondDevice(b bondView) (bondOK bool, out []plugin.Finding) {
	name := b.cfg.Name
	dir := "/sys/class/net/" + name
	var enslave []string
	for _, p := range b.cfg.PFs {
		enslave = append(enslave, fmt.Sprintf("ip link set %s down && ip link set %s master %s", p, p, name))
	}
	if !d.exists(dir) {
		return false, []plugin.Finding{finding(CheckBond, name, plugin.SeverityFail,
			"no such netdev (configured at "+b.at(b.key+".name")+")",
			fmt.Sprintf("ip link add %s type bond mode active-backup miimon 100 && %s && ip link set %s up", name, strings.Join(enslave, " && "), name))}
	}
	if !d.exists(dir + "/bonding") {
		return false, []plugin.Finding{finding(CheckBond, name, plugin.SeverityFail,
			fmt.Sprintf("%s is not a bond (no %s/bonding)", name, dir),
			"name the bond, not one of its ports, at "+b.at(b.key+".name"))}
	}
	mode, _ := d.readLine(dir + "/bonding/mode")
	if m, _, _ := strings.Cut(mode, " "); m != "active-backup" {
		out = append(out, finding(CheckBondMode, name, plugin.SeverityFail,
			fmt.Sprintf("mode %s: vflag follows the active port of an active-backup bond", orNone(m)),
			fmt.Sprintf("ip link set %s down && ip link set %s type bond mode active-backup (with its ports released: ip link set PORT nomaster)", name, name)))
	} else {
		out = append(out, ok(CheckBondMode, name, "active-backup"))
	}
	out = append(out, d.checkBondMonitor(name, dir))
	out = append(out, d.checkBondPorts(b, dir, enslave))
	return true, out
}

// checkBondMonitor checks that the bond watches its links: miimon, or the
// ARP monitor with targets (Documentation/networking/bonding.rst).
func (d *Doctor) checkBondMonitor(name, dir string) plugin.Finding {
	miimon, _ := d.readInt(dir + "/bonding/miimon")
	arp, _ := d.readInt(dir + "/bonding/arp_interval")
	targets, _ := d.readLine(dir + "/bonding/arp_ip_target")
	switch {
	case miimon > 0:
		return ok(CheckBondMonitor, name, fmt.Sprintf("miimon %d ms", miimon))
	case arp > 0 && targets != "":
		return ok(CheckBondMonitor, name, fmt.Sprintf("ARP monitor every %d ms, targets %s", arp, targets))
	case arp > 0:
		return finding(CheckBondMonitor, name, plugin.SeverityFail,
			fmt.Sprintf("arp_interval %d ms but no arp_ip_target: the bond cannot judge its links", arp),
			fmt.Sprintf("ip link set %s type bond arp_ip_target GATEWAY_IP", name))
	}
	return finding(CheckBondMonitor, name, plugin.SeverityFail,
		"no link monitoring (miimon 0, arp_interval 0): the bond never notices a dead port and never fails over",
		fmt.Sprintf("ip link set %s type bond miimon 100", name))
}

// checkBondPorts checks that the bond's ports are exactly the configured
// PFs.
func (d *Doctor) checkBondPorts(b bondView, dir string, enslave []string) plugin.Finding {
	name := b.cfg.Name
	s, _ := d.readLine(dir + "/bonding/slaves")
	slaves := strings.Fields(s)
	var missingPFs, fixes, extra []string
	for i, p := range b.cfg.PFs {
		if !slices.Contains(slaves, p) {
			missingPFs = append(missingPFs, p)
			fixes = append(fixes, enslave[i])
		}
	}
	for _, sl := range slaves {
		if !slices.Contains(b.cfg.PFs, sl) {
			extra = append(extra, sl)
		}
	}
	ports := orNone(strings.Join(slaves, ", "))
	if len(missingPFs) > 0 {
		verb := "is"
		if len(missingPFs) > 1 {
			verb = "are"
		}
		return finding(CheckBondPorts, name, plugin.SeverityFail,
			fmt.Sprintf("%s %s not a port of %s (its ports: %s)", strings.Join(missingPFs, " and "), verb, name, ports),
			strings.Join(fixes, " && "))
	}
	active, _ := d.readLine(dir + "/bonding/active_slave")
	if len(extra) > 0 {
		return finding(CheckBondPorts, name, plugin.SeverityWarn,
			fmt.Sprintf("ports %s; %s not in %s: vflag uses only the configured two", ports, strings.Join(extra, ", "), b.at(b.key+".pfs")),
			fmt.Sprintf("ip link set %s nomaster", extra[0]))
	}
	if active == "" {
		return finding(CheckBondPorts, name, plugin.SeverityWarn,
			fmt.Sprintf("ports %s, none active: no link on either port, or %s is down", ports, name),
			fmt.Sprintf("ip link set %s up, and check the cables (ip -br link show master %s)", name, name))
	}
	return ok(CheckBondPorts, name, fmt.Sprintf("ports %s, active %s", ports, active))
}

// checkPF runs the checks of the i-th PF p of b.
func (d *Doctor) checkPF(ctx context.Context, b bondView, i int, p pfView, inUse []InUseVF, daemonUp bool) []plugin.Finding {
	if !p.exists {
		return []plugin.Finding{finding(CheckPF, p.name, plugin.SeverityFail,
			"no such netdev (configured at "+b.at(p.key)+")",
			"name an existing port at "+b.at(p.key)+" (ip -br link lists them)")}
	}
	if p.pci == "" {
		return []plugin.Finding{finding(CheckPF, p.name, plugin.SeverityFail,
			"not a PCI device, so it has no VFs (configured at "+b.at(p.key)+")",
			"name a port of an SR-IOV NIC at "+b.at(p.key))}
	}
	var out []plugin.Finding
	if p.infoErr != nil {
		out = append(out, finding(CheckDriver, p.name, plugin.SeverityWarn,
			fmt.Sprintf("ethtool -i %s failed: %v; sysfs says driver %s, %s", p.name, p.infoErr, orNone(p.driver), p.pci), ""))
	} else {
		fw := p.info.Firmware
		if fw == "" || fw == "N/A" {
			fw = "none reported"
		}
		out = append(out, ok(CheckDriver, p.name, fmt.Sprintf("%s %s, firmware %s, %s", orNone(p.info.Driver), p.info.Version, fw, p.pci)))
	}
	sriovOK, f := d.checkSRIOV(b, p)
	out = append(out, f)
	if b.mode == plugin.ModeHardware {
		out = append(out, d.checkEswitch(ctx, b, i, p)...)
		if b.backend == backendICE {
			out = append(out, d.checkLLDP(ctx, b, p))
		}
	}
	if sriovOK {
		out = append(out, d.checkVFs(ctx, b, p, inUse, daemonUp)...)
	}
	return out
}

// checkSRIOV checks sriov_totalvfs and sriov_numvfs against vfs_per_pf.
// hasVFs says whether the PF has VFs to look at.
func (d *Doctor) checkSRIOV(b bondView, p pfView) (hasVFs bool, f plugin.Finding) {
	dev := "/sys/class/net/" + p.name + "/device/"
	want := b.cfg.VFsPerPF
	total, err := d.readInt(dev + "sriov_totalvfs")
	if err != nil {
		return false, finding(CheckSRIOV, p.name, plugin.SeverityFail,
			fmt.Sprintf("%s (%s) has no SR-IOV (no sriov_totalvfs)", p.pci, orNone(p.driverName())),
			"enable SR-IOV for the NIC (and VT-d) in the firmware setup, or name an SR-IOV NIC's ports at "+b.at(p.key))
	}
	num, _ := d.readInt(dev + "sriov_numvfs")
	seen := fmt.Sprintf("sriov_numvfs %d, sriov_totalvfs %d, vfs_per_pf %d", num, total, want)
	switch {
	case total < want:
		return num > 0, finding(CheckSRIOV, p.name, plugin.SeverityFail, seen+": the NIC offers fewer VFs than configured",
			fmt.Sprintf("set vfs_per_pf: %d at %s", total, b.at(b.key+".vfs_per_pf")))
	case num == 0:
		return false, finding(CheckSRIOV, p.name, plugin.SeverityInfo, seen+": vflagd creates the VFs when it starts",
			fmt.Sprintf("or now: echo %d > /sys/class/net/%s/device/sriov_numvfs", want, p.name))
	case num < want:
		return true, finding(CheckSRIOV, p.name, plugin.SeverityInfo, seen+": vflagd raises sriov_numvfs when it starts",
			"systemctl restart vflagd (the kernel changes sriov_numvfs only through 0, which removes the VFs)")
	}
	return true, ok(CheckSRIOV, p.name, seen)
}

// checkEswitch checks the devlink eswitch mode where the hardware mode
// needs it: ice's VF-LAG wants the primary PF (the first configured) in
// switchdev and the other in legacy; mlx5's wants both in switchdev.
func (d *Doctor) checkEswitch(ctx context.Context, b bondView, i int, p pfView) []plugin.Finding {
	want := "switchdev"
	if b.backend == backendICE && i > 0 {
		want = "legacy"
	}
	why := map[string]string{
		backendICE + "switchdev":  "ice's VF-LAG needs the primary port in switchdev",
		backendICE + "legacy":     "ice's VF-LAG wants only the primary port in switchdev",
		backendMLX5 + "switchdev": "mlx5's VF-LAG needs both ports in switchdev",
	}[b.backend+want]
	mode, err := d.NIC.EswitchMode(ctx, p.pci)
	if err != nil {
		return []plugin.Finding{finding(CheckEswitch, p.name, b.hardwareSeverity(),
			fmt.Sprintf("cannot read the eswitch mode of pci/%s: %v; %s%s", p.pci, err, why, b.fallback()), "")}
	}
	if mode != want {
		return []plugin.Finding{finding(CheckEswitch, p.name, b.hardwareSeverity(),
			fmt.Sprintf("eswitch mode %s: %s%s", orNone(mode), why, b.fallback()),
			fmt.Sprintf("devlink dev eswitch set pci/%s mode %s", p.pci, want))}
	}
	return []plugin.Finding{ok(CheckEswitch, p.name, "eswitch mode "+mode)}
}

// checkLLDP checks ice's firmware LLDP agent, which must be off on both
// ports for VF-LAG.
func (d *Doctor) checkLLDP(ctx context.Context, b bondView, p pfView) plugin.Finding {
	const flag = "fw-lldp-agent"
	flags, err := d.NIC.PrivFlags(ctx, p.name)
	if err != nil {
		return finding(CheckLLDP, p.name, plugin.SeverityWarn, fmt.Sprintf("cannot read the private flags of %s: %v", p.name, err), "")
	}
	on, listed := flags[flag]
	switch {
	case !listed:
		return finding(CheckLLDP, p.name, plugin.SeverityWarn, p.name+"'s driver lists no "+flag+" flag", "")
	case on:
		return finding(CheckLLDP, p.name, b.hardwareSeverity(),
			"the NIC firmware's LLDP agent is on, and ice refuses VF-LAG with it"+b.fallback(),
			fmt.Sprintf("ethtool --set-priv-flags %s %s off", p.name, flag))
	}
	return ok(CheckLLDP, p.name, "firmware LLDP agent off")
}

// checkVFs checks spoofchk on and trust off on the VFs of p in use: those
// vflagd says it handed out, or, without vflagd, those among the first
// vfs_per_pf with a MAC set.
func (d *Doctor) checkVFs(ctx context.Context, b bondView, p pfView, inUse []InUseVF, daemonUp bool) []plugin.Finding {
	vfs, err := d.NIC.VFs(ctx, p.name)
	if err != nil {
		return []plugin.Finding{finding(CheckVFs, p.name, plugin.SeverityWarn, "cannot list the VFs: "+err.Error(), "")}
	}
	type use struct {
		vm    string
		trust bool
	}
	used := map[int]use{}
	how := "by vflagd"
	if daemonUp {
		for _, u := range inUse {
			if u.VF.PF == p.name {
				used[u.VF.Index] = use{u.VM, u.Trust}
			}
		}
	} else {
		how = "judged by their MACs, vflagd not asked"
		for _, v := range vfs {
			if v.MAC != nil && v.Index < b.cfg.VFsPerPF {
				used[v.Index] = use{}
			}
		}
	}
	if len(used) == 0 {
		return []plugin.Finding{finding(CheckVFs, p.name, plugin.SeverityInfo,
			fmt.Sprintf("no VF in use (%s): spoofchk and trust are checked on VFs in use", how), "")}
	}
	var spoofOff, trustOn, trustAsked []int
	for _, v := range vfs {
		u, isUsed := used[v.Index]
		if !isUsed {
			continue
		}
		if !v.SpoofChk {
			spoofOff = append(spoofOff, v.Index)
		}
		switch {
		case v.Trust && u.trust:
			trustAsked = append(trustAsked, v.Index)
		case v.Trust:
			trustOn = append(trustOn, v.Index)
		}
	}
	n := fmt.Sprintf("%d VFs in use, %s", len(used), how)
	var out []plugin.Finding
	if len(spoofOff) > 0 {
		out = append(out, finding(CheckSpoofchk, p.name, plugin.SeverityWarn,
			fmt.Sprintf("off on %s (of %s): their VMs can send frames with any source MAC", vfList(spoofOff), n),
			vfFix(p.name, spoofOff, "spoofchk on")))
	} else {
		out = append(out, ok(CheckSpoofchk, p.name, "on for the "+n))
	}
	if len(trustOn) > 0 {
		out = append(out, finding(CheckTrust, p.name, plugin.SeverityWarn,
			fmt.Sprintf("on for %s (of %s), which no VM asked for: the VM can change its MAC and listen promiscuously", vfList(trustOn), n),
			vfFix(p.name, trustOn, "trust off")))
	} else {
		detail := "off for the " + n
		if len(trustAsked) > 0 {
			detail = fmt.Sprintf("off, but on for %s as its VM asked (%s)", vfList(trustAsked), n)
		}
		out = append(out, ok(CheckTrust, p.name, detail))
	}
	return out
}

// vfList renders VF indexes: "vf 2" or "vfs 2, 5".
func vfList(idx []int) string {
	s := make([]string, len(idx))
	for i, v := range idx {
		s[i] = strconv.Itoa(v)
	}
	if len(s) == 1 {
		return "vf " + s[0]
	}
	return "vfs " + strings.Join(s, ", ")
}

// vfFix is the command that sets what on the VFs idx of pf.
func vfFix(pf string, idx []int, what string) string {
	if len(idx) == 1 {
		return fmt.Sprintf("ip link set %s vf %d %s", pf, idx[0], what)
	}
	s := make([]string, len(idx))
	for i, v := range idx {
		s[i] = strconv.Itoa(v)
	}
	return fmt.Sprintf("for vf in %s; do ip link set %s vf $vf %s; done", strings.Join(s, " "), pf, what)
}

// checkRDMA checks the bond's RDMA in its mode with rdmamgr: the device
// that serves the bond, its port state and GIDs. Mode off is reported
// only when vflag's Soft-RoCE device is left over.
func (d *Doctor) checkRDMA(ctx context.Context, b bondView) []plugin.Finding {
	name, mode := b.cfg.Name, b.cfg.RDMA
	m := &rdmamgr.Manager{Sysfs: d.path("/sys"), Links: d.RDMA}
	st := m.Check(ctx, name, mode)
	if st.Healthy {
		if mode == rdmamgr.ModeOff {
			return nil
		}
		return []plugin.Finding{ok(CheckRDMA, name, fmt.Sprintf("%s: %s", mode, rdmaState(st)))}
	}
	sev := plugin.SeverityFail
	if mode == rdmamgr.ModeOff {
		sev = plugin.SeverityWarn
	}
	var out []plugin.Finding
	if st.Device != "" && mode != rdmamgr.ModeOff {
		out = append(out, finding(CheckRDMA, name, plugin.SeverityInfo, fmt.Sprintf("%s: %s", mode, rdmaState(st)), ""))
	}
	for _, p := range st.Problems {
		// The kernel-module check reports rdma_rxe with more detail.
		if strings.HasPrefix(p, rdmamgr.ErrNoRXEModule.Error()) {
			continue
		}
		detail, fix := p, ""
		if i := strings.LastIndex(p, ": "); i > 0 {
			detail, fix = p[:i], p[i+2:]
		}
		out = append(out, finding(CheckRDMA, name, sev, fmt.Sprintf("%s: %s", mode, detail), fix))
	}
	return out
}

// rdmaState renders the device serving a bond: "rxe_bond0 port 1 ACTIVE
// on bond0, GIDs 1 198.18.0.11 (RoCE v2), 2 fd00::11 (RoCE v2)".
func rdmaState(st rdmamgr.Status) string {
	if st.Device == "" {
		return "no device"
	}
	s := fmt.Sprintf("%s port %d %s on %s", st.Device, st.Port, st.State, orNone(st.Netdev))
	var gids []string
	for _, g := range st.GIDs {
		t := fmt.Sprintf("%d %s", g.Index, g.Addr)
		if g.Type != "" {
			t += " (" + string(g.Type) + ")"
		}
		gids = append(gids, t)
	}
	if len(gids) == 0 {
		return s + ", no GIDs"
	}
	return s + ", GIDs " + strings.Join(gids, ", ")
}

// preflight asks the NIC backend for its findings on b.
func (d *Doctor) preflight(ctx context.Context, b bondView) []plugin.Finding {
	name := b.cfg.Name
	if d.Preflight == nil {
		return []plugin.Finding{finding(CheckPreflight, name, plugin.SeverityInfo,
			"no NIC backend plugin wired into this vflag: the "+b.backend+" backend's own checks were not run", "")}
	}
	spec := plugin.BondSpec{Bond: name, VFsPerPF: b.cfg.VFsPerPF, Mode: b.mode}
	copy(spec.Ports[:], b.cfg.PFs)
	fs, err := d.Preflight.Preflight(ctx, b.backend, spec)
	if err != nil {
		return append(fs, finding(CheckPreflight, name, plugin.SeverityFail,
			fmt.Sprintf("the %s backend's preflight failed: %v", b.backend, err), ""))
	}
	return fs
}
