package hooks

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/vflag/vflag/vfmgr"
)

// Namespace is the XML namespace of vflag's domain metadata:
//
//	<metadata>
//	  <vflag:vflag xmlns:vflag="https://github.com/vflag/vflag/xmlns/libvirt/1">
//	    <vflag:interface mac="52:54:00:6b:3c:01" mode="hotswap" bond="bond0"/>
//	  </vflag:vflag>
//	</metadata>
const Namespace = "https://github.com/vflag/vflag/xmlns/libvirt/1"

// metaInterface is one <vflag:interface>.
type metaInterface struct {
	mode vfmgr.Mode
	bond string
}

// metadata is the domain's vflag metadata.
type metadata struct {
	// byMAC holds each <vflag:interface> by lower-case MAC.
	byMAC map[string]metaInterface
	// order lists the MACs in document order.
	order []string
	// present says the domain has a <vflag:vflag> element, valid or not.
	present bool
}

// parseMetadata reads the <vflag:vflag> element of the domain's
// <metadata>, wherever its namespace is declared. The error names the
// line and what is wrong.
func parseMetadata(raw []byte) (metadata, error) {
	md := metadata{byMAC: map[string]metaInterface{}}
	dec := xml.NewDecoder(bytes.NewReader(raw))
	var path []string // local names from the root, our namespace's marked
	var errs []error
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return md, fmt.Errorf("domain XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			name := t.Name.Local
			if t.Name.Space == Namespace {
				name = "vflag:" + name
			}
			path = append(path, name)
			line, _ := dec.InputPos()
			if len(path) == 3 && path[1] == "metadata" && name == "vflag:vflag" {
				md.present = true
			}
			switch {
			case len(path) == 3 && path[0] == "domain" && path[1] == "metadata" && name != "vflag:vflag" && t.Name.Space == Namespace:
				errs = append(errs, fmt.Errorf("vflag metadata line %d: <%s> is not vflag's; the root is <vflag:vflag xmlns:vflag=%q>", line, t.Name.Local, Namespace))
			case len(path) == 4 && path[1] == "metadata" && path[2] == "vflag:vflag":
				// `virsh metadata --set` puts the namespace on the root
				// element only: its children may be unqualified.
				if t.Name.Local != "interface" || (t.Name.Space != Namespace && t.Name.Space != "") {
					errs = append(errs, fmt.Errorf("vflag metadata line %d: unknown element <%s>; <vflag:vflag> holds <vflag:interface mac='...' mode='...' bond='...'/>", line, t.Name.Local))
					continue
				}
				if err := md.add(t); err != nil {
					errs = append(errs, fmt.Errorf("vflag metadata line %d: %w", line, err))
				}
			}
		case xml.EndElement:
			if len(path) > 0 {
				path = path[:len(path)-1]
			}
		}
	}
	return md, errors.Join(errs...)
}

// add records one <vflag:interface>.
func (md *metadata) add(t xml.StartElement) error {
	var mac string
	var m metaInterface
	for _, a := range t.Attr {
		if a.Name.Space != "" && a.Name.Space != Namespace {
			continue // another namespace's business
		}
		switch a.Name.Local {
		case "mac":
			mac = strings.ToLower(strings.TrimSpace(a.Value))
		case "mode":
			m.mode = vfmgr.Mode(a.Value)
			if !m.mode.Valid() || m.mode == vfmgr.ModeDefault {
				return fmt.Errorf("<vflag:interface mode=%q>: want %s, %s or %s", a.Value, vfmgr.ModeFailover, vfmgr.ModeHotswap, vfmgr.ModeAdopt)
			}
		case "bond":
			m.bond = a.Value
			if m.bond == "" || strings.ContainsAny(m.bond, "/ \t\n") {
				return fmt.Errorf("<vflag:interface bond=%q>: not a bond name", a.Value)
			}
		default:
			return fmt.Errorf("<vflag:interface> has unknown attribute %q (it takes mac, mode and bond)", a.Name.Local)
		}
	}
	if err := checkMAC(mac); err != nil {
		return fmt.Errorf("<vflag:interface>: %w", err)
	}
	if _, dup := md.byMAC[mac]; dup {
		return fmt.Errorf("<vflag:interface mac=%q> is listed twice", mac)
	}
	md.byMAC[mac] = m
	md.order = append(md.order, mac)
	return nil
}
