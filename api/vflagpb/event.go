package vflagpb

import (
	"fmt"
	"strings"
)

// Summary renders an event on one line without its time: its kind, the
// bond, PF, VM and MAC it names, what a failover moved and took, and its
// message ("failover bond=bond0 pf=pf0 moved=2 took=43463.5ms carrier-lost:
// 2 moved, 0 failed").
func (e *Event) Summary() string {
	parts := []string{e.GetKind()}
	for _, kv := range [][2]string{{"bond", e.GetBond()}, {"pf", e.GetPf()}, {"vm", e.GetVm()}, {"mac", e.GetMac()}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	if e.GetMoved() > 0 {
		parts = append(parts, fmt.Sprintf("moved=%d", e.GetMoved()))
	}
	if e.GetDurationMs() > 0 {
		parts = append(parts, fmt.Sprintf("took=%.1fms", e.GetDurationMs()))
	}
	if e.GetMessage() != "" {
		parts = append(parts, e.GetMessage())
	}
	return strings.Join(parts, " ")
}
