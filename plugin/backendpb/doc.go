// Package backendpb is the protobuf and gRPC code generated from
// backend.proto, the protocol between vflagd and its NIC backends (make
// generate; checked by make lint). Package plugin wraps it: nothing else
// should import it.
package backendpb
