// Package vflagpb is the protobuf and gRPC code generated from vflag.proto,
// vflagd's local API (make generate; checked by make lint).
package vflagpb
