// Package image builds what the testbed's KVM-host VMs boot: a Debian kernel
// and an initramfs.
//
// The kernel and its modules come from Debian's linux-image .deb, downloaded
// into the asset cache with apt and extracted there; nothing is installed on
// the host. The initramfs is a newc cpio archive holding busybox-static,
// iproute2 with the shared libraries it links, the kernel modules the
// testbed needs (with their dependencies, resolved from modules.dep) and the
// project's own binaries, among them vflag-guest, the in-guest agent.
//
// The libvirt flavour adds a Debian root file system (Rootfs): debootstrap
// of bookworm plus QEMU 10 and libvirt 11 from bookworm-backports, with
// QEMU's capabilities probed by libvirtd at build time, packed into a raw
// ext4 image. Its initramfs (Initramfs.Root) is a first stage that loads
// the modules, mounts the disk, carries the agent, the project binaries and
// the modules over, and switches root to it. Nested guests get the same
// kernel and an initramfs of their own (NestedGuestModules).
//
// Everything is cached under one directory (default /var/cache/vflag, or
// $VFLAG_CACHE): a second build with the same inputs costs a hash.
package image
