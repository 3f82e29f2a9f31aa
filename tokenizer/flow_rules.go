package tokenizer

import "slices"

// The rules of the flow machine: which bytes an op, a mask or a tail may
// take. Structural rules hold always (they keep a packet parseable: TCP data
// offset ≥ 5, IPv6 version nibble 6, mask bits only inside the tail);
// strict ones (generation) hold every rebuilt header byte to the
// well-formedness rules of wellformed.go, TCP flags to TCPFlagsValid and an
// open TCP handshake to the handshake rule (flow_handshake.go).

// byteRule is the rule for the next byte of a new or raw packet.
func (m *flowMachine) byteRule(strict bool) byteRule {
	m.sub.strict = strict
	r := m.sub.byteRule()
	if !strict {
		return r
	}
	p := m.sub.pkt
	n := len(p)
	tcp, udp := byteSet(ProtoTCP), byteSet(ProtoUDP)
	switch {
	case n == 0 && !m.raw:
		return r.and(byteSet(0x45).or(byteRange(0x60, 0x6f)))
	case n == 9 && p[0]>>4 == 4 && m.raw:
		return r.and(byteSet(ProtoICMP))
	case n == 9 && p[0]>>4 == 4:
		return r.and(tcp.or(udp))
	case n == 6 && p[0]>>4 == 6 && m.raw:
		return r.and(byteSet(ProtoICMPv6))
	case n == 6 && p[0]>>4 == 6:
		return r.and(tcp.or(udp))
	}
	if l := m.v1.Keep(p); l.Proto == ProtoTCP && l.IPHdrLen > 0 && n == l.IPHdrLen+13 {
		return r.and(tcpFlagsRule)
	}
	return r
}

func (r byteRule) and(o byteRule) byteRule {
	for i := range r.set {
		r.set[i] &= o.set[i]
	}
	return r
}

// constrained reports whether a delta field has strict limits on its value.
func constrained(k fieldKind) bool { return k == fIPLen || k == fULen }

// staticByte reports whether header byte k of shape sh belongs to no field.
func staticByte(sh *flowShape, k int) bool {
	return k >= 0 && k < 64 && sh.static&(1<<k) != 0
}

// fieldWellFormed checks field i of header h, and the header's fieldless
// bytes after it, against the strict rules.
func fieldWellFormed(sh *flowShape, h []byte, i int) bool {
	f := sh.fields[i]
	for k := f.off; k < sh.fixed; k++ {
		if k >= f.off+f.width && !staticByte(sh, k) {
			continue
		}
		if !wellFormedRule(h[:k]).allows(int(h[k])) || !structuralOK(sh, h, k) {
			return false
		}
		if f.kind == fFlags && k == f.off && !TCPFlagsValid(h[k]) {
			return false
		}
	}
	return true
}

// structuralOK holds in every mode: a header byte that would make the packet
// unparseable is refused.
func structuralOK(sh *flowShape, h []byte, k int) bool {
	switch {
	case !sh.v4 && k == 0:
		return h[0]>>4 == 6
	case sh.proto == ProtoTCP && k == sh.ipHdr+12:
		return h[k]>>4 >= 5
	}
	return true
}

// skipValid reports whether fields [next, i) may all take their predictions
// under the strict rules.
func (m *flowMachine) skipValid(i int) bool {
	sh := &m.ctx.shape
	tmp := m.curCopy()
	for j := m.next; j < i; j++ {
		f := sh.fields[j]
		putField(tmp, f, m.ctx.predict(f, tmp))
		if !m.fieldOK(tmp, j) {
			return false
		}
	}
	return true
}

// curCopy returns the machine's scratch buffer holding a copy of cur, for a
// rule to try values in; it is valid until the next call.
func (m *flowMachine) curCopy() []byte {
	m.scratch = append(m.scratch[:0], m.cur...)
	return m.scratch
}

