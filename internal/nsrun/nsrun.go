// Package nsrun runs code inside another network namespace.
//
// It is the one place in vflag that switches a thread's network namespace:
// every caller that needs to open a socket or a /dev/net/tun file "inside" a
// namespace goes through Do, which locks the OS thread, switches, runs the
// function and switches back (the pattern of containernetworking/plugins
// pkg/ns). Netlink requests that only need a handle to the namespace should use
// netlink.NewHandleAt instead and never enter it.
package nsrun

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs fn with the calling goroutine's OS thread switched into the network
// namespace bound at path (for example /var/run/netns/NAME). Sockets and file
// descriptors that fn opens stay attached to that namespace after Do returns.
// If the thread cannot be switched back, it is left locked so that the Go
// runtime discards it instead of reusing a thread in the wrong namespace.
func Do(path string, fn func() error) error {
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer target.Close()

	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open current network namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace %s: %w", path, err)
	}
	fnErr := fn()
	if err := netns.Set(orig); err != nil {
		// Thread stays locked: the runtime terminates it when the goroutine exits.
		return fmt.Errorf("return from network namespace %s: %w (after: %w)", path, err, fnErr)
	}
	runtime.UnlockOSThread()
	return fnErr
}
