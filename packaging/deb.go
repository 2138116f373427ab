package packaging

import (
	"bytes"
	"context"
	"crypto/md5" //nolint:gosec // DEBIAN/md5sums is MD5 by definition (dpkg --verify reads it)
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Name is the Debian package's name.
const Name = "vflag"

// DefaultMaintainer fills the control file's Maintainer field.
const DefaultMaintainer = "vflag developers <vflag@users.noreply.github.com>"

// shipped holds the files installed as they are (tree/, laid out as
// installed) and the maintainer scripts (DEBIAN/).
//
//go:embed tree DEBIAN
var shipped embed.FS

// Binary is one program the package installs from the build directory.
type Binary struct {
	// Name is the file in the build directory (bin/ of make build).
	Name string
	// Path is where the package installs it.
	Path string
	// SHA256 also installs <Path>.sha256 in sha256sum's format: vflagd
	// runs a NIC backend only when its SHA-256 matches that file.
	SHA256 bool
}

// Binaries are the programs in the package. vflagd looks for the NIC
// backends in plugin.Dir (/usr/lib/vflag/backends); libvirt runs every
// executable in /etc/libvirt/hooks/qemu.d/.
func Binaries() []Binary {
	return []Binary{
		{Name: "vflagd", Path: "/usr/sbin/vflagd"},
		{Name: "vflag", Path: "/usr/bin/vflag"},
		{Name: "vflag-hook", Path: "/etc/libvirt/hooks/qemu.d/vflag"},
		{Name: "vflag-backend-generic", Path: "/usr/lib/vflag/backends/vflag-backend-generic", SHA256: true},
		{Name: "vflag-backend-ice", Path: "/usr/lib/vflag/backends/vflag-backend-ice", SHA256: true},
		{Name: "vflag-backend-mlx5", Path: "/usr/lib/vflag/backends/vflag-backend-mlx5", SHA256: true},
	}
}

// Conffiles are the files dpkg treats as configuration: an operator's
// edits survive upgrades, and removing the package keeps them (purging
// does not). The hook binary in /etc/libvirt/hooks/qemu.d is program, not
// configuration: upgrades replace it and removal deletes it, so that
// libvirt stops running a hook whose vflagd is gone.
func Conffiles() []string {
	return []string{"/etc/vflag/hook.yaml", "/etc/vflag/vflag.yaml.example"}
}

// Options says what Build packages and where it writes the .deb.
type Options struct {
	// BinDir holds the binaries (bin/ as `make build` writes it).
	BinDir string
	// OutDir is where the .deb is written.
	OutDir string
	// Version is the Debian version (see Version and GitVersion).
	Version string
	// Maintainer is the control file's Maintainer (default
	// DefaultMaintainer).
	Maintainer string
	// Compression is dpkg-deb's compressor: xz (the default: smallest,
	// about a minute for vflag's 130 MB on two cores), gzip, zstd or
	// none.
	Compression string
}

// Build stages the package's tree and runs `dpkg-deb --root-owner-group
// --build` on it. It returns the .deb's path:
// OutDir/vflag_<version>_<arch>.deb, the architecture read from the
// binaries.
func Build(ctx context.Context, o Options) (string, error) {
	if !debianVersion.MatchString(o.Version) {
		return "", fmt.Errorf("package version %q is not a Debian version (deb-version(7))", o.Version)
	}
	if o.Maintainer == "" {
		o.Maintainer = DefaultMaintainer
	}
	if o.Compression == "" {
		o.Compression = "xz"
	}
	if !slices.Contains([]string{"xz", "gzip", "zstd", "none"}, o.Compression) {
		return "", fmt.Errorf("package compression %q: want xz, gzip, zstd or none", o.Compression)
	}
	var bins []string
	for _, b := range Binaries() {
		bins = append(bins, filepath.Join(o.BinDir, b.Name))
	}
	deps, err := Inspect(bins)
	if err != nil {
		return "", err
	}
	stage, err := os.MkdirTemp("", "vflag-deb-")
	if err != nil {
		return "", fmt.Errorf("stage the package: %w", err)
	}
	defer func() { _ = os.RemoveAll(stage) }()
	root := filepath.Join(stage, Name)
	if err := stageTree(root, o.BinDir); err != nil {
		return "", err
	}
	size, err := installedSize(root)
	if err != nil {
		return "", err
	}
	control := Control{
		Version: o.Version, Arch: deps.Arch, Maintainer: o.Maintainer,
		InstalledSize: size, Depends: deps.Depends,
	}
	if err := writeFile(filepath.Join(root, "DEBIAN", "control"), []byte(control.String()), 0o644); err != nil {
		return "", err
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return "", fmt.Errorf("package output directory: %w", err)
	}
	deb := filepath.Join(o.OutDir, fmt.Sprintf("%s_%s_%s.deb", Name, o.Version, deps.Arch))
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--root-owner-group", "-Z"+o.Compression, "--build", root, deb)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb --build %s: %w: %s", deb, err, bytes.TrimSpace(out))
	}
	return deb, nil
}

