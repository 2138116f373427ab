package announce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Defaults of an Announcer, after Linux bonding's notification settings
// (Documentation/networking/bonding.rst).
const (
	// DefaultCount is the number of rounds, like num_grat_arp/num_unsol_na
	// (whose kernel default is 1; three rounds ride out a switch port that
	// is still coming up or a frame lost to a busy queue).
	DefaultCount = 3
	// DefaultInterval is the pause between rounds, like peer_notif_delay.
	DefaultInterval = 100 * time.Millisecond
)

// Announcer sends the frames of many Announcements on one interface in
// rounds: every round is one Send of the Frames of all Announcements, in
// order; the first round goes at once and each next one Interval after the
// previous one ended. The zero value with a Sender uses the defaults.
type Announcer struct {
	// Sender transmits the frames; usually a *PacketSender.
	Sender Sender
	// Count is the number of rounds; 0 means DefaultCount.
	Count int
	// Interval is the pause between rounds; 0 means DefaultInterval.
	Interval time.Duration
	// Log receives one debug record per round; nil discards.
	Log *slog.Logger
	// Sleep waits for d or until ctx is done, returning ctx.Err() in the
	// latter case; nil uses a timer. Tests inject a fake clock here.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Announce validates all of anns, then sends their frames on ifname in
// Count rounds, and returns how many frames were sent. Nothing is sent if
// any Announcement is invalid; the error then wraps ErrInvalid and names
// the MAC. Cancelling ctx stops Announce before the next round (and the
// Sender as soon as it can). A failed Send ends Announce with the number of
// frames sent so far and an error naming ifname and the MAC of the first
// frame that did not go out; a Send error that does not wrap a *SendError
// counts as no frame of that round sent.
func (an *Announcer) Announce(ctx context.Context, ifname string, anns []Announcement) (sent int, err error) {
	count, interval := an.Count, an.Interval
	switch {
	case an.Sender == nil:
		return 0, fmt.Errorf("announce on %s: announcer has no Sender", ifname)
	case count < 0:
		return 0, fmt.Errorf("announce on %s: negative round count %d", ifname, count)
	case interval < 0:
		return 0, fmt.Errorf("announce on %s: negative interval %s", ifname, interval)
	case count == 0:
		count = DefaultCount
	}
	if interval == 0 {
		interval = DefaultInterval
	}
	sleep := an.Sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	log := an.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	// One round is every frame of every announcement; owner[i] is the
	// index in anns of the announcement frame i belongs to.
	var frames [][]byte
	var owner []int
	for i, a := range anns {
		f, err := Frames(a)
		if err != nil {
			return 0, fmt.Errorf("announce on %s: announcement %d: %w", ifname, i, err)
		}
		frames = append(frames, f...)
		for range f {
			owner = append(owner, i)
		}
	}
	if len(frames) == 0 {
		return 0, nil
	}

	log = log.With("pf", ifname)
	for round := 1; round <= count; round++ {
		if round > 1 {
			if err := sleep(ctx, interval); err != nil {
				return sent, fmt.Errorf("announce on %s: stopped before round %d of %d: %w", ifname, round, count, err)
			}
		} else if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("announce on %s: %w", ifname, err)
		}
		if err := an.Sender.Send(ctx, ifname, frames); err != nil {
			ok := 0
			if se, isSE := errors.AsType[*SendError](err); isSE {
				ok = min(max(se.Sent, 0), len(frames)-1)
			}
			sent += ok
			a := anns[owner[ok]]
			return sent, fmt.Errorf("announce %s on %s (vlan %d, round %d of %d): %w",
				a.MAC, ifname, a.VLAN, round, count, err)
		}
		sent += len(frames)
		log.Debug("announce round sent", "round", round, "rounds", count, "macs", len(anns), "frames", len(frames))
	}
	return sent, nil
}

// sleepCtx waits for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
