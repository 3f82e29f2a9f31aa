package tokenizer

import (
	"fmt"
	"slices"
)

// flowMachine follows one packet of the flow layout token by token, from
// its flow token to its end, and keeps the trace's flow table. The decoder
// and the grammar both run it, so they cannot disagree on what a token
// means. With strict set, it also holds generated packets to the
// well-formedness rules (wellformed.go), the TCP flag rule and the TCP
// handshake rule (flow_handshake.go).
type flowMachine struct {
	spec  *Spec
	v1    *Spec // the v1 spec with the same kept bytes: the byte grammar of new and raw packets
	table flowTable
	phase flowPhase

	// <flow:new> and <flow:raw>: the packet's bytes under the byte grammar
	sub Grammar
	raw bool

	// a known flow's packet
	ctx      flowContext
	hs       handshake // its flow's handshake when the packet started (strict rule)
	dir      int       // its direction
	cur      []byte    // fixed header; fields [0, next) settled
	next     int
	op       int    // flowOps index of the op being read
	opBytes  []byte // its bytes so far
	tailLen  int    // once the fields are settled
	predTail []byte
	tail     []byte // tail bytes given so far
	mask     []byte // <tail:mask>: the mask as read so far

	last        []byte // the packet finish returned last
	scratch     []byte // a copy of cur that a rule may change (see curCopy)
	addrScratch []byte // the packet before an <addr:k>, to undo it
}

type flowPhase uint8

const (
	fpFlow     flowPhase = iota // expects <flow:new>, <flow:raw> or <flow:R:D>
	fpBytes                     // new or raw packet: its bytes
	fpFields                    // known flow: an op, a tail op or the end
	fpOpBytes                   // an op's bytes
	fpTailMask                  // <tail:mask>'s mask bytes
	fpTailVals                  // the masked bytes' values
	fpTailRaw                   // <tail:raw>'s bytes
)

func (s *Spec) newFlowMachine() *flowMachine {
	v1 := *s
	v1.Version, v1.Layout, v1.FlowTable, v1.AddrTable = 1, LayoutV1, 0, 0
	_ = v1.Validate() // s validated; v1 differs only in layout
	return &flowMachine{spec: s, v1: &v1, table: s.newFlowTable()}
}

func (m *flowMachine) clone() *flowMachine {
	c := *m
	c.table = m.table.clone()
	c.sub.pkt = slices.Clone(m.sub.pkt)
	c.cur = slices.Clone(m.cur)
	c.scratch, c.addrScratch = nil, nil
	c.opBytes = slices.Clone(m.opBytes)
	c.tail = slices.Clone(m.tail)
	c.mask = slices.Clone(m.mask)
	return &c
}

// startPacket readies the machine for the tokens after <pkt> (and <dt:k>).
func (m *flowMachine) startPacket() {
	m.phase = fpFlow
	m.cur, m.opBytes, m.tail, m.mask, m.predTail = m.cur[:0], m.opBytes[:0], m.tail[:0], m.mask[:0], nil
}

// packet returns the current packet's bytes so far (between fields: as
// they would end if every field left took its prediction).
func (m *flowMachine) packet() []byte {
	switch m.phase {
	case fpFlow:
		return nil
	case fpBytes:
		return m.sub.pkt
	case fpFields: // the rest as predicted
		tmp := slices.Clone(m.cur)
		settleFields(&m.ctx, tmp, m.next, len(m.ctx.shape.fields))
		return append(tmp, m.ctx.predictTail(m.spec.tailLen(tmp, m.ctx.shape))...)
	}
	return append(slices.Clone(m.cur), m.tail...)
}

// allowed marks in mask the tokens that may come next inside the packet;
// the caller adds <pkt> and <eos> when canEnd says so.
func (m *flowMachine) allowed(mask []bool, strict bool) {
	s := m.spec
	switch m.phase {
	case fpFlow:
		mask[s.tokFlowNew()] = true
		mask[s.tokFlowRaw()] = true
		for r := range m.table.entries {
			mask[s.tokFlowRef(r, 0)] = true
			mask[s.tokFlowRef(r, 1)] = true
		}
	case fpBytes:
		m.byteRule(strict).fill(mask)
		for k := range m.table.addrs.len(m.sub.pkt) {
			if m.addrFits(k, strict) {
				mask[s.tokAddr(k)] = true
			}
		}
	case fpFields:
		for i := m.next; i < len(m.ctx.shape.fields); i++ {
			if strict && !m.skipValid(i) {
				break
			}
			for o, op := range flowOps {
				if op.field == m.ctx.shape.fields[i].kind && m.opPossible(i, op, strict) {
					mask[s.tokOp(o)] = true
				}
			}
		}
		if n := len(m.ctx.shape.fields); !strict || m.skipValid(n) {
			tl, pred := m.settledTail()
			if tl > 0 {
				mask[s.tokTailRaw()] = true
				if pred != nil {
					mask[s.tokTailMask()] = true
				}
			}
		}
	default:
		for b := range NumByteTokens {
			if m.byteOK(b, strict) {
				mask[b] = true
			}
		}
	}
}

