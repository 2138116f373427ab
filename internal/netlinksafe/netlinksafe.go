package netlinksafe

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// MaxAttempts is how many times a dump is tried before an interrupted dump is
// reported as an error.
const MaxAttempts = 5

// Handle runs netlink dumps with retries on netlink.ErrDumpInterrupted. The
// zero value uses netlink's default handle (the network namespace of the
// calling thread). A Handle is safe for concurrent use exactly when the
// netlink.Handle it wraps is (the default one is).
type Handle struct {
	// nl is the wrapped handle; nil means netlink's package-level functions.
	nl *netlink.Handle
}

// New wraps h; a nil h means netlink's default handle.
func New(h *netlink.Handle) *Handle { return &Handle{nl: h} }

// Retry calls dump until it returns something other than
// netlink.ErrDumpInterrupted, at most MaxAttempts times. If every attempt was
// interrupted, it returns the zero T and an error that wraps
// netlink.ErrDumpInterrupted and says "(dump interrupted N times)"; op names
// the dump in errors ("list links"). Other errors are returned after the first
// attempt, wrapped with op. Retry is the seam for unit tests and for dumps
// that Handle does not wrap yet.
func Retry[T any](op string, dump func() (T, error)) (T, error) {
	var zero T
	var err error
	for range MaxAttempts {
		var res T
		res, err = dump()
		if err == nil {
			return res, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return zero, fmt.Errorf("%s: %w", op, err)
		}
	}
	return zero, fmt.Errorf("%s (dump interrupted %d times): %w", op, MaxAttempts, err)
}

// LinkList lists all links (`ip link show`), with each link's VF list
// (RTEXT_FILTER_VF).
func (h *Handle) LinkList() ([]netlink.Link, error) {
	return Retry("list links", func() ([]netlink.Link, error) {
		if h.nl == nil {
			return netlink.LinkList()
		}
		return h.nl.LinkList()
	})
}

// AddrList lists the addresses of link (nil: of all links) in family
// (netlink.FAMILY_ALL, FAMILY_V4, FAMILY_V6).
func (h *Handle) AddrList(link netlink.Link, family int) ([]netlink.Addr, error) {
	op := "list addresses"
	if link != nil {
		op += " of " + link.Attrs().Name
	}
	return Retry(op, func() ([]netlink.Addr, error) {
		if h.nl == nil {
			return netlink.AddrList(link, family)
		}
		return h.nl.AddrList(link, family)
	})
}

// NeighList lists the neighbour entries of the link with index linkIndex (0:
// of all links) in family (netlink.FAMILY_ALL, FAMILY_V4, FAMILY_V6,
// unix.AF_BRIDGE for the FDB).
func (h *Handle) NeighList(linkIndex, family int) ([]netlink.Neigh, error) {
	op := "list neighbours"
	if linkIndex != 0 {
		op = fmt.Sprintf("list neighbours of link %d", linkIndex)
	}
	return Retry(op, func() ([]netlink.Neigh, error) {
		if h.nl == nil {
			return netlink.NeighList(linkIndex, family)
		}
		return h.nl.NeighList(linkIndex, family)
	})
}

// LinkByName looks a link up by name, with its VF list. A missing link gives
// an error that matches netlink.LinkNotFoundError with errors.As.
func (h *Handle) LinkByName(name string) (netlink.Link, error) {
	return Retry("link "+name, func() (netlink.Link, error) {
		if h.nl == nil {
			return netlink.LinkByName(name)
		}
		return h.nl.LinkByName(name)
	})
}

// LinkByIndex looks a link up by index, with its VF list. A missing link
// gives an error that matches netlink.LinkNotFoundError with errors.As.
func (h *Handle) LinkByIndex(index int) (netlink.Link, error) {
	return Retry(fmt.Sprintf("link %d", index), func() (netlink.Link, error) {
		if h.nl == nil {
			return netlink.LinkByIndex(index)
		}
		return h.nl.LinkByIndex(index)
	})
}
