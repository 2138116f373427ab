package config_test

import (
	"fmt"

	"github.com/vflag/vflag/vfmgr/config"
)

// Parse reports every problem of a file at its line, with what is
// expected.
func ExampleParse() {
	_, err := config.Parse("/etc/vflag/vflag.yaml", []byte(`bonds:
  - name: bond0
    pfs: [pf0, pf1, pf2]
    vfs_per_pf: 7
    policy: balance
hold_down: 0s
`))
	fmt.Println(err)

	c, err := config.Parse("/etc/vflag/vflag.yaml", []byte(`bonds:
  - name: bond0
    pfs: [pf0, pf1]
    vfs_per_pf: 7
    failback: {after: 30s}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	b := c.Bonds[0]
	fmt.Println(b.Name, b.PFs, b.VFsPerPF, b.Policy, "failback", b.Failback, "hold-down", c.HoldDown)
	// Output:
	// /etc/vflag/vflag.yaml:3: bonds[0].pfs: a bond needs exactly 2 PFs for now (vflag moves VFs between the two ports of a NIC pair), got 3
	// /etc/vflag/vflag.yaml:6: hold_down: 0s is not positive
	// bond0 [pf0 pf1] 7 active-first failback after 30s hold-down 200ms
}
