package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
	"github.com/digitalocean/go-qemu/qmp/raw"

	"github.com/vflag/vflag/testenv/guestagent"
	"github.com/vflag/vflag/testenv/image"
)

// qmpMonitor is the part of QMP the testbed uses; *raw.Monitor has it.
type qmpMonitor interface {
	SetLink(name string, up bool) error
	Stop() error
	Cont() error
	Quit() error
}

var _ qmpMonitor = (*raw.Monitor)(nil)

// host is one KVM-host VM.
type host struct {
	spec  HostSpec
	index int // 1-based, picks MACs and addresses
	dir   string

	// PID of the QEMU process.
	PID int
	// ReadyAfter is the time from QEMU's start to the host being provisioned.
	ReadyAfter time.Duration
	// LinkDown records which ports' cables are pulled.
	LinkDown [PortsPerHost]bool

	cmd      *exec.Cmd  // set when this process started QEMU
	launched time.Time  // when QEMU was started
	taps     []*os.File // the switch side of each port, held until QEMU has them
	done     chan struct{}

	// agentMu guards agent, the connection to the guest agent.
	agentMu sync.Mutex
	agent   *guestagent.Client
}

func (h *host) path(name string) string { return filepath.Join(h.dir, name) }

func (h *host) portName(i int) string { return fmt.Sprintf("%s-p%d", h.spec.Name, i) }

// portMAC is the permanent MAC of port i, unique within the testbed.
func (h *host) portMAC(i int) string { return fmt.Sprintf("52:54:00:0f:%02x:%02x", h.index, i) }

func (h *host) addr() netip.Addr {
	a := subnet.Addr().As4()
	a[3] = byte(10 + h.index)
	return netip.AddrFrom4(a)
}

func portDevice(i int) string { return fmt.Sprintf("p%d", i) }

// qemuArgs is the QEMU command line of a host: q35, a serial console and
// the agent's virtio-serial port on unix sockets, QMP, and one igb NIC per
// port, each on its own PCIe root port (SR-IOV needs PCIe) with its tap
// passed as an inherited file descriptor (3, 4, ...). The libvirt flavour
// adds an emulated IOMMU (intel-iommu with interrupt remapping, so VFs can
// be bound to vfio-pci in the guest; caching-mode for nested VFIO; KVM
// needs the split irqchip for it) and its root disk with snapshot=on, so
// every boot starts from the cached image and writes nothing back.
func (h *host) qemuArgs(accel string, img bootImages) []string {
	cpu := "max"
	if accel == "kvm" {
		cpu = "host"
	}
	machine := "q35"
	cmdline := "console=ttyS0 panic=-1 quiet vflag.hostname=" + h.spec.Name
	if h.spec.Flavour == FlavourLibvirt && accel == "kvm" {
		machine += ",kernel-irqchip=split"
	}
	if h.spec.Flavour == FlavourLibvirt {
		cmdline += " intel_iommu=on iommu=pt"
	}
	args := []string{
		"-name", h.spec.Name,
		"-machine", machine, "-accel", accel, "-cpu", cpu,
		"-m", fmt.Sprint(h.spec.MemoryMB), "-smp", "2",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
	}
	if h.spec.Flavour == FlavourLibvirt {
		args = append(args,
			"-device", "intel-iommu,intremap=on,caching-mode=on",
			"-drive", "file="+img.rootfs+",format=raw,if=none,id=root,snapshot=on",
			"-device", "virtio-blk-pci,drive=root",
		)
	}
	args = append(args,
		"-kernel", img.vmlinuz, "-initrd", img.initrd,
		"-append", cmdline,
		"-chardev", "socket,id=con,path="+h.path("console.sock")+",server=on,wait=off,logfile="+h.path("console.log")+",logappend=on",
		"-serial", "chardev:con",
		"-qmp", "unix:"+h.path("qmp.sock")+",server=on,wait=off",
		"-device", "virtio-serial-pci,id=vser",
		"-chardev", "socket,id=agent,path="+h.path("agent.sock")+",server=on,wait=off",
		"-device", "virtserialport,bus=vser.0,chardev=agent,name="+image.AgentPortName,
		"-pidfile", h.path("qemu.pid"),
	)
	for i := range PortsPerHost {
		args = append(args,
			"-device", fmt.Sprintf("pcie-root-port,id=rp%d,chassis=%d,slot=%d", i, i+1, i+1),
			"-netdev", fmt.Sprintf("tap,id=n%d,fd=%d", i, 3+i),
			"-device", fmt.Sprintf("igb,id=%s,bus=rp%d,netdev=n%d,mac=%s", portDevice(i), i, i, h.portMAC(i)),
		)
	}
	return args
}

