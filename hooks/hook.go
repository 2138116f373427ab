package hooks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vflag/vflag/api/vflagpb"
)

// Client is the part of vflagd's API the hook uses; *api.Client has it.
type Client interface {
	Status(ctx context.Context, in *vflagpb.StatusRequest, opts ...grpc.CallOption) (*vflagpb.StatusResponse, error)
	Attach(ctx context.Context, in *vflagpb.AttachRequest, opts ...grpc.CallOption) (*vflagpb.AttachResponse, error)
	Detach(ctx context.Context, in *vflagpb.DetachRequest, opts ...grpc.CallOption) (*vflagpb.DetachResponse, error)
}

// Hook is one run of the qemu hook: libvirt's arguments and the domain XML
// in, at most a rewritten XML out.
type Hook struct {
	// Config are the settings.
	Config Config
	// Dial connects to vflagd. It is called only when the domain has an
	// interface that is vflag's, at most once.
	Dial func() (Client, error)
	// PCI finds the bond of a VF's PF (Sysfs).
	PCI PCILookup
	// Stdout gets the rewritten domain XML of migrate and restore, and
	// nothing else ever.
	Stdout io.Writer
	// Warn gets what goes wrong in runs that succeed all the same
	// (fail-open, reconnect): one line each.
	Warn func(msg string)

	client Client
}

// Run handles one call of the hook. args are libvirt's: domain name,
// operation, sub-operation, extra. raw is the domain XML from stdin. The
// error is for the virsh user: one line naming the VM, the interface and
// what to do.
func (h *Hook) Run(ctx context.Context, args []string, raw []byte) error {
	if len(args) < 2 {
		return errors.New("usage: vflag DOMAIN OPERATION SUB-OPERATION EXTRA, as libvirt runs /etc/libvirt/hooks/qemu.d/vflag")
	}
	name, op := args[0], args[1]
	switch op {
	case "prepare", "start":
		return h.claim(ctx, name, op, raw)
	case "reconnect", "attach":
		// libvirt kills a running VM whose reconnect hook fails: never.
		if err := h.claim(ctx, name, op, raw); err != nil {
			h.warn(err.Error())
		}
		return nil
	case "release":
		return h.release(ctx, name, raw)
	case "migrate", "restore":
		return h.rewrite(ctx, name, op, raw)
	default:
		// started, stopped and operations of later libvirt versions: the
		// VFs are claimed before, released after.
		return nil
	}
}

// verb says what failing op stops, for messages.
func verb(op, name string) string {
	switch op {
	case "prepare", "start":
		return "cannot start VM " + name
	case "migrate":
		return "cannot accept the incoming migration of VM " + name
	case "restore":
		return "cannot restore VM " + name
	case "release":
		return "cannot release the VFs of VM " + name
	default:
		return fmt.Sprintf("VM %s (%s)", name, op)
	}
}

// parse reads the XML and checks vflag's interfaces.
func (h *Hook) parse(name, op string, raw []byte, lookup PCILookup) (*Domain, error) {
	d, err := Parse(raw, Options{PCI: lookup, Mode: h.Config.Mode})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", verb(op, name), err)
	}
	return d, nil
}

// claim is prepare, start and reconnect: every VF the XML names becomes
// the VM's in vflagd (configured with the VM's MAC and VLAN); at prepare
// the bonds of pool interfaces are checked.
func (h *Hook) claim(ctx context.Context, name, op string, raw []byte) error {
	d, err := h.parse(name, op, raw, h.PCI)
	if err != nil {
		return err
	}
	if h.Config.UnmanagedHostdev == "error" {
		for _, it := range d.Interfaces {
			if it.Kind == KindVF && it.Marker == MarkNone {
				return fmt.Errorf("%s: %s is not a VF of a bond port, and %s says unmanaged_hostdev: error",
					verb(op, name), it, h.Config.where())
			}
		}
	}
	if !d.Wanted() {
		return nil
	}
	ifs := d.Vflag()
	if err := d.Check(); err != nil {
		return fmt.Errorf("%s: %w", verb(op, name), oneLine(err))
	}
	if err := checkName(name, d.Name); err != nil {
		return fmt.Errorf("%s: %w", verb(op, name), err)
	}
	var attached []Interface
	fail := func(err error) error {
		if op == "prepare" || op == "start" {
			// A running VM (reconnect) keeps its VFs whatever happens.
			h.rollback(name, attached)
		}
		return h.failure(op, name, err)
	}
	checked := false
	for _, it := range ifs {
		if it.Kind == KindPool {
			if op != "prepare" {
				return fail(fmt.Errorf("%s: at %s libvirt should show the VF it picked from network %s; is the network <forward mode='hostdev'>?", it, op, it.Network))
			}
			if !checked {
				if err := h.checkBonds(ctx, ifs); err != nil {
					return fail(err)
				}
				checked = true
			}
			continue
		}
		iface, err := h.attach(ctx, d, it, it.PCI)
		if err != nil {
			if it.Marker == MarkAddress && status.Code(cause(err)) == codes.NotFound && h.Config.UnmanagedHostdev != "error" {
				continue // a bond vflagd does not manage: not vflag's
			}
			return fail(err)
		}
		attached = append(attached, it)
		if iface.GetVfPci() != it.PCI {
			return fail(fmt.Errorf("%s: vflagd answered with VF %s", it, iface.GetVfPci()))
		}
	}
	return nil
}

