package doctor_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/vflag/vflag/doctor"
	"github.com/vflag/vflag/plugin"
)

const (
	ok   = plugin.SeverityOK
	info = plugin.SeverityInfo
	warn = plugin.SeverityWarn
	fail = plugin.SeverityFail
)

// On a host where everything is in order, every check passes and the
// exit status is 0; each check ran.
func TestHealthyHost(t *testing.T) {
	t.Parallel()
	r := newHost(t).check()
	for _, f := range r.Findings() {
		if f.Severity > info {
			t.Errorf("unexpected %s", f)
		}
	}
	if got := r.ExitCode(); got != doctor.ExitOK {
		t.Errorf("exit %d, want 0", got)
	}
	for _, c := range [][2]string{
		{doctor.CheckConfig, configPath},
		{doctor.CheckKernel, ""},
		{doctor.CheckModule, "vfio-pci"},
		{doctor.CheckIOMMU, ""},
		{doctor.CheckLibvirt, "libvirtd"},
		{doctor.CheckHook, doctor.HookPath},
		{doctor.CheckVflagd, "/run/vflag/vflag.sock"},
		{doctor.CheckBackend, "bond0"},
		{doctor.CheckBondMode, "bond0"},
		{doctor.CheckBondMonitor, "bond0"},
		{doctor.CheckBondPorts, "bond0"},
		{doctor.CheckDriver, "pf0"},
		{doctor.CheckDriver, "pf1"},
		{doctor.CheckSRIOV, "pf0"},
		{doctor.CheckSRIOV, "pf1"},
		{doctor.CheckSpoofchk, "pf0"},
		{doctor.CheckTrust, "pf0"},
		{doctor.CheckVFs, "pf1"},
		{doctor.CheckPreflight, "bond0"},
	} {
		find(t, r, c[0], c[1])
	}
	want(t, find(t, r, doctor.CheckConfig, configPath), ok, "valid: bond0 over pf0+pf1 with 4 VFs each", "")
	want(t, find(t, r, doctor.CheckBackend, "bond0"), ok, "generic (auto; pf0 igb, pf1 igb): software mode", "")
	want(t, find(t, r, doctor.CheckDriver, "pf0"), ok, "igb 6.12.107+deb12-amd64, firmware 1.61, 0x8000a2b4, 0000:01:00.0", "")
	want(t, find(t, r, doctor.CheckBondMonitor, "bond0"), ok, "miimon 100 ms", "")
	want(t, find(t, r, doctor.CheckBondPorts, "bond0"), ok, "ports pf0, pf1, active pf0", "")
	want(t, find(t, r, doctor.CheckLibvirt, "libvirtd"), ok, "libvirt 11.3.0", "")
	want(t, find(t, r, doctor.CheckIOMMU, ""), ok, "3 IOMMU groups (dmar0)", "")
	want(t, find(t, r, doctor.CheckVFs, "pf1"), info, "no VF in use (by vflagd)", "")
	// Software mode on igb: neither eswitch nor LLDP concern it.
	if has(r, doctor.CheckEswitch, "pf0") || has(r, doctor.CheckLLDP, "pf0") {
		t.Errorf("eswitch or LLDP checked in software mode:\n%s", render(r))
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		h := newHost(t)
		h.remove(configPath)
		r := h.check()
		want(t, find(t, r, doctor.CheckConfig, configPath), fail, "no such file", "> "+configPath)
		// The host checks still run; the bond checks cannot.
		find(t, r, doctor.CheckIOMMU, "")
		find(t, r, doctor.CheckVflagd, "/run/vflag/vflag.sock")
		if has(r, doctor.CheckBondMode, "bond0") {
			t.Errorf("bond checked without a configuration")
		}
	})
	t.Run("invalid, every error at its line", func(t *testing.T) {
		t.Parallel()
		h := newHost(t)
		h.write("bonds:\n  - name: bond0\n    pfs: [pf0]\n    vfs_per_pf: 999\n", configPath)
		r := h.check()
		want(t, find(t, r, doctor.CheckConfig, configPath+":3"), fail, configPath+":3: bonds[0].pfs: a bond needs exactly 2 PFs", "edit line 3 of "+configPath)
		want(t, find(t, r, doctor.CheckConfig, configPath+":4"), fail, "bonds[0].vfs_per_pf: 999 is out of range", "vflag config validate "+configPath)
		h.write("bonds:\n  - name: bond0\n    pfs: [pf0, pf1]\n    vfs_per_pf: 4\nholddown: 1s\n", configPath)
		want(t, find(t, h.check(), doctor.CheckConfig, configPath+":5"), fail, configPath+":5: holddown: unknown key", "edit line 5")
	})
	t.Run("socket from the configuration", func(t *testing.T) {
		t.Parallel()
		h := newHost(t)
		h.write(baseConfig+"api:\n  socket: /run/other.sock\n", configPath)
		h.check()
		if h.vd.asked != "/run/other.sock" {
			t.Errorf("vflagd asked on %s, want the configured /run/other.sock", h.vd.asked)
		}
		h.doctor().Check(context.Background(), doctor.Options{Config: configPath, Socket: "/tmp/x.sock"})
		if h.vd.asked != "/tmp/x.sock" {
			t.Errorf("vflagd asked on %s, want --socket's /tmp/x.sock", h.vd.asked)
		}
	})
}

