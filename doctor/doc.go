// Package doctor checks, without changing anything, every precondition of
// the mode vflagd's configuration asks for on this host, and says for each
// what it saw and the one line that puts it right. It backs `vflag doctor`.
//
// It reads the configuration (vfmgr/config: present, valid, every error at
// its file:line) and then the host:
//
//   - host-wide: the kernel's version (ice VF-LAG needs 6.6), the modules
//     the modes need (rdma_rxe for rdma: soft; vfio-pci), the IOMMU (sysfs,
//     and the kernel command line for the fix), libvirt (libvirtd or
//     virtqemud and its version, run with --version, never connected to),
//     vflag's qemu hook in /etc/libvirt/hooks/qemu.d and vflagd's socket;
//   - per bond: it exists, is active-backup, monitors its links (miimon or
//     ARP), has exactly the configured PFs as ports; the NIC backend the
//     configuration resolves to and the mode (software or hardware) that
//     follows; RDMA in the bond's mode (rdmamgr: device, port state, GIDs);
//   - per PF: driver, driver version and firmware (ethtool -i), SR-IOV
//     (sriov_totalvfs and sriov_numvfs against vfs_per_pf), the devlink
//     eswitch mode and ice's firmware LLDP agent where the hardware mode
//     needs them, and spoofchk on / trust off on the VFs in use.
//
// Backend-specific findings come from the NIC backends' Preflight through
// the Preflighter the caller supplies; without one every host check still
// runs.
//
// Every read goes through a seam: files under Doctor.Root (/sys, /proc,
// /etc, /lib/modules, laid out as on a host, so unit tests run over fixture
// trees), NIC (ethtool, devlink, rtnetlink VF settings), Runner (programs'
// --version), Vflagd (the API) and an rdmamgr.LinkAPI. System returns a
// Doctor on the real host.
//
// A Report groups the findings (config, host, one section per bond),
// renders them as an aligned table with the fixes or as JSON, and gives the
// exit status for automation: 0 when nothing is worse than info, 1 with
// warnings, 2 with failures.
package doctor