// checkBonds asks vflagd whether it manages the bonds of the pool
// interfaces.
func (h *Hook) checkBonds(ctx context.Context, ifs []Interface) error {
	c, err := h.connect()
	if err != nil {
		return err
	}
	st, err := c.Status(ctx, &vflagpb.StatusRequest{})
	if err != nil {
		return h.apiError(ctx, "status", err)
	}
	var managed []string
	for _, b := range st.GetBonds() {
		managed = append(managed, b.GetName())
	}
	for _, it := range ifs {
		if it.Kind != KindPool || it.Bond == "" {
			continue
		}
		found := false
		for _, b := range managed {
			found = found || b == it.Bond
		}
		if !found {
			list := strings.Join(managed, ", ")
			if list == "" {
				list = "none"
			}
			return fmt.Errorf("%s: vflagd manages no bond %s (it manages: %s); a vflag network is named vflag-<bond>",
				it, it.Bond, list)
		}
	}
	return nil
}

// attach asks vflagd for the interface's VF: exactly pci, or (pci "") one
// of its choosing.
func (h *Hook) attach(ctx context.Context, d *Domain, it Interface, pci string) (*vflagpb.VMInterface, error) {
	c, err := h.connect()
	if err != nil {
		return nil, err
	}
	r, err := c.Attach(ctx, &vflagpb.AttachRequest{
		Vm: d.Name, Mac: it.MAC, Vlan: uint32(it.VLAN), Bond: it.Bond,
		Pci: pci, Mode: string(it.Mode), DomainUuid: d.UUID,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", it, h.apiError(ctx, "attach", err))
	}
	return r.GetIface(), nil
}

// release is the release hook: vflagd forgets the VM's VFs and resets
// them. libvirt has given the VFs back to the host by then (it restores
// what it saved of them between the stopped and the release hooks), so
// vflagd's reset is the last word.
func (h *Hook) release(ctx context.Context, name string, raw []byte) error {
	d, err := h.parse(name, "release", raw, h.PCI)
	if err != nil {
		return err
	}
	if len(d.Vflag()) == 0 {
		return nil
	}
	c, err := h.connect()
	if err != nil {
		return h.failure("release", name, err)
	}
	if _, err := c.Detach(ctx, &vflagpb.DetachRequest{Vm: name}); err != nil {
		if status.Code(err) == codes.NotFound {
			return nil // never attached (a start that failed early), or released already
		}
		return h.failure("release", name, h.apiError(ctx, "detach", err))
	}
	return nil
}

// rewrite is the migrate and restore hook on the host the VM comes to:
// each hostdev interface that vflag metadata marks gets a VF of this host
// (vflagd allocates it), and the XML, with the new addresses, goes to
// stdout. Pool interfaces need nothing: libvirt picks their VF here.
func (h *Hook) rewrite(ctx context.Context, name, op string, raw []byte) error {
	// The addresses are the other host's (or of the VM's last run): only
	// metadata says which are vflag's.
	d, err := h.parse(name, op, raw, nil)
	if err != nil {
		return err
	}
	var targets []Interface
	for _, it := range d.Vflag() {
		if it.Kind == KindVF && it.Marker == MarkMetadata {
			targets = append(targets, it)
		}
	}
	if !d.Wanted() {
		return nil
	}
	if err := d.Check(); err != nil {
		return fmt.Errorf("%s: %w", verb(op, name), oneLine(err))
	}
	if len(targets) == 0 {
		return nil
	}
	if err := checkName(name, d.Name); err != nil {
		return fmt.Errorf("%s: %w", verb(op, name), err)
	}
	pcis := map[int]string{}
	var attached []Interface
	fail := func(err error) error {
		h.rollback(name, attached)
		return h.failure(op, name, err)
	}
	changed := false
	for _, it := range targets {
		iface, err := h.attach(ctx, d, it, "")
		if err != nil {
			return fail(err)
		}
		attached = append(attached, it)
		pcis[it.Index] = iface.GetVfPci()
		changed = changed || iface.GetVfPci() != it.PCI
	}
	if !changed {
		return nil // empty output: libvirt keeps the XML
	}
	out, err := RewritePCI(raw, pcis)
	if err != nil {
		return fail(err)
	}
	if _, err := h.Stdout.Write(out); err != nil {
		return fail(fmt.Errorf("write the rewritten XML: %w", err))
	}
	return nil
}

// rollbackTimeout bounds the release of what a failed run attached; Main
// allows for it after the run's own timeout.
const rollbackTimeout = time.Second

// rollback releases what a failed run attached, best effort, with a fresh
// deadline (the run's may be what failed).
func (h *Hook) rollback(name string, attached []Interface) {
	if len(attached) == 0 || h.client == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), rollbackTimeout)
	defer cancel()
	for _, it := range attached {
		if _, err := h.client.Detach(ctx, &vflagpb.DetachRequest{Vm: name, Iface: it.MAC}); err != nil && status.Code(err) != codes.NotFound {
			h.warn(fmt.Sprintf("VM %s: %s: releasing after the failure: %v", name, it, status.Convert(err).Message()))
		}
	}
}

