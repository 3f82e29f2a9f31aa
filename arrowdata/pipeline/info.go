package pipeline

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"

	"github.com/netssm/netssm/arrowdata"
	"github.com/netssm/netssm/tokenizer"
)

// LabelInfo sums one label's traces.
type LabelInfo struct {
	Label   string
	Traces  int
	Packets int
	Tokens  int
}

// DatasetInfo describes a dataset.
type DatasetInfo struct {
	Path       string
	Spec       tokenizer.Spec
	RowGroups  int
	Traces     int
	Packets    int
	Tokens     int
	PerLabel   []LabelInfo
	TokenCount []int64        // per token id
	Protocols  map[string]int // packets per "IPv4/TCP"-style protocol name
	LinkTypes  map[string]int // traces per original link type
}

// Info reads a dataset once, row group by row group, and sums it.
func Info(path string) (DatasetInfo, error) {
	ds, err := arrowdata.Open(path)
	if err != nil {
		return DatasetInfo{}, err
	}
	defer ds.Close()
	spec := ds.Spec()
	info := DatasetInfo{Path: path, Spec: spec, RowGroups: ds.NumRowGroups(),
		TokenCount: make([]int64, spec.VocabSize), Protocols: map[string]int{}, LinkTypes: map[string]int{}}
	per := map[string]*LabelInfo{}
	for t, err := range ds.Traces() {
		if err != nil {
			return info, err
		}
		li := per[t.Label]
		if li == nil {
			li = &LabelInfo{Label: t.Label}
			per[t.Label] = li
		}
		li.Traces++
		li.Packets += t.NPackets()
		li.Tokens += len(t.Tokens)
		info.Traces++
		info.Packets += t.NPackets()
		info.Tokens += len(t.Tokens)
		info.LinkTypes[t.LinkType]++
		for _, tok := range t.Tokens {
			if int(tok) < len(info.TokenCount) {
				info.TokenCount[tok]++
			}
		}
		if spec.Layout == tokenizer.LayoutFlow { // packets are coded against their flows: decode them
			d, err := spec.Decode(t.Tokens, tokenizer.DecodeOptions{})
			if err != nil {
				return info, fmt.Errorf("%s: trace %s: %w", path, t.TraceID, err)
			}
			for _, p := range d.Packets {
				info.Protocols[protocolOfBytes(&spec, p.Bytes)]++
			}
			continue
		}
		for k, off := range t.PktOffsets {
			end := len(t.Tokens)
			if k+1 < len(t.PktOffsets) {
				end = int(t.PktOffsets[k+1])
			}
			info.Protocols[protocolOf(&spec, t.Tokens[off:end])]++
		}
	}
	for _, li := range per {
		info.PerLabel = append(info.PerLabel, *li)
	}
	sort.Slice(info.PerLabel, func(i, j int) bool { return info.PerLabel[i].Label < info.PerLabel[j].Label })
	return info, nil
}

// protocolOf names a packet's protocols from its tokens (<pkt> [<dt>] bytes…,
// the netssm layout's rows opening with their link header).
func protocolOf(spec *tokenizer.Spec, toks []uint16) string {
	var b []byte
	for _, t := range toks {
		if t < tokenizer.NumByteTokens {
			b = append(b, byte(t))
			if len(b) >= 140 {
				break
			}
		}
	}
	return protocolOfBytes(spec, spec.PacketIP(b))
}

// protocolOfBytes names a packet's protocols from its kept bytes.
func protocolOfBytes(spec *tokenizer.Spec, b []byte) string {
	l := spec.Keep(b)
	ip := map[int]string{4: "IPv4", 6: "IPv6"}[l.Version]
	if ip == "" {
		return "other"
	}
	switch l.Proto {
	case tokenizer.ProtoTCP:
		return ip + "/TCP"
	case tokenizer.ProtoUDP:
		return ip + "/UDP"
	case tokenizer.ProtoICMP, tokenizer.ProtoICMPv6:
		return ip + "/ICMP"
	case -1:
		return ip + "/fragment"
	}
	return fmt.Sprintf("%s/proto-%d", ip, l.Proto)
}

// Write prints the info as text tables.
func (info DatasetInfo) Write(w io.Writer, topTokens int) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "dataset %s: %d traces, %d packets, %d tokens, %d row groups\n", info.Path, info.Traces, info.Packets, info.Tokens, info.RowGroups)
	s := info.Spec
	checksums := s.Checksums
	if checksums == "" {
		checksums = tokenizer.ChecksumsKeep
	}
	fmt.Fprintf(w, "tokenizer: spec v%d, layout %s, timing %v, payload tcp=%d udp=%d icmp=%d other=%d, checksums %s, vocabulary %d\n\n",
		s.Version, s.Layout, s.Timing, s.Payload.TCP, s.Payload.UDP, s.Payload.ICMP, s.Payload.Other, checksums, s.VocabSize)
	fmt.Fprintf(w, "tokens per packet: %.1f\n\n", float64(info.Tokens)/float64(max(info.Packets, 1)))
	fmt.Fprintln(tw, "label\ttraces\tpackets\ttokens\ttokens/packet\t")
	for _, l := range info.PerLabel {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f\t\n", l.Label, l.Traces, l.Packets, l.Tokens, float64(l.Tokens)/float64(max(l.Packets, 1)))
	}
	tw.Flush()
	fmt.Fprintln(w, "\nprotocol mix (packets):")
	for _, kv := range sortedCounts(info.Protocols) {
		fmt.Fprintf(tw, "%s\t%d\t%.1f%%\t\n", kv.k, kv.n, 100*float64(kv.n)/float64(max(info.Packets, 1)))
	}
	tw.Flush()
	fmt.Fprintln(w, "\nlink types of the source captures (traces):")
	for _, kv := range sortedCounts(info.LinkTypes) {
		fmt.Fprintf(tw, "%s\t%d\t\n", kv.k, kv.n)
	}
	tw.Flush()
	fmt.Fprintf(w, "\ntoken histogram (top %d of %d ids):\n", topTokens, len(info.TokenCount))
	ids := make([]int, len(info.TokenCount))
	for i := range ids {
		ids[i] = i
	}
	sort.SliceStable(ids, func(a, b int) bool { return info.TokenCount[ids[a]] > info.TokenCount[ids[b]] })
	for _, id := range ids[:min(topTokens, len(ids))] {
		if info.TokenCount[id] == 0 {
			break
		}
		fmt.Fprintf(tw, "%s\t%d\t%.2f%%\t\n", s.TokenString(id), info.TokenCount[id], 100*float64(info.TokenCount[id])/float64(max(info.Tokens, 1)))
	}
	return tw.Flush()
}

type kvCount struct {
	k string
	n int
}

func sortedCounts(m map[string]int) []kvCount {
	var out []kvCount
	for k, n := range m {
		out = append(out, kvCount{k, n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].n != out[j].n {
			return out[i].n > out[j].n
		}
		return out[i].k < out[j].k
	})
	return out
}
