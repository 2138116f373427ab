// Package hooks is vflag's libvirt qemu hook, installed as
// /etc/libvirt/hooks/qemu.d/vflag (command vflag-hook): it reads libvirt's
// arguments and the domain XML on stdin, recognises the interfaces that
// are vflag's (a vflag-<bond> pool network, vflag metadata, or a hostdev
// whose VF's PF is a bond port), and tells vflagd over its local API which
// VFs a VM takes (prepare, start, reconnect) and gives back (release). On
// an incoming migration or restore it gets VFs of this host for the
// metadata-marked hostdev interfaces and prints the rewritten XML, the
// only thing it ever writes to stdout. It never calls libvirt (libvirt
// waits on the hook), and a timeout bounds everything it does. README.md
// beside this file is the XML contract, with examples the tests parse.
package hooks
