package announce_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vflag/vflag/announce"
)

// recorder is the fake Sender and clock: it writes one line per Send and per
// pause into a transcript, and can fail or cancel at a chosen Send.
type recorder struct {
	lines []string
	sends int
	// failAt is the 1-based Send call that fails with failErr (0 = none).
	failAt  int
	failErr error
	// cancelAt cancels cancel during the given Send call, which succeeds.
	cancelAt int
	cancel   context.CancelFunc
}

func (r *recorder) Send(_ context.Context, ifname string, frames [][]byte) error {
	r.sends++
	var kinds []string
	for _, f := range frames {
		kinds = append(kinds, net.HardwareAddr(f[6:12]).String()+" "+kind(f))
	}
	r.lines = append(r.lines, fmt.Sprintf("send %s: %s", ifname, strings.Join(kinds, ", ")))
	if r.sends == r.cancelAt {
		r.cancel()
	}
	if r.sends == r.failAt {
		r.lines[len(r.lines)-1] += " -> " + r.failErr.Error()
		return r.failErr
	}
	return nil
}

func (r *recorder) Sleep(ctx context.Context, d time.Duration) error {
	r.lines = append(r.lines, "sleep "+d.String())
	return ctx.Err()
}

// kind names a frame by hand: "garp 192.0.2.10", "na 2001:db8::10", "rarp".
func kind(f []byte) string {
	off := 12
	if f[12] == 0x81 && f[13] == 0x00 {
		off = 16
	}
	p := f[off+2:]
	switch {
	case f[off] == 0x08 && f[off+1] == 0x06:
		ip, _ := netip.AddrFromSlice(p[14:18])
		return "garp " + ip.String()
	case f[off] == 0x86 && f[off+1] == 0xdd:
		ip, _ := netip.AddrFromSlice(p[48:64])
		return "na " + ip.String()
	case f[off] == 0x80 && f[off+1] == 0x35:
		return "rarp"
	}
	return fmt.Sprintf("ethertype %02x%02x", f[off], f[off+1])
}

