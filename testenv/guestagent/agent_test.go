package guestagent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testLogger logs to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// wrapListener hands every accepted connection through wrap.
type wrapListener struct {
	net.Listener
	wrap func(net.Conn) net.Conn
}

func (l wrapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.wrap(c), nil
}

// startAgent serves the agent on a unix socket in a temporary directory, as
// QEMU's chardev would, until the test ends, and returns the socket's path.
// wrap, if not nil, wraps the server's side of every connection.
func startAgent(t *testing.T, wrap func(net.Conn) net.Conn) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		ln = wrapListener{Listener: ln, wrap: wrap}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, ln, testLogger(t)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("ServeListener returned %v, want context.Canceled", err)
		}
	})
	return sock
}

// dial connects a client to the agent at sock, closed when the test ends.
func dial(t *testing.T, sock string) *Client {
	t.Helper()
	c, err := Dial(t.Context(), sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// hangGuard bounds a test's waits so that a bug fails it instead of hanging it.
func hangGuard(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// mustExec runs cmd and fails the test on an error.
func mustExec(t *testing.T, c *Client, cmd string) Result {
	t.Helper()
	res, err := c.Exec(hangGuard(t), cmd, 0)
	if err != nil {
		t.Fatalf("Exec(%q): %v", cmd, err)
	}
	return res
}

func TestExec(t *testing.T) {
	t.Parallel()
	c := dial(t, startAgent(t, nil))
	tests := []struct {
		name           string
		cmd            string
		wantExit       int
		wantStdout     string
		wantStderr     string
		stderrContains string
	}{
		{name: "stdout", cmd: "echo hello", wantStdout: "hello\n"},
		{name: "stderr", cmd: "echo oops >&2", wantStderr: "oops\n"},
		{name: "both", cmd: "printf out; printf err >&2; exit 1", wantExit: 1, wantStdout: "out", wantStderr: "err"},
		{name: "exit code", cmd: "exit 3", wantExit: 3},
		{name: "killed by signal", cmd: "kill -TERM $$", wantExit: 128 + 15},
		{name: "command not found", cmd: "no-such-command-vflag", wantExit: 127, stderrContains: "not found"},
		{name: "environment", cmd: `echo "$PATH"; echo "${HOME-unset}"`, wantStdout: "/usr/sbin:/usr/bin:/sbin:/bin\nunset\n"},
		{name: "stdin is /dev/null", cmd: "cat", wantStdout: ""},
		{name: "working directory", cmd: "pwd", wantStdout: "/\n"},
		{name: "binary output", cmd: `printf '\000\377\n'`, wantStdout: "\x00\xff\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := mustExec(t, c, tt.cmd)
			if res.ExitCode != tt.wantExit {
				t.Errorf("exit code %d, want %d (stderr %q)", res.ExitCode, tt.wantExit, res.Stderr)
			}
			if stdout := string(res.Stdout); stdout != tt.wantStdout {
				t.Errorf("stdout %q, want %q", stdout, tt.wantStdout)
			}
			if tt.stderrContains != "" {
				if !strings.Contains(string(res.Stderr), tt.stderrContains) {
					t.Errorf("stderr %q does not contain %q", res.Stderr, tt.stderrContains)
				}
			} else if string(res.Stderr) != tt.wantStderr {
				t.Errorf("stderr %q, want %q", res.Stderr, tt.wantStderr)
			}
			if res.Truncated {
				t.Error("output marked truncated")
			}
		})
	}
}

// processGone reports whether pid has exited (a zombie counts as exited: its
// reaper is not this test).
func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// waitGone waits until pid has exited.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	ctx := hangGuard(t)
	for !processGone(pid) {
		if ctx.Err() != nil {
			t.Fatalf("process %d still running", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	c := dial(t, startAgent(t, nil))
	tests := []struct {
		name string
		cmd  string
	}{
		{name: "child", cmd: "sleep 1000 & echo $!; wait"},
		{name: "grandchild", cmd: "sh -c 'sleep 1000 & echo $!; wait'; echo unreachable"},
		{name: "child ignoring SIGTERM", cmd: "trap '' TERM; sleep 1000 & echo $!; wait"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := c.Exec(hangGuard(t), tt.cmd, time.Second)
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("Exec error %v, want one matching ErrTimeout", err)
			}
			if res.ExitCode != TimeoutExitCode {
				t.Errorf("exit code %d, want %d", res.ExitCode, TimeoutExitCode)
			}
			if !strings.Contains(err.Error(), "timed out after 1s") {
				t.Errorf("error %q does not say how long the command ran", err)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(res.Stdout)))
			if err != nil {
				t.Fatalf("stdout %q: want the PID of sleep: %v", res.Stdout, err)
			}
			waitGone(t, pid)
		})
	}
}

func TestExecTruncatesOutput(t *testing.T) {
	t.Parallel()
	c := dial(t, startAgent(t, nil))
	tests := []struct {
		name          string
		bytes         int
		toStderr      bool
		wantLen       int
		wantTruncated bool
	}{
		{name: "small", bytes: 1000, wantLen: 1000},
		{name: "exactly the cap", bytes: MaxOutputBytes, wantLen: MaxOutputBytes},
		{name: "one byte over", bytes: MaxOutputBytes + 1, wantLen: MaxOutputBytes, wantTruncated: true},
		{name: "stderr over", bytes: 5_000_000, toStderr: true, wantLen: MaxOutputBytes, wantTruncated: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := fmt.Sprintf("head -c %d /dev/zero", tt.bytes)
			if tt.toStderr {
				cmd += " >&2"
			}
			res := mustExec(t, c, cmd)
			got := res.Stdout
			if tt.toStderr {
				got = res.Stderr
			}
			if len(got) != tt.wantLen || res.Truncated != tt.wantTruncated {
				t.Errorf("got %d bytes, truncated %v; want %d, %v", len(got), res.Truncated, tt.wantLen, tt.wantTruncated)
			}
		})
	}
}

