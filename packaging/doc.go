// Package packaging will build vflag's Debian package: the binaries, the
// systemd unit for vflagd, the libvirt hook installed into
// /etc/libvirt/hooks/qemu.d/, and the default configuration.
package packaging
