// Command vflag-backend-mlx5 is vflagd's backend for NVIDIA ConnectX NICs
// (mlx5_core; package firmware/mlx5): the NIC's VF-LAG carries the VFs on
// a failover. vflagd runs it as a plugin process (package plugin); run by
// hand, it says so and exits.
package main

import (
	"github.com/vflag/vflag/firmware/mlx5"
	"github.com/vflag/vflag/plugin"
)

func main() { plugin.Serve(mlx5.New(nil)) }
