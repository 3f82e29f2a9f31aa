package eval

import (
	"bytes"
	"slices"
	"sort"
)

// metric indexes the distributions compared between real and synthetic traffic.
type metric int

const (
	mWireLen metric = iota
	mIPProto
	mTTL
	mTCPFlags
	mTCPWindow
	mPort
	mInterArrival
	mFlowsPerTrace
	mFlowPackets
	mFlowBytes
	mFlowDuration
	mConcurrentFlows
	numMetrics
)

// traceAnalysis is what one pass over a trace yields: the raw values of every
// metric and the protocol-compliance counts.
type traceAnalysis struct {
	label  string
	values [numMetrics][]float64
	comp   complianceCounts
}

// complianceCounts are the numerators and denominators of the compliance shares.
type complianceCounts struct {
	Records, IP, IPTransport               int64
	ICMP, IPLengthOffloaded                int64
	OtherProtocol                          int64 // records of another network protocol (ARP, …)
	IPv4, IPv4ChecksumOK, IPv4ChecksumZero int64
	LengthOK                               int64
	UDP, UDPLengthOK                       int64
	ReservedZero                           int64
	TCP, TCPFlagsOK                        int64
	TCPFlows, FlowsOpeningWithSYN          int64
	TCPFlowsSeqJudged, TCPFlowsSeqMonotone int64
	HandshakeEligible, HandshakeOK         int64
	SeqChecked, SeqOK                      int64
	AckChecked, AckOK                      int64
	InterArrivals, NonNegative, Zero       int64
	Traces, TracesMultiPacket              int64 // all; with ≥ 2 IP packets
	TracesWithAdvancingClock               int64
	UDPFlows, Flows                        int64
}

func (c *complianceCounts) add(o complianceCounts) {
	c.Records += o.Records
	c.OtherProtocol += o.OtherProtocol
	c.IP += o.IP
	c.IPTransport += o.IPTransport
	c.ICMP += o.ICMP
	c.IPLengthOffloaded += o.IPLengthOffloaded
	c.IPv4 += o.IPv4
	c.IPv4ChecksumOK += o.IPv4ChecksumOK
	c.IPv4ChecksumZero += o.IPv4ChecksumZero
	c.LengthOK += o.LengthOK
	c.UDP += o.UDP
	c.UDPLengthOK += o.UDPLengthOK
	c.ReservedZero += o.ReservedZero
	c.TCP += o.TCP
	c.TCPFlagsOK += o.TCPFlagsOK
	c.TCPFlows += o.TCPFlows
	c.FlowsOpeningWithSYN += o.FlowsOpeningWithSYN
	c.TCPFlowsSeqJudged += o.TCPFlowsSeqJudged
	c.TCPFlowsSeqMonotone += o.TCPFlowsSeqMonotone
	c.HandshakeEligible += o.HandshakeEligible
	c.HandshakeOK += o.HandshakeOK
	c.SeqChecked += o.SeqChecked
	c.SeqOK += o.SeqOK
	c.AckChecked += o.AckChecked
	c.AckOK += o.AckOK
	c.InterArrivals += o.InterArrivals
	c.NonNegative += o.NonNegative
	c.Zero += o.Zero
	c.Traces += o.Traces
	c.TracesMultiPacket += o.TracesMultiPacket
	c.TracesWithAdvancingClock += o.TracesWithAdvancingClock
	c.UDPFlows += o.UDPFlows
	c.Flows += o.Flows
}

// flowKey is a bidirectional 5-tuple: endpoint a sorts before endpoint b.
type flowKey struct {
	a, b   [16]byte
	pa, pb uint16
	proto  uint8
}

// keyOf returns the flow key of p and the direction (0: p goes a→b).
func keyOf(p *PacketFields) (flowKey, int) {
	c := bytes.Compare(p.Src[:], p.Dst[:])
	if c < 0 || (c == 0 && p.SrcPort <= p.DstPort) {
		return flowKey{a: p.Src, b: p.Dst, pa: p.SrcPort, pb: p.DstPort, proto: p.Proto}, 0
	}
	return flowKey{a: p.Dst, b: p.Src, pa: p.DstPort, pb: p.SrcPort, proto: p.Proto}, 1
}

// Handshake states of a TCP flow.
const (
	hsMidstream = iota // first packet was not a bare SYN: not judged
	hsSawSYN
	hsSawSYNACK
	hsDone
	hsFailed
	hsAborted // a RST ended the handshake (a refused or abandoned connection): not judged
)

type tcpDirection struct {
	seen    bool
	isn     uint32 // sequence number of this side's last SYN (valid when synSeen)
	synSeen bool
	maxSeq  uint32 // highest sequence number seen (mod 2^32)
	next    uint32 // highest seq+SegLen: the end of the data this side sent
}

type flowState struct {
	first, last int64
	packets     int64
	bytes       int64
	// TCP only
	initiator  int // direction of the first packet
	hs         int
	isnC, isnS uint32
	dirs       [2]tcpDirection
	// seqJudged: some segment's sequence number was checked; seqRegressed:
	// some segment fell behind its direction's highest one.
	seqJudged, seqRegressed bool
}

