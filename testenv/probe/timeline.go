package probe

import (
	"math"
	"slices"
	"time"
)

// Timeline is the record of one measured scenario: the probes, the fault,
// what else happened, and how the fabric's FDBs moved.
type Timeline struct {
	// Scenario names what was done (for example "pull-cable-a").
	Scenario string
	// Variant names the configuration it was done with (for example
	// "vflag" or "baseline").
	Variant string
	// Interval is the probes' interval.
	Interval time.Duration
	// Fault is when the fault was injected; zero if there was none. It must
	// come from the same clock as the samples (time.Now in this process).
	Fault time.Time
	// FaultLabel says what the fault was (for example "link down ToR-A").
	FaultLabel string
	// Marks are other moments worth showing (bond switched, GARP sent).
	Marks []Mark
	// Samples are the probes, as Pinger.Run returns them.
	Samples []Sample
	// FDB are the fabric's FDB events, as FDBRecorder.Events returns them.
	FDB []FDBEvent
}

// Mark is a labelled moment of a Timeline.
type Mark struct {
	// Time is when it happened.
	Time time.Time
	// Label says what happened.
	Label string
}

// Summary holds the figures of a Timeline that a report quotes.
type Summary struct {
	// Sent is the number of probes.
	Sent int
	// Lost is the number of probes without a reply.
	Lost int
	// LostAfterFault is the number of lost probes sent after the fault.
	LostAfterFault int
	// GapMs is the outage: the time in ms between two consecutive replied
	// probes whose sending times enclose the fault (one interval when
	// nothing was lost), or, if longer, between a later pair (when the loss
	// began some probes after the fault). Without a reply before the
	// fault it starts at the first probe (or the fault, if earlier);
	// without a reply after the outage it ends with the last probe and
	// Recovered is false. Without a fault it is the longest gap of the run.
	GapMs float64
	// Recovered reports whether a probe sent after the outage was answered
	// (without a fault: whether the last probe was answered).
	Recovered bool
	// RecoveryMs is the time in ms from the fault to the sending of the
	// first answered probe after the outage (the end of GapMs); 0 if not
	// Recovered or without a fault.
	RecoveryMs float64
	// FDBMoves are the changes of where the bridges forward each MAC.
	FDBMoves []FDBMove
}

// FDBMove is a change of the port a bridge forwards a MAC to. The first
// sighting of an entry is not a move; a removal is a move to "", and
// learning the MAC again after a removal a move from "".
type FDBMove struct {
	// MAC is the address.
	MAC string `json:"mac"`
	// Bridge is the bridge whose FDB changed.
	Bridge string `json:"bridge"`
	// VLAN is the entry's VLAN, 0 without VLAN filtering.
	VLAN int `json:"vlan,omitempty"`
	// From is the port before, "" if the entry did not exist.
	From string `json:"from"`
	// To is the port after, "" if the entry was removed.
	To string `json:"to"`
	// AtMs is when it happened, in ms relative to the fault.
	AtMs float64 `json:"at_ms"`
}

// Summarize computes the Summary of the timeline. Samples are taken in
// order of Seq; they need not be sorted.
func (tl Timeline) Summarize() Summary {
	samples := tl.sortedSamples()
	var s Summary
	s.Sent = len(samples)
	for _, p := range samples {
		if p.Replied {
			continue
		}
		s.Lost++
		if !tl.Fault.IsZero() && p.Sent.After(tl.Fault) {
			s.LostAfterFault++
		}
	}
	s.FDBMoves = tl.fdbMoves()
	if len(samples) == 0 {
		return s
	}
	if tl.Fault.IsZero() {
		s.GapMs = longestGap(samples)
		s.Recovered = samples[len(samples)-1].Replied
		return s
	}

	// The gap enclosing the fault starts with the last reply at or before
	// it (or with the run, or the fault, if there is none)...
	prev := samples[0].Sent
	if tl.Fault.Before(prev) {
		prev = tl.Fault
	}
	first := len(samples) // index of the first probe sent after the fault
	for i, p := range samples {
		if p.Sent.After(tl.Fault) {
			first = i
			break
		}
		if p.Replied {
			prev = p.Sent
		}
	}
	// ...and the outage is the longest gap from there on: the one
	// enclosing the fault, or a later one if the loss began only after
	// the fault took effect, or the open one at the end of the run.
	outage := time.Duration(-1)
	for _, p := range samples[first:] {
		if !p.Replied {
			continue
		}
		if gap := p.Sent.Sub(prev); gap > outage {
			outage = gap
			s.Recovered = true
			s.RecoveryMs = msOf(p.Sent.Sub(tl.Fault))
		}
		prev = p.Sent
	}
	if last := samples[len(samples)-1]; !last.Replied || outage < 0 {
		if gap := last.Sent.Sub(prev); gap > outage {
			outage = gap
			s.Recovered = false
			s.RecoveryMs = 0
		}
	}
	s.GapMs = msOf(outage)
	return s
}

// sortedSamples returns the samples ordered by Seq.
func (tl Timeline) sortedSamples() []Sample {
	out := slices.Clone(tl.Samples)
	slices.SortStableFunc(out, func(a, b Sample) int { return a.Seq - b.Seq })
	return out
}

// origin is the time the timeline's relative times count from: the fault,
// or the first probe if there was no fault.
func (tl Timeline) origin() time.Time {
	if !tl.Fault.IsZero() {
		return tl.Fault
	}
	var o time.Time
	for _, p := range tl.Samples {
		if o.IsZero() || p.Sent.Before(o) {
			o = p.Sent
		}
	}
	return o
}

// rel returns t in ms relative to the timeline's origin, rounded to 0.1 ms.
func (tl Timeline) rel(t time.Time) float64 {
	return msOf(t.Sub(tl.origin()))
}

// longestGap returns the longest time in ms between two consecutive
// replied probes (from the first probe if it was lost, to the last probe
// if it was lost).
func longestGap(samples []Sample) float64 {
	var longest time.Duration
	start := samples[0].Sent
	for _, p := range samples[1:] {
		if !p.Replied {
			continue
		}
		longest = max(longest, p.Sent.Sub(start))
		start = p.Sent
	}
	if last := samples[len(samples)-1]; !last.Replied {
		longest = max(longest, last.Sent.Sub(start))
	}
	return msOf(longest)
}

// fdbMoves derives the moves from the FDB events, taken in time order.
func (tl Timeline) fdbMoves() []FDBMove {
	type key struct {
		bridge, mac string
		vlan        int
	}
	where := make(map[key]string) // current port, "" if removed
	events := slices.Clone(tl.FDB)
	slices.SortStableFunc(events, func(a, b FDBEvent) int { return a.Time.Compare(b.Time) })
	var moves []FDBMove
	for _, ev := range events {
		k := key{ev.Bridge, ev.MAC, ev.VLAN}
		to := ev.Port
		if ev.Deleted {
			to = ""
		}
		from, seen := where[k]
		where[k] = to
		switch {
		case !seen && !ev.Deleted:
			continue // first sighting
		case !seen:
			from = ev.Port
		case from == to:
			continue
		}
		moves = append(moves, FDBMove{
			MAC: ev.MAC, Bridge: ev.Bridge, VLAN: ev.VLAN,
			From: from, To: to, AtMs: tl.rel(ev.Time),
		})
	}
	return moves
}

// msOf converts d to milliseconds rounded to 0.1 ms.
func msOf(d time.Duration) float64 {
	return math.Round(float64(d)/float64(100*time.Microsecond)) / 10
}