// canEnd reports whether the packet may end here.
func (m *flowMachine) canEnd(strict bool) bool {
	switch m.phase {
	case fpBytes:
		if m.sub.canEnd() {
			return true
		}
		return m.raw && !strict && len(m.sub.pkt) > 0
	case fpFields:
		if strict && !m.skipValid(len(m.ctx.shape.fields)) {
			return false
		}
		tl, pred := m.settledTail()
		return tl == 0 || pred != nil
	case fpTailVals, fpTailRaw:
		return len(m.tail) == m.tailLen
	}
	return false
}

// advance takes a token inside the packet (not <pkt> or <eos>).
func (m *flowMachine) advance(tok int, strict bool) error {
	s := m.spec
	switch m.phase {
	case fpFlow:
		return m.advanceFlowToken(tok)
	case fpBytes:
		if k := s.addrRef(tok); k >= 0 {
			return m.takeAddr(k, strict)
		}
		return m.takeByteToken(tok, strict)
	case fpFields:
		return m.advanceFieldsToken(tok, strict)
	}
	if tok >= NumByteTokens || !m.byteOK(tok, strict) {
		return fmt.Errorf("flow layout: %s not allowed here", s.TokenString(tok))
	}
	m.takeByte(byte(tok))
	return nil
}

func (m *flowMachine) advanceFlowToken(tok int) error {
	s := m.spec
	switch {
	case tok == s.tokFlowNew(), tok == s.tokFlowRaw():
		g, _ := m.v1.NewGrammar()
		g.state = gBytes
		m.sub, m.raw, m.phase = *g, tok == s.tokFlowRaw(), fpBytes
		return nil
	}
	r, d, ok := s.flowRef(tok)
	if !ok || r >= len(m.table.entries) {
		return fmt.Errorf("flow layout: %s where a flow token must stand (table of %d flows)", s.TokenString(tok), len(m.table.entries))
	}
	e := m.table.entries[r]
	m.ctx, m.hs, m.dir = s.context(e, d), e.hs, d
	m.cur = append(m.cur[:0], m.ctx.tmpl[:m.ctx.shape.fixed]...)
	m.next, m.phase = 0, fpFields
	return nil
}

func (m *flowMachine) advanceFieldsToken(tok int, strict bool) error {
	s := m.spec
	fields := m.ctx.shape.fields
	if o := s.opIndex(tok); o >= 0 {
		i := m.ctx.shape.fieldIndex(flowOps[o].field)
		if i < m.next || (strict && !m.skipValid(i)) || !m.opPossible(i, flowOps[o], strict) {
			return fmt.Errorf("flow layout: %s not allowed here", s.TokenString(tok))
		}
		m.settle(i)
		m.op, m.opBytes, m.phase = o, m.opBytes[:0], fpOpBytes
		return nil
	}
	if tok != s.tokTailMask() && tok != s.tokTailRaw() {
		return fmt.Errorf("flow layout: %s not allowed among a packet's fields", s.TokenString(tok))
	}
	if strict && !m.skipValid(len(fields)) {
		return fmt.Errorf("flow layout: %s not allowed: a skipped field's prediction is not well formed", s.TokenString(tok))
	}
	m.settle(len(fields))
	m.tailLen = s.tailLen(m.cur, m.ctx.shape)
	m.predTail = m.ctx.predictTail(m.tailLen)
	switch {
	case m.tailLen <= 0:
		return fmt.Errorf("flow layout: %s for a packet without a tail", s.TokenString(tok))
	case tok == s.tokTailMask() && m.predTail == nil:
		return fmt.Errorf("flow layout: <tail:mask> but the tail's length differs from the template's")
	case tok == s.tokTailMask():
		m.phase = fpTailMask
	default:
		m.phase = fpTailRaw
	}
	return nil
}

// takeByte files an allowed byte of an op, a mask or a tail.
func (m *flowMachine) takeByte(b byte) {
	switch m.phase {
	case fpOpBytes:
		m.opBytes = append(m.opBytes, b)
		if op := flowOps[m.op]; len(m.opBytes) == op.n {
			f := m.ctx.shape.fields[m.next]
			putField(m.cur, f, m.opValue(f, m.opBytes))
			m.next++
			m.phase = fpFields
		}
	case fpTailMask:
		m.mask = append(m.mask, b)
		if len(m.mask) == (m.tailLen+7)/8 {
			m.phase = fpTailVals
			m.fillUnmasked()
		}
	case fpTailVals:
		m.tail = append(m.tail, b)
		m.fillUnmasked()
	case fpTailRaw:
		m.tail = append(m.tail, b)
	}
}

