package infer

import (
	"errors"
	"io"
	"time"

	"github.com/netssm/netssm/pcapout"
	"github.com/netssm/netssm/tokenizer"
)

// NewRowPcapWriter writes the packets of a netssm-layout model: each
// generated row is split into its link header and its kept IP bytes (the
// zero padding dropped), the IP part goes through pcapout's check and
// repairs, and the record keeps the generated link header in a pcap of the
// spec's link type (Ethernet for NetSSM's usual captures). Invalid packets
// are written as generated and counted in counts. hosts (nil: none) maps
// the addresses of the IP part first.
func NewRowPcapWriter(w io.Writer, spec *tokenizer.Spec, hosts *FreshHosts, counts *PacketChecks) (PacketWriter, error) {
	pw, err := pcapout.NewWriter(w, "generated trace", pcapout.Options{Link: pcapout.Link(spec.Link), KeepInvalid: true})
	if err != nil {
		return nil, err
	}
	if counts == nil {
		counts = &PacketChecks{}
	}
	return &rowPcap{w: pw, spec: spec, hosts: hosts, counts: counts}, nil
}

type rowPcap struct {
	w      *pcapout.Writer
	spec   *tokenizer.Spec
	hosts  *FreshHosts
	counts *PacketChecks
}

func (r *rowPcap) WritePacket(ts time.Time, row []byte) error {
	link, ip := r.spec.SplitNetSSMRow(row)
	if r.hosts != nil {
		r.hosts.Map(ip)
	}
	rep, err := r.w.WriteFrame(ts, link, ip)
	switch {
	case errors.Is(err, pcapout.ErrInvalid):
		r.counts.Invalid.Add(1)
		return nil
	case err != nil:
		return err
	case rep.Length:
		r.counts.Repaired.Add(1)
	}
	return nil
}
