package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
)

// AgentPath is where the in-guest agent lives inside the initramfs.
const AgentPath = "/usr/bin/vflag-guest"

// AgentPortName is the virtio-serial port name the agent serves on.
const AgentPortName = "vflag.agent"

// Module is a kernel module to put in the image and load at boot.
type Module struct {
	// Name is the module name as modules.dep knows it ("bonding").
	Name string
	// Params are module parameters ("max_bonds=0").
	Params string
}

// File is a host file copied into the image.
type File struct {
	// Guest is the absolute path inside the guest.
	Guest string
	// Host is the path of the source on the host.
	Host string
	// WithLibs also copies the shared libraries the file links (per ldd).
	WithLibs bool
}

// Initramfs describes an initramfs for a testbed host.
type Initramfs struct {
	// Kernel provides the modules.
	Kernel Kernel
	// Modules are loaded at boot in this order, each after its dependencies.
	Modules []Module
	// Busybox is the host path of a static busybox ("/bin/busybox" from
	// busybox-static); every applet gets a link.
	Busybox string
	// Agent is the host path of the statically linked vflag-guest binary.
	Agent string
	// Files are further host files to copy (iproute2, project binaries).
	Files []File
	// Start are shell commands the guest runs once its file systems are
	// up, before the agent starts ("libvirtd -d"). A failing command is
	// reported on the console and does not stop the boot.
	Start []string
	// Root, when set, makes the initramfs a first stage that hands over
	// to a root file system on a disk (the libvirt flavour); nil keeps the
	// whole guest in the initramfs.
	Root *RootDisk
}

// RootDisk is the disk an initramfs hands over to. Its /init loads the
// modules, mounts Device, copies into it what the initramfs brings (the
// modules and their indices under /lib/modules, the agent, every File
// without its libraries, /etc/vflag/, and busybox as
// /usr/lib/vflag/busybox) and switches root to it, where busybox init runs
// Start, the agent and a console as without Root. A failure powers the
// guest off with a message on the console.
type RootDisk struct {
	// Device is the block device holding the root file system ("/dev/vda").
	Device string
	// FSType is its file system type ("ext4"); its module must be in Modules.
	FSType string
}

// DefaultModules are what a KVM-host VM of the testbed loads at boot: the
// NIC's PF and VF drivers, bonding, VLANs, bridges and veths for scenario
// plumbing. RDMA modules are included too, for rdmamgr.
func DefaultModules() []Module {
	return []Module{
		{Name: "igb"},
		{Name: "igbvf"},
		{Name: "bonding", Params: "max_bonds=0"},
		{Name: "8021q"},
		{Name: "bridge"},
		{Name: "veth"},
		{Name: "rdma_rxe"},
		// rxe computes its ICRC with the crypto API's crc32, which it would
		// otherwise request_module (the guest has no modprobe).
		{Name: "crc32_generic"},
		// The RDMA connection manager's user API (/dev/infiniband/rdma_cm), for rping.
		{Name: "rdma_ucm"},
	}
}

// LibvirtHostModules are what a KVM-host VM of the libvirt flavour loads:
// DefaultModules, its root disk (virtio_blk, ext4), VFIO to pass VFs to
// nested guests (through QEMU's emulated intel-iommu), and tun, macvtap and
// vhost_net for their virtio NICs.
func LibvirtHostModules() []Module {
	return append(DefaultModules(),
		Module{Name: "virtio_blk"},
		// ext4 asks the crypto API for crc32c, which it would otherwise
		// request_module (no modprobe before the root disk is up).
		Module{Name: "crc32c_generic"},
		Module{Name: "ext4"},
		Module{Name: "vfio_pci"},
		Module{Name: "vfio_iommu_type1"},
		Module{Name: "tun"},
		Module{Name: "macvtap"},
		Module{Name: "vhost_net"},
	)
}

// NestedGuestModules are what a nested (L2) guest loads: igbvf for a VF
// passed through to it, virtio_net (which brings net_failover) for a
// standby virtio NIC, and the ACPI power button with evdev, so that busybox
// acpid powers the guest off on an ACPI shutdown request (virsh shutdown).
func NestedGuestModules() []Module {
	return []Module{{Name: "igbvf"}, {Name: "virtio_net"}, {Name: "button"}, {Name: "evdev"}}
}

// NestedGuestStart makes busybox acpid power a nested guest off on the
// ACPI power button (/etc/acpi/PWRF/00000080 is the action busybox's
// acpid runs for it).
func NestedGuestStart() []string {
	return []string{
		`mkdir -p /etc/acpi/PWRF && printf '#!/bin/sh\npoweroff\n' > /etc/acpi/PWRF/00000080 && chmod 755 /etc/acpi/PWRF/00000080`,
		// Its default log, /var/log/acpid.log, has no directory here.
		`acpid -l /run/acpid.log`,
	}
}

