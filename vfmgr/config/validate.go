package config

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/vflag/vflag/vfmgr"
)

// Limits of the values.
const (
	// MaxVFsPerPF is the most VFs per PF vflag hands out (the PCIe SR-IOV
	// capability allows more; no NIC vflag supports has more than 256).
	MaxVFsPerPF = 256
	// MaxAnnounceCount bounds announce.count.
	MaxAnnounceCount = 100
	// ifNameMax is the longest interface name: IFNAMSIZ (16) less the NUL.
	ifNameMax = 15
)

// Validate checks every value and returns all problems joined, each an
// *Error naming the key and, for a parsed file, the line. It does not look
// at the host: see PFs and CheckHost.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, c.Errorf(key, format, args...))
	}
	if len(c.Bonds) == 0 {
		add("bonds", "at least one bond is required")
	}
	bonds := map[string]string{} // bond name -> key
	pfs := map[string]string{}   // PF name -> key
	for i, b := range c.Bonds {
		k := fmt.Sprintf("bonds[%d]", i)
		if msg := checkIfname(b.Name); msg != "" {
			add(k+".name", "%s", msg)
		} else if prev, dup := bonds[b.Name]; dup {
			add(k+".name", "bond %s is already defined (%s)", b.Name, c.where(prev))
		} else {
			bonds[b.Name] = k + ".name"
		}
		if len(b.PFs) != 2 {
			add(k+".pfs", "a bond needs exactly 2 PFs for now (vflag moves VFs between the two ports of a NIC pair), got %d", len(b.PFs))
		}
		for j, pf := range b.PFs {
			pk := fmt.Sprintf("%s.pfs[%d]", k, j)
			switch msg := checkIfname(pf); {
			case msg != "":
				add(pk, "%s", msg)
			case pf == b.Name:
				add(pk, "%s is the bond itself, not one of its ports", pf)
			case pfs[pf] != "":
				add(pk, "%s is already a port of %s (%s); each PF serves one bond", pf, c.bondOf(pfs[pf]), c.where(pfs[pf]))
			default:
				pfs[pf] = pk
			}
		}
		if _, inFile := c.lines[k+".vfs_per_pf"]; b.VFsPerPF == 0 && c.lines != nil && !inFile {
			add(k+".vfs_per_pf", "missing, expected how many VFs of each PF to use, 1..%d", MaxVFsPerPF)
		} else if b.VFsPerPF < 1 || b.VFsPerPF > MaxVFsPerPF {
			add(k+".vfs_per_pf", "%d is out of range, expected 1..%d", b.VFsPerPF, MaxVFsPerPF)
		}
		if !b.Policy.Valid() {
			add(k+".policy", "unknown policy %q, expected %s or %s", b.Policy, vfmgr.ActiveFirst, vfmgr.Balance)
		}
		if b.Failback.After < 0 {
			add(k+".failback", "after: %s is not positive (to turn failback off, write failback: never)", b.Failback.After)
		}
		if b.RDMA != "" {
			if err := b.RDMA.Validate(); err != nil {
				add(k+".rdma", "unknown mode %q, expected hw, soft or off", b.RDMA)
			}
		}
		if b.Mode != "" && b.Mode != ModeSoftware && b.Mode != ModeHardware {
			add(k+".mode", "unknown mode %q, expected %s or %s", b.Mode, ModeSoftware, ModeHardware)
		}
		if b.Mode == ModeHardware && b.Backend == BackendGeneric {
			add(k+".mode", "hardware mode needs a NIC with VF-LAG (backend ice or mlx5, or auto); backend generic re-homes VFs in software")
		}
		if !b.Backend.Valid() {
			add(k+".backend", "unknown backend %q, expected %s, %s, %s or %s", b.Backend, BackendAuto, BackendGeneric, BackendICE, BackendMLX5)
		}
	}
	if n := c.Announce.Count; n < 1 || n > MaxAnnounceCount {
		add("announce.count", "%d is out of range, expected 1..%d", n, MaxAnnounceCount)
	}
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			add(key, "%s is not positive", d)
		}
	}
	positive("announce.interval", c.Announce.Interval)
	positive("hold_down", c.HoldDown)
	positive("libvirt.unplug_timeout", c.Libvirt.UnplugTimeout)
	if !filepath.IsAbs(c.API.Socket) {
		add("api.socket", "%q is not an absolute path", c.API.Socket)
	}
	if g := c.API.Group; g != "" && (len(g) > 32 || strings.HasPrefix(g, "-") || strings.ContainsFunc(g, func(r rune) bool { return r == ':' || r == '/' || unicode.IsSpace(r) })) {
		add("api.group", "%q is not a valid group name", g)
	}
	if l := c.Metrics.Listen; l != "" {
		if msg := checkListen(l); msg != "" {
			add("metrics.listen", "%s", msg)
		}
	}
	if c.Libvirt.Enabled && c.Libvirt.URI == "" {
		add("libvirt.uri", "is empty (leave the key out for qemu:///system, or write enabled: false)")
	}
	if !filepath.IsAbs(c.State.Path) {
		add("state.path", "%q is not an absolute path", c.State.Path)
	}
	for _, name := range []Backend{BackendGeneric, BackendICE, BackendMLX5} {
		b, k := c.Backends.Binary(name), "backends."+string(name)
		if b.Path != "" && !filepath.IsAbs(b.Path) {
			add(k+".path", "%q is not an absolute path", b.Path)
		}
		if b.SHA256 != "" && !isSHA256(b.SHA256) {
			add(k+".sha256", "%q is not a SHA-256: expected 64 hex digits, as sha256sum prints them", b.SHA256)
		}
	}
	return errors.Join(errs...)
}

