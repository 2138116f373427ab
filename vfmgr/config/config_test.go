package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vflag/vflag/rdmamgr"
	"github.com/vflag/vflag/vfmgr"
)

// TestExample loads the commented example file and checks every value.
func TestExample(t *testing.T) {
	t.Parallel()
	c, err := Load("testdata/vflag.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Bonds: []Bond{
			{Name: "bond0", PFs: []string{"pf0", "pf1"}, VFsPerPF: 7, Policy: vfmgr.ActiveFirst, Backend: BackendAuto, Mode: ModeSoftware, RDMA: rdmamgr.ModeOff},
			{
				Name: "bond1", PFs: []string{"ens2f0", "ens2f1"}, VFsPerPF: 32, Policy: vfmgr.Balance,
				Failback: Failback{After: 30 * time.Second}, Backend: BackendAuto, Mode: ModeSoftware, RDMA: rdmamgr.ModeOff,
			},
		},
		Announce: Announce{Count: 3, Interval: 100 * time.Millisecond, RARPWithoutAddrs: true},
		HoldDown: 200 * time.Millisecond,
		API:      API{Socket: "/run/vflag/vflag.sock", Group: "libvirt"},
		State:    Store{Path: "/var/lib/vflag/state.db"},
		Backends: Backends{
			Generic: BackendBinary{Path: "/usr/lib/vflag/backends/vflag-backend-generic"},
			MLX5:    BackendBinary{SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
		},
		Libvirt: Libvirt{Enabled: true, URI: "qemu:///system", UnplugTimeout: 2 * time.Minute},
	}
	if c.File() != "testdata/vflag.yaml" {
		t.Errorf("File() = %q", c.File())
	}
	got := *c
	got.file, got.lines = "", nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("example decoded as\n%+v\nwant\n%+v", got, want)
	}
	if got, want := c.Line("bonds[1].failback"), 35; got != want {
		t.Errorf("bonds[1].failback on line %d, want %d", got, want)
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := Parse("vflag.yaml", []byte("bonds:\n  - {name: bond0, pfs: [pf0, pf1], vfs_per_pf: 4}\nannounce:\n  count:\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Bonds = []Bond{{Name: "bond0", PFs: []string{"pf0", "pf1"}, VFsPerPF: 4, Policy: vfmgr.ActiveFirst, Backend: BackendAuto, Mode: ModeSoftware, RDMA: rdmamgr.ModeOff}}
	got := *c
	got.file, got.lines = "", nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
	if !c.Bonds[0].Failback.Never() || c.Metrics.Listen != "" || c.API.Group != "" {
		t.Errorf("failback %s, metrics %q, group %q: want never, off, none", c.Bonds[0].Failback, c.Metrics.Listen, c.API.Group)
	}
}

// good is a valid file; the error cases edit it. The wanted line numbers
// count from its first line, "bonds:" (hold_down is on line 10).
const good = `bonds:
  - name: bond0
    pfs: [pf0, pf1]
    vfs_per_pf: 7
    policy: balance
    failback: {after: 30s}
announce:
  count: 3
  interval: 100ms
hold_down: 200ms
api:
  socket: /run/vflag/vflag.sock
metrics:
  listen: 127.0.0.1:9477
state:
  path: /var/lib/vflag/state.db
`

// edit replaces old with new in good, failing when old is not there.
func edit(t *testing.T, pairs ...string) string {
	t.Helper()
	s := good
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("%q not in the test file", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	const pfsOfBond1 = "  - name: bond1\n    pfs: [pf2, pf1]\n    vfs_per_pf: 7\nannounce:"
	tests := []struct {
		name  string
		pairs []string // edits of good
		text  string   // the whole file instead
		want  []string // each a line of the error, in order
	}{
		{
			name:  "unknown top-level key",
			pairs: []string{"hold_down: 200ms", "hold_down: 200ms\nholddown: 1s"},
			want:  []string{"vflag.yaml:11: holddown: unknown key, expected one of bonds, announce, hold_down, api, metrics, state, backends"},
		},
		{
			name:  "unknown mode",
			pairs: []string{"    policy: balance", "    policy: balance\n    mode: turbo"},
			want:  []string{`vflag.yaml:6: bonds[0].mode: unknown mode "turbo", expected software or hardware`},
		},
		{
			name:  "hardware mode on the generic backend",
			pairs: []string{"    policy: balance", "    policy: balance\n    backend: generic\n    mode: hardware"},
			want:  []string{"vflag.yaml:7: bonds[0].mode: hardware mode needs a NIC with VF-LAG (backend ice or mlx5, or auto); backend generic re-homes VFs in software"},
		},
		{
			name:  "backend binaries",
			pairs: []string{"hold_down: 200ms", "hold_down: 200ms\nbackends:\n  generic: {path: vflag-backend-generic, sha256: abc}\n  bnxt: {}"},
			want: []string{
				"vflag.yaml:13: backends.bnxt: unknown key, expected one of generic, ice, mlx5",
			},
		},
		{
			name:  "backend binary values",
			pairs: []string{"hold_down: 200ms", "hold_down: 200ms\nbackends:\n  generic: {path: vflag-backend-generic, sha256: abc}"},
			want: []string{
				`vflag.yaml:12: backends.generic.path: "vflag-backend-generic" is not an absolute path`,
				`vflag.yaml:12: backends.generic.sha256: "abc" is not a SHA-256: expected 64 hex digits, as sha256sum prints them`,
			},
		},
		{
			name:  "unknown bond key",
			pairs: []string{"vfs_per_pf: 7", "vfs_per_fp: 7"},
			// Shape errors come first; values are checked once the shape is right.
			want: []string{"vflag.yaml:4: bonds[0].vfs_per_fp: unknown key, expected one of name, pfs, vfs_per_pf, policy, failback, backend, mode, rdma"},
		},
		{
			name:  "unknown RDMA mode",
			pairs: []string{"    policy: balance", "    policy: balance\n    rdma: fast"},
			want:  []string{`vflag.yaml:6: bonds[0].rdma: unknown mode "fast", expected hw, soft or off`},
		},
		{
			name:  "repeated key",
			pairs: []string{"    policy: balance", "    policy: balance\n    policy: active-first"},
			want:  []string{"vflag.yaml:6: bonds[0].policy: repeated key (first on line 5)"},
		},
		{
			name:  "duration without unit",
			pairs: []string{"hold_down: 200ms", "hold_down: 200"},
			want:  []string{`vflag.yaml:10: hold_down: expected a duration such as 200ms or 30s, got "200"`},
		},
		{
			name: "duration not positive",
			pairs: []string{
				"hold_down: 200ms", "hold_down: 0s", "interval: 100ms", "interval: -5ms",
				"path: /var/lib/vflag/state.db", "path: /var/lib/vflag/state.db\nlibvirt:\n  unplug_timeout: -1s",
			},
			want: []string{
				"vflag.yaml:9: announce.interval: -5ms is not positive",
				"vflag.yaml:10: hold_down: 0s is not positive",
				"vflag.yaml:18: libvirt.unplug_timeout: -1s is not positive",
			},
		},
		{
			name:  "integer expected",
			pairs: []string{"vfs_per_pf: 7", "vfs_per_pf: seven", "count: 3", "count: 2.5"},
			want: []string{
				`vflag.yaml:4: bonds[0].vfs_per_pf: expected an integer, got "seven"`,
				`vflag.yaml:8: announce.count: expected an integer, got "2.5"`,
			},
		},
		{
			name:  "vfs_per_pf out of range",
			pairs: []string{"vfs_per_pf: 7", "vfs_per_pf: 300"},
			want:  []string{"vflag.yaml:4: bonds[0].vfs_per_pf: 300 is out of range, expected 1..256"},
		},
		{
			name:  "vfs_per_pf missing",
			pairs: []string{"    vfs_per_pf: 7\n", ""},
			want:  []string{"vflag.yaml:2: bonds[0].vfs_per_pf: missing, expected how many VFs of each PF to use, 1..256"},
		},
		{
			name:  "PFs not a list",
			pairs: []string{"pfs: [pf0, pf1]", "pfs: pf0"},
			want:  []string{`vflag.yaml:3: bonds[0].pfs: expected a list, got "pf0"`},
		},
		{
			name:  "three PFs",
			pairs: []string{"pfs: [pf0, pf1]", "pfs: [pf0, pf1, pf2]"},
			want:  []string{"vflag.yaml:3: bonds[0].pfs: a bond needs exactly 2 PFs for now (vflag moves VFs between the two ports of a NIC pair), got 3"},
		},
		{
			name:  "one PF",
			pairs: []string{"pfs: [pf0, pf1]", "pfs:\n      - pf0"},
			want:  []string{"vflag.yaml:3: bonds[0].pfs: a bond needs exactly 2 PFs for now"},
		},
		{
			name:  "no PFs",
			pairs: []string{"    pfs: [pf0, pf1]\n", ""},
			want:  []string{"vflag.yaml:2: bonds[0].pfs: a bond needs exactly 2 PFs for now (vflag moves VFs between the two ports of a NIC pair), got 0"},
		},
		{
			name:  "a PF in two bonds",
			pairs: []string{"    failback: {after: 30s}\nannounce:", "    failback: {after: 30s}\n" + pfsOfBond1},
			want:  []string{"vflag.yaml:8: bonds[1].pfs[1]: pf1 is already a port of bond0 (line 3); each PF serves one bond"},
		},
		{
			name:  "a PF twice in one bond",
			pairs: []string{"pfs: [pf0, pf1]", "pfs: [pf0, pf0]"},
			want:  []string{"vflag.yaml:3: bonds[0].pfs[1]: pf0 is already a port of bond0 (line 3)"},
		},
		{
			name:  "the bond as its own PF",
			pairs: []string{"pfs: [pf0, pf1]", "pfs: [pf0, bond0]"},
			want:  []string{"vflag.yaml:3: bonds[0].pfs[1]: bond0 is the bond itself, not one of its ports"},
		},
		{
			name: "bad interface names",
			pairs: []string{
				"name: bond0", "name: bond0-uplink-to-tor",
				"pfs: [pf0, pf1]", "pfs: [pf/0, \"pf 1\"]",
			},
			want: []string{
				`vflag.yaml:2: bonds[0].name: interface name "bond0-uplink-to-tor" is longer than 15 characters`,
				`vflag.yaml:3: bonds[0].pfs[0]: interface name "pf/0" contains '/', ':' or whitespace`,
				`vflag.yaml:3: bonds[0].pfs[1]: interface name "pf 1" contains '/', ':' or whitespace`,
			},
		},
		{
			name:  "two bonds of one name",
			pairs: []string{"    failback: {after: 30s}\nannounce:", "    failback: {after: 30s}\n  - name: bond0\n    pfs: [pf2, pf3]\n    vfs_per_pf: 7\nannounce:"},
			want:  []string{"vflag.yaml:7: bonds[1].name: bond bond0 is already defined (line 2)"},
		},
		{
			name:  "unknown policy",
			pairs: []string{"policy: balance", "policy: round-robin"},
			want:  []string{`vflag.yaml:5: bonds[0].policy: unknown policy "round-robin", expected active-first or balance`},
		},
		{
			name:  "failback neither never nor after",
			pairs: []string{"failback: {after: 30s}", "failback: sometimes"},
			want:  []string{`vflag.yaml:6: bonds[0].failback: expected never or {after: <duration>} such as {after: 30s}, got "sometimes"`},
		},
		{
			name:  "failback after zero",
			pairs: []string{"failback: {after: 30s}", "failback: {after: 0s}"},
			want:  []string{"vflag.yaml:6: bonds[0].failback: after: 0s is not positive (to turn failback off, write failback: never)"},
		},
		{
			name:  "failback with another key",
			pairs: []string{"failback: {after: 30s}", "failback:\n      before: 30s"},
			want:  []string{"vflag.yaml:7: bonds[0].failback: expected never or {after: <duration>} such as {after: 30s}"},
		},
		{
			name:  "failback after not a duration",
			pairs: []string{"failback: {after: 30s}", "failback: {after: soon}"},
			want:  []string{`vflag.yaml:6: bonds[0].failback: after: expected a duration such as 30s, got "soon"`},
		},
		{
			name:  "unknown backend",
			pairs: []string{"policy: balance", "policy: balance\n    backend: bnxt"},
			want:  []string{`vflag.yaml:6: bonds[0].backend: unknown backend "bnxt", expected auto, generic, ice or mlx5`},
		},
		{
			name:  "announce count",
			pairs: []string{"count: 3", "count: 0"},
			want:  []string{"vflag.yaml:8: announce.count: 0 is out of range, expected 1..100"},
		},
		{
			name:  "boolean expected",
			pairs: []string{"count: 3", "count: 3\n  rarp_without_addrs: maybe"},
			want:  []string{`vflag.yaml:9: announce.rarp_without_addrs: expected true or false, got "maybe"`},
		},
		{
			name:  "relative paths",
			pairs: []string{"socket: /run/vflag/vflag.sock", "socket: vflag.sock", "path: /var/lib/vflag/state.db", "path: state.db"},
			want: []string{
				`vflag.yaml:12: api.socket: "vflag.sock" is not an absolute path`,
				`vflag.yaml:16: state.path: "state.db" is not an absolute path`,
			},
		},
		{
			name:  "bad group",
			pairs: []string{"socket: /run/vflag/vflag.sock", "socket: /run/vflag/vflag.sock\n  group: lib virt"},
			want:  []string{`vflag.yaml:13: api.group: "lib virt" is not a valid group name`},
		},
		{
			name:  "metrics without port",
			pairs: []string{"listen: 127.0.0.1:9477", "listen: \"9477\""},
			want:  []string{`vflag.yaml:14: metrics.listen: "9477": expected host:port such as 127.0.0.1:9477, or "" for off`},
		},
		{
			name:  "metrics port out of range",
			pairs: []string{"listen: 127.0.0.1:9477", "listen: 127.0.0.1:99999"},
			want:  []string{`vflag.yaml:14: metrics.listen: port "99999" of "127.0.0.1:99999" is not 1..65535`},
		},
		{
			name:  "a mapping where a value goes",
			pairs: []string{"hold_down: 200ms", "hold_down:\n  ms: 200"},
			want:  []string{"vflag.yaml:11: hold_down: expected a duration such as 200ms or 30s, got a mapping"},
		},
		{
			name:  "a list where a mapping goes",
			pairs: []string{"announce:\n  count: 3\n  interval: 100ms", "announce: [3, 100ms]"},
			want:  []string{"vflag.yaml:7: announce: expected a mapping with keys one of count, interval, rarp_without_addrs, got a list"},
		},
		{
			name: "no bonds",
			text: "bonds: []\n",
			want: []string{"vflag.yaml:1: bonds: at least one bond is required"},
		},
		{
			name: "empty file",
			text: "# nothing yet\n",
			want: []string{"vflag.yaml: bonds: the file is empty; at least one bond is required"},
		},
		{
			name: "YAML syntax",
			text: "bonds:\n  - name: bond0\n\tpfs: [pf0, pf1]\n",
			want: []string{"vflag.yaml:2: invalid YAML at or after this line: found a tab character that violates indentation"},
		},
		{
			name: "two documents",
			text: good + "---\nbonds: []\n",
			want: []string{"vflag.yaml:17: a second YAML document; the file holds one"},
		},
		{
			name:  "every problem at once",
			pairs: []string{"vfs_per_pf: 7", "vfs_per_pf: 0", "policy: balance", "policy: fast", "count: 3", "count: 101"},
			want: []string{
				"vflag.yaml:4: bonds[0].vfs_per_pf: 0 is out of range",
				"vflag.yaml:5: bonds[0].policy: unknown policy",
				"vflag.yaml:8: announce.count: 101 is out of range",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			text := tt.text
			if text == "" {
				text = edit(t, tt.pairs...)
			}
			c, err := Parse("vflag.yaml", []byte(text))
			if err == nil {
				t.Fatalf("no error; parsed %+v", c)
			}
			if c != nil {
				t.Error("a Config along with the error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%v does not wrap ErrInvalid", err)
			}
			got := strings.Split(err.Error(), "\n")
			if len(got) != len(tt.want) {
				t.Fatalf("error has %d lines, want %d:\n%v", len(got), len(tt.want), err)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("error line %d:\n got %s\nwant %s...", i+1, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestGoodParses guards the base of TestParseErrors.
func TestGoodParses(t *testing.T) {
	t.Parallel()
	if _, err := Parse("vflag.yaml", []byte(good)); err != nil {
		t.Fatal(err)
	}
}

// TestValidateInCode checks a Config built in code: errors name keys
// without a file or line.
func TestValidateInCode(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Bonds = []Bond{{Name: "bond0", PFs: []string{"pf0"}, VFsPerPF: 4, Policy: vfmgr.Balance, Backend: BackendAuto}}
	err := c.Validate()
	want := "bonds[0].pfs: a bond needs exactly 2 PFs for now (vflag moves VFs between the two ports of a NIC pair), got 1"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
	c.Bonds[0].PFs = append(c.Bonds[0].PFs, "pf1")
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

func TestCheckHost(t *testing.T) {
	t.Parallel()
	c, err := Parse("vflag.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		host map[string]vfmgr.PF
		want []string // the error's lines; none when the host fits
	}{
		{
			name: "fits",
			host: map[string]vfmgr.PF{
				"pf0": {Name: "pf0", PCI: "0000:01:00.0", Bond: "bond0", TotalVFs: 8},
				"pf1": {Name: "pf1", PCI: "0000:01:00.1", Bond: "bond0", TotalVFs: 7},
			},
		},
		{
			name: "missing, not a port, too few VFs",
			host: map[string]vfmgr.PF{
				"pf1": {Name: "pf1", PCI: "0000:01:00.1", Driver: "igb", TotalVFs: 4},
			},
			want: []string{
				"vflag.yaml:3: bonds[0].pfs[0]: PF pf0 of bond0: no such PF: file does not exist",
				"vflag.yaml:3: bonds[0].pfs[1]: pf1 (0000:01:00.1) is not a port of bond0 (its master: none)",
				"vflag.yaml:4: bonds[0].vfs_per_pf: 7 VFs wanted, but pf1 (0000:01:00.1, igb) has sriov_totalvfs 4",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var asked []string
			err := c.CheckHost(func(name string) (vfmgr.PF, error) {
				asked = append(asked, name)
				pf, ok := tt.host[name]
				if !ok {
					return vfmgr.PF{}, fmt.Errorf("no such PF: %w", os.ErrNotExist)
				}
				return pf, nil
			})
			if got := strings.Join(asked, " "); got != "pf0 pf1" {
				t.Errorf("looked up %q, want pf0 pf1", got)
			}
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
			if !errors.Is(err, os.ErrNotExist) || !errors.Is(err, ErrInvalid) {
				t.Errorf("%v does not wrap os.ErrNotExist and ErrInvalid", err)
			}
		})
	}
}

func TestPFsAndPoolSpec(t *testing.T) {
	t.Parallel()
	c, err := Load("testdata/vflag.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range c.PFs() {
		got = append(got, fmt.Sprintf("%s %s %d %s", s.Bond, s.PF, s.VFs, s.Key))
	}
	want := []string{
		"bond0 pf0 7 bonds[0].pfs[0]", "bond0 pf1 7 bonds[0].pfs[1]",
		"bond1 ens2f0 32 bonds[1].pfs[0]", "bond1 ens2f1 32 bonds[1].pfs[1]",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PFs:\n%q\nwant\n%q", got, want)
	}

	b := c.Bonds[1]
	var vfs [2][]vfmgr.VF
	for i, pf := range b.PFs {
		for idx := 63; idx >= 0; idx-- { // the inventory lists 64, in any order
			vfs[i] = append(vfs[i], vfmgr.VF{PF: pf, Index: idx})
		}
	}
	pfs := [2]vfmgr.PF{{Name: "ens2f0", Carrier: true}, {Name: "ens2f1", Carrier: true}}
	spec := b.PoolSpec(pfs, vfs, "ens2f1", time.Time{})
	if len(spec.VFs[0]) != 32 || spec.VFs[0][0].Index != 0 || spec.VFs[1][31].Index != 31 {
		t.Errorf("pool spec keeps %d VFs from %d: want 32 from 0", len(spec.VFs[0]), spec.VFs[0][0].Index)
	}
	p, err := vfmgr.NewPool(spec)
	if err != nil {
		t.Fatal(err)
	}
	if st := p.Status(); st.Policy != vfmgr.Balance || st.FailbackAfter != 30*time.Second || st.Active != "ens2f1" {
		t.Errorf("pool status %+v", st)
	}
}

func TestFailbackMarshal(t *testing.T) {
	t.Parallel()
	for _, f := range []Failback{{}, {After: 30 * time.Second}} {
		v, err := f.MarshalYAML()
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(v); got != map[bool]string{true: "never", false: "map[after:30s]"}[f.Never()] {
			t.Errorf("%s marshals as %s", f, got)
		}
	}
}