func TestKernel(t *testing.T) {
	t.Parallel()
	iceHost := func(t *testing.T, release, backend string) doctor.Report {
		h := newHost(t)
		h.kernel(release, "intel_iommu=on", "GenuineIntel")
		h.remove("/sys/class/net/pf0")
		h.remove("/sys/class/net/pf1")
		h.pf("pf0", "0000:3b:00.0", "ice", 64, 4)
		h.pf("pf1", "0000:3b:00.1", "ice", 64, 4)
		h.nic.eswitch["0000:3b:00.0"], h.nic.eswitch["0000:3b:00.1"] = "switchdev", "legacy"
		h.nic.flags["pf0"] = map[string]bool{"fw-lldp-agent": false}
		h.nic.flags["pf1"] = map[string]bool{"fw-lldp-agent": false}
		h.useVF("pf0", 0, "vm1", "52:54:00:00:00:01")
		h.write(baseConfig+"    backend: "+backend+"\n", configPath)
		return h.check()
	}
	want(t, find(t, iceHost(t, "6.12.1-amd64", "ice"), doctor.CheckKernel, ""), ok, "6.12.1-amd64 (ice VF-LAG needs 6.6 or later)", "")
	want(t, find(t, iceHost(t, "6.1.0-28-amd64", "ice"), doctor.CheckKernel, "bond0"), fail,
		"bond0 (backend ice) needs kernel 6.6 or later for ice's VF-LAG, this is 6.1", "boot a kernel 6.6 or later")
	// With auto, an old kernel costs the hardware path, not the bond.
	want(t, find(t, iceHost(t, "6.1.0-28-amd64", "auto"), doctor.CheckKernel, "bond0"), warn, "re-homes the VFs in software instead", "boot a kernel 6.6")
	// igb does not care.
	h := newHost(t)
	h.kernel("5.10.0-30-amd64", "intel_iommu=on", "GenuineIntel")
	want(t, find(t, h.check(), doctor.CheckKernel, ""), ok, "5.10.0-30-amd64", "")
}

