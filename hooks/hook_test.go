package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vflag/vflag/api/vflagpb"
	"github.com/vflag/vflag/vfmgr"
)

// fakeVflagd answers the hook as vflagd would, and records each call as a
// line of text: "attach web1 52:54:00:6b:3c:01 vlan 100 bond bond0 pci
// 0000:01:10.2 mode hotswap".
type fakeVflagd struct {
	calls []string
	// bonds are what Status lists.
	bonds []string
	// next is the VF Attach hands out when asked for none in particular.
	next string
	// fail makes calls that start with a key fail with the error.
	fail map[string]error
}

func (f *fakeVflagd) failure(call string) error {
	for prefix, err := range f.fail {
		if strings.HasPrefix(call, prefix) {
			return err
		}
	}
	return nil
}

func (f *fakeVflagd) Status(context.Context, *vflagpb.StatusRequest, ...grpc.CallOption) (*vflagpb.StatusResponse, error) {
	f.calls = append(f.calls, "status")
	if err := f.failure("status"); err != nil {
		return nil, err
	}
	r := &vflagpb.StatusResponse{}
	for _, b := range f.bonds {
		r.Bonds = append(r.Bonds, &vflagpb.Bond{Name: b})
	}
	return r, nil
}

func (f *fakeVflagd) Attach(_ context.Context, in *vflagpb.AttachRequest, _ ...grpc.CallOption) (*vflagpb.AttachResponse, error) {
	call := fmt.Sprintf("attach %s %s vlan %d bond %s pci %s mode %s", in.GetVm(), in.GetMac(), in.GetVlan(), in.GetBond(), in.GetPci(), in.GetMode())
	f.calls = append(f.calls, call)
	if err := f.failure(call); err != nil {
		return nil, err
	}
	pci := in.GetPci()
	if pci == "" {
		pci = f.next
	}
	return &vflagpb.AttachResponse{Iface: &vflagpb.VMInterface{Vm: in.GetVm(), Mac: in.GetMac(), VfPci: pci}}, nil
}

func (f *fakeVflagd) Detach(_ context.Context, in *vflagpb.DetachRequest, _ ...grpc.CallOption) (*vflagpb.DetachResponse, error) {
	call := "detach " + in.GetVm() + " " + in.GetIface()
	f.calls = append(f.calls, strings.TrimSpace(call))
	if err := f.failure(call); err != nil {
		return nil, err
	}
	return &vflagpb.DetachResponse{}, nil
}

var (
	errDown    = status.Error(codes.Unavailable, "connection error: desc = \"transport: Error while dialing: dial unix /run/vflag/vflag.sock: connect: no such file or directory\"")
	errHeld    = status.Error(codes.FailedPrecondition, "attach web1: adopt VF 0000:01:10.2 for web1/52:54:00:6b:3c:01: pf0 vf 2 (0000:01:10.2) is held by db7/52:54:00:00:00:07: VF already held")
	errNotOurs = status.Error(codes.NotFound, "attach instance-0000002a: adopt VF 0000:02:10.1: not a VF vflag uses on any managed bond (bond1: pf2 0000:81:00.0, pf3 0000:82:00.0): not managed by vflag")
)

