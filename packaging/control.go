package packaging

import (
	"debug/elf"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Control is the package's DEBIAN/control.
type Control struct {
	// Version is the Debian version.
	Version string
	// Arch is the Debian architecture (amd64, arm64).
	Arch string
	// Maintainer is "name <address>".
	Maintainer string
	// InstalledSize is the installed size in KiB.
	InstalledSize int64
	// Depends are the binaries' run-time dependencies (Inspect).
	Depends []string
}

// String renders the control file (deb-control(5)).
func (c Control) String() string {
	var b strings.Builder
	field := func(name, value string) {
		if value != "" {
			fmt.Fprintf(&b, "%s: %s\n", name, value)
		}
	}
	field("Package", Name)
	field("Version", c.Version)
	field("Architecture", c.Arch)
	field("Maintainer", c.Maintainer)
	field("Installed-Size", strconv.FormatInt(c.InstalledSize, 10))
	field("Depends", strings.Join(c.Depends, ", "))
	// vflagd loads libvirt.so.0 (libvirt0) at run time: a host without
	// libvirt can still run vflagd with libvirt turned off.
	recommends := []string{"libvirt-daemon-system", "libvirt0"}
	if q := qemuPackage[c.Arch]; q != "" {
		recommends = append(recommends, q)
	}
	field("Recommends", strings.Join(recommends, ", "))
	// The RDMA tools (rdma, ibv_devices) to look at what rdma: soft and
	// rdma: hw set up.
	field("Suggests", "rdma-core")
	field("Section", "admin")
	field("Priority", "optional")
	field("Homepage", "https://github.com/vflag/vflag")
	b.WriteString(`Description: keep VMs with SR-IOV VFs reachable when a bonded port fails
 vflag is a libvirt/QEMU hypervisor plugin for hosts whose VMs use SR-IOV
 virtual functions (VFs) of a NIC pair bonded active-backup. When one port
 loses its link, vflagd re-homes the VMs' VFs to the surviving port (or
 verifies the NIC's VF-LAG does), announces the VMs' addresses to the
 switches, and keeps the host's RDMA on the bond.
 .
 The package installs vflagd (with a systemd unit), the vflag CLI, the NIC
 backends (generic, ice, mlx5) and the libvirt hook
 /etc/libvirt/hooks/qemu.d/vflag. vflagd starts once /etc/vflag/vflag.yaml
 exists; /etc/vflag/vflag.yaml.example shows every key.
`)
	return b.String()
}

// qemuPackage is the QEMU system emulator package of each architecture.
var qemuPackage = map[string]string{
	"amd64": "qemu-system-x86",
	"i386":  "qemu-system-x86",
	"arm64": "qemu-system-arm",
}

// debianArch maps an ELF machine to its Debian architecture.
var debianArch = map[elf.Machine]string{
	elf.EM_X86_64:  "amd64",
	elf.EM_386:     "i386",
	elf.EM_AARCH64: "arm64",
	elf.EM_PPC64:   "ppc64el",
	elf.EM_S390:    "s390x",
	elf.EM_RISCV:   "riscv64",
}

// libc6 are the shared libraries of Debian's libc6 package.
var libc6 = []string{
	"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libresolv.so.2",
	"ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1", "ld-linux.so.2",
}

// Deps is what the binaries need of the system they are installed on.
type Deps struct {
	// Arch is their Debian architecture.
	Arch string
	// Depends are the packages their shared libraries come from, with the
	// lowest version that has every symbol version they use, e.g.
	// "libc6 (>= 2.34)"; none for statically linked binaries.
	Depends []string
}

// Inspect reads the binaries' ELF headers: all must be of one
// architecture, and link no shared library but libc6's (vflagd loads
// libvirt.so.0 with dlopen, which ELF headers do not show).
func Inspect(paths []string) (Deps, error) {
	var d Deps
	var glibc []int // highest GLIBC_x.y symbol version seen
	for _, p := range paths {
		f, err := elf.Open(p)
		if err != nil {
			return Deps{}, fmt.Errorf("binary %s (run make build): %w", p, err)
		}
		arch, libs, syms, err := elfInfo(f)
		_ = f.Close()
		if err != nil {
			return Deps{}, fmt.Errorf("binary %s: %w", p, err)
		}
		switch {
		case arch == "":
			return Deps{}, fmt.Errorf("binary %s: ELF machine %s has no Debian architecture here", p, f.Machine)
		case d.Arch == "":
			d.Arch = arch
		case d.Arch != arch:
			return Deps{}, fmt.Errorf("binary %s is for %s, the others for %s", p, arch, d.Arch)
		}
		for _, lib := range libs {
			if !slices.Contains(libc6, lib) {
				return Deps{}, fmt.Errorf("binary %s links %s: add the package that provides it to packaging.Inspect", p, lib)
			}
		}
		for _, s := range syms {
			v, ok := glibcVersion(s.Version)
			if ok && slices.Compare(v, glibc) > 0 {
				glibc = v
			}
		}
	}
	if glibc != nil {
		parts := make([]string, len(glibc))
		for i, n := range glibc {
			parts[i] = strconv.Itoa(n)
		}
		d.Depends = append(d.Depends, "libc6 (>= "+strings.Join(parts, ".")+")")
	}
	return d, nil
}

// elfInfo returns the binary's Debian architecture ("" when unknown),
// the shared libraries it links and the symbols it imports from them.
func elfInfo(f *elf.File) (arch string, libs []string, syms []elf.ImportedSymbol, err error) {
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", nil, nil, fmt.Errorf("ELF type %s, not an executable", f.Type)
	}
	arch = debianArch[f.Machine]
	if f.Machine == elf.EM_PPC64 && f.ByteOrder.String() != "LittleEndian" {
		arch = "" // ppc64 big endian is not ppc64el
	}
	libs, err = f.ImportedLibraries()
	if err != nil {
		return "", nil, nil, err
	}
	if len(libs) == 0 {
		return arch, nil, nil, nil // static
	}
	syms, err = f.ImportedSymbols()
	if err != nil {
		return "", nil, nil, err
	}
	return arch, libs, syms, nil
}

// glibcVersion parses a symbol version such as GLIBC_2.34.
func glibcVersion(s string) ([]int, bool) {
	rest, ok := strings.CutPrefix(s, "GLIBC_")
	if !ok {
		return nil, false
	}
	var v []int
	for part := range strings.SplitSeq(rest, ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			return nil, false
		}
		v = append(v, n)
	}
	return v, true
}
