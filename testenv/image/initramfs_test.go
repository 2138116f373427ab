package image

import (
	"reflect"
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
