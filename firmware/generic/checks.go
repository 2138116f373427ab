package generic

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/vflag/vflag/firmware/nicview"
	"github.com/vflag/vflag/plugin"
	"github.com/vflag/vflag/vfmgr"
)

// Findings checks what the software path needs of a bond, whatever the
// NIC: each port has SR-IOV with sriov_totalvfs >= VFsPerPF and carrier,
// the bond is active-backup with link monitoring and holds exactly the two
// ports, and the VFs vflag uses (the VFsPerPF lowest) that carry a MAC
// have spoof checking on and trust off. It changes nothing; what it
// cannot read is itself a finding.
func (b *Backend) Findings(ctx context.Context, spec plugin.BondSpec) []plugin.Finding {
	var fs []plugin.Finding
	for _, name := range spec.Ports {
		fs = append(fs, b.portFindings(ctx, spec, name)...)
	}
	return append(fs, b.bondFindings(spec)...)
}

func (b *Backend) portFindings(ctx context.Context, spec plugin.BondSpec, name string) []plugin.Finding {
	pf, err := b.dev().PF(ctx, name)
	if isNoSRIOV(err) {
		return []plugin.Finding{{
			Check: "sriov", Subject: name, Severity: plugin.SeverityFail,
			Detail: err.Error(), Fix: "use a port of an SR-IOV NIC, with SR-IOV enabled in the firmware setup",
		}}
	}
	if err != nil {
		return []plugin.Finding{{
			Check: "port", Subject: name, Severity: plugin.SeverityFail,
			Detail: err.Error(), Fix: "name an existing PF in the ports of " + spec.Bond,
		}}
	}
	id := fmt.Sprintf("%s (%s, %s)", pf.Name, pf.PCI, pf.Driver)
	var fs []plugin.Finding
	if pf.TotalVFs < spec.VFsPerPF {
		fs = append(fs, plugin.Finding{
			Check: "total-vfs", Subject: name, Severity: plugin.SeverityFail,
			Detail: fmt.Sprintf("%s has sriov_totalvfs %d, %d VFs per PF configured", id, pf.TotalVFs, spec.VFsPerPF),
			Fix:    fmt.Sprintf("lower vfs_per_pf of %s to %d", spec.Bond, pf.TotalVFs),
		})
	} else {
		fs = append(fs, plugin.Finding{
			Check: "total-vfs", Subject: name, Severity: plugin.SeverityOK,
			Detail: fmt.Sprintf("%s has sriov_totalvfs %d, %d needed", id, pf.TotalVFs, spec.VFsPerPF),
		})
	}
	switch {
	case pf.NumVFs != 0 && pf.NumVFs < spec.VFsPerPF:
		fs = append(fs, tooFewVFs(spec, pf))
	case pf.NumVFs == 0:
		fs = append(fs, plugin.Finding{
			Check: "num-vfs", Subject: name, Severity: plugin.SeverityInfo,
			Detail: fmt.Sprintf("%s has no VFs yet; vflag creates %d", id, spec.VFsPerPF),
		})
	}
	if pf.Carrier {
		fs = append(fs, plugin.Finding{Check: "carrier", Subject: name, Severity: plugin.SeverityOK, Detail: name + " has carrier"})
	} else {
		fs = append(fs, plugin.Finding{
			Check: "carrier", Subject: name, Severity: plugin.SeverityWarn,
			Detail: name + " has no carrier: the bond cannot fail over to it",
			Fix:    "check the cable and switch port of " + name + " (ip link show " + name + ")",
		})
	}
	if pf.Bond != spec.Bond {
		master := "no bond"
		if pf.Bond != "" {
			master = "bond " + pf.Bond
		}
		fs = append(fs, plugin.Finding{
			Check: "enslaved", Subject: name, Severity: plugin.SeverityFail,
			Detail: fmt.Sprintf("%s is enslaved to %s, not %s", name, master, spec.Bond),
			Fix:    fmt.Sprintf("ip link set %s down && ip link set %s master %s", name, name, spec.Bond),
		})
	}
	if pf.NumVFs > 0 {
		fs = append(fs, b.vfFindings(ctx, spec, pf)...)
	}
	return fs
}

