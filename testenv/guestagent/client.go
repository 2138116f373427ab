package guestagent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// ErrTimeout reports that the agent killed a command because it ran past its
// timeout. Errors returned by Client.Exec match it with errors.Is.
var ErrTimeout = errors.New("command timed out")

// pingAttemptTimeout bounds one dial-and-ping attempt of WaitReady. A guest
// whose agent is not up yet never answers, so attempts must give up quickly.
const pingAttemptTimeout = time.Second

// Result is the outcome of a command run in the guest.
type Result struct {
	// ExitCode is the command's exit code; 128+N if signal N killed it.
	ExitCode int
	// Stdout is the command's standard output, at most MaxOutputBytes.
	Stdout []byte
	// Stderr is the command's standard error, at most MaxOutputBytes.
	Stderr []byte
	// Truncated is set when stdout or stderr was cut at MaxOutputBytes.
	Truncated bool
}

// RemoteError is an error reported by the agent in Response.Error: the
// command timed out or could not be run.
type RemoteError struct {
	// Msg is the agent's message.
	Msg string
	// TimedOut is set when the command was killed at its timeout.
	TimedOut bool
}

// Error returns the agent's message.
func (e *RemoteError) Error() string { return "guest agent: " + e.Msg }

// Is makes a timed-out RemoteError match ErrTimeout.
func (e *RemoteError) Is(target error) bool { return target == ErrTimeout && e.TimedOut }

// Client talks to the agent over one connection, usually the unix socket
// of QEMU's chardev for the agent port.
type Client struct {
	conn net.Conn

	// lock is a mutex that can be given up on when a context ends. Its
	// holder owns conn (its writes and deadline) and lines: one request
	// and the reading of its response at a time.
	lock  chan struct{}
	lines *lineReader
}

// Dial connects to the agent behind the unix socket at socketPath.
func Dial(ctx context.Context, socketPath string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socketPath)
	if err != nil {
		return nil, fmt.Errorf("dial guest agent socket %s: %w", socketPath, err)
	}
	return NewClient(conn), nil
}

// NewClient returns a Client that talks to the agent over conn and owns it.
func NewClient(conn net.Conn) *Client {
	return &Client{
		conn:  conn,
		lock:  make(chan struct{}, 1),
		lines: newLineReader(conn, MaxLineBytes),
	}
}

// Close closes the connection; calls in progress return with an error.
func (c *Client) Close() error {
	if err := c.conn.Close(); err != nil {
		return fmt.Errorf("close guest agent connection: %w", err)
	}
	return nil
}

// Ping checks that the agent answers.
func (c *Client) Ping(ctx context.Context) error {
	resp, err := c.roundTrip(ctx, Request{Op: OpPing})
	if err != nil {
		return fmt.Errorf("ping guest agent: %w", err)
	}
	if resp.Error != "" {
		return fmt.Errorf("ping guest agent: %w", &RemoteError{Msg: resp.Error})
	}
	return nil
}

// Exec runs cmd with /bin/sh -c in the guest and returns its exit code and
// output; a non-zero exit code is not an error. timeout bounds the command in
// the guest (0: DefaultTimeout), which then kills its whole process group and
// reports an error matching ErrTimeout along with the output so far. ctx
// bounds the wait for the answer; give it more time than timeout.
//
// Calls on one Client run one at a time. After ctx ends, the command may
// still run in the guest, up to its timeout; its late answer is discarded.
// Processes the command leaves in the background should not keep stdout and
// stderr open (redirect them): the agent waits a second for the pipes to
// close after the shell exits, then answers without their further output.
func (c *Client) Exec(ctx context.Context, cmd string, timeout time.Duration) (Result, error) {
	if timeout < 0 {
		return Result{}, fmt.Errorf("run %q in guest: negative timeout %v", abbrev(cmd), timeout)
	}
	req := Request{Op: OpExec, Cmd: cmd}
	if timeout > 0 {
		req.TimeoutMS = max(1, timeout.Milliseconds())
	}
	resp, err := c.roundTrip(ctx, req)
	if err != nil {
		return Result{}, fmt.Errorf("run %q in guest: %w", abbrev(cmd), err)
	}
	res := Result{ExitCode: resp.Exit, Stdout: resp.Stdout, Stderr: resp.Stderr, Truncated: resp.Truncated}
	if resp.Error != "" {
		return res, fmt.Errorf("run %q in guest: %w", abbrev(cmd), &RemoteError{Msg: resp.Error, TimedOut: resp.TimedOut})
	}
	return res, nil
}

