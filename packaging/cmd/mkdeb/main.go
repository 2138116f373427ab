// Command mkdeb builds vflag's Debian package from the binaries `make
// build` wrote (package packaging) and prints the .deb's path.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/vflag/vflag/packaging"
)

func main() {
	var o packaging.Options
	flag.StringVar(&o.BinDir, "bin", "bin", "directory with the binaries (make build)")
	flag.StringVar(&o.OutDir, "out", "bin", "directory to write the .deb to")
	flag.StringVar(&o.Version, "version", "", "Debian version (default: from git describe of the current directory)")
	flag.StringVar(&o.Compression, "Z", "xz", "compression: xz, gzip, zstd or none")
	flag.Parse()
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "mkdeb:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o packaging.Options) error {
	if o.Version == "" {
		v, err := packaging.GitVersion(ctx, ".")
		if err != nil {
			return err
		}
		o.Version = v
	}
	deb, err := packaging.Build(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stdout, deb)
	return nil
}
