package probe

import (
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
)

// Geometry of the timeline picture, in SVG user units (px).
const (
	svgWidth   = 1200.0
	svgLabelW  = 260.0 // left column with the lane labels
	svgRight   = 20.0  // right margin
	svgTop     = 46.0  // title and axis labels
	svgLaneH   = 76.0  // one lane
	svgBottom  = 34.0  // legend
	svgTickTop = 14.0  // probe ticks start this far below a lane's top
	svgTickH   = 26.0  // and are this long
	svgMaxTick = 12    // at most this many axis ticks
)

// Colours of the picture.
const (
	svgReplied = "#2ca02c"
	svgLost    = "#d62728"
	svgFault   = "#222222"
	svgMark    = "#1f77b4"
	svgMove    = "#ff7f0e"
	svgGrid    = "#dddddd"
)

// WriteSVG writes the timeline picture to w: one horizontal lane per
// timeline, labelled scenario/variant, on a common time axis in ms relative
// to each timeline's fault. Replied probes are thin green ticks, lost ones
// red, the fault a vertical line with its label; marks (blue triangles) and
// FDB moves (orange diamonds) are small labelled markers. Each lane is an
// SVG group of class "lane".
func WriteSVG(w io.Writer, tls []Timeline) error {
	lo, hi := svgDomain(tls)
	plotL, plotR := svgLabelW, svgWidth-svgRight
	x := func(ms float64) float64 { return plotL + (ms-lo)/(hi-lo)*(plotR-plotL) }
	height := svgTop + float64(len(tls))*svgLaneH + svgBottom

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="sans-serif" font-size="11">`+"\n",
		svgWidth, height, svgWidth, height)
	b.WriteString(`<title>vflag probe timeline</title>` + "\n")
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%g" height="%g" fill="#ffffff"/>`+"\n", svgWidth, height)
	fmt.Fprintf(&b, `<text x="%g" y="16" font-size="13" font-weight="bold">ICMP probes around the fault</text>`+"\n", 10.0)

	// Axis: ticks and grid lines through all lanes.
	laneBottom := svgTop + float64(len(tls))*svgLaneH
	b.WriteString(`<g class="axis">` + "\n")
	for _, t := range svgTicks(lo, hi) {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="%s"/>`+"\n",
			x(t), svgTop-6, x(t), laneBottom, svgGrid)
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" text-anchor="middle">%s</text>`+"\n",
			x(t), svgTop-10, esc(fmt.Sprintf("%g ms", t)))
	}
	b.WriteString("</g>\n")

	for i, tl := range tls {
		y0 := svgTop + float64(i)*svgLaneH
		writeSVGLane(&b, tl, y0, x, plotL, plotR)
	}

	// Legend.
	ly := laneBottom + 22
	legend := []struct{ colour, label string }{
		{svgReplied, "replied"},
		{svgLost, "lost"},
		{svgFault, "fault"},
		{svgMark, "mark"},
		{svgMove, "FDB move"},
	}
	lx := plotL
	b.WriteString(`<g class="legend">` + "\n")
	for _, l := range legend {
		fmt.Fprintf(&b, `<rect x="%g" y="%g" width="10" height="10" fill="%s"/>`, lx, ly-9, l.colour)
		fmt.Fprintf(&b, `<text x="%g" y="%g">%s</text>`+"\n", lx+14, ly, esc(l.label))
		lx += 90
	}
	b.WriteString("</g>\n</svg>\n")

	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write timeline picture of %d timelines: %w", len(tls), err)
	}
	return nil
}

