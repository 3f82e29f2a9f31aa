package tokenizer

import (
	"fmt"
	"slices"
	"time"
)

// EncodeStats counts what the encoder had to note about its input packets.
type EncodeStats struct {
	Packets   int // packets encoded
	Truncated int // captured shorter than their headers or kept payload: kept as captured
	Malformed int // impossible header fields (IHL < 5, TCP data offset < 5)
	Cut       int // paper and netssm layouts: kept bytes longer than PaperPacketLen, cut
	NegDt     int // timestamps going backwards: <dt:k> clamped to 0 (ts_ns stays exact)
	Skipped   int // netssm layout: packets NetSSM leaves out (not TCP/UDP, fragments)
}

// Trace is one encoded trace: its tokens and, per packet, where the packet
// starts in Tokens (the index of its <pkt>), its time from the trace start
// and its original length from the IP header on.
type Trace struct {
	Label      string
	Tokens     []uint16
	PktOffsets []uint32
	TsNs       []int64
	WireLen    []uint32
	Stats      EncodeStats
}

// Encoder builds one trace packet by packet.
type Encoder struct {
	spec    *Spec
	tr      Trace
	startNs int64
	prevNs  int64
	done    bool
	flows   flowTable // flow layout
}

// NewEncoder starts a trace with the given label, which must be in the spec.
func (s *Spec) NewEncoder(label string) (*Encoder, error) {
	if s.labelID == nil {
		if err := s.Validate(); err != nil {
			return nil, err
		}
	}
	id, ok := s.labelID[label]
	if !ok {
		return nil, fmt.Errorf("label %q is not in the tokenizer spec (labels: %v)", label, s.Labels)
	}
	return &Encoder{spec: s, tr: Trace{Label: label, Tokens: []uint16{uint16(id)}}, flows: s.newFlowTable()}, nil
}

// Add encodes one IP packet (bytes from the IP header on, as captured),
// captured at ts, with wireLen its original length from the IP header on.
func (e *Encoder) Add(ts time.Time, wireLen int, ip []byte) error {
	if e.done {
		return fmt.Errorf("encoder: packet added after the trace was finished")
	}
	if len(ip) == 0 {
		return fmt.Errorf("encoder: empty packet")
	}
	if v := ip[0] >> 4; v != 4 && v != 6 {
		return fmt.Errorf("encoder: IP version %d, want 4 or 6", v)
	}
	s := e.spec
	if s.Layout == LayoutNetSSM {
		return e.addNetSSM(ts, wireLen, nil, ip)
	}
	ns := ts.UnixNano()
	if len(e.tr.PktOffsets) == 0 {
		e.startNs, e.prevNs = ns, ns
	}
	// The <dt:k> clock is the running maximum of the capture's clock: a
	// packet stamped before its predecessor gets dt 0; ts_ns keeps its own time.
	dt := ns - e.prevNs
	if dt < 0 {
		e.tr.Stats.NegDt++
		dt = 0
	} else {
		e.prevNs = ns
	}
	e.tr.PktOffsets = append(e.tr.PktOffsets, uint32(len(e.tr.Tokens)))
	e.tr.TsNs = append(e.tr.TsNs, ns-e.startNs)
	if wireLen < 0 {
		wireLen = 0
	}
	e.tr.WireLen = append(e.tr.WireLen, uint32(wireLen))
	e.tr.Tokens = append(e.tr.Tokens, TokPkt)
	if s.Timing {
		e.tr.Tokens = append(e.tr.Tokens, uint16(TokDt0+s.DtBucket(dt)))
	}
	l := s.Keep(ip)
	keep := l.Keep
	if !l.Complete || keep > len(ip) {
		e.tr.Stats.Truncated++
	}
	if l.Malformed {
		e.tr.Stats.Malformed++
	}
	if keep > len(ip) {
		keep = len(ip)
	}
	if s.Layout == LayoutFlow {
		kept := append([]byte(nil), ip[:keep]...)
		if s.ZeroChecksums() {
			zeroPairs(kept, l, func(i int) { kept[i] = 0 })
		}
		e.tr.Tokens = s.encodeFlowPacket(&e.flows, kept, e.tr.Tokens)
		e.tr.Stats.Packets++
		return nil
	}
	if s.Layout == LayoutPaper && keep > s.PaperPacketLen {
		keep = s.PaperPacketLen
		e.tr.Stats.Cut++
	}
	n := len(e.tr.Tokens)
	e.tr.Tokens = slices.Grow(e.tr.Tokens, keep)[:n+keep]
	for i, b := range ip[:keep] {
		e.tr.Tokens[n+i] = uint16(b)
	}
	if s.ZeroChecksums() {
		zeroPairs(ip[:keep], l, func(i int) { e.tr.Tokens[n+i] = 0 })
	}
	if s.Layout == LayoutPaper {
		for i := keep; i < s.PaperPacketLen; i++ {
			e.tr.Tokens = append(e.tr.Tokens, TokPad)
		}
	}
	e.tr.Stats.Packets++
	return nil
}

// Packets is the number of packets added so far.
func (e *Encoder) Packets() int { return len(e.tr.PktOffsets) }

// Finish appends <eos> and returns the trace; the encoder is spent.
func (e *Encoder) Finish() Trace {
	if !e.done {
		e.tr.Tokens = append(e.tr.Tokens, TokEOS)
		e.done = true
	}
	return e.tr
}
