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

// Check is one compliance criterion with its verdict.
type Check struct {
	Name string `json:"name"`
	// Share is the figure checked; Min (or Max) the bound it must meet.
	Share Share    `json:"share"`
	Min   *float64 `json:"min,omitempty"`
	Max   *float64 `json:"max,omitempty"`
	// Pass is false when the bound is missed; a check with nothing to
	// judge (Total 0) passes and says so in Note.
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

	// IPTransportParse: records that parse as IPv4/IPv6 carrying a TCP or UDP header.
	IPTransportParse Share `json:"ip_tcp_udp_parse"`
	// IPParse: records with a complete IPv4/IPv6 header.
	IPParse Share `json:"ip_parse"`
	// IPv4ChecksumValid: IPv4 packets whose header checksum verifies (what
	// tshark -o ip.check_checksum:TRUE calls Good).
	IPv4ChecksumValid Share `json:"ipv4_checksum_valid"`
	// IPv4ChecksumValidOrOffloaded counts a zero checksum field as valid too:
	// hosts capture their own outgoing packets before the NIC fills it in.
	// The compliance check uses this share.
	IPv4ChecksumValidOrOffloaded Share `json:"ipv4_checksum_valid_or_offloaded"`
	// LengthConsistent: IP packets whose length fields agree with their headers and frame.
	LengthConsistent Share `json:"ip_length_consistent"`
	// TCPFlagsValid: TCP segments with a legal flag combination.
	TCPFlagsValid Share `json:"tcp_flags_valid"`
	// TCPFlowsOpeningWithSYN: TCP flows whose first packet is a bare SYN.
	TCPFlowsOpeningWithSYN Share `json:"tcp_flows_opening_with_syn"`
	// HandshakeInOrder: of flows opening with SYN (and ≥ 3 packets), those whose
	// next packets are SYN-ACK (ack = isn+1) then ACK (seq = isn+1, ack = peer isn+1).
	HandshakeInOrder Share `json:"tcp_handshake_in_order"`
	// SeqMonotone: TCP segments (RST aside) whose sequence number is not behind
	// the highest one seen earlier in the same direction (modulo 2^32).
	SeqMonotone Share `json:"tcp_seq_monotone"`
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

// Compliance bounds. Every shared real capture meets them file by file:
// real traffic has retransmissions (sequence numbers going back: down to 88 %
// monotone on a lossy mobile Wi-Fi trace), checksum-offloaded packets, flows
// seen mid-way, multi-interface pcapng files whose records interleave out of
// time order (down to 95 %), and segmentation-offload bursts sharing one
// timestamp (up to 65 % zero gaps on an upload). Random, corrupted or
// clock-less traffic misses them by far.
var complianceBounds = []struct {
	name     string
	get      func(*Compliance) Share
	min, max float64 // max < 0: no upper bound
}{
	{"ip_tcp_udp_parse", func(c *Compliance) Share { return c.IPTransportParse }, 0.80, -1},
	{"ipv4_checksum_valid_or_offloaded", func(c *Compliance) Share { return c.IPv4ChecksumValidOrOffloaded }, 0.95, -1},
	{"ip_length_consistent", func(c *Compliance) Share { return c.LengthConsistent }, 0.95, -1},
	{"tcp_flags_valid", func(c *Compliance) Share { return c.TCPFlagsValid }, 0.99, -1},
	{"tcp_handshake_in_order", func(c *Compliance) Share { return c.HandshakeInOrder }, 0.50, -1},
	{"tcp_seq_monotone", func(c *Compliance) Share { return c.SeqMonotone }, 0.80, -1},
	{"tcp_ack_not_ahead", func(c *Compliance) Share { return c.AckNotAhead }, 0.90, -1},
	{"timestamps_nondecreasing", func(c *Compliance) Share { return c.TimestampsNondecreasing }, 0.90, -1},
	{"zero_inter_arrival", func(c *Compliance) Share { return c.ZeroInterArrival }, 0, 0.90},
	{"traces_with_advancing_clock", func(c *Compliance) Share { return c.TracesWithAdvancingClock }, 1, -1},
}

// minJudged is the fewest observations a share needs before its bound is
// applied (7 of 8 acks is no evidence either way).
const minJudged = 20

func newCompliance(c complianceCounts) Compliance {
	out := Compliance{
		Records:   c.Records,
		IPPackets: c.IP,
		Traces:    c.Traces,
		Flows:     c.Flows,
		TCPFlows:  c.TCPFlows,
		UDPFlows:  c.UDPFlows,

		IPTransportParse:             newShare(c.IPTransport, c.Records),
		IPParse:                      newShare(c.IP, c.Records),
		IPv4ChecksumValid:            newShare(c.IPv4ChecksumOK, c.IPv4),
		IPv4ChecksumValidOrOffloaded: newShare(c.IPv4ChecksumOK+c.IPv4ChecksumZero, c.IPv4),
		LengthConsistent:             newShare(c.LengthOK, c.IP),
		TCPFlagsValid:                newShare(c.TCPFlagsOK, c.TCP),
		TCPFlowsOpeningWithSYN:       newShare(c.FlowsOpeningWithSYN, c.TCPFlows),
		HandshakeInOrder:             newShare(c.HandshakeOK, c.HandshakeEligible),
		SeqMonotone:                  newShare(c.SeqOK, c.SeqChecked),
		AckNotAhead:                  newShare(c.AckOK, c.AckChecked),
		TimestampsNondecreasing:      newShare(c.NonNegative, c.InterArrivals),
		ZeroInterArrival:             newShare(c.Zero, c.InterArrivals),
		TracesWithAdvancingClock:     newShare(c.TracesWithAdvancingClock, c.TracesMultiPacket),
	}
	out.Pass = true
	for _, b := range complianceBounds {
		s := b.get(&out)
		ch := Check{Name: b.name, Share: s, Pass: true}
		if b.max >= 0 {
			v := b.max
			ch.Max = &v
		} else {
			v := b.min
			ch.Min = &v
		}
		switch {
		case s.Total == 0:
			ch.Note = "nothing to check"
		case s.Total < minJudged && b.name != "traces_with_advancing_clock":
			ch.Note = fmt.Sprintf("only %d observations, not judged", s.Total)
		case b.max >= 0 && s.Value > b.max:
			ch.Pass = false
		case b.max < 0 && s.Value < b.min:
			ch.Pass = false
		}
		if !ch.Pass {
			out.Pass = false
		}
		out.Checks = append(out.Checks, ch)
	}
	// No IP packet at all is the loudest failure there is.
	if c.IP == 0 {
		out.Pass = false
	}
	return out
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