// stageTree lays out the package under root: the shipped files, the
// binaries from binDir, and DEBIAN/ with the maintainer scripts,
// conffiles and md5sums (control is written last, with the size).
func stageTree(root, binDir string) error {
	err := fs.WalkDir(shipped, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := shipped.ReadFile(name)
		if err != nil {
			return err
		}
		dst, mode := strings.TrimPrefix(name, "tree/"), fs.FileMode(0o644)
		if strings.HasPrefix(name, "DEBIAN/") {
			mode = 0o755
		}
		return writeFile(filepath.Join(root, dst), data, mode)
	})
	if err != nil {
		return fmt.Errorf("stage the package's files: %w", err)
	}
	for _, b := range Binaries() {
		src := filepath.Join(binDir, b.Name)
		data, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("binary %s (run make build): %w", b.Name, err)
		}
		if err := writeFile(filepath.Join(root, b.Path), data, 0o755); err != nil {
			return err
		}
		if b.SHA256 {
			sum := sha256.Sum256(data)
			line := hex.EncodeToString(sum[:]) + "  " + path.Base(b.Path) + "\n"
			if err := writeFile(filepath.Join(root, b.Path+".sha256"), []byte(line), 0o644); err != nil {
				return err
			}
		}
	}
	conf := strings.Join(Conffiles(), "\n") + "\n"
	if err := writeFile(filepath.Join(root, "DEBIAN", "conffiles"), []byte(conf), 0o644); err != nil {
		return err
	}
	sums, err := md5sums(root)
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(root, "DEBIAN", "md5sums"), sums, 0o644); err != nil {
		return err
	}
	// Directories as installed, whatever the umask.
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return os.Chmod(p, 0o755)
	})
}

// md5sums renders DEBIAN/md5sums (md5sum's format, paths without the
// leading slash) for every file but the conffiles, whose sums dpkg keeps
// itself.
func md5sums(root string) ([]byte, error) {
	var b bytes.Buffer
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if rel == "DEBIAN" {
				return filepath.SkipDir
			}
			return nil
		}
		if slices.Contains(Conffiles(), "/"+rel) {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := md5.New() //nolint:gosec // see the import
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		fmt.Fprintf(&b, "%x  %s\n", h.Sum(nil), rel)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("md5sums of the package's files: %w", err)
	}
	return b.Bytes(), nil
}

// installedSize is the control file's Installed-Size: KiB, each file
// rounded up, and one per directory, as dpkg-gencontrol counts.
func installedSize(root string) (int64, error) {
	var kib int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "DEBIAN" {
			return filepath.SkipDir
		}
		if d.IsDir() {
			kib++
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		kib += (info.Size() + 1023) / 1024
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("size of the package's files: %w", err)
	}
	return kib, nil
}

// writeFile writes data to name with mode, creating its directories.
func writeFile(name string, data []byte, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return fmt.Errorf("stage %s: %w", name, err)
	}
	if err := os.WriteFile(name, data, mode); err != nil {
		return fmt.Errorf("stage %s: %w", name, err)
	}
	// WriteFile's mode is filtered by the umask; the package's is not.
	if err := os.Chmod(name, mode); err != nil {
		return fmt.Errorf("stage %s: %w", name, err)
	}
	return nil
}
