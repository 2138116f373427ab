// Package cli is the vflag command line: status, VMs, manual failover and
// the event stream of a running vflagd, over its local API, plus offline
// checks of a configuration file and `vflag doctor`, the host's readiness
// for the configured mode.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/vflag/vflag/api"
	"github.com/vflag/vflag/api/vflagpb"
)

// ConfigValidator checks a configuration file offline (vfmgr/config).
type ConfigValidator func(path string) error

// New returns the root command.
func New(stdout, stderr io.Writer, validate ConfigValidator, opts ...Option) *cobra.Command {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var socket string
	var asJSON bool
	var timeout time.Duration
	root := &cobra.Command{
		Use:           "vflag",
		Short:         "Control vflagd: VFs that follow the active port of a bonded NIC",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&socket, "socket", api.DefaultSocket, "vflagd's API socket")
	root.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")
	root.PersistentFlags().DurationVar(&timeout, "timeout", 10*time.Second, "give up on vflagd after this long")

	call := func(cmd *cobra.Command, fn func(context.Context, *api.Client) (proto.Message, error), text func(proto.Message) string) error {
		c, err := api.Dial(socket)
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
		defer cancel()
		msg, err := fn(ctx, c)
		if err != nil {
			return explain(err, socket)
		}
		if asJSON {
			b, err := protojson.MarshalOptions{Multiline: true, EmitUnpopulated: true}.Marshal(msg)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, string(b))
			return nil
		}
		fmt.Fprint(stdout, text(msg))
		return nil
	}

	status := &cobra.Command{
		Use:   "status",
		Short: "Bonds, active port, VFs free and used per PF",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(cmd, func(ctx context.Context, c *api.Client) (proto.Message, error) {
				return c.Status(ctx, &vflagpb.StatusRequest{})
			}, func(m proto.Message) string { return statusText(m.(*vflagpb.StatusResponse)) })
		},
	}

	var vmFilter string
	vms := &cobra.Command{
		Use:   "vms",
		Short: "VM interfaces and the VF each holds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(cmd, func(ctx context.Context, c *api.Client) (proto.Message, error) {
				return c.ListVMs(ctx, &vflagpb.ListVMsRequest{Vm: vmFilter})
			}, func(m proto.Message) string { return vmsText(m.(*vflagpb.ListVMsResponse).GetInterfaces()) })
		},
	}
	vms.Flags().StringVar(&vmFilter, "vm", "", "only this VM")

	var bond, to string
	failover := &cobra.Command{
		Use:   "failover --to PORT",
		Short: "Make PORT the bond's active port and move the VMs with it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(cmd, func(ctx context.Context, c *api.Client) (proto.Message, error) {
				return c.Failover(ctx, &vflagpb.FailoverRequest{Bond: bond, To: to})
			}, func(m proto.Message) string {
				r := m.(*vflagpb.FailoverResponse)
				return fmt.Sprintf("%s: %s -> %s, %d VM interfaces moved\n", r.GetBond(), r.GetFrom(), r.GetTo(), r.GetMoved())
			})
		},
	}
	failover.Flags().StringVar(&bond, "bond", "", "bond (default: the only one)")
	failover.Flags().StringVar(&to, "to", "", "port to make active")
	_ = failover.MarkFlagRequired("to")

	var att vflagpb.AttachRequest
	var vlan, qos uint32
	attach := &cobra.Command{
		Use:   "attach VM --mac MAC",
		Short: "Give a VM interface a VF (what the libvirt hook does at VM start)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := proto.Clone(&att).(*vflagpb.AttachRequest)
			req.Vm, req.Vlan, req.Qos = args[0], vlan, qos
			if _, err := net.ParseMAC(req.GetMac()); err != nil {
				return fmt.Errorf("--mac %q: %w", req.GetMac(), err)
			}
			return call(cmd, func(ctx context.Context, c *api.Client) (proto.Message, error) {
				return c.Attach(ctx, req)
			}, func(m proto.Message) string {
				return vmsText([]*vflagpb.VMInterface{m.(*vflagpb.AttachResponse).GetIface()})
			})
		},
	}
	attach.Flags().StringVar(&att.Mac, "mac", "", "the VM interface's MAC")
	attach.Flags().StringVar(&att.Iface, "iface", "", "interface name within the VM (default: the MAC)")
	attach.Flags().Uint32Var(&vlan, "vlan", 0, "port VLAN (0 = untagged)")
	attach.Flags().Uint32Var(&qos, "qos", 0, "802.1p priority of the port VLAN")
	attach.Flags().StringVar(&att.Bond, "bond", "", "bond (default: the only one)")
	attach.Flags().StringVar(&att.Netns, "netns", "", "hand the VF netdev to this network namespace (namespace VMs)")
	attach.Flags().StringVar(&att.NetnsIfname, "netns-ifname", "eth0", "the VF netdev's name inside --netns")
	_ = attach.MarkFlagRequired("mac")

	var detIface string
	detach := &cobra.Command{
		Use:   "detach VM",
		Short: "Release a VM's VFs (what the libvirt hook does at VM stop)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, func(ctx context.Context, c *api.Client) (proto.Message, error) {
				return c.Detach(ctx, &vflagpb.DetachRequest{Vm: args[0], Iface: detIface})
			}, func(m proto.Message) string { return vmsText(m.(*vflagpb.DetachResponse).GetReleased()) })
		},
	}
	detach.Flags().StringVar(&detIface, "iface", "", "only this interface")

	events := &cobra.Command{
		Use:   "events",
		Short: "Stream what vflagd does (failovers, announcements, attach/detach)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := api.Dial(socket)
			if err != nil {
				return err
			}
			defer c.Close()
			stream, err := c.Events(cmd.Context(), &vflagpb.EventsRequest{})
			if err != nil {
				return explain(err, socket)
			}
			for {
				ev, err := stream.Recv()
				if err != nil {
					if errors.Is(err, io.EOF) || cmd.Context().Err() != nil {
						return nil
					}
					return explain(err, socket)
				}
				if asJSON {
					b, _ := protojson.Marshal(ev)
					fmt.Fprintln(stdout, string(b))
					continue
				}
				fmt.Fprintln(stdout, eventText(ev))
			}
		},
	}

	config := &cobra.Command{Use: "config", Short: "Configuration file tools"}
	config.AddCommand(&cobra.Command{
		Use:   "validate [FILE]",
		Short: "Check a vflagd configuration file offline (default /etc/vflag/vflag.yaml)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/etc/vflag/vflag.yaml"
			if len(args) == 1 {
				path = args[0]
			}
			if err := validate(path); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s: ok\n", path)
			return nil
		},
	})

	root.AddCommand(status, vms, failover, attach, detach, events, config, doctorCommand(stdout, &asJSON, &socket, o))
	return root
}

