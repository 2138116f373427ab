package probe

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// fakeTarget is the address the fake echo responder answers for.
var fakeTarget = netip.MustParseAddr("198.18.0.2")

// fakeReply is one packet the fake responder delivers for a request.
type fakeReply struct {
	msg   icmp.Message
	from  netip.Addr
	delay time.Duration
}

// fakeEcho is an in-memory net.PacketConn that answers echo requests as a
// policy says. It cancels the run after a given number of requests, so
// that the number of probes does not depend on timing.
type fakeEcho struct {
	// policy returns the packets to deliver for the request with the
	// given probe counter (taken from the payload).
	policy func(counter uint64, req *icmp.Echo) []fakeReply
	// writeErr, if set, fails the sending of some requests.
	writeErr func(counter uint64) error
	// stopAfter is the number of requests after which cancel is called.
	stopAfter int
	cancel    context.CancelFunc

	in        chan []byte
	closed    chan struct{}
	closeOnce sync.Once
	// mu guards writes.
	mu     sync.Mutex
	writes int
}

func newFakeEcho(stopAfter int, cancel context.CancelFunc, policy func(uint64, *icmp.Echo) []fakeReply) *fakeEcho {
	return &fakeEcho{
		policy:    policy,
		stopAfter: stopAfter,
		cancel:    cancel,
		in:        make(chan []byte, 1024),
		closed:    make(chan struct{}),
	}
}

// deliver queues a reply for ReadFrom, prefixed with its source address.
func (f *fakeEcho) deliver(r fakeReply) {
	b, err := r.msg.Marshal(nil)
	if err != nil {
		panic(err)
	}
	from := r.from.As4()
	pkt := append(from[:], b...)
	if r.delay == 0 {
		f.in <- pkt
		return
	}
	time.AfterFunc(r.delay, func() {
		select {
		case f.in <- pkt:
		case <-f.closed:
		}
	})
}

func (f *fakeEcho) WriteTo(b []byte, _ net.Addr) (int, error) {
	msg, err := icmp.ParseMessage(ipv4.ICMPTypeEcho.Protocol(), b)
	if err != nil {
		return 0, err
	}
	req := msg.Body.(*icmp.Echo)
	counter := binary.BigEndian.Uint64(req.Data[tokenLen:])
	defer func() {
		f.mu.Lock()
		f.writes++
		n := f.writes
		f.mu.Unlock()
		if n == f.stopAfter {
			f.cancel()
		}
	}()
	if f.writeErr != nil {
		if err := f.writeErr(counter); err != nil {
			return 0, err
		}
	}
	for _, r := range f.policy(counter, req) {
		f.deliver(r)
	}
	return len(b), nil
}

func (f *fakeEcho) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case pkt := <-f.in:
		from := netip.AddrFrom4([4]byte(pkt[:4]))
		return copy(b, pkt[4:]), &net.IPAddr{IP: from.AsSlice()}, nil
	case <-f.closed:
		return 0, nil, net.ErrClosed
	}
}

func (f *fakeEcho) Close() error {
	f.closeOnce.Do(func() { close(f.closed) })
	return nil
}

func (f *fakeEcho) LocalAddr() net.Addr              { return &net.IPAddr{} }
func (f *fakeEcho) SetDeadline(time.Time) error      { return nil }
func (f *fakeEcho) SetReadDeadline(time.Time) error  { return nil }
func (f *fakeEcho) SetWriteDeadline(time.Time) error { return nil }

// writesDone returns how many requests were written.
func (f *fakeEcho) writesDone() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes
}

// echoReply is the correct reply to req.
func echoReply(req *icmp.Echo) fakeReply { return fakeReplyOf(req.ID, req.Seq, req.Data) }

// fakeReplyOf is an echo reply from the target with the given fields.
func fakeReplyOf(id, seq int, data []byte) fakeReply {
	return fakeReply{
		msg:  icmp.Message{Type: ipv4.ICMPTypeEchoReply, Body: &icmp.Echo{ID: id, Seq: seq, Data: data}},
		from: fakeTarget,
	}
}

var _ net.PacketConn = (*fakeEcho)(nil)

