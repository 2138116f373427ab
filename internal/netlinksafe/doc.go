// Package netlinksafe is vflag's one wrapper around the netlink dump calls.
//
// A netlink dump (RTM_GETLINK, RTM_GETADDR, RTM_GETNEIGH with NLM_F_DUMP)
// spans several messages; when the kernel's table changes while it is being
// read, the kernel flags the dump NLM_F_DUMP_INTR and
// github.com/vishvananda/netlink returns what it got together with
// netlink.ErrDumpInterrupted: a list that may be incomplete or inconsistent.
// Handle repeats such a dump up to MaxAttempts times and, if every attempt is
// interrupted, returns no list and an error that says so, so that no caller
// ever acts on a partial list. This follows containernetworking/plugins
// pkg/netlinksafe. The linter (forbidigo in .golangci.yml) forbids the raw
// dump functions everywhere else.
//
// LinkByName and LinkByIndex are not dumps (LinkByName falls back to one on
// kernels without IFLA_IFNAME lookups) but are passed through here too, so
// that a consumer needs one import for its link look-ups.
package netlinksafe
