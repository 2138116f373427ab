package rdmamgr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
)

// Default timing of the check after creating a Soft-RoCE device.
const (
	// DefaultVerifyTimeout is how long Ensure waits for a Soft-RoCE device
	// to be bound to the bond with a GID for each of its addresses.
	DefaultVerifyTimeout = 2 * time.Second
	// pollInterval is how often Ensure looks meanwhile.
	pollInterval = 50 * time.Millisecond
)

// Options change what Ensure may do.
type Options struct {
	// ReplacePortRXE lets Ensure in mode soft delete Soft-RoCE devices that
	// sit on one of the bond's ports (they die with that port), once
	// rxe_<bond> is ready. Without it Ensure refuses and names them.
	ReplacePortRXE bool
}

// Manager keeps RDMA working on bonds across the loss of a port. The zero
// value works on the host: /sys, netlink's default handle, no logs. It
// holds no state of its own; its methods may run concurrently, but Ensure
// calls for the same bond must be serialised by the caller (two concurrent
// creations of rxe_<bond> race in the kernel).
type Manager struct {
	// Sysfs is where sysfs is mounted; "" means "/sys". It must show the
	// network namespace Links works in (vflagd: the host's).
	Sysfs string
	// Links is the netlink side; nil means &Netlink{} (the default handle).
	Links LinkAPI
	// Log receives what Ensure changes; nil discards.
	Log *slog.Logger
	// Options change what Ensure may do.
	Options Options

	// verifyTimeout replaces DefaultVerifyTimeout in unit tests.
	verifyTimeout time.Duration
}

func (m *Manager) root() string {
	if m.Sysfs == "" {
		return "/sys"
	}
	return m.Sysfs
}

func (m *Manager) links() LinkAPI {
	if m.Links == nil {
		return &Netlink{}
	}
	return m.Links
}

func (m *Manager) logger() *slog.Logger {
	if m.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Log
}

func (m *Manager) timeout() time.Duration {
	if m.verifyTimeout > 0 {
		return m.verifyTimeout
	}
	return DefaultVerifyTimeout
}

// RXEName is the name of the Soft-RoCE device vflag creates for bond:
// "rxe_" + bond. ModeOff deletes a device of that name and no other.
func RXEName(bond string) string { return "rxe_" + bond }

// Ensure puts RDMA on bond into mode and returns its status afterwards.
//
//   - ModeHW checks that the NIC's RoCE LAG serves the bond (one hardware
//     RDMA device for the bond) and creates nothing; the error (ErrNoLAG)
//     names the devices found on the bond's ports, or their drivers.
//   - ModeSoft makes sure a Soft-RoCE device rxe_<bond> is bound to the
//     bond (an rxe device already on the bond under another name is
//     accepted). It refuses without the rdma_rxe module (ErrNoRXEModule),
//     without an address on the bond (ErrNoAddress), and while an rxe
//     device sits on one of the bond's ports (ErrPortRXE; see
//     Options.ReplacePortRXE). A device it creates must show a GID for each
//     of the bond's addresses within DefaultVerifyTimeout, or it is deleted
//     again (ErrNotReady). A second call finds the device and changes
//     nothing.
//   - ModeOff deletes rxe_<bond> if it exists, and nothing else; the bond
//     itself may be gone.
//
// Problems that do not stop the mode (a port that is DOWN) are in the
// Status, not the error.
func (m *Manager) Ensure(ctx context.Context, bond string, mode Mode) (Status, error) {
	if err := mode.Validate(); err != nil {
		err = fmt.Errorf("rdma on %s: %w", bond, err)
		return failed(bond, mode, err), err
	}
	v, err := m.gather(ctx, bond, mode)
	if err != nil {
		err = fmt.Errorf("rdma mode %s on %s: %w", mode, bond, err)
		return failed(bond, mode, err), err
	}
	log := m.logger().With("bond", bond, "mode", string(mode))
	switch mode {
	case ModeHW:
		st, fs := judge(v)
		if f, ok := find(fs, ErrNoLAG); ok {
			return st, v.err(f)
		}
		log.Debug("RoCE LAG serves the bond", "device", st.Device, "netdev", st.Netdev)
		return st, nil
	case ModeSoft:
		return m.ensureSoft(ctx, v, log)
	default:
		return m.ensureOff(ctx, v, log)
	}
}

// Check reports the RDMA status of bond against mode without changing
// anything: for ModeHW and ModeSoft that a device serves the bond, its port
// is ACTIVE and its GIDs cover the bond's addresses; for ModeOff that no
// rxe_<bond> is left. Each problem is one line that ends with its fix.
func (m *Manager) Check(ctx context.Context, bond string, mode Mode) Status {
	if err := mode.Validate(); err != nil {
		return failed(bond, mode, err)
	}
	v, err := m.gather(ctx, bond, mode)
	if err != nil {
		return failed(bond, mode, err)
	}
	st, _ := judge(v)
	return st
}