// connect dials vflagd once.
func (h *Hook) connect() (Client, error) {
	if h.client != nil {
		return h.client, nil
	}
	c, err := h.Dial()
	if err != nil {
		return nil, &unreachableError{msg: fmt.Sprintf("vflagd at %s: %v", h.Config.Socket, err)}
	}
	h.client = c
	return c, nil
}

// unreachableError is vflagd not running, or not answering in time:
// fail_open lets the VM start anyway.
type unreachableError struct{ msg string }

func (e *unreachableError) Error() string { return e.msg }

// apiError turns a failed call into a readable error: vflagd's refusal
// (its message names the VF, PF or holder), or why vflagd is unreachable.
func (h *Hook) apiError(ctx context.Context, call string, err error) error {
	st := status.Convert(err)
	switch {
	case st.Code() == codes.Unavailable:
		return &unreachableError{msg: diagnose(h.Config.Socket)}
	case st.Code() == codes.DeadlineExceeded || ctx.Err() != nil:
		return &unreachableError{msg: fmt.Sprintf("vflagd at %s did not answer within %s (timeout in %s)", h.Config.Socket, h.Config.Timeout, h.Config.where())}
	case st.Code() == codes.PermissionDenied:
		return fmt.Errorf("vflagd refuses the hook: %s", st.Message())
	}
	return &refusal{code: st.Code(), msg: fmt.Sprintf("vflagd refuses to %s: %s", call, st.Message())}
}

// refusal is vflagd saying no; it keeps the gRPC code for callers that
// branch on it (status.Code of cause).
type refusal struct {
	code codes.Code
	msg  string
}

func (r *refusal) Error() string { return r.msg }

// GRPCStatus lets status.Code see the code.
func (r *refusal) GRPCStatus() *status.Status { return status.New(r.code, r.msg) }

// cause returns the refusal inside err, if any.
func cause(err error) error {
	var r *refusal
	if errors.As(err, &r) {
		return r
	}
	return err
}

// diagnose says why the socket does not answer.
func diagnose(socket string) string {
	if _, err := os.Stat(socket); errors.Is(err, os.ErrNotExist) {
		return fmt.Sprintf("vflagd is not running (no socket at %s)", socket)
	}
	c, err := net.DialTimeout("unix", socket, time.Second)
	switch {
	case err == nil:
		c.Close()
		return fmt.Sprintf("vflagd at %s accepts connections but does not answer", socket)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("vflagd is not running (%s refuses connections)", socket)
	case errors.Is(err, syscall.EACCES):
		return fmt.Sprintf("permission denied on %s", socket)
	}
	return fmt.Sprintf("vflagd at %s: %v", socket, err)
}

// failure is the error of a failed op, or nil with a warning when vflagd
// is unreachable and the settings say fail_open.
func (h *Hook) failure(op, name string, err error) error {
	var u *unreachableError
	if errors.As(err, &u) {
		if h.Config.FailOpen && op != "release" {
			h.warn(fmt.Sprintf("%s: %v; VM %s goes on WITHOUT vflag (fail_open: true in %s)", op, err, name, h.Config.where()))
			return nil
		}
		if op != "release" {
			return fmt.Errorf("%s: %w; start vflagd (systemctl start vflagd), or set fail_open: true in %s to run VMs without vflag while it is down",
				verb(op, name), err, h.Config.where())
		}
	}
	return fmt.Errorf("%s: %w", verb(op, name), err)
}

func (h *Hook) warn(msg string) {
	if h.Warn != nil {
		h.Warn(msg)
	}
}

// checkName checks the domain name before it reaches vflagd: the one
// libvirt passed, printable UTF-8 without '/' (vflagd keys allocations by
// VM/interface). Shell metacharacters are fine: no shell sees it.
func checkName(arg, xmlName string) error {
	switch {
	case arg != xmlName:
		return fmt.Errorf("libvirt named domain %q but the XML on stdin is of %q", arg, xmlName)
	case arg == "":
		return errors.New("empty domain name")
	case !utf8.ValidString(arg):
		return fmt.Errorf("domain name %q is not valid UTF-8", arg)
	case strings.ContainsRune(arg, '/'):
		return fmt.Errorf("domain name %q contains '/'", arg)
	case strings.IndexFunc(arg, unicode.IsControl) >= 0:
		return fmt.Errorf("domain name %q contains control characters", arg)
	}
	return nil
}

// oneLine joins a multi-line error (errors.Join) into one line: libvirt
// shows the hook's stderr inside one error message.
func oneLine(err error) error {
	return errors.New(strings.ReplaceAll(err.Error(), "\n", "; "))
}
