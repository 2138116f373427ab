package plugin

import (
	"context"
	"errors"
	"io/fs"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vflag/vflag/plugin/backendpb"
	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/sriov"
)

// Errors of the transport, for callers to branch on.
var (
	// ErrTimeout: a backend did not answer a call within its timeout. The
	// error also wraps context.DeadlineExceeded.
	ErrTimeout = errors.New("backend did not answer in time")
	// ErrExited: the backend process ended (crashed, was killed) before or
	// during a call. It is restarted on the next call.
	ErrExited = errors.New("backend process exited")
	// ErrChecksum: the backend binary's SHA-256 is not the expected one,
	// or there is no expected one; vflagd does not run it.
	ErrChecksum = errors.New("backend binary checksum mismatch")
	// ErrProtocol: the backend speaks another protocol version.
	ErrProtocol = errors.New("backend protocol version mismatch")
	// ErrClosed: a call on a Client after Close.
	ErrClosed = errors.New("backend client closed")
)

// sentinel is an error class that survives the trip across the process
// boundary: a backend's error that wraps it reaches vflagd as an error
// that still wraps it (errors.Is), with the gRPC code beside it for any
// other client.
type sentinel struct {
	name string
	err  error
	code codes.Code
}

// sentinels are the classes the daemon and doctor branch on, most
// specific first: the first that matches sets the gRPC code.
func sentinels() []sentinel {
	return []sentinel{
		{"plan-out-of-bounds", ErrPlanOutOfBounds, codes.FailedPrecondition},
		{"no-sriov", sriov.ErrNoSRIOV, codes.FailedPrecondition},
		{"no-free-vf", vfmgr.ErrNoFreeVF, codes.ResourceExhausted},
		{"not-managed", vfmgr.ErrNotManaged, codes.NotFound},
		{"invalid", vfmgr.ErrInvalid, codes.InvalidArgument},
		{"unsupported", errors.ErrUnsupported, codes.Unimplemented},
		{"not-exist", fs.ErrNotExist, codes.NotFound},
		{"exist", fs.ErrExist, codes.AlreadyExists},
		{"permission", fs.ErrPermission, codes.PermissionDenied},
		{"deadline-exceeded", context.DeadlineExceeded, codes.DeadlineExceeded},
		{"canceled", context.Canceled, codes.Canceled},
	}
}

// toStatus renders a backend's error for the wire: its message as is, the
// gRPC code of its class, and the classes and errno it wraps in an
// ErrorDetail.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	code := codes.Unknown
	detail := &backendpb.ErrorDetail{}
	for _, s := range sentinels() {
		if errors.Is(err, s.err) {
			if len(detail.Sentinels) == 0 {
				code = s.code
			}
			detail.Sentinels = append(detail.Sentinels, s.name)
		}
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		detail.Errno = int32(errno)
	}
	st, derr := status.New(code, err.Error()).WithDetails(detail)
	if derr != nil {
		return status.Error(code, err.Error())
	}
	return st.Err()
}

// RemoteError is an error a backend returned, as vflagd sees it: the
// backend's message, and the classes (sentinel errors, errno) it wrapped.
type RemoteError struct {
	// Msg is the backend's error message.
	Msg string
	// Code is the gRPC code of the call.
	Code codes.Code
	// Wrapped are the sentinel errors and the syscall.Errno the backend's
	// error wrapped, as far as the protocol knows them.
	Wrapped []error
	// FromBackend is true when the backend itself returned the error; false
	// for the transport's (the connection failed, a deadline passed
	// before the backend answered).
	FromBackend bool
}

func (e *RemoteError) Error() string { return e.Msg }

// Unwrap returns the classes the backend's error wrapped.
func (e *RemoteError) Unwrap() []error { return e.Wrapped }

// GRPCStatus lets status.Code see the call's code.
func (e *RemoteError) GRPCStatus() *status.Status { return status.New(e.Code, e.Msg) }

// fromStatus turns a failed call's error back into a RemoteError.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	re := &RemoteError{Msg: st.Message(), Code: st.Code()}
	var found bool
	for _, d := range st.Details() {
		detail, isDetail := d.(*backendpb.ErrorDetail)
		if !isDetail {
			continue
		}
		found, re.FromBackend = true, true
		byName := map[string]error{}
		for _, s := range sentinels() {
			byName[s.name] = s.err
		}
		for _, name := range detail.GetSentinels() {
			if e, known := byName[name]; known {
				re.Wrapped = append(re.Wrapped, e)
			}
		}
		if n := detail.GetErrno(); n != 0 {
			re.Wrapped = append(re.Wrapped, syscall.Errno(n))
		}
	}
	if !found {
		// Not the backend's error but the transport's (or a peer that
		// sends no detail): keep the code's class.
		switch st.Code() {
		case codes.DeadlineExceeded:
			re.Wrapped = append(re.Wrapped, context.DeadlineExceeded)
		case codes.Canceled:
			re.Wrapped = append(re.Wrapped, context.Canceled)
		case codes.Unimplemented:
			re.Wrapped = append(re.Wrapped, errors.ErrUnsupported)
		}
	}
	return re
}