func TestModules(t *testing.T) {
	t.Parallel()
	soft := func(h *host) { h.write(baseConfig+"    rdma: soft\n", configPath) }
	t.Run("rdma_rxe loaded", func(t *testing.T) {
		t.Parallel()
		h := newHost(t)
		soft(h)
		h.loaded("rdma_rxe")
		want(t, find(t, h.check(), doctor.CheckModule, "rdma_rxe"), ok, "loaded: Soft-RoCE for rdma: soft on bond0", "")
	})
	t.Run("rdma_rxe available", func(t *testing.T) {
		t.Parallel()
		h := newHost(t)
		soft(h)
		h.available("rdma_rxe")
		want(t, find(t, h.check(), doctor.CheckModule, "rdma_rxe"), fail, "not loaded (in /lib/modules/6.12.107+deb12-amd64)", "modprobe rdma_rxe")
	})
	t.Run("rdma_rxe missing", func(t *testing.T) {
		t.Parallel()
		h := newHost(t)
		soft(h)
		h.available("vfio-pci")
		want(t, find(t, h.check(), doctor.CheckModule, "rdma_rxe"), fail, "not in /lib/modules/6.12.107+deb12-amd64/modules.dep", "CONFIG_RDMA_RXE")
	})
	t.Run("rdma_rxe not needed", func(t *testing.T) {
		t.Parallel()
		if r := newHost(t).check(); has(r, doctor.CheckModule, "rdma_rxe") {
			t.Errorf("rdma_rxe checked with rdma off")
		}
	})
	t.Run("vfio-pci built in", func(t *testing.T) {
		t.Parallel()
		h := newHost(t)
		h.remove("/sys/module/vfio_pci/initstate")
		want(t, find(t, h.check(), doctor.CheckModule, "vfio-pci"), ok, "loaded", "")
	})
	t.Run("vfio-pci available", func(t *testing.T) {
		t.Parallel()
		h := newHost(t)
		h.remove("/sys/module/vfio_pci")
		h.available("vfio-pci")
		want(t, find(t, h.check(), doctor.CheckModule, "vfio-pci"), ok, "libvirt loads it when a VM starts", "")
	})
	t.Run("vfio-pci missing", func(t *testing.T) {
		t.Parallel()
		h := newHost(t)
		h.remove("/sys/module/vfio_pci")
		want(t, find(t, h.check(), doctor.CheckModule, "vfio-pci"), fail, "there is no /lib/modules/6.12.107+deb12-amd64", "CONFIG_VFIO_PCI")
	})
}

func TestIOMMU(t *testing.T) {
	t.Parallel()
	none := func(t *testing.T, cmdline, vendor string) plugin.Finding {
		h := newHost(t)
		h.remove("/sys/class/iommu/dmar0")
		h.remove("/sys/kernel/iommu_groups")
		h.kernel("6.12.1", cmdline, vendor)
		return find(t, h.check(), doctor.CheckIOMMU, "")
	}
	want(t, none(t, "root=/dev/sda1", "GenuineIntel"), fail, "no IOMMU active", "add intel_iommu=on iommu=pt to GRUB_CMDLINE_LINUX")
	want(t, none(t, "root=/dev/sda1 intel_iommu=on", "GenuineIntel"), fail, "the kernel command line has intel_iommu=on", "enable VT-d (Intel) or AMD-Vi/IOMMU (AMD) in the firmware")
	want(t, none(t, "root=/dev/sda1", "AuthenticAMD"), fail, "no IOMMU active", "amd_iommu=on")
	want(t, none(t, "intel_iommu=off", "GenuineIntel"), fail, "the kernel command line has intel_iommu=off", "add intel_iommu=on")
	// Groups without a unit directory (some ARM and AMD hosts) count.
	h := newHost(t)
	h.remove("/sys/class/iommu/dmar0")
	want(t, find(t, h.check(), doctor.CheckIOMMU, ""), ok, "active: 3 IOMMU groups", "")
}

func TestLibvirt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		run         fakeRunner
		subject     string
		sev         plugin.Severity
		detail, fix string
	}{
		{"libvirtd", fakeRunner{"libvirtd": "libvirtd (libvirt) 9.0.0\n"}, "libvirtd", ok, "libvirt 9.0.0", ""},
		{"modular daemons", fakeRunner{"virtqemud": "virtqemud (libvirt) 10.10.0\n"}, "virtqemud", ok, "libvirt 10.10.0", ""},
		{"too old for qemu.d", fakeRunner{"libvirtd": "libvirtd (libvirt) 6.0.0\n"}, "libvirtd", fail, "older than 6.5", "upgrade libvirt to 6.5"},
		{"absent", fakeRunner{}, "libvirtd", fail, "neither libvirtd nor virtqemud is installed", "apt-get install libvirt-daemon-system"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHost(t)
			h.run = tt.run
			want(t, find(t, h.check(), doctor.CheckLibvirt, tt.subject), tt.sev, tt.detail, tt.fix)
		})
	}
}

