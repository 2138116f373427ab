package plugin

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// NewLogger returns the logger a backend should log with: JSON lines on
// the process's stderr, in the shape go-plugin parses on vflagd's side, so
// that each line lands in vflagd's log at its level with the backend's
// name. Call it before Serve (Serve redirects os.Stderr).
func NewLogger(w io.Writer) *slog.Logger {
	if w == nil {
		w = os.Stderr
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				return slog.String("@timestamp", a.Value.Time().Format("2006-01-02T15:04:05.000000Z07:00"))
			case slog.LevelKey:
				return slog.String("@level", strings.ToLower(a.Value.String()))
			case slog.MessageKey:
				return slog.String("@message", a.Value.String())
			}
			return a
		},
	}))
}

// hclogger carries go-plugin's logging (its own, and the lines a backend
// writes to stderr, which it parses) into vflagd's *slog.Logger.
type hclogger struct {
	log   *slog.Logger
	name  string
	args  []any
	level hclog.Level
}

var _ hclog.Logger = (*hclogger)(nil)

func newHCLogger(l *slog.Logger, level hclog.Level) *hclogger {
	return &hclogger{log: l, level: level}
}

func (h *hclogger) Log(level hclog.Level, msg string, args ...any) {
	if level < h.level || level == hclog.Off {
		return
	}
	var sl slog.Level
	switch {
	case level <= hclog.Debug:
		sl = slog.LevelDebug
	case level == hclog.Info:
		sl = slog.LevelInfo
	case level == hclog.Warn:
		sl = slog.LevelWarn
	default:
		sl = slog.LevelError
	}
	// go-plugin appends the backend's own timestamp (vflagd's log has
	// one), and hands on a backend's attributes in map order: sort them.
	type pair struct {
		k string
		v any
	}
	var pairs []pair
	for i := 0; i+1 < len(args); i += 2 {
		k := fmt.Sprint(args[i])
		if k != "timestamp" {
			pairs = append(pairs, pair{k, args[i+1]})
		}
	}
	slices.SortStableFunc(pairs, func(a, b pair) int { return strings.Compare(a.k, b.k) })
	var kv []any
	for _, p := range pairs {
		kv = append(kv, p.k, p.v)
	}
	all := append(append([]any{}, h.args...), kv...)
	if h.name != "" {
		all = append(all, "plugin", h.name)
	}
	h.log.Log(context.Background(), sl, msg, all...)
}

func (h *hclogger) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hclogger) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hclogger) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hclogger) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hclogger) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }
func (h *hclogger) IsTrace() bool                 { return h.level <= hclog.Trace }
func (h *hclogger) IsDebug() bool                 { return h.level <= hclog.Debug }
func (h *hclogger) IsInfo() bool                  { return h.level <= hclog.Info }
func (h *hclogger) IsWarn() bool                  { return h.level <= hclog.Warn }
func (h *hclogger) IsError() bool                 { return h.level <= hclog.Error }
func (h *hclogger) ImpliedArgs() []any            { return h.args }
func (h *hclogger) Name() string                  { return h.name }
func (h *hclogger) SetLevel(l hclog.Level)        { h.level = l }
func (h *hclogger) GetLevel() hclog.Level         { return h.level }

func (h *hclogger) With(args ...any) hclog.Logger {
	c := *h
	c.args = append(append([]any{}, h.args...), args...)
	return &c
}

func (h *hclogger) Named(name string) hclog.Logger {
	c := *h
	if c.name != "" {
		name = c.name + "." + name
	}
	c.name = name
	return &c
}

func (h *hclogger) ResetNamed(name string) hclog.Logger {
	c := *h
	c.name = name
	return &c
}

func (h *hclogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

func (h *hclogger) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return lineWriter(func(line string) { h.Info(line) })
}

// lineWriter calls itself once per write, with the write's trailing
// newline removed (log.Logger writes whole lines).
type lineWriter func(string)

func (w lineWriter) Write(p []byte) (int, error) {
	w(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
