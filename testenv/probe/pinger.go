package probe

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/vflag/vflag/internal/nsrun"
)

// DefaultTimeout is how long a probe waits for its reply when
// Pinger.Timeout is zero: a reply that comes back later counts as lost, as
// with ping(8) -W 1.
const DefaultTimeout = time.Second

// tokenLen is the size of the per-run token that starts every echo payload;
// it tells this run's replies from those of other pingers that share the
// raw socket's view of ICMP (and possibly the ID).
const tokenLen = 8

// Pinger sends ICMPv4 echo requests at a fixed interval and records which
// ones were answered. It needs CAP_NET_RAW (a raw "ip4:icmp" socket).
type Pinger struct {
	// Netns is the path of the network namespace to ping from (for example
	// /var/run/netns/client); "" pings from the caller's namespace.
	Netns string
	// Target is the IPv4 address to ping.
	Target netip.Addr
	// Interval is the time between two echo requests (10 ms in the testbed).
	Interval time.Duration
	// ID is the ICMP echo identifier (0..65535); 0 picks a random one.
	ID int
	// Timeout is how long after its sending a reply still counts; later
	// replies, and probes still unanswered this long after Run's context
	// ends, are lost. 0 means DefaultTimeout.
	Timeout time.Duration

	// listen opens the socket; nil opens a raw ICMP socket in Netns. Tests
	// replace it with an in-memory echo responder.
	listen func() (net.PacketConn, error)
	// seqBase is the counter of the first probe; tests start near 65535 to
	// cross the wrap of the 16-bit wire sequence number.
	seqBase uint64
}

// Sample is the outcome of one echo request.
type Sample struct {
	// Seq numbers the probe within the run (0, 1, 2, ...); it does not wrap.
	// The sequence number on the wire is Seq mod 65536.
	Seq int
	// Sent is when the request was handed to the socket.
	Sent time.Time
	// Replied reports whether the reply came back within the timeout.
	Replied bool
	// RTT is the round-trip time of a replied probe, 0 otherwise.
	RTT time.Duration
}

// pingRun is the state shared by the sender and the reader of one Run.
type pingRun struct {
	id      int
	token   [tokenLen]byte
	target  netip.Addr
	timeout time.Duration
	base    uint64
	// settled is signalled (without blocking) when a reply leaves no probe
	// pending.
	settled chan struct{}

	// mu guards samples, replyAt, sendErr and pending.
	mu      sync.Mutex
	samples []Sample
	// replyAt holds, per probe, when its reply was read (zero: none yet).
	replyAt []time.Time
	// sendErr holds, per probe, the error of its send (nil: sent).
	sendErr []error
	// pending counts sent probes without a reply.
	pending int
}

// Run pings until ctx is done, waits up to the timeout for the replies still
// in flight and returns one Sample per request sent, in order. Requests
// whose send failed (for example "network is unreachable" while a link is
// down) are lost samples, not errors; Run fails only if the socket cannot be
// used at all.
func (p *Pinger) Run(ctx context.Context) ([]Sample, error) {
	target := p.Target.Unmap()
	if !target.Is4() {
		return nil, fmt.Errorf("ping %s: target is not an IPv4 address", p.Target)
	}
	if p.Interval <= 0 {
		return nil, fmt.Errorf("ping %s: interval %s is not positive", target, p.Interval)
	}
	if p.ID < 0 || p.ID > 0xffff {
		return nil, fmt.Errorf("ping %s: echo ID %d is outside 0..65535", target, p.ID)
	}
	r := &pingRun{
		id:      p.ID,
		target:  target,
		timeout: p.Timeout,
		base:    p.seqBase,
		settled: make(chan struct{}, 1),
	}
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	if _, err := rand.Read(r.token[:]); err != nil {
		return nil, fmt.Errorf("ping %s: make run token: %w", target, err)
	}
	if r.id == 0 {
		r.id = 1 + int(binary.BigEndian.Uint16(r.token[:2]))%0xffff
	}

	conn, err := p.open()
	if err != nil {
		return nil, fmt.Errorf("ping %s from %s: %w", target, nsLabel(p.Netns), err)
	}
	readErr := make(chan error, 1)
	go func() { readErr <- r.read(conn) }()

	sendErr := r.sendLoop(ctx, conn, p.Interval)
	waitErr := r.drain(readErr)
	closeErr := conn.Close()
	if waitErr == nil {
		waitErr = <-readErr
	}
	switch {
	case sendErr != nil:
		return r.result(), fmt.Errorf("ping %s from %s: %w", target, nsLabel(p.Netns), sendErr)
	case waitErr != nil:
		return r.result(), fmt.Errorf("read echo replies from %s in %s: %w", target, nsLabel(p.Netns), waitErr)
	case closeErr != nil:
		return r.result(), fmt.Errorf("close ICMP socket in %s: %w", nsLabel(p.Netns), closeErr)
	}
	return r.result(), nil
}