func TestHook(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	want(t, find(t, h.check(), doctor.CheckHook, doctor.HookPath), ok, "installed, executable (mode 0755)", "")
	h.must(os.Chmod(h.path(doctor.HookPath), 0o644))
	want(t, find(t, h.check(), doctor.CheckHook, doctor.HookPath), fail, "not executable (mode 0644)", "chmod 0755 "+doctor.HookPath)
	h.remove(doctor.HookPath)
	want(t, find(t, h.check(), doctor.CheckHook, doctor.HookPath), fail, "not installed", "install -D -m 0755")
	h.mkdir(doctor.HookPath)
	want(t, find(t, h.check(), doctor.CheckHook, doctor.HookPath), fail, "not a regular file", "rm -r "+doctor.HookPath)
}

func TestVflagd(t *testing.T) {
	t.Parallel()
	const sock = "/run/vflag/vflag.sock"
	h := newHost(t)
	want(t, find(t, h.check(), doctor.CheckVflagd, sock), ok, "answering; manages bond0 (active pf0); 1 VFs in use", "")
	h.vd.state.Bonds = []doctor.DaemonBond{{Name: "bond9"}}
	want(t, find(t, h.check(), doctor.CheckVflagd, sock), warn, "names bond0: it runs an older configuration", "systemctl restart vflagd")
	h.vd.err = fmt.Errorf("%w: no socket file", doctor.ErrNotRunning)
	r := h.check()
	want(t, find(t, r, doctor.CheckVflagd, sock), fail, "vflagd is not running: no socket file", "systemctl start vflagd (or: vflagd -config "+configPath+")")
	// Without vflagd, VFs in use are those with a MAC.
	want(t, find(t, r, doctor.CheckSpoofchk, "pf0"), ok, "on for the 1 VFs in use, judged by their MACs", "")
	h.vd.err = fmt.Errorf("%w: permission denied", doctor.ErrNoAccess)
	want(t, find(t, h.check(), doctor.CheckVflagd, sock), warn, "no access to vflagd: permission denied", "run vflag doctor as root")
}

func TestBond(t *testing.T) {
	t.Parallel()
	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		h := newHost(t)
		h.remove("/sys/class/net/bond0")
		r := h.check()
		want(t, find(t, r, doctor.CheckBond, "bond0"), fail, "no such netdev (configured at "+configPath+":2)",
			"ip link add bond0 type bond mode active-backup miimon 100 && ip link set pf0 down && ip link set pf0 master bond0 && ip link set pf1 down && ip link set pf1 master bond0 && ip link set bond0 up")
		// The PFs are still checked.
		find(t, r, doctor.CheckSRIOV, "pf0")
	})
	t.Run("not a bond", func(t *testing.T) {
		t.Parallel()
		h := newHost(t)
		h.remove("/sys/devices/virtual/net/bond0/bonding")
		want(t, find(t, h.check(), doctor.CheckBond, "bond0"), fail, "bond0 is not a bond", "name the bond, not one of its ports, at "+configPath+":2")
	})
	t.Run("mode", func(t *testing.T) {
		t.Parallel()
		h := newHost(t)
		h.bondAttr("mode", "balance-rr 0")
		want(t, find(t, h.check(), doctor.CheckBondMode, "bond0"), fail, "mode balance-rr", "type bond mode active-backup")
	})
	t.Run("no link monitoring", func(t *testing.T) {
		t.Parallel()
		h := newHost(t)
		h.bondAttr("miimon", "0")
		want(t, find(t, h.check(), doctor.CheckBondMonitor, "bond0"), fail, "never fails over", "ip link set bond0 type bond miimon 100")
		h.bondAttr("arp_interval", "100")
		want(t, find(t, h.check(), doctor.CheckBondMonitor, "bond0"), fail, "no arp_ip_target", "arp_ip_target")
		h.bondAttr("arp_ip_target", "198.18.0.1")
		want(t, find(t, h.check(), doctor.CheckBondMonitor, "bond0"), ok, "ARP monitor every 100 ms, targets 198.18.0.1", "")
	})
	t.Run("ports", func(t *testing.T) {
		t.Parallel()
		h := newHost(t)
		h.bondAttr("slaves", "pf0")
		want(t, find(t, h.check(), doctor.CheckBondPorts, "bond0"), fail, "pf1 is not a port of bond0 (its ports: pf0)", "ip link set pf1 down && ip link set pf1 master bond0")
		h.bondAttr("slaves", "pf0 pf1 eth3")
		want(t, find(t, h.check(), doctor.CheckBondPorts, "bond0"), warn, "eth3 not in "+configPath+":3", "ip link set eth3 nomaster")
		h.bondAttr("slaves", "pf0 pf1")
		h.bondAttr("active_slave", "")
		want(t, find(t, h.check(), doctor.CheckBondPorts, "bond0"), warn, "none active", "ip link set bond0 up")
	})
}