func TestAnnouncer(t *testing.T) {
	mac1 := net.HardwareAddr{0x52, 0x54, 0x00, 0x00, 0x00, 0x01}
	mac2 := net.HardwareAddr{0x52, 0x54, 0x00, 0x00, 0x00, 0x02}
	two := []announce.Announcement{
		{MAC: mac1, Addrs: []netip.Addr{vmV4, vmV6}},
		{MAC: mac2, VLAN: 7},
	}
	bad := announce.Announcement{MAC: net.HardwareAddr{0x52, 0x54, 0x00, 0x00, 0x00, 0x03}, VLAN: 5000}
	const (
		round = "send pf0: 52:54:00:00:00:01 garp 192.0.2.10, 52:54:00:00:00:01 na 2001:db8::10, 52:54:00:00:00:02 rarp"
		only1 = "send pf0: 52:54:00:00:00:01 garp 192.0.2.10, 52:54:00:00:00:01 na 2001:db8::10"
	)
	tests := []struct {
		name      string
		an        announce.Announcer // Sender and Sleep are set to the recorder
		anns      []announce.Announcement
		failAt    int
		failErr   error
		cancelAt  int
		preCancel bool

		want     []string
		wantSent int
		wantErr  string // "" = no error; else substring
		wantIs   error
	}{
		{
			name:     "defaults: three rounds 100ms apart, first at once",
			anns:     two,
			want:     []string{round, "sleep 100ms", round, "sleep 100ms", round},
			wantSent: 9,
		},
		{
			name:     "count and interval",
			an:       announce.Announcer{Count: 2, Interval: 20 * time.Millisecond},
			anns:     two,
			want:     []string{round, "sleep 20ms", round},
			wantSent: 6,
		},
		{
			name:     "one round, no pause",
			an:       announce.Announcer{Count: 1},
			anns:     two[:1],
			want:     []string{only1},
			wantSent: 2,
		},
		{
			name:     "nothing to announce",
			anns:     nil,
			wantSent: 0,
		},
		{
			name:    "invalid announcement: nothing sent",
			anns:    []announce.Announcement{two[0], bad, two[1]},
			wantErr: "announce on pf0: announcement 1: announcement for 52:54:00:00:00:03: vlan 5000 out of range",
			wantIs:  announce.ErrInvalid,
		},
		{
			name:    "partial send failure names the first MAC not sent",
			an:      announce.Announcer{Count: 3},
			anns:    two,
			failAt:  2, // round 2: mac1's two frames went out, mac2's RARP did not
			failErr: &announce.SendError{Ifname: "pf0", Sent: 2, Err: errors.New("no buffer space available")},
			want: []string{
				round, "sleep 100ms",
				round + " -> send frame 2 on pf0: no buffer space available",
			},
			wantSent: 3 + 2,
			wantErr:  "announce 52:54:00:00:00:02 on pf0 (vlan 7, round 2 of 3): send frame 2 on pf0: no buffer space available",
		},
		{
			name:    "failure without a count counts nothing of the round",
			an:      announce.Announcer{Count: 1},
			anns:    two,
			failAt:  1,
			failErr: errors.New("link down"),
			want: []string{
				round + " -> link down",
			},
			wantSent: 0,
			wantErr:  "announce 52:54:00:00:00:01 on pf0 (vlan 0, round 1 of 1): link down",
		},
		{
			name:    "out-of-range count in a SendError",
			an:      announce.Announcer{Count: 1},
			anns:    two,
			failAt:  1,
			failErr: &announce.SendError{Ifname: "pf0", Sent: 99, Err: errors.New("bogus")},
			want: []string{
				round + " -> send frame 99 on pf0: bogus",
			},
			wantSent: 2,
			wantErr:  "announce 52:54:00:00:00:02 on pf0",
		},
		{
			name:     "cancel stops between rounds",
			anns:     two,
			cancelAt: 1,
			want:     []string{round, "sleep 100ms"},
			wantSent: 3,
			wantErr:  "announce on pf0: stopped before round 2 of 3: context canceled",
			wantIs:   context.Canceled,
		},
		{
			name:      "cancelled before the first round",
			anns:      two,
			preCancel: true,
			wantErr:   "announce on pf0: context canceled",
			wantIs:    context.Canceled,
		},
		{
			name:    "negative count",
			an:      announce.Announcer{Count: -1},
			anns:    two,
			wantErr: "negative round count",
		},
		{
			name:    "negative interval",
			an:      announce.Announcer{Interval: -time.Second},
			anns:    two,
			wantErr: "negative interval",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tt.preCancel {
				cancel()
			}
			rec := &recorder{failAt: tt.failAt, failErr: tt.failErr, cancelAt: tt.cancelAt, cancel: cancel}
			an := tt.an
			an.Sender, an.Sleep = rec, rec.Sleep

			sent, err := an.Announce(ctx, "pf0", tt.anns)

			if got, want := strings.Join(rec.lines, "\n"), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
			}
			if sent != tt.wantSent {
				t.Errorf("sent = %d, want %d", sent, tt.wantSent)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("err = %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("err = %v, want it to contain %q", err, tt.wantErr)
			case tt.wantIs != nil && !errors.Is(err, tt.wantIs):
				t.Errorf("err = %v, want errors.Is %v", err, tt.wantIs)
			}
		})
	}
}

func TestAnnouncerNeedsSender(t *testing.T) {
	var an announce.Announcer
	if _, err := an.Announce(t.Context(), "pf0", nil); err == nil || !strings.Contains(err.Error(), "no Sender") {
		t.Errorf("err = %v, want a missing-Sender error", err)
	}
}

// TestAnnouncerRealClock checks the default Sleep once: rounds still happen
// in order with a real (short) timer. It asserts order, not timing.
func TestAnnouncerRealClock(t *testing.T) {
	rec := &recorder{}
	an := announce.Announcer{Sender: rec, Count: 2, Interval: time.Millisecond}
	sent, err := an.Announce(t.Context(), "pf0", []announce.Announcement{{MAC: vmMAC}})
	if err != nil || sent != 2 {
		t.Fatalf("Announce = %d, %v; want 2, nil", sent, err)
	}
	want := "send pf0: 52:54:00:12:34:56 rarp\nsend pf0: 52:54:00:12:34:56 rarp"
	if got := strings.Join(rec.lines, "\n"); got != want {
		t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
	}
}
