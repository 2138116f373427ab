package probe

import (
	"reflect"
	"slices"
	"testing"
	"time"
)

// t0 is the start of the canned runs.
var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

// ms is a shorthand for a duration in milliseconds.
func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

// samplesOf makes probes sent every interval from start, numbered from
// seq: '.' is a replied probe (RTT 1 ms), 'x' a lost one.
func samplesOf(start time.Time, interval time.Duration, seq int, pattern string) []Sample {
	out := make([]Sample, 0, len(pattern))
	for i, c := range pattern {
		s := Sample{Seq: seq + i, Sent: start.Add(time.Duration(i) * interval)}
		if c == '.' {
			s.Replied, s.RTT = true, time.Millisecond
		}
		out = append(out, s)
	}
	return out
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	shuffled := samplesOf(t0, ms(10), 65533, "...xx...")
	slices.Reverse(shuffled)
	shuffled[2], shuffled[5] = shuffled[5], shuffled[2]

	tests := []struct {
		name string
		tl   Timeline
		want Summary
	}{
		{
			name: "no loss",
			tl:   Timeline{Fault: t0.Add(ms(45)), Samples: samplesOf(t0, ms(10), 0, "..........")},
			want: Summary{Sent: 10, GapMs: 10, Recovered: true, RecoveryMs: 5},
		},
		{
			name: "loss then recovery",
			tl:   Timeline{Fault: t0.Add(ms(45)), Samples: samplesOf(t0, ms(10), 0, "x....xxxx.")},
			// Last reply before the fault at 40 ms, first after it at 90 ms.
			want: Summary{Sent: 10, Lost: 5, LostAfterFault: 4, GapMs: 50, Recovered: true, RecoveryMs: 45},
		},
		{
			name: "loss begins after the fault",
			tl:   Timeline{Fault: t0.Add(ms(45)), Samples: samplesOf(t0, ms(10), 0, "......xxxx.")},
			// Replies at 40 and 50 enclose the fault; the outage is 50 to 100 ms.
			want: Summary{Sent: 11, Lost: 4, LostAfterFault: 4, GapMs: 50, Recovered: true, RecoveryMs: 55},
		},
		{
			name: "a short loss at the end after recovery",
			tl:   Timeline{Fault: t0.Add(ms(45)), Samples: samplesOf(t0, ms(10), 0, ".....xxxx..x")},
			want: Summary{Sent: 12, Lost: 5, LostAfterFault: 5, GapMs: 50, Recovered: true, RecoveryMs: 45},
		},
		{
			name: "no probe after the fault",
			tl:   Timeline{Fault: t0.Add(ms(100)), Samples: samplesOf(t0, ms(10), 0, "...x")},
			// From the last reply (20 ms) to the last probe (30 ms).
			want: Summary{Sent: 4, Lost: 1, GapMs: 10},
		},
		{
			name: "never recovers",
			tl:   Timeline{Fault: t0.Add(ms(45)), Samples: samplesOf(t0, ms(10), 0, ".....xxxxx")},
			// From the last reply (40 ms) to the last probe (90 ms).
			want: Summary{Sent: 10, Lost: 5, LostAfterFault: 5, GapMs: 50},
		},
		{
			name: "probe sent at the fault counts as before it",
			tl:   Timeline{Fault: t0.Add(ms(20)), Samples: samplesOf(t0, ms(10), 0, "..x..")},
			want: Summary{Sent: 5, Lost: 1, GapMs: 20, Recovered: true, RecoveryMs: 10},
		},
		{
			name: "sequence numbers past 65535, unsorted",
			tl:   Timeline{Fault: t0.Add(ms(25)), Samples: shuffled},
			// Seq 65533..65540: replies at 0, 10, 20, lost 30, 40, replies from 50.
			want: Summary{Sent: 8, Lost: 2, LostAfterFault: 2, GapMs: 30, Recovered: true, RecoveryMs: 25},
		},
		{
			name: "fault before the first probe",
			tl:   Timeline{Fault: t0.Add(ms(-100)), Samples: samplesOf(t0, ms(10), 0, "xx...")},
			want: Summary{Sent: 5, Lost: 2, LostAfterFault: 2, GapMs: 120, Recovered: true, RecoveryMs: 120},
		},
		{
			name: "no fault: longest gap",
			tl:   Timeline{Samples: samplesOf(t0, ms(10), 0, "..xxx...x")},
			want: Summary{Sent: 9, Lost: 4, GapMs: 40},
		},
		{
			name: "no probes",
			tl:   Timeline{Fault: t0},
			want: Summary{},
		},
		{
			name: "FDB moves",
			tl: Timeline{
				Fault:   t0,
				Samples: samplesOf(t0.Add(ms(-20)), ms(10), 0, "...."),
				FDB: []FDBEvent{
					{Time: t0.Add(ms(-500)), Bridge: "tora", Port: "pa", MAC: "02:00:00:00:00:0a"},
					{Time: t0.Add(ms(-400)), Bridge: "torb", Port: "p2", MAC: "02:00:00:00:00:0a"},
					{Time: t0.Add(ms(12.34)), Bridge: "tora", Port: "pa", MAC: "02:00:00:00:00:0a", Deleted: true},
					{Time: t0.Add(ms(31)), Bridge: "tora", Port: "pb", MAC: "02:00:00:00:00:0a"},
					{Time: t0.Add(ms(35)), Bridge: "tora", Port: "pb", MAC: "02:00:00:00:00:0a"},
					// Out of order: taken by time.
					{Time: t0.Add(ms(33)), Bridge: "torb", Port: "p1", MAC: "02:00:00:00:00:0a"},
					{Time: t0.Add(ms(40)), Bridge: "torb", Port: "p9", MAC: "02:00:00:00:00:0b", Deleted: true},
				},
			},
			want: Summary{
				Sent: 4, GapMs: 10, Recovered: true, RecoveryMs: 10,
				FDBMoves: []FDBMove{
					{MAC: "02:00:00:00:00:0a", Bridge: "tora", From: "pa", To: "", AtMs: 12.3},
					{MAC: "02:00:00:00:00:0a", Bridge: "tora", From: "", To: "pb", AtMs: 31},
					{MAC: "02:00:00:00:00:0a", Bridge: "torb", From: "p2", To: "p1", AtMs: 33},
					{MAC: "02:00:00:00:00:0b", Bridge: "torb", From: "p9", To: "", AtMs: 40},
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.tl.Summarize(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Summarize() =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestMsOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    time.Duration
		want float64
	}{
		{0, 0},
		{ms(10), 10},
		{12340 * time.Microsecond, 12.3},
		{12350 * time.Microsecond, 12.4},
		{-12340 * time.Microsecond, -12.3},
		{time.Minute, 60000},
	}
	for _, tt := range tests {
		if got := msOf(tt.d); got != tt.want {
			t.Errorf("msOf(%s) = %v, want %v", tt.d, got, tt.want)
		}
	}
}
