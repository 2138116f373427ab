package announce

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// ErrInvalid is wrapped by every error that reports an invalid Announcement
// or frame-builder argument, so that callers can tell bad input from a failed
// send.
var ErrInvalid = errors.New("invalid announcement")

// Limits of the 802.1Q tag fields (IEEE 802.1Q §9.6: VID 4095 is reserved,
// PCP is 3 bits).
const (
	// MaxVLAN is the highest VLAN ID an Announcement may carry.
	MaxVLAN = 4094
	// MaxPriority is the highest 802.1p priority code point.
	MaxPriority = 7
)

// Announcement is what to announce for one VM MAC.
type Announcement struct {
	// MAC is the VM's unicast MAC address; it is the Ethernet source of every
	// frame, so it is what the switches learn.
	MAC net.HardwareAddr
	// VLAN is the 802.1Q VLAN ID the VM's traffic uses on the wire: 0 for
	// untagged, 1..4094 for tagged.
	VLAN int
	// Priority is the 802.1p priority code point (0..7) of the tag. A
	// non-zero Priority with VLAN 0 yields a priority-tagged frame (VID 0).
	Priority int
	// Addrs are the VM's IPv4 and IPv6 addresses: a gratuitous ARP is built
	// for each IPv4 and an unsolicited NA for each IPv6 address. IPv4-mapped
	// IPv6 addresses (::ffff:a.b.c.d, as netip.AddrFromSlice returns for a
	// 16-byte net.IP) are normalised to IPv4 and get a gratuitous ARP;
	// zones are ignored. When Addrs is empty a RARP frame is built instead.
	Addrs []netip.Addr
}

// Validate reports whether a can be announced: MAC must be a 6-byte unicast,
// non-zero address, VLAN within 0..4094, Priority within 0..7, and every
// address a unicast, non-loopback, specified IPv4 or IPv6 address. The error
// wraps ErrInvalid and names the MAC.
func (a Announcement) Validate() error {
	if err := a.validateLink(); err != nil {
		return err
	}
	for _, ip := range a.Addrs {
		if err := validateAddr(ip); err != nil {
			return fmt.Errorf("announcement for %s: %w", a.MAC, err)
		}
	}
	return nil
}

// validateLink checks what every frame of a needs: the MAC and the tag.
func (a Announcement) validateLink() error {
	switch {
	case len(a.MAC) != 6:
		return fmt.Errorf("announcement for mac %q: not a 48-bit MAC address: %w", a.MAC, ErrInvalid)
	case a.MAC[0]&1 != 0:
		return fmt.Errorf("announcement for %s: multicast MAC address: %w", a.MAC, ErrInvalid)
	case isZero(a.MAC):
		return fmt.Errorf("announcement for %s: zero MAC address: %w", a.MAC, ErrInvalid)
	case a.VLAN < 0 || a.VLAN > MaxVLAN:
		return fmt.Errorf("announcement for %s: vlan %d out of range 0..%d: %w", a.MAC, a.VLAN, MaxVLAN, ErrInvalid)
	case a.Priority < 0 || a.Priority > MaxPriority:
		return fmt.Errorf("announcement for %s: priority %d out of range 0..%d: %w", a.MAC, a.Priority, MaxPriority, ErrInvalid)
	}
	return nil
}

// validateAddr checks one address of an Announcement.
func validateAddr(ip netip.Addr) error {
	if !ip.IsValid() {
		return fmt.Errorf("zero netip.Addr: %w", ErrInvalid)
	}
	ip = ip.Unmap()
	switch {
	case ip.IsUnspecified():
		return fmt.Errorf("address %s is unspecified: %w", ip, ErrInvalid)
	case ip.IsMulticast():
		return fmt.Errorf("address %s is multicast: %w", ip, ErrInvalid)
	case ip.IsLoopback():
		return fmt.Errorf("address %s is loopback: %w", ip, ErrInvalid)
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("address %s is the limited broadcast address: %w", ip, ErrInvalid)
	}
	return nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