func (m *Manager) ensureSoft(ctx context.Context, v view, log *slog.Logger) (Status, error) {
	st, fs := judge(v)
	for _, f := range fs {
		switch {
		case errors.Is(f.kind, ErrNoRXEModule), errors.Is(f.kind, ErrNoAddress), errors.Is(f.kind, ErrNameTaken),
			errors.Is(f.kind, ErrPortRXE) && !m.Options.ReplacePortRXE:
			return st, v.err(f)
		}
	}
	bond, name, on := v.bond.name, RXEName(v.bond.name), v.carrier()
	created := false
	if dev, _ := v.softOnBond(); dev == nil {
		if err := m.links().Add(ctx, name, driverRXE, on); err != nil {
			return st, fmt.Errorf("rdma mode soft on %s: create the Soft-RoCE device on %s: %w", bond, on, err)
		}
		created = true
		log.Info("created Soft-RoCE device", "device", name, "netdev", on)
	}
	v, st, open, err := m.await(ctx, v)
	if err == nil && open == nil {
		return m.replacePortRXE(ctx, v, st, log)
	}
	var fail error
	switch {
	case err != nil:
		fail = fmt.Errorf("rdma mode soft on %s: waiting for %s: %w", bond, name, err)
	case created:
		fail = fmt.Errorf("rdma mode soft on %s: %w: %s within %s", bond, ErrNotReady, open.what, m.timeout())
	default:
		fail = fmt.Errorf("%w (after %s)", v.err(*open), m.timeout())
	}
	// Nothing half-created: a device this call created goes again.
	if !created || (v.gatherErr == nil && v.byName(name) == nil) {
		return st, fail
	}
	if derr := m.links().Del(context.WithoutCancel(ctx), name); derr != nil {
		return st, fmt.Errorf("%w; deleting %s again failed too: %w", fail, name, derr)
	}
	log.Warn("deleted the Soft-RoCE device again: not ready", "device", name, "err", fail)
	st, _ = judge(m.regather(context.WithoutCancel(ctx), v))
	if err != nil {
		return st, fmt.Errorf("%w (deleted %s again)", fail, name)
	}
	return st, fmt.Errorf("%w; vflag deleted %s again: check the addresses of %s (ip addr show %s) and dmesg for rdma_rxe", fail, name, on, on)
}

// replacePortRXE deletes the Soft-RoCE devices on the bond's ports once
// the bond's own device is ready (st), if Options.ReplacePortRXE says so.
func (m *Manager) replacePortRXE(ctx context.Context, v view, st Status, log *slog.Logger) (Status, error) {
	bond := v.bond.name
	if !m.Options.ReplacePortRXE {
		return st, nil
	}
	var errs []error
	deleted := false
	for _, dp := range v.portRXE() {
		if err := m.links().Del(ctx, dp.dev.Name); err != nil {
			errs = append(errs, fmt.Errorf("delete %s on %s (replaced by %s): %w", dp.dev.Name, dp.port.Netdev, st.Device, err))
			continue
		}
		deleted = true
		log.Info("deleted Soft-RoCE device on a port of the bond", "device", dp.dev.Name, "netdev", dp.port.Netdev, "replaced_by", st.Device)
	}
	if deleted {
		st, _ = judge(m.regather(ctx, v))
	}
	if len(errs) > 0 {
		return st, fmt.Errorf("rdma mode soft on %s: %w", bond, errors.Join(errs...))
	}
	return st, nil
}

// await polls until a Soft-RoCE device on the bond has a GID for each of
// its addresses, for at most the verify timeout. It returns the last view
// and status and, when the device is not ready by then, the finding that
// says what is still missing; the error is the context's.
func (m *Manager) await(ctx context.Context, v view) (view, Status, *finding, error) {
	deadline := time.Now().Add(m.timeout())
	for {
		v = m.regather(ctx, v)
		st, fs := judge(v)
		f, notReady := find(fs, ErrNotReady)
		if v.gatherErr != nil {
			f, notReady = finding{kind: ErrNotReady, text: v.gatherErr.Error(), what: v.gatherErr.Error()}, true
		}
		if !notReady {
			return v, st, nil, nil
		}
		if !time.Now().Before(deadline) {
			return v, st, &f, nil
		}
		t := time.NewTimer(pollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, st, &f, ctx.Err()
		case <-t.C:
		}
	}
}

func (m *Manager) ensureOff(ctx context.Context, v view, log *slog.Logger) (Status, error) {
	name := RXEName(v.bond.name)
	if d := v.byName(name); d != nil && d.Driver == driverRXE {
		if err := m.links().Del(ctx, name); err != nil {
			return failed(v.bond.name, v.mode, err), fmt.Errorf("rdma mode off on %s: delete %s: %w", v.bond.name, name, err)
		}
		log.Info("deleted Soft-RoCE device", "device", name)
		v = m.regather(ctx, v)
	}
	st, _ := judge(v)
	return st, nil
}

// gather reads what judge needs about bond. In mode off the bond may be
// gone (its rxe device is then gone too: rxe follows NETDEV_UNREGISTER).
func (m *Manager) gather(ctx context.Context, bond string, mode Mode) (view, error) {
	v := view{mode: mode}
	_, statErr := os.Stat(m.netDir(bond))
	gone := mode == ModeOff && errors.Is(statErr, os.ErrNotExist) && bond != "" && !strings.Contains(bond, "/")
	if gone {
		v.bond = bondInfo{name: bond}
	} else {
		b, err := m.bond(bond)
		if err != nil {
			return view{}, err
		}
		v.bond = b
	}
	v.rxeLoaded = m.rxeLoaded()
	if mode != ModeOff {
		addrs, err := m.links().Addrs(ctx, v.carrier())
		if err != nil {
			return view{}, fmt.Errorf("addresses of %s: %w", v.carrier(), err)
		}
		v.addrs = required(addrs)
	}
	devs, err := m.Devices(ctx)
	switch {
	case errors.Is(err, ErrNoRDMA):
		v.noRDMA = true
	case err != nil:
		return view{}, err
	}
	v.devices = devs
	return v, nil
}

// regather re-reads v, keeping v (with gatherErr set) when that fails.
func (m *Manager) regather(ctx context.Context, v view) view {
	nv, err := m.gather(ctx, v.bond.name, v.mode)
	if err != nil {
		v.gatherErr = err
		return v
	}
	return nv
}
