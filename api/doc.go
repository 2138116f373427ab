// Package api is vflagd's local API: the gRPC service of vflagpb served on a
// Unix socket, and the client the vflag CLI and the libvirt hook use.
//
// The socket is root:libvirt 0660 (owner and group configurable), and every
// call is checked against the caller's kernel-reported credentials
// (SO_PEERCRED): root, or a process whose primary or supplementary groups
// include the API group, may call; anyone else is refused with
// PermissionDenied and the reason. vflagd's own errors reach the caller as
// gRPC codes (ResourceExhausted for no free VF, NotFound for an unknown VM
// or bond, AlreadyExists for a MAC in use, InvalidArgument for bad input).
package api
