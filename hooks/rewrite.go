package hooks

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// RewritePCI returns the domain XML raw with the <source><address> of the
// given interfaces (by index among the domain's <interface> elements) set
// to new PCI addresses (canonical form). Everything else stays byte for
// byte as it was: a migration or restore must not lose what vflag does not
// understand. It checks that the result parses and names the new
// addresses.
func RewritePCI(raw []byte, pcis map[int]string) ([]byte, error) {
	type span struct{ from, to int64 }
	spans := map[int]span{}
	dec := xml.NewDecoder(bytes.NewReader(raw))
	var path []string
	iface := -1   // index of the current domain/devices/interface
	open := false // inside a source/address to replace
	var cur span
	for {
		at := dec.InputOffset()
		tok, err := dec.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("domain XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			path = append(path, t.Name.Local)
			if t.Name.Space != "" {
				path[len(path)-1] = t.Name.Space + ":" + t.Name.Local
			}
			switch strings.Join(path, "/") {
			case "domain/devices/interface":
				iface++
			case "domain/devices/interface/source/address":
				if _, want := pcis[iface]; want {
					if _, seen := spans[iface]; seen {
						return nil, fmt.Errorf("interface %d has two <source><address> elements", iface)
					}
					open, cur = true, span{from: at}
				}
			}
		case xml.EndElement:
			if len(path) == 0 {
				return nil, errors.New("domain XML: unbalanced end element")
			}
			if open && len(path) == 5 {
				cur.to = dec.InputOffset()
				spans[iface] = cur
				open = false
			}
			path = path[:len(path)-1]
		}
	}
	var out bytes.Buffer
	var last int64
	indexes := slices.Sorted(maps.Keys(pcis))
	slices.SortFunc(indexes, func(a, b int) int { return int(spans[a].from - spans[b].from) })
	for _, i := range indexes {
		sp, ok := spans[i]
		if !ok {
			return nil, fmt.Errorf("interface %d has no <source><address type='pci' .../> to rewrite", i)
		}
		elem, err := pciAddressElement(pcis[i])
		if err != nil {
			return nil, fmt.Errorf("interface %d: %w", i, err)
		}
		out.Write(raw[last:sp.from])
		out.WriteString(elem)
		last = sp.to
	}
	out.Write(raw[last:])
	res := out.Bytes()
	d, err := Parse(res, Options{})
	if err != nil {
		return nil, fmt.Errorf("rewritten domain XML does not parse: %w", err)
	}
	for _, i := range indexes {
		if !slices.ContainsFunc(d.Interfaces, func(it Interface) bool { return it.Index == i && it.PCI == pcis[i] }) {
			return nil, fmt.Errorf("rewritten domain XML: interface %d does not name VF %s", i, pcis[i])
		}
	}
	return res, nil
}

// pciAddressElement renders a canonical PCI address as libvirt writes it.
func pciAddressElement(pci string) (string, error) {
	var f [4]uint64
	parts := strings.FieldsFunc(pci, func(r rune) bool { return r == ':' || r == '.' })
	if len(parts) != 4 || len(pci) != len("0000:00:00.0") {
		return "", fmt.Errorf("PCI address %q is not in canonical form", pci)
	}
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 16, 16)
		if err != nil {
			return "", fmt.Errorf("PCI address %q is not in canonical form", pci)
		}
		f[i] = v
	}
	return fmt.Sprintf("<address type='pci' domain='0x%04x' bus='0x%02x' slot='0x%02x' function='0x%x'/>", f[0], f[1], f[2], f[3]), nil
}
