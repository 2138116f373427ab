package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vflag/vflag/vfmgr"
)

// SchemaVersion is the "v" of the records this code writes and the only one
// it reads. Bump it for any change of the records below, and teach decode the
// old one.
const SchemaVersion = 1

// vfRecord is a persisted vfmgr.VFRef.
type vfRecord struct {
	// PF is the PF's netdev name.
	PF string `json:"pf"`
	// Index is the VF number.
	Index int `json:"index"`
}

// allocRecord is a persisted vfmgr.Allocation. It is separate from the
// domain type so that the file format changes only on purpose.
type allocRecord struct {
	// V is SchemaVersion (a pointer, to tell a missing one from 0).
	V *int `json:"v"`
	// VM, Iface, MAC, VLAN, QoS, Trust, Bond, VF, Addrs and Since are the
	// Allocation's fields.
	VM    string       `json:"vm"`
	Iface string       `json:"iface"`
	MAC   string       `json:"mac,omitempty"`
	VLAN  int          `json:"vlan,omitempty"`
	QoS   int          `json:"qos,omitempty"`
	Trust bool         `json:"trust,omitempty"`
	Bond  string       `json:"bond"`
	VF    vfRecord     `json:"vf"`
	Addrs []netip.Addr `json:"addrs,omitempty"`
	Since time.Time    `json:"since"`
	// Home is the PF the VM was first placed on (failback target).
	Home string `json:"home,omitempty"`
	// Netns and NetnsIfname place a namespace VM's VF netdev.
	Netns       string `json:"netns,omitempty"`
	NetnsIfname string `json:"netns_ifname,omitempty"`
	// Mode and DomainUUID come from the libvirt hook.
	Mode       string `json:"mode,omitempty"`
	DomainUUID string `json:"domain_uuid,omitempty"`
}

// moveRecord is a persisted Move.
type moveRecord struct {
	// Key, From and To are the Move's fields.
	Key  string   `json:"key"`
	From vfRecord `json:"from"`
	To   vfRecord `json:"to"`
}

// intentRecord is a persisted Intent.
type intentRecord struct {
	// V is SchemaVersion (a pointer, to tell a missing one from 0).
	V *int `json:"v"`
	// ID, Created and Moves are the Intent's fields.
	ID      string       `json:"id"`
	Created time.Time    `json:"created"`
	Moves   []moveRecord `json:"moves"`
}

func encodeAlloc(a vfmgr.Allocation) ([]byte, error) {
	v := SchemaVersion
	r := allocRecord{
		V: &v, VM: a.VM, Iface: a.Iface, VLAN: a.VLAN, QoS: a.QoS, Trust: a.Trust,
		Bond: a.Bond, VF: vfRecord(a.VF), Addrs: a.Addrs, Since: a.Since.UTC(),
		Netns: a.Netns, NetnsIfname: a.NetnsIfname, Home: a.Home, Mode: string(a.Mode), DomainUUID: a.DomainUUID,
	}
	if len(a.MAC) > 0 {
		r.MAC = a.MAC.String()
	}
	return json.Marshal(r)
}

func decodeAlloc(key string, v []byte) (vfmgr.Allocation, error) {
	var r allocRecord
	if err := decode("allocation", key, v, &r, func() *int { return r.V }); err != nil {
		return vfmgr.Allocation{}, err
	}
	a := vfmgr.Allocation{
		VM: r.VM, Iface: r.Iface, VLAN: r.VLAN, QoS: r.QoS, Trust: r.Trust,
		Bond: r.Bond, VF: vfmgr.VFRef(r.VF), Addrs: r.Addrs, Since: r.Since,
		Netns: r.Netns, NetnsIfname: r.NetnsIfname, Home: r.Home, Mode: vfmgr.Mode(r.Mode), DomainUUID: r.DomainUUID,
	}
	if r.MAC != "" {
		mac, err := net.ParseMAC(r.MAC)
		if err != nil {
			return vfmgr.Allocation{}, fmt.Errorf("allocation %q: %w: %w", key, ErrCorrupt, err)
		}
		a.MAC = mac
	}
	if a.Key() != key {
		return vfmgr.Allocation{}, fmt.Errorf("allocation %q: %w: record is for %q", key, ErrCorrupt, a.Key())
	}
	return a, nil
}

func encodeIntent(in Intent) ([]byte, error) {
	v := SchemaVersion
	r := intentRecord{V: &v, ID: in.ID, Created: in.Created.UTC(), Moves: make([]moveRecord, len(in.Moves))}
	for i, m := range in.Moves {
		r.Moves[i] = moveRecord{Key: m.Key, From: vfRecord(m.From), To: vfRecord(m.To)}
	}
	return json.Marshal(r)
}

func decodeIntent(key string, v []byte) (Intent, error) {
	var r intentRecord
	if err := decode("intent", key, v, &r, func() *int { return r.V }); err != nil {
		return Intent{}, err
	}
	if r.ID != key {
		return Intent{}, fmt.Errorf("intent %q: %w: record is for %q", key, ErrCorrupt, r.ID)
	}
	in := Intent{ID: r.ID, Created: r.Created, Moves: make([]Move, len(r.Moves))}
	for i, m := range r.Moves {
		in.Moves[i] = Move{Key: m.Key, From: vfmgr.VFRef(m.From), To: vfmgr.VFRef(m.To)}
	}
	return in, nil
}

// decode decodes a record strictly into rec, whose V field is a *int:
// an unknown field means a writer that should have bumped the version.
// Errors name the kind of record and its key. A record that does not decode
// is looked at again for its version alone, so that a record of another
// schema is reported as such rather than as corrupt.
func decode(kind, key string, v []byte, rec any, version func() *int) error {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.DisallowUnknownFields()
	err := dec.Decode(rec)
	if err == nil && dec.More() {
		err = errors.New("data after the record")
	}
	ver := version()
	if err != nil {
		var hdr struct {
			V *int `json:"v"`
		}
		if json.Unmarshal(v, &hdr) == nil && hdr.V != nil && *hdr.V != SchemaVersion {
			ver = hdr.V
		} else {
			return fmt.Errorf("%s %q: %w: %w", kind, key, ErrCorrupt, err)
		}
	}
	if ver == nil {
		return fmt.Errorf("%s %q: %w: no schema version", kind, key, ErrCorrupt)
	}
	if *ver != SchemaVersion {
		return fmt.Errorf("%s %q: %w %d (this vflagd reads %d)", kind, key, ErrSchemaVersion, *ver, SchemaVersion)
	}
	return nil
}
