package hooks

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vflag/vflag/api"
	"github.com/vflag/vflag/vfmgr"
)

// DefaultConfigPath is where the hook reads its settings. The file is
// optional: without it every key has its default.
const DefaultConfigPath = "/etc/vflag/hook.yaml"

// ConfigEnv names another settings file (tests; libvirt passes the hook
// no environment of its own).
const ConfigEnv = "VFLAG_HOOK_CONFIG"

// Config is the hook's settings file (hooks/README.md lists the keys).
type Config struct {
	// Socket is vflagd's API socket (key socket).
	Socket string `yaml:"socket"`
	// Timeout bounds a whole run of the hook, vflagd's answers included
	// (key timeout, default 10s).
	Timeout time.Duration `yaml:"timeout"`
	// FailOpen lets a VM start (and a migration or restore proceed)
	// without vflag when vflagd is not running or does not answer in
	// time (key fail_open, default false: the start fails). A refusal by
	// vflagd always fails it.
	FailOpen bool `yaml:"fail_open"`
	// UnmanagedHostdev is what to do with an <interface type='hostdev'>
	// that is not vflag's (key unmanaged_hostdev: ignore, the default, or
	// error, for hosts where every VF interface must be vflag's).
	UnmanagedHostdev string `yaml:"unmanaged_hostdev"`
	// Mode is the mode of vflag interfaces that neither vflag metadata
	// nor a <teaming> pair gives one (key default_mode: adopt, hotswap or
	// failover; default: unset, vflagd decides).
	Mode vfmgr.Mode `yaml:"default_mode"`
	// Sysfs is where sysfs is mounted (key sysfs, default /sys).
	Sysfs string `yaml:"sysfs"`
	// Syslog also sends the hook's warnings (fail-open starts, failed
	// re-assertions) to syslog (key syslog, default true): libvirt drops
	// the stderr of a hook that succeeds.
	Syslog *bool `yaml:"syslog"`

	// file is where the settings came from ("" for defaults).
	file string
}

// DefaultTimeout bounds a run of the hook when the settings do not.
const DefaultTimeout = 10 * time.Second

// LoadConfig reads the settings file at path; a missing file gives the
// defaults. Unknown keys and bad values are errors naming the file.
func LoadConfig(path string) (Config, error) {
	c := Config{file: path}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		c.file = ""
	case err != nil:
		return c.withDefaults(), fmt.Errorf("hook settings %s: %w", path, err)
	default:
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return Config{}.withDefaults(), fmt.Errorf("hook settings %s: %s", path, yamlMessage(err))
		}
	}
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return Config{}.withDefaults(), fmt.Errorf("hook settings %s: %w", path, err)
	}
	return c, nil
}

// unknownField is how yaml.v3 says a key is unknown.
var unknownField = regexp.MustCompile(`field (\S+) not found in type \S+`)

// yamlMessage is a YAML error for people: the keys, not Go's types.
func yamlMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.ReplaceAll(msg, "unmarshal errors:\n  ", "")
	msg = strings.ReplaceAll(msg, "\n  ", "; ")
	return unknownField.ReplaceAllString(msg, "unknown key $1 (the keys: socket, timeout, fail_open, unmanaged_hostdev, default_mode, sysfs, syslog)")
}

// withDefaults fills the keys left out.
func (c Config) withDefaults() Config {
	if c.Socket == "" {
		c.Socket = api.DefaultSocket
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.UnmanagedHostdev == "" {
		c.UnmanagedHostdev = "ignore"
	}
	if c.Sysfs == "" {
		c.Sysfs = "/sys"
	}
	if c.Syslog == nil {
		on := true
		c.Syslog = &on
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Timeout < 0 || c.Timeout > 10*time.Minute:
		return fmt.Errorf("timeout %s: want 1s..10m", c.Timeout)
	case c.UnmanagedHostdev != "ignore" && c.UnmanagedHostdev != "error":
		return fmt.Errorf("unmanaged_hostdev %q: want ignore or error", c.UnmanagedHostdev)
	case !c.Mode.Valid():
		return fmt.Errorf("default_mode %q: want %s, %s or %s", c.Mode, vfmgr.ModeAdopt, vfmgr.ModeHotswap, vfmgr.ModeFailover)
	}
	return nil
}

// where names the settings file for messages.
func (c Config) where() string {
	if c.file == "" {
		return DefaultConfigPath
	}
	return c.file
}