// seqAfter reports whether a ≥ b modulo 2^32 (RFC 1982 serial arithmetic).
func seqAfter(a, b uint32) bool { return int32(a-b) >= 0 }

// analyzeTrace makes one pass over a trace: metric values, flows and
// compliance counts. Fidelity metrics use IP packets only (what a generator
// emits); compliance counts every record.
func analyzeTrace(t *Trace) traceAnalysis {
	a := traceAnalysis{label: t.Label}
	c := &a.comp
	c.Traces = 1
	flows := make(map[flowKey]*flowState)
	var prevTS int64
	havePrev := false
	var firstTS, lastTS int64
	for i := range t.Packets {
		p := &t.Packets[i]
		c.Records++
		if p.has(stOtherProtocol) {
			c.OtherProtocol++
		}
		if !p.has(stIP) {
			continue
		}
		c.IP++
		if havePrev {
			dt := p.TimeNS - prevTS
			c.InterArrivals++
			if dt >= 0 {
				c.NonNegative++
			} else {
				dt = 0
			}
			if dt == 0 {
				c.Zero++
			}
			a.values[mInterArrival] = append(a.values[mInterArrival], float64(dt)/1e9)
		} else {
			firstTS, lastTS = p.TimeNS, p.TimeNS
		}
		prevTS, havePrev = p.TimeNS, true
		lastTS = max(lastTS, p.TimeNS)
		if p.Version == 4 {
			c.IPv4++
			if p.has(stIPv4ChecksumOK) {
				c.IPv4ChecksumOK++
			}
			if p.has(stIPv4ChecksumZero) {
				c.IPv4ChecksumZero++
			}
		}
		if p.has(stLengthOK) {
			c.LengthOK++
		}
		if p.has(stIPLengthOffloaded) {
			c.IPLengthOffloaded++
		}
		if p.has(stICMP) {
			c.ICMP++
		}
		if !p.has(stReservedSet) {
			c.ReservedZero++
		}
		if p.has(stUDP) {
			c.UDP++
			if p.has(stUDPLengthOK) {
				c.UDPLengthOK++
			}
		}
		a.values[mWireLen] = append(a.values[mWireLen], float64(p.WireLen))
		a.values[mIPProto] = append(a.values[mIPProto], float64(p.Proto))
		a.values[mTTL] = append(a.values[mTTL], float64(p.TTL))
		if p.has(stL4) {
			c.IPTransport++
			a.values[mPort] = append(a.values[mPort], float64(p.SrcPort), float64(p.DstPort))
		}
		key, dir := keyOf(p)
		f := flows[key]
		if f == nil {
			f = &flowState{first: p.TimeNS, initiator: dir}
			flows[key] = f
		}
		f.first, f.last = min(f.first, p.TimeNS), max(f.last, p.TimeNS)
		f.packets++
		f.bytes += int64(p.WireLen)
		if p.Proto != protoTCP || !p.has(stL4) {
			continue
		}
		c.TCP++
		if p.has(stTCPFlagsOK) {
			c.TCPFlagsOK++
		}
		a.values[mTCPFlags] = append(a.values[mTCPFlags], float64(p.TCPFlags))
		a.values[mTCPWindow] = append(a.values[mTCPWindow], float64(p.Window))
		checkTCP(f, p, dir, c)
	}
	if c.IP >= 2 {
		c.TracesMultiPacket = 1
		if lastTS > firstTS {
			c.TracesWithAdvancingClock = 1
		}
	}
	c.Flows = int64(len(flows))
	starts := make([]int64, 0, len(flows))
	ends := make([]int64, 0, len(flows))
	for k, f := range flows {
		a.values[mFlowPackets] = append(a.values[mFlowPackets], float64(f.packets))
		a.values[mFlowBytes] = append(a.values[mFlowBytes], float64(f.bytes))
		a.values[mFlowDuration] = append(a.values[mFlowDuration], float64(f.last-f.first)/1e9)
		starts, ends = append(starts, f.first), append(ends, f.last)
		switch k.proto {
		case protoTCP:
			c.TCPFlows++
			if f.hs != hsMidstream {
				c.FlowsOpeningWithSYN++
			}
			// A flow is judged on its handshake once a packet other than a
			// retransmission followed its SYN and SYN-ACK; unanswered and
			// reset handshakes are not judged.
			if f.hs == hsDone || f.hs == hsFailed {
				c.HandshakeEligible++
				if f.hs == hsDone {
					c.HandshakeOK++
				}
			}
			if f.seqJudged {
				c.TCPFlowsSeqJudged++
				if !f.seqRegressed {
					c.TCPFlowsSeqMonotone++
				}
			}
		case protoUDP:
			c.UDPFlows++
		}
	}
	if havePrev {
		a.values[mFlowsPerTrace] = []float64{float64(len(flows))}
		a.values[mConcurrentFlows] = concurrentFlows(t, starts, ends)
	}
	return a
}