// vfFindings checks the per-VF switches vflag sets on the VFs it uses
// that carry a MAC: spoof checking on (else a VM can send as any MAC),
// trust off (unless the VM asked for it: Info, not Warn).
func (b *Backend) vfFindings(ctx context.Context, spec plugin.BondSpec, pf vfmgr.PF) []plugin.Finding {
	vfs, err := b.dev().VFs(ctx, pf.Name)
	if err != nil {
		return []plugin.Finding{{
			Check: "vfs", Subject: pf.Name, Severity: plugin.SeverityWarn,
			Detail: err.Error(), Fix: "ip link show " + pf.Name,
		}}
	}
	var fs []plugin.Finding
	for _, vf := range vfs {
		if vf.Index >= spec.VFsPerPF || len(vf.MAC) == 0 {
			continue
		}
		ref := vfmgr.VFRef{PF: vf.PF, Index: vf.Index}.String()
		if !vf.SpoofChk {
			fs = append(fs, plugin.Finding{
				Check: "vf-spoofchk", Subject: ref, Severity: plugin.SeverityWarn,
				Detail: fmt.Sprintf("%s (MAC %s) has spoof checking off: its VM can send as any MAC", vf.ID(), vf.MAC),
				Fix:    fmt.Sprintf("ip link set %s vf %d spoofchk on", vf.PF, vf.Index),
			})
		}
		if vf.Trust {
			fs = append(fs, plugin.Finding{
				Check: "vf-trust", Subject: ref, Severity: plugin.SeverityInfo,
				Detail: fmt.Sprintf("%s (MAC %s) is trusted: right only if its VM asked for trust", vf.ID(), vf.MAC),
				Fix:    fmt.Sprintf("ip link set %s vf %d trust off", vf.PF, vf.Index),
			})
		}
	}
	return fs
}

func (b *Backend) bondFindings(spec plugin.BondSpec) []plugin.Finding {
	bond, err := nicview.ReadBond(b.dev().Sysfs(), spec.Bond)
	if err != nil {
		return []plugin.Finding{{
			Check: "bond", Subject: spec.Bond, Severity: plugin.SeverityFail, Detail: err.Error(),
			Fix: fmt.Sprintf("ip link add %s type bond mode active-backup miimon 100", spec.Bond),
		}}
	}
	var fs []plugin.Finding
	if bond.Mode != "active-backup" {
		fs = append(fs, plugin.Finding{
			Check: "bond-mode", Subject: spec.Bond, Severity: plugin.SeverityFail,
			Detail: fmt.Sprintf("%s is in mode %s; vflag follows an active-backup bond's active port", spec.Bond, bond.Mode),
			Fix:    fmt.Sprintf("release its ports, then ip link set %s type bond mode active-backup", spec.Bond),
		})
	} else {
		fs = append(fs, plugin.Finding{Check: "bond-mode", Subject: spec.Bond, Severity: plugin.SeverityOK, Detail: spec.Bond + " is active-backup"})
	}
	switch {
	case bond.MIIMon > 0:
		fs = append(fs, plugin.Finding{
			Check: "link-monitoring", Subject: spec.Bond, Severity: plugin.SeverityOK,
			Detail: fmt.Sprintf("%s monitors links with miimon %d ms", spec.Bond, bond.MIIMon),
		})
	case bond.Monitored():
		fs = append(fs, plugin.Finding{
			Check: "link-monitoring", Subject: spec.Bond, Severity: plugin.SeverityOK,
			Detail: fmt.Sprintf("%s monitors links with ARP every %d ms to %s", spec.Bond, bond.ARPInterval, strings.Join(bond.ARPTargets, ", ")),
		})
	default:
		detail := spec.Bond + " has neither miimon nor an ARP monitor: it never fails over"
		if bond.ARPInterval > 0 {
			detail = fmt.Sprintf("%s has arp_interval %d ms but no arp_ip_target and no miimon: it never fails over", spec.Bond, bond.ARPInterval)
		}
		fs = append(fs, plugin.Finding{
			Check: "link-monitoring", Subject: spec.Bond, Severity: plugin.SeverityFail,
			Detail: detail, Fix: fmt.Sprintf("ip link set %s type bond miimon 100", spec.Bond),
		})
	}
	if extra := slices.DeleteFunc(slices.Clone(bond.Slaves), func(s string) bool { return s == spec.Ports[0] || s == spec.Ports[1] }); len(extra) > 0 {
		fs = append(fs, plugin.Finding{
			Check: "bond-ports", Subject: spec.Bond, Severity: plugin.SeverityWarn,
			Detail: fmt.Sprintf("%s also has %s enslaved; vflag uses %s and %s only and may follow the bond to a port without its VFs", spec.Bond, strings.Join(extra, ", "), spec.Ports[0], spec.Ports[1]),
			Fix:    fmt.Sprintf("ip link set %s nomaster", extra[0]),
		})
	}
	if bond.Active != "" {
		fs = append(fs, plugin.Finding{
			Check: "active-port", Subject: spec.Bond, Severity: plugin.SeverityInfo,
			Detail: fmt.Sprintf("%s's active port is %s (enslaved: %s)", spec.Bond, bond.Active, strings.Join(bond.Slaves, ", ")),
		})
	}
	return fs
}

func joinAnd(s []string) string {
	switch len(s) {
	case 0:
		return "the driver"
	case 1:
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

func joinSemi(s []string) string { return strings.Join(s, "; ") }
