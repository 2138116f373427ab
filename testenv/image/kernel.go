package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// DefaultKernelPackage is the Debian package the guest kernel comes from. It
// is pinned so that every run boots the same kernel; when Debian's archive no
// longer serves it, FetchKernel falls back to the newest 6.12 amd64 kernel it
// does serve and says so.
const DefaultKernelPackage = "linux-image-6.12.107+deb12-amd64-unsigned"

// kernelPattern matches the packages FetchKernel may fall back to.
var kernelPattern = regexp.MustCompile(`^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$`)

// ErrNoKernel is returned when no usable guest kernel package can be found.
var ErrNoKernel = errors.New("no guest kernel package")

// Kernel is an extracted guest kernel.
type Kernel struct {
	// Package is the Debian package it came from.
	Package string
	// Version is the kernel release, e.g. "6.12.107+deb12-amd64".
	Version string
	// Vmlinuz is the path of the bootable kernel image.
	Vmlinuz string
	// Root is the extraction directory; modules are under Root/lib/modules/Version.
	Root string
}

// ModulesDir returns the directory holding the kernel's modules.
func (k Kernel) ModulesDir() string {
	return filepath.Join(k.Root, "lib", "modules", k.Version)
}

// ModuleDeps parses the kernel's modules.dep.
func (k Kernel) ModuleDeps() (ModuleDeps, error) {
	f, err := os.Open(filepath.Join(k.ModulesDir(), "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", k.Version, err)
	}
	defer f.Close()
	return ParseModulesDep(f)
}

// FetchKernel makes sure the kernel package pkg ("" for
// DefaultKernelPackage) is downloaded and extracted under cacheDir and its
// module index built. It uses apt-get download and dpkg-deb, so the host
// needs Debian's apt sources (testenv/setup-host.sh) but nothing is installed.
func FetchKernel(ctx context.Context, cacheDir, pkg string, log *slog.Logger) (Kernel, error) {
	fallback := pkg == ""
	if fallback {
		pkg = DefaultKernelPackage
	}
	root := filepath.Join(cacheDir, "kernel", pkg)
	if k, err := findExtracted(pkg, root); err == nil {
		return k, nil
	}
	debDir := filepath.Join(cacheDir, "deb")
	if err := os.MkdirAll(debDir, 0o755); err != nil {
		return Kernel{}, fmt.Errorf("create kernel cache %s: %w", debDir, err)
	}
	deb, err := findDeb(debDir, pkg)
	if err != nil {
		chosen, cerr := choosePackage(ctx, pkg, fallback)
		if cerr != nil {
			return Kernel{}, cerr
		}
		if chosen != pkg {
			log.Warn("pinned guest kernel is not served; using the newest 6.12 kernel instead",
				"pinned", pkg, "using", chosen)
			return FetchKernel(ctx, cacheDir, chosen, log)
		}
		log.Info("downloading guest kernel package (about 100 MB)", "package", pkg, "dir", debDir)
		cmd := exec.CommandContext(ctx, "apt-get", "download", "-q", pkg)
		cmd.Dir = debDir
		if out, err := cmd.CombinedOutput(); err != nil {
			return Kernel{}, fmt.Errorf("apt-get download %s: %w: %s", pkg, err, bytes.TrimSpace(out))
		}
		if deb, err = findDeb(debDir, pkg); err != nil {
			return Kernel{}, err
		}
	}
	log.Info("extracting guest kernel", "deb", filepath.Base(deb), "dir", root)
	tmp := root + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return Kernel{}, fmt.Errorf("clear %s: %w", tmp, err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return Kernel{}, fmt.Errorf("create %s: %w", tmp, err)
	}
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, tmp).CombinedOutput(); err != nil {
		return Kernel{}, fmt.Errorf("dpkg-deb -x %s: %w: %s", deb, err, bytes.TrimSpace(out))
	}
	k, err := findExtracted(pkg, tmp)
	if err != nil && !errors.Is(err, errNoIndex) {
		return Kernel{}, err
	}
	log.Info("indexing guest kernel modules", "version", k.Version)
	if out, err := exec.CommandContext(ctx, "depmod", "-b", tmp, k.Version).CombinedOutput(); err != nil {
		return Kernel{}, fmt.Errorf("depmod -b %s %s (install kmod): %w: %s", tmp, k.Version, err, bytes.TrimSpace(out))
	}
	if err := os.RemoveAll(root); err != nil {
		return Kernel{}, fmt.Errorf("clear %s: %w", root, err)
	}
	if err := os.Rename(tmp, root); err != nil {
		return Kernel{}, fmt.Errorf("publish kernel %s: %w", root, err)
	}
	return findExtracted(pkg, root)
}

var errNoIndex = errors.New("modules.dep missing")

// findExtracted inspects an extraction directory.
func findExtracted(pkg, root string) (Kernel, error) {
	vmlinuz, err := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if err != nil || len(vmlinuz) != 1 {
		return Kernel{}, fmt.Errorf("%w: no single boot/vmlinuz-* in %s", ErrNoKernel, root)
	}
	version := strings.TrimPrefix(filepath.Base(vmlinuz[0]), "vmlinuz-")
	k := Kernel{Package: pkg, Version: version, Vmlinuz: vmlinuz[0], Root: root}
	if _, err := os.Stat(filepath.Join(k.ModulesDir(), "modules.dep")); err != nil {
		return k, errNoIndex
	}
	return k, nil
}

func findDeb(dir, pkg string) (string, error) {
	m, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	if len(m) == 0 {
		return "", fmt.Errorf("%w: %s not downloaded in %s", ErrNoKernel, pkg, dir)
	}
	sort.Strings(m)
	return m[len(m)-1], nil
}

// choosePackage returns pkg when apt knows it, else (with fallback) the
// newest package that matches kernelPattern.
func choosePackage(ctx context.Context, pkg string, fallback bool) (string, error) {
	if exec.CommandContext(ctx, "apt-cache", "show", "--no-all-versions", pkg).Run() == nil {
		return pkg, nil
	}
	if !fallback {
		return "", fmt.Errorf("%w: apt knows no package %s (see `apt-cache search linux-image-6.12`)", ErrNoKernel, pkg)
	}
	out, err := exec.CommandContext(ctx, "apt-cache", "search", "--names-only", `^linux-image-6\.12\.`).Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache search for the guest kernel (run testenv/setup-host.sh first): %w", err)
	}
	var cands []string
	for _, line := range strings.Split(string(out), "\n") {
		if name, _, _ := strings.Cut(line, " "); kernelPattern.MatchString(name) {
			cands = append(cands, name)
		}
	}
	if len(cands) == 0 {
		return "", fmt.Errorf("%w: apt knows neither %s nor any linux-image-6.12.*+deb12-amd64-unsigned; run testenv/setup-host.sh (it runs apt-get update)", ErrNoKernel, pkg)
	}
	sort.Slice(cands, func(i, j int) bool { return kernelPatch(cands[i]) < kernelPatch(cands[j]) })
	return cands[len(cands)-1], nil
}

func kernelPatch(name string) int {
	var major, minor, patch int
	if _, err := fmt.Sscanf(strings.TrimPrefix(name, "linux-image-"), "%d.%d.%d", &major, &minor, &patch); err != nil {
		return -1
	}
	return patch
}
