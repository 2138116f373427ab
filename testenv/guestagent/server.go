package guestagent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// guestEnv is the whole environment of a command run by the agent.
const guestEnv = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"

// maxConcurrentExecs bounds the commands one Serve runs at once. Further
// requests stay unread in the stream until a slot frees up; none is lost.
const maxConcurrentExecs = 16

// execWaitDelay is how long the agent waits, after the shell has exited, for
// processes it left in the background to close stdout and stderr. Then it
// closes its ends of the pipes and answers (see exec.Cmd.WaitDelay).
const execWaitDelay = time.Second

// deadliner is implemented by net.Conn and by an *os.File on a pollable
// device. Serve uses it to unblock pending I/O when it stops.
type deadliner interface {
	SetDeadline(t time.Time) error
}

// server is the state of one Serve call.
type server struct {
	log *slog.Logger
	w   io.Writer

	// wmu guards w: one response line is written at a time, whole.
	wmu sync.Mutex

	// slots bounds the number of running commands.
	slots chan struct{}

	// mu guards stopped and the transitions of execs from zero, so that no
	// command starts once Serve waits for the running ones.
	mu      sync.Mutex
	stopped bool
	execs   sync.WaitGroup
}

// Serve answers the requests it reads from rw until ctx is done or rw
// reaches EOF; it returns nil on EOF and ctx.Err() when ctx is done.
//
// Pings are answered at once. Each exec runs in its own goroutine (up to 16
// at a time), so a long command does not hold up later requests; responses
// may therefore come out of request order. A response that cannot be written
// (the host went away) is logged and dropped. When Serve returns, commands
// still running are killed and their responses dropped: on a virtio-serial
// port, EOF means the host side disconnected, and nobody waits for them.
// (When the next host connects at once, the guest may never see the EOF; the
// command then runs to its end and the new client discards its answer.)
//
// If rw has a SetDeadline method (net.Conn, *os.File of a virtio port),
// Serve uses it to unblock its pending reads and writes when it stops and
// clears it before returning, so rw can be served again. Otherwise a read
// pending when ctx ends is abandoned, and rw must not be reused.
func Serve(ctx context.Context, rw io.ReadWriter, log *slog.Logger) error {
	d, ok := rw.(deadliner)
	if ok && d.SetDeadline(time.Time{}) != nil {
		ok = false // for example a regular file: no deadlines
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &server{log: log, w: rw, slots: make(chan struct{}, maxConcurrentExecs)}

	unblocked := make(chan struct{})
	go func() {
		defer close(unblocked)
		<-ctx.Done()
		if ok {
			_ = d.SetDeadline(time.Unix(1, 0))
		}
	}()

	readDone := make(chan error, 1)
	go func() { readDone <- s.readLoop(ctx, rw) }()

	var err error
	readFinished := false
	select {
	case <-ctx.Done():
		err = ctx.Err()
	case err = <-readDone:
		readFinished = true
		if ctx.Err() != nil {
			err = ctx.Err()
		}
	}

	cancel()
	<-unblocked
	if ok && !readFinished {
		if rerr := <-readDone; rerr != nil {
			s.log.Debug("reader stopped", "err", rerr)
		}
	}
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.execs.Wait()
	if ok {
		_ = d.SetDeadline(time.Time{})
	}
	return err
}

// readLoop reads and dispatches requests until EOF (nil), a read error or
// the end of ctx.
func (s *server) readLoop(ctx context.Context, r io.Reader) error {
	lines := newLineReader(r, MaxLineBytes)
	for {
		line, err := lines.next()
		switch {
		case errors.Is(err, errLineTooLong):
			s.log.Warn("skip over-long request line", "limit", MaxLineBytes)
			continue
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return fmt.Errorf("read request: %w", err)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var req Request
		if err := json.Unmarshal(line, &req); err != nil || req.Op == "" {
			s.log.Debug("skip line that is no request", "bytes", len(line))
			continue
		}
		if !s.dispatch(ctx, req) {
			return nil
		}
	}
}

// dispatch handles one request; it returns false if Serve is stopping.
func (s *server) dispatch(ctx context.Context, req Request) bool {
	switch req.Op {
	case OpPing:
		s.reply(ctx, Response{ID: req.ID})
	case OpExec:
		select {
		case s.slots <- struct{}{}:
		case <-ctx.Done():
			return false
		}
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			return false
		}
		s.execs.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.execs.Done()
			resp := s.run(ctx, req)
			<-s.slots
			s.reply(ctx, resp)
		}()
	default:
		s.reply(ctx, Response{ID: req.ID, Exit: -1, Error: fmt.Sprintf("unknown op %q", req.Op)})
	}
	return true
}