func TestHookOps(t *testing.T) {
	tests := []struct {
		name string
		file string
		args string // domain and op; sub-op and extra are filled in
		cfg  func(*Config)
		f    fakeVflagd
		// down makes Dial fail as when vflagd's socket is missing.
		down       bool
		wantCalls  string
		wantErr    string // substring; "" = success
		wantWarn   string // substring; "" = none
		wantStdout bool   // a rewritten XML (checked by TestHookRewrites)
	}{{
		name:      "prepare: a pool interface, its bond is managed",
		file:      "virt-install-pool.xml",
		args:      "web1 prepare",
		f:         fakeVflagd{bonds: []string{"bond0"}},
		wantCalls: "status\n",
	}, {
		name:      "prepare: a pool interface of an unmanaged bond",
		file:      "virt-install-pool.xml",
		args:      "web1 prepare",
		f:         fakeVflagd{bonds: []string{"bond1"}},
		wantCalls: "status\n",
		wantErr:   "cannot start VM web1: interface 0 (MAC 52:54:00:6b:3c:01, network vflag-bond0): vflagd manages no bond bond0 (it manages: bond1)",
	}, {
		name:      "start: the VF libvirt picked from the pool is adopted",
		file:      "virt-install-pool-live.xml",
		args:      "web1 start",
		wantCalls: "attach web1 52:54:00:6b:3c:01 vlan 100 bond bond0 pci 0000:01:10.2 mode \n",
	}, {
		name:      "start: the VF is held by another VM",
		file:      "virt-install-pool-live.xml",
		args:      "web1 start",
		f:         fakeVflagd{fail: map[string]error{"attach": errHeld}},
		wantCalls: "attach web1 52:54:00:6b:3c:01 vlan 100 bond bond0 pci 0000:01:10.2 mode \n",
		wantErr:   "cannot start VM web1: interface 0 (MAC 52:54:00:6b:3c:01, VF 0000:01:10.2): vflagd refuses to attach: attach web1: adopt VF 0000:01:10.2 for web1/52:54:00:6b:3c:01: pf0 vf 2 (0000:01:10.2) is held by db7",
	}, {
		name:      "reconnect: re-asserted",
		file:      "virt-install-pool-live.xml",
		args:      "web1 reconnect",
		wantCalls: "attach web1 52:54:00:6b:3c:01 vlan 100 bond bond0 pci 0000:01:10.2 mode \n",
	}, {
		name:     "reconnect: vflagd down never kills the VM",
		file:     "virt-install-pool-live.xml",
		args:     "web1 reconnect",
		down:     true,
		wantWarn: "vflagd is not running (no socket at",
	}, {
		name:      "prepare: Nova's hostdev, adopted unchanged",
		file:      "nova-hostdev-vlan.xml",
		args:      "instance-0000002a prepare",
		cfg:       func(c *Config) { c.Mode = vfmgr.ModeAdopt },
		wantCalls: "attach instance-0000002a fa:16:3e:2b:7c:91 vlan 100 bond bond0 pci 0000:02:10.1 mode adopt\n",
	}, {
		name:      "prepare: Nova's hostdev on a bond vflagd does not manage is left alone",
		file:      "nova-hostdev-vlan.xml",
		args:      "instance-0000002a prepare",
		f:         fakeVflagd{fail: map[string]error{"attach": errNotOurs}},
		wantCalls: "attach instance-0000002a fa:16:3e:2b:7c:91 vlan 100 bond bond0 pci 0000:02:10.1 mode \n",
	}, {
		name:      "prepare: ... unless the settings say unmanaged_hostdev: error",
		file:      "nova-hostdev-vlan.xml",
		args:      "instance-0000002a prepare",
		cfg:       func(c *Config) { c.UnmanagedHostdev = "error" },
		f:         fakeVflagd{fail: map[string]error{"attach": errNotOurs}},
		wantCalls: "attach instance-0000002a fa:16:3e:2b:7c:91 vlan 100 bond bond0 pci 0000:02:10.1 mode \n",
		wantErr:   "not a VF vflag uses on any managed bond",
	}, {
		name:    "prepare: a hostdev on no bond port with unmanaged_hostdev: error",
		file:    "multi.xml",
		args:    "router-ü;$(id) prepare",
		cfg:     func(c *Config) { c.UnmanagedHostdev = "error" },
		wantErr: "cannot start VM router-ü;$(id): interface 2 (MAC 52:54:00:77:00:03, VF 0000:05:10.1) is not a VF of a bond port",
	}, {
		name: "prepare: several interfaces, a name with shell metacharacters",
		file: "multi.xml",
		args: "router-ü;$(id) prepare",
		f:    fakeVflagd{bonds: []string{"bond0"}},
		wantCalls: "status\n" +
			"attach router-ü;$(id) 52:54:00:77:00:04 vlan 20 bond bond0 pci 0000:02:10.0 mode adopt\n",
	}, {
		name:      "start: a failover pair",
		file:      "failover-pair.xml",
		args:      "ha-app start",
		wantCalls: "attach ha-app 52:54:00:fa:11:01 vlan 0 bond bond0 pci 0000:01:10.3 mode failover\n",
	}, {
		name:    "prepare: two VF interfaces with one MAC",
		file:    "dup-mac.xml",
		args:    "twins prepare",
		wantErr: "cannot start VM twins: interfaces 0 and 1 have the same MAC 52:54:00:99:99:99",
	}, {
		name:    "prepare: a broken failover pair",
		file:    "failover-broken.xml",
		args:    "half-pair prepare",
		wantErr: "names no interface with <alias name='ua-net0'/>",
	}, {
		name:    "prepare: the XML is of another domain",
		file:    "hostdev-novlan.xml",
		args:    "batch8 prepare",
		wantErr: `libvirt named domain "batch8" but the XML on stdin is of "batch7"`,
	}, {
		name:    "prepare: vflagd down",
		file:    "hostdev-novlan.xml",
		args:    "batch7 prepare",
		down:    true,
		wantErr: "cannot start VM batch7: interface 0 (MAC 52:54:00:a1:b2:c3, VF 0000:01:10.5): vflagd is not running (no socket at ",
	}, {
		name:     "prepare: vflagd down, fail_open",
		file:     "hostdev-novlan.xml",
		args:     "batch7 prepare",
		cfg:      func(c *Config) { c.FailOpen = true },
		down:     true,
		wantWarn: "VM batch7 goes on WITHOUT vflag (fail_open: true in",
	}, {
		name:      "prepare: vflagd says no, fail_open or not",
		file:      "virt-install-pool-live.xml",
		args:      "web1 start",
		cfg:       func(c *Config) { c.FailOpen = true },
		f:         fakeVflagd{fail: map[string]error{"attach": errHeld}},
		wantCalls: "attach web1 52:54:00:6b:3c:01 vlan 100 bond bond0 pci 0000:01:10.2 mode \n",
		wantErr:   "is held by db7",
	}, {
		name: "prepare, start, release: no vflag interface, vflagd down",
		file: "bridge.xml",
		args: "plain-bridge prepare",
		down: true,
	}, {
		name: "release: no vflag interface, vflagd down",
		file: "virt-manager-nat.xml",
		args: "desktop release",
		down: true,
	}, {
		name:      "release: the VM's VFs are released",
		file:      "virt-install-pool.xml",
		args:      "web1 release",
		wantCalls: "detach web1\n",
	}, {
		name:      "release: nothing held (a start that failed early)",
		file:      "virt-install-pool.xml",
		args:      "web1 release",
		f:         fakeVflagd{fail: map[string]error{"detach": status.Error(codes.NotFound, "detach: VM web1 : not managed by vflag")}},
		wantCalls: "detach web1\n",
	}, {
		name:    "release: vflagd down is reported, fail_open or not",
		file:    "nova-hostdev-vlan.xml",
		args:    "instance-0000002a release",
		cfg:     func(c *Config) { c.FailOpen = true },
		down:    true,
		wantErr: "cannot release the VFs of VM instance-0000002a: vflagd is not running",
	}, {
		name: "started and stopped do nothing",
		file: "virt-install-pool-live.xml",
		args: "web1 stopped",
		down: true,
	}, {
		name:       "migrate: a metadata hostdev gets a VF of this host",
		file:       "metadata-hotswap.xml",
		args:       "cache3 migrate",
		f:          fakeVflagd{next: "0000:02:10.6"},
		wantCalls:  "attach cache3 52:54:00:c0:ff:ee vlan 300 bond  pci  mode hotswap\n",
		wantStdout: true,
	}, {
		name:      "restore: the VF it had is free again: nothing to rewrite",
		file:      "metadata-hotswap.xml",
		args:      "cache3 restore",
		f:         fakeVflagd{next: "0000:01:10.1"},
		wantCalls: "attach cache3 52:54:00:c0:ff:ee vlan 300 bond  pci  mode hotswap\n",
	}, {
		name: "migrate: a pool interface needs nothing",
		file: "virt-install-pool.xml",
		args: "web1 migrate",
		down: true,
	}, {
		name: "migrate: Nova's hostdev is Nova's business",
		file: "nova-hostdev-vlan.xml",
		args: "instance-0000002a migrate",
		down: true,
	}, {
		name:    "migrate: vflagd down",
		file:    "metadata-hotswap.xml",
		args:    "cache3 migrate",
		down:    true,
		wantErr: "cannot accept the incoming migration of VM cache3: interface 0 (MAC 52:54:00:c0:ff:ee, VF 0000:01:10.1): vflagd is not running",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Socket: filepath.Join(t.TempDir(), "vflag.sock")}.withDefaults()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			f := tt.f
			var out bytes.Buffer
			var warns []string
			h := &Hook{
				Config: cfg,
				Dial: func() (Client, error) {
					if tt.down {
						return &fakeVflagd{fail: map[string]error{"": errDown}}, nil
					}
					return &f, nil
				},
				PCI:    fakePCI{},
				Stdout: &out,
				Warn:   func(m string) { warns = append(warns, m) },
			}
			args := append(splitArgs(tt.args), "begin", "-")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := h.Run(ctx, args, readTestdata(t, tt.file))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Run: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Run = %v; want an error saying %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("the error is several lines; virsh shows one: %q", err)
			}
			diff(t, "vflagd calls", lines(f.calls), tt.wantCalls)
			w := strings.Join(warns, "\n")
			if (tt.wantWarn == "") != (w == "") || !strings.Contains(w, tt.wantWarn) {
				t.Errorf("warnings %q; want %q", w, tt.wantWarn)
			}
			if got := out.Len() > 0; got != tt.wantStdout {
				t.Errorf("stdout %q; want output %t", out.String(), tt.wantStdout)
			}
		})
	}
}