// writeSVGLane draws one timeline's lane with its top at y0.
func writeSVGLane(b *strings.Builder, tl Timeline, y0 float64, x func(float64) float64, plotL, plotR float64) {
	sum := tl.Summarize()
	name := tl.name()
	fmt.Fprintf(b, `<g class="lane" data-scenario="%s" data-variant="%s">`+"\n", esc(tl.Scenario), esc(tl.Variant))
	fmt.Fprintf(b, `<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="%s"/>`+"\n",
		plotL, y0+4, plotR-plotL, svgLaneH-8, svgGrid)
	fmt.Fprintf(b, `<text x="10" y="%g" font-weight="bold">%s</text>`+"\n", y0+26, esc(name))
	detail := fmt.Sprintf("%d/%d lost, gap %.1f ms", sum.Lost, sum.Sent, sum.GapMs)
	if !tl.Fault.IsZero() && !sum.Recovered {
		detail += ", not recovered"
	}
	fmt.Fprintf(b, `<text x="10" y="%g" font-size="10" fill="#555555">%s</text>`+"\n", y0+42, esc(detail))

	// Probes: one path per outcome, a vertical tick per probe.
	var replied, lost strings.Builder
	for _, p := range tl.Samples {
		seg := fmt.Sprintf("M%.1f %gv%g", x(tl.rel(p.Sent)), y0+svgTickTop, svgTickH)
		if p.Replied {
			replied.WriteString(seg)
		} else {
			lost.WriteString(seg)
		}
	}
	if replied.Len() > 0 {
		fmt.Fprintf(b, `<path class="replied" d="%s" stroke="%s" stroke-width="0.6"/>`+"\n", replied.String(), svgReplied)
	}
	if lost.Len() > 0 {
		fmt.Fprintf(b, `<path class="lost" d="%s" stroke="%s" stroke-width="0.8"/>`+"\n", lost.String(), svgLost)
	}

	if !tl.Fault.IsZero() {
		fx := x(0)
		fmt.Fprintf(b, `<line class="fault" x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="%s" stroke-width="1.5"/>`+"\n",
			fx, y0+6, fx, y0+svgLaneH-6, svgFault)
		fmt.Fprintf(b, `<text x="%.1f" y="%g" fill="%s">%s</text>`+"\n", fx+3, y0+13, svgFault, esc(tl.FaultLabel))
	}

	// Marks below the ticks, FDB moves below them; labels alternate in
	// height so that neighbours overlap less.
	base := y0 + svgTickTop + svgTickH
	for i, m := range tl.Marks {
		mx, my := x(tl.rel(m.Time)), base+6
		fmt.Fprintf(b, `<path class="mark" d="M%.1f %gl-4 7h8z" fill="%s"><title>%s</title></path>`+"\n",
			mx, my, svgMark, esc(fmt.Sprintf("%+.1f ms %s", tl.rel(m.Time), m.Label)))
		fmt.Fprintf(b, `<text x="%.1f" y="%g" font-size="9" fill="%s">%s</text>`+"\n",
			mx+5, my+7+float64(i%2)*9, svgMark, esc(m.Label))
	}
	for i, mv := range sum.FDBMoves {
		mx, my := x(mv.AtMs), base+24
		label := fmt.Sprintf("%s %s: %s→%s", mv.Bridge, mv.MAC, portOrNone(mv.From, "∅"), portOrNone(mv.To, "∅"))
		fmt.Fprintf(b, `<path class="fdb-move" d="M%.1f %gl4 4l-4 4l-4 -4z" fill="%s"><title>%s</title></path>`+"\n",
			mx, my-4, svgMove, esc(fmt.Sprintf("%s at %+.1f ms", label, mv.AtMs)))
		fmt.Fprintf(b, `<text x="%.1f" y="%g" font-size="9" fill="%s">%s</text>`+"\n",
			mx+6, my+3-float64(i%2)*9, svgMove, esc(fmt.Sprintf("%s %s→%s", mv.Bridge, portOrNone(mv.From, "∅"), portOrNone(mv.To, "∅"))))
	}
	b.WriteString("</g>\n")
}

// svgDomain returns the time range in ms the axis covers: every probe,
// fault, mark and FDB move of every timeline.
func svgDomain(tls []Timeline) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	see := func(ms float64) { lo, hi = min(lo, ms), max(hi, ms) }
	for _, tl := range tls {
		for _, p := range tl.Samples {
			see(tl.rel(p.Sent))
		}
		if !tl.Fault.IsZero() {
			see(0)
		}
		for _, m := range tl.Marks {
			see(tl.rel(m.Time))
		}
		for _, mv := range tl.Summarize().FDBMoves {
			see(mv.AtMs)
		}
	}
	if math.IsInf(lo, 0) {
		return -1000, 1000
	}
	if hi-lo < 1 {
		lo, hi = lo-50, hi+50
	}
	return lo, hi
}

// svgTicks returns axis tick positions in [lo, hi] at a 1-2-5 step.
func svgTicks(lo, hi float64) []float64 {
	raw := (hi - lo) / svgMaxTick
	step := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, f := range []float64{1, 2, 5, 10} {
		if step*f >= raw {
			step *= f
			break
		}
	}
	var ticks []float64
	for t := math.Ceil(lo/step) * step; t <= hi+step/1e6; t += step {
		v := math.Round(t*1e6) / 1e6
		if v == 0 {
			v = 0 // not -0
		}
		ticks = append(ticks, v)
	}
	return ticks
}

// esc escapes text for SVG content and attribute values.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder does not fail
	return b.String()
}
