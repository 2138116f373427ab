// Command benchreport turns `go test -bench -json` output (stdin) into the
// plain benchmark lines (stdout), for results/bench.txt, and fails when a
// package failed.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

func main() {
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	// test2json splits a benchmark's line into several output events (the
	// name, then the figures): rejoin each package's output first.
	var order []string
	out := map[string]*strings.Builder{}
	var failed []string
	for sc.Scan() {
		var ev event
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		switch ev.Action {
		case "output":
			b, ok := out[ev.Package]
			if !ok {
				b = &strings.Builder{}
				out[ev.Package] = b
				order = append(order, ev.Package)
			}
			b.WriteString(ev.Output)
		case "fail":
			if ev.Test == "" {
				failed = append(failed, ev.Package)
			}
		}
	}
	for _, pkg := range order {
		var lines []string
		for _, l := range strings.Split(out[pkg].String(), "\n") {
			if strings.HasPrefix(l, "Benchmark") && strings.Contains(l, "ns/op") {
				lines = append(lines, l)
			}
		}
		if len(lines) > 0 {
			fmt.Fprintln(os.Stdout, "pkg:", pkg)
			fmt.Fprintln(os.Stdout, strings.Join(lines, "\n"))
		}
	}
	for _, pkg := range failed {
		fmt.Fprintln(os.Stdout, "FAIL", pkg)
	}
	if len(failed) > 0 {
		os.Exit(1)
	}
}
