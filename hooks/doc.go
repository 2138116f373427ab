// Package hooks will hold vflag's libvirt qemu hook: the handler installed
// as /etc/libvirt/hooks/qemu.d/vflag that allocates a VF from the bond's
// active physical function when a VM is prepared, releases it when the VM
// stops, rewrites the domain XML on migrate and restore, and re-attaches
// state on reconnect. It reads the domain XML from stdin, never calls back
// into libvirt (libvirt waits on the hook), keeps stdout for XML only, and
// talks to vflagd over the local API within a bounded time.
package hooks