// checkTCP advances a TCP flow's handshake state and checks the packet's
// sequence and acknowledgement numbers against what the flow has carried.
func checkTCP(f *flowState, p *PacketFields, dir int, c *complianceCounts) {
	advanceHandshake(f, p, dir)
	fl := p.TCPFlags
	syn, ack, rst := fl&flagSYN != 0, fl&flagACK != 0, fl&flagRST != 0
	d, peer := &f.dirs[dir], &f.dirs[1-dir]
	if rst {
		return
	}
	if syn && (!d.synSeen || p.Seq != d.isn) {
		// A SYN with a new initial sequence number opens a new connection
		// on the same 5-tuple (a reused port): its numbers start afresh.
		*d = tcpDirection{isn: p.Seq, synSeen: true}
	}
	if d.seen {
		c.SeqChecked++
		f.seqJudged = true
		switch {
		case seqAfter(p.Seq, d.maxSeq):
			c.SeqOK++
		case p.SegLen <= 1 && p.Seq == d.next-1:
			// A keep-alive probe (RFC 9293 3.8.4): one below the next
			// sequence number, with no data or one garbage byte.
			c.SeqOK++
		default:
			f.seqRegressed = true
		}
	}
	if !d.seen || seqAfter(p.Seq, d.maxSeq) {
		d.maxSeq = p.Seq
	}
	end := p.Seq + p.SegLen
	if !d.seen || seqAfter(end, d.next) {
		d.next = end
	}
	d.seen = true
	if ack && peer.seen {
		c.AckChecked++
		if seqAfter(peer.next, p.Ack) {
			c.AckOK++
		}
	}
}

// advanceHandshake follows SYN (initiator) → SYN-ACK acking isn+1 → ACK
// with seq isn+1 acking the responder's isn+1. Retransmitted SYNs and
// SYN-ACKs are allowed, a SYN with a new ISN restarts the attempt, and a RST
// ends the handshake unjudged (a refused or abandoned connection is not an
// out-of-order one).
func advanceHandshake(f *flowState, p *PacketFields, dir int) {
	fl := p.TCPFlags
	syn, ack, rst := fl&flagSYN != 0, fl&flagACK != 0, fl&flagRST != 0
	if f.packets == 1 {
		if syn && !ack {
			f.hs, f.isnC = hsSawSYN, p.Seq
		}
		return
	}
	if f.hs != hsSawSYN && f.hs != hsSawSYNACK {
		return
	}
	initiator := dir == f.initiator
	switch {
	case rst:
		f.hs = hsAborted
	case initiator && syn && !ack:
		// A retransmitted SYN, or a new attempt with a new ISN.
		f.hs, f.isnC = hsSawSYN, p.Seq
	case f.hs == hsSawSYN && !initiator && syn && ack && p.Ack == f.isnC+1:
		f.hs, f.isnS = hsSawSYNACK, p.Seq
	case f.hs == hsSawSYNACK && !initiator && syn && ack && p.Seq == f.isnS:
	case f.hs == hsSawSYNACK && initiator && ack && !syn && p.Seq == f.isnC+1 && p.Ack == f.isnS+1:
		f.hs = hsDone
	default:
		f.hs = hsFailed
	}
}

// concurrentFlows returns, for each IP packet of the trace, how many flows
// were active at its timestamp (a flow is active from its first to its last
// packet, inclusive).
func concurrentFlows(t *Trace, starts, ends []int64) []float64 {
	slices.Sort(starts)
	slices.Sort(ends)
	ts := make([]int64, 0, len(t.Packets))
	for i := range t.Packets {
		if t.Packets[i].has(stIP) {
			ts = append(ts, t.Packets[i].TimeNS)
		}
	}
	slices.Sort(ts)
	out := make([]float64, len(ts))
	si, ei := 0, 0
	for i, x := range ts {
		for si < len(starts) && starts[si] <= x {
			si++
		}
		for ei < len(ends) && ends[ei] < x {
			ei++
		}
		out[i] = float64(si - ei)
	}
	return out
}

// sideSummary pools the analyses of a set of traces.
type sideSummary struct {
	values [numMetrics][]float64
	comp   complianceCounts
	// caches filled on first use by divergence
	hists [numMetrics]map[int64]float64
	w1    [numMetrics][]float64
}

func pool(as []traceAnalysis, keep func(label string) bool) sideSummary {
	var s sideSummary
	for i := range as {
		if keep != nil && !keep(as[i].label) {
			continue
		}
		for m := range numMetrics {
			s.values[m] = append(s.values[m], as[i].values[m]...)
		}
		s.comp.add(as[i].comp)
	}
	return s
}

// labelsOf returns the sorted distinct labels of the analyses.
func labelsOf(as []traceAnalysis) []string {
	seen := map[string]bool{}
	for _, a := range as {
		seen[a.label] = true
	}
	out := make([]string, 0, len(seen))
	for l := range seen {
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}