// splitArgs splits "name op" at the last space: names may have spaces.
func splitArgs(s string) []string {
	i := strings.LastIndex(s, " ")
	return []string{s[:i], s[i+1:]}
}

// lines renders calls one a line ("" for none).
func lines(calls []string) string {
	if len(calls) == 0 {
		return ""
	}
	return strings.Join(calls, "\n") + "\n"
}

// TestHookRewrites checks the XML a migrate or restore hook prints: the
// input with the addresses of vflag's hostdev interfaces, and only those,
// changed.
func TestHookRewrites(t *testing.T) {
	tests := []struct {
		file, name string
		next       string
		// want are the lines of the input that change, and how.
		wantOld, wantNew string
	}{{
		file: "metadata-hotswap.xml", name: "cache3", next: "0000:02:10.6",
		wantOld: "        <address type='pci' domain='0x0000' bus='0x01' slot='0x10' function='0x1'/>",
		wantNew: "        <address type='pci' domain='0x0000' bus='0x02' slot='0x10' function='0x6'/>",
	}, {
		file: "multi.xml", name: "router-ü;$(id)", next: "0000:01:10.7",
		wantOld: "        <address type='pci' domain='0x0000' bus='0x02' slot='0x10' function='0x0'/>",
		wantNew: "        <address type='pci' domain='0x0000' bus='0x01' slot='0x10' function='0x7'/>",
	}, {
		file: "failover-pair.xml", name: "ha-app", next: "0000:02:10.0",
		wantOld: "        <address type='pci' domain='0x0000' bus='0x01' slot='0x10' function='0x3'/>",
		wantNew: "        <address type='pci' domain='0x0000' bus='0x02' slot='0x10' function='0x0'/>",
	}}
	for _, tt := range tests {
		for _, op := range []string{"migrate", "restore"} {
			t.Run(tt.file+" "+op, func(t *testing.T) {
				in := readTestdata(t, tt.file)
				f := &fakeVflagd{next: tt.next}
				var out bytes.Buffer
				h := &Hook{Config: Config{}.withDefaults(), Dial: func() (Client, error) { return f, nil }, PCI: fakePCI{}, Stdout: &out}
				if err := h.Run(context.Background(), []string{tt.name, op, "begin", "-"}, in); err != nil {
					t.Fatalf("Run: %v", err)
				}
				inLines, outLines := strings.Split(string(in), "\n"), strings.Split(out.String(), "\n")
				if len(inLines) != len(outLines) {
					t.Fatalf("the output has %d lines, the input %d:\n%s", len(outLines), len(inLines), out.String())
				}
				var changed []string
				for i := range inLines {
					if inLines[i] != outLines[i] {
						changed = append(changed, inLines[i]+" => "+outLines[i])
					}
				}
				diff(t, "changed lines", strings.Join(changed, "\n")+"\n", tt.wantOld+" => "+tt.wantNew+"\n")
				d, err := Parse(out.Bytes(), Options{})
				if err != nil || d.Check() != nil {
					t.Fatalf("the output does not parse: %v, %v", err, d.Check())
				}
			})
		}
	}
}