func TestBackend(t *testing.T) {
	t.Parallel()
	t.Run("ice configured on igb", func(t *testing.T) {
		t.Parallel()
		h := newHost(t)
		h.write(baseConfig+"    backend: ice\n", configPath)
		want(t, find(t, h.check(), doctor.CheckBackend, "bond0"), fail, "backend ice needs PFs driven by ice, but pf0 is driven by igb", "set backend: auto (or generic) at "+configPath+":5")
	})
	t.Run("generic configured", func(t *testing.T) {
		t.Parallel()
		h := newHost(t)
		h.write(baseConfig+"    backend: generic\n", configPath)
		want(t, find(t, h.check(), doctor.CheckBackend, "bond0"), ok, "generic (configured; pf0 igb, pf1 igb): software mode", "")
	})
	t.Run("mlx5 ports on two NICs", func(t *testing.T) {
		t.Parallel()
		h := newHost(t)
		h.remove("/sys/class/net/pf0")
		h.remove("/sys/class/net/pf1")
		h.pf("pf0", "0000:3b:00.0", "mlx5_core", 8, 4)
		h.pf("pf1", "0000:5e:00.1", "mlx5_core", 8, 4)
		h.nic.eswitch["0000:3b:00.0"], h.nic.eswitch["0000:5e:00.1"] = "switchdev", "legacy"
		r := h.check()
		want(t, find(t, r, doctor.CheckBackend, "bond0"), warn, "pf0 (0000:3b:00.0) and pf1 (0000:5e:00.1) are on different NICs", "name two ports of one NIC at "+configPath+":3")
		want(t, find(t, r, doctor.CheckEswitch, "pf0"), ok, "eswitch mode switchdev", "")
		want(t, find(t, r, doctor.CheckEswitch, "pf1"), warn, "mlx5's VF-LAG needs both ports in switchdev", "devlink dev eswitch set pci/0000:5e:00.1 mode switchdev")
		if has(r, doctor.CheckLLDP, "pf0") {
			t.Errorf("LLDP agent checked on mlx5")
		}
	})
}

// iceBond makes bond0's ports two ice ports of one NIC, ready for VF-LAG
// (primary in switchdev, LLDP agents off), with backend set to backend.
func iceBond(h *host, backend string) {
	h.remove("/sys/class/net/pf0")
	h.remove("/sys/class/net/pf1")
	h.pf("pf0", "0000:3b:00.0", "ice", 64, 4)
	h.pf("pf1", "0000:3b:00.1", "ice", 64, 4)
	h.nic.eswitch["0000:3b:00.0"], h.nic.eswitch["0000:3b:00.1"] = "switchdev", "legacy"
	h.nic.flags["pf0"] = map[string]bool{"fw-lldp-agent": false, "link-down-on-close": false}
	h.nic.flags["pf1"] = map[string]bool{"fw-lldp-agent": false}
	h.useVF("pf0", 0, "vm1", "52:54:00:00:00:01")
	h.write(baseConfig+"    backend: "+backend+"\n", configPath)
}

