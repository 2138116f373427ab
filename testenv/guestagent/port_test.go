package guestagent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeSysfs creates <root>/class/virtio-ports/<entry>/name for each entry.
func fakeSysfs(t *testing.T, root string, ports map[string]string) {
	t.Helper()
	for entry, name := range ports {
		dir := filepath.Join(root, "class", "virtio-ports", entry)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "name"), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFindPort(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		ports   map[string]string // entry -> contents of its name file
		want    string
		wantErr error
	}{
		{
			name:  "found among others",
			ports: map[string]string{"vport1p0": "", "vport1p1": "vflag.agent\n", "vport2p1": "org.qemu.guest_agent.0\n"},
			want:  "/dev/vport1p1",
		},
		{name: "name is a prefix only", ports: map[string]string{"vport1p1": "vflag.agent.old\n"}, wantErr: ErrPortNotFound},
		{name: "no ports", ports: map[string]string{}, wantErr: ErrPortNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sysfs := t.TempDir()
			fakeSysfs(t, sysfs, tt.ports)
			got, err := FindPort(sysfs, DefaultPortName)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("FindPort error %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), DefaultPortName) {
				t.Errorf("error %q does not name the port", err)
			}
			if got != tt.want {
				t.Errorf("FindPort = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFindPortWithoutVirtioPortsClass(t *testing.T) {
	t.Parallel()
	if _, err := FindPort(t.TempDir(), DefaultPortName); !errors.Is(err, ErrPortNotFound) {
		t.Fatalf("FindPort error %v, want ErrPortNotFound", err)
	}
}

// TestPortServer serves on a regular file standing in for the port device:
// the port appears only after the server started, the request in the file
// is answered, and the server keeps going until its context ends.
func TestPortServer(t *testing.T) {
	t.Parallel()
	sysfs, dev := t.TempDir(), t.TempDir()
	p := &portServer{
		sysfs: sysfs, name: DefaultPortName, devDir: dev, log: testLogger(t),
		idle: time.Millisecond, minBackoff: time.Millisecond, maxBackoff: 10 * time.Millisecond,
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.run(ctx) }()

	portFile := filepath.Join(dev, "vport3p1")
	if err := os.WriteFile(portFile, []byte("stale\n"+`{"id":"p1","op":"ping"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fakeSysfs(t, sysfs, map[string]string{"vport3p1": DefaultPortName + "\n"})

	guard := hangGuard(t)
	for {
		b, err := os.ReadFile(portFile)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), `{"id":"p1","exit":0}`) {
			break
		}
		if guard.Err() != nil {
			t.Fatalf("no answer in the port file: %q", b)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("run returned %v, want context.Canceled", err)
	}
}