// DefaultFiles are the host tools a testbed guest gets besides busybox:
// iproute2, because busybox's ip knows neither netns nor VF settings, and
// dash as /bin/sh, because Debian's busybox shell runs its own applets
// before looking at PATH (so `ip` in a busybox script is always busybox ip).
func DefaultFiles() []File {
	return []File{
		{Guest: "/bin/sh", Host: "/bin/dash", WithLibs: true},
		{Guest: "/usr/sbin/ip", Host: "/usr/sbin/ip", WithLibs: true},
		{Guest: "/usr/sbin/bridge", Host: "/usr/sbin/bridge", WithLibs: true},
		// RDMA: iproute2's rdma, rdma-core's rping and ibv_devices, and the
		// Soft-RoCE provider libibverbs loads by its driver file.
		{Guest: "/usr/sbin/rdma", Host: "/usr/bin/rdma", WithLibs: true},
		{Guest: "/usr/bin/rping", Host: "/usr/bin/rping", WithLibs: true},
		{Guest: "/usr/bin/ibv_devices", Host: "/usr/bin/ibv_devices", WithLibs: true},
		{Guest: "/usr/bin/ibv_rc_pingpong", Host: "/usr/bin/ibv_rc_pingpong", WithLibs: true},
		{Guest: "/usr/lib/x86_64-linux-gnu/libibverbs/librxe-rdmav34.so", Host: "/usr/lib/x86_64-linux-gnu/libibverbs/librxe-rdmav34.so", WithLibs: true},
		{Guest: "/etc/libibverbs.d/rxe.driver", Host: "/etc/libibverbs.d/rxe.driver"},
		// glibc dlopens it for pthread_exit/cancellation (rping's threads).
		{Guest: "/lib/x86_64-linux-gnu/libgcc_s.so.1", Host: "/lib/x86_64-linux-gnu/libgcc_s.so.1"},
	}
}

// Build returns the path of the initramfs for spec under cacheDir, building
// it when no archive with the same inputs exists yet.
func (spec Initramfs) Build(ctx context.Context, cacheDir string, log *slog.Logger) (string, error) {
	recs, err := spec.records(ctx)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, r := range recs {
		fmt.Fprintf(h, "%s %o %d\n", r.Name, r.Mode, r.FileSize)
		if r.ReaderAt != nil {
			if _, err := io.Copy(h, io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize))); err != nil {
				return "", fmt.Errorf("hash %s: %w", r.Name, err)
			}
		}
	}
	sum := hex.EncodeToString(h.Sum(nil))[:16]
	out := filepath.Join(cacheDir, "initramfs", "initramfs-"+sum+".cpio")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	log.Info("building initramfs", "path", out, "files", len(recs))
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", filepath.Dir(out), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".initramfs-*")
	if err != nil {
		return "", fmt.Errorf("create initramfs: %w", err)
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriterSize(tmp, 1<<20)
	w := cpio.NewDedupWriter(cpio.Newc.Writer(bw))
	if err := cpio.WriteRecordsAndDirs(w, recs); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write initramfs %s: %w", out, err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write initramfs %s: %w", out, err)
	}
	if err := bw.Flush(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write initramfs %s: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("write initramfs %s: %w", out, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", fmt.Errorf("publish initramfs %s: %w", out, err)
	}
	return out, nil
}

