package nicview

import "errors"

// ErrNoDevlink: the device has no devlink instance (its driver registers
// none, as igb does), or the kernel has no devlink.
var ErrNoDevlink = errors.New("no devlink instance")

// ErrNoDCB: the netdev's driver implements no dcbnl operations.
var ErrNoDCB = errors.New("no DCB support")

// EswitchMode is a devlink eswitch mode.
type EswitchMode string

// The eswitch modes (include/uapi/linux/devlink.h).
const (
	EswitchLegacy    EswitchMode = "legacy"
	EswitchSwitchdev EswitchMode = "switchdev"
	// EswitchNone: the device has devlink but answers no eswitch mode
	// (the driver has no eswitch_mode_get, or SR-IOV is not set up).
	EswitchNone EswitchMode = ""
)

// Devlink is what `devlink dev eswitch show` and `devlink dev info` say
// of one PCI device.
type Devlink struct {
	// Eswitch is the eswitch mode.
	Eswitch EswitchMode `yaml:"eswitch" json:"eswitch"`
	// Driver is the driver registering the devlink instance.
	Driver string `yaml:"driver" json:"driver"`
	// Serial is the serial_number of `devlink dev info`: the PCIe Device
	// Serial Number on ice ("00-01-ab-ff-ff-ca-05-68"), the board serial
	// on mlx5. Two ports of one card report the same.
	Serial string `yaml:"serial" json:"serial"`
	// Versions are the running (or fixed) versions by name ("fw.mgmt",
	// "fw.psid.api", "board.id").
	Versions map[string]string `yaml:"versions,omitempty" json:"versions,omitempty"`
}

// Ethtool is what `ethtool -i` and `ethtool --show-priv-flags` say of one
// netdev.
type Ethtool struct {
	// Driver, Version, Firmware and BusInfo are `ethtool -i`'s driver,
	// version, firmware-version and bus-info.
	Driver   string `yaml:"driver" json:"driver"`
	Version  string `yaml:"version" json:"version"`
	Firmware string `yaml:"firmware" json:"firmware"`
	BusInfo  string `yaml:"bus_info" json:"bus_info"`
	// PrivFlags are the driver's private flags and their state.
	PrivFlags map[string]bool `yaml:"priv_flags,omitempty" json:"priv_flags,omitempty"`
}

// DCB is the part of a netdev's DCB state that two ports of an ice
// VF-LAG must share: the DCBX mode and the IEEE ETS configuration.
type DCB struct {
	// DCBX is the DCBX capability bits (DCB_CAP_DCBX_*) as `dcb dcbx
	// show` reports them: "host", "lld-managed", "cee", "ieee", "static".
	DCBX []string `yaml:"dcbx" json:"dcbx"`
	// ETS is the IEEE 802.1Qaz ETS configuration: willing, TC count, and
	// the priority-to-TC map and TC bandwidths. Empty when not set.
	ETS string `yaml:"ets" json:"ets"`
}
