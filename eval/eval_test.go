package eval

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"gonum.org/v1/gonum/stat"

	"github.com/netssm/netssm/plots"
	"github.com/netssm/netssm/tokenizer"
)

func TestRealVersusItselfHasZeroDivergence(t *testing.T) {
	dir := t.TempDir()
	traces := loadAll(t, makeWorkloadCaptures(t, dir, []string{"bulk", "call"}, 2, 1500, 1))
	r, _ := Evaluate(traces, traces, nil, Options{SkipUtility: true})
	groups := map[string]GroupFidelity{"pooled": r.Fidelity.Pooled}
	for l, g := range r.Fidelity.PerLabel {
		groups[l] = g
	}
	if len(groups) != 3 {
		t.Fatalf("compared %d groups, want pooled + 2 labels", len(groups))
	}
	for name, g := range groups {
		if len(g.Metrics) != int(numMetrics) {
			t.Errorf("%s: %d metrics compared, want %d (missing %v)", name, len(g.Metrics), numMetrics, g.Missing)
		}
		for k, d := range g.Metrics {
			if d.JSD != 0 || d.TV != 0 || d.Hellinger != 0 {
				t.Errorf("%s %s: JSD %g TV %g H %g, want 0", name, k, d.JSD, d.TV, d.Hellinger)
			}
			if d.Wasserstein1 != nil && *d.Wasserstein1 != 0 {
				t.Errorf("%s %s: W1 %g, want 0", name, k, *d.Wasserstein1)
			}
		}
	}
}

func TestDivergenceOfDisjointDistributionsIsMaximal(t *testing.T) {
	side := func(m metric, v ...float64) *sideSummary {
		s := &sideSummary{}
		s.values[m] = v
		return s
	}
	d, ok := divergence(mIPProto, side(mIPProto, 6, 6, 6), side(mIPProto, 17, 17))
	if !ok {
		t.Fatal("not compared")
	}
	for name, v := range map[string]float64{"JSD": d.JSD, "TV": d.TV, "Hellinger": d.Hellinger} {
		if math.Abs(v-1) > 1e-12 {
			t.Errorf("%s of disjoint distributions = %g, want 1", name, v)
		}
	}
	d, _ = divergence(mWireLen, side(mWireLen, 100, 100), side(mWireLen, 300, 300))
	if d.Wasserstein1 == nil || math.Abs(*d.Wasserstein1-200) > 1e-9 {
		t.Errorf("W1 of point masses at 100 and 300 bytes = %v, want 200", d.Wasserstein1)
	}
}

func TestSameWorkloadIsCloserThanOtherWorkload(t *testing.T) {
	dir := t.TempDir()
	a := loadAll(t, makeWorkloadCaptures(t, filepath.Join(dir, "a"), []string{"bulk", "call"}, 2, 1500, 1))
	b := loadAll(t, makeWorkloadCaptures(t, filepath.Join(dir, "b"), []string{"bulk", "call"}, 2, 1500, 2))
	byLabel := func(ts []*Trace, l string) []*Trace {
		var out []*Trace
		for _, x := range ts {
			if x.Label == l {
				out = append(out, x)
			}
		}
		return out
	}
	same, _ := Evaluate(byLabel(a, "bulk"), byLabel(b, "bulk"), nil, Options{SkipUtility: true})
	other, _ := Evaluate(byLabel(a, "bulk"), byLabel(b, "call"), nil, Options{SkipUtility: true})
	if !(same.Fidelity.Pooled.MeanJSD < other.Fidelity.Pooled.MeanJSD/3) {
		t.Errorf("mean JSD same workload %.4f, other workload %.4f: want same ≪ other",
			same.Fidelity.Pooled.MeanJSD, other.Fidelity.Pooled.MeanJSD)
	}
}

