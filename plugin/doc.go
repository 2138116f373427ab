// Package plugin is the backend contract between vflagd and the NIC-family
// backends (firmware/generic, firmware/ice, firmware/mlx5) and its
// transport: each backend runs as its own process, speaking gRPC over
// hashicorp/go-plugin, so that it can ship separately and cannot take the
// daemon down when it crashes.
//
// The contract is the Backend interface with plain Go types (backend.go,
// finding.go) and CheckPlan. The transport is backend.proto (package
// backendpb, generated), unexported gRPC shims and converters, the
// go-plugin handshake (a magic cookie, and ProtocolVersion negotiated as
// VersionedPlugins: a peer of another version is refused naming both),
// and the error codec: a backend's error crosses with its message intact,
// the sentinel classes and errno it wraps (errors.Is still works in
// vflagd) and a gRPC code.
//
// A backend's main calls Serve. vflagd calls Launch, which checks the
// binary's SHA-256 (from the configuration or <binary>.sha256), starts it
// and returns a Client, itself a Backend: each call is bounded by a
// timeout (a backend that does not answer is killed and named with the
// method), a backend that exited is restarted on the next call after a
// bounded backoff, and Config.OnRestart lets the daemon re-read the state
// the lost process may have left half done. A backend process exits when
// vflagd goes away. go-plugin's reattach is not used: it cannot be
// combined with the checksum check.
package plugin
