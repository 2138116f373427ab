// Package plugin will define the backend contract between vflagd and the
// NIC-family backends (probe, preflight, prepare a bond, plan and apply a
// failover, configure and release a VF) and carry it over
// hashicorp/go-plugin gRPC, so that a backend runs out of process, can ship
// separately and cannot take the daemon down when it crashes.
package plugin
