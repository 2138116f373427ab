package probe

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// pullCable is a canned run: probes every 10 ms from 1505 ms before the
// fault to 795 ms after it, the 25 probes sent from 5 to 245 ms after the
// fault lost, and the MAC moving from port pa to pb of ToR-A.
func pullCable() Timeline {
	fault := t0.Add(ms(1505))
	pattern := make([]byte, 231)
	for i := range pattern {
		pattern[i] = '.'
		if i >= 151 && i <= 175 {
			pattern[i] = 'x'
		}
	}
	return Timeline{
		Scenario:   "pull-cable-a",
		Variant:    "vflag",
		Interval:   ms(10),
		Fault:      fault,
		FaultLabel: "link down ToR-A",
		Marks:      []Mark{{Time: fault.Add(ms(25)), Label: "bond switched"}},
		Samples:    samplesOf(t0, ms(10), 0, string(pattern)),
		FDB: []FDBEvent{
			{Time: fault.Add(ms(-1200)), Bridge: "tora", Port: "pa", MAC: "02:00:00:00:00:0a"},
			{Time: fault.Add(ms(12.34)), Bridge: "tora", Port: "pa", MAC: "02:00:00:00:00:0a", Deleted: true},
			{Time: fault.Add(ms(240)), Bridge: "tora", Port: "pb", MAC: "02:00:00:00:00:0a"},
		},
	}
}

func TestWriteJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		tl   Timeline
		want Report
	}{
		{
			name: "pull cable",
			tl:   pullCable(),
			want: Report{
				Scenario:       "pull-cable-a",
				Variant:        "vflag",
				IntervalMs:     10,
				Fault:          "2026-11-21T10:00:01.505Z",
				FaultLabel:     "link down ToR-A",
				Sent:           231,
				Lost:           25,
				LostAfterFault: 25,
				GapMs:          260,
				Recovered:      true,
				RecoveryMs:     255,
				FDBMoves: []FDBMove{
					{MAC: "02:00:00:00:00:0a", Bridge: "tora", From: "pa", To: "", AtMs: 12.3},
					{MAC: "02:00:00:00:00:0a", Bridge: "tora", From: "", To: "pb", AtMs: 240},
				},
				Marks: []ReportMark{{AtMs: 25, Label: "bond switched"}},
				FDB: []ReportFDBEvent{
					{AtMs: -1200, Bridge: "tora", Port: "pa", MAC: "02:00:00:00:00:0a"},
					{AtMs: 12.3, Bridge: "tora", Port: "pa", MAC: "02:00:00:00:00:0a", Deleted: true},
					{AtMs: 240, Bridge: "tora", Port: "pb", MAC: "02:00:00:00:00:0a"},
				},
				Probes: []ProbeRun{
					{State: StateReplied, FromMs: -1505, ToMs: -5, Count: 151},
					{State: StateLost, FromMs: 5, ToMs: 245, Count: 25},
					{State: StateReplied, FromMs: 255, ToMs: 795, Count: 55},
				},
			},
		},
		{
			name: "no fault, no probes",
			tl:   Timeline{Scenario: "idle", Interval: ms(10)},
			want: Report{
				Scenario: "idle", IntervalMs: 10,
				FDBMoves: []FDBMove{}, Marks: []ReportMark{}, FDB: []ReportFDBEvent{}, Probes: []ProbeRun{},
			},
		},
		{
			name: "no fault: times from the first probe",
			tl: Timeline{
				Scenario: "baseline", Variant: "plain", Interval: ms(10),
				Samples: samplesOf(t0, ms(10), 0, "..x"),
				Marks:   []Mark{{Time: t0.Add(ms(15)), Label: "m"}},
			},
			want: Report{
				Scenario: "baseline", Variant: "plain", IntervalMs: 10,
				Sent: 3, Lost: 1, GapMs: 10,
				FDBMoves: []FDBMove{}, Marks: []ReportMark{{AtMs: 15, Label: "m"}}, FDB: []ReportFDBEvent{},
				Probes: []ProbeRun{
					{State: StateReplied, FromMs: 0, ToMs: 10, Count: 2},
					{State: StateLost, FromMs: 20, ToMs: 20, Count: 1},
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			if err := WriteJSON(&buf, tt.tl); err != nil {
				t.Fatalf("WriteJSON: %v", err)
			}
			var got Report
			dec := json.NewDecoder(bytes.NewReader(buf.Bytes()))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("decode report: %v\n%s", err, buf.Bytes())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("report =\n%+v\nwant\n%+v\njson:\n%s", got, tt.want, buf.Bytes())
			}
			if fault, err := time.Parse(time.RFC3339Nano, got.Fault); got.Fault != "" && (err != nil || !fault.Equal(tt.tl.Fault)) {
				t.Errorf("fault %q does not parse back to %s: %v", got.Fault, tt.tl.Fault, err)
			}
		})
	}
}

func TestWriteJSONKeys(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := WriteJSON(&buf, pullCable()); err != nil {
		t.Fatalf("WriteJSON: %v", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(buf.Bytes(), &raw); err != nil {
		t.Fatalf("decode report: %v", err)
	}
	for _, key := range []string{
		"scenario", "variant", "interval_ms", "fault", "fault_label", "sent", "lost", "lost_after_fault",
		"gap_ms", "recovered", "recovery_ms", "fdb_moves", "marks", "fdb", "probes",
	} {
		if _, ok := raw[key]; !ok {
			t.Errorf("report has no %q key", key)
		}
	}
	if len(raw) != 15 {
		t.Errorf("report has %d keys, want 15", len(raw))
	}
	// 231 probes in 3 runs keep the file small.
	if buf.Len() > 3000 {
		t.Errorf("report is %d bytes, want at most 3000", buf.Len())
	}
}