func TestICEHardwareMode(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	iceBond(h, "auto")
	r := h.check()
	want(t, find(t, r, doctor.CheckBackend, "bond0"), ok, "ice (auto; pf0 ice, pf1 ice): hardware mode", "")
	want(t, find(t, r, doctor.CheckEswitch, "pf0"), ok, "eswitch mode switchdev", "")
	want(t, find(t, r, doctor.CheckEswitch, "pf1"), ok, "eswitch mode legacy", "")
	want(t, find(t, r, doctor.CheckLLDP, "pf0"), ok, "firmware LLDP agent off", "")
	if r.ExitCode() != doctor.ExitOK {
		t.Errorf("exit %d on a ready ice host:\n%s", r.ExitCode(), render(r))
	}

	h.nic.eswitch["0000:3b:00.0"] = "legacy"
	h.nic.flags["pf1"]["fw-lldp-agent"] = true
	r = h.check()
	// auto: the hardware path is lost, the bond still works.
	want(t, find(t, r, doctor.CheckEswitch, "pf0"), warn, "eswitch mode legacy: ice's VF-LAG needs the primary port in switchdev (backend auto", "devlink dev eswitch set pci/0000:3b:00.0 mode switchdev")
	want(t, find(t, r, doctor.CheckLLDP, "pf1"), warn, "LLDP agent is on", "ethtool --set-priv-flags pf1 fw-lldp-agent off")
	if r.ExitCode() != doctor.ExitWarnings {
		t.Errorf("exit %d, want 1 (warnings)", r.ExitCode())
	}
	// Configured ice: the same is a failure.
	h.write(baseConfig+"    backend: ice\n", configPath)
	r = h.check()
	want(t, find(t, r, doctor.CheckEswitch, "pf0"), fail, "eswitch mode legacy", "mode switchdev")
	want(t, find(t, r, doctor.CheckLLDP, "pf1"), fail, "LLDP agent is on", "fw-lldp-agent off")
	if r.ExitCode() != doctor.ExitFailures {
		t.Errorf("exit %d, want 2 (failures)", r.ExitCode())
	}
	// A secondary in switchdev, an eswitch devlink cannot read.
	h.nic.eswitch["0000:3b:00.0"] = "switchdev"
	h.nic.eswitch["0000:3b:00.1"] = "switchdev"
	want(t, find(t, h.check(), doctor.CheckEswitch, "pf1"), fail, "wants only the primary port in switchdev", "pci/0000:3b:00.1 mode legacy")
	delete(h.nic.eswitch, "0000:3b:00.1")
	want(t, find(t, h.check(), doctor.CheckEswitch, "pf1"), fail, "cannot read the eswitch mode of pci/0000:3b:00.1", "")
}

func TestPF(t *testing.T) {
	t.Parallel()
	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		h := newHost(t)
		h.remove("/sys/class/net/pf1")
		want(t, find(t, h.check(), doctor.CheckPF, "pf1"), fail, "no such netdev (configured at "+configPath+":3)", "name an existing port at "+configPath+":3")
	})
	t.Run("not PCI", func(t *testing.T) {
		t.Parallel()
		h := newHost(t)
		h.remove("/sys/devices/pci0000:00/0000:01:00.1/net/pf1/device")
		want(t, find(t, h.check(), doctor.CheckPF, "pf1"), fail, "not a PCI device, so it has no VFs", "name a port of an SR-IOV NIC at "+configPath+":3")
	})
	t.Run("ethtool fails", func(t *testing.T) {
		t.Parallel()
		h := newHost(t)
		h.nic.fail = map[string]error{"pf1": errors.New("ethtool -i pf1: operation not permitted")}
		want(t, find(t, h.check(), doctor.CheckDriver, "pf1"), warn, "operation not permitted; sysfs says driver igb, 0000:01:00.1", "")
	})
	t.Run("no firmware version", func(t *testing.T) {
		t.Parallel()
		h := newHost(t)
		h.nic.info["pf0"] = doctor.DriverInfo{Driver: "igb", Version: "6.12.1", Firmware: "N/A"}
		want(t, find(t, h.check(), doctor.CheckDriver, "pf0"), ok, "igb 6.12.1, firmware none reported", "")
	})
}

