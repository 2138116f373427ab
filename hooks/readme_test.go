package hooks

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestReadmeExamples parses every XML example of README.md with the hook's
// own parser: a domain must have vflag interfaces and no problem; a network
// must be a vflag pool, the one PoolNetwork renders for its VFs.
func TestReadmeExamples(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```xml\n(.*?)```").FindAllStringSubmatch(string(b), -1)
	if len(blocks) < 6 {
		t.Fatalf("README.md has %d XML examples; want the pool network and the cases (a) to (d)", len(blocks))
	}
	var domains int
	for i, m := range blocks {
		x := m[1]
		switch {
		case strings.HasPrefix(x, "<network"):
			bond, vfs, err := PoolNetworkVFs(x)
			if err != nil {
				t.Errorf("example %d: %v", i, err)
				continue
			}
			rendered, err := PoolNetwork(bond, vfs)
			if err != nil {
				t.Fatal(err)
			}
			bond2, vfs2, err := PoolNetworkVFs(rendered)
			if err != nil || bond2 != bond || !slices.Equal(vfs, vfs2) {
				t.Errorf("example %d: PoolNetwork(%s, %v) renders %s (%v)", i, bond, vfs, rendered, err)
			}
		case strings.HasPrefix(x, "<domain"):
			domains++
			d, err := Parse([]byte(x), Options{PCI: fakePCI{}})
			if err != nil {
				t.Errorf("example %d: %v", i, err)
				continue
			}
			if err := d.Check(); err != nil {
				t.Errorf("example %d: %v", i, err)
			}
			if len(d.Vflag()) == 0 {
				t.Errorf("example %d (%s) has no vflag interface", i, d.Name)
			}
		default:
			t.Errorf("example %d is neither a <domain> nor a <network>:\n%s", i, x)
		}
	}
	if domains < 5 {
		t.Errorf("%d domain examples; want (a) before and after start, (b), (c), (d)", domains)
	}
}