func TestPingerRun(t *testing.T) {
	t.Parallel()
	answer := func(_ uint64, req *icmp.Echo) []fakeReply { return []fakeReply{echoReply(req)} }
	dropping := func(drop ...uint64) func(uint64, *icmp.Echo) []fakeReply {
		return func(c uint64, req *icmp.Echo) []fakeReply {
			if slices.Contains(drop, c) {
				return nil
			}
			return []fakeReply{echoReply(req)}
		}
	}
	tests := []struct {
		name      string
		seqBase   uint64
		probes    int
		timeout   time.Duration
		policy    func(uint64, *icmp.Echo) []fakeReply
		writeErr  func(uint64) error
		wantSeq   []int
		wantReply []bool
		wantErr   string
	}{
		{
			name: "all answered", probes: 5, policy: answer,
			wantSeq: []int{0, 1, 2, 3, 4}, wantReply: []bool{true, true, true, true, true},
		},
		{
			name: "some dropped", probes: 5, policy: dropping(1, 3),
			wantSeq: []int{0, 1, 2, 3, 4}, wantReply: []bool{true, false, true, false, true},
		},
		{
			name: "sequence number wraps", seqBase: 65533, probes: 6, policy: dropping(65536),
			wantSeq:   []int{65533, 65534, 65535, 65536, 65537, 65538},
			wantReply: []bool{true, true, true, false, true, true},
		},
		{
			name: "answered out of order", probes: 4,
			policy: func() func(uint64, *icmp.Echo) []fakeReply {
				var prev *icmp.Echo // answered with the next request
				return func(_ uint64, req *icmp.Echo) []fakeReply {
					defer func() { prev = req }()
					if prev == nil {
						return nil
					}
					return []fakeReply{echoReply(prev)}
				}
			}(),
			wantSeq: []int{0, 1, 2, 3}, wantReply: []bool{true, true, true, false},
		},
		{
			name: "duplicates count once", probes: 3,
			policy:  func(_ uint64, req *icmp.Echo) []fakeReply { return []fakeReply{echoReply(req), echoReply(req)} },
			wantSeq: []int{0, 1, 2}, wantReply: []bool{true, true, true},
		},
		{
			name: "foreign packets ignored", probes: 3,
			policy: func(_ uint64, req *icmp.Echo) []fakeReply {
				otherToken := slices.Clone(req.Data)
				otherToken[0] ^= 0xff
				otherSource := echoReply(req)
				otherSource.from = netip.MustParseAddr("198.18.0.3")
				request := echoReply(req)
				request.msg.Type = ipv4.ICMPTypeEcho
				return []fakeReply{
					fakeReplyOf(req.ID^1, req.Seq, req.Data), // other ID
					fakeReplyOf(req.ID, req.Seq, otherToken), // other run
					fakeReplyOf(req.ID, req.Seq, req.Data[:4]),
					fakeReplyOf(req.ID, req.Seq+7, req.Data), // not sent yet
					otherSource,
					request,
				}
			},
			wantSeq: []int{0, 1, 2}, wantReply: []bool{false, false, false},
		},
		{
			name: "late replies are lost", probes: 3, timeout: 5 * time.Millisecond,
			policy: func(_ uint64, req *icmp.Echo) []fakeReply {
				r := echoReply(req)
				r.delay = 50 * time.Millisecond
				return []fakeReply{r}
			},
			wantSeq: []int{0, 1, 2}, wantReply: []bool{false, false, false},
		},
		{
			name: "failed sends are lost", probes: 4, policy: answer,
			writeErr: func(c uint64) error {
				if c == 1 || c == 2 {
					return syscall.ENETUNREACH
				}
				return nil
			},
			wantSeq: []int{0, 1, 2, 3}, wantReply: []bool{true, false, false, true},
		},
		{
			name: "nothing could be sent", probes: 2, policy: answer,
			writeErr: func(uint64) error { return syscall.ENETUNREACH },
			wantSeq:  []int{0, 1}, wantReply: []bool{false, false},
			wantErr: "ping 198.18.0.2 from the current network namespace: no echo request could be sent: send echo request 0: network is unreachable",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			fake := newFakeEcho(tt.probes, cancel, tt.policy)
			fake.writeErr = tt.writeErr
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 300 * time.Millisecond // dropped probes are waited for this long
			}
			p := &Pinger{
				Target:   fakeTarget,
				Interval: time.Millisecond,
				ID:       4242,
				Timeout:  timeout,
				listen:   func() (net.PacketConn, error) { return fake, nil },
				seqBase:  tt.seqBase,
			}
			samples, err := p.Run(ctx)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Run: %v", err)
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
				t.Fatalf("Run error = %v, want %q", err, tt.wantErr)
			}
			var seqs []int
			var replied []bool
			for i, s := range samples {
				seqs = append(seqs, s.Seq)
				replied = append(replied, s.Replied)
				if !s.Replied && s.RTT != 0 {
					t.Errorf("lost sample %d has RTT %s", s.Seq, s.RTT)
				}
				if i > 0 && s.Sent.Before(samples[i-1].Sent) {
					t.Errorf("sample %d sent before sample %d", s.Seq, samples[i-1].Seq)
				}
			}
			if !slices.Equal(seqs, tt.wantSeq) {
				t.Errorf("Seq = %v, want %v", seqs, tt.wantSeq)
			}
			if !slices.Equal(replied, tt.wantReply) {
				t.Errorf("Replied = %v, want %v", replied, tt.wantReply)
			}
			if got := fake.writesDone(); got != tt.probes {
				t.Errorf("%d requests written, want %d", got, tt.probes)
			}
		})
	}
}

func TestPingerRunRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		p       Pinger
		wantErr string
	}{
		{
			name:    "IPv6 target",
			p:       Pinger{Target: netip.MustParseAddr("2001:db8::1"), Interval: time.Millisecond},
			wantErr: "ping 2001:db8::1: target is not an IPv4 address",
		},
		{
			name:    "no target",
			p:       Pinger{Interval: time.Millisecond},
			wantErr: "ping invalid IP: target is not an IPv4 address",
		},
		{
			name:    "zero interval",
			p:       Pinger{Target: fakeTarget},
			wantErr: "ping 198.18.0.2: interval 0s is not positive",
		},
		{
			name:    "ID too large",
			p:       Pinger{Target: fakeTarget, Interval: time.Millisecond, ID: 70000},
			wantErr: "ping 198.18.0.2: echo ID 70000 is outside 0..65535",
		},
		{
			name: "socket fails",
			p: Pinger{Target: fakeTarget, Interval: time.Millisecond, listen: func() (net.PacketConn, error) {
				return nil, errors.New("open raw ICMP socket: operation not permitted")
			}},
			wantErr: "ping 198.18.0.2 from the current network namespace: open raw ICMP socket: operation not permitted",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tt.p.Run(t.Context())
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("Run error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestPingerRunCancelledBeforeStart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	fake := newFakeEcho(-1, cancel, func(_ uint64, req *icmp.Echo) []fakeReply { return []fakeReply{echoReply(req)} })
	p := &Pinger{Target: fakeTarget, Interval: time.Millisecond, listen: func() (net.PacketConn, error) { return fake, nil }}
	samples, err := p.Run(ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(samples) != 0 || fake.writesDone() != 0 {
		t.Errorf("Run sent %d requests (%d samples) after its context ended, want none", fake.writesDone(), len(samples))
	}
}

func TestUnwrapSeq(t *testing.T) {
	t.Parallel()
	tests := []struct {
		next   uint64
		wire   uint16
		want   uint64
		wantOK bool
	}{
		{next: 0, wire: 0, wantOK: false},
		{next: 1, wire: 0, want: 0, wantOK: true},
		{next: 3, wire: 1, want: 1, wantOK: true},
		{next: 3, wire: 5, wantOK: false}, // not sent yet
		{next: 65536, wire: 65535, want: 65535, wantOK: true},
		{next: 65537, wire: 0, want: 65536, wantOK: true},
		{next: 65537, wire: 65535, want: 65535, wantOK: true},
		{next: 65540, wire: 65534, want: 65534, wantOK: true},
		{next: 3*65536 + 10, wire: 9, want: 3*65536 + 9, wantOK: true},
		{next: 3*65536 + 10, wire: 11, want: 2*65536 + 11, wantOK: true},
	}
	for _, tt := range tests {
		got, ok := unwrapSeq(tt.next, tt.wire)
		if ok != tt.wantOK || (ok && got != tt.want) {
			t.Errorf("unwrapSeq(%d, %d) = %d, %t; want %d, %t", tt.next, tt.wire, got, ok, tt.want, tt.wantOK)
		}
	}
}
