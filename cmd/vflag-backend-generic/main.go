// Command vflag-backend-generic is vflagd's backend for any SR-IOV NIC
// (package firmware/generic): VFs are re-homed in software. vflagd runs
// it as a plugin process (package plugin); run by hand, it says so and
// exits.
package main

import (
	"github.com/vflag/vflag/firmware/generic"
	"github.com/vflag/vflag/plugin"
)

func main() { plugin.Serve(generic.New(nil)) }
