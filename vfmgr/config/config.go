package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vflag/vflag/rdmamgr"
	"github.com/vflag/vflag/vfmgr"
)

// DefaultPath is where vflagd reads its configuration.
const DefaultPath = "/etc/vflag/vflag.yaml"

// Config is vflagd's configuration. Parse and Load fill keys the file
// leaves out (or leaves empty) from Default, and per bond policy
// active-first, failback never, backend auto and mode software.
type Config struct {
	// Bonds are the bonds vflag manages (key bonds).
	Bonds []Bond `yaml:"bonds"`
	// Announce says how a moved VM's MAC is announced on its new port
	// (key announce).
	Announce Announce `yaml:"announce"`
	// HoldDown is how long a PF that regained carrier must keep it before
	// it counts as back (key hold_down; flap damping; default 200ms).
	HoldDown time.Duration `yaml:"hold_down"`
	// API is vflagd's local API socket (key api).
	API API `yaml:"api"`
	// Metrics is the Prometheus listener (key metrics).
	Metrics Metrics `yaml:"metrics"`
	// State is where allocations are persisted (key state).
	State Store `yaml:"state"`
	// Backends says where each NIC backend's binary is and what its
	// SHA-256 must be (key backends).
	Backends Backends `yaml:"backends"`
	// Libvirt is vflagd's connection to libvirtd (key libvirt).
	Libvirt Libvirt `yaml:"libvirt"`

	// file is the name errors cite ("" for a Config built in code).
	file string
	// lines maps each key present in the file ("bonds[0].pfs[1]") to its
	// line.
	lines map[string]int
}

// Bond is one managed bond: an active-backup bond over the two ports (PFs)
// of a NIC pair.
type Bond struct {
	// Name is the bond's netdev (key name, e.g. bond0).
	Name string `yaml:"name"`
	// PFs are its two ports (key pfs, e.g. [pf0, pf1]).
	PFs []string `yaml:"pfs"`
	// VFsPerPF is how many VFs of each PF vflag hands out, the lowest
	// numbered (key vfs_per_pf, 1..256, at most the PF's sriov_totalvfs).
	VFsPerPF int `yaml:"vfs_per_pf"`
	// Policy is the placement policy (key policy: active-first or
	// balance; default active-first).
	Policy vfmgr.Policy `yaml:"policy"`
	// Failback says whether and when VMs move back to a PF that came back
	// (key failback: never, or {after: 30s}; default never).
	Failback Failback `yaml:"failback"`
	// Backend is the NIC backend (key backend: auto, generic, ice or mlx5;
	// default auto, chosen from the PF's driver).
	Backend Backend `yaml:"backend"`
	// Mode is how the bond's VFs follow a failover (key mode: software,
	// vflagd re-homes each VM to a VF of the new port; hardware, the
	// NIC's VF-LAG carries them, ice and mlx5 only; default software).
	Mode Mode `yaml:"mode"`
	// RDMA is how the host's RDMA survives a port loss on this bond (key
	// rdma: off, soft for Soft-RoCE on the bond, hw to verify the NIC's
	// RoCE LAG; default off).
	RDMA rdmamgr.Mode `yaml:"rdma"`
}

// Failback says whether VMs move back to a PF once it has had carrier
// again for a while. In YAML it is `never` or `{after: 30s}`.
type Failback struct {
	// After is how long the PF must have had carrier (0: never).
	After time.Duration
}

// Never reports whether failback is off.
func (f Failback) Never() bool { return f.After == 0 }

// String renders the setting as in the file: "never" or "after 30s".
func (f Failback) String() string {
	if f.Never() {
		return "never"
	}
	return "after " + f.After.String()
}

