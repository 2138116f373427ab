package scenario

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vflag/vflag/testenv"
)

// RDMAPull is the RDMA scenario: an RC connection between two KVM hosts'
// Soft-RoCE devices (rdma-core's ibv_rc_pingpong, SEND/RECV on one RC QP)
// runs while the active port of the first host's bond loses its cable.
const RDMAPull = "rdma-pull"

// The RDMA variants: where the pulled host's RDMA device sits.
const (
	// RDMASinglePF: Soft-RoCE on one PF taken out of the bond, with an
	// address of its own: the baseline, RDMA on one port.
	RDMASinglePF = "single-pf"
	// RDMAOnBond: vflagd in mode soft on a bond that is no bridge port,
	// so Soft-RoCE sits on the bond netdev itself.
	RDMAOnBond = "rxe-on-bond"
	// RDMAVflag: vflagd in mode soft, with bond0 a port of bridge br0.
	RDMAVflag = "vflag"
)

// The single-pf variant's own subnet: the PF and the peer's second
// address.
const (
	singlePFAddr     = "198.18.3.11"
	singlePFPeerAddr = "198.18.3.12"
)

// RDMAVariants are the variants RunRDMAPull runs, in order.
var RDMAVariants = []string{RDMASinglePF, RDMAOnBond, RDMAVflag}

// RDMASample is one reading of the pulled host's RDMA device.
type RDMASample struct {
	// AtMs is the host's uptime in ms.
	AtMs float64 `json:"at_ms"`
	// Sends is the device's rdma_sends counter: SENDs completed.
	Sends int64 `json:"sends"`
	// State is bond0's active port, or for single-pf the PF's operstate.
	State string `json:"state"`
}

// RDMAResult is what one variant showed.
type RDMAResult struct {
	Scenario string `json:"scenario"`
	Variant  string `json:"variant"`
	// Device and Netdev are the pulled host's RDMA device and the netdev
	// it is bound to.
	Device string `json:"device"`
	Netdev string `json:"netdev"`
	// Pulled is the port whose cable was pulled.
	Pulled string `json:"pulled"`
	// Survived: the application still ran after the pull, made progress
	// on the same connection and reported no error.
	Survived bool `json:"survived"`
	// AppOutput is what the client printed (its error when it failed).
	AppOutput string `json:"app_output,omitempty"`
	// VflagdRDMA are vflagd's "rdma" events in the window (variants
	// with vflagd).
	VflagdRDMA []string `json:"vflagd_rdma_events,omitempty"`
	// SendsBefore and SendsAfter are SENDs completed before the host saw
	// the loss (the bond switched, or the single PF went down) and from
	// then to the end of the window.
	SendsBefore int64 `json:"sends_before"`
	SendsAfter  int64 `json:"sends_after"`
	// StallMs is the longest time without a completed SEND from the loss
	// to the end of the window (the whole rest of the window when the
	// connection died).
	StallMs float64 `json:"stall_ms"`
	// WindowMs is how long the host was watched after the loss.
	WindowMs float64 `json:"window_ms"`
	// LossAtMs is when the host saw the loss (host uptime).
	LossAtMs float64      `json:"loss_at_ms"`
	Samples  []RDMASample `json:"samples"`
}

// RDMAOptions tune RunRDMAPull.
type RDMAOptions struct {
	// Host is the host whose cable is pulled; Peer the other end (defaults
	// kvm1 and kvm2).
	Host, Peer string
	// After is how long to watch after the pull (default 6 s).
	After time.Duration
	// Variants to run (default RDMAVariants).
	Variants []string
}

