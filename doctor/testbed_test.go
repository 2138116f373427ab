package doctor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vflag/vflag/doctor"
	"github.com/vflag/vflag/testenv"
	"github.com/vflag/vflag/testenv/scenario"
)

// TestDoctorInTestbed runs `vflag doctor` in a KVM-host VM (Debian 6.12,
// bond0 active-backup miimon 20 over the igb PFs pf0/pf1 with 7 VFs each,
// vflagd running, one VF handed out) and checks that it tells the truth
// about the real kernel: the bond, the generic backend for igb, SR-IOV and
// the VF in use are in order; the guest has no IOMMU, no vfio-pci, no
// libvirt and no hook, each named with its fix; a VF whose spoofchk and
// trust are changed by hand is caught, and the printed fixes put it right;
// a Soft-RoCE device on the bond is shown with its port state and GIDs.
func TestDoctorInTestbed(t *testing.T) {
	tb := testenv.ForTest(t, testenv.HostSpec{Name: "kvm1"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run := func(cmd string) string {
		t.Helper()
		out, err := tb.MustExec(ctx, "kvm1", cmd)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// diagnose runs vflag doctor with args and returns its report and exit
	// status.
	diagnose := func(args string) (doctor.JSON, int) {
		t.Helper()
		res, err := tb.Exec(ctx, "kvm1", "vflag doctor --json "+args)
		if err != nil {
			t.Fatal(err)
		}
		var rep doctor.JSON
		if err := json.Unmarshal(res.Stdout, &rep); err != nil {
			t.Fatalf("vflag doctor --json %s: %v\nstdout: %s\nstderr: %s", args, err, res.Stdout, res.Stderr)
		}
		return rep, res.ExitCode
	}

	run(scenario.StartVflagdScript(7, "", ""))
	var att struct {
		Iface struct {
			PF string `json:"pf"`
			VF int    `json:"vf"`
		} `json:"iface"`
	}
	if err := json.Unmarshal([]byte(run("vflag --json attach vm1 --mac 52:54:00:d0:00:01")), &att); err != nil || att.Iface.PF == "" {
		t.Fatalf("vflag attach: %v %+v", err, att)
	}
	pf, vf := att.Iface.PF, att.Iface.VF
	t.Logf("vflag doctor in kvm1:\n%s", run("vflag doctor 2>&1; echo exit status $?"))

	rep, code := diagnose("")
	if code != doctor.ExitFailures || rep.Summary.Exit != doctor.ExitFailures {
		t.Errorf("exit status %d (summary %d), want 2: the guest has no IOMMU", code, rep.Summary.Exit)
	}
	check := func(rep doctor.JSON, c, subject, sev string, says ...string) {
		t.Helper()
		for _, f := range rep.Findings {
			if f.Check != c || f.Subject != subject {
				continue
			}
			if f.Severity != sev {
				t.Errorf("%s %s: %s %q (fix %q), want %s", c, subject, f.Severity, f.Detail, f.Fix, sev)
			}
			for _, s := range says {
				if !strings.Contains(f.Detail+" fix: "+f.Fix, s) {
					t.Errorf("%s %s: %q (fix %q) does not say %q", c, subject, f.Detail, f.Fix, s)
				}
			}
			return
		}
		t.Errorf("no %s finding on %q", c, subject)
	}
	check(rep, doctor.CheckConfig, "/etc/vflag/vflag.yaml", "ok", "bond0 over pf0+pf1 with 7 VFs each")
	check(rep, doctor.CheckKernel, "", "ok", "6.12.")
	// The generic backend's own Preflight, run as a plugin process from
	// /usr/lib/vflag/backends by `vflag doctor`.
	check(rep, "total-vfs", "pf0", "ok")
	check(rep, "carrier", "pf1", "ok", "pf1 has carrier")
	check(rep, doctor.CheckIOMMU, "", "fail", "no IOMMU active", "fix: ", "iommu=")
	check(rep, doctor.CheckModule, "vfio-pci", "fail", "not loaded", "CONFIG_VFIO_PCI")
	if res, _ := tb.Exec(ctx, "kvm1", "command -v libvirtd virtqemud || ls /usr/sbin/libvirtd /usr/sbin/virtqemud"); res.ExitCode != 0 {
		check(rep, doctor.CheckLibvirt, "libvirtd", "fail", "neither libvirtd nor virtqemud is installed", "apt-get install libvirt-daemon-system")
	}
	check(rep, doctor.CheckHook, doctor.HookPath, "fail", "not installed")
	check(rep, doctor.CheckVflagd, "/run/vflag/vflag.sock", "ok", "manages bond0 (active "+pf+"); 1 VFs in use")
	check(rep, doctor.CheckBackend, "bond0", "ok", "generic (auto; pf0 igb, pf1 igb): software mode")
	check(rep, doctor.CheckBondMode, "bond0", "ok", "active-backup")
	check(rep, doctor.CheckBondMonitor, "bond0", "ok", "miimon 20 ms")
	check(rep, doctor.CheckBondPorts, "bond0", "ok", "ports pf0, pf1, active "+pf)
	check(rep, doctor.CheckDriver, "pf0", "ok", "igb ")
	check(rep, doctor.CheckDriver, "pf1", "ok", "igb ")
	check(rep, doctor.CheckSRIOV, "pf0", "ok", "sriov_numvfs 7, sriov_totalvfs 7, vfs_per_pf 7")
	check(rep, doctor.CheckSpoofchk, pf, "ok", "on for the 1 VFs in use, by vflagd")
	check(rep, doctor.CheckTrust, pf, "ok", "off for the 1 VFs in use")
	for _, f := range rep.Findings {
		if f.Check == doctor.CheckEswitch || f.Check == doctor.CheckLLDP {
			t.Errorf("%s checked for igb in software mode: %+v", f.Check, f)
		}
	}

	// Spoofing allowed and trust given behind vflagd's back: caught, and
	// the printed fixes put it right.
	run(fmt.Sprintf("ip link set %[1]s vf %[2]d spoofchk off && ip link set %[1]s vf %[2]d trust on", pf, vf))
	rep, _ = diagnose("")
	check(rep, doctor.CheckSpoofchk, pf, "warn", fmt.Sprintf("off on vf %d", vf), fmt.Sprintf("ip link set %s vf %d spoofchk on", pf, vf))
	check(rep, doctor.CheckTrust, pf, "warn", fmt.Sprintf("on for vf %d", vf), fmt.Sprintf("ip link set %s vf %d trust off", pf, vf))
	for _, f := range rep.Findings {
		if f.Check == doctor.CheckSpoofchk || f.Check == doctor.CheckTrust {
			run(f.Fix)
		}
	}
	rep, _ = diagnose("")
	check(rep, doctor.CheckSpoofchk, pf, "ok")
	check(rep, doctor.CheckTrust, pf, "ok")

	// rdma: soft: the module is there; a Soft-RoCE device on the bond is
	// shown with its port state and the GID of the bond's address.
	addr, err := tb.HostAddr("kvm1")
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr(addr).As4()
	run(fmt.Sprintf(`printf 'bonds:\n  - {name: bond0, pfs: [pf0, pf1], vfs_per_pf: 7, rdma: soft}\n' > /tmp/soft.yaml
rdma link add rxe0 type rxe netdev bond0
i=0; until grep -qs ffff:%02x%02x:%02x%02x /sys/class/infiniband/rxe0/ports/1/gids/*; do i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.05; done`,
		ip[0], ip[1], ip[2], ip[3]))
	t.Cleanup(func() { _, _ = tb.Exec(context.Background(), "kvm1", "rdma link delete rxe0") })
	rep, _ = diagnose("--config /tmp/soft.yaml")
	check(rep, doctor.CheckModule, "rdma_rxe", "ok", "loaded: Soft-RoCE for rdma: soft on bond0")
	found := false
	for _, f := range rep.Findings {
		if f.Check == doctor.CheckRDMA {
			t.Logf("%s %s %s: %s (fix: %s)", f.Severity, f.Check, f.Subject, f.Detail, f.Fix)
		}
		if f.Check == doctor.CheckRDMA && strings.Contains(f.Detail, "rxe0 port 1 ACTIVE on bond0") {
			found = true
			if !strings.Contains(f.Detail, addr+" (RoCE v2)") {
				t.Errorf("rdma: %q does not show the GID of %s", f.Detail, addr)
			}
		}
	}
	if !found {
		t.Errorf("no rdma finding shows rxe0 ACTIVE on bond0:\n%+v", rep.Findings)
	}
}
