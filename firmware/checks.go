package firmware

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/vflag/vflag/firmware/nicview"
	"github.com/vflag/vflag/plugin"
	"github.com/vflag/vflag/vfmgr"
)

// KernelAtLeast reports whether the kernel release ("6.12.48+deb13-amd64",
// "6.6.0-rc3") is at least major.minor.
func KernelAtLeast(release string, major, minor int) (bool, error) {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false, fmt.Errorf("kernel release %q: not major.minor", release)
	}
	maj, err := strconv.Atoi(parts[0])
	if err != nil {
		return false, fmt.Errorf("kernel release %q: %w", release, err)
	}
	// The minor number may carry a suffix when there is no patch level
	// ("6.6-rc3", "6.6+deb").
	minDigits := parts[1]
	if i := strings.IndexFunc(minDigits, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minDigits = minDigits[:i]
	}
	mnr, err := strconv.Atoi(minDigits)
	if err != nil {
		return false, fmt.Errorf("kernel release %q: %w", release, err)
	}
	return maj > major || maj == major && mnr >= minor, nil
}

// SameCard checks that PFs a and b are two ports of one card: two
// functions of one PCI device (same domain, bus and device; the check
// both ice_lag.c and mlx5's LAG make) and, where devlink answers, the same
// serial number. check names the finding ("same-card").
func SameCard(ctx context.Context, view nicview.View, check string, a, b vfmgr.PF) plugin.Finding {
	subject := a.Name + "," + b.Name
	fail := func(format string, args ...any) plugin.Finding {
		return plugin.Finding{
			Check: check, Subject: subject, Severity: plugin.SeverityFail,
			Detail: fmt.Sprintf(format, args...),
			Fix:    "bond two ports of one card (ls -l /sys/class/net/*/device shows their PCI addresses)",
		}
	}
	pa, err := nicview.ParsePCI(a.PCI)
	if err != nil {
		return fail("%s: %v", a.Name, err)
	}
	pb, err := nicview.ParsePCI(b.PCI)
	if err != nil {
		return fail("%s: %v", b.Name, err)
	}
	if !pa.SameSlot(pb) {
		return fail("%s (%s) and %s (%s) are on different PCI devices: two cards, the NIC cannot move VFs between them", a.Name, a.PCI, b.Name, b.PCI)
	}
	if pa.Function == pb.Function {
		return fail("%s and %s are the same PCI function %s", a.Name, b.Name, a.PCI)
	}
	da, errA := view.Devlink(ctx, a.PCI)
	db, errB := view.Devlink(ctx, b.PCI)
	switch {
	case errA != nil || errB != nil || da.Serial == "" || db.Serial == "":
		if errA == nil && errB == nil {
			errA = errors.New("devlink reports no serial number")
		}
		return plugin.Finding{
			Check: check, Subject: subject, Severity: plugin.SeverityOK,
			Detail: fmt.Sprintf("%s and %s are functions %d and %d of PCI device %s (no devlink serial number to compare: %v)",
				a.Name, b.Name, pa.Function, pb.Function, a.PCI[:len(a.PCI)-2], errors.Join(errA, errB)),
		}
	case da.Serial != db.Serial:
		return fail("%s (%s) has serial number %q, %s (%s) %q: not one card", a.Name, a.PCI, da.Serial, b.Name, b.PCI, db.Serial)
	}
	return plugin.Finding{
		Check: check, Subject: subject, Severity: plugin.SeverityOK,
		Detail: fmt.Sprintf("%s and %s are functions %d and %d of one card (serial number %s)", a.Name, b.Name, pa.Function, pb.Function, da.Serial),
	}
}

// Failing returns the findings of fs that are SeverityFail.
func Failing(fs []plugin.Finding) []plugin.Finding {
	var out []plugin.Finding
	for _, f := range fs {
		if f.Severity == plugin.SeverityFail {
			out = append(out, f)
		}
	}
	return out
}

// Reason renders failing findings as a Capabilities.Reason: their details
// joined by "; ".
func Reason(fs []plugin.Finding) string {
	var parts []string
	for _, f := range Failing(fs) {
		parts = append(parts, f.Detail)
	}
	return strings.Join(parts, "; ")
}
