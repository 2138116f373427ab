package daemon_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkControlPlane256 measures one failover of 256 VMs, the control
// plane's part of it: from the link message of the active PF losing
// carrier (and the bond's message that follows) to the plan executed
// (kernel and VM side faked), persisted in a real store and every
// announcement's frames built (not sent). 256 namespace VMs with an IPv4
// and an IPv6 address each sit on 2 PFs of 256 VFs; each iteration fails
// them over to the other PF, whose carrier came back (outside the timing)
// after the previous iteration. The target is 10 ms.
func BenchmarkControlPlane256(b *testing.B) {
	const n = 256
	h := running(b, setup{
		vfsPerPF: n, totalVFs: [2]int{n, n}, holdDown: 200 * time.Millisecond, quiet: true,
	})
	for i := 1; i <= n; i++ {
		h.attach(i, uint32(i%4094+1), true)
		h.vms.setAddrs(fmt.Sprintf("vm%d", i), fmt.Sprintf("2001:db8::%x", i))
	}
	h.sync()
	moves := func() float64 {
		b.Helper()
		mfs, err := h.metrics.Gather().Gather()
		if err != nil {
			b.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "vflag_vm_moves_total" {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		return 0
	}
	before := moves()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		holder := h.bonds.get("bond0")
		if p, _ := h.kernel.PF(context.Background(), other(holder)); !p.Carrier {
			h.restore(other(holder), 10*time.Millisecond)
			h.wait(300 * time.Millisecond) // past the hold-down
		}
		b.StartTimer()
		h.cut(holder, 100*time.Millisecond)
		h.sync()
	}
	b.StopTimer()
	if got, want := moves()-before, float64(n*b.N); got != want {
		b.Fatalf("%g VMs moved in %d failovers, want %g", got, b.N, want)
	}
	l, err := h.d.ListVMs(context.Background(), "")
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range l {
		if v.GetPf() != h.bonds.get("bond0") {
			b.Fatalf("%s/%s is on %s, the bond's active port is %s", v.GetVm(), v.GetIface(), v.GetPf(), h.bonds.get("bond0"))
		}
	}
}

// BenchmarkAttach measures one attach and detach of a VM, with a real
// store (each persists a change).
func BenchmarkAttach(b *testing.B) {
	h := started(b, setup{vfsPerPF: 8, quiet: true})
	ctx := context.Background()
	req := attachReq(1, 100, false)
	for range b.N {
		if _, err := h.d.Attach(ctx, req); err != nil {
			b.Fatal(err)
		}
		if _, err := h.d.Detach(ctx, "vm1", ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFootprint512 reports the memory the daemon's state takes with
// 512 VFs (2 PFs x 256) and 256 attached VMs, a stand-in for vflagd's RSS
// target of 30 MB: heap-MB is the live heap after a GC, sys-MB everything
// the Go runtime has mapped. Idle, the daemon runs no timers and no
// goroutine wakes up: wakeups/s counts the context switches of the whole
// process (this benchmark's included) while nothing happens for a second.
func BenchmarkFootprint512(b *testing.B) {
	const n = 256
	for range b.N {
		h := running(b, setup{vfsPerPF: n, totalVFs: [2]int{n, n}, quiet: true})
		for i := 1; i <= n; i++ {
			h.attach(i, uint32(i%4094+1), true)
		}
		h.sync()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MB")
		b.ReportMetric(float64(ms.Sys)/(1<<20), "sys-MB")
		before := ctxSwitches(b)
		time.Sleep(time.Second)
		b.ReportMetric(float64(ctxSwitches(b)-before), "wakeups/s")
	}
}

// ctxSwitches sums the voluntary and involuntary context switches of every
// thread of this process.
func ctxSwitches(b *testing.B) int {
	b.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil {
		b.Fatal(err)
	}
	total := 0
	for _, f := range tasks {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // a thread that exited
		}
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
				n, _ := strconv.Atoi(strings.TrimSpace(v))
				total += n
			}
		}
	}
	return total
}
