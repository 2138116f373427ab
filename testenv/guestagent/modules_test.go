package guestagent

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseModuleList(t *testing.T) {
	t.Parallel()
	const dir = "/lib/modules/6.12.107+deb12-amd64/kernel/drivers/net"
	tests := []struct {
		name    string
		list    string
		want    []Module
		wantErr string
	}{
		{
			name: "modules with params, comments and blank lines",
			list: "# network\n\n" +
				dir + "/mii.ko.xz\n" +
				"  " + dir + "/bonding/bonding.ko.xz max_bonds=0  \n" +
				dir + "/dummy.ko\tnumdummies=2 foo=\"a b\"\n" +
				dir + "/x.ko.zst\n" + dir + "/y.ko.gz\n",
			want: []Module{
				{Path: dir + "/mii.ko.xz", Line: 3},
				{Path: dir + "/bonding/bonding.ko.xz", Params: "max_bonds=0", Line: 4},
				{Path: dir + "/dummy.ko", Params: "numdummies=2 foo=\"a b\"", Line: 5},
				{Path: dir + "/x.ko.zst", Line: 6},
				{Path: dir + "/y.ko.gz", Line: 7},
			},
		},
		{name: "empty", list: "", want: nil},
		{name: "relative path", list: "# x\nkernel/bonding.ko.xz\n", wantErr: `modules.list:2: module path "kernel/bonding.ko.xz" is not absolute`},
		{name: "not a module", list: "/lib/modules/bonding.ko.bz2\n", wantErr: `modules.list:1: "/lib/modules/bonding.ko.bz2" is not a kernel module file`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseModuleList(strings.NewReader(tt.list), "modules.list")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestLoadModulesListErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.list")
	if err := os.WriteFile(bad, []byte("\nrelative.ko\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		wantErr string
	}{
		{name: "missing list", path: filepath.Join(dir, "none.list"), wantErr: filepath.Join(dir, "none.list")},
		{name: "bad line", path: bad, wantErr: bad + ":2:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := LoadModules(tt.path, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestLoadModulesCalls(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mod := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("ELF"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mii, bonding, dummy := mod("mii.ko.xz"), mod("bonding.ko.zst"), mod("dummy.ko")
	missing := filepath.Join(dir, "missing.ko.xz")

	tests := []struct {
		name    string
		mods    []Module
		fail    map[string]error // module base name -> finit error
		want    []string         // finit calls, rendered
		wantErr string
	}{
		{
			name: "flags follow compression",
			mods: []Module{{Path: mii, Line: 1}, {Path: bonding, Params: "max_bonds=0", Line: 2}, {Path: dummy, Line: 3}},
			want: []string{"mii.ko.xz flags=4 params=\"\"", "bonding.ko.zst flags=4 params=\"max_bonds=0\"", "dummy.ko flags=0 params=\"\""},
		},
		{
			name: "already loaded is fine",
			mods: []Module{{Path: mii, Line: 1}, {Path: dummy, Line: 2}},
			fail: map[string]error{"mii.ko.xz": unix.EEXIST},
			want: []string{"mii.ko.xz flags=4 params=\"\"", "dummy.ko flags=0 params=\"\""},
		},
		{
			name:    "failure stops and names the module",
			mods:    []Module{{Path: mii, Line: 1}, {Path: bonding, Line: 2}, {Path: dummy, Line: 3}},
			fail:    map[string]error{"bonding.ko.zst": unix.ENOEXEC},
			want:    []string{"mii.ko.xz flags=4 params=\"\"", "bonding.ko.zst flags=4 params=\"\""},
			wantErr: "load module " + bonding + " (list line 2): exec format error",
		},
		{
			name:    "missing module file",
			mods:    []Module{{Path: missing, Line: 4}, {Path: dummy, Line: 5}},
			wantErr: missing,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			finit := func(fd int, params string, flags int) error {
				name, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
				if err != nil {
					return err
				}
				base := filepath.Base(name)
				got = append(got, fmt.Sprintf("%s flags=%d params=%q", base, flags, params))
				return tt.fail[base]
			}
			err := loadModules(tt.mods, finit, slog.New(slog.DiscardHandler))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("finit calls %q, want %q", got, tt.want)
			}
		})
	}
}
