package tokenizer

import "fmt"

// Grammar follows a trace token by token and says which tokens may come
// next, so that a sampler can mask logits (structure-aware decoding). It
// knows the trace frame (label, <pkt>, <dt:k>, <eos>) and, inside a packet,
// the IP version and IHL, IPv6 extension headers, the protocol's L4 header
// length and TCP's data offset: <pkt> and <eos> are allowed exactly where the
// packet's kept bytes (Spec.Keep) end, and bytes nowhere after that.
//
// A Grammar is a small value: copy it with Clone to fork a sample.
type Grammar struct {
	spec  *Spec
	state grammarState
	pkt   []byte // bytes of the current packet so far
	pads  int    // paper layout: pads after the bytes
	final int    // kept length of the current packet, -1 until the headers tell
}

type grammarState uint8

const (
	gLabel  grammarState = iota // expects <label:…>
	gPacket                     // expects <pkt> (or <eos> for an empty trace)
	gDt                         // after <pkt>, timing on: expects <dt:k>
	gBytes                      // inside a packet
	gDone                       // after <eos>
)

// NewGrammar starts at the beginning of a trace (before its label).
func (s *Spec) NewGrammar() (*Grammar, error) {
	if s.labelID == nil {
		if err := s.Validate(); err != nil {
			return nil, err
		}
	}
	return &Grammar{spec: s, final: -1}, nil
}

// Clone returns an independent copy.
func (g *Grammar) Clone() *Grammar {
	c := *g
	c.pkt = append([]byte(nil), g.pkt...)
	return &c
}

// Done reports whether the trace has ended (<eos> seen).
func (g *Grammar) Done() bool { return g.state == gDone }

// InPacket reports whether the grammar is inside a packet's bytes.
func (g *Grammar) InPacket() bool { return g.state == gBytes }

// PacketBytes returns the current packet's bytes so far (read-only).
func (g *Grammar) PacketBytes() []byte { return g.pkt }

// canEnd: the current packet may end here.
func (g *Grammar) canEnd() bool {
	if g.spec.Layout == LayoutPaper {
		return len(g.pkt)+g.pads == g.spec.PaperPacketLen
	}
	return g.final >= 0 && len(g.pkt) == g.final
}

// byteRange gives the allowed range of the next byte of the packet; ok is
// false when no byte may follow.
func (g *Grammar) byteRange() (lo, hi int, ok bool) {
	n := len(g.pkt)
	if g.pads > 0 {
		return 0, 0, false
	}
	if g.spec.Layout == LayoutPaper && n >= g.spec.PaperPacketLen {
		return 0, 0, false
	}
	if g.final >= 0 && n >= g.final {
		return 0, 0, false
	}
	if n == 0 {
		return 0x45, 0x6f, true // IPv4 with IHL ≥ 5, or IPv6; 0x50–0x5f are cut below
	}
	// TCP data offset ≥ 5: the byte 12 into the TCP header.
	if l := g.spec.Keep(g.pkt); !l.Complete && l.Proto == ProtoTCP && l.IPHdrLen > 0 && n == l.IPHdrLen+12 {
		return 0x50, 0xff, true
	}
	return 0, 255, true
}

// Allowed fills mask (length ≥ VocabSize; allocated when nil or short) with
// the tokens that may come next, and returns it.
func (g *Grammar) Allowed(mask []bool) []bool {
	s := g.spec
	if len(mask) < s.VocabSize {
		mask = make([]bool, s.VocabSize)
	}
	mask = mask[:s.VocabSize]
	clear(mask)
	switch g.state {
	case gLabel:
		for t := s.FirstLabelID; t < s.VocabSize; t++ {
			mask[t] = true
		}
	case gPacket:
		mask[TokPkt] = true
		mask[TokEOS] = true
	case gDt:
		for k := 0; k < s.DtBuckets; k++ {
			mask[TokDt0+k] = true
		}
	case gBytes:
		if lo, hi, ok := g.byteRange(); ok {
			for b := lo; b <= hi; b++ {
				mask[b] = true
			}
			if len(g.pkt) == 0 {
				for b := 0x50; b < 0x60; b++ {
					mask[b] = false
				}
			}
		}
		if s.Layout == LayoutPaper && g.final >= 0 && len(g.pkt) >= g.final && len(g.pkt)+g.pads < s.PaperPacketLen {
			mask[TokPad] = true
		}
		if g.canEnd() {
			mask[TokPkt] = true
			mask[TokEOS] = true
		}
	}
	return mask
}

// Advance takes the next token. A token that Allowed would not permit is
// refused with an error and the state is left unchanged.
func (g *Grammar) Advance(tok uint16) error {
	t := int(tok)
	s := g.spec
	if t >= s.VocabSize {
		return fmt.Errorf("grammar: token %d outside the vocabulary (%d)", t, s.VocabSize)
	}
	refuse := func() error {
		return fmt.Errorf("grammar: %s not allowed here (packet byte %d)", s.TokenString(t), len(g.pkt))
	}
	switch g.state {
	case gLabel:
		if !s.IsLabel(t) {
			return refuse()
		}
		g.state = gPacket
	case gPacket:
		switch t {
		case TokPkt:
			g.startPacket()
		case TokEOS:
			g.state = gDone
		default:
			return refuse()
		}
	case gDt:
		if !s.IsDt(t) {
			return refuse()
		}
		g.state = gBytes
	case gBytes:
		switch {
		case t == TokPkt || t == TokEOS:
			if !g.canEnd() {
				return refuse()
			}
			if t == TokEOS {
				g.state = gDone
			} else {
				g.startPacket()
			}
		case t == TokPad:
			if s.Layout != LayoutPaper || g.final < 0 || len(g.pkt) < g.final || len(g.pkt)+g.pads >= s.PaperPacketLen {
				return refuse()
			}
			g.pads++
		case t < NumByteTokens:
			lo, hi, ok := g.byteRange()
			if !ok || t < lo || t > hi || (len(g.pkt) == 0 && t >= 0x50 && t < 0x60) {
				return refuse()
			}
			g.pkt = append(g.pkt, byte(t))
			if g.final < 0 {
				if l := s.Keep(g.pkt); l.Complete {
					g.final = l.Keep
				}
			}
		default:
			return refuse()
		}
	case gDone:
		return fmt.Errorf("grammar: %s after <eos>", s.TokenString(t))
	}
	return nil
}

func (g *Grammar) startPacket() {
	g.pkt = g.pkt[:0]
	g.pads = 0
	g.final = -1
	if g.spec.Timing {
		g.state = gDt
	} else {
		g.state = gBytes
	}
}
