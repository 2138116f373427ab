package guestagent_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/vflag/vflag/testenv/guestagent"
)

// startAgent runs the agent in-process on a unix socket, standing in for
// QEMU's chardev socket of a booted guest. It returns the socket's path and
// a function that stops the agent.
func startAgent() (string, func()) {
	dir, err := os.MkdirTemp("", "guestagent-example")
	if err != nil {
		panic(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = guestagent.ServeListener(ctx, ln, slog.New(slog.DiscardHandler))
	}()
	return sock, func() {
		cancel()
		<-done
		_ = os.RemoveAll(dir)
	}
}

func ExampleClient_Exec() {
	sock, stop := startAgent()
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := guestagent.Dial(ctx, sock)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	res, err := c.Exec(ctx, "echo hello; echo oops >&2; exit 3", 10*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("exit %d, stdout %q, stderr %q\n", res.ExitCode, res.Stdout, res.Stderr)
	// Output: exit 3, stdout "hello\n", stderr "oops\n"
}

func ExampleClient_Ping() {
	sock, stop := startAgent()
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := guestagent.Dial(ctx, sock)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	fmt.Println("ping:", c.Ping(ctx))
	// Output: ping: <nil>
}

func ExampleWaitReady() {
	sock, stop := startAgent()
	defer stop()

	// A testbed waits like this for the guest to boot, then dials.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := guestagent.WaitReady(ctx, sock, 500*time.Millisecond); err != nil {
		fmt.Println("guest not ready:", err)
		return
	}
	fmt.Println("guest agent ready")
	// Output: guest agent ready
}
