package doctor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/vflag/vflag/plugin"
	"github.com/vflag/vflag/rdmamgr"
	"github.com/vflag/vflag/vfmgr/config"
)

// Check names of the host-wide checks.
const (
	CheckConfig  = "config"
	CheckKernel  = "kernel"
	CheckModule  = "kernel-module"
	CheckIOMMU   = "iommu"
	CheckLibvirt = "libvirt"
	CheckHook    = "libvirt-hook"
	CheckVflagd  = "vflagd"
)

// HookPath is where libvirt (6.5 and later) runs vflag's qemu hook from.
const HookPath = "/etc/libvirt/hooks/qemu.d/vflag"

// iceVFLAGKernel is the first kernel whose ice moves VFs with an
// active-backup bond (ice SR-IOV VF-LAG, merged for Linux 6.6).
var iceVFLAGKernel = kernelVersion{6, 6}

// checkConfig reads and validates the configuration at p.
func (d *Doctor) checkConfig(p string) (*config.Config, []plugin.Finding) {
	data, err := os.ReadFile(d.path(p))
	switch {
	case missing(err):
		return nil, []plugin.Finding{finding(CheckConfig, p, plugin.SeverityFail,
			"no such file: vflagd has no bonds to manage (the bond checks below are skipped)",
			fmt.Sprintf(`mkdir -p %s && printf 'bonds:\n  - {name: bond0, pfs: [PF0, PF1], vfs_per_pf: 8}\n' > %s  (then name your bond, its two ports and the VFs per port)`, path.Dir(p), p))}
	case errors.Is(err, os.ErrPermission):
		return nil, []plugin.Finding{finding(CheckConfig, p, plugin.SeverityFail,
			"cannot read it: permission denied", "run vflag doctor as root")}
	case err != nil:
		return nil, []plugin.Finding{finding(CheckConfig, p, plugin.SeverityFail, "cannot read it: "+err.Error(), "")}
	}
	cfg, err := config.Parse(p, data)
	if err != nil {
		var fs []plugin.Finding
		for _, e := range configErrors(err) {
			subject, fix := p, "vflag config validate "+p
			var ce *config.Error
			if errors.As(e, &ce) && ce.Line > 0 {
				subject = fmt.Sprintf("%s:%d", p, ce.Line)
				fix = fmt.Sprintf("edit line %d of %s, then: vflag config validate %s", ce.Line, p, p)
			}
			fs = append(fs, finding(CheckConfig, subject, plugin.SeverityFail, e.Error(), fix))
		}
		return nil, fs
	}
	var bonds []string
	for _, b := range cfg.Bonds {
		s := fmt.Sprintf("%s over %s with %d VFs each", b.Name, strings.Join(b.PFs, "+"), b.VFsPerPF)
		if b.RDMA != rdmamgr.ModeOff {
			s += ", rdma " + string(b.RDMA)
		}
		bonds = append(bonds, s)
	}
	return cfg, []plugin.Finding{ok(CheckConfig, p, "valid: "+strings.Join(bonds, "; "))}
}

// configErrors splits the joined errors of config.Parse into one per
// problem.
func configErrors(err error) []error {
	if _, one := err.(*config.Error); one { //nolint:errorlint // a leaf of the join tree, not a wrapped error
		return []error{err}
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, configErrors(e)...)
		}
		return out
	}
	return []error{err}
}

// checkKernel reports the running kernel, against what the bonds' modes
// need.
func (d *Doctor) checkKernel(bonds []bondView) []plugin.Finding {
	rel, err := d.release()
	if err != nil {
		return []plugin.Finding{finding(CheckKernel, "", plugin.SeverityWarn, "cannot read the kernel release: "+err.Error(), "")}
	}
	v, parsed := parseRelease(rel)
	var out []plugin.Finding
	needed := false
	for _, b := range bonds {
		if b.backend != backendICE || b.mode != plugin.ModeHardware {
			continue
		}
		needed = true
		if parsed && v.less(iceVFLAGKernel) {
			out = append(out, finding(CheckKernel, b.cfg.Name, b.hardwareSeverity(),
				fmt.Sprintf("%s (backend ice) needs kernel %s or later for ice's VF-LAG, this is %s%s", b.cfg.Name, iceVFLAGKernel, v, b.fallback()),
				fmt.Sprintf("boot a kernel %s or later (Debian 12: linux-image-amd64 from bookworm-backports)", iceVFLAGKernel)))
		}
	}
	if len(out) > 0 {
		return out
	}
	detail := rel
	if needed {
		detail += fmt.Sprintf(" (ice VF-LAG needs %s or later)", iceVFLAGKernel)
	}
	return []plugin.Finding{ok(CheckKernel, "", detail)}
}