// records lists everything in the archive, sorted by path.
func (spec Initramfs) records(ctx context.Context) ([]cpio.Record, error) {
	files := map[string]cpio.Record{}
	add := func(r cpio.Record) { files[strings.TrimPrefix(r.Name, "/")] = r }
	addHost := func(guest, host string) error {
		b, err := os.ReadFile(host)
		if err != nil {
			return fmt.Errorf("initramfs file %s: %w", guest, err)
		}
		st, err := os.Stat(host)
		if err != nil {
			return fmt.Errorf("initramfs file %s: %w", guest, err)
		}
		add(cpio.StaticRecord(b, cpio.Info{Name: strings.TrimPrefix(guest, "/"), Mode: cpio.S_IFREG | uint64(st.Mode().Perm())}))
		return nil
	}

	// Busybox and its applets, except names another file provides.
	if err := addHost("/bin/busybox", spec.Busybox); err != nil {
		return nil, fmt.Errorf("%w (install busybox-static)", err)
	}
	provided := map[string]bool{}
	for _, f := range spec.Files {
		provided[path.Base(f.Guest)] = true
	}
	applets, err := exec.CommandContext(ctx, spec.Busybox, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("list busybox applets of %s: %w", spec.Busybox, err)
	}
	for _, a := range strings.Fields(string(applets)) {
		if provided[path.Base(a)] || a == "bin/busybox" {
			continue
		}
		add(cpio.Symlink(a, "/bin/busybox"))
	}
	if spec.Root == nil {
		add(cpio.Symlink("init", "/bin/busybox"))
	}

	// The agent, extra files and their libraries.
	if err := addHost(AgentPath, spec.Agent); err != nil {
		return nil, fmt.Errorf("%w (build it with `make bin/vflag-guest`)", err)
	}
	for _, f := range spec.Files {
		if err := addHost(f.Guest, f.Host); err != nil {
			return nil, err
		}
		if !f.WithLibs {
			continue
		}
		libs, err := sharedLibs(ctx, f.Host)
		if err != nil {
			return nil, err
		}
		for _, l := range libs {
			if err := addHost(l, l); err != nil {
				return nil, err
			}
		}
	}

	// Kernel modules and the list the agent loads at boot.
	deps, err := spec.Kernel.ModuleDeps()
	if err != nil {
		return nil, err
	}
	var list strings.Builder
	params := map[string]string{}
	var names []string
	for _, m := range spec.Modules {
		params[strings.ReplaceAll(m.Name, "-", "_")] = m.Params
		names = append(names, m.Name)
	}
	order, err := deps.LoadOrder(names...)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", spec.Kernel.Version, err)
	}
	modRoot := path.Join("/lib/modules", spec.Kernel.Version)
	for _, f := range order {
		guest := path.Join(modRoot, f)
		if err := addHost(guest, filepath.Join(spec.Kernel.ModulesDir(), f)); err != nil {
			return nil, err
		}
		fmt.Fprintf(&list, "%s %s\n", guest, params[ModuleName(f)])
	}
	add(cpio.StaticFile("etc/vflag/modules", list.String(), 0o644))
	if spec.Root != nil {
		// The root disk's tools read the module indices: libvirt looks up
		// VFIO variant drivers in modules.alias, modprobe the .bin files.
		idx, _ := filepath.Glob(filepath.Join(spec.Kernel.ModulesDir(), "modules.*"))
		for _, f := range idx {
			if err := addHost(path.Join(modRoot, filepath.Base(f)), f); err != nil {
				return nil, err
			}
		}
	}

	// Boot: busybox init runs rcS, then keeps the agent and a console shell
	// alive; with a root disk, /init first switches to it.
	if spec.Root == nil {
		add(cpio.StaticFile("etc/inittab", inittab, 0o644))
		add(cpio.StaticFile("etc/init.d/rcS", rcS+startCommands(spec.Start), 0o755))
	} else {
		add(cpio.StaticFile("init", stage1(*spec.Root, append([]string{AgentPath}, guestPaths(spec.Files)...)), 0o755))
		add(cpio.StaticFile("etc/vflag/inittab", stage2Inittab, 0o644))
		add(cpio.StaticFile("etc/vflag/rcS", stage2RcS+startCommands(spec.Start), 0o755))
		add(cpio.Directory("newroot", 0o755))
	}
	add(cpio.StaticFile("etc/profile", profile, 0o644))
	add(cpio.StaticFile("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644))
	add(cpio.StaticFile("etc/group", "root:x:0:\n", 0o644))
	add(cpio.CharDev("dev/console", 0o600, 5, 1))
	add(cpio.CharDev("dev/null", 0o666, 1, 3))
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "root", "mnt"} {
		add(cpio.Directory(d, 0o755))
	}
	add(cpio.Symlink("var/run", "/run"))

	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	recs := make([]cpio.Record, 0, len(keys))
	for _, k := range keys {
		r := files[k]
		r.Name = k
		recs = append(recs, cpio.MakeReproducible(r))
	}
	// Directories must precede their contents; WriteRecordsAndDirs creates
	// parents, so drop explicit directories that a deeper path already implies.
	return dropImpliedDirs(recs), nil
}

func dropImpliedDirs(recs []cpio.Record) []cpio.Record {
	parents := map[string]bool{}
	for _, r := range recs {
		for d := path.Dir(r.Name); d != "." && d != "/"; d = path.Dir(d) {
			parents[d] = true
		}
	}
	out := recs[:0]
	for _, r := range recs {
		if r.Mode&cpio.S_IFMT == cpio.S_IFDIR && parents[r.Name] {
			continue
		}
		out = append(out, r)
	}
	return out
}

var lddLine = regexp.MustCompile(`(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)`)

