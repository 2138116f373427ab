package firmware_test

import (
	"testing"

	"github.com/vflag/vflag/firmware"
)

func TestForDriver(t *testing.T) {
	for driver, want := range map[string]string{
		"ice": "ice", "mlx5_core": "mlx5", "igb": "generic", "ixgbe": "generic", "i40e": "generic", "": "generic",
	} {
		if got := firmware.ForDriver(driver); got != want {
			t.Errorf("ForDriver(%q) = %q, want %q", driver, got, want)
		}
	}
}

func TestKernelAtLeast(t *testing.T) {
	for _, tc := range []struct {
		release string
		want    bool
	}{
		{"6.6.0", true},
		{"6.12.48+deb13-amd64", true},
		{"6.8.0-45-generic", true},
		{"7.0.1", true},
		{"6.5.13", false},
		{"6.1.0-26-amd64", false},
		{"5.19.0", false},
		{"6.6-rc3", true},
	} {
		got, err := firmware.KernelAtLeast(tc.release, 6, 6)
		if err != nil || got != tc.want {
			t.Errorf("KernelAtLeast(%q, 6, 6) = %v, %v; want %v", tc.release, got, err, tc.want)
		}
	}
	if _, err := firmware.KernelAtLeast("linux", 6, 6); err == nil {
		t.Error("KernelAtLeast(linux): no error")
	}
}
