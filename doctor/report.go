package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/vflag/vflag/plugin"
)

// Report is the outcome of Check.
type Report struct {
	// Config is the configuration file checked.
	Config string
	// Sections group the findings: config, host, then each bond.
	Sections []Section
}

// Section is a named group of findings.
type Section struct {
	// Name is "config", "host" or a bond's name.
	Name string
	// Findings are in the order the checks ran.
	Findings []plugin.Finding
}

// add appends findings to the section name, creating it at the end.
func (r *Report) add(name string, fs ...plugin.Finding) {
	for i := range r.Sections {
		if r.Sections[i].Name == name {
			r.Sections[i].Findings = append(r.Sections[i].Findings, fs...)
			return
		}
	}
	r.Sections = append(r.Sections, Section{Name: name, Findings: fs})
}

// Findings returns every finding, section after section.
func (r Report) Findings() []plugin.Finding {
	var out []plugin.Finding
	for _, s := range r.Sections {
		out = append(out, s.Findings...)
	}
	return out
}

// Summary counts findings by severity.
type Summary struct {
	// OK, Info, Warn and Fail count the findings of each severity.
	OK   int `json:"ok"`
	Info int `json:"info"`
	Warn int `json:"warn"`
	Fail int `json:"fail"`
	// Worst is the highest severity seen, by name.
	Worst string `json:"worst"`
	// Exit is the exit status of `vflag doctor` (see ExitCode).
	Exit int `json:"exit"`
}

// Summary counts r's findings.
func (r Report) Summary() Summary {
	var s Summary
	fs := r.Findings()
	for _, f := range fs {
		switch f.Severity {
		case plugin.SeverityOK:
			s.OK++
		case plugin.SeverityInfo:
			s.Info++
		case plugin.SeverityWarn:
			s.Warn++
		default:
			s.Fail++
		}
	}
	s.Worst = plugin.Worst(fs).String()
	s.Exit = r.ExitCode()
	return s
}

// Exit statuses of `vflag doctor`.
const (
	ExitOK       = 0 // nothing worse than info
	ExitWarnings = 1 // at least one warning, no failure
	ExitFailures = 2 // at least one failure
)

// ExitCode is the exit status for automation: ExitOK when nothing is worse
// than info, ExitWarnings with warnings, ExitFailures with failures.
func (r Report) ExitCode() int {
	switch plugin.Worst(r.Findings()) {
	case plugin.SeverityOK, plugin.SeverityInfo:
		return ExitOK
	case plugin.SeverityWarn:
		return ExitWarnings
	}
	return ExitFailures
}

// String is the summary line: "14 ok, 1 info, 2 warnings, 3 failures".
func (s Summary) String() string {
	return fmt.Sprintf("%d ok, %d info, %s, %s", s.OK, s.Info, plural(s.Warn, "warning", "warnings"), plural(s.Fail, "failure", "failures"))
}

// maxSubjectWidth bounds the subject column: longer subjects (paths) push
// their own line's detail right instead of every line's.
const maxSubjectWidth = 16

// WriteText renders r as a table, one section after the other, each
// finding on one line (severity, check, subject, detail, aligned across
// the report) and its fix on the next, then the summary.
func (r Report) WriteText(w io.Writer) error {
	var checkW, subjW int
	for _, f := range r.Findings() {
		checkW = max(checkW, len(f.Check))
		if len(f.Subject) <= maxSubjectWidth {
			subjW = max(subjW, len(f.Subject))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "vflag doctor: %s\n", r.Config)
	for _, s := range r.Sections {
		if len(s.Findings) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s\n", s.Name)
		for _, f := range s.Findings {
			line := fmt.Sprintf("  %-4s  %-*s  %-*s  %s", sevLabel(f.Severity), checkW, f.Check, subjW, f.Subject, f.Detail)
			b.WriteString(strings.TrimRight(line, " ") + "\n")
			if f.Fix != "" {
				fmt.Fprintf(&b, "  %-4s  %-*s  %-*s  fix: %s\n", "", checkW, "", subjW, "", f.Fix)
			}
		}
	}
	fmt.Fprintf(&b, "\n%s\n", r.Summary())
	_, err := io.WriteString(w, b.String())
	return err
}

// sevLabel shows warnings and failures in capitals, so they stand out.
func sevLabel(s plugin.Severity) string {
	if s >= plugin.SeverityWarn {
		return strings.ToUpper(s.String())
	}
	return s.String()
}

// JSONFinding is a Finding in the JSON output: the severity by name, and
// the section it belongs to.
type JSONFinding struct {
	// Section is "config", "host" or the bond's name.
	Section string `json:"section"`
	// Check, Subject, Detail and Fix are the Finding's.
	Check   string `json:"check"`
	Subject string `json:"subject,omitempty"`
	// Severity is "ok", "info", "warn" or "fail".
	Severity string `json:"severity"`
	Detail   string `json:"detail"`
	Fix      string `json:"fix,omitempty"`
}

// JSON is the shape of WriteJSON's output.
type JSON struct {
	// Config is the configuration file checked.
	Config string `json:"config"`
	// Findings are every finding, each with its section and its severity
	// by name (ok, info, warn, fail).
	Findings []JSONFinding `json:"findings"`
	// Summary counts them and gives the exit status.
	Summary Summary `json:"summary"`
}

// WriteJSON renders r as one JSON object: the configuration file, the
// findings (each with its section and severity by name) and the summary.
func (r Report) WriteJSON(w io.Writer) error {
	out := JSON{Config: r.Config, Findings: []JSONFinding{}, Summary: r.Summary()}
	for _, s := range r.Sections {
		for _, f := range s.Findings {
			out.Findings = append(out.Findings, JSONFinding{
				Section: s.Name, Check: f.Check, Subject: f.Subject, Severity: f.Severity.String(), Detail: f.Detail, Fix: f.Fix,
			})
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
