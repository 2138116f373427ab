package api

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vflag/vflag/vfmgr"
)

// TestToStatus checks the gRPC code each of vflagd's errors reaches a
// client with (the hook branches on them), the message kept whole.
func TestToStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code codes.Code
	}{
		{fmt.Errorf("adopt VF 0000:01:10.2 for vm1/net0: pf0 vf 2 (0000:01:10.2) is held by vm2/net0: %w", vfmgr.ErrVFHeld), codes.FailedPrecondition},
		{fmt.Errorf("vm1/net0 holds pf0 vf 1: %w", vfmgr.ErrAllocated), codes.FailedPrecondition},
		{fmt.Errorf("adopt VF 0000:05:10.1: %w", vfmgr.ErrNotManaged), codes.NotFound},
		{fmt.Errorf("mode %q: %w", "bond", vfmgr.ErrInvalid), codes.InvalidArgument},
		{fmt.Errorf("bond0: %w", vfmgr.ErrNoFreeVF), codes.ResourceExhausted},
		{fmt.Errorf("configure pf0 vf 1: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
	} {
		st, _ := status.FromError(toStatus(tc.err))
		if st.Code() != tc.code || st.Message() != tc.err.Error() {
			t.Errorf("toStatus(%q) = %v %q; want %v with the message", tc.err, st.Code(), st.Message(), tc.code)
		}
	}
	if toStatus(nil) != nil {
		t.Error("toStatus(nil) is not nil")
	}
}