// launch creates the host's taps and starts its QEMU.
func (h *host) launch(ctx context.Context, tb *Testbed, img bootImages) error {
	if err := os.MkdirAll(h.dir, 0o755); err != nil {
		return fmt.Errorf("host %s: %w", h.spec.Name, err)
	}
	for i := range PortsPerHost {
		br := ToRA
		if i == 1 {
			br = ToRB
		}
		tap, err := tb.fabric.addTap(h.portName(i), br)
		if err != nil {
			return fmt.Errorf("host %s: %w", h.spec.Name, err)
		}
		h.taps = append(h.taps, tap)
	}
	logf, err := os.Create(h.path("qemu.log"))
	if err != nil {
		return fmt.Errorf("host %s: %w", h.spec.Name, err)
	}
	defer logf.Close()
	cmd := exec.Command("qemu-system-x86_64", h.qemuArgs(tb.cfg.Accel, img)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = h.taps
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if !tb.cfg.Detached {
		// QEMU dies with the test that started it.
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	tb.log.Info("starting QEMU", "host", h.spec.Name, "accel", tb.cfg.Accel, "log", h.path("qemu.log"))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("host %s: start qemu-system-x86_64: %w", h.spec.Name, err)
	}
	h.cmd, h.PID, h.launched = cmd, cmd.Process.Pid, time.Now()
	h.done = make(chan struct{})
	go func() { _ = cmd.Wait(); close(h.done) }()
	// QEMU holds the taps now; ours would keep them alive after QEMU exits.
	for _, t := range h.taps {
		t.Close()
	}
	h.taps = nil
	return nil
}

// waitReady waits for the guest agent to answer, failing early if QEMU exits.
func (h *host) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- guestagent.WaitReady(ctx, h.path("agent.sock"), 250*time.Millisecond) }()
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("host %s: guest agent did not answer (console: %s): %w", h.spec.Name, h.path("console.log"), err)
		}
		return nil
	case <-h.doneChan():
		cancel()
		out, _ := os.ReadFile(h.path("qemu.log"))
		return fmt.Errorf("host %s: QEMU exited during boot: %s", h.spec.Name, bytes.TrimSpace(out))
	}
}

func (h *host) doneChan() <-chan struct{} {
	if h.done == nil {
		return nil
	}
	return h.done
}

// provision names the PFs, creates the VFs and bonds the PFs.
func (h *host) provision(ctx context.Context) error {
	script := fmt.Sprintf(`set -e
for d in /sys/class/net/*; do
	[ -f "$d/address" ] || continue
	case "$(cat "$d/address")" in
	%[1]s) ip link set "${d##*/}" name pf0 ;;
	%[2]s) ip link set "${d##*/}" name pf1 ;;
	esac
done
for p in pf0 pf1; do
	ip link set "$p" up
	echo %[3]d > /sys/class/net/$p/device/sriov_numvfs
done
ip link add bond0 type bond mode active-backup miimon 20
for p in pf0 pf1; do ip link set "$p" down; ip link set "$p" master bond0; done
ip link set bond0 up
ip addr add %[4]s/%[5]d dev bond0
i=0
until [ -n "$(cat /sys/class/net/bond0/bonding/active_slave)" ] &&
	[ "$(ls -d /sys/class/net/pf0/device/virtfn*/net/* /sys/class/net/pf1/device/virtfn*/net/* 2>/dev/null | wc -l)" = %[6]d ]; do
	i=$((i+1))
	if [ $i -ge 300 ]; then
		echo "bond0 or VFs not ready: active slave '$(cat /sys/class/net/bond0/bonding/active_slave)'," \
			"VF netdevs: $(ls -d /sys/class/net/pf*/device/virtfn*/net/* 2>/dev/null | wc -l)" >&2
		ip -br link >&2
		exit 1
	fi
	sleep 0.1
done
`, h.portMAC(0), h.portMAC(1), h.spec.VFs, h.addr(), subnet.Bits(), 2*h.spec.VFs)
	res, err := h.exec(ctx, script, 2*time.Minute)
	if err != nil {
		return fmt.Errorf("host %s: provision: %w", h.spec.Name, err)
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("host %s: provision exited %d: %s", h.spec.Name, res.ExitCode, bytes.TrimSpace(append(res.Stderr, res.Stdout...)))
	}
	return nil
}