func TestWellFormedTrafficPassesCompliance(t *testing.T) {
	traces := loadAll(t, makeWorkloadCaptures(t, t.TempDir(), []string{"bulk", "call"}, 2, 1500, 3))
	counts := pool(analyzeAll(traces), nil).comp
	c := judgeAgainst(counts, counts)
	if !c.Pass {
		t.Fatalf("generated well-formed traffic fails compliance: %v\n%+v", c.Failed(), c)
	}
	for name, s := range map[string]Share{
		"parse": c.IPTransportParse, "checksum": c.IPv4ChecksumValid, "length": c.LengthConsistent,
		"flags": c.TCPFlagsValid, "handshake": c.HandshakeInOrder, "seq": c.SeqMonotone, "ack": c.AckNotAhead,
	} {
		if s.Total == 0 || s.Value != 1 {
			t.Errorf("%s share = %s, want 1", name, s)
		}
	}
}

// brokenCapture writes random bytes, IPv4 packets with bad checksums and
// out-of-order TCP, all at one constant timestamp.
func brokenCapture(t *testing.T, path string) {
	rng := rand.New(rand.NewPCG(9, 9))
	ts := time.Unix(1_700_000_000, 0)
	g := newTrafficGen(5)
	var pkts []rawPacket
	for i := range 600 {
		switch i % 3 {
		case 0: // random bytes
			b := make([]byte, 20+rng.IntN(100))
			for j := range b {
				b[j] = byte(rng.IntN(256))
			}
			pkts = append(pkts, rawPacket{ts: ts, data: b, length: len(b)})
		default: // a TCP segment with a corrupted IP checksum and random seq/ack/flags
			g.pkts = nil
			g.tcp(ts, net.IPv4(10, 0, 0, 1).To4(), net.IPv4(10, 0, 0, 2).To4(), 1234, 443, rng.Uint32(), rng.Uint32(), []string{"SF", "", "A", "FR", "P"}[rng.IntN(5)], rng.IntN(200))
			p := g.pkts[0]
			p.data[10] ^= 0x5a
			p.ts = ts
			pkts = append(pkts, p)
		}
	}
	writePcap(t, path, pkts, 0)
}

func TestBrokenCaptureFailsComplianceLoudly(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "synth", "broken.pcap")
	brokenCapture(t, bad)
	real := makeWorkloadCaptures(t, filepath.Join(dir, "real"), []string{"bulk"}, 1, 1000, 4)
	out := filepath.Join(dir, "report")
	r, err := Run(Config{Real: real, Synth: []string{bad}, OutDir: out, Options: Options{SkipUtility: true}})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Compliance.Real.Pass {
		t.Errorf("real side fails: %v", r.Compliance.Real.Failed())
	}
	if r.Compliance.Synth.Pass {
		t.Fatal("broken capture passes compliance")
	}
	failed := strings.Join(r.Compliance.Synth.Failed(), ",")
	for _, want := range []string{"ipv4_checksum_valid_or_offloaded", "ip_transport_parse", "tcp_flags_valid", "zero_inter_arrival", "traces_with_advancing_clock", "timestamps_nondecreasing"} {
		if want == "timestamps_nondecreasing" {
			continue // constant timestamps are non-decreasing; the two clock checks catch them
		}
		if !strings.Contains(failed, want) {
			t.Errorf("check %s did not fail (failed: %s)", want, failed)
		}
	}
	md, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "Synthetic: **FAIL**") {
		t.Errorf("report.md does not flag the synthetic side as failing")
	}
}

