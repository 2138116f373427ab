// Package testenv is vflag's testbed: KVM-host VMs with emulated SR-IOV NICs
// on two top-of-rack switches, where cables can be pulled on command and a
// client measures what a user of the VMs would see.
//
// This machine's kernel has no bonding, SR-IOV or RDMA, so every such test
// meets a real kernel inside a VM: QEMU (TCG here, KVM where it works) boots
// Debian's 6.12 kernel with two igb NICs (Intel 82576, 7 VFs per port), and
// the guest loads igb, igbvf and bonding, creates the VFs and bonds the two
// PFs (bond0, active-backup, miimon 20).
//
// The fabric lives only in network namespaces the testbed creates:
// vflag-<tb>-fabric holds the bridges tora and torb joined by an inter-switch
// link, with each host's port 0 cabled to tora and port 1 to torb (taps named
// <host>-p0, <host>-p1); vflag-<tb>-client is a host on tora. Nothing is
// created in the root namespace.
//
// A host comes in two flavours (HostSpec.Flavour). FlavourInitramfs, the
// default, runs everything from an initramfs and is ready in about 16 s.
// FlavourLibvirt boots the same kernel into a Debian root disk (attached
// with snapshot=on, so every boot starts clean) with QEMU 10 and libvirt 11
// from bookworm-backports, virtlogd and libvirtd running, and an emulated
// intel-iommu, so that VFs can be bound to vfio-pci and passed to nested
// (L2) guests through <interface type='hostdev'>. Nested guests boot the
// same kernel with a small initramfs and their own agent; DefineNested,
// Virsh, WaitNested and NestedExec drive them. The host is ready in about
// 21 s; a nested guest, TCG inside TCG, answers about two minutes after
// virsh start on an idle machine.
//
// Tests build a testbed with New, AddHost and Start (or ForTest, which ties
// teardown to t.Cleanup); cmd/vflag-testbed is a CLI on the same API. Every
// start first sweeps what interrupted runs left behind.
//
// The guest is driven through vflag-guest (package guestagent) on a
// virtio-serial port, chosen over the serial console because it is a clean
// byte stream with no kernel messages interleaved, needs no network inside
// the guest, and works under TCG without vhost-vsock on the host.
package testenv
