// Command vflag-backend-ice is vflagd's backend for Intel E810 NICs (ice;
// package firmware/ice): the NIC's VF-LAG carries the primary port's VFs
// on a failover. vflagd runs it as a plugin process (package plugin); run
// by hand, it says so and exits.
package main

import (
	"github.com/vflag/vflag/firmware/ice"
	"github.com/vflag/vflag/plugin"
)

func main() { plugin.Serve(ice.New(nil)) }
