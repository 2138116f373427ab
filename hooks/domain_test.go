package hooks

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vflag/vflag/vfmgr"
)

// fakePCI is a host whose bond0 has ports with PCI bus 01 and 02, and
// whose NIC on bus 05 is in no bond.
type fakePCI struct{}

func (fakePCI) BondOf(pci string) (string, error) {
	switch {
	case strings.HasPrefix(pci, "0000:01:10."), strings.HasPrefix(pci, "0000:02:10."):
		return "bond0", nil
	}
	return "", nil
}

// ifText renders the interfaces as comparable text, one a line:
// "1 vf 0000:02:10.1 mac fa:16:3e:2b:7c:91 vlan 100 bond bond0 mode hotswap by address".
func ifText(ifs []Interface) string {
	var out []string
	for _, it := range ifs {
		where := "network " + it.Network
		if it.Kind == KindVF {
			where = "vf " + it.PCI
		}
		s := fmt.Sprintf("%d %s mac %s vlan %d bond %s mode %s by %s", it.Index, where, it.MAC, it.VLAN, it.Bond, it.Mode, it.Marker)
		if it.Standby != "" {
			s += " standby " + it.Standby
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return ""
	}
	return strings.Join(out, "\n") + "\n"
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParseCorpus reads real-world domain XML (virt-install, virt-manager,
// Nova, libvirt's live XML, hand-written failover pairs) and checks which
// interfaces are vflag's, and what is wrong with them.
func TestParseCorpus(t *testing.T) {
	tests := []struct {
		file string
		mode vfmgr.Mode // Options.Mode
		// want are vflag's interfaces.
		want string
		// problems are what Check says, each a substring ("" = nothing).
		problems []string
	}{{
		file: "virt-install-pool.xml",
		want: "0 network vflag-bond0 mac 52:54:00:6b:3c:01 vlan 0 bond bond0 mode  by network\n",
	}, {
		// The same VM in the XML of the start hook: libvirt shows the VF
		// it picked from the pool, and the network name is gone.
		file: "virt-install-pool-live.xml",
		want: "0 vf 0000:01:10.2 mac 52:54:00:6b:3c:01 vlan 100 bond bond0 mode  by address\n",
	}, {
		file: "nova-hostdev-vlan.xml",
		mode: vfmgr.ModeAdopt,
		want: "0 vf 0000:02:10.1 mac fa:16:3e:2b:7c:91 vlan 100 bond bond0 mode adopt by address\n",
	}, {
		file: "hostdev-novlan.xml",
		want: "0 vf 0000:01:10.5 mac 52:54:00:a1:b2:c3 vlan 0 bond bond0 mode  by address\n",
	}, {
		file: "bridge.xml",
	}, {
		file: "direct-macvtap.xml",
	}, {
		file: "vhostuser.xml",
	}, {
		file: "virt-manager-nat.xml",
	}, {
		file: "no-devices.xml",
	}, {
		file: "failover-pair.xml",
		want: "1 vf 0000:01:10.3 mac 52:54:00:fa:11:01 vlan 0 bond bond0 mode failover by metadata standby ua-standby0\n",
	}, {
		// The mode comes from <teaming>, even where the hook's default
		// mode is another.
		file: "failover-pair-metadata-no-mode.xml",
		mode: vfmgr.ModeHotswap,
		want: "1 vf 0000:01:10.3 mac 52:54:00:fa:11:01 vlan 0 bond bond0 mode failover by metadata standby ua-standby0\n",
	}, {
		file: "failover-pool-direct.xml",
		mode: vfmgr.ModeHotswap,
		want: "1 network vflag-bond0 mac 52:54:00:fa:22:02 vlan 0 bond bond0 mode failover by network standby ua-backup\n",
	}, {
		file: "multi.xml",
		want: "0 network vflag-bond0 mac 52:54:00:77:00:01 vlan 10 bond bond0 mode  by network\n" +
			"3 vf 0000:02:10.0 mac 52:54:00:77:00:04 vlan 20 bond bond0 mode adopt by metadata\n",
	}, {
		file: "metadata-hotswap.xml",
		mode: vfmgr.ModeAdopt,
		want: "0 vf 0000:01:10.1 mac 52:54:00:c0:ff:ee vlan 300 bond bond0 mode hotswap by metadata\n",
	}, {
		file:     "dup-mac.xml",
		want:     "0 network vflag-bond0 mac 52:54:00:99:99:99 vlan 0 bond bond0 mode  by network\n1 network vflag-bond0 mac 52:54:00:99:99:99 vlan 0 bond bond0 mode  by network\n",
		problems: []string{"interfaces 0 and 1 have the same MAC 52:54:00:99:99:99"},
	}, {
		file:     "failover-broken.xml",
		want:     "1 vf 0000:01:10.0 mac 52:54:00:ab:ab:ab vlan 0 bond bond0 mode failover by address standby ua-net0\n",
		problems: []string{"interface 1 (MAC 52:54:00:ab:ab:ab, VF 0000:01:10.0): <teaming type='transient' persistent='ua-net0'/> names no interface with <alias name='ua-net0'/>, <teaming type='persistent'/>"},
	}, {
		file: "bad-metadata.xml",
		want: "0 vf 0000:01:10.0 mac 52:54:00:10:20:30 vlan 0 bond bond0 mode  by address\n",
		problems: []string{
			`vflag metadata line 6: <vflag:interface> has unknown attribute "mdoe"`,
			"vflag metadata names MAC 52:54:00:10:20:99, but no <interface",
		},
	}, {
		file:     "vlan-trunk.xml",
		want:     "0 network vflag-bond0 mac 52:54:00:0c:0c:0c vlan 0 bond bond0 mode  by network\n",
		problems: []string{"interface 0 (MAC 52:54:00:0c:0c:0c, network vflag-bond0): <vlan trunk='yes'> or several tags"},
	}}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			d, err := Parse(readTestdata(t, tt.file), Options{PCI: fakePCI{}, Mode: tt.mode})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			diff(t, "vflag's interfaces", ifText(d.Vflag()), tt.want)
			err = d.Check()
			if len(tt.problems) == 0 && err != nil {
				t.Errorf("Check: %v", err)
			}
			for _, p := range tt.problems {
				if err == nil || !strings.Contains(err.Error(), p) {
					t.Errorf("Check = %v; want it to say %q", err, p)
				}
			}
		})
	}
	// Every file of the corpus is in the table (the fuzz seeds are all).
	files, _ := filepath.Glob("testdata/*.xml")
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("%s is not in the table", f)
		}
	}
}

