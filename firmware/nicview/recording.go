package nicview

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"gopkg.in/yaml.v3"

	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/sriov"
)

// RecordedPort is one PF of a recording: what sysfs, ethtool, devlink and
// dcbnl said of it, and its VFs.
type RecordedPort struct {
	// Name is the netdev, PCI its address, Driver the PF driver.
	Name   string `yaml:"name"`
	PCI    string `yaml:"pci"`
	Driver string `yaml:"driver"`
	// TotalVFs and NumVFs are sriov_totalvfs and sriov_numvfs; a port
	// without SR-IOV records total_vfs 0 and no_sriov true.
	TotalVFs int  `yaml:"total_vfs"`
	NumVFs   int  `yaml:"num_vfs"`
	NoSRIOV  bool `yaml:"no_sriov"`
	// Carrier is the carrier file ("1").
	Carrier bool `yaml:"carrier"`
	// Master is the bond it is enslaved to ("" none).
	Master string `yaml:"master"`
	// FirstVF is the PCI address of VF 0 (the PF's First VF Offset); VF
	// i is i*VFStride functions after it (the SR-IOV VF Stride; 0 means
	// 1; igb's is 2). VFDriver is the driver VFs bind to.
	FirstVF  string `yaml:"first_vf"`
	VFStride int    `yaml:"vf_stride"`
	VFDriver string `yaml:"vf_driver"`
	// VFs are the existing VFs, by index (len = NumVFs).
	VFs []RecordedVF `yaml:"vfs"`
	// Ethtool is what `ethtool -i` and --show-priv-flags said.
	Ethtool Ethtool `yaml:"ethtool"`
	// Devlink is what devlink said of the PF's PCI device (nil: no
	// devlink instance).
	Devlink *Devlink `yaml:"devlink"`
	// DCB is what dcbnl said (nil: no DCB support).
	DCB *DCB `yaml:"dcb"`
}

// RecordedVF is one VF of a recording.
type RecordedVF struct {
	// Driver is the bound driver ("" unbound) and Netdev its host netdev
	// ("" none).
	Driver string `yaml:"driver"`
	Netdev string `yaml:"netdev"`
	// MAC, VLAN, QoS, SpoofChk and Trust are what the PF reports.
	MAC      string `yaml:"mac"`
	VLAN     int    `yaml:"vlan"`
	QoS      int    `yaml:"qos"`
	SpoofChk bool   `yaml:"spoofchk"`
	Trust    bool   `yaml:"trust"`
}

// RecordedBond is a bond of a recording (its bonding/ attributes).
type RecordedBond struct {
	Name        string   `yaml:"name"`
	Mode        string   `yaml:"mode"`
	Slaves      []string `yaml:"slaves"`
	Primary     string   `yaml:"primary"`
	Active      string   `yaml:"active"`
	MIIMon      int      `yaml:"miimon"`
	ARPInterval int      `yaml:"arp_interval"`
	ARPTargets  []string `yaml:"arp_ip_target"`
	FailOverMAC string   `yaml:"fail_over_mac"`
}

// Effect is a recorded reaction of the kernel: once the command After has
// run (as Recording logs it), Files have these contents.
type Effect struct {
	After string            `yaml:"after"`
	Files map[string]string `yaml:"files"`
}

// RecordedHost is the YAML form of a recording.
type RecordedHost struct {
	// Source says where the answers come from: a real kernel (and which),
	// or the public documentation they are modelled on.
	Source string `yaml:"source"`
	// Kernel is `uname -r`.
	Kernel string         `yaml:"kernel"`
	Ports  []RecordedPort `yaml:"ports"`
	Bonds  []RecordedBond `yaml:"bonds"`
	// Files are further files under the sysfs root (debugfs at
	// kernel/debug/...), by path relative to it.
	Files map[string]string `yaml:"files"`
	// Refuse maps a command (as logged) to the error the kernel answered.
	Refuse map[string]string `yaml:"refuse"`
	// Effects are the kernel's recorded reactions to commands.
	Effects []Effect `yaml:"effects"`
}

// Recording is a recorded host: a Device that answers from a
// RecordedHost, with its sysfs laid out under a directory. Changes update
// the recorded state and the tree, and are logged as the commands that
// would make them (Log). Safe for concurrent use.
type Recording struct {
	root string

	// mu guards host and log.
	mu   sync.Mutex
	host RecordedHost
	log  []string
}