// RunRDMAPull runs each variant on a testbed with (at least) two hosts and
// returns what each showed. The peer's Soft-RoCE device sits on its bond
// (it never fails over); the pulled host is set up afresh per variant, and
// both cables are back in at the end.
func RunRDMAPull(ctx context.Context, tb *testenv.Testbed, opts RDMAOptions) ([]RDMAResult, error) {
	if opts.Host == "" {
		opts.Host = "kvm1"
	}
	if opts.Peer == "" {
		opts.Peer = "kvm2"
	}
	if opts.After == 0 {
		opts.After = 6 * time.Second
	}
	if len(opts.Variants) == 0 {
		opts.Variants = RDMAVariants
	}
	peerAddr, err := tb.HostAddr(opts.Peer)
	if err != nil {
		return nil, err
	}
	hostAddr, err := tb.HostAddr(opts.Host)
	if err != nil {
		return nil, err
	}
	// The peer reaches the single PF's subnet by a second address.
	peerSetup := fmt.Sprintf(`rdma link show rxe_bond0 >/dev/null 2>&1 || rdma link add rxe_bond0 type rxe netdev bond0
ip addr replace %s/24 dev bond0`, singlePFPeerAddr)
	if _, err := tb.MustExec(ctx, opts.Peer, peerSetup); err != nil {
		return nil, fmt.Errorf("%s: soft-RoCE peer: %w", opts.Peer, err)
	}
	peerGID, err := waitGID(ctx, tb, opts.Peer, "rxe_bond0", peerAddr)
	if err != nil {
		return nil, err
	}
	peerGID2, err := waitGID(ctx, tb, opts.Peer, "rxe_bond0", singlePFPeerAddr)
	if err != nil {
		return nil, err
	}
	var out []RDMAResult
	for i, v := range opts.Variants {
		gid := peerGID
		if v == RDMASinglePF {
			gid = peerGID2
		}
		r, err := runRDMAVariant(ctx, tb, opts, v, hostAddr, peerAddr, gid, 18515+i)
		if err != nil {
			return out, fmt.Errorf("rdma variant %s: %w", v, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// resetRDMAScript puts the pulled host back to plain bond0 (address on the
// bond, pf0 active) with no RDMA device, no vflagd and no test programs.
const resetRDMAScript = `killall vflagd vflag ibv_rc_pingpong 2>/dev/null
kill $(cat /tmp/rdma-sampler.pid 2>/dev/null) 2>/dev/null
for d in $(ls /sys/class/infiniband 2>/dev/null); do rdma link delete $d 2>/dev/null; done
if [ ! -e /sys/class/net/pf0/master ]; then
	ip addr flush dev pf0
	ip link set pf0 down
	ip link set pf0 master bond0
	ip link set pf0 up
fi
if [ -e /sys/class/net/br0 ]; then
	a=$(ip -4 -o addr show dev br0 | awk '{print $4}')
	ip link set bond0 nomaster
	ip link del br0
	[ -z "$a" ] || ip addr add $a dev bond0
fi
i=0; until grep -q up /sys/class/net/bond0/bonding/mii_status && [ $(grep -c 'MII Status: up' /proc/net/bonding/bond0) = 3 ]; do i=$((i+1)); [ $i -lt 100 ] || break; usleep 50000; done
echo pf0 > /sys/class/net/bond0/bonding/active_slave
rm -f /tmp/rdma-*.log /tmp/rdma-samples
true
`

func runRDMAVariant(ctx context.Context, tb *testenv.Testbed, opts RDMAOptions, variant, hostAddr, peerAddr, peerGID string, port int) (RDMAResult, error) {
	r := RDMAResult{Scenario: RDMAPull, Variant: variant, Pulled: opts.Host + "-p0"}
	for _, p := range []string{opts.Host + "-p0", opts.Host + "-p1"} {
		if _, err := tb.Plug(ctx, p); err != nil {
			return r, err
		}
	}
	if _, err := tb.MustExec(ctx, opts.Host, resetRDMAScript); err != nil {
		return r, fmt.Errorf("reset %s: %w", opts.Host, err)
	}
	local, state := hostAddr, "/sys/class/net/bond0/bonding/active_slave"
	switch variant {
	case RDMASinglePF:
		r.Device, r.Netdev = "rxe_pf0", "pf0"
		local, state = singlePFAddr, "/sys/class/net/pf0/operstate"
		script := fmt.Sprintf(`set -e
ip link set pf0 nomaster
ip addr add %s/24 dev pf0
ip link set pf0 up
rdma link add rxe_pf0 type rxe netdev pf0
`, singlePFAddr)
		if _, err := tb.MustExec(ctx, opts.Host, script); err != nil {
			return r, err
		}
	case RDMAOnBond:
		r.Device, r.Netdev = "rxe_bond0", "bond0"
		if _, err := tb.MustExec(ctx, opts.Host, StartVflagdScript(1, "    rdma: soft", "")+"(vflag events > /tmp/rdma-events.log 2>&1 &)\n"); err != nil {
			return r, fmt.Errorf("start vflagd: %w", err)
		}
	case RDMAVflag:
		r.Device, r.Netdev = "rxe_bond0", "br0"
		// The usual KVM host layout: the host's address on a bridge
		// over the bond. vflagd then binds Soft-RoCE to br0.
		bridge := fmt.Sprintf(`set -e
ip link add br0 type bridge stp_state 0 forward_delay 0
ip link set br0 address $(cat /sys/class/net/bond0/address)
ip link set bond0 master br0
ip addr del %[1]s/24 dev bond0
ip addr add %[1]s/24 dev br0
ip link set br0 up
`, hostAddr)
		if _, err := tb.MustExec(ctx, opts.Host, bridge); err != nil {
			return r, fmt.Errorf("bridge over bond0: %w", err)
		}
		if _, err := tb.MustExec(ctx, opts.Host, StartVflagdScript(1, "    rdma: soft", "")+"(vflag events > /tmp/rdma-events.log 2>&1 &)\n"); err != nil {
			return r, fmt.Errorf("start vflagd: %w", err)
		}
		out, err := tb.MustExec(ctx, opts.Host, "rdma link show rxe_bond0/1")
		if err != nil {
			return r, err
		}
		if !strings.Contains(out, "netdev br0") {
			return r, fmt.Errorf("vflagd did not put rxe_bond0 on br0: %s", out)
		}
	default:
		return r, fmt.Errorf("unknown variant %q", variant)
	}
	gid, err := waitGID(ctx, tb, opts.Host, r.Device, local)
	if err != nil {
		return r, err
	}
	server := fmt.Sprintf(`(setsid ibv_rc_pingpong -d rxe_bond0 -g %s -p %d -n 10000000 > /tmp/rdma-server.log 2>&1 < /dev/null &)`, peerGID, port)
	if _, err := tb.MustExec(ctx, opts.Peer, `killall ibv_rc_pingpong 2>/dev/null; usleep 200000; `+server); err != nil {
		return r, err
	}
	counter := "/sys/class/infiniband/" + r.Device + "/ports/1/hw_counters/rdma_sends"
	client := fmt.Sprintf(`usleep 500000
(setsid ibv_rc_pingpong -d %[1]s -g %[2]s -p %[3]d -n 10000000 %[4]s > /tmp/rdma-client.log 2>&1 < /dev/null &)
(setsid sh -c 'echo $$ > /tmp/rdma-sampler.pid; while :; do read up idle < /proc/uptime; read s < %[5]s; read a < %[6]s; echo "$up $s $a"; usleep 20000; done' > /tmp/rdma-samples 2>&1 < /dev/null &)
i=0; until [ "$(cat %[5]s)" -gt 50 ]; do i=$((i+1)); [ $i -lt 200 ] || { echo "no RDMA traffic:"; cat /tmp/rdma-client.log; exit 1; } >&2; usleep 50000; done
`, r.Device, gid, port, peerAddr, counter, state)
	if _, err := tb.MustExec(ctx, opts.Host, client); err != nil {
		return r, fmt.Errorf("start the RDMA client: %w", err)
	}
	time.Sleep(time.Second)
	if _, err := tb.Pull(ctx, r.Pulled, testenv.Cable); err != nil {
		return r, err
	}
	time.Sleep(opts.After)
	res, err := tb.Exec(ctx, opts.Host, `kill $(cat /tmp/rdma-sampler.pid); pidof ibv_rc_pingpong >/dev/null && echo RUNNING; echo ---; cat /tmp/rdma-client.log; echo ---; cat /tmp/rdma-samples`)
	if err != nil {
		return r, err
	}
	ev, err := tb.Exec(ctx, opts.Host, `grep ' rdma ' /tmp/rdma-events.log 2>/dev/null; true`)
	if err != nil {
		return r, err
	}
	parts := strings.SplitN(string(res.Stdout), "---\n", 3)
	if len(parts) != 3 {
		return r, fmt.Errorf("unexpected output from %s: %q", opts.Host, res.Stdout)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(ev.Stdout)), "\n") {
		if l != "" {
			r.VflagdRDMA = append(r.VflagdRDMA, l)
		}
	}
	running := strings.TrimSpace(parts[0]) == "RUNNING"
	r.AppOutput = strings.TrimSpace(parts[1])
	r.Samples, err = parseRDMASamples(strings.NewReader(parts[2]))
	if err != nil {
		return r, err
	}
	r.summarize()
	r.Survived = running && r.SendsAfter > 0 && !appFailed(r.AppOutput) && r.StallMs < r.WindowMs
	if _, err := tb.Plug(ctx, r.Pulled); err != nil {
		return r, err
	}
	if _, err := tb.MustExec(ctx, opts.Host, resetRDMAScript); err != nil {
		return r, err
	}
	if _, err := tb.Exec(ctx, opts.Peer, "killall ibv_rc_pingpong"); err != nil {
		return r, err
	}
	return r, nil
}

// appFailed reports whether ibv_rc_pingpong's output shows a failure: it
// prints its local and remote address at the start, and on a failed
// completion "Failed status ..." / "parse WC failed".
func appFailed(out string) bool {
	l := strings.ToLower(out)
	return strings.Contains(l, "fail") || strings.Contains(l, "error") || strings.Contains(l, "couldn't")
}

// summarize fills the figures from the samples.
func (r *RDMAResult) summarize() {
	if len(r.Samples) == 0 {
		return
	}
	first := r.Samples[0]
	fo := -1
	for i, s := range r.Samples {
		if s.State != first.State {
			fo = i
			break
		}
	}
	if fo < 0 {
		return
	}
	last := r.Samples[len(r.Samples)-1]
	r.LossAtMs = r.Samples[fo].AtMs
	r.SendsBefore = r.Samples[fo-1].Sends
	r.SendsAfter = last.Sends - r.SendsBefore
	r.WindowMs = last.AtMs - r.LossAtMs
	// The longest run without progress from the loss on.
	since := r.LossAtMs
	prev := r.SendsBefore
	for _, s := range r.Samples[fo:] {
		if s.Sends != prev {
			r.StallMs = max(r.StallMs, s.AtMs-since)
			since, prev = s.AtMs, s.Sends
		}
	}
	r.StallMs = max(r.StallMs, last.AtMs-since)
}

// parseRDMASamples reads the sampler's lines: "UPTIME SENDS ACTIVE".
func parseRDMASamples(rd io.Reader) ([]RDMASample, error) {
	var out []RDMASample
	sc := bufio.NewScanner(rd)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			continue // a line cut by the kill
		}
		up, err1 := strconv.ParseFloat(f[0], 64)
		n, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, RDMASample{AtMs: up * 1000, Sends: n, State: f[2]})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no RDMA samples")
	}
	return out, sc.Err()
}

