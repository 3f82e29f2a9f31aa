package eval

import (
	"math"
	"sort"
)

// DefaultFlowWindow is the number of IP packets at the start of each trace
// over which the flow-structure figures are counted.
const DefaultFlowWindow = 500

// FlowStructure holds the flow-structure figures of one group of traces
// (one side, one label or all), each counted over the first Window IP
// packets of every trace (fewer in traces that have fewer: ShortTraces) so
// that traces of any length compare. Flows are bidirectional 5-tuples (IP
// protocol, addresses and ports; both directions one flow).
type FlowStructure struct {
	Traces      int `json:"traces"`       // traces with at least one IP packet
	ShortTraces int `json:"short_traces"` // of them, traces with fewer IP packets than the window
	// PacketsCounted: IP packets in the windows, all traces together.
	PacketsCounted int64 `json:"packets_counted"`
	// FlowsPerWindow: flows among a trace's first Window IP packets, mean over traces.
	FlowsPerWindow float64 `json:"flows_per_window"`
	// AddressesPerWindow: distinct IP addresses (source or destination)
	// among a trace's first Window IP packets, mean over traces.
	AddressesPerWindow float64 `json:"addresses_per_window"`
	// TCPPacketsPerTCPFlow: TCP packets over TCP flows in the windows, all
	// traces pooled (null without TCP).
	TCPPacketsPerTCPFlow *float64 `json:"tcp_packets_per_tcp_flow"`
	TCPPackets           int64    `json:"tcp_packets"`
	TCPFlows             int64    `json:"tcp_flows"`
	// SinglePacketFlows: flows of one packet in the window, of all flows in
	// the windows (all traces pooled).
	SinglePacketFlows Share `json:"single_packet_flows"`
}

// FlowStructureBySide holds a group's figures on both sides.
type FlowStructureBySide struct {
	Real  FlowStructure `json:"real"`
	Synth FlowStructure `json:"synth"`
}

// FlowStructureReport is the flow-structure section of a report: pooled
// over all traces and per label (labels on both sides).
type FlowStructureReport struct {
	WindowPackets int                            `json:"window_packets"`
	Pooled        FlowStructureBySide            `json:"pooled"`
	PerLabel      map[string]FlowStructureBySide `json:"per_label"`
}

// windowCounts are one trace's flow-structure counts over its window.
type windowCounts struct {
	label                     string
	packets                   int64
	flows, addresses          int64
	tcpPackets, tcpFlows      int64
	singlePacketFlows, traces int64
}

// countWindow counts flows, addresses and TCP packets among the first n IP
// packets of t.
func countWindow(t *Trace, n int) windowCounts {
	c := windowCounts{label: t.Label}
	flows := map[flowKey]int64{}
	addrs := map[[16]byte]struct{}{}
	for i := range t.Packets {
		p := &t.Packets[i]
		if !p.has(stIP) {
			continue
		}
		if c.packets == int64(n) {
			break
		}
		c.packets++
		k, _ := keyOf(p)
		flows[k]++
		addrs[p.Src], addrs[p.Dst] = struct{}{}, struct{}{}
		if p.Proto == protoTCP {
			c.tcpPackets++
		}
	}
	if c.packets > 0 {
		c.traces = 1
	}
	c.flows, c.addresses = int64(len(flows)), int64(len(addrs))
	for k, n := range flows {
		if k.proto == protoTCP {
			c.tcpFlows++
		}
		if n == 1 {
			c.singlePacketFlows++
		}
	}
	return c
}

// flowStructure aggregates the windows of the traces that keep accepts.
func flowStructure(ws []windowCounts, window int, keep func(string) bool) FlowStructure {
	var fs FlowStructure
	var flows, addrs, single int64
	for _, w := range ws {
		if w.traces == 0 || (keep != nil && !keep(w.label)) {
			continue
		}
		fs.Traces++
		if w.packets < int64(window) {
			fs.ShortTraces++
		}
		fs.PacketsCounted += w.packets
		flows += w.flows
		addrs += w.addresses
		single += w.singlePacketFlows
		fs.TCPPackets += w.tcpPackets
		fs.TCPFlows += w.tcpFlows
	}
	if fs.Traces > 0 {
		fs.FlowsPerWindow = float64(flows) / float64(fs.Traces)
		fs.AddressesPerWindow = float64(addrs) / float64(fs.Traces)
	}
	if fs.TCPFlows > 0 {
		v := float64(fs.TCPPackets) / float64(fs.TCPFlows)
		fs.TCPPacketsPerTCPFlow = &v
	}
	fs.SinglePacketFlows = newShare(single, flows)
	return fs
}

func countWindows(traces []*Trace, window int) []windowCounts {
	out := make([]windowCounts, len(traces))
	for i, t := range traces {
		out[i] = countWindow(t, window)
	}
	return out
}

// flowStructureReport computes the figures pooled and for each label in labels.
func flowStructureReport(real, synth []*Trace, window int, labels []string) *FlowStructureReport {
	rw, sw := countWindows(real, window), countWindows(synth, window)
	r := &FlowStructureReport{WindowPackets: window, PerLabel: map[string]FlowStructureBySide{}}
	r.Pooled = FlowStructureBySide{Real: flowStructure(rw, window, nil), Synth: flowStructure(sw, window, nil)}
	for _, l := range labels {
		keep := func(x string) bool { return x == l }
		r.PerLabel[l] = FlowStructureBySide{Real: flowStructure(rw, window, keep), Synth: flowStructure(sw, window, keep)}
	}
	return r
}

// ConfusionRow compares one synthetic label with every real label.
type ConfusionRow struct {
	SynthLabel string `json:"synth_label"`
	// MeanJSD: the mean JSD over the fidelity metrics (as fidelity's
	// mean_jsd) of this synthetic label's traffic against each real label's.
	MeanJSD map[string]float64 `json:"mean_jsd"`
	// ClosestReal: the real label of least mean JSD.
	ClosestReal string `json:"closest_real"`
	// OwnIsClosest: the synthetic label's own real label is the closest
	// (false when the real side lacks the label).
	OwnIsClosest bool `json:"own_is_closest"`
}

// LabelConfusion is the label-confusion matrix: every synthetic label
// against every real label, by mean JSD.
type LabelConfusion struct {
	RealLabels []string       `json:"real_labels"`
	Rows       []ConfusionRow `json:"rows"`
	// OwnClosest counts the synthetic labels closest to their own real
	// label, of Compared synthetic labels that the real side has.
	OwnClosest int `json:"own_closest"`
	Compared   int `json:"compared"`
}

// labelConfusion compares every synthetic label's pooled traffic with every
// real label's.
func labelConfusion(realByLabel, synthByLabel map[string]*sideSummary) *LabelConfusion {
	rl, sl := sortedKeys(realByLabel), sortedKeys(synthByLabel)
	lc := &LabelConfusion{RealLabels: rl}
	for _, s := range sl {
		row := ConfusionRow{SynthLabel: s, MeanJSD: map[string]float64{}}
		best := math.Inf(1)
		for _, r := range rl {
			d := compareGroups(realByLabel[r], synthByLabel[s]).MeanJSD
			row.MeanJSD[r] = d
			if d < best {
				best, row.ClosestReal = d, r
			}
		}
		if _, ok := realByLabel[s]; ok {
			lc.Compared++
			row.OwnIsClosest = row.MeanJSD[s] <= best // a tie counts for the own label
			if row.OwnIsClosest {
				lc.OwnClosest++
			}
		}
		lc.Rows = append(lc.Rows, row)
	}
	return lc
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
