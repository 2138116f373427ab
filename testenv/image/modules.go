package image

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strings"
)

// ModuleDeps is a parsed modules.dep: for each module name (with '-' folded
// to '_'), its file relative to the modules directory and the files it
// depends on, in the order depmod wrote them.
type ModuleDeps map[string]ModuleEntry

// ModuleEntry is one line of modules.dep.
type ModuleEntry struct {
	// File is the module file relative to /lib/modules/VERSION.
	File string
	// Deps are the files this module needs loaded first (depmod lists
	// direct and indirect dependencies).
	Deps []string
}

// ModuleName returns the kernel's name for a module file:
// "kernel/drivers/net/bonding/bonding.ko.xz" -> "bonding", and
// "8021q.ko" -> "8021q"; dashes become underscores as in the kernel.
func ModuleName(file string) string {
	base := path.Base(file)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// ParseModulesDep reads a modules.dep file ("file: dep dep ...").
func ParseModulesDep(r io.Reader) (ModuleDeps, error) {
	deps := ModuleDeps{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		file, rest, ok := strings.Cut(line, ":")
		if !ok || file == "" {
			return nil, fmt.Errorf("modules.dep line %d: want \"file: deps\", got %q", n, line)
		}
		deps[ModuleName(file)] = ModuleEntry{File: file, Deps: strings.Fields(rest)}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read modules.dep: %w", err)
	}
	return deps, nil
}

// LoadOrder returns the files to load, dependencies first and each once,
// so that loading them in order brings in every named module.
func (d ModuleDeps) LoadOrder(names ...string) ([]string, error) {
	var order []string
	seen := map[string]bool{}
	var visit func(name string, chain []string) error
	visit = func(name string, chain []string) error {
		name = strings.ReplaceAll(name, "-", "_")
		e, ok := d[name]
		if !ok {
			if len(chain) > 0 {
				return fmt.Errorf("module %s (needed by %s) is not in modules.dep", name, strings.Join(chain, " <- "))
			}
			return fmt.Errorf("module %s is not in modules.dep", name)
		}
		if seen[name] {
			return nil
		}
		seen[name] = true
		// depmod lists the full closure with the deepest dependency last;
		// walk it from the end so each module follows what it needs.
		for i := len(e.Deps) - 1; i >= 0; i-- {
			if err := visit(ModuleName(e.Deps[i]), append(chain, name)); err != nil {
				return err
			}
		}
		order = append(order, e.File)
		return nil
	}
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}
