package virt

import (
	"errors"
	"fmt"

	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/vflag/vflag/hooks"
)

// SyncPool makes the libvirt network vflag-<bond> exist (persistent), be
// active and autostart, and list exactly vfs (PCI addresses, in that
// order: libvirt hands out the first one no port of the running network
// holds). vflagd calls it at start, at each (re)connection to libvirtd and
// after every change of the bond's free VFs: those of its active PF that
// no VM holds. It changes nothing when the network already is so. An
// empty vfs is a valid pool: a domain start then fails with "network
// 'vflag-bond0' requires exclusive access to interfaces, but none are
// available".
//
// How the live list can change, as libvirtd 11.3 behaved in the testbed
// with domains holding VFs from the network:
//
//   - virNetworkUpdate (virsh net-update) cannot edit a hostdev pool.
//     Section forward-interface rejects <address> ("unexpected element
//     <address>, expecting <interface>"); it accepts <interface dev=.../>,
//     but a domain then allocated that entry failed to start ("Invalid
//     PCI address bus='0x7f56'") and left a network port behind. Section
//     forward: "can't update 'forward' section".
//   - virNetworkDefineXML on an active network changes only the
//     persistent config; the live list, which libvirt allocates from,
//     stays until the network restarts. Without the network's UUID the
//     define fails ("network 'vflag-bond0' already exists with uuid ...").
//   - virNetworkDestroy + virNetworkCreate (net-destroy, net-start) apply
//     the new list and leave running domains and their VFs alone (still
//     running, VFs still on vfio-pci), but starting a network drops all
//     its ports (virsh net-port-list is empty after): libvirt forgets
//     which VF each domain holds. A domain stopped later has no port to
//     delete (libvirtd logs "network port not found", and goes on); QEMU's
//     driver still gives its VF back to igbvf.
//
// So SyncPool redefines the network under its UUID and restarts it
// whenever the live list differs, and vfs must hold only VFs nobody
// holds: a held VF listed again after a restart is handed out again —
// libvirt picked one a running domain had, and the start failed in QEMU's
// driver ("PCI device 0000:01:10.4 is in use by driver QEMU, domain d3")
// instead of trying the next. For the same reason a restart between
// libvirt allocating a VF and the start hook adopting it (vflagd does not
// know it is taken yet) can make a concurrent start fail (QEMU's driver,
// or the hook's "held by"); no VF goes to two domains. While the network
// restarts (two calls, milliseconds) a start allocating from it fails
// ("network 'vflag-bond0' is not active"); running domains are not
// disturbed.
func SyncPool(conn *libvirt.Connect, bond string, vfs []string) error {
	want, err := hooks.PoolNetwork(bond, vfs)
	if err != nil {
		return err
	}
	name := hooks.NetworkPrefix + bond
	var st poolState
	net, err := conn.LookupNetworkByName(name)
	var lerr libvirt.Error
	switch {
	case errors.As(err, &lerr) && lerr.Code == libvirt.ERR_NO_NETWORK:
		net = nil
	case err != nil:
		return fmt.Errorf("look up pool network %s: %w", name, err)
	default:
		defer func() { _ = net.Free() }()
		if st, err = readPoolState(net); err != nil {
			return fmt.Errorf("pool network %s: %w", name, err)
		}
	}
	steps, err := planPool(st, want)
	if err != nil {
		return fmt.Errorf("pool network %s: %w", name, err)
	}
	for _, s := range steps {
		switch s.op {
		case opDefine:
			n, err := conn.NetworkDefineXML(s.xml)
			if err != nil {
				return fmt.Errorf("define pool network %s (%d VFs): %w", name, len(vfs), err)
			}
			if net == nil {
				net = n
				defer func() { _ = net.Free() }()
			} else {
				_ = n.Free()
			}
		case opDestroy:
			if err := net.Destroy(); err != nil {
				return fmt.Errorf("stop pool network %s to apply its new VF list: %w", name, err)
			}
		case opStart:
			if err := net.Create(); err != nil {
				return fmt.Errorf("start pool network %s (%d VFs): %w", name, len(vfs), err)
			}
		case opAutostart:
			if err := net.SetAutostart(true); err != nil {
				return fmt.Errorf("set pool network %s to autostart: %w", name, err)
			}
		}
	}
	return nil
}

