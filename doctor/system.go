package doctor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vflag/vflag/api"
	"github.com/vflag/vflag/api/vflagpb"
	"github.com/vflag/vflag/firmware/nicview"
	"github.com/vflag/vflag/rdmamgr"
	"github.com/vflag/vflag/vfmgr"
)

// Time limits of the calls that can hang.
const (
	// ProbeTimeout bounds the questions to vflagd.
	ProbeTimeout = 3 * time.Second
	// RunTimeout bounds a program run for its version.
	RunTimeout = 5 * time.Second
)

// System returns a Doctor of this host: files under /, ethtool, devlink
// and rtnetlink for the NICs, programs from PATH (and the sbin
// directories), vflagd over its API and the host's RDMA netlink.
func System() *Doctor {
	return &Doctor{NIC: &HostNIC{}, Run: ExecRunner{}, Vflagd: APIVflagd{}, RDMA: &rdmamgr.Netlink{}}
}

var (
	_ NIC    = (*HostNIC)(nil)
	_ Runner = ExecRunner{}
	_ Vflagd = APIVflagd{}
)

// HostNIC is NIC over the kernel: the firmware backends' own view of the
// host (firmware/nicview: the ethtool ioctls, devlink generic netlink,
// vfmgr/sriov), so doctor reads a NIC exactly as the backends do.
type HostNIC struct {
	// Sysfs is where sysfs is mounted; "" means "/sys".
	Sysfs string
}

func (n *HostNIC) host() *nicview.Host { return &nicview.Host{SysfsRoot: n.Sysfs} }

// DriverInfo is `ethtool -i IFNAME` (ETHTOOL_GDRVINFO).
func (n *HostNIC) DriverInfo(ctx context.Context, ifname string) (DriverInfo, error) {
	e, err := n.host().Ethtool(ctx, ifname)
	if err != nil {
		return DriverInfo{}, err
	}
	return DriverInfo{Driver: e.Driver, Version: e.Version, Firmware: e.Firmware, BusInfo: e.BusInfo}, nil
}

// PrivFlags is `ethtool --show-priv-flags IFNAME` (ETHTOOL_GPFLAGS).
func (n *HostNIC) PrivFlags(ctx context.Context, ifname string) (map[string]bool, error) {
	e, err := n.host().Ethtool(ctx, ifname)
	if err != nil {
		return nil, err
	}
	return e.PrivFlags, nil
}

// EswitchMode is the mode of `devlink dev eswitch show pci/PCI`.
func (n *HostNIC) EswitchMode(ctx context.Context, pci string) (string, error) {
	d, err := n.host().Devlink(ctx, pci)
	if err != nil {
		return "", err
	}
	if d.Eswitch == nicview.EswitchNone {
		return "", fmt.Errorf("devlink dev eswitch show pci/%s: the driver reports no eswitch", pci)
	}
	return string(d.Eswitch), nil
}

// VFs lists pf's VFs with their settings (vfmgr/sriov).
func (n *HostNIC) VFs(ctx context.Context, pf string) ([]vfmgr.VF, error) {
	return n.host().VFs(ctx, pf)
}

// ExecRunner runs programs found in PATH or, since doctor may run as a
// user whose PATH lacks them, in /usr/sbin and /sbin.
type ExecRunner struct{}

// Run runs name with args for at most RunTimeout and returns its output
// (stdout and stderr).
func (ExecRunner) Run(ctx context.Context, name string, args ...string) (string, error) {
	bin, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
			if st, serr := os.Stat(filepath.Join(dir, name)); serr == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
				bin, err = filepath.Join(dir, name), nil
				break
			}
		}
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
	}
	ctx, cancel := context.WithTimeout(ctx, RunTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// APIVflagd asks vflagd over its gRPC API (Status and ListVMs).
type APIVflagd struct{}

// Probe asks the vflagd on socket for its bonds and the VFs it handed out,
// within ProbeTimeout.
func (APIVflagd) Probe(ctx context.Context, socket string) (DaemonState, error) {
	if _, err := os.Stat(socket); errors.Is(err, os.ErrNotExist) {
		return DaemonState{}, fmt.Errorf("%w: no socket file", ErrNotRunning)
	}
	c, err := api.Dial(socket)
	if err != nil {
		return DaemonState{}, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	st, err := c.Status(ctx, &vflagpb.StatusRequest{})
	if err != nil {
		return DaemonState{}, apiError(socket, err)
	}
	var out DaemonState
	for _, b := range st.GetBonds() {
		out.Bonds = append(out.Bonds, DaemonBond{Name: b.GetName(), Active: b.GetActive()})
	}
	vms, err := c.ListVMs(ctx, &vflagpb.ListVMsRequest{})
	if err != nil {
		return DaemonState{}, apiError(socket, err)
	}
	for _, i := range vms.GetInterfaces() {
		out.InUse = append(out.InUse, InUseVF{VF: vfmgr.VFRef{PF: i.GetPf(), Index: int(i.GetVf())}, VM: i.GetVm(), Trust: i.GetTrust()})
	}
	return out, nil
}

// apiError classifies an error of a call to vflagd.
func apiError(socket string, err error) error {
	msg := status.Convert(err).Message()
	switch {
	case status.Code(err) == codes.PermissionDenied, strings.Contains(msg, "permission denied"):
		return fmt.Errorf("%w: %s", ErrNoAccess, msg)
	case status.Code(err) == codes.Unavailable && (strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such file")):
		return fmt.Errorf("%w: nothing listens on the socket", ErrNotRunning)
	}
	return fmt.Errorf("vflagd on %s: %w", socket, err)
}