var _ Device = (*Recording)(nil)

// LoadRecording reads a recording from the YAML file path and lays its
// sysfs out under dir (which must exist; a test's t.TempDir()).
func LoadRecording(path, dir string) (*Recording, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load recording: %w", err)
	}
	var h RecordedHost
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("load recording %s: %w", path, err)
	}
	return NewRecording(h, dir)
}

// NewRecording lays h's sysfs out under dir and returns the recording.
func NewRecording(h RecordedHost, dir string) (*Recording, error) {
	r := &Recording{root: dir, host: h}
	for i, p := range r.host.Ports {
		if len(p.VFs) != p.NumVFs {
			return nil, fmt.Errorf("recording: port %s: num_vfs %d but %d VFs listed", p.Name, p.NumVFs, len(p.VFs))
		}
		if p.NumVFs > 0 || p.FirstVF != "" {
			if _, err := ParsePCI(p.FirstVF); err != nil {
				return nil, fmt.Errorf("recording: port %s: first_vf: %w", p.Name, err)
			}
		}
		if err := r.layPort(i); err != nil {
			return nil, fmt.Errorf("recording: port %s: %w", p.Name, err)
		}
	}
	for _, b := range r.host.Bonds {
		if err := r.layBond(b); err != nil {
			return nil, fmt.Errorf("recording: bond %s: %w", b.Name, err)
		}
	}
	for rel, content := range r.host.Files {
		if err := r.writeFile(rel, content); err != nil {
			return nil, fmt.Errorf("recording: %w", err)
		}
	}
	return r, nil
}

// Log returns the commands the recording was asked to run, in order.
func (r *Recording) Log() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

// Source says where the recording's answers come from.
func (r *Recording) Source() string { return r.host.Source }

func (r *Recording) path(rel ...string) string {
	return filepath.Join(append([]string{r.root}, rel...)...)
}

func (r *Recording) writeFile(rel, content string) error {
	p := r.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(content+"\n"), 0o644)
}

func (r *Recording) symlink(target string, rel ...string) error {
	p := r.path(rel...)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.Symlink(target, p)
}

// pciDir is the device directory of a PCI address, relative to the root.
func pciDir(pci string) string { return filepath.Join("devices", "pci0000:00", pci) }

