package sriov

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// fakeLinks is vfLinks in memory. It logs every change it is asked for as
// the `ip link` command that would make it, and fails the commands listed in
// fail without applying them.
type fakeLinks struct {
	// mu guards the fields below.
	mu sync.Mutex
	// state holds each PF's VF settings, by VF number.
	state map[string][]VFConfig
	// log is every change asked for, in order.
	log []string
	// fail maps a command to the error it gets.
	fail map[string]error
}

var _ vfLinks = (*fakeLinks)(nil)

func newFakeLinks() *fakeLinks {
	return &fakeLinks{state: map[string][]VFConfig{}, fail: map[string]error{}}
}

// set seeds the settings of VF idx of pf.
func (f *fakeLinks) set(pf string, idx int, c VFConfig) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.state[pf]) <= idx {
		f.state[pf] = append(f.state[pf], VFConfig{})
	}
	f.state[pf][idx] = c
}

func (f *fakeLinks) vfs(pf string) (pfLink, []VFConfig, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.state[pf]
	if !ok {
		return pfLink{}, nil, fmt.Errorf("link %s: Link not found", pf)
	}
	return pfLink{name: pf, index: 10}, slices.Clone(s), nil
}

func (f *fakeLinks) do(pf pfLink, vf int, what string, apply func(*VFConfig)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	cmd := fmt.Sprintf("ip link set %s vf %d %s", pf.name, vf, what)
	f.log = append(f.log, cmd)
	if err, ok := f.fail[cmd]; ok {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	apply(&f.state[pf.name][vf])
	return nil
}

func (f *fakeLinks) setMAC(pf pfLink, vf int, mac net.HardwareAddr) error {
	shown := "00:00:00:00:00:00"
	if mac != nil {
		shown = mac.String()
	}
	return f.do(pf, vf, "mac "+shown, func(c *VFConfig) { c.MAC = mac })
}

func (f *fakeLinks) setVLAN(pf pfLink, vf, vlan, qos int) error {
	return f.do(pf, vf, fmt.Sprintf("vlan %d qos %d", vlan, qos), func(c *VFConfig) { c.VLAN, c.QoS = vlan, qos })
}

func (f *fakeLinks) setSpoofChk(pf pfLink, vf int, on bool) error {
	return f.do(pf, vf, "spoofchk "+onOff(on), func(c *VFConfig) { c.SpoofChk = on })
}

func (f *fakeLinks) setTrust(pf pfLink, vf int, on bool) error {
	return f.do(pf, vf, "trust "+onOff(on), func(c *VFConfig) { c.Trust = on })
}

// transcript renders the log and pf's final settings.
func (f *fakeLinks) transcript(pf string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, l := range f.log {
		b.WriteString(l + "\n")
	}
	for i, c := range f.state[pf] {
		fmt.Fprintf(&b, "= vf %d %s\n", i, c)
	}
	return b.String()
}

var mac1 = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}

