// Package packaging builds vflag's Debian package (vflag_<version>_<arch>.deb)
// from the binaries `make build` writes: vflagd with its systemd unit, the
// vflag CLI, the NIC backends with their checksums in
// /usr/lib/vflag/backends (plugin.Dir), the libvirt hook in
// /etc/libvirt/hooks/qemu.d/, the hook's settings and an example vflagd
// configuration as conffiles, and plain POSIX maintainer scripts.
//
// The files the package ships are in tree/ (laid out as installed) and the
// maintainer scripts in DEBIAN/; Build adds the binaries, the control file,
// conffiles and md5sums, and runs `dpkg-deb --root-owner-group --build`.
// Version maps `git describe` to a Debian version. The command
// packaging/cmd/mkdeb (make deb) drives it.
package packaging