// noisyConn writes noise before every write, as stale bytes of an earlier
// connection would reach a new client.
type noisyConn struct {
	net.Conn
	noise string
}

func (c noisyConn) Write(p []byte) (int, error) {
	if _, err := c.Conn.Write([]byte(c.noise)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

func TestClientSkipsStaleLines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		noise string
	}{
		{name: "garbage", noise: "garbage\n"},
		{name: "broken json", noise: "{not json}\n"},
		{name: "foreign id", noise: `{"id":"0123456789abcdef","exit":7,"stdout":"c3RhbGU="}` + "\n"},
		{name: "response without id", noise: `{"exit":7}` + "\n"},
		{name: "partial line", noise: `{"id":"0123","exit":`},
		{name: "blank lines", noise: "\n\n\r\n"},
		{name: "other json", noise: "null\n[1]\n\"s\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sock := startAgent(t, func(c net.Conn) net.Conn { return noisyConn{Conn: c, noise: tt.noise} })
			c := dial(t, sock)
			if err := c.Ping(hangGuard(t)); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			for range 2 {
				res := mustExec(t, c, "echo real; exit 2")
				if string(res.Stdout) != "real\n" || res.ExitCode != 2 {
					t.Errorf("got exit %d stdout %q, want 2 %q", res.ExitCode, res.Stdout, "real\n")
				}
			}
		})
	}
}

func TestServerSkipsStaleLines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		noise string
	}{
		{name: "garbage", noise: "garbage\n"},
		{name: "partial request", noise: `{"id":"x","op":"ex`},
		{name: "stale request", noise: `{"id":"stale","op":"exec","cmd":"echo stale"}` + "\n"},
		{name: "unknown op", noise: `{"id":"u","op":"reboot"}` + "\n"},
		{name: "not a request", noise: "{}\nnull\n[]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sock := startAgent(t, nil)
			conn, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Write([]byte(tt.noise)); err != nil {
				t.Fatal(err)
			}
			c := NewClient(conn)
			t.Cleanup(func() { _ = c.Close() })
			res := mustExec(t, c, "echo real")
			if string(res.Stdout) != "real\n" {
				t.Errorf("stdout %q, want %q", res.Stdout, "real\n")
			}
		})
	}
}

