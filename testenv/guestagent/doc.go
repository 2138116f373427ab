// Package guestagent lets the host run commands inside a testbed guest and get
// their exit code and output back reliably.
//
// The transport is a virtio-serial port named "vflag.agent" (DefaultPortName).
// On the host, QEMU exposes it as a unix socket:
//
//	-chardev socket,id=agent,path=agent.sock,server=on,wait=off
//	-device virtio-serial-pci -device virtserialport,chardev=agent,name=vflag.agent
//
// In the guest, the vflag-guest binary finds the port's /dev/vportNpM node
// through sysfs (FindPort) and answers requests on it (ServePort, Serve).
//
// # Protocol
//
// Both directions carry newline-delimited JSON objects: a Request from the host,
// a Response from the guest carrying the request's ID. The stream has no
// message boundaries and the host may connect and disconnect at any time, so
// stale bytes of an earlier connection can precede the answer a client waits
// for. Both sides therefore start every line they write with an extra newline
// (which ends any partial line left in the stream), skip lines they cannot
// parse, and the client discards every response whose ID is not the one it is
// waiting for. Output is capped at MaxOutputBytes per stream.
//
// # Port semantics
//
// The behaviour of the guest's port comes from drivers/char/virtio_console.c:
// a read returns 0 (EOF) while no host is connected, a write blocks until one
// is, only one process may hold the port open, and closing it discards data
// the host already sent. ServePort therefore keeps the port open across host
// disconnections and polls it, instead of reopening it on every EOF.
package guestagent