// UnmarshalYAML reads `never` or a mapping with the single key after.
func (f *Failback) UnmarshalYAML(n *yaml.Node) error {
	const expected = "expected never or {after: <duration>} such as {after: 30s}"
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value != "never" {
			return &Error{Line: n.Line, Msg: fmt.Sprintf("%s, got %q", expected, n.Value)}
		}
		*f = Failback{}
		return nil
	case yaml.MappingNode:
		if len(n.Content) != 2 || n.Content[0].Value != "after" {
			k := n
			if len(n.Content) > 0 {
				k = n.Content[0]
			}
			return &Error{Line: k.Line, Msg: expected}
		}
		v := n.Content[1]
		d, err := time.ParseDuration(v.Value)
		if v.Kind != yaml.ScalarNode || err != nil {
			return &Error{Line: v.Line, Msg: fmt.Sprintf("after: expected a duration such as 30s, got %s", describe(v))}
		}
		if d <= 0 {
			return &Error{Line: v.Line, Msg: fmt.Sprintf("after: %s is not positive (to turn failback off, write failback: never)", v.Value)}
		}
		*f = Failback{After: d}
		return nil
	}
	return &Error{Line: n.Line, Msg: fmt.Sprintf("%s, got %s", expected, describe(n))}
}

// MarshalYAML writes the setting as UnmarshalYAML reads it.
func (f Failback) MarshalYAML() (any, error) {
	if f.Never() {
		return "never", nil
	}
	return map[string]string{"after": f.After.String()}, nil
}

// Backend names the NIC-family backend that re-homes VFs.
type Backend string

// The backends.
const (
	// BackendAuto picks the backend from the PF's driver.
	BackendAuto Backend = "auto"
	// BackendGeneric uses only rtnetlink VF settings (any SR-IOV NIC).
	BackendGeneric Backend = "generic"
	// BackendICE is Intel E810 (ice).
	BackendICE Backend = "ice"
	// BackendMLX5 is NVIDIA ConnectX (mlx5_core).
	BackendMLX5 Backend = "mlx5"
)

// Valid reports whether b is a backend vflag knows.
func (b Backend) Valid() bool {
	switch b {
	case BackendAuto, BackendGeneric, BackendICE, BackendMLX5:
		return true
	}
	return false
}

// Mode is how a bond's VFs follow a failover.
type Mode string

// The modes.
const (
	// ModeSoftware: vflagd re-homes each VM to a VF of the new port.
	ModeSoftware Mode = "software"
	// ModeHardware: the NIC's VF-LAG carries the VFs; vflagd verifies,
	// announces, and re-homes what the NIC cannot carry.
	ModeHardware Mode = "hardware"
)

// Backends configures the backend binaries vflagd runs, one process per
// backend in use, each checked against its SHA-256 before it runs (key
// backends: {generic: {path: ..., sha256: ...}, ice: ..., mlx5: ...}).
type Backends struct {
	// Generic is the generic backend (key generic).
	Generic BackendBinary `yaml:"generic"`
	// ICE is the Intel E810 backend (key ice).
	ICE BackendBinary `yaml:"ice"`
	// MLX5 is the NVIDIA ConnectX backend (key mlx5).
	MLX5 BackendBinary `yaml:"mlx5"`
}

// BackendBinary is one backend's binary.
type BackendBinary struct {
	// Path is the binary (key path; default
	// /usr/lib/vflag/backends/vflag-backend-<name>).
	Path string `yaml:"path"`
	// SHA256 is its expected SHA-256 in hex (key sha256; default: read
	// from <path>.sha256, which vflag's package installs beside it).
	SHA256 string `yaml:"sha256"`
}

// Binary returns the settings of the backend called name (generic, ice
// or mlx5; the zero value for any other).
func (b Backends) Binary(name Backend) BackendBinary {
	switch name {
	case BackendGeneric:
		return b.Generic
	case BackendICE:
		return b.ICE
	case BackendMLX5:
		return b.MLX5
	}
	return BackendBinary{}
}