// sharedLibs lists the shared libraries (and the dynamic loader) a host
// binary needs, as ldd resolves them.
func sharedLibs(ctx context.Context, bin string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", bin, err)
	}
	return parseLdd(out), nil
}

// parseLdd extracts absolute library paths from ldd output.
func parseLdd(out []byte) []string {
	var libs []string
	for _, line := range bytes.Split(out, []byte("\n")) {
		if m := lddLine.FindSubmatch(line); m != nil {
			libs = append(libs, string(m[1]))
		}
	}
	return libs
}

const inittab = `::sysinit:/etc/init.d/rcS
::respawn:/usr/bin/vflag-guest serve
ttyS0::respawn:-/bin/sh
::shutdown:/bin/umount -a -r
`

// rcS mounts the pseudo file systems, loads the modules and names the host
// after the vflag.hostname= kernel argument.
const rcS = `#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /run/netns
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/netns
for arg in $(cat /proc/cmdline); do
	case "$arg" in vflag.hostname=*) hostname "${arg#vflag.hostname=}" ;; esac
done
/usr/bin/vflag-guest load-modules /etc/vflag/modules
ip link set lo up
echo "vflag: userspace ready on $(hostname), uptime $(cut -d' ' -f1 /proc/uptime)s"
`

const profile = `export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PS1='$(hostname):\w# '
`

// guestPaths lists where files go in the guest.
func guestPaths(files []File) []string {
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.Guest
	}
	return paths
}

// stage1 is /init of an initramfs that hands over to root, carrying the
// files at paths along: see RootDisk.
func stage1(root RootDisk, paths []string) string {
	var carry strings.Builder
	for _, p := range paths {
		fmt.Fprintf(&carry, "carry %s\n", p)
	}
	return fmt.Sprintf(`#!/bin/busybox sh
fail() {
	echo "vflag: $*; powering off" >&2
	poweroff -f
}
carry() {
	mkdir -p "/newroot${1%%/*}" && cp -a "$1" "/newroot$1" && chmod go-w,a+r "/newroot$1" ||
		fail "cannot copy $1 to the root disk %[1]s"
}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
/usr/bin/vflag-guest load-modules /etc/vflag/modules || fail "loading kernel modules failed"
i=0
until [ -b %[1]s ]; do
	i=$((i+1))
	[ $i -lt 300 ] || fail "no root disk %[1]s"
	sleep 0.1
done
mount -t %[2]s %[1]s /newroot || fail "cannot mount root disk %[1]s"
mkdir -p /newroot/lib/modules /newroot/usr/lib/vflag /newroot/etc/vflag
cp -a /lib/modules/. /newroot/lib/modules/ &&
	cp /bin/busybox /newroot/usr/lib/vflag/busybox &&
	cp -a /etc/vflag/. /newroot/etc/vflag/ &&
	cp /etc/vflag/inittab /newroot/etc/inittab ||
	fail "cannot copy the kernel modules, busybox or /etc/vflag to %[1]s"
%[3]smount --move /dev /newroot/dev
mount --move /sys /newroot/sys
mount --move /proc /newroot/proc
exec switch_root /newroot /usr/lib/vflag/busybox init
`, root.Device, root.FSType, carry.String())
}

// stage2Inittab is busybox init's table on a root disk.
const stage2Inittab = `::sysinit:/etc/vflag/rcS
::respawn:/usr/bin/vflag-guest serve
ttyS0::respawn:-/bin/sh
::shutdown:/usr/lib/vflag/busybox umount -a -r
`

// stage2RcS sets up the root disk's pseudo file systems and host name like
// rcS does.
const stage2RcS = `#!/bin/sh
# The PATH libvirtd had when it probed QEMU at image build: libvirt keys its
# capability cache by the emulator path it finds through PATH.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/netns /run/lock
for arg in $(cat /proc/cmdline); do
	case "$arg" in vflag.hostname=*) hostname "${arg#vflag.hostname=}" ;; esac
done
ip link set lo up
echo "vflag: userspace ready on $(hostname) (root disk), uptime $(cut -d' ' -f1 /proc/uptime)s"
`

// startCommands renders the start commands for the end of rcS; none
// renders nothing, so rcS stays as it was.
func startCommands(start []string) string {
	var b strings.Builder
	for _, c := range start {
		fmt.Fprintf(&b, "%s || echo \"vflag: start command failed: %s\" >&2\n", c, strings.ReplaceAll(c, `"`, `'`))
	}
	if len(start) > 0 {
		b.WriteString("echo \"vflag: started, uptime $(cut -d' ' -f1 /proc/uptime)s\"\n")
	}
	return b.String()
}
