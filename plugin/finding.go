package plugin

import "fmt"

// Severity ranks a Finding.
type Severity int

// Severities, mildest first. A Fail blocks the configured mode; a Warn
// works but is not what the operator asked for or loses something
// (speed, hardware offload); OK and Info are there to show the check ran.
const (
	SeverityOK Severity = iota
	SeverityInfo
	SeverityWarn
	SeverityFail
)

func (s Severity) String() string {
	switch s {
	case SeverityOK:
		return "ok"
	case SeverityInfo:
		return "info"
	case SeverityWarn:
		return "warn"
	case SeverityFail:
		return "fail"
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// A Finding is one checked precondition: what was checked, on what, what
// was seen, and (unless it is OK) the one-line fix.
type Finding struct {
	// Check names the precondition ("eswitch-mode", "lldp-agent", ...).
	Check string `json:"check"`
	// Subject is what it was checked on ("pf0", "bond0", "0000:3b:00.0").
	Subject string `json:"subject,omitempty"`
	// Severity says how bad it is.
	Severity Severity `json:"severity"`
	// Detail is what was seen ("eswitch mode is legacy").
	Detail string `json:"detail"`
	// Fix is one command or line that puts it right ("" when OK).
	Fix string `json:"fix,omitempty"`
}

func (f Finding) String() string {
	s := fmt.Sprintf("%-4s %s", f.Severity, f.Check)
	if f.Subject != "" {
		s += " " + f.Subject
	}
	s += ": " + f.Detail
	if f.Fix != "" {
		s += " (fix: " + f.Fix + ")"
	}
	return s
}

// Worst is the highest severity among findings (SeverityOK when none).
func Worst(fs []Finding) Severity {
	w := SeverityOK
	for _, f := range fs {
		w = max(w, f.Severity)
	}
	return w
}
