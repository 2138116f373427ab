package doctor

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// readLine returns the trimmed contents of the one-line file p (a host
// path, read below Root).
func (d *Doctor) readLine(p string) (string, error) {
	b, err := os.ReadFile(d.path(p))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// readInt reads a sysfs number.
func (d *Doctor) readInt(p string) (int, error) {
	s, err := d.readLine(p)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(s)
}

// exists reports whether the host path p exists.
func (d *Doctor) exists(p string) bool {
	_, err := os.Stat(d.path(p))
	return err == nil
}

// entries lists the names in the host directory p (none when it is
// missing).
func (d *Doctor) entries(p string) []string {
	es, err := os.ReadDir(d.path(p))
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(es))
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// linkBase is the last element of the symlink at host path p: the PCI
// address of a device link, the driver of a driver link.
func (d *Doctor) linkBase(p string) (string, error) {
	t, err := os.Readlink(d.path(p))
	if err != nil {
		return "", err
	}
	return path.Base(t), nil
}

// release is the running kernel's release (uname -r).
func (d *Doctor) release() (string, error) {
	return d.readLine("/proc/sys/kernel/osrelease")
}

// kernelVersion is a kernel's major and minor version.
type kernelVersion struct{ major, minor int }

func (v kernelVersion) less(o kernelVersion) bool {
	return v.major < o.major || v.major == o.major && v.minor < o.minor
}

func (v kernelVersion) String() string { return strconv.Itoa(v.major) + "." + strconv.Itoa(v.minor) }

var releaseRE = regexp.MustCompile(`^(\d+)\.(\d+)`)

// parseRelease reads the version at the start of a release
// ("6.12.107+deb12-amd64" is 6.12).
func parseRelease(rel string) (kernelVersion, bool) {
	m := releaseRE.FindStringSubmatch(rel)
	if m == nil {
		return kernelVersion{}, false
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return kernelVersion{major, minor}, true
}

// moduleState is how a kernel module is there.
type moduleState int

const (
	// moduleMissing: neither loaded nor in /lib/modules of the running kernel.
	moduleMissing moduleState = iota
	// moduleAvailable: in modules.dep, not loaded.
	moduleAvailable
	// moduleLoaded: loaded or built in.
	moduleLoaded
)

// modName folds a module's name as the kernel does ("vfio-pci" is vfio_pci).
func modName(name string) string { return strings.ReplaceAll(name, "-", "_") }

// module says whether the module name is loaded or built in (/sys/module,
// modules.builtin), can be loaded (modules.dep of the running kernel) or
// is missing; where is what was looked at, for details.
func (d *Doctor) module(name string) (state moduleState, where string) {
	name = modName(name)
	if d.exists("/sys/module/" + name) {
		if d.exists("/sys/module/" + name + "/initstate") {
			return moduleLoaded, "loaded"
		}
		return moduleLoaded, "built in"
	}
	rel, err := d.release()
	if err != nil {
		return moduleMissing, "not loaded, and the kernel release is unknown (/proc/sys/kernel/osrelease)"
	}
	dir := "/lib/modules/" + rel
	if !d.exists(dir) {
		return moduleMissing, "not loaded, and there is no " + dir
	}
	if d.listsModule(dir+"/modules.builtin", name) {
		return moduleLoaded, "built in"
	}
	if d.listsModule(dir+"/modules.dep", name) {
		return moduleAvailable, "not loaded (in " + dir + ")"
	}
	return moduleMissing, "not loaded, and not in " + dir + "/modules.dep"
}

// listsModule reports whether the modules.dep or modules.builtin file p
// has a line for the module name (folded).
func (d *Doctor) listsModule(p, name string) bool {
	f, err := os.Open(d.path(p))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		file, _, _ := strings.Cut(sc.Text(), ":")
		base := path.Base(strings.TrimSpace(file))
		if i := strings.Index(base, ".ko"); i > 0 && modName(base[:i]) == name {
			return true
		}
	}
	return false
}

// missing reports whether err says a file is not there.
func missing(err error) bool { return errors.Is(err, fs.ErrNotExist) }
