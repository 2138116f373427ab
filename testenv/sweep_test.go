package testenv

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A helper process that starts a testbed and is killed while doing so.
const crashEnv = "VFLAG_TEST_CRASH_START"

func TestMain(m *testing.M) {
	if name := os.Getenv(crashEnv); name != "" {
		// Start and never return: the parent SIGKILLs this process once QEMU
		// runs.
		tb, err := New(Config{Name: name, RunDir: os.Getenv("VFLAG_TEST_RUNDIR")})
		if err == nil {
			err = tb.AddHost(HostSpec{Name: "kvm1", VFs: 1})
		}
		if err == nil {
			err = tb.Start(context.Background())
		}
		if err != nil {
			_, _ = os.Stderr.WriteString(err.Error())
			os.Exit(2)
		}
		select {}
	}
	os.Exit(m.Run())
}

// TestInterruptedStartLeavesNothing kills a process in the middle of
// starting a testbed and checks that its QEMU dies with it and that the
// next start (Sweep) removes its namespaces and run directory.
func TestInterruptedStartLeavesNothing(t *testing.T) {
	if err := checkTools(); err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	bins, err := testBinDir()
	if err != nil {
		t.Fatal(err)
	}
	runDir := t.TempDir()
	name := "crash" + strings.ReplaceAll(time.Now().Format("0405.00"), ".", "")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+name, "VFLAG_TEST_RUNDIR="+runDir, "VFLAG_BIN_DIR="+bins)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	f := fabric{tb: name}
	t.Cleanup(func() { _ = f.destroy() })

	// Wait until QEMU runs, then kill the starter without warning.
	stateDir := filepath.Join(runDir, name)
	var qemuPID int
	deadline := time.Now().Add(2 * time.Minute)
	for qemuPID == 0 {
		select {
		case <-exited:
			t.Fatalf("the starting process exited before QEMU ran: %s", stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("QEMU never started; helper said: %s", stderr.String())
		}
		if st, err := loadState(stateDir); err == nil && len(st.Hosts) == 1 && st.Hosts[0].PID != 0 {
			qemuPID = st.Hosts[0].PID
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited

	hostDir := filepath.Join(stateDir, "kvm1")
	deadline = time.Now().Add(10 * time.Second)
	for isOurQEMU(qemuPID, hostDir) {
		if time.Now().After(deadline) {
			t.Fatalf("QEMU pid %d outlived the process that started it", qemuPID)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(f.fabricPath()); err != nil {
		t.Fatalf("expected the killed run's namespace %s to be left over: %v", f.fabricPath(), err)
	}

	if err := Sweep(runDir, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{f.fabricPath(), f.clientPath(), stateDir} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived Sweep", p)
		}
	}
}

// TestStartRefusesWithoutPrerequisites: a missing QEMU is named, with how to
// get it, and nothing is created.
func TestStartRefusesWithoutPrerequisites(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	tb, err := New(Config{Name: "noqemu", RunDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.AddHost(HostSpec{Name: "kvm1"}); err != nil {
		t.Fatal(err)
	}
	err = tb.Start(context.Background())
	if !errors.Is(err, ErrMissingTool) {
		t.Fatalf("Start without tools = %v, want ErrMissingTool", err)
	}
	if os.Geteuid() == 0 && !strings.Contains(err.Error(), "qemu-system-x86_64") {
		t.Errorf("error does not name QEMU: %v", err)
	}
	if _, err := os.Stat(tb.fabric.fabricPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed start created %s", tb.fabric.fabricPath())
	}
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		host HostSpec
		want string
	}{
		{Config{Name: "Bad-Name"}, HostSpec{Name: "kvm1"}, `testbed name "Bad-Name"`},
		{Config{Accel: "hvf"}, HostSpec{Name: "kvm1"}, `accelerator "hvf"`},
		{Config{}, HostSpec{Name: "kvm;rm"}, `host name "kvm;rm"`},
		{Config{}, HostSpec{Name: "kvm1", VFs: 8}, "8 VFs per port: igb has 0..7"},
	} {
		tb, err := New(tc.cfg)
		if err == nil {
			err = tb.AddHost(tc.host)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v %+v: got %v, want error containing %q", tc.cfg, tc.host, err, tc.want)
		}
	}
	tb, _ := New(Config{})
	_ = tb.AddHost(HostSpec{Name: "kvm1"})
	if err := tb.AddHost(HostSpec{Name: "kvm1"}); err == nil || !strings.Contains(err.Error(), "already has it") {
		t.Errorf("duplicate host: %v", err)
	}
	if _, _, err := tb.port("kvm1-p2"); !errors.Is(err, ErrUnknownPort) || !strings.Contains(err.Error(), "kvm1-p0, kvm1-p1") {
		t.Errorf("unknown port: %v", err)
	}
}

func TestQEMUArgs(t *testing.T) {
	h := &host{spec: HostSpec{Name: "kvm1", MemoryMB: 512}, index: 3, dir: "/run/x/kvm1"}
	args := strings.Join(h.qemuArgs("tcg", bootImages{vmlinuz: "/k", initrd: "/i"}), " ")
	for _, want := range []string{
		"-accel tcg -cpu max", "-m 512",
		"-device igb,id=p0,bus=rp0,netdev=n0,mac=52:54:00:0f:03:00",
		"-netdev tap,id=n1,fd=4",
		"-device virtserialport,bus=vser.0,chardev=agent,name=vflag.agent",
		"-qmp unix:/run/x/kvm1/qmp.sock,server=on,wait=off",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("qemu args lack %q:\n%s", want, args)
		}
	}
	if got := strings.Join(h.qemuArgs("kvm", bootImages{vmlinuz: "/k", initrd: "/i"}), " "); !strings.Contains(got, "-accel kvm -cpu host") {
		t.Errorf("kvm args: %s", got)
	}
	if strings.Contains(args, "iommu") || strings.Contains(args, "-drive") {
		t.Errorf("initramfs flavour has an IOMMU or a disk:\n%s", args)
	}

	h.spec.Flavour = FlavourLibvirt
	img := bootImages{vmlinuz: "/k", initrd: "/i", rootfs: "/cache/rootfs.ext4"}
	args = strings.Join(h.qemuArgs("tcg", img), " ")
	for _, want := range []string{
		"-machine q35 -accel tcg",
		"-device intel-iommu,intremap=on,caching-mode=on",
		"-drive file=/cache/rootfs.ext4,format=raw,if=none,id=root,snapshot=on -device virtio-blk-pci,drive=root",
		"vflag.hostname=kvm1 intel_iommu=on iommu=pt",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("libvirt flavour qemu args lack %q:\n%s", want, args)
		}
	}
	if got := strings.Join(h.qemuArgs("kvm", img), " "); !strings.Contains(got, "-machine q35,kernel-irqchip=split -accel kvm") {
		t.Errorf("libvirt flavour kvm args lack the split irqchip: %s", got)
	}
}
