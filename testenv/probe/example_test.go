package probe_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/vflag/vflag/testenv/probe"
)

// A scenario pings the VM from the client namespace while the fabric's
// FDBs are watched, injects the fault midway and writes the results.
func ExamplePinger_Run() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()

	vmMAC, _ := net.ParseMAC("52:54:00:00:00:01")
	rec, err := probe.FDBWatcher{Netns: "/var/run/netns/fabric", MACs: []net.HardwareAddr{vmMAC}}.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	tl := probe.Timeline{Scenario: "pull-cable-a", Variant: "vflag", Interval: 10 * time.Millisecond}
	fault := make(chan probe.Mark, 1)
	go func() {
		time.Sleep(time.Second)
		fault <- probe.Mark{Time: time.Now(), Label: "link down ToR-A"}
		// ... set the link down here ...
	}()
	p := &probe.Pinger{
		Netns:    "/var/run/netns/client",
		Target:   netip.MustParseAddr("198.18.0.10"),
		Interval: tl.Interval,
	}
	tl.Samples, err = p.Run(ctx)
	if err != nil {
		log.Fatal(err)
	}
	f := <-fault
	tl.Fault, tl.FaultLabel = f.Time, f.Label
	if err := rec.Stop(); err != nil {
		log.Print(err) // events may be missing
	}
	tl.FDB = rec.Events()
	if err := probe.WriteJSON(os.Stdout, tl); err != nil {
		log.Fatal(err)
	}
}

// Watch where ToR-A and ToR-B forward the VM's MAC.
func ExampleFDBWatcher_Start() {
	vmMAC, _ := net.ParseMAC("52:54:00:00:00:01")
	w := probe.FDBWatcher{Netns: "/var/run/netns/fabric", MACs: []net.HardwareAddr{vmMAC}}
	rec, err := w.Start(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	time.Sleep(time.Second)
	if err := rec.Stop(); err != nil {
		log.Print(err)
	}
	for _, ev := range rec.Events() {
		fmt.Println(ev.Bridge, ev.Port, ev.MAC, ev.Deleted)
	}
}

// cannedTimeline is a 60 ms outage 20 ms after the fault.
func cannedTimeline() probe.Timeline {
	start := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	fault := start.Add(1200 * time.Millisecond)
	tl := probe.Timeline{
		Scenario: "pull-cable-a", Variant: "vflag", Interval: 10 * time.Millisecond,
		Fault: fault, FaultLabel: "link down ToR-A",
		FDB: []probe.FDBEvent{
			{Time: start, Bridge: "tora", Port: "p1", MAC: "52:54:00:00:00:01"},
			{Time: fault.Add(35 * time.Millisecond), Bridge: "tora", Port: "p2", MAC: "52:54:00:00:00:01"},
		},
	}
	for i := range 150 {
		sent := start.Add(time.Duration(i) * 10 * time.Millisecond)
		rel := sent.Sub(fault)
		lost := rel > 20*time.Millisecond && rel <= 80*time.Millisecond
		tl.Samples = append(tl.Samples, probe.Sample{Seq: i, Sent: sent, Replied: !lost})
	}
	return tl
}

func ExampleTimeline_Summarize() {
	s := cannedTimeline().Summarize()
	fmt.Printf("%d sent, %d lost, gap %.1f ms, recovered %t after %.1f ms\n", s.Sent, s.Lost, s.GapMs, s.Recovered, s.RecoveryMs)
	for _, m := range s.FDBMoves {
		fmt.Printf("%s %s: %s -> %s at %.1f ms\n", m.Bridge, m.MAC, m.From, m.To, m.AtMs)
	}
	// Output:
	// 150 sent, 6 lost, gap 70.0 ms, recovered true after 90.0 ms
	// tora 52:54:00:00:00:01: p1 -> p2 at 35.0 ms
}

func ExampleWriteText() {
	if err := probe.WriteText(os.Stdout, []probe.Timeline{cannedTimeline()}); err != nil {
		log.Fatal(err)
	}
	// Output:
	// strip: one character per 100 ms from 1 s before the fault: '.' replied, 'x' lost, ':' some lost, ' ' no probe, '|' the fault
	//
	// pull-cable-a/vflag: fault "link down ToR-A" at 10:00:01.200
	//   probes:    150 sent every 10ms, 6 lost (6 after the fault)
	//   gap:       70.0 ms without a reply
	//   recovered: yes, 90.0 ms after the fault (first answered probe after the outage)
	//   fdb:       tora 52:54:00:00:00:01: p1 -> p2 at +35.0 ms
	//   strip:     ..........|:..
	//              -1s       0
}

func ExampleWriteSVG() {
	f, err := os.CreateTemp("", "timeline-*.svg")
	if err != nil {
		log.Fatal(err)
	}
	defer os.Remove(f.Name())
	if err := probe.WriteSVG(f, []probe.Timeline{cannedTimeline()}); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("written")
	// Output: written
}