// readPoolState reads what SyncPool compares of an existing network.
func readPoolState(net *libvirt.Network) (poolState, error) {
	var st poolState
	var err error
	if st.persistent, err = net.IsPersistent(); err != nil {
		return st, fmt.Errorf("is it persistent: %w", err)
	}
	if st.config, err = net.GetXMLDesc(libvirt.NETWORK_XML_INACTIVE); err != nil {
		return st, fmt.Errorf("read its config: %w", err)
	}
	if st.active, err = net.IsActive(); err != nil {
		return st, fmt.Errorf("is it active: %w", err)
	}
	if st.active {
		if st.live, err = net.GetXMLDesc(0); err != nil {
			return st, fmt.Errorf("read its live XML: %w", err)
		}
	}
	if st.autostart, err = net.GetAutostart(); err != nil {
		return st, fmt.Errorf("read its autostart flag: %w", err)
	}
	return st, nil
}

// poolState is what libvirt has of a pool network; the zero value is a
// network that does not exist.
type poolState struct {
	persistent bool   // defined, not only created
	config     string // persistent (inactive) XML
	active     bool
	live       string // live XML, when active
	autostart  bool
}

// poolOp is one libvirt call of SyncPool.
type poolOp string

const (
	opDefine    poolOp = "define"    // virNetworkDefineXML
	opDestroy   poolOp = "destroy"   // virNetworkDestroy
	opStart     poolOp = "start"     // virNetworkCreate
	opAutostart poolOp = "autostart" // virNetworkSetAutostart(1)
)

// poolStep is a poolOp with the XML it defines.
type poolStep struct {
	op  poolOp
	xml string
}

func (s poolStep) String() string { return string(s.op) }

// planPool returns the calls that turn st into the network want
// (hooks.PoolNetwork's XML): define when the config differs (keeping the
// network's UUID), restart when the live list differs, start when
// inactive, and set autostart. XML is compared as libvirtxml reads it, so
// what libvirt adds (uuid, connections counts) does not count as a
// difference, while anything else does (an address, its order, the
// forward mode, managed, the driver, elements someone added).
func planPool(st poolState, want string) ([]poolStep, error) {
	wantNorm, err := normalNetwork(want)
	if err != nil {
		return nil, fmt.Errorf("the wanted XML: %w", err)
	}
	var steps []poolStep
	define := !st.persistent
	if !define {
		have, err := normalNetwork(st.config)
		if err != nil {
			return nil, fmt.Errorf("its config: %w", err)
		}
		define = have != wantNorm
	}
	if define {
		x := want
		if uuid := networkUUID(st.config); uuid != "" {
			if x, err = withUUID(want, uuid); err != nil {
				return nil, err
			}
		}
		steps = append(steps, poolStep{op: opDefine, xml: x})
	}
	switch {
	case !st.active:
		steps = append(steps, poolStep{op: opStart})
	default:
		have, err := normalNetwork(st.live)
		if err != nil {
			return nil, fmt.Errorf("its live XML: %w", err)
		}
		if have != wantNorm {
			steps = append(steps, poolStep{op: opDestroy}, poolStep{op: opStart})
		}
	}
	if !st.autostart {
		steps = append(steps, poolStep{op: opAutostart})
	}
	return steps, nil
}

// normalNetwork is raw as libvirtxml reads and writes it, without UUID.
func normalNetwork(raw string) (string, error) {
	var n libvirtxml.Network
	if err := n.Unmarshal(raw); err != nil {
		return "", fmt.Errorf("network XML: %w", err)
	}
	n.UUID = ""
	return n.Marshal()
}

// networkUUID is the UUID in a network's XML, or "".
func networkUUID(raw string) string {
	var n libvirtxml.Network
	if raw == "" || n.Unmarshal(raw) != nil {
		return ""
	}
	return n.UUID
}

// withUUID returns raw with its UUID set: a network redefined under its
// name keeps its identity.
func withUUID(raw, uuid string) (string, error) {
	var n libvirtxml.Network
	if err := n.Unmarshal(raw); err != nil {
		return "", fmt.Errorf("network XML: %w", err)
	}
	n.UUID = uuid
	return n.Marshal()
}
