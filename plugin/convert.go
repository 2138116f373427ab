package plugin

import (
	"net"

	"github.com/vflag/vflag/plugin/backendpb"
	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/sriov"
)

// Converters between the plain Go types of the contract and the protobuf
// messages of backend.proto. Each pair round-trips (contract_test.go):
// empty lists and MACs come back as nil.

func infoToPB(i Info) *backendpb.InfoResponse {
	return &backendpb.InfoResponse{Name: i.Name, Version: i.Version, Drivers: i.Drivers}
}

func infoFromPB(r *backendpb.InfoResponse) Info {
	return Info{Name: r.GetName(), Version: r.GetVersion(), Drivers: r.GetDrivers()}
}

func specToPB(s BondSpec) *backendpb.BondSpec {
	return &backendpb.BondSpec{Bond: s.Bond, Ports: s.Ports[:], VfsPerPf: int32(s.VFsPerPF), Mode: string(s.Mode)}
}

func specFromPB(r *backendpb.BondSpec) BondSpec {
	s := BondSpec{Bond: r.GetBond(), VFsPerPF: int(r.GetVfsPerPf()), Mode: Mode(r.GetMode())}
	copy(s.Ports[:], r.GetPorts())
	return s
}

func capsToPB(c Capabilities) *backendpb.Capabilities {
	r := &backendpb.Capabilities{
		Backend: c.Backend, HardwareFollow: c.HardwareFollow, HardwarePorts: c.HardwarePorts,
		MaxVfsPerPf: int32(c.MaxVFsPerPF), Reason: c.Reason,
	}
	for _, p := range c.Ports {
		r.Ports = append(r.Ports, &backendpb.Port{Name: p.Name, Pci: p.PCI, Driver: p.Driver, Firmware: p.Firmware, TotalVfs: int32(p.TotalVFs)})
	}
	return r
}

func capsFromPB(r *backendpb.Capabilities) Capabilities {
	c := Capabilities{
		Backend: r.GetBackend(), HardwareFollow: r.GetHardwareFollow(), HardwarePorts: r.GetHardwarePorts(),
		MaxVFsPerPF: int(r.GetMaxVfsPerPf()), Reason: r.GetReason(),
	}
	for _, p := range r.GetPorts() {
		c.Ports = append(c.Ports, Port{Name: p.GetName(), PCI: p.GetPci(), Driver: p.GetDriver(), Firmware: p.GetFirmware(), TotalVFs: int(p.GetTotalVfs())})
	}
	return c
}

func findingsToPB(fs []Finding) *backendpb.Findings {
	r := &backendpb.Findings{}
	for _, f := range fs {
		r.Findings = append(r.Findings, &backendpb.Finding{
			Check: f.Check, Subject: f.Subject, Severity: backendpb.Severity(f.Severity), Detail: f.Detail, Fix: f.Fix,
		})
	}
	return r
}

func findingsFromPB(r *backendpb.Findings) []Finding {
	var fs []Finding
	for _, f := range r.GetFindings() {
		fs = append(fs, Finding{
			Check: f.GetCheck(), Subject: f.GetSubject(), Severity: Severity(f.GetSeverity()), Detail: f.GetDetail(), Fix: f.GetFix(),
		})
	}
	return fs
}

func pfToPB(p vfmgr.PF) *backendpb.PFResponse {
	return &backendpb.PFResponse{
		Name: p.Name, Pci: p.PCI, Driver: p.Driver, Bond: p.Bond,
		TotalVfs: int32(p.TotalVFs), NumVfs: int32(p.NumVFs), Carrier: p.Carrier,
	}
}

func pfFromPB(r *backendpb.PFResponse) vfmgr.PF {
	return vfmgr.PF{
		Name: r.GetName(), PCI: r.GetPci(), Driver: r.GetDriver(), Bond: r.GetBond(),
		TotalVFs: int(r.GetTotalVfs()), NumVFs: int(r.GetNumVfs()), Carrier: r.GetCarrier(),
	}
}