// roundTrip sends req with a fresh ID and returns the response carrying it,
// skipping every other line.
func (c *Client) roundTrip(ctx context.Context, req Request) (Response, error) {
	select {
	case c.lock <- struct{}{}:
	case <-ctx.Done():
		return Response{}, ctx.Err()
	}
	defer func() { <-c.lock }()

	id, err := newID()
	if err != nil {
		return Response{}, err
	}
	req.ID = id
	line, err := encodeLine(req)
	if err != nil {
		return Response{}, err
	}
	if len(line) > MaxLineBytes {
		return Response{}, fmt.Errorf("request of %d bytes exceeds the limit of %d", len(line), MaxLineBytes)
	}

	stop := c.bindDeadline(ctx)
	defer stop()
	if _, err := c.conn.Write(line); err != nil {
		return Response{}, c.ioError(ctx, "send request", err)
	}
	for {
		line, err := c.lines.next()
		if errors.Is(err, errLineTooLong) {
			continue
		}
		if err != nil {
			return Response{}, c.ioError(ctx, "read response", err)
		}
		var resp Response
		if json.Unmarshal(line, &resp) != nil || resp.ID != req.ID {
			continue // garbage, or the answer to an abandoned request
		}
		return resp, nil
	}
}

// bindDeadline makes the I/O on conn fail when ctx ends. The returned
// function undoes it.
func (c *Client) bindDeadline(ctx context.Context) (stop func()) {
	d, _ := ctx.Deadline()
	_ = c.conn.SetDeadline(d)
	fired := make(chan struct{})
	stopAfter := context.AfterFunc(ctx, func() {
		defer close(fired)
		_ = c.conn.SetDeadline(time.Unix(1, 0))
	})
	return func() {
		if !stopAfter() {
			<-fired
		}
		_ = c.conn.SetDeadline(time.Time{})
	}
}

// ioError describes a failed read or write on the connection, reporting the
// end of ctx as its cause when it was.
func (c *Client) ioError(ctx context.Context, what string, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", what, ctx.Err())
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The deadline taken from ctx passed just before ctx noticed.
		return fmt.Errorf("%s: %w", what, context.DeadlineExceeded)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%s: guest agent closed the connection: %w", what, err)
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
}

// WaitReady dials the agent behind socketPath and pings it, every `every`,
// until it answers or ctx ends (every <= 0 means 250 ms). Each attempt gives
// up after a second: QEMU accepts the connection as soon as it runs, but a
// guest still booting never answers.
func WaitReady(ctx context.Context, socketPath string, every time.Duration) error {
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	for {
		err := tryPing(ctx, socketPath)
		if err == nil {
			return nil
		}
		if !sleep(ctx, every) {
			return fmt.Errorf("wait for guest agent on %s: %w (last attempt: %w)", socketPath, ctx.Err(), err)
		}
	}
}

func tryPing(ctx context.Context, socketPath string) error {
	ctx, cancel := context.WithTimeout(ctx, pingAttemptTimeout)
	defer cancel()
	c, err := Dial(ctx, socketPath)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Ping(ctx)
}

// newID returns a random request ID.
func newID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make request id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// abbrev shortens a command for error messages.
func abbrev(cmd string) string {
	const limit = 80
	if len(cmd) <= limit {
		return cmd
	}
	return cmd[:limit] + "..."
}
