package eval

import (
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// handBuiltTraces returns two traces of label x with known flows:
//
//	trace 1: A1 B1 A2 C1 A3 C2 A4 — flow A: TCP 10.0.0.1:1000 ↔ 10.0.0.2:80,
//	         4 packets; B: UDP 10.0.0.1:5000 → 10.0.0.3:53, 1 packet;
//	         C: UDP 10.0.0.4:6000 ↔ 10.0.0.2:7000, 2 packets
//	trace 2: two UDP packets between 10.0.0.9:1 and 10.0.0.8:2 (one flow)
func handBuiltTraces(t *testing.T) []*Trace {
	ip := func(last byte) net.IP { return net.IPv4(10, 0, 0, last).To4() }
	g := newTrafficGen(1)
	ts := g.t0
	next := func() time.Time { ts = ts.Add(time.Millisecond); return ts }
	g.tcp(next(), ip(1), ip(2), 1000, 80, 100, 0, "S", 0)     // A1
	g.udp(next(), ip(1), ip(3), 5000, 53, 30)                 // B1
	g.tcp(next(), ip(2), ip(1), 80, 1000, 900, 101, "SA", 0)  // A2
	g.udp(next(), ip(4), ip(2), 6000, 7000, 100)              // C1
	g.tcp(next(), ip(1), ip(2), 1000, 80, 101, 901, "A", 0)   // A3
	g.udp(next(), ip(2), ip(4), 7000, 6000, 100)              // C2
	g.tcp(next(), ip(1), ip(2), 1000, 80, 101, 901, "PA", 50) // A4
	trace := func(pkts []rawPacket) *Trace {
		tr := &Trace{Label: "x", Path: "hand-built"}
		for _, p := range pkts {
			tr.Packets = append(tr.Packets, parseFields(p.ts.UnixNano(), len(p.data), p.data))
		}
		return tr
	}
	t1 := trace(g.pkts)
	g.pkts = nil
	g.udp(next(), ip(9), ip(8), 1, 2, 10)
	g.udp(next(), ip(8), ip(9), 2, 1, 10)
	return []*Trace{t1, trace(g.pkts)}
}

func TestFlowStructureCountsHandBuiltFlows(t *testing.T) {
	traces := handBuiltTraces(t)
	for _, c := range []struct {
		window                         int
		short                          int
		packets                        int64
		flows, addrs, tcpPerFlow       float64
		singleHits, singleTotal, tcpPk int64
	}{
		// Whole traces: trace 1 has 3 flows, 4 addresses, 4 TCP packets in 1 TCP
		// flow, 1 single-packet flow; trace 2 has 1 flow, 2 addresses.
		{window: 500, short: 2, packets: 9, flows: 2, addrs: 3, tcpPerFlow: 4, singleHits: 1, singleTotal: 4, tcpPk: 4},
		// First 3 packets: trace 1 holds A1 B1 A2 (flows A, B; addresses
		// .1 .2 .3; 2 TCP packets in flow A; B single), trace 2 both packets.
		{window: 3, short: 1, packets: 5, flows: 1.5, addrs: 2.5, tcpPerFlow: 2, singleHits: 1, singleTotal: 3, tcpPk: 2},
	} {
		fs := flowStructure(countWindows(traces, c.window), c.window, nil)
		if fs.Traces != 2 || fs.ShortTraces != c.short || fs.PacketsCounted != c.packets {
			t.Errorf("window %d: traces %d short %d packets %d; want 2, %d, %d", c.window, fs.Traces, fs.ShortTraces, fs.PacketsCounted, c.short, c.packets)
		}
		if fs.FlowsPerWindow != c.flows || fs.AddressesPerWindow != c.addrs {
			t.Errorf("window %d: flows %g addresses %g per window; want %g, %g", c.window, fs.FlowsPerWindow, fs.AddressesPerWindow, c.flows, c.addrs)
		}
		if fs.TCPPacketsPerTCPFlow == nil || *fs.TCPPacketsPerTCPFlow != c.tcpPerFlow || fs.TCPPackets != c.tcpPk || fs.TCPFlows != 1 {
			t.Errorf("window %d: TCP packets per TCP flow %v (%d/%d); want %g", c.window, fs.TCPPacketsPerTCPFlow, fs.TCPPackets, fs.TCPFlows, c.tcpPerFlow)
		}
		if fs.SinglePacketFlows.Hits != c.singleHits || fs.SinglePacketFlows.Total != c.singleTotal {
			t.Errorf("window %d: single-packet flows %s; want %d/%d", c.window, fs.SinglePacketFlows, c.singleHits, c.singleTotal)
		}
	}
	// Without TCP the ratio is undefined, not zero.
	if fs := flowStructure(countWindows(traces[1:], 500), 500, nil); fs.TCPPacketsPerTCPFlow != nil {
		t.Errorf("TCP packets per TCP flow without TCP = %v, want null", *fs.TCPPacketsPerTCPFlow)
	}
}

func TestReportCarriesFlowStructurePerLabelUnderStableKeys(t *testing.T) {
	traces := handBuiltTraces(t)
	r, _ := Evaluate(traces, traces, nil, Options{SkipUtility: true, FlowWindow: 3})
	got := r.FlowStructure.PerLabel["x"]
	if r.FlowStructure.WindowPackets != 3 || got.Real.FlowsPerWindow != 1.5 || got.Synth.AddressesPerWindow != 2.5 {
		t.Fatalf("flow structure of label x: %+v", r.FlowStructure)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"flow_structure":{"window_packets":3,`, `"flows_per_window":1.5`, `"addresses_per_window":2.5`,
		`"tcp_packets_per_tcp_flow":2`, `"single_packet_flows":{"hits":1,"total":3,`, `"label_confusion":`, `"own_closest":1`, `"tcp_flows_seq_monotone":`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("metrics.json lacks %s", key)
		}
	}
	md := Markdown(r)
	for _, want := range []string{"## Flow structure", "| x | 2 / 2 | 1.5 / 1.5 | 2.5 / 2.5 | 2.0 / 2.0 | 33.3 % / 33.3 % |", "## Label confusion", "## Summary"} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
}

func TestLabelConfusionFindsEachLabelsOwnAndSwappedLabels(t *testing.T) {
	dir := t.TempDir()
	real := loadAll(t, makeWorkloadCaptures(t, filepath.Join(dir, "real"), []string{"bulk", "call"}, 2, 800, 40))
	synth := loadAll(t, makeWorkloadCaptures(t, filepath.Join(dir, "synth"), []string{"bulk", "call"}, 2, 800, 41))
	r, _ := Evaluate(real, synth, nil, Options{SkipUtility: true})
	lc := r.LabelConfusion
	if lc.Compared != 2 || lc.OwnClosest != 2 || len(lc.Rows) != 2 {
		t.Fatalf("confusion: %+v; want both labels closest to their own", lc)
	}
	for _, row := range lc.Rows {
		// The diagonal is the per-label fidelity's mean JSD.
		if own := r.Fidelity.PerLabel[row.SynthLabel].MeanJSD; row.MeanJSD[row.SynthLabel] != own {
			t.Errorf("%s: confusion diagonal %g, per-label mean JSD %g", row.SynthLabel, row.MeanJSD[row.SynthLabel], own)
		}
	}
	for _, s := range synth {
		s.Label = map[string]string{"bulk": "call", "call": "bulk"}[s.Label]
	}
	r, _ = Evaluate(real, synth, nil, Options{SkipUtility: true})
	if r.LabelConfusion.OwnClosest != 0 {
		t.Errorf("swapped labels: %d labels closest to their own, want 0", r.LabelConfusion.OwnClosest)
	}
	for _, row := range r.LabelConfusion.Rows {
		if row.OwnIsClosest || row.ClosestReal == row.SynthLabel {
			t.Errorf("swapped label %s: closest real %s", row.SynthLabel, row.ClosestReal)
		}
	}
	if !strings.Contains(Markdown(r), "(not its own)") {
		t.Error("report.md does not flag labels closest to another label")
	}
}

func TestComplianceAndVerbatimArePerLabel(t *testing.T) {
	dir := t.TempDir()
	train := loadAll(t, makeWorkloadCaptures(t, filepath.Join(dir, "train"), []string{"bulk", "call"}, 1, 600, 50))
	real := loadAll(t, makeWorkloadCaptures(t, filepath.Join(dir, "real"), []string{"bulk", "call"}, 1, 600, 51))
	fresh := loadAll(t, makeWorkloadCaptures(t, filepath.Join(dir, "synth"), []string{"call"}, 1, 600, 52))
	synth := append(withLabel(train, "bulk"), fresh...) // bulk replays its training traffic
	r, _ := Evaluate(real, synth, train, Options{SkipUtility: true})
	if v := r.Privacy.PerLabel["bulk"].SynthVerbatim; v.Value != 1 {
		t.Errorf("replayed bulk: verbatim %s, want 1", v)
	}
	if v := r.Privacy.PerLabel["call"].SynthVerbatim; v.Value > 0.2 {
		t.Errorf("fresh call traffic: verbatim %s, want few", v)
	}
	for _, l := range []string{"bulk", "call"} {
		lc, ok := r.Compliance.PerLabel[l]
		if !ok {
			t.Fatalf("no compliance for label %s", l)
		}
		ref := lc.Synth.Checks[0].Reference
		if ref == nil || *ref != lc.Real.IPTransportParse || !lc.Synth.Pass {
			t.Errorf("%s: synthetic judged against %v, want the same label's real %s; pass %v", l, ref, lc.Real.IPTransportParse, lc.Synth.Pass)
		}
	}
}

// TestMalformedFramesAreCountedByTshark writes a capture of 10 well-formed
// packets and 3 DNS queries whose payload is cut short (tshark: Malformed
// Packet) and checks the counts, per label and pooled.
func TestMalformedFramesAreCountedByTshark(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark not on PATH")
	}
	dir := t.TempDir()
	g := newTrafficGen(3)
	a, b := net.IPv4(10, 0, 0, 1).To4(), net.IPv4(10, 0, 0, 2).To4()
	ts := g.t0
	for i := range 10 {
		ts = ts.Add(time.Millisecond)
		g.udp(ts, a, b, 40000, 40001, 20+i)
	}
	for range 3 {
		ts = ts.Add(time.Millisecond)
		g.udp(ts, a, b, 40002, 53, 3) // 3 bytes of a 12-byte DNS header
	}
	bad := filepath.Join(dir, "synth", "x", "bad.pcap")
	writePcap(t, bad, g.pkts, 0)
	good := filepath.Join(dir, "real", "x", "good.pcap")
	writePcap(t, good, g.pkts[:10], 0)
	real, synth := loadAll(t, []string{good}), loadAll(t, []string{bad})
	m, err := malformed(tshark, real, synth)
	if err != nil {
		t.Fatal(err)
	}
	if m.Real.Frames.Hits != 0 || m.Real.Frames.Total != 10 || m.Synth.Frames.Hits != 3 || m.Synth.Frames.Total != 13 || m.Synth.PerLabel["x"] != m.Synth.Frames {
		t.Errorf("malformed: real %s, synthetic %s (label x %s); want 0/10 and 3/13", m.Real.Frames, m.Synth.Frames, m.Synth.PerLabel["x"])
	}
	if m.Synth.Layers["dns"] != 3 || len(m.Synth.Layers) != 1 || len(m.Real.Layers) != 0 {
		t.Errorf("malformed by layer: synthetic %v, real %v; want dns 3 and none", m.Synth.Layers, m.Real.Layers)
	}
	if !strings.HasPrefix(m.Tool, "TShark") {
		t.Errorf("tool %q", m.Tool)
	}
}
