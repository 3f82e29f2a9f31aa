package tokenizer

// Restarter gives stretches of a dataset's traces as if each began its trace:
// the label, then the stretch's packets. In v1 and paper that is the label
// followed by the stretch's own tokens; in the flow layout, where a packet
// is coded against the flows before it, the stretch is re-encoded from an
// empty flow table, so each flow's first packet in it is <flow:new> and the
// tokens show every flow they refer to. Training reads its segments through
// it. It caches each trace's decoded packets; it is not safe for concurrent
// use.
type Restarter struct {
	spec  *Spec
	cache map[int][]DecodedPacket
}

// NewRestarter returns a Restarter for traces of this spec.
func (s *Spec) NewRestarter() *Restarter {
	return &Restarter{spec: s, cache: map[int][]DecodedPacket{}}
}

// Restart returns the label (toks[0]) followed by the packets of trace
// number trace (tokens toks) whose <pkt> lies in [start, stop).
func (r *Restarter) Restart(trace int, toks []uint16, start, stop int) []uint16 {
	s := r.spec
	out := make([]uint16, 0, stop-start+1)
	out = append(out, toks[0])
	if s.Layout != LayoutFlow {
		return append(out, toks[start:stop]...)
	}
	pkts, ok := r.cache[trace]
	if !ok {
		pkts = s.decodeFlow(toks, s.DtMid).Packets
		r.cache[trace] = pkts
	}
	first := countPkt(toks[:start])
	last := min(first+countPkt(toks[start:stop]), len(pkts))
	t := flowTable{size: s.FlowTable}
	for _, p := range pkts[first:last] {
		out = append(out, TokPkt)
		if s.Timing && p.DtBucket >= 0 {
			out = append(out, uint16(TokDt0+p.DtBucket))
		}
		out = s.encodeFlowPacket(&t, p.Bytes, out)
	}
	return out
}

// Forget drops a trace's cached packets.
func (r *Restarter) Forget(trace int) { delete(r.cache, trace) }

func countPkt(toks []uint16) int {
	n := 0
	for _, t := range toks {
		if t == TokPkt {
			n++
		}
	}
	return n
}