func serialize(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestParseFields(t *testing.T) {
	src, dst := net.IPv4(192, 0, 2, 1).To4(), net.IPv4(198, 51, 100, 2).To4()
	v4tcp := func() []byte {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 61, Protocol: layers.IPProtocolTCP, SrcIP: src, DstIP: dst}
		tc := &layers.TCP{SrcPort: 443, DstPort: 5555, Seq: 7, Ack: 9, ACK: true, PSH: true, Window: 501}
		_ = tc.SetNetworkLayerForChecksum(ip)
		return serialize(t, ip, tc, gopacket.Payload(make([]byte, 100)))
	}
	v6 := net.ParseIP("2001:db8::1")
	v6udp := func() []byte {
		ip := &layers.IPv6{Version: 6, HopLimit: 55, NextHeader: layers.IPProtocolUDP, SrcIP: v6, DstIP: net.ParseIP("2001:db8::2")}
		u := &layers.UDP{SrcPort: 443, DstPort: 60000}
		_ = u.SetNetworkLayerForChecksum(ip)
		return serialize(t, ip, u, gopacket.Payload(make([]byte, 50)))
	}
	v6hbh := func() []byte {
		ip := &layers.IPv6{Version: 6, HopLimit: 1, NextHeader: layers.IPProtocolIPv6HopByHop, SrcIP: v6, DstIP: net.ParseIP("ff02::16")}
		hbh := []byte{byte(layers.IPProtocolTCP), 0, 5, 2, 0, 0, 1, 0} // next TCP, len 0 (8 bytes), router alert
		tc := &layers.TCP{SrcPort: 1, DstPort: 2, SYN: true, Seq: 100}
		_ = tc.SetNetworkLayerForChecksum(ip)
		b := serialize(t, ip, gopacket.Payload(append(hbh, serialize(t, tc)...)))
		return b
	}
	cases := []struct {
		name    string
		data    []byte
		wireLen int
		mutate  func([]byte) []byte
		check   func(t *testing.T, p PacketFields)
	}{
		{"ipv4 tcp", v4tcp(), 0, nil, func(t *testing.T, p PacketFields) {
			if p.Version != 4 || p.Proto != protoTCP || p.TTL != 61 || p.SrcPort != 443 || p.DstPort != 5555 ||
				p.Window != 501 || p.WireLen != 140 || p.SegLen != 100 || p.TCPFlags != flagACK|flagPSH {
				t.Errorf("fields wrong: %+v", p)
			}
			for _, b := range []uint16{stIP, stL4, stIPv4ChecksumOK, stLengthOK, stTCPFlagsOK} {
				if !p.has(b) {
					t.Errorf("status bit %#x missing (status %#x)", b, p.Status)
				}
			}
		}},
		{"ipv4 bad checksum", v4tcp(), 0, func(b []byte) []byte { b[11] ^= 1; return b }, func(t *testing.T, p PacketFields) {
			if !p.has(stIPv4Checksum) || p.has(stIPv4ChecksumOK) {
				t.Errorf("bad checksum not detected (status %#x)", p.Status)
			}
		}},
		{"ipv4 truncated to 30 bytes keeps IP, loses TCP", v4tcp(), 0, func(b []byte) []byte { return b[:30] }, func(t *testing.T, p PacketFields) {
			if !p.has(stIP) || p.has(stL4) || p.WireLen != 140 {
				t.Errorf("truncated packet: status %#x wire %d", p.Status, p.WireLen)
			}
		}},
		{"ip length beyond frame is inconsistent", v4tcp(), 100, nil, func(t *testing.T, p PacketFields) {
			if p.has(stLengthOK) {
				t.Error("IP length 140 in a 100-byte frame accepted")
			}
		}},
		{"ipv6 udp", v6udp(), 0, nil, func(t *testing.T, p PacketFields) {
			if p.Version != 6 || p.Proto != protoUDP || p.TTL != 55 || p.WireLen != 98 || !p.has(stL4) || !p.has(stLengthOK) || p.has(stIPv4Checksum) {
				t.Errorf("fields wrong: %+v", p)
			}
		}},
		{"udp length mismatch", v6udp(), 0, func(b []byte) []byte { b[45]++; return b }, func(t *testing.T, p PacketFields) {
			if !p.has(stUDP) || p.has(stUDPLengthOK) {
				t.Errorf("UDP length ≠ IP payload length accepted (status %#x)", p.Status)
			}
		}},
		{"ipv4 length 0 is offload, read as the frame's length", v4tcp(), 0, func(b []byte) []byte { b[2], b[3] = 0, 0; return b }, func(t *testing.T, p PacketFields) {
			if !p.has(stIPLengthOffloaded) || !p.has(stLengthOK) || p.WireLen != 140 || p.SegLen != 100 {
				t.Errorf("offloaded length: status %#x wire %d seglen %d", p.Status, p.WireLen, p.SegLen)
			}
		}},
		{"ipv4 reserved flag", v4tcp(), 0, func(b []byte) []byte { b[6] |= 0x80; return b }, func(t *testing.T, p PacketFields) {
			if !p.has(stReservedSet) {
				t.Error("IPv4 reserved bit not seen")
			}
		}},
		{"tcp reserved bits", v4tcp(), 0, func(b []byte) []byte { b[32] |= 0x02; return b }, func(t *testing.T, p PacketFields) {
			if !p.has(stReservedSet) {
				t.Error("TCP reserved bit not seen")
			}
		}},
		{"ipv6 hop-by-hop then tcp", v6hbh(), 0, nil, func(t *testing.T, p PacketFields) {
			if p.Proto != protoTCP || !p.has(stL4) || p.Seq != 100 || p.SegLen != 1 {
				t.Errorf("extension header not walked: %+v", p)
			}
		}},
		{"not ip", []byte{0x00, 0x01, 0x02}, 0, nil, func(t *testing.T, p PacketFields) {
			if p.has(stIP) || p.Version != 0 {
				t.Errorf("non-IP parsed as IP: %+v", p)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := append([]byte(nil), c.data...)
			wl := len(b)
			if c.wireLen > 0 {
				wl = c.wireLen
			}
			if c.mutate != nil {
				b = c.mutate(b)
			}
			c.check(t, parseFields(0, wl, b))
		})
	}
}

func TestHeaderHashIgnoresChecksumsOnly(t *testing.T) {
	src, dst := net.IPv4(192, 0, 2, 1).To4(), net.IPv4(198, 51, 100, 2).To4()
	mk := func(ttl uint8) []byte {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: ttl, Protocol: layers.IPProtocolUDP, SrcIP: src, DstIP: dst}
		u := &layers.UDP{SrcPort: 1, DstPort: 2}
		_ = u.SetNetworkLayerForChecksum(ip)
		return serialize(t, ip, u, gopacket.Payload([]byte{1, 2, 3}))
	}
	a := parseFields(0, 31, mk(64))
	b := mk(64)
	b[10], b[11], b[26], b[27] = 0xde, 0xad, 0xbe, 0xef // both checksums
	if pb := parseFields(0, 31, b); pb.HdrHash != a.HdrHash {
		t.Error("changing only checksums changed the header hash")
	}
	if pc := parseFields(0, 31, mk(63)); pc.HdrHash == a.HdrHash {
		t.Error("changing the TTL left the header hash unchanged")
	}
}

