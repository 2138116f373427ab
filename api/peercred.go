package api

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Peer is who is on the other end of a Unix socket, as the kernel says.
type Peer struct {
	// PID, UID and GID come from SO_PEERCRED.
	PID, UID, GID int
	// Groups are the process's supplementary groups (from /proc/PID/status).
	Groups []int
}

// AuthType implements credentials.AuthInfo.
func (Peer) AuthType() string { return "peercred" }

func (p Peer) String() string { return fmt.Sprintf("uid %d gid %d (pid %d)", p.UID, p.GID, p.PID) }

// Authorize decides whether p may use the API: root, or a member of gid.
// The error says why not.
func Authorize(p Peer, gid int, group string) error {
	if p.UID == 0 || (gid >= 0 && (p.GID == gid || slices.Contains(p.Groups, gid))) {
		return nil
	}
	return fmt.Errorf("caller %s is neither root nor in group %s", p, group)
}

// peerCreds is transport "security" for Unix sockets: no encryption, the
// handshake reads the peer's credentials.
type peerCreds struct{}

var _ credentials.TransportCredentials = peerCreds{}

func (peerCreds) ClientHandshake(_ context.Context, _ string, c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c, Peer{}, nil
}

func (peerCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, nil, fmt.Errorf("peer credentials: %T is not a Unix socket", c)
	}
	p, err := peerOf(uc)
	if err != nil {
		return nil, nil, err
	}
	return c, p, nil
}

func (peerCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "peercred"}
}
func (peerCreds) Clone() credentials.TransportCredentials { return peerCreds{} }
func (peerCreds) OverrideServerName(string) error         { return nil }

func peerOf(c *net.UnixConn) (Peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	if credErr != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", credErr)
	}
	p := Peer{PID: int(cred.Pid), UID: int(cred.Uid), GID: int(cred.Gid)}
	p.Groups, _ = supplementaryGroups(p.PID) // a vanished process has none
	return p, nil
}

// supplementaryGroups reads the Groups: line of /proc/PID/status.
func supplementaryGroups(pid int) ([]int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Groups:"); ok {
			return parseGroups(rest)
		}
	}
	return nil, sc.Err()
}

func parseGroups(s string) ([]int, error) {
	var gs []int
	for _, f := range strings.Fields(s) {
		g, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("groups %q: %w", s, err)
		}
		gs = append(gs, g)
	}
	return gs, nil
}

// lookupGroup resolves a group name to its gid; -1 when it does not exist
// (then only root may call).
func lookupGroup(name string) int {
	if name == "" {
		return -1
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return -1
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1
	}
	return gid
}

// authInterceptors refuse calls from peers Authorize rejects.
func authInterceptors(gid int, group string) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	check := func(ctx context.Context) error {
		pr, ok := peer.FromContext(ctx)
		if !ok {
			return status.Error(codes.PermissionDenied, "no peer information")
		}
		p, ok := pr.AuthInfo.(Peer)
		if !ok {
			return status.Error(codes.PermissionDenied, "caller is not on the Unix socket")
		}
		if err := Authorize(p, gid, group); err != nil {
			return status.Error(codes.PermissionDenied, err.Error())
		}
		return nil
	}
	unary := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if err := check(ctx); err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if err := check(ss.Context()); err != nil {
			return err
		}
		return h(srv, ss)
	}
	return unary, stream
}