// fillUnmasked copies predicted tail bytes up to the next masked position.
func (m *flowMachine) fillUnmasked() {
	for len(m.tail) < m.tailLen && !m.masked(len(m.tail)) {
		m.tail = append(m.tail, m.predTail[len(m.tail)])
	}
}

func (m *flowMachine) masked(i int) bool { return m.mask[i/8]&(1<<(i%8)) != 0 }

// opValue is the value an op's bytes give field f.
func (m *flowMachine) opValue(f headerField, raw []byte) uint64 {
	if deltaField(f.kind) {
		return applyDelta(m.ctx.predict(f, m.cur), raw, f.width)
	}
	var v uint64
	for _, b := range raw {
		v = v<<8 | uint64(b)
	}
	return v
}

// settle gives the fields before index i their predicted values.
func (m *flowMachine) settle(i int) {
	settleFields(&m.ctx, m.cur, m.next, i)
	m.next = max(m.next, i)
}

func settleFields(c *flowContext, cur []byte, from, to int) {
	for j := from; j < to; j++ {
		f := c.shape.fields[j]
		putField(cur, f, c.predict(f, cur))
	}
}

// settledTail is the tail length and predicted tail if every field left
// took its prediction.
func (m *flowMachine) settledTail() (int, []byte) {
	tmp := slices.Clone(m.cur)
	settleFields(&m.ctx, tmp, m.next, len(m.ctx.shape.fields))
	n := m.spec.tailLen(tmp, m.ctx.shape)
	return n, m.ctx.predictTail(n)
}

// finish ends the packet (forcing what is missing when it ended early: the
// rest of the fields and tail as predicted), files it in the flow table and
// returns its bytes; complete is false when it had to force.
func (m *flowMachine) finish() (p []byte, complete bool) {
	complete = m.canEnd(false)
	switch m.phase {
	case fpFlow:
		m.last = nil
		return nil, false
	case fpBytes:
		p = slices.Clone(m.sub.pkt)
		if m.raw {
			m.table.addrs.record(p)
			m.last = p
			return p, complete
		}
	default:
		m.settle(len(m.ctx.shape.fields))
		if m.phase == fpFields || m.phase == fpOpBytes {
			m.tailLen = m.spec.tailLen(m.cur, m.ctx.shape)
			m.tail = append(m.tail[:0], m.ctx.predictTail(m.tailLen)...)
		}
		p = append(slices.Clone(m.cur), m.tail...)
	}
	m.table.record(m.spec.classify(p), p)
	m.table.addrs.record(p)
	m.last = p
	return p, complete
}

// takeByteToken takes a byte token of a new or raw packet.
func (m *flowMachine) takeByteToken(tok int, strict bool) error {
	if tok >= NumByteTokens || !m.byteRule(strict).allows(tok) {
		return fmt.Errorf("flow layout: byte token %s not allowed at packet byte %d", m.spec.TokenString(tok), len(m.sub.pkt))
	}
	return m.sub.Advance(uint16(tok))
}

// takeAddr takes <addr:k> in a new or raw packet: the bytes of the address
// of rank k, where an address starts. On error the packet is as before.
func (m *flowMachine) takeAddr(k int, strict bool) error {
	w, ok := addrSlotAt(m.sub.pkt)
	if !ok || k >= m.table.addrs.len(m.sub.pkt) {
		return fmt.Errorf("flow layout: %s not allowed at packet byte %d (address table of %d)", m.spec.TokenString(m.spec.tokAddr(k)), len(m.sub.pkt), m.table.addrs.len(m.sub.pkt))
	}
	saved := m.sub
	saved.pkt = append(m.addrScratch[:0], m.sub.pkt...)
	m.addrScratch = saved.pkt
	for _, b := range m.table.addrs.at(m.sub.pkt, k)[:w] {
		if err := m.takeByteToken(int(b), strict); err != nil {
			m.sub.pkt = append(m.sub.pkt[:0], saved.pkt...)
			m.sub.final, m.sub.state, m.sub.strict = saved.final, saved.state, saved.strict
			return err
		}
	}
	return nil
}

// addrFits reports whether <addr:k> may come next in a new or raw packet.
func (m *flowMachine) addrFits(k int, strict bool) bool {
	if _, ok := addrSlotAt(m.sub.pkt); !ok {
		return false
	}
	n := len(m.sub.pkt)
	final, state, st := m.sub.final, m.sub.state, m.sub.strict
	err := m.takeAddr(k, strict)
	m.sub.pkt, m.sub.final, m.sub.state, m.sub.strict = m.sub.pkt[:n], final, state, st
	return err == nil
}
