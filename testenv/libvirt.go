package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/vflag/vflag/testenv/guestagent"
	"github.com/vflag/vflag/testenv/image"
)

// Flavour is what a KVM-host VM boots.
type Flavour string

const (
	// FlavourInitramfs boots the whole host from an initramfs: busybox,
	// iproute2, RDMA tools and the project binaries. Quick to build and boot.
	FlavourInitramfs Flavour = "initramfs"
	// FlavourLibvirt boots a Debian root disk with QEMU 10 and libvirt 11
	// (libvirtd and virtlogd running, QEMU's capabilities already probed),
	// an emulated IOMMU so VFs can go to vfio-pci, and a small kernel and
	// initramfs for nested guests (DefineNested, NestedExec). libvirtd
	// also listens on its bond0 address, so nested guests can migrate
	// between such hosts (MigrateNested).
	FlavourLibvirt Flavour = "libvirt"
)

// ErrNotLibvirt is returned for a nested-guest call on a host that is not
// of FlavourLibvirt.
var ErrNotLibvirt = errors.New("host is not of the libvirt flavour")

// Where a libvirt-flavour host keeps what nested guests need.
const (
	// NestedKernel is the nested guests' kernel inside the host.
	NestedKernel = "/usr/lib/vflag/l2/vmlinuz"
	// NestedInitrd is the nested guests' initramfs inside the host.
	NestedInitrd = "/usr/lib/vflag/l2/initrd"
	// nestedRunDir holds each nested guest's agent socket and XML.
	nestedRunDir = "/run/vflag-l2"
	// nestedLogDir holds each nested guest's serial console log.
	nestedLogDir = "/var/log/vflag-l2"
)

// bootImages are what one flavour of host boots.
type bootImages struct {
	vmlinuz string
	initrd  string
	rootfs  string // FlavourLibvirt only
}

// buildImages builds (or finds in the cache) the images of every flavour
// the testbed's hosts use. files are the project binaries for /usr/bin.
func (tb *Testbed) buildImages(ctx context.Context, agent string, files []image.File) (map[Flavour]bootImages, error) {
	kernel, err := image.FetchKernel(ctx, tb.cfg.CacheDir, "", tb.log)
	if err != nil {
		return nil, fmt.Errorf("guest kernel: %w", err)
	}
	imgs := map[Flavour]bootImages{}
	for _, h := range tb.hosts {
		f := h.spec.Flavour
		if _, ok := imgs[f]; ok {
			continue
		}
		img := bootImages{vmlinuz: kernel.Vmlinuz}
		switch f {
		case FlavourLibvirt:
			if img.rootfs, err = image.DefaultRootfs().Build(ctx, tb.cfg.CacheDir, tb.log); err != nil {
				return nil, fmt.Errorf("guest root file system: %w", err)
			}
			nested, err := image.Initramfs{
				Kernel: kernel, Modules: image.NestedGuestModules(), Busybox: "/bin/busybox",
				Agent: agent, Start: image.NestedGuestStart(),
			}.Build(ctx, tb.cfg.CacheDir, tb.log)
			if err != nil {
				return nil, fmt.Errorf("nested guest initramfs: %w", err)
			}
			img.initrd, err = image.Initramfs{
				Kernel: kernel, Modules: image.LibvirtHostModules(), Busybox: "/bin/busybox", Agent: agent,
				Files: append([]image.File{
					{Guest: NestedKernel, Host: kernel.Vmlinuz},
					{Guest: NestedInitrd, Host: nested},
				}, files...),
				Start: []string{"virtlogd -d", libvirtdListenConf, libvirtdStart},
				Root:  &image.RootDisk{Device: "/dev/vda", FSType: "ext4"},
			}.Build(ctx, tb.cfg.CacheDir, tb.log)
			if err != nil {
				return nil, fmt.Errorf("libvirt host initramfs: %w", err)
			}
		default:
			img.initrd, err = image.Initramfs{
				Kernel: kernel, Modules: image.DefaultModules(), Busybox: "/bin/busybox",
				Agent: agent, Files: append(image.DefaultFiles(), withoutLibvirtOnly(files)...),
			}.Build(ctx, tb.cfg.CacheDir, tb.log)
			if err != nil {
				return nil, fmt.Errorf("guest initramfs: %w", err)
			}
		}
		imgs[f] = img
	}
	return imgs, nil
}

