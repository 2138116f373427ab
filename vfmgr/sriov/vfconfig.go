package sriov

import (
	"context"
	"fmt"
	"net"
)

// VFConfig is what a PF enforces on one of its VFs.
type VFConfig struct {
	// MAC is the administrative MAC; nil (or all zeros) clears it, which
	// lets the VF's own driver choose one again (igb_ndo_set_vf_mac accepts
	// the zero address for this; older kernels and some drivers refuse it).
	MAC net.HardwareAddr
	// VLAN is the port VLAN (0: untagged, 1-4094) and QoS its 802.1p
	// priority (0-7).
	VLAN, QoS int
	// SpoofChk drops frames whose source MAC is not the VF's.
	SpoofChk bool
	// Trust lets the VF change its MAC and enter promiscuous or
	// all-multicast mode.
	Trust bool
}

// Validate checks the ranges the kernel accepts (do_setvfinfo in
// net/core/rtnetlink.c) and that MAC is a unicast Ethernet address.
func (c VFConfig) Validate() error {
	switch {
	case len(c.MAC) != 0 && len(c.MAC) != 6:
		return fmt.Errorf("MAC %s is not an Ethernet address", c.MAC)
	case len(c.MAC) == 6 && c.MAC[0]&1 != 0:
		return fmt.Errorf("MAC %s is a multicast address", c.MAC)
	case c.VLAN < 0 || c.VLAN > 4094:
		return fmt.Errorf("VLAN %d out of range 0-4094", c.VLAN)
	case c.QoS < 0 || c.QoS > 7:
		return fmt.Errorf("QoS %d out of range 0-7", c.QoS)
	}
	return nil
}

// String renders the settings as `ip link set PF vf N` would take them.
func (c VFConfig) String() string {
	mac := "00:00:00:00:00:00"
	if len(c.MAC) > 0 {
		mac = c.MAC.String()
	}
	return fmt.Sprintf("mac %s vlan %d qos %d spoofchk %s trust %s", mac, c.VLAN, c.QoS, onOff(c.SpoofChk), onOff(c.Trust))
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// ConfigureVF applies cfg to VF idx of pf through the PF, in the order MAC,
// VLAN and QoS, spoof checking, trust. If a step fails, the steps already
// applied are set back to the VF's previous settings, latest first, and the
// error names the VF, its PCI address and the step; if setting them back
// fails too, the error reports both ("rollback failed: ...").
//
// ctx is checked before the first change only: once started, the change
// runs to the end or is rolled back.
func (k *Kernel) ConfigureVF(ctx context.Context, pf string, idx int, cfg VFConfig) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("configure %s vf %d: %w", pf, idx, err)
	}
	pci, err := k.vfPCI(pf, idx)
	if err != nil {
		return fmt.Errorf("configure %w", err)
	}
	id := fmt.Sprintf("%s vf %d (%s)", pf, idx, pci)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configure %s: %w", id, err)
	}
	links := k.rtnl()
	link, settings, err := links.vfs(pf)
	if err != nil {
		return fmt.Errorf("configure %s: read current settings: %w", id, err)
	}
	if idx >= len(settings) {
		return fmt.Errorf("configure %s: not in the PF's rtnetlink VF list (%d entries)", id, len(settings))
	}
	prev := settings[idx]

	// Each step sets one setting, to cfg's value or, on rollback, to prev's.
	// The errors of netlinkVFs say which setting and value ("ip link set
	// pf0 vf 3 vlan 100 qos 0: ...").
	steps := []func(VFConfig) error{
		func(c VFConfig) error { return links.setMAC(link, idx, c.MAC) },
		func(c VFConfig) error { return links.setVLAN(link, idx, c.VLAN, c.QoS) },
		func(c VFConfig) error { return links.setSpoofChk(link, idx, c.SpoofChk) },
		func(c VFConfig) error { return links.setTrust(link, idx, c.Trust) },
	}
	for i, set := range steps {
		err := set(cfg)
		if err == nil {
			continue
		}
		// The failed step is not undone: the kernel rejected it.
		var undoErrs []error
		for j := i - 1; j >= 0; j-- {
			if uerr := steps[j](prev); uerr != nil {
				undoErrs = append(undoErrs, uerr)
			}
		}
		if len(undoErrs) > 0 {
			undoErr := undoErrs[0]
			for _, e := range undoErrs[1:] {
				undoErr = fmt.Errorf("%w; %w", undoErr, e)
			}
			return fmt.Errorf("configure %s: %w (rollback failed: %w)", id, err, undoErr)
		}
		return fmt.Errorf("configure %s: %w (rolled back)", id, err)
	}
	return nil
}

// ResetVF puts VF idx of pf back to the settings of a free VF: no MAC,
// VLAN 0, spoof checking on, trust off. vflagd calls it on release.
func (k *Kernel) ResetVF(ctx context.Context, pf string, idx int) error {
	if err := k.ConfigureVF(ctx, pf, idx, VFConfig{SpoofChk: true}); err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	return nil
}
