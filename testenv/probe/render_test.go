package probe

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestWriteText(t *testing.T) {
	t.Parallel()
	never := Timeline{
		Scenario: "pull-both", Variant: "baseline", Interval: ms(10),
		Fault: t0.Add(ms(15)), FaultLabel: "both links down",
		Samples: samplesOf(t0, ms(10), 0, "..xxxxxxxxxxxxxxxxxxxxxxxxx"),
	}
	idle := Timeline{Scenario: "idle", Interval: ms(10), Samples: samplesOf(t0, ms(50), 0, "....x.")}
	tests := []struct {
		name string
		tls  []Timeline
		want []string // lines that must appear, in this order
	}{
		{
			name: "recovers",
			tls:  []Timeline{pullCable()},
			want: []string{
				"pull-cable-a/vflag: fault \"link down ToR-A\" at 10:00:01.505",
				"  probes:    231 sent every 10ms, 25 lost (25 after the fault)",
				"  gap:       260.0 ms without a reply",
				"  recovered: yes, 255.0 ms after the fault (first answered probe after the outage)",
				"  fdb:       tora 02:00:00:00:00:0a: pa -> (removed) at +12.3 ms",
				"             tora 02:00:00:00:00:0a: (none) -> pb at +240.0 ms",
				"  marks:     +25.0 ms bond switched",
				"  strip:     ..........|xx:.....",
				"             -1s       0",
			},
		},
		{
			name: "never recovers, then no fault",
			tls:  []Timeline{never, idle},
			want: []string{
				"pull-both/baseline: fault \"both links down\" at 10:00:00.015",
				"  probes:    27 sent every 10ms, 25 lost (25 after the fault)",
				"  gap:       250.0 ms without a reply",
				"  recovered: no",
				"  fdb:       no moves",
				// Probes from -15 ms: nothing before.
				"  strip:              .|xxx",
				"             -1s       0",
				"idle: no fault",
				"  probes:    6 sent every 10ms, 1 lost",
				"  gap:       100.0 ms without a reply (longest)",
				"  recovered: yes (last probe answered)",
				"  strip:     ..:",
				"             0",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			if err := WriteText(&buf, tt.tls); err != nil {
				t.Fatalf("WriteText: %v", err)
			}
			lines := strings.Split(buf.String(), "\n")
			if lines[0] != stripLegend {
				t.Errorf("first line = %q, want the legend", lines[0])
			}
			next := 0
			for _, want := range tt.want {
				found := false
				for next < len(lines) {
					next++
					if lines[next-1] == want {
						found = true
						break
					}
				}
				if !found {
					t.Fatalf("line %q missing or out of order in\n%s", want, buf.String())
				}
			}
		})
	}
}

// failingWriter fails every write.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		write func(io.Writer) error
		want  string
	}{
		{"text", func(w io.Writer) error { return WriteText(w, []Timeline{pullCable()}) }, "write text summary of 1 timelines: disk full"},
		{"svg", func(w io.Writer) error { return WriteSVG(w, []Timeline{pullCable()}) }, "write timeline picture of 1 timelines: disk full"},
		{"json", func(w io.Writer) error { return WriteJSON(w, pullCable()) }, "write report of pull-cable-a/vflag: disk full"},
	}
	for _, tt := range tests {
		if err := tt.write(failingWriter{}); err == nil || err.Error() != tt.want {
			t.Errorf("%s: error = %v, want %q", tt.name, err, tt.want)
		}
	}
}

// svgLane is what the test reads back from a lane of the picture.
type svgLane struct {
	scenario, variant string
	replied, lost     int // probe ticks ("M" commands)
	faults, marks     int
	moves             int
	texts             []string
}

// parseSVG decodes the picture and returns its lanes.
func parseSVG(t *testing.T, b []byte) []svgLane {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	var lanes []svgLane
	var cur *svgLane
	depth, laneDepth := 0, -1
	inText := false
	sawRoot := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("picture is not XML: %v\n%s", err, b)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			depth++
			attr := func(name string) string {
				for _, a := range tok.Attr {
					if a.Name.Local == name {
						return a.Value
					}
				}
				return ""
			}
			if depth == 1 {
				sawRoot = tok.Name.Local == "svg" && tok.Name.Space == "http://www.w3.org/2000/svg"
			}
			if tok.Name.Local == "g" && attr("class") == "lane" {
				lanes = append(lanes, svgLane{scenario: attr("data-scenario"), variant: attr("data-variant")})
				cur, laneDepth = &lanes[len(lanes)-1], depth
			}
			if cur == nil {
				continue
			}
			switch attr("class") {
			case "replied":
				cur.replied += strings.Count(attr("d"), "M")
			case "lost":
				cur.lost += strings.Count(attr("d"), "M")
			case "fault":
				cur.faults++
			case "mark":
				cur.marks++
			case "fdb-move":
				cur.moves++
			}
			inText = tok.Name.Local == "text"
		case xml.CharData:
			if cur != nil && inText {
				cur.texts = append(cur.texts, string(tok))
			}
		case xml.EndElement:
			if depth == laneDepth {
				cur, laneDepth = nil, -1
			}
			depth--
			inText = false
		}
	}
	if !sawRoot {
		t.Fatalf("picture's root is not an svg element:\n%s", b)
	}
	return lanes
}

func TestWriteSVG(t *testing.T) {
	t.Parallel()
	odd := Timeline{
		Scenario: `a<b & "c"`, Variant: "x>y", Interval: ms(10),
		Fault: t0.Add(ms(25)), FaultLabel: "<cut>",
		Samples: samplesOf(t0, ms(10), 0, "..xx.."),
	}
	tests := []struct {
		name string
		tls  []Timeline
		want []svgLane
	}{
		{name: "no timelines", tls: nil, want: nil},
		{
			name: "two lanes",
			tls:  []Timeline{pullCable(), odd},
			want: []svgLane{
				{
					scenario: "pull-cable-a", variant: "vflag", replied: 206, lost: 25, faults: 1, marks: 1, moves: 2,
					texts: []string{
						"pull-cable-a/vflag", "25/231 lost, gap 260.0 ms", "link down ToR-A", "bond switched",
						"tora pa→∅", "tora ∅→pb",
					},
				},
				{
					scenario: `a<b & "c"`, variant: "x>y", replied: 4, lost: 2, faults: 1,
					texts: []string{`a<b & "c"/x>y`, "2/6 lost, gap 30.0 ms", "<cut>"},
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			if err := WriteSVG(&buf, tt.tls); err != nil {
				t.Fatalf("WriteSVG: %v", err)
			}
			got := parseSVG(t, buf.Bytes())
			if len(got) != len(tt.want) {
				t.Fatalf("%d lanes, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if !reflect.DeepEqual(got[i], tt.want[i]) {
					t.Errorf("lane %d =\n%+v\nwant\n%+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestSVGTicks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		lo, hi float64
		want   []float64
	}{
		{-1505, 795, []float64{-1400, -1200, -1000, -800, -600, -400, -200, 0, 200, 400, 600}},
		{-15, 20, []float64{-15, -10, -5, 0, 5, 10, 15, 20}},
		{0, 250, []float64{0, 50, 100, 150, 200, 250}},
	}
	for _, tt := range tests {
		got := svgTicks(tt.lo, tt.hi)
		if len(got) != len(tt.want) {
			t.Errorf("svgTicks(%g, %g) = %v, want %v", tt.lo, tt.hi, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("svgTicks(%g, %g) = %v, want %v", tt.lo, tt.hi, got, tt.want)
				break
			}
		}
	}
}