// layDevice lays out a PCI device bound to driver ("" unbound).
func (r *Recording) layDevice(pci, driver string) error {
	if err := os.MkdirAll(r.path(pciDir(pci)), 0o755); err != nil {
		return err
	}
	if err := r.symlink("../../../devices/pci0000:00/"+pci, "bus", "pci", "devices", pci); err != nil {
		return err
	}
	link := r.path(pciDir(pci), "driver")
	if driver == "" {
		if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	for _, f := range []string{"bind", "unbind"} {
		if _, err := os.Stat(r.path("bus", "pci", "drivers", driver, f)); err != nil {
			if err := r.writeFile(filepath.Join("bus", "pci", "drivers", driver, f), ""); err != nil {
				return err
			}
		}
	}
	return r.symlink("../../../bus/pci/drivers/"+driver, pciDir(pci), "driver")
}

// layNetdev lays out netdev name of the PCI device pci.
func (r *Recording) layNetdev(pci, name string) error {
	if err := os.MkdirAll(r.path(pciDir(pci), "net", name), 0o755); err != nil {
		return err
	}
	if err := r.symlink("../../../"+pci, pciDir(pci), "net", name, "device"); err != nil {
		return err
	}
	return r.symlink("../../devices/pci0000:00/"+pci+"/net/"+name, "class", "net", name)
}

// layPort lays out port i and its VFs, replacing what was there.
func (r *Recording) layPort(i int) error {
	p := r.host.Ports[i]
	dir := pciDir(p.PCI)
	if err := r.layDevice(p.PCI, p.Driver); err != nil {
		return err
	}
	if err := r.layNetdev(p.PCI, p.Name); err != nil {
		return err
	}
	nd := filepath.Join(dir, "net", p.Name)
	if err := r.writeFile(filepath.Join(nd, "carrier"), boolFile(p.Carrier)); err != nil {
		return err
	}
	if p.Master != "" {
		if err := r.symlink("../../../../virtual/net/"+p.Master, nd, "master"); err != nil {
			return err
		}
	}
	if !p.NoSRIOV {
		if err := r.writeFile(filepath.Join(dir, "sriov_totalvfs"), strconv.Itoa(p.TotalVFs)); err != nil {
			return err
		}
		if err := r.writeFile(filepath.Join(dir, "sriov_numvfs"), strconv.Itoa(p.NumVFs)); err != nil {
			return err
		}
	}
	// Old virtfn links go; the current VFs are laid out anew.
	entries, err := os.ReadDir(r.path(dir))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "virtfn") {
			if err := os.Remove(r.path(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	for idx, vf := range p.VFs {
		pci, err := p.vfPCI(idx)
		if err != nil {
			return err
		}
		if err := r.layDevice(pci, vf.Driver); err != nil {
			return err
		}
		if err := r.symlink("../"+pci, dir, "virtfn"+strconv.Itoa(idx)); err != nil {
			return err
		}
		if err := r.symlink("../"+p.PCI, pciDir(pci), "physfn"); err != nil {
			return err
		}
		if err := os.RemoveAll(r.path(pciDir(pci), "net")); err != nil {
			return err
		}
		if vf.Netdev != "" && vf.Driver != "" {
			if err := r.layNetdev(pci, vf.Netdev); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *Recording) layBond(b RecordedBond) error {
	dir := filepath.Join("devices", "virtual", "net", b.Name, "bonding")
	if err := r.symlink("../../devices/virtual/net/"+b.Name, "class", "net", b.Name); err != nil {
		return err
	}
	fom := b.FailOverMAC
	if fom == "" {
		fom = "none"
	}
	attrs := map[string]string{
		"mode":          b.Mode + " " + strconv.Itoa(bondModes[b.Mode]),
		"slaves":        strings.Join(b.Slaves, " "),
		"primary":       b.Primary,
		"active_slave":  b.Active,
		"miimon":        strconv.Itoa(b.MIIMon),
		"arp_interval":  strconv.Itoa(b.ARPInterval),
		"arp_ip_target": strings.Join(b.ARPTargets, " "),
		"fail_over_mac": fom + " " + strconv.Itoa(slices.Index([]string{"none", "active", "follow"}, fom)),
	}
	for name, v := range attrs {
		if err := r.writeFile(filepath.Join(dir, name), v); err != nil {
			return err
		}
	}
	return nil
}

// bondModes are the bonding modes' numbers (include/uapi/linux/if_bonding.h).
var bondModes = map[string]int{
	"balance-rr": 0, "active-backup": 1, "balance-xor": 2, "broadcast": 3,
	"802.3ad": 4, "balance-tlb": 5, "balance-alb": 6,
}

// vfPCI is the address of VF idx of p.
func (p RecordedPort) vfPCI(idx int) (string, error) {
	return vfPCI(p.FirstVF, idx*max(p.VFStride, 1))
}

// vfPCI is the address idx functions after first.
func vfPCI(first string, idx int) (string, error) {
	a, err := ParsePCI(first)
	if err != nil {
		return "", err
	}
	devfn := a.Device<<3 | a.Function + idx
	if devfn > 0xff {
		a.Bus += devfn >> 8
		devfn &= 0xff
	}
	a.Device, a.Function = devfn>>3, devfn&7
	return a.String(), nil
}

func boolFile(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// run logs cmd and fails with the recorded refusal, if any, then applies
// the recorded effects of cmd. The caller holds r.mu.
func (r *Recording) run(cmd string) error {
	r.log = append(r.log, cmd)
	if msg, ok := r.host.Refuse[cmd]; ok {
		return fmt.Errorf("%s: %s", cmd, msg)
	}
	for _, e := range r.host.Effects {
		if e.After != cmd {
			continue
		}
		for rel, content := range e.Files {
			if err := r.writeFile(rel, content); err != nil {
				return fmt.Errorf("%s: recorded effect: %w", cmd, err)
			}
		}
	}
	return nil
}

func (r *Recording) port(name string) (int, error) {
	for i, p := range r.host.Ports {
		if p.Name == name {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%s: %w", name, syscall.ENODEV)
}

func (r *Recording) portByPCI(pci string) (int, bool) {
	for i, p := range r.host.Ports {
		if p.PCI == pci {
			return i, true
		}
	}
	return 0, false
}

// Sysfs implements View.
func (r *Recording) Sysfs() string { return r.root }

// Devlink implements View.
func (r *Recording) Devlink(ctx context.Context, pci string) (Devlink, error) {
	if err := ctx.Err(); err != nil {
		return Devlink{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	i, ok := r.portByPCI(pci)
	if !ok || r.host.Ports[i].Devlink == nil {
		return Devlink{}, fmt.Errorf("devlink dev show pci/%s: %w", pci, ErrNoDevlink)
	}
	return *r.host.Ports[i].Devlink, nil
}

// Ethtool implements View.
func (r *Recording) Ethtool(ctx context.Context, ifname string) (Ethtool, error) {
	if err := ctx.Err(); err != nil {
		return Ethtool{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	i, err := r.port(ifname)
	if err != nil {
		return Ethtool{}, fmt.Errorf("ethtool -i %w", err)
	}
	e := r.host.Ports[i].Ethtool
	e.PrivFlags = maps.Clone(e.PrivFlags)
	return e, nil
}

// DCB implements View.
func (r *Recording) DCB(ctx context.Context, ifname string) (DCB, error) {
	if err := ctx.Err(); err != nil {
		return DCB{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	i, err := r.port(ifname)
	if err != nil {
		return DCB{}, fmt.Errorf("dcb show dev %w", err)
	}
	if r.host.Ports[i].DCB == nil {
		return DCB{}, fmt.Errorf("dcb show dev %s: %w", ifname, ErrNoDCB)
	}
	return *r.host.Ports[i].DCB, nil
}

// KernelRelease implements View.
func (r *Recording) KernelRelease(context.Context) (string, error) { return r.host.Kernel, nil }

// SetEswitchMode implements Changer.
func (r *Recording) SetEswitchMode(ctx context.Context, pci string, mode EswitchMode) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cmd := fmt.Sprintf("devlink dev eswitch set pci/%s mode %s", pci, mode)
	i, ok := r.portByPCI(pci)
	if !ok || r.host.Ports[i].Devlink == nil {
		r.log = append(r.log, cmd)
		return fmt.Errorf("%s: %w", cmd, ErrNoDevlink)
	}
	if err := r.run(cmd); err != nil {
		return err
	}
	r.host.Ports[i].Devlink.Eswitch = mode
	return nil
}

// SetPrivFlag implements Changer.
func (r *Recording) SetPrivFlag(ctx context.Context, ifname, flag string, on bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cmd := fmt.Sprintf("ethtool --set-priv-flags %s %s %s", ifname, flag, onOff(on))
	i, err := r.port(ifname)
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	if _, ok := r.host.Ports[i].Ethtool.PrivFlags[flag]; !ok {
		r.log = append(r.log, cmd)
		return fmt.Errorf("%s: unsupported priv flag %q", cmd, flag)
	}
	if err := r.run(cmd); err != nil {
		return err
	}
	r.host.Ports[i].Ethtool.PrivFlags[flag] = on
	return nil
}

// findVF returns the port and VF index of the VF at pci.
func (r *Recording) findVF(pci string) (int, int, bool) {
	for i, p := range r.host.Ports {
		for idx := range p.VFs {
			if a, err := p.vfPCI(idx); err == nil && a == pci {
				return i, idx, true
			}
		}
	}
	return 0, 0, false
}

// Unbind implements Changer (for VFs of the recorded ports).
func (r *Recording) Unbind(ctx context.Context, pci string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	i, idx, ok := r.findVF(pci)
	if !ok {
		return "", fmt.Errorf("unbind %s: not a VF of a recorded port: %w", pci, syscall.ENODEV)
	}
	vf := &r.host.Ports[i].VFs[idx]
	drv := vf.Driver
	if drv == "" {
		return "", nil
	}
	if err := r.run(fmt.Sprintf("echo %s > /sys/bus/pci/drivers/%s/unbind", pci, drv)); err != nil {
		return "", err
	}
	vf.Driver = ""
	return drv, r.layPort(i)
}

// Bind implements Changer (for VFs of the recorded ports).
func (r *Recording) Bind(ctx context.Context, pci, driver string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	i, idx, ok := r.findVF(pci)
	if !ok {
		return fmt.Errorf("bind %s to %s: not a VF of a recorded port: %w", pci, driver, syscall.ENODEV)
	}
	if err := r.run(fmt.Sprintf("echo %s > /sys/bus/pci/drivers/%s/bind", pci, driver)); err != nil {
		return err
	}
	r.host.Ports[i].VFs[idx].Driver = driver
	return r.layPort(i)
}

// PF implements SRIOV: vfmgr/sriov's own sysfs reading over the tree.
func (r *Recording) PF(ctx context.Context, name string) (vfmgr.PF, error) {
	return (&sriov.Kernel{Sysfs: r.root}).PF(ctx, name)
}

// VFs implements SRIOV from the recorded VFs.
func (r *Recording) VFs(ctx context.Context, pf string) ([]vfmgr.VF, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	i, err := r.port(pf)
	if err != nil {
		return nil, fmt.Errorf("list VFs of %w", err)
	}
	p := r.host.Ports[i]
	out := make([]vfmgr.VF, 0, len(p.VFs))
	for idx, v := range p.VFs {
		pci, err := p.vfPCI(idx)
		if err != nil {
			return nil, err
		}
		vf := vfmgr.VF{PF: pf, Index: idx, PCI: pci, VLAN: v.VLAN, QoS: v.QoS, SpoofChk: v.SpoofChk, Trust: v.Trust}
		if v.Driver != "" {
			vf.Netdev = v.Netdev
		}
		if v.MAC != "" {
			if vf.MAC, err = net.ParseMAC(v.MAC); err != nil {
				return nil, fmt.Errorf("list VFs of %s: vf %d: %w", pf, idx, err)
			}
		}
		out = append(out, vf)
	}
	return out, nil
}

// SetNumVFs implements SRIOV as the kernel does (drivers/pci/iov.c): a
// count above sriov_totalvfs fails, a non-zero count is changed through 0.
// New VFs bind to the port's vf_driver with spoof checking on.
func (r *Recording) SetNumVFs(ctx context.Context, pf string, n int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	i, err := r.port(pf)
	if err != nil {
		return fmt.Errorf("set sriov_numvfs of %w", err)
	}
	p := &r.host.Ports[i]
	if p.NoSRIOV {
		return fmt.Errorf("set sriov_numvfs of %s to %d: %w", pf, n, sriov.ErrNoSRIOV)
	}
	if n < 0 || n > p.TotalVFs {
		return fmt.Errorf("set sriov_numvfs of %s to %d: sriov_totalvfs is %d", pf, n, p.TotalVFs)
	}
	if n == p.NumVFs {
		return nil
	}
	writes := []int{n}
	if p.NumVFs != 0 && n != 0 {
		writes = []int{0, n}
	}
	for _, w := range writes {
		if err := r.run(fmt.Sprintf("echo %d > /sys/class/net/%s/device/sriov_numvfs", w, pf)); err != nil {
			return err
		}
		p.VFs = p.VFs[:0]
		for range w {
			p.VFs = append(p.VFs, RecordedVF{Driver: p.VFDriver, SpoofChk: true})
		}
		p.NumVFs = w
	}
	return r.layPort(i)
}

// ConfigureVF implements SRIOV on the recorded VF settings.
func (r *Recording) ConfigureVF(ctx context.Context, pf string, idx int, cfg sriov.VFConfig) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configure %s vf %d: %w", pf, idx, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	i, err := r.port(pf)
	if err != nil {
		return fmt.Errorf("configure %w", err)
	}
	p := &r.host.Ports[i]
	if idx < 0 || idx >= len(p.VFs) {
		return fmt.Errorf("configure %s vf %d: no such VF", pf, idx)
	}
	if err := r.run(fmt.Sprintf("ip link set %s vf %d %s", pf, idx, cfg)); err != nil {
		return err
	}
	v := &p.VFs[idx]
	v.MAC = ""
	if len(cfg.MAC) > 0 && !bytes.Equal(cfg.MAC, make([]byte, 6)) {
		v.MAC = cfg.MAC.String()
	}
	v.VLAN, v.QoS, v.SpoofChk, v.Trust = cfg.VLAN, cfg.QoS, cfg.SpoofChk, cfg.Trust
	return nil
}

// ResetVF implements SRIOV as sriov.Kernel.ResetVF does.
func (r *Recording) ResetVF(ctx context.Context, pf string, idx int) error {
	return r.ConfigureVF(ctx, pf, idx, sriov.VFConfig{SpoofChk: true})
}