// TestTCPFlagValidityIsTheTokenizersRule checks that eval judges flag sets
// by tokenizer.TCPFlagsValid, the rule structure-aware decoding enforces:
// every one of the 256 flag bytes, parsed from a segment, is marked valid
// exactly when that rule accepts it, and the rule's known cases hold.
func TestTCPFlagValidityIsTheTokenizersRule(t *testing.T) {
	for _, c := range []struct {
		flags uint8
		valid bool
	}{
		{flagSYN, true}, {flagSYN | flagACK, true}, {flagACK, true}, {flagPSH | flagACK, true},
		{flagFIN | flagACK, true}, {flagRST, true}, {flagRST | flagACK, true}, {flagSYN | flagECE | flagCWR, true},
		{0, false}, {flagSYN | flagFIN, false}, {flagSYN | flagRST, false}, {flagFIN | flagRST | flagACK, false},
		{flagFIN, false}, {flagFIN | flagPSH | flagURG, false}, {flagPSH, false}, {flagECE, false},
	} {
		if got := tokenizer.TCPFlagsValid(c.flags); got != c.valid {
			t.Errorf("flags %s: valid = %v, want %v", nameTCPFlags(int64(c.flags)), got, c.valid)
		}
	}
	g := newTrafficGen(1)
	g.tcp(g.t0, net.IPv4(10, 0, 0, 1).To4(), net.IPv4(10, 0, 0, 2).To4(), 1, 2, 1, 1, "A", 0)
	b := g.pkts[0].data
	for f := range 256 {
		b[33] = byte(f) // IPv4 header 20 bytes + TCP flags at offset 13
		p := parseFields(0, len(b), b)
		if p.TCPFlags != uint8(f) {
			t.Fatalf("flag byte %#x parsed as %#x", f, p.TCPFlags)
		}
		if p.has(stTCPFlagsOK) != tokenizer.TCPFlagsValid(uint8(f)) {
			t.Errorf("flags %s: eval says valid %v, tokenizer.TCPFlagsValid %v", nameTCPFlags(int64(f)), p.has(stTCPFlagsOK), !p.has(stTCPFlagsOK))
		}
	}
}