// checkModules checks the kernel modules: rdma_rxe where a bond has rdma
// soft, and vfio-pci, which hands VFs to VMs.
func (d *Doctor) checkModules(bonds []bondView) []plugin.Finding {
	var out []plugin.Finding
	var soft []string
	for _, b := range bonds {
		if b.cfg.RDMA == rdmamgr.ModeSoft {
			soft = append(soft, b.cfg.Name)
		}
	}
	if len(soft) > 0 {
		why := "Soft-RoCE for rdma: soft on " + strings.Join(soft, ", ")
		switch st, where := d.module("rdma_rxe"); st {
		case moduleLoaded:
			out = append(out, ok(CheckModule, "rdma_rxe", where+": "+why))
		case moduleAvailable:
			out = append(out, finding(CheckModule, "rdma_rxe", plugin.SeverityFail, where+": vflagd needs it loaded for "+why,
				"modprobe rdma_rxe && echo rdma_rxe > /etc/modules-load.d/vflag-rdma.conf"))
		default:
			out = append(out, finding(CheckModule, "rdma_rxe", plugin.SeverityFail, where+": vflagd needs it for "+why,
				"install a kernel built with CONFIG_RDMA_RXE=m (Debian's linux-image has it), or set rdma: off"))
		}
	}
	const why = "binds VFs for passthrough to VMs (libvirt <hostdev managed='yes'>)"
	switch st, where := d.module("vfio-pci"); {
	case st == moduleLoaded || d.exists("/sys/bus/pci/drivers/vfio-pci"):
		out = append(out, ok(CheckModule, "vfio-pci", "loaded: "+why))
	case st == moduleAvailable:
		out = append(out, ok(CheckModule, "vfio-pci", where+"; libvirt loads it when a VM starts: "+why))
	default:
		out = append(out, finding(CheckModule, "vfio-pci", plugin.SeverityFail, where+": it "+why,
			"install a kernel built with CONFIG_VFIO_PCI (Debian's linux-image has it)"))
	}
	return out
}

// checkIOMMU checks that an IOMMU is active: VFs are passed to VMs through
// vfio, which needs one.
func (d *Doctor) checkIOMMU() plugin.Finding {
	units := d.entries("/sys/class/iommu")
	groups := d.entries("/sys/kernel/iommu_groups")
	if len(units) > 0 || len(groups) > 0 {
		detail := fmt.Sprintf("active: %d IOMMU groups", len(groups))
		if len(units) > 0 {
			detail += " (" + strings.Join(units, ", ") + ")"
		}
		return ok(CheckIOMMU, "", detail)
	}
	cmdline, _ := d.readLine("/proc/cmdline")
	var params []string
	for _, p := range strings.Fields(cmdline) {
		if strings.HasPrefix(p, "intel_iommu=") || strings.HasPrefix(p, "amd_iommu=") || strings.HasPrefix(p, "iommu=") {
			params = append(params, p)
		}
	}
	detail := "no IOMMU active (/sys/class/iommu and /sys/kernel/iommu_groups are empty): VFs cannot be passed to VMs (vfio-pci needs one)"
	const grub = "to GRUB_CMDLINE_LINUX in /etc/default/grub, run update-grub and reboot"
	vendor := d.cpuVendor()
	var fix string
	switch {
	case slices.Contains(params, "intel_iommu=on") || slices.Contains(params, "amd_iommu=on"):
		detail += "; the kernel command line has " + strings.Join(params, " ") + ", so the firmware has it off or the machine has none"
		fix = "enable VT-d (Intel) or AMD-Vi/IOMMU (AMD) in the firmware (BIOS/UEFI) setup and reboot"
	case vendor == "AuthenticAMD":
		if len(params) > 0 {
			detail += "; the kernel command line has " + strings.Join(params, " ")
		}
		fix = "enable the IOMMU (AMD-Vi) in the firmware setup, and add amd_iommu=on iommu=pt " + grub
	default:
		if len(params) > 0 {
			detail += "; the kernel command line has " + strings.Join(params, " ")
		} else {
			detail += "; the kernel command line has no intel_iommu=on"
		}
		fix = "add intel_iommu=on iommu=pt " + grub + " (and enable VT-d in the firmware setup)"
	}
	return finding(CheckIOMMU, "", plugin.SeverityFail, detail, fix)
}