// reply writes resp unless Serve is stopping. Write errors are logged only:
// the host may have gone away, and the next one must still be served.
func (s *server) reply(ctx context.Context, resp Response) {
	if ctx.Err() != nil {
		s.log.Debug("drop response: serving stopped", "id", resp.ID)
		return
	}
	line, err := encodeLine(resp)
	if err != nil {
		s.log.Error("drop response", "id", resp.ID, "err", err)
		return
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if _, err := s.w.Write(line); err != nil {
		s.log.Warn("write response", "id", resp.ID, "err", err)
	}
}

// run executes req.Cmd with /bin/sh -c in a process group of its own and
// returns its response.
func (s *server) run(ctx context.Context, req Request) Response {
	timeout := DefaultTimeout
	if req.TimeoutMS > 0 {
		timeout = time.Duration(req.TimeoutMS) * time.Millisecond
	}
	ectx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	stdout := &capWriter{max: MaxOutputBytes}
	stderr := &capWriter{max: MaxOutputBytes}
	cmd := exec.CommandContext(ectx, "/bin/sh", "-c", req.Cmd)
	cmd.Env = []string{guestEnv}
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = stdout, stderr // Stdin nil: /dev/null
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var killed atomic.Bool
	cmd.Cancel = func() error {
		killed.Store(true)
		// Setpgid made the shell the leader of a process group whose ID
		// is its PID; kill(2) with -PID signals every process in it.
		return unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
	}
	cmd.WaitDelay = execWaitDelay

	start := time.Now()
	s.log.Debug("exec", "id", req.ID, "cmd", req.Cmd, "timeout", timeout)
	err := cmd.Run()
	resp := Response{
		ID:        req.ID,
		Stdout:    stdout.buf,
		Stderr:    stderr.buf,
		Truncated: stdout.truncated || stderr.truncated,
	}
	switch {
	case killed.Load() && ctx.Err() != nil:
		resp.Exit = -1
		resp.Error = "killed: agent stopped serving"
		s.log.Info("command killed: agent stopped serving", "id", req.ID, "cmd", req.Cmd)
	case killed.Load():
		resp.Exit = TimeoutExitCode
		resp.TimedOut = true
		resp.Error = fmt.Sprintf("timed out after %v", timeout)
		s.log.Info("command timed out", "id", req.ID, "cmd", req.Cmd, "timeout", timeout)
	case cmd.ProcessState != nil:
		resp.Exit = exitCode(cmd.ProcessState)
	default:
		resp.Exit = -1
		resp.Error = fmt.Sprintf("start /bin/sh: %v", err)
		s.log.Warn("start command", "id", req.ID, "err", err)
	}
	s.log.Debug("exec done", "id", req.ID, "exit", resp.Exit, "took", time.Since(start))
	return resp
}

// exitCode reports a process's exit status the way a shell does: 128+N when
// signal N killed it.
func exitCode(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// capWriter keeps the first max bytes written to it and notes whether more
// came. It never fails, so the command is never blocked by a full pipe.
type capWriter struct {
	buf       []byte
	max       int
	truncated bool
}

func (w *capWriter) Write(p []byte) (int, error) {
	n := len(p)
	if room := w.max - len(w.buf); n > room {
		w.truncated = true
		p = p[:room]
	}
	w.buf = append(w.buf, p...)
	return n, nil
}

// ServeListener accepts connections on ln one at a time, as QEMU's socket
// chardev does, and runs Serve on each. It closes ln when ctx is done and
// returns ctx.Err() then, or the error of a failed Accept. It runs the agent
// without a guest: for tests of host-side code.
func ServeListener(ctx context.Context, ln net.Listener, log *slog.Logger) error {
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("accept guest agent connection on %s: %w", ln.Addr(), err)
		}
		err = Serve(ctx, conn, log)
		_ = conn.Close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			log.Warn("serve guest agent connection", "addr", ln.Addr().String(), "err", err)
		}
	}
}