// isSHA256 reports whether s is 64 hex digits.
func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return true
}

// checkIfname says what is wrong with an interface name, as the kernel's
// dev_valid_name (net/core/dev.c) sees it, or "".
func checkIfname(name string) string {
	switch {
	case name == "":
		return "empty interface name"
	case len(name) > ifNameMax:
		return fmt.Sprintf("interface name %q is longer than %d characters", name, ifNameMax)
	case name == "." || name == "..":
		return fmt.Sprintf("%q is not a valid interface name", name)
	case strings.ContainsFunc(name, func(r rune) bool { return r == '/' || r == ':' || unicode.IsSpace(r) }):
		return fmt.Sprintf("interface name %q contains '/', ':' or whitespace", name)
	}
	return ""
}

// checkListen says what is wrong with a host:port, or "".
func checkListen(l string) string {
	const expected = "expected host:port such as 127.0.0.1:9477, or \"\" for off"
	host, port, err := net.SplitHostPort(l)
	if err != nil {
		return fmt.Sprintf("%q: %s", l, expected)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("port %q of %q is not 1..65535", port, l)
	}
	if strings.ContainsFunc(host, unicode.IsSpace) {
		return fmt.Sprintf("%q: %s", l, expected)
	}
	return ""
}

// Errorf returns an *Error at key ("bonds[0].pfs[1]"), placed at the
// key's line in the file, or at the nearest enclosing key's line when the
// key is not in the file. The daemon uses it to report what it finds on
// the host.
func (c *Config) Errorf(key, format string, args ...any) error {
	return c.errorAt(key, fmt.Sprintf(format, args...))
}

// errorAt returns the *Error of Errorf.
func (c *Config) errorAt(key, msg string) *Error {
	return &Error{File: c.file, Line: c.Line(key), Key: key, Msg: msg}
}

