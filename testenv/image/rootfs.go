package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ErrNoRootfs is returned when the Debian root file system cannot be built.
var ErrNoRootfs = errors.New("no root file system image")

// rootfsRevision changes whenever the build steps below change in a way the
// package lists do not show, so that an old image is not reused.
const rootfsRevision = "4"

// Rootfs describes the Debian root file system of the testbed's libvirt
// flavour: debootstrap's minbase of Suite plus Packages, then
// BackportsPackages from Suite-backports (QEMU 10, libvirt 11), with QEMU's
// capabilities already probed by libvirt so that the first virsh command in
// a guest does not wait for it (see Build).
type Rootfs struct {
	// Suite is the Debian release, e.g. "bookworm".
	Suite string
	// Mirror is the Debian archive debootstrap and apt use.
	Mirror string
	// Packages come from Suite (debootstrap --include).
	Packages []string
	// BackportsPackages come from Suite-backports (apt-get -t).
	BackportsPackages []string
}

// DefaultRootfs is the KVM host of the libvirt flavour: Debian 12 with
// QEMU 10 and libvirt 11 from bookworm-backports, and the tools tests use.
// libvirt's network driver is there for vflagd's vflag-<bond> pool
// networks (<forward mode='hostdev'>), without libvirt-daemon-config-network:
// no default NAT network, so libvirtd starts no dnsmasq and sets up no
// firewall rules (the driver's dnsmasq-base and iptables come in as
// dependencies and stay unused: a hostdev network needs neither).
func DefaultRootfs() Rootfs {
	return Rootfs{
		Suite:  "bookworm",
		Mirror: "http://deb.debian.org/debian",
		Packages: []string{
			"iproute2", "iputils-ping", "procps", "kmod", "busybox", "socat",
			"ethtool", "tcpdump", "rdmacm-utils", "ibverbs-utils", "ibverbs-providers",
		},
		BackportsPackages: []string{
			"qemu-system-x86", "libvirt-daemon", "libvirt-daemon-driver-qemu", "libvirt-daemon-driver-network",
			"libvirt-clients",
		},
	}
}

// key is the cache key: everything that decides the image's content.
func (r Rootfs) key() string {
	h := sha256.New()
	fmt.Fprintf(h, "rev %s\nsuite %s\nmirror %s\npackages %s\nbackports %s\n", rootfsRevision, r.Suite, r.Mirror,
		strings.Join(r.Packages, " "), strings.Join(r.BackportsPackages, " "))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Build returns the path of the root file system image (raw ext4) for r
// under cacheDir, building it when no image with the same inputs exists.
// Guests attach it with snapshot=on, so every boot starts from it unchanged.
//
// Building takes about a minute and downloads about 150 MB: debootstrap,
// apt-get in a chroot (in a private mount namespace), then libvirtd is run
// once in the chroot, in a fresh network namespace with no /dev/kvm, to
// probe QEMU's capabilities. libvirt keeps what it learnt in
// /var/cache/libvirt/qemu/capabilities and reuses it while QEMU's and
// libvirt's ctimes match (virQEMUCapsIsValid in src/qemu/qemu_capabilities.c);
// mkfs.ext4 -d keeps the ctimes, so a guest's libvirtd finds the cache valid
// instead of probing QEMU under TCG at boot (30 to 70 s). The cache is also
// keyed by the emulator's path as libvirtd finds it through PATH, and
// /bin is /usr/bin on Debian 12, so the probe runs with the PATH the guest
// gives libvirtd. qemu-system-i386 is removed: libvirt would probe it too.
func (r Rootfs) Build(ctx context.Context, cacheDir string, log *slog.Logger) (string, error) {
	dir := filepath.Join(cacheDir, "rootfs")
	out := filepath.Join(dir, "rootfs-"+r.key()+".ext4")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	for _, t := range []string{"debootstrap", "unshare", "chroot", "mkfs.ext4"} {
		if _, err := exec.LookPath(t); err != nil {
			return "", fmt.Errorf("%w: %s not found (run testenv/setup-host.sh)", ErrNoRootfs, t)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create rootfs cache %s: %w", dir, err)
	}
	tree := filepath.Join(dir, ".build-"+r.key())
	if err := os.RemoveAll(tree); err != nil {
		return "", fmt.Errorf("clear %s: %w", tree, err)
	}
	defer func() { _ = os.RemoveAll(tree) }()
	began := time.Now()

	step := func(what string, name string, args ...string) error {
		t := time.Now()
		log.Info("building guest root file system: "+what, "dir", tree)
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
		b, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s (%s): %w: %s", ErrNoRootfs, what, name, err, tail(b, 2000))
		}
		log.Info("done: "+what, "took", time.Since(t).Round(100*time.Millisecond))
		return nil
	}
	if err := step("debootstrap "+r.Suite, "debootstrap", "--variant=minbase",
		"--include="+strings.Join(r.Packages, ","), r.Suite, tree, r.Mirror); err != nil {
		return "", err
	}
	if err := step("install from "+r.Suite+"-backports", "unshare", "--mount", "--propagation", "private",
		"sh", "-euc", rootfsInstall, "install", tree, r.Mirror, r.Suite, strings.Join(r.BackportsPackages, " ")); err != nil {
		return "", err
	}
	if err := step("probe QEMU capabilities with libvirtd", "unshare", "--net", "--mount", "--pid", "--fork",
		"--propagation", "private", "sh", "-euc", rootfsProbe, "probe", tree); err != nil {
		return "", err
	}
	caches, _ := filepath.Glob(filepath.Join(tree, "var/cache/libvirt/qemu/capabilities/*.xml"))
	if len(caches) != 1 {
		return "", fmt.Errorf("%w: libvirtd left %d QEMU capability caches in %s, want 1", ErrNoRootfs, len(caches), tree)
	}

	// Size: what the tree holds plus room for what a run writes (guest
	// logs, the modules and binaries the initramfs copies in, L2 files).
	used, err := treeBytes(tree)
	if err != nil {
		return "", err
	}
	size := (used*5/4 + 512<<20) >> 20
	tmp := out + ".tmp"
	_ = os.Remove(tmp)
	if err := step("mkfs.ext4", "mkfs.ext4", "-q", "-F", "-L", "vflag-root", "-d", tree, tmp, fmt.Sprintf("%dM", size)); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("publish root file system %s: %w", out, err)
	}
	log.Info("guest root file system ready", "path", out, "size_mb", size, "took", time.Since(began).Round(time.Second))
	return out, nil
}