// TestParseWithoutLookup checks what an incoming migration sees: the
// addresses are the source host's, so only metadata and network names
// count.
func TestParseWithoutLookup(t *testing.T) {
	d, err := Parse(readTestdata(t, "multi.xml"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	diff(t, "vflag's interfaces", ifText(d.Vflag()),
		"0 network vflag-bond0 mac 52:54:00:77:00:01 vlan 10 bond bond0 mode  by network\n"+
			"3 vf 0000:02:10.0 mac 52:54:00:77:00:04 vlan 20 bond  mode adopt by metadata\n")
	if d.Name != "router-ü;$(id)" || d.UUID != "77777777-8888-9999-aaaa-bbbbbbbbbbbb" {
		t.Errorf("name %q uuid %q", d.Name, d.UUID)
	}
}

func TestParseRejectsWhatIsNoDomain(t *testing.T) {
	for _, in := range []string{"", "not xml", "<domain><name>x</name>", "<network><name>vflag-bond0</name></network>", "<domain type='kvm'><devices><interface/></devices></domain>"} {
		if d, err := Parse([]byte(in), Options{}); err == nil {
			t.Errorf("Parse(%q) = %+v; want an error", in, d)
		}
	}
}

func TestParseInterfaceProblems(t *testing.T) {
	dom := func(iface string) []byte {
		return []byte("<domain type='kvm'><name>vm1</name><devices>" + iface + "</devices></domain>")
	}
	tests := []struct {
		name, iface, want string
	}{
		{"no MAC", `<interface type='network'><source network='vflag-bond0'/></interface>`, "no <mac address"},
		{"multicast MAC", `<interface type='network'><mac address='01:00:5e:00:00:01'/><source network='vflag-bond0'/></interface>`, "multicast"},
		{"VLAN 4095", `<interface type='network'><mac address='52:54:00:00:00:01'/><source network='vflag-bond0'/><vlan><tag id='4095'/></vlan></interface>`, "VLAN 4095 out of range"},
		{"USB hostdev on a marked MAC", `<interface type='hostdev'><mac address='52:54:00:00:00:01'/><source><address type='usb' bus='1' device='2'/></source></interface>` +
			`</devices><metadata><vflag:vflag xmlns:vflag='` + Namespace + `'><vflag:interface mac='52:54:00:00:00:01'/></vflag:vflag></metadata><devices>`, "PCI VFs only"},
		{"failover mode without a pair", `<interface type='network'><mac address='52:54:00:00:00:01'/><source network='vflag-bond0'/></interface>` +
			`</devices><metadata><vflag:vflag xmlns:vflag='` + Namespace + `'><vflag:interface mac='52:54:00:00:00:01' mode='failover'/></vflag:vflag></metadata><devices>`, "mode failover needs <teaming"},
		{"a bad mode", `<interface type='network'><mac address='52:54:00:00:00:01'/><source network='vflag-bond0'/></interface>` +
			`</devices><metadata><vflag:vflag xmlns:vflag='` + Namespace + `'><vflag:interface mac='52:54:00:00:00:01' mode='bond'/></vflag:vflag></metadata><devices>`, `mode="bond"`},
		{"a MAC twice in the metadata", `<interface type='network'><mac address='52:54:00:00:00:01'/><source network='vflag-bond0'/></interface>` +
			`</devices><metadata><vflag:vflag xmlns:vflag='` + Namespace + `'><vflag:interface mac='52:54:00:00:00:01'/><vflag:interface mac='52:54:00:00:00:01'/></vflag:vflag></metadata><devices>`, "listed twice"},
		{"metadata on a bridge", `<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/></interface>` +
			`</devices><metadata><vflag:vflag xmlns:vflag='` + Namespace + `'><vflag:interface mac='52:54:00:00:00:01'/></vflag:vflag></metadata><devices>`, "no <interface type='hostdev'> or <interface type='network'> has it"},
		{"a VF sharing its MAC with a bridge", `<interface type='hostdev'><mac address='52:54:00:00:00:01'/><source><address type='pci' bus='1' slot='0x10' function='0'/></source></interface>` +
			`<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/></interface>`, "interfaces 0 and 1 have the same MAC"},
		{"an address out of range", `<interface type='hostdev'><mac address='52:54:00:00:00:01'/><source><address type='pci' bus='1' slot='0x20' function='0'/></source></interface>` +
			`</devices><metadata><vflag:vflag xmlns:vflag='` + Namespace + `'><vflag:interface mac='52:54:00:00:00:01'/></vflag:vflag></metadata><devices>`, "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Parse(dom(tt.iface), Options{PCI: fakePCI{}})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if err := d.Check(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Check = %v; want it to say %q", err, tt.want)
			}
		})
	}
}

// TestMetadataNamespaceOnTheRoot checks metadata whose prefix is declared
// on <domain>, not on <vflag:vflag> (libvirt moves it; people write it).
func TestMetadataNamespaceOnTheRoot(t *testing.T) {
	x := `<domain type='kvm' xmlns:v='` + Namespace + `'><name>vm1</name>
	<metadata><v:vflag><v:interface mac='52:54:00:00:00:09' mode='hotswap' bond='bond1'/></v:vflag></metadata>
	<devices><interface type='hostdev'><mac address='52:54:00:00:00:09'/><source><address type='pci' domain='0' bus='5' slot='16' function='1'/></source></interface></devices></domain>`
	d, err := Parse([]byte(x), Options{PCI: fakePCI{}})
	if err != nil || d.Check() != nil {
		t.Fatalf("Parse: %v, %v", err, d.Check())
	}
	diff(t, "interfaces", ifText(d.Vflag()), "0 vf 0000:05:10.1 mac 52:54:00:00:00:09 vlan 0 bond bond1 mode hotswap by metadata\n")
}

// diff reports got != want with both texts.
func diff(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n--- got\n%s--- want\n%s", what, got, want)
	}
}
