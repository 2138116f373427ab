package image

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseLdd(t *testing.T) {
	out := []byte(`	linux-vdso.so.1 (0x00007f95794ab000)
	libbpf.so.1 => /lib/x86_64-linux-gnu/libbpf.so.1 (0x00007f957934b000)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f9579122000)
	/lib64/ld-linux-x86-64.so.2 (0x00007f95794ad000)
`)
	want := []string{"/lib/x86_64-linux-gnu/libbpf.so.1", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}
	if got := parseLdd(out); !reflect.DeepEqual(got, want) {
		t.Errorf("parseLdd = %q, want %q", got, want)
	}
}

func TestStage1CarriesFiles(t *testing.T) {
	s := stage1(RootDisk{Device: "/dev/vda", FSType: "ext4"}, []string{AgentPath, "/usr/lib/vflag/backends/vflag-backend-generic"})
	for _, want := range []string{
		"#!/bin/busybox sh\n",
		"mount -t ext4 /dev/vda /newroot || fail",
		"carry /usr/bin/vflag-guest\ncarry /usr/lib/vflag/backends/vflag-backend-generic\n",
		`mkdir -p "/newroot${1%/*}"`,
		"exec switch_root /newroot /usr/lib/vflag/busybox init\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("stage 1 lacks %q:\n%s", want, s)
		}
	}
}

func TestStartCommands(t *testing.T) {
	if got := startCommands(nil); got != "" {
		t.Errorf("no start commands render %q, want nothing (rcS unchanged)", got)
	}
	got := startCommands([]string{"libvirtd -d", `echo "x"`})
	for _, want := range []string{
		"libvirtd -d || echo \"vflag: start command failed: libvirtd -d\" >&2\n",
		"echo \"x\" || echo \"vflag: start command failed: echo 'x'\" >&2\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("start commands lack %q:\n%s", want, got)
		}
	}
}

func TestRootfsKey(t *testing.T) {
	a, b := DefaultRootfs(), DefaultRootfs()
	if a.key() != b.key() {
		t.Error("the same rootfs spec has two cache keys")
	}
	b.BackportsPackages = append(b.BackportsPackages, "ovmf")
	if a.key() == b.key() {
		t.Error("adding a package keeps the cache key")
	}
}