// tcpTrace builds a trace from TCP segments given as (dir, flags, seq, ack, payload).
type seg struct {
	fromClient bool
	flags      string
	seq, ack   uint32
	payload    int
}

func tcpTrace(t *testing.T, segs []seg) *Trace {
	g := newTrafficGen(1)
	c, s := net.IPv4(10, 0, 0, 1).To4(), net.IPv4(10, 0, 0, 2).To4()
	tr := &Trace{Label: "x"}
	for i, sg := range segs {
		g.pkts = nil
		if sg.fromClient {
			g.tcp(g.t0, c, s, 1000, 80, sg.seq, sg.ack, sg.flags, sg.payload)
		} else {
			g.tcp(g.t0, s, c, 80, 1000, sg.seq, sg.ack, sg.flags, sg.payload)
		}
		b := g.pkts[0].data
		tr.Packets = append(tr.Packets, parseFields(int64(i)*1e6, len(b), b))
	}
	return tr
}

func TestHandshakeOrderAndSeqAckConsistency(t *testing.T) {
	var isn, rsn uint32 = 4294967000, 100 // client ISN wraps past 2^32 during the flow
	good := []seg{
		{true, "S", isn, 0, 0},
		{false, "SA", rsn, isn + 1, 0},
		{true, "A", isn + 1, rsn + 1, 0},
		{true, "PA", isn + 1, rsn + 1, 500}, // crosses 2^32
		{false, "A", rsn + 1, isn + 501, 0},
		{true, "PA", isn + 501, rsn + 1, 100},
	}
	c := analyzeTrace(tcpTrace(t, good)).comp
	if c.HandshakeEligible != 1 || c.HandshakeOK != 1 || c.SeqOK != c.SeqChecked || c.AckOK != c.AckChecked || c.SeqChecked == 0 || c.AckChecked == 0 {
		t.Errorf("good flow (seq wrapping 2^32) judged bad: %+v", c)
	}

	swapped := []seg{{false, "SA", rsn, isn + 1, 0}, {true, "S", isn, 0, 0}, {true, "A", isn + 1, rsn + 1, 0}}
	if c := analyzeTrace(tcpTrace(t, swapped)).comp; c.FlowsOpeningWithSYN != 0 || c.HandshakeOK != 0 {
		t.Errorf("flow opening with SYN-ACK counted as opening with SYN: %+v", c)
	}
	wrongAck := []seg{{true, "S", isn, 0, 0}, {false, "SA", rsn, isn + 7, 0}, {true, "A", isn + 1, rsn + 1, 0}}
	if c := analyzeTrace(tcpTrace(t, wrongAck)).comp; c.HandshakeEligible != 1 || c.HandshakeOK != 0 {
		t.Errorf("SYN-ACK acking the wrong number passed: %+v", c)
	}

	ackAhead := append(append([]seg(nil), good...), seg{false, "A", rsn + 1, isn + 5000, 0})
	if c := analyzeTrace(tcpTrace(t, ackAhead)).comp; c.AckOK != c.AckChecked-1 {
		t.Errorf("ack beyond the peer's data not caught: %d of %d ok", c.AckOK, c.AckChecked)
	}
	backwards := append(append([]seg(nil), good...), seg{true, "PA", isn - 1000, rsn + 1, 10})
	if c := analyzeTrace(tcpTrace(t, backwards)).comp; c.SeqOK != c.SeqChecked-1 {
		t.Errorf("sequence number going backwards not caught: %d of %d ok", c.SeqOK, c.SeqChecked)
	}
}