// Line returns the line of key in the file, or of its nearest enclosing
// key present there; 0 when none is (or the Config was built in code).
func (c *Config) Line(key string) int {
	for key != "" {
		if line, ok := c.lines[key]; ok {
			return line
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

// where renders key's position for messages: "line 4" or the key.
func (c *Config) where(key string) string {
	if line := c.Line(key); line > 0 {
		return fmt.Sprintf("line %d", line)
	}
	return key
}

// bondOf returns the name of the bond a "bonds[i]..." key is under.
func (c *Config) bondOf(key string) string {
	var i int
	if _, err := fmt.Sscanf(key, "bonds[%d]", &i); err == nil && i >= 0 && i < len(c.Bonds) {
		return c.Bonds[i].Name
	}
	return key
}

// PFSpec is one PF the configuration names, with what the daemon must
// check on the host.
type PFSpec struct {
	// Bond is the bond the PF must be a port of.
	Bond string
	// PF is the PF's netdev name.
	PF string
	// VFs is how many VFs vflag will use (vfs_per_pf): sriov_totalvfs must
	// be at least that, and sriov_numvfs is set to at least that.
	VFs int
	// Key is the PF's key, for Errorf ("bonds[0].pfs[1]").
	Key string
}

// PFs lists every PF of every bond, in file order.
func (c *Config) PFs() []PFSpec {
	var out []PFSpec
	for i, b := range c.Bonds {
		for j, pf := range b.PFs {
			out = append(out, PFSpec{Bond: b.Name, PF: pf, VFs: b.VFsPerPF, Key: fmt.Sprintf("bonds[%d].pfs[%d]", i, j)})
		}
	}
	return out
}

// CheckHost checks the PFs against the host, as lookup reports them (the
// daemon's inventory from rtnetlink and sysfs; lookup's error for a
// missing PF should wrap os.ErrNotExist or vfmgr.ErrNotManaged): each PF
// exists, is a port of its bond, and has at least vfs_per_pf VFs
// (sriov_totalvfs). It returns all problems joined, each an *Error at the
// key's line that wraps lookup's error, if any.
func (c *Config) CheckHost(lookup func(pf string) (vfmgr.PF, error)) error {
	var errs []error
	for _, s := range c.PFs() {
		pf, err := lookup(s.PF)
		if err != nil {
			e := c.errorAt(s.Key, fmt.Sprintf("PF %s of %s", s.PF, s.Bond))
			e.Err = err
			errs = append(errs, e)
			continue
		}
		if pf.Bond != s.Bond {
			master := pf.Bond
			if master == "" {
				master = "none"
			}
			errs = append(errs, c.Errorf(s.Key, "%s (%s) is not a port of %s (its master: %s)", s.PF, pf.PCI, s.Bond, master))
		}
		if pf.TotalVFs < s.VFs {
			key := s.Key[:strings.LastIndex(s.Key, ".pfs[")] + ".vfs_per_pf"
			errs = append(errs, c.Errorf(key, "%d VFs wanted, but %s (%s, %s) has sriov_totalvfs %d", s.VFs, s.PF, pf.PCI, pf.Driver, pf.TotalVFs))
		}
	}
	return errors.Join(errs...)
}

// PoolSpec returns the vfmgr.PoolSpec of the bond from the daemon's
// inventory: its PFs (in the order of pfs) with their VFs, of which the
// lowest vfs_per_pf are used, the bond's active port and the time of the
// inventory.
func (b Bond) PoolSpec(pfs [2]vfmgr.PF, vfs [2][]vfmgr.VF, active string, at time.Time) vfmgr.PoolSpec {
	spec := vfmgr.PoolSpec{Bond: b.Name, Policy: b.Policy, FailbackAfter: b.Failback.After, PFs: pfs, Active: active, At: at}
	for i := range vfs {
		v := slices.Clone(vfs[i])
		slices.SortFunc(v, func(x, y vfmgr.VF) int { return x.Index - y.Index })
		if len(v) > b.VFsPerPF {
			v = v[:b.VFsPerPF]
		}
		spec.VFs[i] = v
	}
	return spec
}