func TestSRIOV(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	want(t, find(t, h.check(), doctor.CheckSRIOV, "pf0"), ok, "sriov_numvfs 4, sriov_totalvfs 7, vfs_per_pf 4", "")
	h.write("0\n", "/sys/devices/pci0000:00/0000:01:00.1/sriov_numvfs")
	r := h.check()
	want(t, find(t, r, doctor.CheckSRIOV, "pf1"), info, "vflagd creates the VFs when it starts", "or now: echo 4 > /sys/class/net/pf1/device/sriov_numvfs")
	if has(r, doctor.CheckVFs, "pf1") {
		t.Errorf("VFs of pf1 checked, but it has none")
	}
	h.write("2\n", "/sys/devices/pci0000:00/0000:01:00.1/sriov_numvfs")
	want(t, find(t, h.check(), doctor.CheckSRIOV, "pf1"), info, "sriov_numvfs 2, sriov_totalvfs 7, vfs_per_pf 4: vflagd raises sriov_numvfs", "systemctl restart vflagd")
	h.write(baseConfig[:len(baseConfig)-2]+"8\n", configPath)
	want(t, find(t, h.check(), doctor.CheckSRIOV, "pf0"), fail, "sriov_totalvfs 7, vfs_per_pf 8: the NIC offers fewer VFs than configured", "set vfs_per_pf: 7 at "+configPath+":4")
	h.remove("/sys/devices/pci0000:00/0000:01:00.0/sriov_totalvfs")
	want(t, find(t, h.check(), doctor.CheckSRIOV, "pf0"), fail, "0000:01:00.0 (igb) has no SR-IOV", "enable SR-IOV")
}

func TestVFsInUse(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	h.useVF("pf0", 2, "vm2", "52:54:00:00:00:02")
	h.useVF("pf0", 3, "vm3", "52:54:00:00:00:03")
	h.nic.vfs["pf0"][2].SpoofChk = false
	h.nic.vfs["pf0"][3].SpoofChk = false
	h.nic.vfs["pf0"][3].Trust = true
	// A VF with a MAC that vflagd did not hand out is not vflag's.
	h.nic.vfs["pf1"][1].SpoofChk = false
	h.nic.vfs["pf1"][1].MAC = []byte{2, 0, 0, 0, 0, 1}
	r := h.check()
	want(t, find(t, r, doctor.CheckSpoofchk, "pf0"), warn, "off on vfs 2, 3 (of 3 VFs in use, by vflagd)", "for vf in 2 3; do ip link set pf0 vf $vf spoofchk on; done")
	want(t, find(t, r, doctor.CheckTrust, "pf0"), warn, "on for vf 3", "ip link set pf0 vf 3 trust off")
	want(t, find(t, r, doctor.CheckVFs, "pf1"), info, "no VF in use", "")
	// Trust the VM asked for is fine.
	h.vd.state.InUse[2].Trust = true
	want(t, find(t, h.check(), doctor.CheckTrust, "pf0"), ok, "on for vf 3 as its VM asked", "")
	// Without vflagd, a MAC means in use.
	h.vd.err = fmt.Errorf("%w: no socket file", doctor.ErrNotRunning)
	want(t, find(t, h.check(), doctor.CheckSpoofchk, "pf1"), warn, "off on vf 1 (of 1 VFs in use, judged by their MACs", "ip link set pf1 vf 1 spoofchk on")
	h.nic.fail = map[string]error{"pf1": errors.New("rtnetlink: no such device")}
	want(t, find(t, h.check(), doctor.CheckVFs, "pf1"), warn, "cannot list the VFs", "")
}