// waitGID returns the GID index of addr (IPv4) on device's port 1 once it
// is there.
func waitGID(ctx context.Context, tb *testenv.Testbed, host, device, addr string) (string, error) {
	a := strings.Split(addr, ".")
	if len(a) != 4 {
		return "", fmt.Errorf("%q is not an IPv4 address", addr)
	}
	var hex []string
	for _, p := range a {
		n, err := strconv.Atoi(p)
		if err != nil {
			return "", err
		}
		hex = append(hex, fmt.Sprintf("%02x", n))
	}
	want := "0000:0000:0000:0000:0000:ffff:" + hex[0] + hex[1] + ":" + hex[2] + hex[3]
	script := fmt.Sprintf(`i=0
while :; do
	for f in /sys/class/infiniband/%[1]s/ports/1/gids/*; do
		[ "$(cat $f 2>/dev/null)" = %[2]s ] && { echo ${f##*/}; exit 0; }
	done
	i=$((i+1)); [ $i -lt 100 ] || { echo "%[1]s has no GID for %[3]s" >&2; exit 1; }
	usleep 50000
done`, device, want, addr)
	out, err := tb.MustExec(ctx, host, script)
	if err != nil {
		return "", fmt.Errorf("%s: %w", host, err)
	}
	return strings.TrimSpace(out), nil
}

// WriteRDMAResults writes each result as rdma-pull-<variant>.json under
// dir and returns the paths.
func WriteRDMAResults(dir string, rs []RDMAResult) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	for _, r := range rs {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return nil, err
		}
		p := filepath.Join(dir, r.Scenario+"-"+r.Variant+".json")
		if err := os.WriteFile(p, append(b, '\n'), 0o644); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// WriteRDMAText prints one line per result.
func WriteRDMAText(w io.Writer, rs []RDMAResult) error {
	for _, r := range rs {
		verdict := "BROKE"
		if r.Survived {
			verdict = "survived"
		}
		line := fmt.Sprintf("%-12s %-9s on %-5s %-8s sends before %5d after %5d, longest stall %6.0f ms of %5.0f ms",
			r.Variant, r.Device, r.Netdev, verdict, r.SendsBefore, r.SendsAfter, r.StallMs, r.WindowMs)
		if r.AppOutput != "" {
			line += "; app: " + strings.SplitN(r.AppOutput, "\n", 2)[0]
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return nil
}