// libvirtdListenConf lets libvirtd take connections on TCP port 16509
// without authentication, for virsh migrate between the testbed's hosts
// (MigrateNested): their addresses exist only in the testbed's own
// namespaces. The root disk is a snapshot, so each boot appends to the
// image's file afresh.
const libvirtdListenConf = `printf '%s\n' 'listen_tls = 0' 'listen_tcp = 1' 'auth_tcp = "none"' >> /etc/libvirt/libvirtd.conf`

// libvirtdStart starts libvirtd as a libvirt-flavour host runs it: a
// daemon, listening on TCP as libvirtdListenConf says.
const libvirtdStart = "libvirtd -d --listen"

// libvirtOnly are the project binaries only libvirt-flavour hosts get:
// vflag-hook, for tests to install as /etc/libvirt/hooks/qemu.d/vflag.
var libvirtOnly = map[string]bool{"/usr/bin/vflag-hook": true}

// withoutLibvirtOnly returns files without those in libvirtOnly.
func withoutLibvirtOnly(files []image.File) []image.File {
	var out []image.File
	for _, f := range files {
		if !libvirtOnly[f.Guest] {
			out = append(out, f)
		}
	}
	return out
}

// waitLibvirt waits until libvirtd in a libvirt-flavour host answers virsh
// and prepares the nested guests' directories.
func (h *host) waitLibvirt(ctx context.Context) error {
	script := fmt.Sprintf(`i=0
until virsh -c qemu:///system version >/dev/null 2>&1; do
	i=$((i+1))
	if [ $i -ge 1200 ]; then
		echo "libvirtd does not answer:" >&2
		virsh -c qemu:///system version >&2
		tail -n 20 /var/log/libvirt/libvirtd.log >&2 2>/dev/null
		exit 1
	fi
	sleep 0.1
done
install -d -o libvirt-qemu -g kvm -m 0750 %s
install -d -m 0755 %s
`, nestedRunDir, nestedLogDir)
	res, err := h.exec(ctx, script, 3*time.Minute)
	if err != nil {
		return fmt.Errorf("host %s: wait for libvirtd: %w", h.spec.Name, err)
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("host %s: %s", h.spec.Name, bytes.TrimSpace(res.Stderr))
	}
	return nil
}

// nestedNameRE is what a nested guest may be called (a libvirt domain name
// that is also safe in paths and shell words).
var nestedNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// NestedGuest describes a guest VM that libvirt runs inside a KVM-host VM
// of FlavourLibvirt (an L2 guest). It boots the testbed's kernel and a
// small initramfs (busybox, the agent, igbvf, virtio_net) directly, with no
// disk, runs vflag-guest on a virtio-serial channel whose unix socket is in
// the host, and writes its serial console to a file in the host
// (NestedConsoleLog). Its shell and ip are busybox's. TCG inside TCG is
// slow: budget about two minutes from virsh start to its agent answering
// on an idle machine.
type NestedGuest struct {
	// Name is the libvirt domain name, [a-z][a-z0-9-]{0,31}.
	Name string
	// MemoryMB is its memory (default 256).
	MemoryMB int
	// Devices is libvirt domain XML placed in <devices> as it is, e.g. a VF
	// from HostdevInterfaceXML.
	Devices string
	// Metadata is XML placed in the domain's <metadata> as it is, e.g.
	// vflag's <vflag:vflag xmlns:vflag=...> (none when empty).
	Metadata string
}

var nestedXML = template.Must(template.New("domain").Parse(`<domain type='qemu'>
  <name>{{.Name}}</name>
{{- if .Metadata}}
  <metadata>
{{.Metadata}}
  </metadata>
{{- end}}
  <memory unit='MiB'>{{.MemoryMB}}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{{.Kernel}}</kernel>
    <initrd>{{.Initrd}}</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet vflag.hostname={{.Name}}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <serial type='file'>
      <source path='{{.Console}}'/>
      <target port='0'/>
    </serial>
    <console type='file'>
      <source path='{{.Console}}'/>
      <target type='serial' port='0'/>
    </console>
    <channel type='unix'>
      <source mode='bind' path='{{.Socket}}'/>
      <target type='virtio' name='{{.Port}}'/>
    </channel>
    <memballoon model='none'/>
{{.Devices}}
  </devices>
</domain>
`))