func vfsToPB(vfs []vfmgr.VF) *backendpb.VFsResponse {
	r := &backendpb.VFsResponse{}
	for _, v := range vfs {
		r.Vfs = append(r.Vfs, &backendpb.VF{
			Pf: v.PF, Index: int32(v.Index), Pci: v.PCI, Netdev: v.Netdev, Mac: v.MAC,
			Vlan: int32(v.VLAN), Qos: int32(v.QoS), SpoofChk: v.SpoofChk, Trust: v.Trust, Driver: v.Driver,
		})
	}
	return r
}

func vfsFromPB(r *backendpb.VFsResponse) []vfmgr.VF {
	var vfs []vfmgr.VF
	for _, v := range r.GetVfs() {
		vfs = append(vfs, vfmgr.VF{
			PF: v.GetPf(), Index: int(v.GetIndex()), PCI: v.GetPci(), Netdev: v.GetNetdev(), MAC: mac(v.GetMac()),
			VLAN: int(v.GetVlan()), QoS: int(v.GetQos()), SpoofChk: v.GetSpoofChk(), Trust: v.GetTrust(), Driver: v.GetDriver(),
		})
	}
	return vfs
}

func configureToPB(pf string, idx int, c sriov.VFConfig) *backendpb.ConfigureVFRequest {
	return &backendpb.ConfigureVFRequest{
		Pf: pf, Index: int32(idx), Mac: c.MAC, Vlan: int32(c.VLAN), Qos: int32(c.QoS), SpoofChk: c.SpoofChk, Trust: c.Trust,
	}
}

func configureFromPB(r *backendpb.ConfigureVFRequest) (pf string, idx int, c sriov.VFConfig) {
	return r.GetPf(), int(r.GetIndex()), sriov.VFConfig{
		MAC: mac(r.GetMac()), VLAN: int(r.GetVlan()), QoS: int(r.GetQos()), SpoofChk: r.GetSpoofChk(), Trust: r.GetTrust(),
	}
}

func refsToPB(refs []vfmgr.VFRef) []*backendpb.VFRef {
	var out []*backendpb.VFRef
	for _, r := range refs {
		out = append(out, &backendpb.VFRef{Pf: r.PF, Index: int32(r.Index)})
	}
	return out
}

func refsFromPB(rs []*backendpb.VFRef) []vfmgr.VFRef {
	var out []vfmgr.VFRef
	for _, r := range rs {
		out = append(out, vfmgr.VFRef{PF: r.GetPf(), Index: int(r.GetIndex())})
	}
	return out
}

func requestToPB(q FailoverRequest) *backendpb.FailoverRequest {
	return &backendpb.FailoverRequest{Bond: q.Bond, From: q.From, To: q.To, Vfs: refsToPB(q.VFs)}
}

func requestFromPB(r *backendpb.FailoverRequest) FailoverRequest {
	return FailoverRequest{Bond: r.GetBond(), From: r.GetFrom(), To: r.GetTo(), VFs: refsFromPB(r.GetVfs())}
}

func planToPB(p FailoverPlan) *backendpb.FailoverPlan {
	return &backendpb.FailoverPlan{
		Bond: p.Bond, From: p.From, To: p.To, Hardware: refsToPB(p.Hardware), Software: refsToPB(p.Software),
	}
}

func planFromPB(r *backendpb.FailoverPlan) FailoverPlan {
	return FailoverPlan{
		Bond: r.GetBond(), From: r.GetFrom(), To: r.GetTo(),
		Hardware: refsFromPB(r.GetHardware()), Software: refsFromPB(r.GetSoftware()),
	}
}

// mac is nil for no MAC, as vfmgr and sriov have it.
func mac(b []byte) net.HardwareAddr {
	if len(b) == 0 {
		return nil
	}
	return net.HardwareAddr(b)
}
