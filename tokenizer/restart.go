package tokenizer

import "slices"

// Restarter gives stretches of a dataset's traces as if each began its trace:
// the label, then the stretch's packets. In v1 and paper that is the label
// followed by the stretch's own tokens; in the flow layout, where a packet
// is coded against the flows before it, the stretch is re-encoded from an
// empty flow table, so each flow's first packet in it is <flow:new> and the
// tokens show every flow they refer to. Training reads its segments through
// it. It caches traces' decoded packets, up to RestartCacheBytes of packet
// bytes (the oldest decoded trace goes first); it is not safe for concurrent
// use.
type Restarter struct {
	spec  *Spec
	cache map[int][]DecodedPacket
	order []int // cached traces, oldest first
	bytes int   // packet bytes held in the cache
	limit int
}

// RestartCacheBytes bounds the packet bytes a Restarter keeps decoded: a
// segment of a trace is re-encoded from the trace's decoded packets, and
// decoding is from the trace's start, so traces are kept while they fit.
const RestartCacheBytes = 512 << 20

// NewRestarter returns a Restarter for traces of this spec.
func (s *Spec) NewRestarter() *Restarter {
	return &Restarter{spec: s, cache: map[int][]DecodedPacket{}, limit: RestartCacheBytes}
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
		r.keep(trace, pkts)
	}
	first := countPkt(toks[:start])
	last := min(first+countPkt(toks[start:stop]), len(pkts))
	t := s.newFlowTable()
	for _, p := range pkts[first:last] {
		out = append(out, TokPkt)
		if s.Timing && p.DtBucket >= 0 {
			out = append(out, uint16(TokDt0+p.DtBucket))
		}
		out = s.encodeFlowPacket(&t, p.Bytes, out)
	}
	return out
}

// SetCacheLimit bounds the packet bytes the cache keeps (RestartCacheBytes
// unless set), dropping the oldest traces beyond it.
func (r *Restarter) SetCacheLimit(bytes int) {
	r.limit = bytes
	for r.bytes > r.limit && len(r.order) > 0 {
		r.Forget(r.order[0])
	}
}

// CachedBytes is how many packet bytes the cache holds.
func (r *Restarter) CachedBytes() int { return r.bytes }

// keep caches a trace's packets, dropping the oldest traces while the cache
// would exceed its limit (a trace larger than the limit alone is not kept).
func (r *Restarter) keep(trace int, pkts []DecodedPacket) {
	n := packetBytes(pkts)
	if n > r.limit {
		return
	}
	for r.bytes+n > r.limit && len(r.order) > 0 {
		r.Forget(r.order[0])
	}
	r.cache[trace] = pkts
	r.order = append(r.order, trace)
	r.bytes += n
}

// Forget drops a trace's cached packets.
func (r *Restarter) Forget(trace int) {
	pkts, ok := r.cache[trace]
	if !ok {
		return
	}
	delete(r.cache, trace)
	r.bytes -= packetBytes(pkts)
	r.order = slices.DeleteFunc(r.order, func(t int) bool { return t == trace })
}

// packetBytes is the memory a trace's decoded packets hold, roughly: their
// bytes plus each packet's fixed part.
func packetBytes(pkts []DecodedPacket) int {
	n := 0
	for _, p := range pkts {
		n += len(p.Bytes) + len(p.Link) + 64
	}
	return n
}

func countPkt(toks []uint16) int {
	n := 0
	for _, t := range toks {
		if t == TokPkt {
			n++
		}
	}
	return n
}