// XML renders the guest's libvirt domain XML.
func (g NestedGuest) XML() (string, error) {
	if !nestedNameRE.MatchString(g.Name) {
		return "", fmt.Errorf("nested guest name %q: want a lower-case letter then up to 31 letters, digits or dashes", g.Name)
	}
	if g.MemoryMB == 0 {
		g.MemoryMB = 256
	}
	var b strings.Builder
	err := nestedXML.Execute(&b, map[string]any{
		"Name": g.Name, "MemoryMB": g.MemoryMB, "Kernel": NestedKernel, "Initrd": NestedInitrd,
		"Console": NestedConsoleLog(g.Name), "Socket": nestedSocket(g.Name), "Port": image.AgentPortName,
		"Devices": g.Devices, "Metadata": g.Metadata,
	})
	if err != nil {
		return "", fmt.Errorf("render domain XML of %s: %w", g.Name, err)
	}
	return b.String(), nil
}

// NestedConsoleLog is the path, inside the host, of a nested guest's
// serial console log.
func NestedConsoleLog(name string) string { return nestedLogDir + "/" + name + ".console" }

func nestedSocket(name string) string { return nestedRunDir + "/" + name + ".agent" }

// HostdevInterfaceXML renders a VF passed to a guest the way libvirt users
// do: <interface type='hostdev' managed='yes'> with the VF's PCI address
// ("0000:01:10.0") and the MAC libvirt sets through the PF; vlan 0 sets
// none.
func HostdevInterfaceXML(pci, mac string, vlan int) (string, error) {
	var dom, bus, slot, fn uint
	if _, err := fmt.Sscanf(pci, "%x:%x:%x.%x", &dom, &bus, &slot, &fn); err != nil {
		return "", fmt.Errorf("VF PCI address %q: want DDDD:BB:SS.F: %w", pci, err)
	}
	x := fmt.Sprintf(`    <interface type='hostdev' managed='yes'>
      <mac address='%s'/>
      <source>
        <address type='pci' domain='0x%04x' bus='0x%02x' slot='0x%02x' function='0x%x'/>
      </source>
`, mac, dom, bus, slot, fn)
	if vlan > 0 {
		x += fmt.Sprintf("      <vlan><tag id='%d'/></vlan>\n", vlan)
	}
	return x + "    </interface>\n", nil
}

// TeamedInterfacesXML renders a VF with a virtio standby the way libvirt
// teams them (QEMU's virtio-net failover, net_failover in the guest): a
// virtio NIC on a macvtap over standbyDev (e.g. "bond0") with
// <teaming type='persistent'/>, and the VF as its transient partner, both
// with the same MAC. QEMU plugs the VF in only once the guest's virtio_net
// has accepted the standby feature, and unplugs it for a migration.
func TeamedInterfacesXML(pci, mac, standbyDev string) (string, error) {
	vf, err := HostdevInterfaceXML(pci, mac, 0)
	if err != nil {
		return "", err
	}
	const alias = "ua-standby0"
	vf = strings.Replace(vf, "    </interface>\n",
		"      <teaming type='transient' persistent='"+alias+"'/>\n    </interface>\n", 1)
	return fmt.Sprintf(`    <interface type='direct'>
      <mac address='%s'/>
      <source dev='%s' mode='bridge'/>
      <model type='virtio'/>
      <teaming type='persistent'/>
      <alias name='%s'/>
    </interface>
`, mac, standbyDev, alias) + vf, nil
}

// libvirtHost returns the host, which must be of FlavourLibvirt.
func (tb *Testbed) libvirtHost(name string) (*host, error) {
	h, err := tb.host(name)
	if err != nil {
		return nil, err
	}
	if h.spec.Flavour != FlavourLibvirt {
		return nil, fmt.Errorf("host %s (flavour %s): %w", name, h.spec.Flavour, ErrNotLibvirt)
	}
	return h, nil
}

// VFAddress returns the PCI address of VF index vf of a host's PF ("pf0"
// or "pf1"), as the host's sysfs has it.
func (tb *Testbed) VFAddress(ctx context.Context, hostName, pf string, vf int) (string, error) {
	if pf != "pf0" && pf != "pf1" {
		return "", fmt.Errorf("PF %q of host %s: want pf0 or pf1", pf, hostName)
	}
	out, err := tb.MustExec(ctx, hostName, fmt.Sprintf("basename $(readlink /sys/class/net/%s/device/virtfn%d)", pf, vf))
	if err != nil {
		return "", fmt.Errorf("VF %d of %s on host %s: %w", vf, pf, hostName, err)
	}
	return strings.TrimSpace(out), nil
}

// Virsh runs virsh -c qemu:///system with args (each one shell word) in a
// libvirt-flavour host and returns its output; a non-zero exit is an
// error carrying virsh's message.
func (tb *Testbed) Virsh(ctx context.Context, hostName string, args ...string) (string, error) {
	if _, err := tb.libvirtHost(hostName); err != nil {
		return "", err
	}
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return tb.MustExec(ctx, hostName, "virsh -c qemu:///system "+strings.Join(q, " "))
}