func TestExecConcurrent(t *testing.T) {
	t.Parallel()
	c := dial(t, startAgent(t, nil))
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			res, err := c.Exec(hangGuard(t), fmt.Sprintf("echo %d; exit %d", i, i), 0)
			switch {
			case err != nil:
				errs <- err
			case string(res.Stdout) != fmt.Sprintf("%d\n", i) || res.ExitCode != i:
				errs <- fmt.Errorf("call %d got exit %d stdout %q", i, res.ExitCode, res.Stdout)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestExecContextEndUnblocks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		ctx     func() (context.Context, context.CancelFunc)
		wantErr error
	}{
		{
			name: "cancel",
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(100*time.Millisecond, cancel)
				return ctx, cancel
			},
			wantErr: context.Canceled,
		},
		{
			name: "deadline",
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 100*time.Millisecond)
			},
			wantErr: context.DeadlineExceeded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, startAgent(t, nil))
			ctx, cancel := tt.ctx()
			defer cancel()
			if _, err := c.Exec(ctx, "sleep 1000", 0); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Exec error %v, want %v", err, tt.wantErr)
			}
			// The client stays usable; the late answer is not taken for this one.
			if res := mustExec(t, c, "echo after"); string(res.Stdout) != "after\n" {
				t.Errorf("next Exec stdout %q, want %q", res.Stdout, "after\n")
			}
		})
	}
}

func TestReconnectAfterDisconnectMidCommand(t *testing.T) {
	t.Parallel()
	sock := startAgent(t, nil)
	pidFile := filepath.Join(t.TempDir(), "pid")

	first := dial(t, sock)
	done := make(chan error, 1)
	go func() {
		_, err := first.Exec(context.Background(), fmt.Sprintf("sleep 1000 & echo $! > %s; wait", pidFile), 0)
		done <- err
	}()
	ctx := hangGuard(t)
	var pid int
	for {
		b, err := os.ReadFile(pidFile)
		if p, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil {
			pid = p
			break
		}
		if ctx.Err() != nil {
			t.Fatal("command of the first client never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Error("Exec on a closed client returned no error")
	}

	second := dial(t, sock)
	if res := mustExec(t, second, "echo ok"); string(res.Stdout) != "ok\n" {
		t.Errorf("second client got stdout %q, want %q", res.Stdout, "ok\n")
	}
	// The command of the client that went away was killed with its group.
	waitGone(t, pid)
}

func TestServeReturns(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		end     func(cancel context.CancelFunc, host net.Conn)
		wantErr error
	}{
		{name: "on EOF", end: func(_ context.CancelFunc, host net.Conn) { _ = host.Close() }},
		{name: "when ctx ends", end: func(cancel context.CancelFunc, _ net.Conn) { cancel() }, wantErr: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			host, guest := net.Pipe()
			defer host.Close()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- Serve(ctx, guest, testLogger(t)) }()
			// A command is running when Serve is told to stop, and pings
			// are still answered meanwhile.
			if _, err := host.Write([]byte(`{"id":"long","op":"exec","cmd":"sleep 1000"}` + "\n")); err != nil {
				t.Fatal(err)
			}
			if err := NewClient(host).Ping(hangGuard(t)); err != nil {
				t.Fatalf("Ping while a command runs: %v", err)
			}
			tt.end(cancel, host)
			select {
			case err := <-done:
				if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
					t.Errorf("Serve returned %v, want %v", err, tt.wantErr)
				}
			case <-hangGuard(t).Done():
				t.Fatal("Serve did not return")
			}
		})
	}
}

func TestWaitReady(t *testing.T) {
	t.Parallel()
	silent := func(t *testing.T) string {
		// Accepts connections, like QEMU before the guest agent runs, but never answers.
		sock := filepath.Join(t.TempDir(), "silent.sock")
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { _ = c.Close() })
			}
		}()
		return sock
	}
	tests := []struct {
		name    string
		sock    func(t *testing.T) string
		wantErr error
	}{
		{name: "agent up", sock: func(t *testing.T) string { return startAgent(t, nil) }},
		{name: "no socket", sock: func(t *testing.T) string { return filepath.Join(t.TempDir(), "none.sock") }, wantErr: context.DeadlineExceeded},
		{name: "agent not answering", sock: silent, wantErr: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sock := tt.sock(t)
			ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
			defer cancel()
			err := WaitReady(ctx, sock, 50*time.Millisecond)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("WaitReady: %v", err)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("WaitReady error %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), sock) {
				t.Errorf("error %q does not name the socket", err)
			}
		})
	}
}
