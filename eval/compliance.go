package eval

import (
	"encoding/json"
	"fmt"
	"math"
)

// Share is a proportion with its counts. Value is null in JSON when Total is 0.
type Share struct {
	Hits  int64   `json:"hits"`
	Total int64   `json:"total"`
	Value float64 `json:"-"`
}

func newShare(hits, total int64) Share {
	s := Share{Hits: hits, Total: total, Value: math.NaN()}
	if total > 0 {
		s.Value = float64(hits) / float64(total)
	}
	return s
}

// MarshalJSON writes {"hits","total","value"} with value null when undefined.
func (s Share) MarshalJSON() ([]byte, error) {
	type out struct {
		Hits  int64    `json:"hits"`
		Total int64    `json:"total"`
		Value *float64 `json:"value"`
	}
	o := out{Hits: s.Hits, Total: s.Total}
	if !math.IsNaN(s.Value) {
		v := s.Value
		o.Value = &v
	}
	return json.Marshal(o)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Share) UnmarshalJSON(b []byte) error {
	var in struct {
		Hits  int64    `json:"hits"`
		Total int64    `json:"total"`
		Value *float64 `json:"value"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*s = newShare(in.Hits, in.Total)
	return nil
}

func (s Share) String() string {
	if s.Total == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.4f (%d/%d)", s.Value, s.Hits, s.Total)
}

// Kinds of compliance check.
const (
	// CheckFixed: a bound every real stack meets (valid flag sets, reserved
	// bits, UDP length, header checksums, a clock that moves).
	CheckFixed = "fixed"
	// CheckRelative: a rate that real traffic misses too (handshake order,
	// sequence and acknowledgement numbers, parse share, length consistency
	// under segmentation offload); judged against the real side's rate.
	CheckRelative = "relative"
)

// Check is one compliance criterion with its verdict.
type Check struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Share is the figure checked; Min (or Max) the bound it must meet: the
	// fixed bound, or for a relative check the reference's rate less the
	// allowed shortfall.
	Share Share    `json:"share"`
	Min   *float64 `json:"min,omitempty"`
	Max   *float64 `json:"max,omitempty"`
	// Reference is the real side's share a relative check is judged
	// against (absent on the real side itself, which is the reference).
	Reference *Share `json:"reference,omitempty"`
	// Pass is false when the bound is missed; a check with nothing to
	// judge (too few observations, or no reference) passes and says so in
	// Note.
	Pass bool   `json:"pass"`
	Note string `json:"note,omitempty"`
}

// Compliance is the protocol-conformance summary of one side.
type Compliance struct {
	Records   int64 `json:"records"`
	IPPackets int64 `json:"ip_packets"`
	Traces    int64 `json:"traces"`
	Flows     int64 `json:"flows"`
	TCPFlows  int64 `json:"tcp_flows"`
	UDPFlows  int64 `json:"udp_flows"`

	// OtherProtocolFrames: records whose link layer names another network
	// protocol (ARP, LLDP, EAPOL, …); not counted by the parse shares.
	OtherProtocolFrames int64 `json:"other_protocol_frames"`
	// IPTransportParse: records that parse as IPv4/IPv6 carrying a complete
	// TCP, UDP or ICMP header, of those that are not frames of another
	// protocol.
	IPTransportParse Share `json:"ip_transport_parse"`
	// IPTCPUDPParse: records that parse as IPv4/IPv6 carrying a TCP or UDP
	// header (what tshark dissects as ip:tcp or ip:udp), of all records.
	IPTCPUDPParse Share `json:"ip_tcp_udp_parse"`
	// IPParse: records with a complete IPv4/IPv6 header.
	IPParse Share `json:"ip_parse"`
	// IPv4ChecksumValid: IPv4 packets whose header checksum verifies (what
	// tshark -o ip.check_checksum:TRUE calls Good).
	IPv4ChecksumValid Share `json:"ipv4_checksum_valid"`
	// IPv4ChecksumValidOrOffloaded counts a zero checksum field as valid too:
	// hosts capture their own outgoing packets before the NIC fills it in.
	// The compliance check uses this share.
	IPv4ChecksumValidOrOffloaded Share `json:"ipv4_checksum_valid_or_offloaded"`
	// LengthConsistent: IP packets whose IP length field agrees with the IP
	// and TCP headers and with the frame (an IPv4 length of 0, as
	// segmentation offload leaves it, read as the frame's length).
	LengthConsistent Share `json:"ip_length_consistent"`
	// IPLengthOffloaded: IPv4 packets whose length field is 0 (offload).
	IPLengthOffloaded int64 `json:"ip_length_offloaded"`
	// UDPLengthConsistent: UDP datagrams whose length field equals the IP
	// payload length.
	UDPLengthConsistent Share `json:"udp_length_consistent"`
	// ReservedBitsZero: IP packets with no reserved bit set (the IPv4 flags'
	// reserved bit; the TCP header's three reserved bits).
	ReservedBitsZero Share `json:"reserved_bits_zero"`
	// TCPFlagsValid: TCP segments whose flag set tokenizer.TCPFlagsValid
	// accepts (the rule structure-aware decoding enforces).
	TCPFlagsValid Share `json:"tcp_flags_valid"`
	// TCPFlowsOpeningWithSYN: TCP flows whose first packet is a bare SYN.
	TCPFlowsOpeningWithSYN Share `json:"tcp_flows_opening_with_syn"`
	// HandshakeInOrder: of flows opening with SYN whose handshake got past
	// its SYN and SYN-ACK (retransmissions aside; refused, reset and
	// unanswered attempts are not judged), those whose packets came as SYN,
	// SYN-ACK (ack = isn+1), ACK (seq = isn+1, ack = peer isn+1).
	HandshakeInOrder Share `json:"tcp_handshake_in_order"`
	// SeqMonotone: TCP segments (RST aside) whose sequence number is not behind
	// the highest one seen earlier in the same direction (modulo 2^32);
	// keep-alive probes (one below the next sequence number) count as in
	// order, and a SYN with a new ISN starts the direction afresh.
	SeqMonotone Share `json:"tcp_seq_monotone"`
	// FlowsSeqMonotone: TCP flows with a checked segment none of whose
	// segments fell behind (SeqMonotone per flow rather than per segment).
	FlowsSeqMonotone Share `json:"tcp_flows_seq_monotone"`
	// AckNotAhead: ACK segments whose acknowledgement number is not beyond the
	// end of the data the peer has sent so far (modulo 2^32).
	AckNotAhead Share `json:"tcp_ack_not_ahead"`
	// TimestampsNondecreasing: inter-arrival gaps that are ≥ 0.
	TimestampsNondecreasing Share `json:"timestamps_nondecreasing"`
	// ZeroInterArrival: inter-arrival gaps that are exactly 0.
	ZeroInterArrival Share `json:"zero_inter_arrival"`
	// TracesWithAdvancingClock: traces with two or more IP packets whose last
	// packet is later than their first.
	TracesWithAdvancingClock Share `json:"traces_with_advancing_clock"`

	Checks []Check `json:"checks"`
	// Pass is true when every check passes.
	Pass bool `json:"pass"`
}

// complianceBounds lists the checks. Fixed bounds hold for every shared
// real capture, file by file, by a wide margin: flag sets, reserved bits and
// UDP lengths are never wrong there, and checksums only ever zero
// (offloaded). The clock bounds are sanity checks of a clock that moves:
// real captures vary too much for a rate comparison (multi-interface pcapng
// files whose records interleave out of time order, down to 95 %
// non-decreasing; segmentation-offload bursts sharing one timestamp, up to
// 65 % zero gaps on an upload), while clock-less traffic misses them by far.
//
// Relative checks are rates that real traffic misses too: retransmissions
// put sequence numbers behind (down to 88 % monotone on a lossy mobile
// Wi-Fi trace), capture loss puts acknowledgements ahead of the data seen,
// flows seen mid-way or through app-level capture (PCAPdroid) break
// handshakes, ICMP and IP protocols other than TCP and UDP do not count as parsed, and segmentation offload hands the capture IP packets
// longer than their frame. They are judged against the real side (see
// relativeMin); min is the bound used when the real side has too few
// observations to be a reference.
var complianceBounds = []struct {
	name     string
	kind     string
	get      func(*Compliance) Share
	min, max float64 // max < 0: no upper bound
}{
	{"ip_transport_parse", CheckRelative, func(c *Compliance) Share { return c.IPTransportParse }, 0.80, -1},
	{"ipv4_checksum_valid_or_offloaded", CheckFixed, func(c *Compliance) Share { return c.IPv4ChecksumValidOrOffloaded }, 0.95, -1},
	{"ip_length_consistent", CheckRelative, func(c *Compliance) Share { return c.LengthConsistent }, 0.95, -1},
	{"udp_length_consistent", CheckFixed, func(c *Compliance) Share { return c.UDPLengthConsistent }, 0.99, -1},
	{"reserved_bits_zero", CheckFixed, func(c *Compliance) Share { return c.ReservedBitsZero }, 0.99, -1},
	{"tcp_flags_valid", CheckFixed, func(c *Compliance) Share { return c.TCPFlagsValid }, 0.99, -1},
	{"tcp_handshake_in_order", CheckRelative, func(c *Compliance) Share { return c.HandshakeInOrder }, 0.50, -1},
	{"tcp_seq_monotone", CheckRelative, func(c *Compliance) Share { return c.SeqMonotone }, 0.80, -1},
	{"tcp_ack_not_ahead", CheckRelative, func(c *Compliance) Share { return c.AckNotAhead }, 0.90, -1},
	{"timestamps_nondecreasing", CheckFixed, func(c *Compliance) Share { return c.TimestampsNondecreasing }, 0.90, -1},
	{"zero_inter_arrival", CheckFixed, func(c *Compliance) Share { return c.ZeroInterArrival }, 0, 0.90},
	{"traces_with_advancing_clock", CheckFixed, func(c *Compliance) Share { return c.TracesWithAdvancingClock }, 1, -1},
}

// RelativeMissFactor and RelativeMissSlack set how far a relative check may
// fall short of the real side: the judged side's miss rate (1 − share) may
// be up to RelativeMissFactor times the reference's miss rate plus
// RelativeMissSlack, so the bound is
//
//	min = 1 − (RelativeMissFactor·(1 − reference) + RelativeMissSlack).
//
// A ratio rather than a fixed number of points, because misses come in
// proportion to what causes them (a lossier network, more mid-stream
// flows) and captures of one workload differ in it; the slack lets a
// reference near 100 % tolerate a few misses. Calibrated on the 89 shared
// real captures (TestEachSharedCapturePassesAgainstTheRestOfItsLabel):
// each, judged against the rest of its label, passes. The widest gap is a
// cloud-drive download whose acknowledgements run ahead of the data seen in
// 11.1 % of ACKs against 0.2 % for the rest of its label: bound 0.845,
// share 0.889; a slack of 12 points would leave it 1 point, so 15 leaves
// room for captures like it. A generator whose sequence numbers are
// monotone in 30 % of segments where real traffic has 97 % still misses by
// far (bound 0.79).
const (
	RelativeMissFactor = 2.0
	RelativeMissSlack  = 0.15
)

// relativeMin is the bound a relative check applies given the reference share.
func relativeMin(reference float64) float64 {
	return 1 - (RelativeMissFactor*(1-reference) + RelativeMissSlack)
}

// minJudged is the fewest observations a share needs before its bound is
// applied (7 of 8 acks is no evidence either way), and the fewest a
// reference needs before a relative check uses it.
const minJudged = 20

func newCompliance(c complianceCounts) Compliance {
	return Compliance{
		Records:   c.Records,
		IPPackets: c.IP,
		Traces:    c.Traces,
		Flows:     c.Flows,
		TCPFlows:  c.TCPFlows,
		UDPFlows:  c.UDPFlows,

		OtherProtocolFrames: c.OtherProtocol,

		IPTransportParse:             newShare(c.IPTransport+c.ICMP, c.Records-c.OtherProtocol),
		IPTCPUDPParse:                newShare(c.IPTransport, c.Records),
		IPLengthOffloaded:            c.IPLengthOffloaded,
		IPParse:                      newShare(c.IP, c.Records),
		IPv4ChecksumValid:            newShare(c.IPv4ChecksumOK, c.IPv4),
		IPv4ChecksumValidOrOffloaded: newShare(c.IPv4ChecksumOK+c.IPv4ChecksumZero, c.IPv4),
		LengthConsistent:             newShare(c.LengthOK, c.IP),
		UDPLengthConsistent:          newShare(c.UDPLengthOK, c.UDP),
		ReservedBitsZero:             newShare(c.ReservedZero, c.IP),
		TCPFlagsValid:                newShare(c.TCPFlagsOK, c.TCP),
		TCPFlowsOpeningWithSYN:       newShare(c.FlowsOpeningWithSYN, c.TCPFlows),
		HandshakeInOrder:             newShare(c.HandshakeOK, c.HandshakeEligible),
		SeqMonotone:                  newShare(c.SeqOK, c.SeqChecked),
		FlowsSeqMonotone:             newShare(c.TCPFlowsSeqMonotone, c.TCPFlowsSeqJudged),
		AckNotAhead:                  newShare(c.AckOK, c.AckChecked),
		TimestampsNondecreasing:      newShare(c.NonNegative, c.InterArrivals),
		ZeroInterArrival:             newShare(c.Zero, c.InterArrivals),
		TracesWithAdvancingClock:     newShare(c.TracesWithAdvancingClock, c.TracesMultiPacket),
	}
}

// judgeReference judges the real side: its fixed checks only (it is the
// reference of the relative ones).
func judgeReference(c complianceCounts) Compliance {
	return judge(c, nil)
}

// judgeAgainst judges a side against a real reference: fixed checks by their
// bounds, relative checks by the reference's rate (relativeMin).
func judgeAgainst(c, reference complianceCounts) Compliance {
	ref := newCompliance(reference)
	return judge(c, &ref)
}

func judge(counts complianceCounts, ref *Compliance) Compliance {
	out := newCompliance(counts)
	out.Pass = true
	for _, b := range complianceBounds {
		out.Checks = append(out.Checks, check(b.name, b.kind, b.get(&out), b.min, b.max, ref, b.get))
		if !out.Checks[len(out.Checks)-1].Pass {
			out.Pass = false
		}
	}
	// No IP packet at all is the loudest failure there is.
	if counts.IP == 0 {
		out.Pass = false
	}
	return out
}

// check judges one share s against its fixed bound (min, or max ≥ 0) or,
// for a relative check, against the reference's share.
func check(name, kind string, s Share, min, max float64, ref *Compliance, get func(*Compliance) Share) Check {
	ch := Check{Name: name, Kind: kind, Share: s, Pass: true}
	if kind == CheckRelative {
		if ref == nil {
			ch.Note = "the reference side"
			return ch
		}
		r := get(ref)
		ch.Reference = &r
		if r.Total >= minJudged {
			min = relativeMin(r.Value)
		} else {
			ch.Note = fmt.Sprintf("reference has %d observations: fixed bound used", r.Total)
		}
	}
	if max >= 0 {
		ch.Max = &max
	} else {
		ch.Min = &min
	}
	switch {
	case s.Total == 0:
		ch.Note = "nothing to check"
	case s.Total < minJudged && name != "traces_with_advancing_clock":
		ch.Note = fmt.Sprintf("only %d observations, not judged", s.Total)
	case max >= 0 && s.Value > max:
		ch.Pass = false
	case max < 0 && s.Value < min:
		ch.Pass = false
	}
	return ch
}

// Failed returns the names of the failed checks.
func (c *Compliance) Failed() []string {
	var out []string
	for _, ch := range c.Checks {
		if !ch.Pass {
			out = append(out, ch.Name)
		}
	}
	if c.IPPackets == 0 {
		out = append(out, "no_ip_packets")
	}
	return out
}