func TestConfigureVF(t *testing.T) {
	t.Parallel()
	vmCfg := VFConfig{MAC: mac1, VLAN: 100, QoS: 3, SpoofChk: true}
	for _, tc := range []struct {
		name    string
		cfg     VFConfig
		idx     int
		fail    map[string]error
		wantErr string
		is      error
		want    string // transcript
	}{
		{
			name: "applies in order", cfg: vmCfg, idx: 1,
			want: "ip link set pf0 vf 1 mac 52:54:00:00:00:01\n" +
				"ip link set pf0 vf 1 vlan 100 qos 3\n" +
				"ip link set pf0 vf 1 spoofchk on\n" +
				"ip link set pf0 vf 1 trust off\n" +
				"= vf 0 mac 52:54:00:00:00:09 vlan 7 qos 0 spoofchk on trust off\n" +
				"= vf 1 mac 52:54:00:00:00:01 vlan 100 qos 3 spoofchk on trust off\n",
		},
		{
			name: "rolls back", cfg: vmCfg, idx: 0,
			fail:    map[string]error{"ip link set pf0 vf 0 spoofchk on": syscall.EOPNOTSUPP},
			wantErr: "configure pf0 vf 0 (0000:01:10.0): ip link set pf0 vf 0 spoofchk on: operation not supported (rolled back)",
			is:      syscall.EOPNOTSUPP,
			want: "ip link set pf0 vf 0 mac 52:54:00:00:00:01\n" +
				"ip link set pf0 vf 0 vlan 100 qos 3\n" +
				"ip link set pf0 vf 0 spoofchk on\n" +
				"ip link set pf0 vf 0 vlan 7 qos 0\n" +
				"ip link set pf0 vf 0 mac 52:54:00:00:00:09\n" +
				"= vf 0 mac 52:54:00:00:00:09 vlan 7 qos 0 spoofchk on trust off\n" +
				"= vf 1 mac 00:00:00:00:00:00 vlan 0 qos 0 spoofchk on trust off\n",
		},
		{
			name: "rollback fails too", cfg: VFConfig{MAC: mac1, Trust: true}, idx: 0,
			fail: map[string]error{
				"ip link set pf0 vf 0 trust on":              syscall.EPERM,
				"ip link set pf0 vf 0 mac 52:54:00:00:00:09": syscall.EBUSY,
			},
			wantErr: "configure pf0 vf 0 (0000:01:10.0): ip link set pf0 vf 0 trust on: operation not permitted" +
				" (rollback failed: ip link set pf0 vf 0 mac 52:54:00:00:00:09: device or resource busy)",
			is: syscall.EBUSY,
			want: "ip link set pf0 vf 0 mac 52:54:00:00:00:01\n" +
				"ip link set pf0 vf 0 vlan 0 qos 0\n" +
				"ip link set pf0 vf 0 spoofchk off\n" +
				"ip link set pf0 vf 0 trust on\n" +
				"ip link set pf0 vf 0 spoofchk on\n" +
				"ip link set pf0 vf 0 vlan 7 qos 0\n" +
				"ip link set pf0 vf 0 mac 52:54:00:00:00:09\n" +
				"= vf 0 mac 52:54:00:00:00:01 vlan 7 qos 0 spoofchk on trust off\n" +
				"= vf 1 mac 00:00:00:00:00:00 vlan 0 qos 0 spoofchk on trust off\n",
		},
		{
			name: "first step fails: nothing to undo", cfg: vmCfg, idx: 1,
			fail:    map[string]error{"ip link set pf0 vf 1 mac 52:54:00:00:00:01": syscall.EINVAL},
			wantErr: "configure pf0 vf 1 (0000:01:10.4): ip link set pf0 vf 1 mac 52:54:00:00:00:01: invalid argument (rolled back)",
			is:      syscall.EINVAL,
			want: "ip link set pf0 vf 1 mac 52:54:00:00:00:01\n" +
				"= vf 0 mac 52:54:00:00:00:09 vlan 7 qos 0 spoofchk on trust off\n" +
				"= vf 1 mac 00:00:00:00:00:00 vlan 0 qos 0 spoofchk on trust off\n",
		},
		{
			name: "no such VF", cfg: vmCfg, idx: 5, is: fs.ErrNotExist,
			wantErr: "configure pf0 vf 5: no such VF: readlink ROOT/class/net/pf0/device/virtfn5: no such file or directory",
			want: "= vf 0 mac 52:54:00:00:00:09 vlan 7 qos 0 spoofchk on trust off\n" +
				"= vf 1 mac 00:00:00:00:00:00 vlan 0 qos 0 spoofchk on trust off\n",
		},
		{
			name: "invalid VLAN", cfg: VFConfig{VLAN: 4095}, idx: 1,
			wantErr: "configure pf0 vf 1 (0000:01:10.4): VLAN 4095 out of range 0-4094",
			want: "= vf 0 mac 52:54:00:00:00:09 vlan 7 qos 0 spoofchk on trust off\n" +
				"= vf 1 mac 00:00:00:00:00:00 vlan 0 qos 0 spoofchk on trust off\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := newSysfs(t, igbPF("pf0", "0000:01:00.0", "bond0"))
			links := newFakeLinks()
			links.set("pf0", 0, VFConfig{MAC: net.HardwareAddr{0x52, 0x54, 0, 0, 0, 9}, VLAN: 7, SpoofChk: true})
			links.set("pf0", 1, VFConfig{SpoofChk: true})
			for cmd, err := range tc.fail {
				links.fail[cmd] = err
			}
			k := &Kernel{Sysfs: root, links: links}
			err := k.ConfigureVF(context.Background(), "pf0", tc.idx, tc.cfg)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("ConfigureVF: %v", err)
			case tc.wantErr != "" && (err == nil || err.Error() != strings.ReplaceAll(tc.wantErr, "ROOT", root)):
				t.Errorf("ConfigureVF = %v\nwant %q", err, strings.ReplaceAll(tc.wantErr, "ROOT", root))
			case tc.is != nil && !errors.Is(err, tc.is):
				t.Errorf("%v does not match %v", err, tc.is)
			}
			if got := links.transcript("pf0"); got != tc.want {
				t.Errorf("kernel saw:\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestResetVF(t *testing.T) {
	t.Parallel()
	root := newSysfs(t, igbPF("pf0", "0000:01:00.0", "bond0"))
	links := newFakeLinks()
	links.set("pf0", 0, VFConfig{MAC: mac1, VLAN: 100, QoS: 1, Trust: true})
	k := &Kernel{Sysfs: root, links: links}
	if err := k.ResetVF(context.Background(), "pf0", 0); err != nil {
		t.Fatal(err)
	}
	want := "ip link set pf0 vf 0 mac 00:00:00:00:00:00\n" +
		"ip link set pf0 vf 0 vlan 0 qos 0\n" +
		"ip link set pf0 vf 0 spoofchk on\n" +
		"ip link set pf0 vf 0 trust off\n" +
		"= vf 0 mac 00:00:00:00:00:00 vlan 0 qos 0 spoofchk on trust off\n"
	if got := links.transcript("pf0"); got != want {
		t.Errorf("kernel saw:\n%s\nwant\n%s", got, want)
	}

	links.fail["ip link set pf0 vf 0 vlan 0 qos 0"] = syscall.EIO
	err := k.ResetVF(context.Background(), "pf0", 0)
	if want := "reset: configure pf0 vf 0 (0000:01:10.0): ip link set pf0 vf 0 vlan 0 qos 0: input/output error (rolled back)"; err == nil || err.Error() != want {
		t.Errorf("ResetVF = %v\nwant %q", err, want)
	}
}

func TestVFConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  VFConfig
		want string
	}{
		{VFConfig{}, ""},
		{VFConfig{MAC: mac1, VLAN: 4094, QoS: 7}, ""},
		{VFConfig{MAC: net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}}, "MAC 01:00:5e:00:00:01 is a multicast address"},
		{VFConfig{MAC: net.HardwareAddr{1, 2, 3}}, "MAC 01:02:03 is not an Ethernet address"},
		{VFConfig{VLAN: -1}, "VLAN -1 out of range 0-4094"},
		{VFConfig{QoS: 8}, "QoS 8 out of range 0-7"},
	} {
		err := tc.cfg.Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%+v: Validate() = %q, want %q", tc.cfg, got, tc.want)
		}
	}
}
