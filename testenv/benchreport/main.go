// Command benchreport turns `go test -bench -json` output (stdin) into the
// plain benchmark lines (stdout), for results/bench.txt, and fails when a
// benchmark failed.
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
	failed := false
	for sc.Scan() {
		var ev event
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		out := strings.TrimRight(ev.Output, "\n")
		switch {
		case ev.Action == "fail" && ev.Test == "":
			failed = true
			fmt.Fprintln(os.Stdout, "FAIL", ev.Package)
		case ev.Action == "output" && (strings.HasPrefix(out, "Benchmark") && strings.Contains(out, "ns/op") || strings.HasPrefix(out, "pkg: ")):
			fmt.Fprintln(os.Stdout, out)
		}
	}
	if failed {
		os.Exit(1)
	}
}
