package probe

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Probe run states of a ProbeRun.
const (
	// StateReplied marks a run of answered probes.
	StateReplied = "replied"
	// StateLost marks a run of unanswered probes.
	StateLost = "lost"
)

// Report is the JSON form of a Timeline in the results file. Times are in
// ms relative to the fault (relative to the first probe if there was no
// fault), rounded to 0.1 ms; the probes are compressed into runs.
type Report struct {
	// Scenario is Timeline.Scenario.
	Scenario string `json:"scenario"`
	// Variant is Timeline.Variant.
	Variant string `json:"variant"`
	// IntervalMs is the probes' interval in ms.
	IntervalMs float64 `json:"interval_ms"`
	// Fault is the wall-clock time of the fault (RFC 3339), "" if none.
	Fault string `json:"fault,omitempty"`
	// FaultLabel is Timeline.FaultLabel.
	FaultLabel string `json:"fault_label,omitempty"`
	// Sent is Summary.Sent.
	Sent int `json:"sent"`
	// Lost is Summary.Lost.
	Lost int `json:"lost"`
	// LostAfterFault is Summary.LostAfterFault.
	LostAfterFault int `json:"lost_after_fault"`
	// GapMs is Summary.GapMs.
	GapMs float64 `json:"gap_ms"`
	// Recovered is Summary.Recovered.
	Recovered bool `json:"recovered"`
	// RecoveryMs is Summary.RecoveryMs.
	RecoveryMs float64 `json:"recovery_ms"`
	// FDBMoves is Summary.FDBMoves.
	FDBMoves []FDBMove `json:"fdb_moves"`
	// Marks are the timeline's marks.
	Marks []ReportMark `json:"marks"`
	// FDB are the timeline's FDB events.
	FDB []ReportFDBEvent `json:"fdb"`
	// Probes are the probes in order, as runs of the same outcome.
	Probes []ProbeRun `json:"probes"`
}

// ReportMark is a Mark in a Report.
type ReportMark struct {
	// AtMs is when it happened.
	AtMs float64 `json:"at_ms"`
	// Label says what happened.
	Label string `json:"label"`
}

// ReportFDBEvent is an FDBEvent in a Report.
type ReportFDBEvent struct {
	// AtMs is when it was read.
	AtMs float64 `json:"at_ms"`
	// Bridge is FDBEvent.Bridge.
	Bridge string `json:"bridge"`
	// Port is FDBEvent.Port.
	Port string `json:"port"`
	// MAC is FDBEvent.MAC.
	MAC string `json:"mac"`
	// VLAN is FDBEvent.VLAN.
	VLAN int `json:"vlan,omitempty"`
	// Deleted is FDBEvent.Deleted.
	Deleted bool `json:"deleted"`
}

// ProbeRun is a run of consecutive probes with the same outcome.
type ProbeRun struct {
	// State is StateReplied or StateLost.
	State string `json:"state"`
	// FromMs is when the run's first probe was sent.
	FromMs float64 `json:"from_ms"`
	// ToMs is when the run's last probe was sent.
	ToMs float64 `json:"to_ms"`
	// Count is the number of probes in the run.
	Count int `json:"count"`
}

// NewReport builds the Report of a timeline.
func NewReport(tl Timeline) Report {
	sum := tl.Summarize()
	r := Report{
		Scenario:       tl.Scenario,
		Variant:        tl.Variant,
		IntervalMs:     msOf(tl.Interval),
		FaultLabel:     tl.FaultLabel,
		Sent:           sum.Sent,
		Lost:           sum.Lost,
		LostAfterFault: sum.LostAfterFault,
		GapMs:          sum.GapMs,
		Recovered:      sum.Recovered,
		RecoveryMs:     sum.RecoveryMs,
		FDBMoves:       sum.FDBMoves,
		Marks:          []ReportMark{},
		FDB:            []ReportFDBEvent{},
		Probes:         []ProbeRun{},
	}
	if r.FDBMoves == nil {
		r.FDBMoves = []FDBMove{}
	}
	if !tl.Fault.IsZero() {
		r.Fault = tl.Fault.Format(time.RFC3339Nano)
	}
	for _, m := range tl.Marks {
		r.Marks = append(r.Marks, ReportMark{AtMs: tl.rel(m.Time), Label: m.Label})
	}
	for _, ev := range tl.FDB {
		r.FDB = append(r.FDB, ReportFDBEvent{
			AtMs: tl.rel(ev.Time), Bridge: ev.Bridge, Port: ev.Port,
			MAC: ev.MAC, VLAN: ev.VLAN, Deleted: ev.Deleted,
		})
	}
	for _, p := range tl.sortedSamples() {
		state := StateLost
		if p.Replied {
			state = StateReplied
		}
		at := tl.rel(p.Sent)
		if n := len(r.Probes); n > 0 && r.Probes[n-1].State == state {
			r.Probes[n-1].ToMs = at
			r.Probes[n-1].Count++
			continue
		}
		r.Probes = append(r.Probes, ProbeRun{State: state, FromMs: at, ToMs: at, Count: 1})
	}
	return r
}

// WriteJSON writes the Report of the timeline to w as indented JSON.
func WriteJSON(w io.Writer, tl Timeline) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(NewReport(tl)); err != nil {
		return fmt.Errorf("write report of %s: %w", tl.name(), err)
	}
	return nil
}

// name is how messages and pictures name the timeline.
func (tl Timeline) name() string {
	switch {
	case tl.Variant == "":
		return tl.Scenario
	case tl.Scenario == "":
		return tl.Variant
	}
	return tl.Scenario + "/" + tl.Variant
}
