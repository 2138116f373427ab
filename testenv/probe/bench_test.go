package probe

import (
	"io"
	"strings"
	"testing"
	"time"
)

// benchTimeline is a 10-minute run at 10 ms with a 400 ms outage: what a
// long soak scenario hands to the report writers.
func benchTimeline() Timeline {
	const n = 60000
	pattern := strings.Repeat(".", n/2) + strings.Repeat("x", 40) + strings.Repeat(".", n/2-40)
	return Timeline{
		Scenario: "soak", Variant: "bench", Interval: 10 * time.Millisecond,
		Fault: t0.Add(time.Duration(n/2) * 10 * time.Millisecond), FaultLabel: "pull",
		Samples: samplesOf(t0, 10*time.Millisecond, 0, pattern),
	}
}

func BenchmarkSummarize(b *testing.B) {
	tl := benchTimeline()
	for b.Loop() {
		if s := tl.Summarize(); !s.Recovered {
			b.Fatal("not recovered")
		}
	}
}

func BenchmarkReportWriters(b *testing.B) {
	tls := []Timeline{benchTimeline()}
	for b.Loop() {
		if err := WriteJSON(io.Discard, tls[0]); err != nil {
			b.Fatal(err)
		}
		if err := WriteSVG(io.Discard, tls); err != nil {
			b.Fatal(err)
		}
	}
}
