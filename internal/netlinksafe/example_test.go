package netlinksafe_test

import (
	"log"

	"github.com/vflag/vflag/internal/netlinksafe"
)

// Links of the current network namespace, never a partial list.
func ExampleHandle_LinkList() {
	links, err := netlinksafe.New(nil).LinkList()
	if err != nil {
		log.Fatal(err) // "list links (dump interrupted 5 times): ..." when the table kept changing
	}
	for _, l := range links {
		log.Println(l.Attrs().Index, l.Attrs().Name)
	}
}