// exec runs a command through the guest agent, reconnecting once if the
// connection broke. A command the agent answered for, even with an error
// (it timed out), is not run again.
func (h *host) exec(ctx context.Context, cmd string, timeout time.Duration) (guestagent.Result, error) {
	h.agentMu.Lock()
	defer h.agentMu.Unlock()
	var lastErr error
	for range 2 {
		if h.agent == nil {
			c, err := guestagent.Dial(ctx, h.path("agent.sock"))
			if err != nil {
				return guestagent.Result{}, fmt.Errorf("host %s: connect to guest agent: %w", h.spec.Name, err)
			}
			h.agent = c
		}
		res, err := h.agent.Exec(ctx, cmd, timeout)
		if err == nil {
			return res, nil
		}
		// The agent answered (the command timed out or could not run):
		// the connection is fine, and running the command again could
		// repeat what it did.
		if re := (*guestagent.RemoteError)(nil); errors.As(err, &re) {
			return res, fmt.Errorf("host %s: exec: %w", h.spec.Name, err)
		}
		lastErr = err
		h.agent.Close()
		h.agent = nil
		if ctx.Err() != nil {
			break
		}
	}
	return guestagent.Result{}, fmt.Errorf("host %s: exec: %w", h.spec.Name, lastErr)
}

// qmp runs fn on a fresh QMP connection.
func (h *host) qmp(ctx context.Context, fn func(qmpMonitor) error) error {
	mon, err := qmp.NewSocketMonitor("unix", h.path("qmp.sock"), 2*time.Second)
	if err != nil {
		return fmt.Errorf("host %s: QMP: %w", h.spec.Name, err)
	}
	if err := mon.Connect(); err != nil {
		return fmt.Errorf("host %s: QMP handshake: %w", h.spec.Name, err)
	}
	defer mon.Disconnect()
	errc := make(chan error, 1)
	go func() { errc <- fn(raw.NewMonitor(mon)) }()
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("host %s: QMP: %w", h.spec.Name, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("host %s: QMP: %w", h.spec.Name, ctx.Err())
	}
}

// stop ends QEMU: QMP quit, then SIGTERM, then SIGKILL.
func (h *host) stop() error {
	h.agentMu.Lock()
	if h.agent != nil {
		h.agent.Close()
		h.agent = nil
	}
	h.agentMu.Unlock()
	for _, t := range h.taps {
		t.Close()
	}
	h.taps = nil
	if h.PID == 0 || !isOurQEMU(h.PID, h.dir) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = h.qmp(ctx, func(m qmpMonitor) error { return m.Quit() })
	if waitGone(h, 3*time.Second) {
		return nil
	}
	_ = syscall.Kill(h.PID, syscall.SIGKILL)
	if waitGone(h, 5*time.Second) {
		return nil
	}
	return fmt.Errorf("host %s: QEMU pid %d does not exit", h.spec.Name, h.PID)
}

func waitGone(h *host, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if h.done != nil {
			select {
			case <-h.done:
				return true
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		if !isOurQEMU(h.PID, h.dir) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// isOurQEMU tells whether pid is a live QEMU started for the host directory
// dir (so a recycled pid is never killed).
func isOurQEMU(pid int, dir string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err == nil {
		// A zombie (state Z) has exited already.
		if f := strings.Fields(string(stat)); len(f) > 2 && f[2] == "Z" {
			return false
		}
	}
	args := strings.Split(string(b), "\x00")
	return len(args) > 0 && strings.HasSuffix(args[0], "qemu-system-x86_64") && strings.Contains(string(b), dir+"/")
}

// checkLibvirtTools names what the libvirt flavour needs besides
// checkTools: the tools that build its Debian root file system.
func checkLibvirtTools() error {
	for _, t := range []string{"debootstrap", "mkfs.ext4", "unshare", "chroot"} {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%w: %s not found (the libvirt flavour builds a Debian root disk); run testenv/setup-host.sh", ErrMissingTool, t)
		}
	}
	return nil
}

// checkTools names what is missing on the host and how to get it.
func checkTools() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: the testbed needs root (network namespaces, taps)", ErrMissingTool)
	}
	for _, t := range []string{"qemu-system-x86_64", "ip", "apt-get", "dpkg-deb", "depmod", "ldd"} {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%w: %s not found; run testenv/setup-host.sh", ErrMissingTool, t)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		return fmt.Errorf("%w: /bin/busybox (busybox-static) not found; run testenv/setup-host.sh", ErrMissingTool)
	}
	out, err := exec.Command("qemu-system-x86_64", "-device", "help").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte(`"igb"`)) {
		return fmt.Errorf("%w: qemu-system-x86_64 has no igb device (QEMU >= 8 from bookworm-backports); run testenv/setup-host.sh", ErrMissingTool)
	}
	return nil
}
