package tokenizer

// encodeFlowPacket appends the flow-layout tokens of one packet (its kept
// bytes, after <pkt> and <dt:k>) to toks and files the packet in t.
func (s *Spec) encodeFlowPacket(t *flowTable, kept []byte, toks []uint16) []uint16 {
	fp := s.classify(kept)
	r := -1
	if fp.trackOK {
		r = t.find(fp.key)
	}
	switch {
	case !fp.trackOK:
		toks = s.appendPacketBytes(&t.addrs, kept, append(toks, uint16(s.tokFlowRaw())))
	case r < 0:
		toks = s.appendPacketBytes(&t.addrs, kept, append(toks, uint16(s.tokFlowNew())))
	default:
		e := t.entries[r]
		d := e.dir(fp.fromLo)
		toks = append(toks, uint16(s.tokFlowRef(r, d)))
		toks = s.encodeAgainst(s.context(e, d), kept, toks)
	}
	t.record(fp, kept)
	t.addrs.record(kept)
	return toks
}

// encodeAgainst appends the ops and tail that turn context c's predictions
// into packet p.
func (s *Spec) encodeAgainst(c flowContext, p []byte, toks []uint16) []uint16 {
	sh := c.shape
	cur := append([]byte(nil), c.tmpl[:sh.fixed]...)
	for _, f := range sh.fields {
		pred := c.predict(f, cur)
		v := getField(p, f)
		putField(cur, f, v)
		if v == pred {
			continue
		}
		n, raw := f.width, v
		if deltaField(f.kind) {
			n, raw = deltaBytes(v, pred, f.width)
		}
		toks = append(toks, uint16(s.tokOp(opFor(f.kind, n))))
		for i := n - 1; i >= 0; i-- {
			toks = append(toks, uint16(raw>>(8*i)&0xff))
		}
	}
	tail := p[sh.fixed:]
	pred := c.predictTail(len(tail))
	switch {
	case len(tail) == 0 || string(pred) == string(tail):
	case pred != nil:
		toks = append(toks, uint16(s.tokTailMask()))
		mask := make([]byte, (len(tail)+7)/8)
		for i := range tail {
			if tail[i] != pred[i] {
				mask[i/8] |= 1 << (i % 8)
			}
		}
		toks = appendBytes(toks, mask)
		for i := range tail {
			if tail[i] != pred[i] {
				toks = append(toks, uint16(tail[i]))
			}
		}
	default:
		toks = appendBytes(append(toks, uint16(s.tokTailRaw())), tail)
	}
	return toks
}

// opFor is the index in flowOps of the op setting field k with n bytes.
func opFor(k fieldKind, n int) int {
	for i, op := range flowOps {
		if op.field == k && op.n == n {
			return i
		}
	}
	panic("tokenizer: no flow op for field " + fieldNames[k]) // flowOps covers every field's widths
}

func appendBytes(toks []uint16, b []byte) []uint16 {
	for _, x := range b {
		toks = append(toks, uint16(x))
	}
	return toks
}
