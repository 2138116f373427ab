package virt

import (
	"strings"
	"testing"

	"github.com/vflag/vflag/hooks"
)

// Networks as libvirtd 11.3 dumps them (virsh net-dumpxml, testbed): the
// live XML of a network two domains take VFs from carries connection
// counts and the UUID libvirt gave it.
const (
	uuid0 = "5ab2c447-e288-43e1-bdfc-c807b4ad7d38"

	dumpedLive = `<network connections='2'>
  <name>vflag-bond0</name>
  <uuid>5ab2c447-e288-43e1-bdfc-c807b4ad7d38</uuid>
  <forward mode='hostdev' managed='yes'>
    <driver name='vfio'/>
    <address type='pci' domain='0x0000' bus='0x01' slot='0x10' function='0x0'/>
    <address type='pci' domain='0x0000' bus='0x01' slot='0x10' function='0x2'/>
  </forward>
</network>
`
	dumpedConfig = `<network>
  <name>vflag-bond0</name>
  <uuid>5ab2c447-e288-43e1-bdfc-c807b4ad7d38</uuid>
  <forward mode='hostdev' managed='yes'>
    <driver name='vfio'/>
    <address type='pci' domain='0x0000' bus='0x01' slot='0x10' function='0x0'/>
    <address type='pci' domain='0x0000' bus='0x01' slot='0x10' function='0x2'/>
  </forward>
</network>
`
)

// render shows steps as text: define with the UUID it keeps and the VFs
// it lists, then the other calls.
func render(t *testing.T, steps []poolStep) string {
	t.Helper()
	var out []string
	for _, s := range steps {
		if s.op != opDefine {
			out = append(out, s.String())
			continue
		}
		bond, vfs, err := hooks.PoolNetworkVFs(s.xml)
		if err != nil {
			t.Fatalf("define step XML is no pool network: %v\n%s", err, s.xml)
		}
		out = append(out, "define "+bond+" uuid="+networkUUID(s.xml)+" ["+strings.Join(vfs, " ")+"]")
	}
	return strings.Join(out, "; ")
}

func TestPlanPool(t *testing.T) {
	pool := func(vfs ...string) string {
		t.Helper()
		x, err := hooks.PoolNetwork("bond0", vfs)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	edit := func(x, old, repl string) string {
		t.Helper()
		if !strings.Contains(x, old) {
			t.Fatalf("%q not in %s", old, x)
		}
		return strings.Replace(x, old, repl, 1)
	}
	const vf0, vf1, vf2 = "0000:01:10.0", "0000:01:10.2", "0000:01:10.4"
	synced := poolState{persistent: true, config: dumpedConfig, active: true, live: dumpedLive, autostart: true}
	for _, tc := range []struct {
		name string
		st   poolState
		want string // hooks.PoolNetwork XML
		plan string
	}{{
		name: "no network yet",
		want: pool(vf0, vf1),
		plan: "define bond0 uuid= [0000:01:10.0 0000:01:10.2]; start; autostart",
	}, {
		name: "no VF free: an empty pool is a valid network",
		want: pool(),
		plan: "define bond0 uuid= []; start; autostart",
	}, {
		name: "in sync, connections and UUID notwithstanding",
		st:   synced,
		want: pool(vf0, vf1),
		plan: "",
	}, {
		name: "in sync, VFs written in another form",
		st:   synced,
		want: pool("01:10.0", "0:1:10.2"),
		plan: "",
	}, {
		name: "a VF taken: redefined under its UUID, restarted",
		st:   synced,
		want: pool(vf1),
		plan: "define bond0 uuid=" + uuid0 + " [0000:01:10.2]; destroy; start",
	}, {
		name: "a VF freed",
		st:   synced,
		want: pool(vf0, vf1, vf2),
		plan: "define bond0 uuid=" + uuid0 + " [0000:01:10.0 0000:01:10.2 0000:01:10.4]; destroy; start",
	}, {
		name: "same VFs in another order: libvirt hands out the first",
		st:   synced,
		want: pool(vf1, vf0),
		plan: "define bond0 uuid=" + uuid0 + " [0000:01:10.2 0000:01:10.0]; destroy; start",
	}, {
		name: "config already redefined, live not yet restarted (vflagd died in between)",
		st: poolState{
			persistent: true, active: true, autostart: true,
			config: edit(dumpedConfig, "    <address type='pci' domain='0x0000' bus='0x01' slot='0x10' function='0x0'/>\n", ""),
			live:   dumpedLive,
		},
		want: pool(vf1),
		plan: "destroy; start",
	}, {
		name: "inactive",
		st:   poolState{persistent: true, config: dumpedConfig, autostart: true},
		want: pool(vf0, vf1),
		plan: "start",
	}, {
		name: "inactive, and its list changed",
		st:   poolState{persistent: true, config: dumpedConfig, autostart: true},
		want: pool(vf2),
		plan: "define bond0 uuid=" + uuid0 + " [0000:01:10.4]; start",
	}, {
		name: "autostart off",
		st:   poolState{persistent: true, config: dumpedConfig, active: true, live: dumpedLive},
		want: pool(vf0, vf1),
		plan: "autostart",
	}, {
		name: "transient (virsh net-create): defined to persist",
		st:   poolState{config: dumpedConfig, active: true, live: dumpedLive},
		want: pool(vf0, vf1),
		plan: "define bond0 uuid=" + uuid0 + " [0000:01:10.0 0000:01:10.2]; autostart",
	}, {
		name: "someone set managed='no': vflag's network is vflag's",
		st: poolState{
			persistent: true, active: true, autostart: true,
			config: edit(dumpedConfig, "managed='yes'", "managed='no'"),
			live:   edit(dumpedLive, "managed='yes'", "managed='no'"),
		},
		want: pool(vf0, vf1),
		plan: "define bond0 uuid=" + uuid0 + " [0000:01:10.0 0000:01:10.2]; destroy; start",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			steps, err := planPool(tc.st, tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if got := render(t, steps); got != tc.plan {
				t.Errorf("plan:\n got  %s\n want %s", got, tc.plan)
			}
		})
	}
}

func TestPlanPoolBadXML(t *testing.T) {
	want, err := hooks.PoolNetwork("bond0", []string{"0000:01:10.0"})
	if err != nil {
		t.Fatal(err)
	}
	for name, st := range map[string]poolState{
		"its config": {persistent: true, config: "<network><name>vflag-bond0"},
		"its live":   {persistent: true, config: dumpedConfig, active: true, live: "not xml"},
	} {
		if _, err := planPool(st, want); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s unreadable: error %v, want one naming %q", name, err, name)
		}
	}
}