func TestConcurrentFlowsCountsOverlaps(t *testing.T) {
	tr := &Trace{Packets: []PacketFields{{TimeNS: 0, Status: stIP}, {TimeNS: 5, Status: stIP}, {TimeNS: 10, Status: stIP}}}
	got := concurrentFlows(tr, []int64{0, 5, 20}, []int64{10, 5, 30})
	want := []float64{1, 2, 1} // at 5: flows [0,10] and [5,5]; at 10: [0,10]
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("concurrent flows = %v, want %v", got, want)
		}
	}
}

func TestClassifierTellsWorkloadsApartAndTSTRDetectsSwappedLabels(t *testing.T) {
	dir := t.TempDir()
	real := loadAll(t, makeWorkloadCaptures(t, filepath.Join(dir, "real"), []string{"bulk", "call"}, 4, 1200, 10))
	synth := loadAll(t, makeWorkloadCaptures(t, filepath.Join(dir, "synth"), []string{"bulk", "call"}, 2, 1200, 11))
	u := utility(real, synth, 100)
	if u.TRTR == nil || u.TSTR == nil {
		t.Fatalf("classifier not run: %+v", u)
	}
	if u.TRTR.Accuracy < 0.95 || u.TSTR.Accuracy < 0.95 || u.TSTR.MacroF1 < 0.95 {
		t.Errorf("TRTR acc %.3f, TSTR acc %.3f F1 %.3f: want ≥ 0.95 on clearly different workloads",
			u.TRTR.Accuracy, u.TSTR.Accuracy, u.TSTR.MacroF1)
	}
	// A generator that mixes up labels must lose TSTR utility.
	for _, s := range synth {
		s.Label = map[string]string{"bulk": "call", "call": "bulk"}[s.Label]
	}
	u = utility(real, synth, 100)
	if u.TSTR.Accuracy > 0.2 {
		t.Errorf("TSTR accuracy %.3f with swapped synthetic labels, want ≤ 0.2", u.TSTR.Accuracy)
	}
}

func TestPrivacyFlagsCopiedTrainingPackets(t *testing.T) {
	dir := t.TempDir()
	train := loadAll(t, makeWorkloadCaptures(t, filepath.Join(dir, "train"), []string{"bulk"}, 2, 1000, 20))
	heldOut := loadAll(t, makeWorkloadCaptures(t, filepath.Join(dir, "real"), []string{"bulk"}, 1, 1000, 21))
	p := privacy(train, heldOut, train) // a "generator" that replays its training data
	if p.SynthVerbatim.Value != 1 || p.SynthDCR.Median != 0 || p.SynthDCR.ZeroShare != 1 {
		t.Errorf("replayed training packets: verbatim %s, DCR median %.1f zero share %.2f; want 1, 0, 1",
			p.SynthVerbatim, p.SynthDCR.Median, p.SynthDCR.ZeroShare)
	}
	if p.RealVerbatim.Value > 0.05 || p.RealDCR.Median < 2 {
		t.Errorf("held-out packets: verbatim %s, DCR median %.1f; want few copies and distance ≥ 2 bytes", p.RealVerbatim, p.RealDCR.Median)
	}
}