// treeBytes sums the sizes of the regular files under dir.
func treeBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measure %s: %w", dir, err)
	}
	return n, nil
}

func tail(b []byte, n int) []byte {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return b
}

// rootfsInstall runs in a private mount namespace: $1 tree, $2 mirror,
// $3 suite, $4 the backports packages. No service starts (policy-rc.d), and
// apt's caches are dropped afterwards.
const rootfsInstall = `R=$1
cat > "$R/etc/apt/sources.list" <<EOF
deb $2 $3 main
deb $2 $3-backports main
EOF
cp /etc/resolv.conf "$R/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d"
chmod 755 "$R/usr/sbin/policy-rc.d"
mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev"
chroot "$R" apt-get update -qq
chroot "$R" apt-get install -y -qq --no-install-recommends -t "$3-backports" $4
chroot "$R" apt-get clean
rm -rf "$R"/var/lib/apt/lists/* "$R/etc/resolv.conf"
rm -f "$R/usr/bin/qemu-system-i386"
echo vflag-host > "$R/etc/hostname"
`

// rootfsProbe runs in fresh mount, PID and network namespaces: libvirtd in
// the chroot $1 sees no network, no /dev/kvm and no host process, answers
// one virsh call (which probes QEMU) and is stopped again.
const rootfsProbe = `R=$1
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount -t tmpfs -o mode=755 tmpfs "$R/dev"
for n in null zero random urandom tty full; do
	touch "$R/dev/$n"
	mount --bind "/dev/$n" "$R/dev/$n"
done
mkdir -p "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
mount -t tmpfs tmpfs "$R/run"
mount -t tmpfs tmpfs "$R/tmp"
chroot "$R" /usr/bin/env PATH=/usr/sbin:/usr/bin:/sbin:/bin /bin/sh -euc '
ip link set lo up
virtlogd -d
libvirtd -d
i=0
until virsh -c qemu:///system domcapabilities --virttype qemu >/dev/null 2>&1; do
	i=$((i+1)); [ $i -lt 600 ] || { echo "libvirtd does not answer" >&2; exit 1; }
	sleep 0.1
done
virsh -c qemu:///system capabilities >/dev/null
kill $(cat /run/libvirtd.pid) $(cat /run/virtlogd.pid)
while [ -e /proc/$(cat /run/libvirtd.pid 2>/dev/null || echo 0) ]; do sleep 0.1; done
'
rm -rf "$R/var/log/libvirt"/* "$R/var/lib/libvirt/qemu/ram"/* 2>/dev/null || true
`