// RestartLibvirtd stops libvirtd in a libvirt-flavour host, starts it
// again (it looks for hooks only at start) and waits until virsh answers.
// Running domains keep running: libvirtd reconnects to their QEMUs and
// runs the qemu hook's reconnect operation for each.
func (tb *Testbed) RestartLibvirtd(ctx context.Context, hostName string) error {
	h, err := tb.libvirtHost(hostName)
	if err != nil {
		return err
	}
	script := `pid=$(cat /run/libvirtd.pid 2>/dev/null || pidof libvirtd)
if [ -n "$pid" ]; then
	kill $pid
	i=0
	while kill -0 $pid 2>/dev/null; do
		i=$((i+1))
		[ $i -lt 300 ] || { echo "libvirtd (pid $pid) did not stop within 30 s" >&2; exit 1; }
		sleep 0.1
	done
fi
` + libvirtdStart + "\n"
	if _, err := tb.MustExec(ctx, hostName, script); err != nil {
		return fmt.Errorf("restart libvirtd on %s: %w", hostName, err)
	}
	return h.waitLibvirt(ctx)
}

// MigrateNested live-migrates a nested guest from one libvirt-flavour host
// to another as an operator would: virsh migrate --live --persistent
// --undefinesource in the source, to qemu+tcp:// at the destination's
// bond0 address, with QEMU's memory stream to that address too. It
// returns virsh's output; a failed migration is an error carrying virsh's
// message. timeout bounds the whole migration (TCG inside TCG: budget a
// minute for a 192 MiB guest).
func (tb *Testbed) MigrateNested(ctx context.Context, guest, from, to string, timeout time.Duration) (string, error) {
	src, err := tb.libvirtHost(from)
	if err != nil {
		return "", err
	}
	dst, err := tb.libvirtHost(to)
	if err != nil {
		return "", err
	}
	if !nestedNameRE.MatchString(guest) {
		return "", fmt.Errorf("nested guest name %q: want a lower-case letter then up to 31 letters, digits or dashes", guest)
	}
	addr := dst.addr()
	cmd := fmt.Sprintf("virsh -c qemu:///system migrate --live --persistent --undefinesource --verbose %s qemu+tcp://%s/system --migrateuri tcp://%s",
		guest, addr, addr)
	res, err := src.exec(ctx, cmd, timeout)
	if err != nil {
		return "", fmt.Errorf("migrate %s from %s to %s: %w", guest, from, to, err)
	}
	out := strings.TrimSpace(string(res.Stdout) + " " + string(res.Stderr))
	if res.ExitCode != 0 {
		return out, fmt.Errorf("migrate %s from %s to %s: virsh exited %d: %s", guest, from, to, res.ExitCode, out)
	}
	return out, nil
}

// DefineNested writes the guest's domain XML into the host and defines it
// with virsh define; start it with Virsh(ctx, host, "start", name).
func (tb *Testbed) DefineNested(ctx context.Context, hostName string, g NestedGuest) error {
	x, err := g.XML()
	if err != nil {
		return err
	}
	if _, err := tb.libvirtHost(hostName); err != nil {
		return err
	}
	file := nestedRunDir + "/" + g.Name + ".xml"
	cmd := fmt.Sprintf("cat > %s <<'VFLAG_XML_END'\n%sVFLAG_XML_END\nvirsh -c qemu:///system define %s", file, x, file)
	if _, err := tb.MustExec(ctx, hostName, cmd); err != nil {
		return fmt.Errorf("define nested guest %s on %s: %w", g.Name, hostName, err)
	}
	return nil
}

// NestedExec runs a shell command in a nested guest through its agent and
// returns its exit code and output, like Exec. The host's agent relays the
// request: socat in the host connects to the guest's agent socket, sends
// the request line and keeps the matching response line.
func (tb *Testbed) NestedExec(ctx context.Context, hostName, guest, cmd string, timeout time.Duration) (guestagent.Result, error) {
	req := guestagent.Request{Op: guestagent.OpExec, Cmd: cmd}
	if timeout > 0 {
		req.TimeoutMS = max(1, timeout.Milliseconds())
	} else {
		timeout = guestagent.DefaultTimeout
	}
	resp, err := tb.nestedRoundTrip(ctx, hostName, guest, req, timeout+10*time.Second)
	if err != nil {
		return guestagent.Result{}, fmt.Errorf("run %q in nested guest %s on %s: %w", cmd, guest, hostName, err)
	}
	res := guestagent.Result{ExitCode: resp.Exit, Stdout: resp.Stdout, Stderr: resp.Stderr, Truncated: resp.Truncated}
	if resp.Error != "" {
		return res, fmt.Errorf("run %q in nested guest %s on %s: %w", cmd, guest, hostName,
			&guestagent.RemoteError{Msg: resp.Error, TimedOut: resp.TimedOut})
	}
	return res, nil
}

