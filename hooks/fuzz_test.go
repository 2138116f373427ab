package hooks

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzHookXML feeds the hook's XML handling arbitrary domain XML, seeded
// with the corpus in testdata (the normal test run runs the seeds): it
// must never panic, must name the problem when it refuses, and whatever it
// prints on stdout must be a domain XML that parses.
//
//	go test ./hooks -run '^$' -fuzz FuzzHookXML -fuzztime 60s
func FuzzHookXML(f *testing.F) {
	files, err := filepath.Glob("testdata/*.xml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds in testdata: %v", err)
	}
	for _, name := range files {
		f.Add(readTestdata(f, filepath.Base(name)), "prepare")
		f.Add(readTestdata(f, filepath.Base(name)), "migrate")
	}
	f.Fuzz(func(t *testing.T, raw []byte, op string) {
		d, err := Parse(raw, Options{PCI: fakePCI{}})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		_ = d.Check()
		for _, it := range d.Vflag() {
			_ = it.String()
		}
		// Whatever the interfaces, a rewrite of every VF keeps a domain.
		pcis := map[int]string{}
		for _, it := range d.Interfaces {
			if it.Kind == KindVF && it.PCI != "" {
				pcis[it.Index] = "0000:02:10.7"
			}
		}
		if len(pcis) > 0 {
			if out, err := RewritePCI(raw, pcis); err == nil {
				if _, err := Parse(out, Options{}); err != nil {
					t.Fatalf("RewritePCI made XML that does not parse: %v", err)
				}
			}
		}
		// The whole hook, against a vflagd that says yes to everything.
		name := d.Name
		if !utf8.ValidString(name) {
			name = "vm"
		}
		var out bytes.Buffer
		h := &Hook{
			Config: Config{}.withDefaults(),
			Dial:   func() (Client, error) { return &fakeVflagd{bonds: []string{"bond0"}, next: "0000:01:10.6"}, nil },
			PCI:    fakePCI{},
			Stdout: &out,
		}
		err = h.Run(context.Background(), []string{name, op, "begin", "-"}, raw)
		if err != nil && (err.Error() == "" || strings.Contains(err.Error(), "\n")) {
			t.Fatalf("error %q: want one line", err)
		}
		if out.Len() > 0 {
			if _, err := Parse(out.Bytes(), Options{}); err != nil {
				t.Fatalf("stdout is not a domain XML: %v", err)
			}
		}
	})
}