// open opens the socket the probes use.
func (p *Pinger) open() (net.PacketConn, error) {
	if p.listen != nil {
		return p.listen()
	}
	var c *icmp.PacketConn
	listen := func() error {
		var err error
		c, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		if err != nil {
			return fmt.Errorf("open raw ICMP socket: %w", err)
		}
		return nil
	}
	var err error
	if p.Netns == "" {
		err = listen()
	} else {
		err = nsrun.Do(p.Netns, listen)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// sendLoop sends one request at once and one per tick until ctx is done.
// The ticker keeps the schedule: a slow send delays one probe, not all the
// following ones. It returns an error only if no request could be sent at
// all.
func (r *pingRun) sendLoop(ctx context.Context, conn net.PacketConn, interval time.Duration) error {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	dst := &net.IPAddr{IP: r.target.AsSlice()}
	var firstErr error
	sent := 0
	// ctx is checked before each send: when both ctx and the ticker are
	// ready, select picks either.
	for ctx.Err() == nil {
		err := r.send(conn, dst)
		switch {
		case err == nil:
			sent++
		case errors.Is(err, net.ErrClosed):
			return err
		case firstErr == nil:
			firstErr = err
		}
		select {
		case <-ctx.Done():
		case <-ticker.C:
		}
	}
	if sent == 0 && firstErr != nil {
		return fmt.Errorf("no echo request could be sent: %w", firstErr)
	}
	return nil
}

// send sends the next request and records its sample.
func (r *pingRun) send(conn net.PacketConn, dst net.Addr) error {
	r.mu.Lock()
	counter := r.base + uint64(len(r.samples))
	r.mu.Unlock()

	data := make([]byte, tokenLen+8)
	copy(data, r.token[:])
	binary.BigEndian.PutUint64(data[tokenLen:], counter)
	msg := icmp.Message{
		Type: ipv4.ICMPTypeEcho,
		Body: &icmp.Echo{ID: r.id, Seq: int(uint16(counter)), Data: data},
	}
	b, err := msg.Marshal(nil)
	if err != nil {
		return fmt.Errorf("marshal echo request %d: %w", counter, err)
	}

	// The sample exists before the request leaves, so that even an
	// immediate reply finds it.
	r.mu.Lock()
	r.samples = append(r.samples, Sample{Seq: int(counter), Sent: time.Now()})
	r.replyAt = append(r.replyAt, time.Time{})
	r.sendErr = append(r.sendErr, nil)
	r.pending++
	i := len(r.samples) - 1
	r.mu.Unlock()

	_, err = conn.WriteTo(b, dst)
	if err != nil {
		r.mu.Lock()
		r.sendErr[i] = err
		r.pending--
		r.mu.Unlock()
		return fmt.Errorf("send echo request %d: %w", counter, err)
	}
	return nil
}

// read matches echo replies to probes until the socket is closed.
func (r *pingRun) read(conn net.PacketConn) error {
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFrom(buf)
		now := time.Now()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		r.handle(buf[:n], from, now)
	}
}

// handle records one received ICMP message if it is a reply to this run.
func (r *pingRun) handle(b []byte, from net.Addr, at time.Time) {
	ipa, ok := from.(*net.IPAddr)
	if !ok {
		return
	}
	src, ok := netip.AddrFromSlice(ipa.IP)
	if !ok || src.Unmap() != r.target {
		return
	}
	msg, err := icmp.ParseMessage(ipv4.ICMPTypeEchoReply.Protocol(), b)
	if err != nil || msg.Type != ipv4.ICMPTypeEchoReply {
		return
	}
	echo, ok := msg.Body.(*icmp.Echo)
	if !ok || echo.ID != r.id || len(echo.Data) < tokenLen || !bytes.Equal(echo.Data[:tokenLen], r.token[:]) {
		return
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	counter, ok := unwrapSeq(r.base+uint64(len(r.samples)), uint16(echo.Seq))
	if !ok || counter < r.base {
		return
	}
	i := int(counter - r.base)
	if !r.replyAt[i].IsZero() || r.sendErr[i] != nil {
		return // duplicate
	}
	r.replyAt[i] = at
	r.pending--
	if r.pending == 0 {
		select {
		case r.settled <- struct{}{}:
		default:
		}
	}
}

// drain waits until every sent probe has its reply or the last one has
// timed out, or the reader failed (its error is returned).
func (r *pingRun) drain(readErr <-chan error) error {
	r.mu.Lock()
	var deadline time.Time
	if n := len(r.samples); n > 0 {
		deadline = r.samples[n-1].Sent.Add(r.timeout)
	}
	r.mu.Unlock()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		r.mu.Lock()
		pending := r.pending
		r.mu.Unlock()
		if pending == 0 {
			return nil
		}
		select {
		case <-r.settled:
		case <-timer.C:
			return nil
		case err := <-readErr:
			if err == nil {
				err = errors.New("reader ended early")
			}
			return err
		}
	}
}

// result returns the samples, with replies later than the timeout counted
// as lost.
func (r *pingRun) result() []Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Sample, len(r.samples))
	for i, s := range r.samples {
		if at := r.replyAt[i]; !at.IsZero() {
			if rtt := at.Sub(s.Sent); rtt <= r.timeout {
				s.Replied, s.RTT = true, rtt
			}
		}
		out[i] = s
	}
	return out
}

// unwrapSeq maps a 16-bit wire sequence number back to the 64-bit probe
// counter: the latest counter below next whose low 16 bits are wire. It
// fails if no probe with that sequence number was sent yet.
func unwrapSeq(next uint64, wire uint16) (uint64, bool) {
	if next == 0 {
		return 0, false
	}
	last := next - 1
	back := uint64(uint16(last) - wire)
	if back > last {
		return 0, false
	}
	return last - back, true
}

// nsLabel names a namespace path in messages.
func nsLabel(path string) string {
	if path == "" {
		return "the current network namespace"
	}
	return "network namespace " + path
}