// cpuVendor is the vendor_id of /proc/cpuinfo ("GenuineIntel").
func (d *Doctor) cpuVendor() string {
	b, err := os.ReadFile(d.path("/proc/cpuinfo"))
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, found := strings.Cut(line, ":"); found && strings.TrimSpace(k) == "vendor_id" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// libvirtHookVersion is the first libvirt that runs the hooks in
// /etc/libvirt/hooks/qemu.d.
var libvirtHookVersion = [2]int{6, 5}

var versionRE = regexp.MustCompile(`(\d+)\.(\d+)(?:\.\d+)*`)

// checkLibvirt checks that libvirt's QEMU daemon is installed (monolithic
// libvirtd or modular virtqemud) and new enough for hook directories. It
// runs the daemon with --version and never connects to libvirt.
func (d *Doctor) checkLibvirt(ctx context.Context) []plugin.Finding {
	for _, daemon := range []string{"libvirtd", "virtqemud"} {
		out, err := d.Run.Run(ctx, daemon, "--version")
		if errors.Is(err, exec.ErrNotFound) {
			continue
		}
		if err != nil {
			return []plugin.Finding{finding(CheckLibvirt, daemon, plugin.SeverityWarn,
				fmt.Sprintf("%s --version failed: %v", daemon, err), "")}
		}
		out = strings.TrimSpace(out)
		m := versionRE.FindStringSubmatch(out)
		if m == nil {
			return []plugin.Finding{finding(CheckLibvirt, daemon, plugin.SeverityWarn,
				fmt.Sprintf("installed, but %s --version printed no version: %q", daemon, out), "")}
		}
		major, _ := strconv.Atoi(m[1])
		minor, _ := strconv.Atoi(m[2])
		if major < libvirtHookVersion[0] || major == libvirtHookVersion[0] && minor < libvirtHookVersion[1] {
			return []plugin.Finding{finding(CheckLibvirt, daemon, plugin.SeverityFail,
				fmt.Sprintf("libvirt %s is older than %d.%d, which is the first to run hooks from %s", m[0], libvirtHookVersion[0], libvirtHookVersion[1], path.Dir(HookPath)),
				fmt.Sprintf("upgrade libvirt to %d.%d or later", libvirtHookVersion[0], libvirtHookVersion[1]))}
		}
		return []plugin.Finding{ok(CheckLibvirt, daemon, "libvirt "+m[0]+" ("+out+")")}
	}
	return []plugin.Finding{finding(CheckLibvirt, "libvirtd", plugin.SeverityFail,
		"neither libvirtd nor virtqemud is installed: libvirt starts the VMs, and its hook asks vflagd for their VFs",
		"apt-get install libvirt-daemon-system")}
}

// checkHook checks that vflag's qemu hook is installed and executable.
func (d *Doctor) checkHook() plugin.Finding {
	st, err := os.Stat(d.path(HookPath))
	switch {
	case missing(err):
		return finding(CheckHook, HookPath, plugin.SeverityFail,
			"not installed: libvirt starts VMs without asking vflagd for VFs",
			"install -D -m 0755 <vflag's qemu hook> "+HookPath+" && systemctl restart libvirtd")
	case err != nil:
		return finding(CheckHook, HookPath, plugin.SeverityFail, "cannot check it: "+err.Error(), "run vflag doctor as root")
	case !st.Mode().IsRegular():
		return finding(CheckHook, HookPath, plugin.SeverityFail,
			fmt.Sprintf("is not a regular file (%s): libvirt runs only executable files", st.Mode().Type()),
			"rm -r "+HookPath+" && install -D -m 0755 <vflag's qemu hook> "+HookPath)
	case st.Mode().Perm()&0o100 == 0:
		return finding(CheckHook, HookPath, plugin.SeverityFail,
			fmt.Sprintf("not executable (mode %04o): libvirt skips it", st.Mode().Perm()),
			"chmod 0755 "+HookPath)
	}
	return ok(CheckHook, HookPath, fmt.Sprintf("installed, executable (mode %04o)", st.Mode().Perm()))
}

// checkVflagd reports whether vflagd answers on its socket and manages the
// configured bonds.
func checkVflagd(socket string, cfg *config.Config, st DaemonState, err error) []plugin.Finding {
	start := "systemctl start vflagd"
	if cfg != nil {
		start += " (or: vflagd -config " + cfg.File() + ")"
	}
	switch {
	case errors.Is(err, ErrNotRunning):
		return []plugin.Finding{finding(CheckVflagd, socket, plugin.SeverityFail,
			err.Error()+"; VMs get no VFs and nothing follows a failover", start)}
	case errors.Is(err, ErrNoAccess):
		return []plugin.Finding{finding(CheckVflagd, socket, plugin.SeverityWarn,
			err.Error()+"; VFs in use were judged by their MACs", "run vflag doctor as root or as a member of api.group")}
	case err != nil:
		return []plugin.Finding{finding(CheckVflagd, socket, plugin.SeverityFail, "does not answer: "+err.Error(), "systemctl restart vflagd")}
	}
	var running, names []string
	for _, b := range st.Bonds {
		running = append(running, b.Name)
		names = append(names, fmt.Sprintf("%s (active %s)", b.Name, orNone(b.Active)))
	}
	detail := fmt.Sprintf("answering; manages %s; %d VFs in use", orNone(strings.Join(names, ", ")), len(st.InUse))
	if cfg != nil {
		var want []string
		for _, b := range cfg.Bonds {
			want = append(want, b.Name)
		}
		slices.Sort(running)
		slices.Sort(want)
		if !slices.Equal(running, want) {
			return []plugin.Finding{finding(CheckVflagd, socket, plugin.SeverityWarn,
				fmt.Sprintf("%s, but %s names %s: it runs an older configuration", detail, cfg.File(), strings.Join(want, ", ")),
				"systemctl restart vflagd")}
		}
	}
	return []plugin.Finding{ok(CheckVflagd, socket, detail)}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
