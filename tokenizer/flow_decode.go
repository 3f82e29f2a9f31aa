package tokenizer

// decodeFlow is Decode for the flow layout: the tokens run through the
// grammar's flow machine (structural rules only), which rebuilds each packet
// from its flow's context. Like Decode, it never fails: a token the grammar
// refuses is counted and skipped, and a packet cut short is completed as its
// context predicts and counted.
func (s *Spec) decodeFlow(tokens []uint16, sample func(int) int64) Decoded {
	var d Decoded
	g, _ := s.NewGrammar() // s is validated
	var ts int64
	endPacket := func() {
		if g.state == gDt {
			d.Stats.MissingDt++
			d.Stats.EmptyPackets++
			return
		}
		if g.state != gBytes {
			return
		}
		complete := g.flow.canEnd(false)
		p, _ := g.flow.finish()
		switch {
		case p == nil:
			d.Stats.EmptyPackets++
		case !complete:
			d.Stats.Incomplete++
		}
		d.Packets[len(d.Packets)-1].Bytes = p
	}
	d.Stats.NoEOS = true
	for i, t := range tokens {
		tok := int(t)
		if i == 0 && !s.IsLabel(tok) {
			d.Stats.NoLabel = true
			g.state = gPacket
		}
		switch {
		case tok == TokPkt || tok == TokEOS:
			if g.state == gLabel || g.state == gDone {
				d.Stats.Stray++
				continue
			}
			endPacket()
			if tok == TokEOS {
				d.Stats.NoEOS = false
				return d
			}
			d.Packets = append(d.Packets, DecodedPacket{DtBucket: -1, TsNs: ts})
			g.startPacket()
		case s.IsLabel(tok):
			if i != 0 {
				d.Stats.Stray++
				continue
			}
			d.Label = s.Labels[tok-s.FirstLabelID]
			g.state = gPacket
		case s.IsDt(tok):
			if g.state != gDt {
				d.Stats.Stray++
				continue
			}
			g.state = gBytes
			k := tok - TokDt0
			cur := &d.Packets[len(d.Packets)-1]
			cur.DtBucket = k
			if len(d.Packets) > 1 {
				ts += sample(k)
			}
			cur.TsNs = ts
		default:
			if g.state == gDt {
				d.Stats.MissingDt++
				g.state = gBytes
			}
			if g.state != gBytes || tok >= s.VocabSize || g.flow.advance(tok, false) != nil {
				d.Stats.Stray++
			}
		}
	}
	endPacket()
	if len(tokens) == 0 {
		d.Stats.NoLabel = true
	}
	return d
}

// StreamDecoder decodes a trace token by token, for generation, which
// writes each packet as soon as it ends. Only the flow layout needs one (a
// packet is coded against the packets before it); in the other layouts a
// packet is its byte tokens.
type StreamDecoder struct {
	g *Grammar
}

// NewStreamDecoder returns a StreamDecoder for the flow layout, nil for the
// others.
func (s *Spec) NewStreamDecoder() *StreamDecoder {
	if s.Layout != LayoutFlow {
		return nil
	}
	g, err := s.NewGrammar()
	if err != nil {
		return nil
	}
	return &StreamDecoder{g: g}
}

// Token takes the next token. When it ends a packet (a <pkt> or <eos> after
// one), the packet's bytes are returned with ended set; ok is false for a
// token that fits no packet structure (skipped).
func (d *StreamDecoder) Token(tok int) (pkt []byte, ended, ok bool) {
	g := d.g
	switch {
	case tok == TokPkt || tok == TokEOS:
		if g.state == gBytes {
			pkt, _ = g.flow.finish()
			ended = true
		}
		if tok == TokPkt {
			g.startPacket()
		} else {
			g.state = gDone
		}
		return pkt, ended, true
	case g.spec.IsDt(tok):
		if g.state == gDt {
			g.state = gBytes
		}
		return nil, false, true
	case g.spec.IsLabel(tok):
		if g.state == gLabel {
			g.state = gPacket
			return nil, false, true
		}
		return nil, false, false
	}
	if g.state == gDt {
		g.state = gBytes
	}
	if g.state != gBytes || tok < 0 || tok >= g.spec.VocabSize || g.flow.advance(tok, false) != nil {
		return nil, false, false
	}
	return nil, false, true
}

// Packet returns the packet in progress as it stands (fields not yet given
// as predicted).
func (d *StreamDecoder) Packet() []byte {
	if d.g.state != gBytes {
		return nil
	}
	return d.g.flow.packet()
}
