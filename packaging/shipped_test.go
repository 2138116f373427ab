package packaging

import (
	"bufio"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vflag/vflag/hooks"
	"github.com/vflag/vflag/vfmgr/config"
)

// TestVflagYAMLExample parses the shipped example with vflagd's own parser
// and checks that what its comments call defaults are the defaults.
func TestVflagYAMLExample(t *testing.T) {
	data, err := shipped.ReadFile("tree/etc/vflag/vflag.yaml.example")
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse("/etc/vflag/vflag.yaml.example", data)
	if err != nil {
		t.Fatalf("the shipped example does not parse: %v", err)
	}
	if len(c.Bonds) != 1 || c.Bonds[0].Name != "bond0" || !slices.Equal(c.Bonds[0].PFs, []string{"enp1s0f0", "enp1s0f1"}) {
		t.Errorf("example bonds = %+v; want bond0 over enp1s0f0, enp1s0f1", c.Bonds)
	}
	def := config.Default()
	if c.Announce != def.Announce || c.HoldDown != def.HoldDown || c.API.Socket != def.API.Socket ||
		c.State != def.State || c.Metrics != def.Metrics || c.Backends != def.Backends || c.Libvirt != def.Libvirt {
		t.Errorf("the example's values called defaults are not vflagd's defaults:\n got %+v\nwant %+v", c, def)
	}
	b := c.Bonds[0]
	if b.Policy != "active-first" || !b.Failback.Never() || b.Backend != config.BackendAuto || b.Mode != config.ModeSoftware || b.RDMA != "off" {
		t.Errorf("the example's bond settings called defaults are not: %+v", b)
	}
	// The hook must talk to the socket vflagd listens on.
	hook, err := hooks.LoadConfig(filepath.Join("tree", "etc", "vflag", "hook.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if hook.Socket != c.API.Socket {
		t.Errorf("hook.yaml socket %s, vflag.yaml.example api.socket %s; want the same", hook.Socket, c.API.Socket)
	}
}

// TestHookYAML loads the shipped hook settings with the hook's own loader:
// they parse, and they are the defaults (the file changes nothing until
// the operator edits it).
func TestHookYAML(t *testing.T) {
	got, err := hooks.LoadConfig(filepath.Join("tree", "etc", "vflag", "hook.yaml"))
	if err != nil {
		t.Fatalf("the shipped hook.yaml does not load: %v", err)
	}
	want, err := hooks.LoadConfig(filepath.Join(t.TempDir(), "absent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Socket != want.Socket || got.Timeout != want.Timeout || got.FailOpen != want.FailOpen ||
		got.UnmanagedHostdev != want.UnmanagedHostdev || got.Mode != want.Mode || got.Sysfs != want.Sysfs ||
		*got.Syslog != *want.Syslog {
		t.Errorf("shipped hook.yaml = %+v; want the defaults %+v", got, want)
	}
}

// unit parses a systemd unit file into section.key -> values, in order.
func unit(t *testing.T, text string) map[string][]string {
	t.Helper()
	keys := map[string][]string{}
	var section string
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("vflagd.service:%d: %q is not key=value in a section", n, line)
			}
			keys[section+"."+k] = append(keys[section+"."+k], v)
		}
	}
	return keys
}

// TestUnit checks the systemd unit's promises (systemd-analyze verify
// checks its syntax in TestDebianPackage, against the installed files).
func TestUnit(t *testing.T) {
	data, err := shipped.ReadFile("tree/lib/systemd/system/vflagd.service")
	if err != nil {
		t.Fatal(err)
	}
	u := unit(t, string(data))
	for key, want := range map[string]string{
		"Service.Type":             "notify", // vflagd sends READY=1 once its API is up
		"Service.ExecStart":        "/usr/sbin/vflagd --config /etc/vflag/vflag.yaml",
		"Service.Restart":          "on-failure",
		"Unit.After":               "network-online.target",
		"Unit.Wants":               "network-online.target",
		"Unit.Before":              "libvirtd.service virtqemud.service",
		"Install.WantedBy":         "multi-user.target",
		"Service.StateDirectory":   "vflag",
		"Service.RuntimeDirectory": "vflag",
	} {
		if got := u[key]; len(got) != 1 || got[0] != want {
			t.Errorf("vflagd.service %s = %q; want %q", key, got, want)
		}
	}
	caps := strings.Fields(strings.Join(u["Service.CapabilityBoundingSet"], " "))
	for _, c := range []string{"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_ADMIN"} {
		if !slices.Contains(caps, c) {
			t.Errorf("vflagd.service CapabilityBoundingSet %v lacks %s", caps, c)
		}
	}
	// Settings that would break vflagd: it writes sysfs, uses the host's
	// network namespace and devices, enters other network namespaces
	// (setns), and sends on AF_PACKET.
	for _, key := range []string{
		"Service.ProtectKernelTunables", "Service.PrivateNetwork", "Service.PrivateDevices", "Service.ProtectClock",
		"Service.RestrictNamespaces", "Service.User", "Service.DynamicUser",
	} {
		if v, ok := u[key]; ok {
			t.Errorf("vflagd.service sets %s=%v; vflagd needs it off", key, v)
		}
	}
	fams := strings.Fields(strings.Join(u["Service.RestrictAddressFamilies"], " "))
	for _, f := range []string{"AF_UNIX", "AF_NETLINK", "AF_PACKET", "AF_INET", "AF_INET6"} {
		if len(fams) > 0 && !slices.Contains(fams, f) {
			t.Errorf("vflagd.service RestrictAddressFamilies %v lacks %s", fams, f)
		}
	}
}

// TestMaintainerScripts checks the maintainer scripts parse as POSIX sh,
// by every shell on the machine that Debian uses as /bin/sh.
func TestMaintainerScripts(t *testing.T) {
	var shells []string
	for _, sh := range []string{"sh", "dash", "busybox", "posh"} {
		if p, err := exec.LookPath(sh); err == nil {
			shells = append(shells, p)
		}
	}
	if len(shells) == 0 {
		t.Skip("no shell on this machine")
	}
	for _, name := range []string{"postinst", "prerm", "postrm"} {
		data, err := shipped.ReadFile("DEBIAN/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(data), "#!/bin/sh\n") || !strings.Contains(string(data), "\nset -e\n") {
			t.Errorf("%s: want #!/bin/sh and set -e", name)
		}
		for _, sh := range shells {
			args := []string{"-n"}
			if filepath.Base(sh) == "busybox" {
				args = []string{"sh", "-n"}
			}
			cmd := exec.Command(sh, args...)
			cmd.Stdin = strings.NewReader(string(data))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s -n %s: %v\n%s", sh, name, err, out)
			}
		}
	}
}