// Announce says how a moved VM's MAC is announced on its new port.
type Announce struct {
	// Count is how many times each announcement is sent (key count, 1..100;
	// default 3).
	Count int `yaml:"count"`
	// Interval is the time between them (key interval; default 100ms).
	Interval time.Duration `yaml:"interval"`
	// RARPWithoutAddrs sends RARP frames, as QEMU does after a migration,
	// for a VM whose IP addresses are unknown (key rarp_without_addrs;
	// default true).
	RARPWithoutAddrs bool `yaml:"rarp_without_addrs"`
}

// API is vflagd's local API.
type API struct {
	// Socket is the Unix socket's path (key socket; default
	// /run/vflag/vflag.sock).
	Socket string `yaml:"socket"`
	// Group is the group allowed to use the socket (key group, e.g.
	// libvirt; default none: root only).
	Group string `yaml:"group"`
}

// Libvirt is vflagd's libvirt side (vfmgr/virt): it watches domains so
// that the VFs of a domain that stopped are released even when the hook
// could not say so, re-homes failover and hotswap interfaces by hot-unplug
// and hot-plug, and keeps the vflag-<bond> pool networks. vflagd keeps
// running while libvirtd is down and reconnects.
type Libvirt struct {
	// Enabled turns it on (key enabled; default true). Off, interfaces of
	// mode failover and hotswap keep their VF when its port fails.
	Enabled bool `yaml:"enabled"`
	// URI is libvirt's connection URI (key uri; default qemu:///system).
	URI string `yaml:"uri"`
	// UnplugTimeout bounds how long a guest may take to let go of a VF
	// on a hot-unplug (key unplug_timeout; default 1m). A guest that has
	// not let go by then keeps its VF and the move is retried.
	UnplugTimeout time.Duration `yaml:"unplug_timeout"`
}

// Metrics is the Prometheus listener.
type Metrics struct {
	// Listen is the host:port to serve /metrics on (key listen, e.g.
	// 127.0.0.1:9477; default "": off).
	Listen string `yaml:"listen"`
}

// Store is where vflagd persists allocations.
type Store struct {
	// Path is the database file (key path; default
	// /var/lib/vflag/state.db).
	Path string `yaml:"path"`
}

// Default returns the configuration with every default and no bonds.
func Default() Config {
	return Config{
		Announce: Announce{Count: 3, Interval: 100 * time.Millisecond, RARPWithoutAddrs: true},
		HoldDown: 200 * time.Millisecond,
		API:      API{Socket: "/run/vflag/vflag.sock"},
		State:    Store{Path: "/var/lib/vflag/state.db"},
		Libvirt:  Libvirt{Enabled: true, URI: "qemu:///system", UnplugTimeout: time.Minute},
	}
}

// Load reads and checks the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a configuration; name is the file name
// errors cite.
func Parse(name string, data []byte) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: name, Key: "bonds", Msg: "the file is empty; at least one bond is required"}
		}
		return nil, yamlError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, yamlError(name, err)
		}
		return nil, &Error{File: name, Line: extra.Line, Msg: "a second YAML document; the file holds one"}
	}

	// Check the shape against Config's first, for errors with lines and
	// keys; then decode strictly.
	ck := checker{file: name, lines: map[string]int{}}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	ck.node(doc, typeOf[Config](), "")
	if len(ck.errs) > 0 {
		return nil, errors.Join(ck.errs...)
	}
	c := Default()
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(name, err)
	}
	c.file, c.lines = name, ck.lines
	for i := range c.Bonds {
		b := &c.Bonds[i]
		if b.Policy == "" {
			b.Policy = vfmgr.ActiveFirst
		}
		if b.Backend == "" {
			b.Backend = BackendAuto
		}
		if b.Mode == "" {
			b.Mode = ModeSoftware
		}
		if b.RDMA == "" {
			b.RDMA = rdmamgr.ModeOff
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// File is the name of the file the Config was read from ("" when built in
// code).
func (c *Config) File() string { return c.file }