// opPossible reports whether op may set field i: some value of its bytes
// passes the rules.
func (m *flowMachine) opPossible(i int, op flowOp, strict bool) bool {
	f := m.ctx.shape.fields[i]
	if !strict || !deltaField(f.kind) || op.n == f.width {
		return true // raw fields and full-width deltas reach every value
	}
	tmp := m.curCopy()
	settleFields(&m.ctx, tmp, m.next, i)
	pred := m.ctx.predict(f, tmp)
	if vals := m.hsValues(f.kind, tmp); vals != nil {
		for _, v := range vals {
			if _, ok := deltaRaw(v, pred, op.n, f.width); ok {
				return true
			}
		}
		return false
	}
	if !constrained(f.kind) {
		return true
	}
	for b := range 256 {
		putField(tmp, f, applyDelta(pred, []byte{byte(b)}, f.width))
		if m.fieldOK(tmp, i) {
			return true
		}
	}
	return false
}

// byteOK reports whether byte b may come next in an op, a mask or a tail.
func (m *flowMachine) byteOK(b int, strict bool) bool {
	switch m.phase {
	case fpOpBytes:
		return m.opByteOK(b, strict)
	case fpTailMask:
		j := len(m.mask)
		if left := m.tailLen - 8*j; left < 8 && b>>left != 0 {
			return false
		}
		return !strict || b&^int(m.maskAllowed(j)) == 0
	case fpTailVals:
		return len(m.tail) < m.tailLen
	case fpTailRaw:
		if len(m.tail) >= m.tailLen {
			return false
		}
		return !strict || wellFormedRule(append(slices.Clone(m.cur), m.tail...)).allows(b)
	}
	return false
}

func (m *flowMachine) opByteOK(b int, strict bool) bool {
	sh := &m.ctx.shape
	op := flowOps[m.op]
	f := sh.fields[m.next]
	j := len(m.opBytes)
	tmp := m.curCopy()
	if !deltaField(f.kind) {
		tmp[f.off+j] = byte(b)
		if !structuralOK(sh, tmp, f.off+j) {
			return false
		}
		if !strict {
			return true
		}
		if !wellFormedRule(tmp[:f.off+j]).allows(b) || (f.kind == fFlags && !TCPFlagsValid(byte(b))) {
			return false
		}
		return j < f.width-1 || m.fieldOK(tmp, m.next)
	}
	if !strict {
		return true
	}
	pred := m.ctx.predict(f, tmp)
	if vals := m.hsValues(f.kind, tmp); vals != nil {
		return hsDeltaByteOK(vals, pred, m.opBytes, b, op.n, f.width)
	}
	if !constrained(f.kind) {
		return true
	}
	var buf [5]byte // ops are at most 4 bytes
	raw := append(append(buf[:0], m.opBytes...), byte(b), 0)
	if j == op.n-1 {
		raw = raw[:op.n]
		putField(tmp, f, applyDelta(pred, raw, f.width))
		return m.fieldOK(tmp, m.next)
	}
	for lo := range 256 { // one byte left (2-byte deltas)
		raw[op.n-1] = byte(lo)
		putField(tmp, f, applyDelta(pred, raw, f.width))
		if m.fieldOK(tmp, m.next) {
			return true
		}
	}
	return false
}

// maskAllowed is the mask byte j may set under the strict rules: for TCP,
// only bytes inside option values and payload (option kinds, lengths and
// padding stay as predicted, so the list stays well formed); for UDP, all.
func (m *flowMachine) maskAllowed(j int) byte {
	if m.ctx.shape.proto != ProtoTCP {
		return 0xff
	}
	optLen := int(m.cur[m.ctx.shape.ipHdr+12]>>4)*4 - 20
	ok := make([]bool, m.tailLen)
	for i := optLen; i < m.tailLen; i++ {
		ok[i] = true
	}
	opts := m.predTail
	for i := 0; i < optLen && i < len(opts); {
		if opts[i] == 0 {
			break
		}
		if opts[i] == 1 || i+1 >= optLen {
			i++
			continue
		}
		l := int(opts[i+1])
		if l < 2 {
			break
		}
		for k := i + 2; k < i+l && k < optLen; k++ {
			ok[k] = true
		}
		i += l
	}
	var bits byte
	for k := range 8 {
		if p := 8*j + k; p < m.tailLen && ok[p] {
			bits |= 1 << k
		}
	}
	return bits
}
