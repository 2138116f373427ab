// Command vflag-hook is vflag's libvirt qemu hook, installed as
// /etc/libvirt/hooks/qemu.d/vflag: libvirt runs it with the domain name,
// the operation, the sub-operation and an extra argument, and the domain
// XML on stdin (package hooks; the XML contract is hooks/README.md).
package main

import (
	"os"

	"github.com/vflag/vflag/hooks"
)

func main() {
	os.Exit(hooks.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
