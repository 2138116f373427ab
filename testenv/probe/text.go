package probe

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// stripStep is the time one character of the ASCII strip covers.
const stripStep = 100 * time.Millisecond

// stripLead is how far before the fault the strip starts.
const stripLead = time.Second

// stripLegend heads the text summary.
const stripLegend = "strip: one character per 100 ms from 1 s before the fault: " +
	"'.' replied, 'x' lost, ':' some lost, ' ' no probe, '|' the fault"

// WriteText writes a human summary of each timeline to w: lost probes, the
// outage (Summary.GapMs), whether and when the VM was reachable again, the
// FDB moves and marks, and an ASCII strip of the probes from 1 s before the
// fault to the end of the run, one character per 100 ms: '.' all replied,
// 'x' all lost, ':' some lost, ' ' no probe, '|' the fault (between the
// characters before and after it).
func WriteText(w io.Writer, tls []Timeline) error {
	var b strings.Builder
	b.WriteString(stripLegend + "\n")
	for _, tl := range tls {
		b.WriteString("\n")
		writeTimelineText(&b, tl)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write text summary of %d timelines: %w", len(tls), err)
	}
	return nil
}

// writeTimelineText writes the summary of one timeline.
func writeTimelineText(b *strings.Builder, tl Timeline) {
	sum := tl.Summarize()
	name := tl.name()
	if name == "" {
		name = "(unnamed)"
	}
	fault := "no fault"
	if !tl.Fault.IsZero() {
		fault = "fault " + quoteLabel(tl.FaultLabel) + " at " + tl.Fault.Format("15:04:05.000")
	}
	fmt.Fprintf(b, "%s: %s\n", name, fault)
	fmt.Fprintf(b, "  probes:    %d sent every %s, %d lost", sum.Sent, tl.Interval, sum.Lost)
	if !tl.Fault.IsZero() {
		fmt.Fprintf(b, " (%d after the fault)", sum.LostAfterFault)
	}
	b.WriteString("\n")
	if tl.Fault.IsZero() {
		fmt.Fprintf(b, "  gap:       %.1f ms without a reply (longest)\n", sum.GapMs)
		fmt.Fprintf(b, "  recovered: %s (last probe answered)\n", yesNo(sum.Recovered))
	} else {
		fmt.Fprintf(b, "  gap:       %.1f ms without a reply\n", sum.GapMs)
		if sum.Recovered {
			fmt.Fprintf(b, "  recovered: yes, %.1f ms after the fault (first answered probe after the outage)\n", sum.RecoveryMs)
		} else {
			b.WriteString("  recovered: no\n")
		}
	}
	for i, m := range sum.FDBMoves {
		head := "  fdb:       "
		if i > 0 {
			head = "             "
		}
		fmt.Fprintf(b, "%s%s %s%s: %s -> %s at %+.1f ms\n", head, m.Bridge, m.MAC, vlanSuffix(m.VLAN),
			portOrNone(m.From, "(none)"), portOrNone(m.To, "(removed)"), m.AtMs)
	}
	if len(sum.FDBMoves) == 0 {
		b.WriteString("  fdb:       no moves\n")
	}
	for i, m := range tl.Marks {
		head := "  marks:     "
		if i > 0 {
			head = "             "
		}
		fmt.Fprintf(b, "%s%+.1f ms %s\n", head, tl.rel(m.Time), m.Label)
	}
	strip, ruler := tl.strip()
	if strip != "" {
		fmt.Fprintf(b, "  strip:     %s\n", strip)
		fmt.Fprintf(b, "             %s\n", strings.TrimRight(ruler, " "))
	}
}

// strip renders the ASCII strip of the probes and a ruler under it that
// labels every second.
func (tl Timeline) strip() (strip, ruler string) {
	if len(tl.Samples) == 0 {
		return "", ""
	}
	origin := tl.origin()
	hasFault := !tl.Fault.IsZero()
	first := int64(0)
	if hasFault {
		first = -int64(stripLead / stripStep)
	}
	last := first
	for _, p := range tl.Samples {
		last = max(last, floorDiv(p.Sent.Sub(origin), stripStep))
	}
	if hasFault {
		last = max(last, 0) // the fault is always shown
	}
	n := int(last - first + 1)
	replied := make([]int, n)
	lost := make([]int, n)
	for _, p := range tl.Samples {
		i := floorDiv(p.Sent.Sub(origin), stripStep) - first
		if i < 0 {
			continue
		}
		if p.Replied {
			replied[i]++
		} else {
			lost[i]++
		}
	}
	// col is the column of bucket k (k counts steps from the origin).
	col := func(k int64) int {
		c := int(k - first)
		if hasFault && k >= 0 {
			c++
		}
		return c
	}
	width := col(last) + 1
	s := make([]byte, width)
	for i := range n {
		c := byte(' ')
		switch {
		case replied[i] > 0 && lost[i] > 0:
			c = ':'
		case replied[i] > 0:
			c = '.'
		case lost[i] > 0:
			c = 'x'
		}
		s[col(first+int64(i))] = c
	}
	if hasFault {
		s[col(0)-1] = '|'
	}

	r := []byte(strings.Repeat(" ", width+8))
	free := 0 // first column a label may use
	perSecond := int64(time.Second / stripStep)
	for k := first; k <= last; k++ {
		if k%perSecond != 0 {
			continue
		}
		label := fmt.Sprintf("%ds", k/perSecond)
		c := col(k)
		if k == 0 {
			label = "0"
			if hasFault {
				c-- // under the '|'
			}
		}
		if c < free {
			continue
		}
		copy(r[c:], label)
		free = c + len(label) + 1
	}
	return string(s), string(r)
}

// floorDiv divides d by step, rounding towards minus infinity.
func floorDiv(d, step time.Duration) int64 {
	q := int64(d / step)
	if d%step < 0 {
		q--
	}
	return q
}

// quoteLabel quotes a label for the text summary.
func quoteLabel(s string) string {
	if s == "" {
		return "(unlabelled)"
	}
	return fmt.Sprintf("%q", s)
}

// yesNo spells a bool.
func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}

// portOrNone returns port, or none if it is empty.
func portOrNone(port, none string) string {
	if port == "" {
		return none
	}
	return port
}

// vlanSuffix names a VLAN after a MAC, if any.
func vlanSuffix(vlan int) string {
	if vlan == 0 {
		return ""
	}
	return fmt.Sprintf(" vlan %d", vlan)
}
