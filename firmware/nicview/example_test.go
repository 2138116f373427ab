package nicview_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/vflag/vflag/firmware/nicview"
)

// A recorded E810 answers as the host would, and logs what it is asked to
// change.
func ExampleLoadRecording() {
	dir, err := os.MkdirTemp("", "e810")
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	rec, err := nicview.LoadRecording("../testdata/e810-fresh.yaml", dir)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	dl, _ := rec.Devlink(ctx, "0000:af:00.0")
	bond, _ := nicview.ReadBond(rec.Sysfs(), "bond0")
	fmt.Println(dl.Eswitch, dl.Serial, bond.Mode, bond.Slaves)
	_ = rec.SetEswitchMode(ctx, "0000:af:00.0", nicview.EswitchSwitchdev)
	fmt.Println(rec.Log())
	// Output:
	// legacy b8-87-a3-ff-ff-ca-05-68 active-backup [ens1f0 ens1f1]
	// [devlink dev eswitch set pci/0000:af:00.0 mode switchdev]
}