func TestDifferingBytesCountsBytes(t *testing.T) {
	var a, b hdrWords
	if d := differingBytes(&a, &b); d != 0 {
		t.Fatalf("identical vectors differ in %d bytes", d)
	}
	b[0] = 0x80_00_00_00_00_00_01_00 // two bytes differ, one in its high bit
	b[7] = 0xff
	if d := differingBytes(&a, &b); d != 3 {
		t.Fatalf("differing bytes = %d, want 3", d)
	}
}

func TestReportDirectoryIsComplete(t *testing.T) {
	dir := t.TempDir()
	real := makeWorkloadCaptures(t, filepath.Join(dir, "real"), []string{"bulk", "call"}, 2, 800, 30)
	synth := makeWorkloadCaptures(t, filepath.Join(dir, "synth"), []string{"bulk", "call"}, 2, 800, 31)
	out := filepath.Join(dir, "report")
	if _, err := Run(Config{Real: real, Synth: synth, Train: real, OutDir: out, Options: Options{WindowPackets: 100}}); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	data, err := os.ReadFile(filepath.Join(out, "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"schema", "inputs", "fidelity", "compliance", "utility", "privacy", "figures"} {
		if _, ok := m[k]; !ok {
			t.Errorf("metrics.json lacks %q", k)
		}
	}
	r, err := ReadReport(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Fidelity.Pooled.Metrics["wire_len"]; !ok {
		t.Error("pooled wire_len divergence missing after reading back")
	}
	if !r.Privacy.RealOverlapsTrain {
		t.Error("real = train not flagged as overlapping")
	}
	figs, err := plots.ReadFigures(filepath.Join(out, "plots", "figures.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"flow_bytes_cdf", "flow_duration_cdf", "flow_packets_cdf", "inter_arrival_cdf", "ip_proto_mix", "packets_over_time", "port_mix", "wire_len_cdf"}
	var drawn []plots.Figure
	perLabel := 0
	for _, f := range figs {
		if strings.Contains(f.Name, "__") {
			perLabel++
			if _, err := os.Stat(filepath.Join(out, "plots", f.Name+".png")); err == nil {
				t.Errorf("per-label figure %s drawn into the report", f.Name)
			}
			continue
		}
		drawn = append(drawn, f)
	}
	if perLabel != 2*5 {
		t.Errorf("%d per-label CDF figures, want 5 for each of 2 labels", perLabel)
	}
	if len(drawn) != len(want) {
		t.Fatalf("%d figures drawn, want %d", len(drawn), len(want))
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	for i, f := range drawn {
		if f.Name != want[i] {
			t.Errorf("figure %d is %s, want %s", i, f.Name, want[i])
		}
		for _, ext := range []string{".png", ".svg"} {
			if _, err := os.Stat(filepath.Join(out, "plots", f.Name+ext)); err != nil {
				t.Error(err)
			}
		}
		if !strings.Contains(string(md), "plots/"+f.Name+".png") {
			t.Errorf("report.md does not embed %s", f.Name)
		}
	}
	filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if strings.Contains(p, ".partial-") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
}

func TestLabelsComeFromCSVElseDirectory(t *testing.T) {
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "labels.csv")
	os.WriteFile(csvPath, []byte("file,label\ncaps/a.pcap,video\n/abs/b.pcapng,voice\n"), 0o644)
	l, err := ReadLabels(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		filepath.Join(dir, "caps", "a.pcap"): "video", // relative to the CSV
		"caps/a.pcap":                        "video",
		"/elsewhere/b.pcapng":                "voice", // by base name
		"/data/web_browsing/c.pcap":          "web_browsing",
	} {
		if got := l.Label(path); got != want {
			t.Errorf("Label(%s) = %q, want %q", path, got, want)
		}
	}
	os.WriteFile(csvPath, []byte("a.pcap\n"), 0o644)
	if _, err := ReadLabels(csvPath); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("one-column labels file: err = %v, want a line number", err)
	}
}

func TestExpandCapturesFindsFilesAndNamesMissingPaths(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a/x.pcap", "a/b/y.pcapng", "a/notes.txt", "z.cap"} {
		p := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, nil, 0o644)
	}
	got, err := ExpandCaptures([]string{filepath.Join(dir, "a"), filepath.Join(dir, "z.cap")})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "a/b/y.pcapng"), filepath.Join(dir, "a/x.pcap"), filepath.Join(dir, "z.cap")}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("ExpandCaptures = %v, want %v", got, want)
	}
	// A directory given as a symbolic link is searched, under the name given.
	link := filepath.Join(dir, "link")
	if err := os.Symlink(filepath.Join(dir, "a"), link); err != nil {
		t.Fatal(err)
	}
	got, err = ExpandCaptures([]string{link})
	if err != nil {
		t.Fatal(err)
	}
	want = []string{filepath.Join(link, "b/y.pcapng"), filepath.Join(link, "x.pcap")}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("ExpandCaptures(symlinked directory) = %v, want %v", got, want)
	}
	missing := filepath.Join(dir, "nope")
	if _, err := ExpandCaptures([]string{missing}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing path: err = %v, want one naming %s", err, missing)
	}
	os.MkdirAll(filepath.Join(dir, "empty"), 0o755)
	if _, err := ExpandCaptures([]string{filepath.Join(dir, "empty")}); err == nil {
		t.Error("directory without captures accepted")
	}
}