// TestHookMigratesTeamedVF checks the migrate hook on a failover pair whose
// metadata names the MAC without a mode (the testbed's migrated guest):
// vflagd is asked for any VF of this host in mode failover, which
// <teaming> gives, and the XML gets its address.
func TestHookMigratesTeamedVF(t *testing.T) {
	in := readTestdata(t, "failover-pair-metadata-no-mode.xml")
	f := &fakeVflagd{next: "0000:02:10.4"}
	var out bytes.Buffer
	h := &Hook{Config: Config{}.withDefaults(), Dial: func() (Client, error) { return f, nil }, PCI: fakePCI{}, Stdout: &out}
	if err := h.Run(context.Background(), []string{"ha-app", "migrate", "begin", "-"}, in); err != nil {
		t.Fatalf("Run: %v", err)
	}
	diff(t, "vflagd calls", lines(f.calls), "attach ha-app 52:54:00:fa:11:01 vlan 0 bond bond0 pci  mode failover\n")
	want := "<address type='pci' domain='0x0000' bus='0x02' slot='0x10' function='0x4'/>"
	if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "<teaming type='transient' persistent='ua-standby0'/>") {
		t.Errorf("rewritten XML lacks %s or the teaming element:\n%s", want, out.String())
	}
}

// TestHookRollsBack checks that a run that fails half-way releases what it
// attached: a migration that does not happen leaves no VF held.
func TestHookRollsBack(t *testing.T) {
	x := `<domain type='kvm'><name>two</name><uuid>12345678-1234-1234-1234-123456789abc</uuid>
<metadata><vflag:vflag xmlns:vflag='` + Namespace + `'><vflag:interface mac='52:54:00:00:00:01' mode='hotswap'/><vflag:interface mac='52:54:00:00:00:02' mode='hotswap'/></vflag:vflag></metadata>
<devices>
<interface type='hostdev'><mac address='52:54:00:00:00:01'/><source><address type='pci' domain='0' bus='1' slot='0x10' function='0'/></source></interface>
<interface type='hostdev'><mac address='52:54:00:00:00:02'/><source><address type='pci' domain='0' bus='1' slot='0x10' function='1'/></source></interface>
</devices></domain>`
	for _, op := range []string{"migrate", "start", "reconnect"} {
		t.Run(op, func(t *testing.T) {
			f := &fakeVflagd{next: "0000:02:10.3", fail: map[string]error{
				"attach two 52:54:00:00:00:02": status.Error(codes.ResourceExhausted, "attach two: allocate VF for two/52:54:00:00:00:02 on bond0 (pf0 7/7 used; pf1 7/7 used): no free VF"),
			}}
			var out bytes.Buffer
			h := &Hook{Config: Config{}.withDefaults(), Dial: func() (Client, error) { return f, nil }, PCI: fakePCI{}, Stdout: &out}
			var warns []string
			h.Warn = func(m string) { warns = append(warns, m) }
			err := h.Run(context.Background(), []string{"two", op, "begin", "-"}, []byte(x))
			if op == "reconnect" {
				// The VM runs: nothing is released, and the hook succeeds.
				if err != nil || len(warns) != 1 || !strings.Contains(warns[0], "no free VF") || strings.Contains(lines(f.calls), "detach") {
					t.Fatalf("Run = %v, warnings %q, calls:\n%s", err, warns, lines(f.calls))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "no free VF") {
				t.Fatalf("Run = %v; want vflagd's refusal", err)
			}
			want := "detach two 52:54:00:00:00:01\n"
			if got := lines(f.calls); !strings.HasSuffix(got, want) || strings.Count(got, "detach") != 1 {
				t.Errorf("calls:\n%swant them to end with the release of the first interface:\n%s", got, want)
			}
			if out.Len() != 0 {
				t.Errorf("stdout %q after a failure", out.String())
			}
		})
	}
}

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"web1", true},
		{"router-ü;$(id) `reboot` | & > <", true},
		{"名前", true},
		{"new\nline", false},
		{"tab\tbed", false},
		{"bad\xffutf8", false},
		{"a/b", false},
		{"", false},
	} {
		if err := checkName(tc.name, tc.name); (err == nil) != tc.ok {
			t.Errorf("checkName(%q) = %v; want ok %t", tc.name, err, tc.ok)
		}
	}
	if err := checkName("a", "b"); err == nil {
		t.Error("checkName of two names: want an error")
	}
}

