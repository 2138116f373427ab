package guestagent

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"golang.org/x/sys/unix"
)

// Module is one entry of a module list file.
type Module struct {
	// Path is the absolute path of the module file (.ko, .ko.xz, .ko.zst, .ko.gz).
	Path string
	// Params are the module parameters, space separated, as insmod takes them.
	Params string
	// Line is the entry's line number in the list file.
	Line int
}

// initFlags returns the finit_module(2) flags for m: compressed modules are
// decompressed by the kernel (CONFIG_MODULE_DECOMPRESS, kernel/module/decompress.c).
func (m Module) initFlags() int {
	if strings.HasSuffix(m.Path, ".ko") {
		return 0
	}
	return unix.MODULE_INIT_COMPRESSED_FILE
}

// moduleSuffixes are the file name endings a module list accepts.
func moduleSuffixes() []string { return []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} }

// ParseModuleList reads a module list: one module file per line, in
// dependency order, optionally followed by whitespace and the module's
// parameters, for example
//
//	/lib/modules/6.12.107+deb12-amd64/kernel/drivers/net/bonding/bonding.ko.xz max_bonds=0
//
// Blank lines and lines starting with # are ignored. name (the list's file
// name) and the line number appear in errors.
func ParseModuleList(r io.Reader, name string) ([]Module, error) {
	var mods []Module
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		path, params := line, ""
		if i := strings.IndexFunc(line, unicode.IsSpace); i >= 0 {
			path, params = line[:i], strings.TrimSpace(line[i:])
		}
		m := Module{Path: path, Params: params, Line: n}
		if !filepath.IsAbs(m.Path) {
			return nil, fmt.Errorf("%s:%d: module path %q is not absolute", name, n, m.Path)
		}
		if !hasModuleSuffix(m.Path) {
			return nil, fmt.Errorf("%s:%d: %q is not a kernel module file (%s)",
				name, n, m.Path, strings.Join(moduleSuffixes(), ", "))
		}
		mods = append(mods, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read module list %s: %w", name, err)
	}
	return mods, nil
}

func hasModuleSuffix(path string) bool {
	for _, s := range moduleSuffixes() {
		if strings.HasSuffix(path, s) {
			return true
		}
	}
	return false
}

// LoadModules loads, in order, the kernel modules listed in the file at
// listPath (see ParseModuleList) with finit_module(2). A module that is
// already loaded (EEXIST) is fine. The error names the module file at fault.
func LoadModules(listPath string, log *slog.Logger) error {
	f, err := os.Open(listPath)
	if err != nil {
		return fmt.Errorf("open module list: %w", err)
	}
	defer f.Close()
	mods, err := ParseModuleList(f, listPath)
	if err != nil {
		return err
	}
	return loadModules(mods, unix.FinitModule, log)
}

// finitFunc is the signature of unix.FinitModule.
type finitFunc func(fd int, params string, flags int) error

// loadModules loads mods in order through finit.
func loadModules(mods []Module, finit finitFunc, log *slog.Logger) error {
	for _, m := range mods {
		if err := loadModule(m, finit); err != nil {
			if errors.Is(err, unix.EEXIST) {
				log.Debug("module already loaded", "module", m.Path)
				continue
			}
			return err
		}
		log.Info("loaded module", "module", filepath.Base(m.Path), "params", m.Params)
	}
	return nil
}

func loadModule(m Module, finit finitFunc) error {
	f, err := os.Open(m.Path)
	if err != nil {
		return fmt.Errorf("load module (list line %d): %w", m.Line, err)
	}
	defer f.Close()
	if err := finit(int(f.Fd()), m.Params, m.initFlags()); err != nil {
		return fmt.Errorf("load module %s (list line %d): %w", m.Path, m.Line, err)
	}
	return nil
}
