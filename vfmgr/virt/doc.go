// Package virt is vflagd's libvirt side (libvirt.org/go/libvirt). It
// follows the host's domains — their lifecycle events, and at each
// (re)connection what vflagd missed while it or libvirtd was down — so
// that a domain that is gone gives its VFs back; it hands a running
// domain the VF of the surviving PF when a failover re-homes its
// `hotswap` or `failover` interface (hot-unplug, then hot-plug with the
// same MAC, VLAN, guest slot and <teaming>); and it keeps the
// `vflag-<bond>` pool networks listing the VFs vflagd would hand out.
//
// The libvirt hook (package hooks) is libvirt calling vflagd and must
// never call libvirt back; this package is vflagd calling libvirt, from
// its own goroutines, never from inside a hook's request.
//
// vflagd is built with -tags libvirt_dlopen: libvirt.so.0 is loaded at
// run time, so vflagd runs (without this side) on a host without libvirt.
package virt