// TestHookUnreachableKinds checks the message for each way vflagd can be
// unreachable.
func TestHookUnreachableKinds(t *testing.T) {
	dir := t.TempDir()
	h := &Hook{Config: Config{Socket: filepath.Join(dir, "none.sock")}.withDefaults()}
	err := h.apiError(context.Background(), "attach", errDown)
	var u *unreachableError
	if !errors.As(err, &u) || !strings.Contains(err.Error(), "no socket at "+dir) {
		t.Errorf("missing socket: %v", err)
	}
	err = h.apiError(context.Background(), "attach", status.Error(codes.DeadlineExceeded, "context deadline exceeded"))
	if !errors.As(err, &u) || !strings.Contains(err.Error(), "did not answer within 10s") {
		t.Errorf("deadline: %v", err)
	}
	err = h.apiError(context.Background(), "attach", errHeld)
	if errors.As(err, &u) || status.Code(cause(err)) != codes.FailedPrecondition {
		t.Errorf("refusal: %v (code %v)", err, status.Code(cause(err)))
	}
}

// noBonds is a host whose NICs are in no bond.
type noBonds struct{}

func (noBonds) BondOf(string) (string, error) { return "", nil }

// TestHookBrokenMetadata checks that vflag metadata that does not parse
// fails the start even when nothing else makes the VM vflag's: the user
// asked for vflag.
func TestHookBrokenMetadata(t *testing.T) {
	f := &fakeVflagd{}
	h := &Hook{Config: Config{}.withDefaults(), Dial: func() (Client, error) { return f, nil }, PCI: noBonds{}, Stdout: io.Discard}
	err := h.Run(context.Background(), []string{"typo", "prepare", "begin", "-"}, readTestdata(t, "bad-metadata.xml"))
	want := `cannot start VM typo: vflag metadata line 6: <vflag:interface> has unknown attribute "mdoe" (it takes mac, mode and bond); vflag metadata names MAC 52:54:00:10:20:99`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Run = %v; want %q", err, want)
	}
	diff(t, "vflagd calls", lines(f.calls), "")
}