func TestRDMA(t *testing.T) {
	t.Parallel()
	soft := func(t *testing.T) *host {
		h := newHost(t)
		h.write(baseConfig+"    rdma: soft\n", configPath)
		h.loaded("rdma_rxe")
		return h
	}
	t.Run("soft, healthy", func(t *testing.T) {
		t.Parallel()
		h := soft(t)
		h.bridge("br0", "bond0")
		h.rxe("rxe_bond0", "br0", "4: ACTIVE", "198.18.0.11", "fd00::11")
		want(t, find(t, h.check(), doctor.CheckRDMA, "bond0"), ok,
			"soft: rxe_bond0 port 1 ACTIVE on br0, GIDs 1 198.18.0.11 (RoCE v2), 2 fd00::11 (RoCE v2)", "")
	})
	t.Run("soft, no address, no device", func(t *testing.T) {
		t.Parallel()
		h := soft(t)
		r := h.check()
		var got []string
		for _, f := range r.Findings() {
			if f.Check == doctor.CheckRDMA {
				if f.Severity != fail {
					t.Errorf("%s: want fail", f)
				}
				got = append(got, f.Detail+" | "+f.Fix)
			}
		}
		all := strings.Join(got, "\n")
		for _, s := range []string{"no IP address on the bond", "ip addr add ADDR/LEN dev bond0", "no Soft-RoCE device on bond0", "rdma link add rxe_bond0 type rxe netdev bond0"} {
			if !strings.Contains(all, s) {
				t.Errorf("RDMA findings do not say %q:\n%s", s, all)
			}
		}
	})
	t.Run("soft, port down", func(t *testing.T) {
		t.Parallel()
		h := soft(t)
		h.rxe("rxe_bond0", "bond0", "1: DOWN", "198.18.0.11")
		r := h.check()
		var sevs []string
		for _, f := range r.Findings() {
			if f.Check == doctor.CheckRDMA {
				sevs = append(sevs, f.Severity.String()+" "+f.Detail)
			}
		}
		all := strings.Join(sevs, "\n")
		if !strings.Contains(all, "info soft: rxe_bond0 port 1 DOWN on bond0, GIDs 1 198.18.0.11 (RoCE v2)") || !strings.Contains(all, "fail soft: rdma port not active") {
			t.Errorf("RDMA findings:\n%s", all)
		}
	})
	t.Run("off, leftover", func(t *testing.T) {
		t.Parallel()
		h := newHost(t)
		h.rxe("rxe_bond0", "bond0", "4: ACTIVE")
		want(t, find(t, h.check(), doctor.CheckRDMA, "bond0"), warn, "rxe_bond0 still exists with RDMA off", "rdma link delete rxe_bond0")
	})
	t.Run("off, nothing", func(t *testing.T) {
		t.Parallel()
		if r := newHost(t).check(); has(r, doctor.CheckRDMA, "bond0") {
			t.Errorf("RDMA reported with rdma off and no device:\n%s", render(r))
		}
	})
}

func TestPreflight(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	want(t, find(t, h.check(), doctor.CheckPreflight, "bond0"), info, "no NIC backend plugin wired", "")
	var asked []string
	h.preflight = doctor.PreflightFunc(func(_ context.Context, backend string, spec plugin.BondSpec) ([]plugin.Finding, error) {
		asked = append(asked, fmt.Sprintf("%s %s %v %d %s", backend, spec.Bond, spec.Ports, spec.VFsPerPF, spec.Mode))
		return []plugin.Finding{{Check: "ddp-package", Subject: "pf0", Severity: plugin.SeverityWarn, Detail: "ice-lag DDP not loaded", Fix: "install ice-lag.pkg"}}, nil
	})
	r := h.check()
	want(t, find(t, r, "ddp-package", "pf0"), warn, "ice-lag DDP not loaded", "install ice-lag.pkg")
	if has(r, doctor.CheckPreflight, "bond0") {
		t.Errorf("preflight info despite a Preflighter")
	}
	if got := strings.Join(asked, "; "); got != "generic bond0 [pf0 pf1] 4 software" {
		t.Errorf("Preflight asked %q", got)
	}
	h.preflight = doctor.PreflightFunc(func(context.Context, string, plugin.BondSpec) ([]plugin.Finding, error) {
		return nil, errors.New("plugin exited")
	})
	want(t, find(t, h.check(), doctor.CheckPreflight, "bond0"), fail, "the generic backend's preflight failed: plugin exited", "")
}