// explain turns "vflagd is not there" into a sentence.
func explain(err error, socket string) error {
	msg := err.Error()
	if strings.Contains(msg, "connect: no such file") || strings.Contains(msg, "connection refused") {
		return fmt.Errorf("vflagd is not running (no API at %s)", socket)
	}
	if strings.Contains(msg, "permission denied") && !strings.Contains(msg, "PermissionDenied") {
		return fmt.Errorf("no access to %s: run as root or as a member of its group (libvirt): %w", socket, err)
	}
	return err
}

func statusText(r *vflagpb.StatusResponse) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	if l := r.GetLibvirt(); l != "" {
		fmt.Fprintf(w, "libvirt: %s\n", l)
	}
	for _, bd := range r.GetBonds() {
		fmt.Fprintf(w, "%s\tactive %s\tpolicy %s\n", bd.GetName(), orNone(bd.GetActive()), bd.GetPolicy())
		if m := bd.GetRdmaMode(); m != "" && m != "off" {
			health := "healthy"
			if !bd.GetRdmaHealthy() {
				health = "UNHEALTHY"
			}
			fmt.Fprintf(w, "  rdma %s\t%s\t%s\t%s\n", m, orNone(bd.GetRdmaDevice()), bd.GetRdmaState(), health)
			for _, p := range bd.GetRdmaProblems() {
				fmt.Fprintf(w, "    ! %s\n", p)
			}
		}
		for _, p := range bd.GetPorts() {
			link := "link up"
			if !p.GetCarrier() {
				link = "NO LINK"
			}
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\tVFs %d used, %d free of %d\n", p.GetName(), p.GetPci(), p.GetDriver(), link,
				p.GetVfsUsed(), p.GetVfsTotal()-p.GetVfsUsed(), p.GetVfsTotal())
		}
	}
	w.Flush()
	return b.String()
}

func vmsText(ifs []*vflagpb.VMInterface) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "VM\tIFACE\tMAC\tVLAN\tBOND\tVF\tADDRESSES")
	for _, i := range ifs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s vf %d (%s)\t%s\n", i.GetVm(), i.GetIface(), i.GetMac(), i.GetVlan(), i.GetBond(),
			i.GetPf(), i.GetVf(), i.GetVfPci(), strings.Join(i.GetAddrs(), ","))
	}
	w.Flush()
	return b.String()
}

func eventText(ev *vflagpb.Event) string {
	return time.UnixMilli(ev.GetAtUnixMs()).Format("15:04:05.000") + " " + ev.Summary()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