// NestedTimeout bounds each command NestedMustExec runs. Under TCG inside
// TCG even bringing a VF up in an L2 guest took over a minute once (CI,
// 2026-11-21), so it is generous.
const NestedTimeout = 3 * time.Minute

// NestedMustExec is NestedExec (with NestedTimeout) with a non-zero exit
// turned into an error that carries the command's output.
func (tb *Testbed) NestedMustExec(ctx context.Context, hostName, guest, cmd string) (string, error) {
	res, err := tb.NestedExec(ctx, hostName, guest, cmd, NestedTimeout)
	if err != nil {
		return "", err
	}
	if res.ExitCode != 0 {
		return string(res.Stdout), fmt.Errorf("%s/%s: `%s` exited %d: %s", hostName, guest, cmd, res.ExitCode,
			strings.TrimSpace(string(res.Stderr)+" "+string(res.Stdout)))
	}
	return string(res.Stdout), nil
}

// WaitNested waits until a nested guest's agent answers, or ctx ends.
func (tb *Testbed) WaitNested(ctx context.Context, hostName, guest string) error {
	var last error
	for {
		_, err := tb.nestedRoundTrip(ctx, hostName, guest, guestagent.Request{Op: guestagent.OpPing}, 3*time.Second)
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the agent of nested guest %s on %s: %w (last attempt: %w)", guest, hostName, ctx.Err(), last)
		case <-time.After(time.Second):
		}
	}
}

// errNoAnswer is returned when the nested agent sent no matching response.
var errNoAnswer = errors.New("no answer from the nested guest's agent")

// nestedRoundTrip sends one request to a nested guest's agent through the
// host and returns the response; wait bounds the host-side relay.
func (tb *Testbed) nestedRoundTrip(ctx context.Context, hostName, guest string, req guestagent.Request, wait time.Duration) (guestagent.Response, error) {
	h, err := tb.libvirtHost(hostName)
	if err != nil {
		return guestagent.Response{}, err
	}
	if !nestedNameRE.MatchString(guest) {
		return guestagent.Response{}, fmt.Errorf("nested guest name %q: want a lower-case letter then up to 31 letters, digits or dashes", guest)
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return guestagent.Response{}, fmt.Errorf("make request id: %w", err)
	}
	req.ID = hex.EncodeToString(id[:])
	line, err := json.Marshal(req)
	if err != nil {
		return guestagent.Response{}, fmt.Errorf("encode request: %w", err)
	}
	// The request starts with a newline, like the agent's client sends it
	// (it ends a partial line an interrupted client left). socat's address
	// syntax gives meaning to commas, colons and quotes, hence the variables.
	secs := int(wait.Seconds()) + 1
	resp := fmt.Sprintf("/tmp/vflag-l2-%s.resp", req.ID)
	script := fmt.Sprintf(`export VREQ=%s VPAT='"id":"%s"'
timeout %d socat -T %d UNIX-CONNECT:%s SYSTEM:'echo;echo $VREQ|base64 -d;echo;grep -m1 -F -e $VPAT >%s'
rc=$?
cat %s 2>/dev/null
rm -f %s
exit $rc
`, base64.StdEncoding.EncodeToString(line), req.ID, secs, secs, nestedSocket(guest), resp, resp, resp)
	res, err := h.exec(ctx, script, wait+5*time.Second)
	if err != nil {
		return guestagent.Response{}, err
	}
	var r guestagent.Response
	if json.Unmarshal(bytes.TrimSpace(res.Stdout), &r) != nil || r.ID != req.ID {
		return guestagent.Response{}, fmt.Errorf("%w (relay exited %d: %s)", errNoAnswer, res.ExitCode, bytes.TrimSpace(res.Stderr))
	}
	return r, nil
}

// shellQuote quotes s as one POSIX shell word.
func shellQuote(s string) string {
	if s != "" && regexp.MustCompile(`^[A-Za-z0-9_./:=@%+,-]+$`).MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