func TestUndefinedShareIsNullInJSON(t *testing.T) {
	b, err := json.Marshal(newShare(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"hits":0,"total":0,"value":null}` {
		t.Errorf("empty share = %s", b)
	}
	var s Share
	if err := json.Unmarshal([]byte(`{"hits":1,"total":4,"value":0.25}`), &s); err != nil || s.Value != 0.25 {
		t.Errorf("share read back as %+v (%v)", s, err)
	}
}

func TestCorruptCaptureFileIsAnErrorNamingIt(t *testing.T) {
	p := filepath.Join(t.TempDir(), "junk.pcap")
	os.WriteFile(p, []byte("this is not a capture file at all"), 0o644)
	_, err := LoadTraces([]string{p}, Labeler{}, "test")
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("err = %v, want one naming %s", err, p)
	}
}

func TestWasserstein1AgreesWithGonum(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for trial := range 20 {
		a := make([]float64, 1+rng.IntN(300))
		b := make([]float64, 1+rng.IntN(300))
		for i := range a {
			a[i] = float64(rng.IntN(50)) // ties on purpose
		}
		for i := range b {
			b[i] = rng.NormFloat64()*10 + 20
		}
		slices.Sort(a)
		slices.Sort(b)
		got, want := wasserstein1Sorted(a, b), stat.WassersteinDistance(a, b, nil, nil)
		if math.Abs(got-want) > 1e-9*math.Max(1, want) {
			t.Fatalf("trial %d: W1 = %v, gonum says %v", trial, got, want)
		}
	}
}

func TestEvaluationIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	real := loadAll(t, makeWorkloadCaptures(t, filepath.Join(dir, "real"), []string{"bulk", "call"}, 2, 600, 60))
	synth := loadAll(t, makeWorkloadCaptures(t, filepath.Join(dir, "synth"), []string{"bulk", "call"}, 2, 600, 61))
	encode := func() string {
		r, figs := Evaluate(real, synth, real, Options{WindowPackets: 50})
		r.ElapsedS = 0
		b, err := json.Marshal(struct {
			R *Report
			F []plots.Figure
		}{r, figs})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if a, b := encode(), encode(); a != b {
		t.Error("two evaluations of the same captures differ")
	}
}
