package tokenizer

import "fmt"

// Grammar follows a trace token by token and says which tokens may come
// next, so that a sampler can mask logits (structure-aware decoding). It
// knows the trace frame (label, <pkt>, <dt:k>, <eos>) and, inside a packet,
// the IP version and IHL, IPv6 extension headers, the protocol's L4 header
// length and TCP's data offset: <pkt> and <eos> are allowed exactly where the
// packet's kept bytes (Spec.Keep) end, and bytes nowhere after that.
//
// WellFormed adds the rules that make each packet one that protocol
// analysers read without complaint (see wellformed.go); decoding uses it,
// checking real traces does not.
//
// A Grammar is a small value: copy it with Clone to fork a sample.
type Grammar struct {
	spec   *Spec
	state  grammarState
	pkt    []byte       // bytes of the current packet so far
	pads   int          // paper layout: pads after the bytes
	final  int          // kept length of the current packet, -1 until the headers tell
	strict bool         // WellFormed rules on
	flow   *flowMachine // flow layout: the packet after its <dt:k>, and the flow table
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
	g := &Grammar{spec: s, final: -1}
	if s.Layout == LayoutFlow {
		g.flow = s.newFlowMachine()
	}
	return g, nil
}

// WellFormed switches on the well-formedness rules for the bytes that follow
// and returns g.
func (g *Grammar) WellFormed() *Grammar {
	g.strict = true
	return g
}

// AdvanceLenient is Advance with the well-formedness rules off for this
// token: a prompt taken from a real capture may hold packets that decoding
// would not make.
func (g *Grammar) AdvanceLenient(tok uint16) error {
	strict := g.strict
	g.strict = false
	err := g.Advance(tok)
	g.strict = strict
	return err
}

// Clone returns an independent copy.
func (g *Grammar) Clone() *Grammar {
	c := *g
	c.pkt = append([]byte(nil), g.pkt...)
	if g.flow != nil {
		c.flow = g.flow.clone()
	}
	return &c
}

// Done reports whether the trace has ended (<eos> seen).
func (g *Grammar) Done() bool { return g.state == gDone }

// InPacket reports whether the grammar is inside a packet's bytes.
func (g *Grammar) InPacket() bool { return g.state == gBytes }

// PacketBytes returns the current packet's bytes so far (read-only).
func (g *Grammar) PacketBytes() []byte {
	if g.flow != nil {
		return g.flow.packet()
	}
	return g.pkt
}

// canEnd: the current packet may end here.
func (g *Grammar) canEnd() bool {
	if g.flow != nil {
		return g.flow.canEnd(g.strict)
	}
	if g.spec.Layout == LayoutPaper {
		return len(g.pkt)+g.pads == g.spec.PaperPacketLen
	}
	return g.final >= 0 && len(g.pkt) == g.final
}

// byteRule gives the bytes allowed next in the packet.
func (g *Grammar) byteRule() byteRule {
	n := len(g.pkt)
	if g.pads > 0 {
		return noByte
	}
	if g.spec.Layout == LayoutPaper && n >= g.spec.PaperPacketLen {
		return noByte
	}
	if g.final >= 0 && n >= g.final {
		return noByte
	}
	if g.spec.ZeroChecksums() && g.spec.ChecksumAt(g.pkt) {
		return byteSet(0).because("checksums are written as zero (spec checksums=zero)")
	}
	if g.strict {
		return wellFormedRule(g.pkt)
	}
	if n == 0 {
		return firstByteRule
	}
	// TCP data offset ≥ 5: the byte 12 into the TCP header.
	if l := g.spec.Keep(g.pkt); !l.Complete && l.Proto == ProtoTCP && l.IPHdrLen > 0 && n == l.IPHdrLen+12 {
		return byteRange(0x50, 0xff)
	}
	return anyByte
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
	if s.Layout == LayoutNetSSM {
		g.netssmAllowed(mask)
		return mask
	}
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
		if g.flow != nil {
			g.flow.allowed(mask, g.strict)
		} else {
			g.byteRule().fill(mask)
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
	if s.Layout == LayoutNetSSM {
		return g.netssmAdvance(t)
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
			if g.flow != nil {
				g.flow.finish()
			}
			if t == TokEOS {
				g.state = gDone
			} else {
				g.startPacket()
			}
		case g.flow != nil:
			return g.flow.advance(t, g.strict)
		case t == TokPad:
			if s.Layout != LayoutPaper || g.final < 0 || len(g.pkt) < g.final || len(g.pkt)+g.pads >= s.PaperPacketLen {
				return refuse()
			}
			g.pads++
		case t < NumByteTokens:
			if r := g.byteRule(); !r.allows(t) {
				if g.strict && r.why != "" {
					return fmt.Errorf("grammar: byte %#02x not allowed at packet byte %d: %s", t, len(g.pkt), r.why)
				}
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
	if g.flow != nil {
		g.flow.startPacket()
	}
	if g.spec.Timing {
		g.state = gDt
	} else {
		g.state = gBytes
	}
}
