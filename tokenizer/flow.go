package tokenizer

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// The flow layout (spec version 2) encodes headers as a header compressor
// (ROHC, RFC 5795; Van Jacobson, RFC 1144) sends them: each trace keeps a
// table of its flows, most recently used first, and a packet of a known flow
// names the flow and sends only what its context does not predict.
//
//	<pkt> [<dt:k>] <flow:new>   byte…                       a flow's first packet: kept bytes as v1
//	<pkt> [<dt:k>] <flow:R:D>   {<op> byte…} [<tail:…> …]   a packet of the flow at rank R, direction D
//	<pkt> [<dt:k>] <flow:raw>   byte…                       outside the table (ICMP, fragments, truncated)
//
// Flows: TCP and UDP over IPv4 without options or fragmentation, or over
// IPv6 without extension headers, keyed by (IP version, protocol, both
// addresses and ports), both directions one flow. Direction 0 is the one of
// the flow's first packet. The table holds Spec.FlowTable flows; a packet
// moves its flow to rank 0; a new flow enters at rank 0 and pushes out the
// least recently used one, which is new again if it returns.
//
// A known flow's packet starts from a template: the flow's last packet in
// the same direction, or, when the flow has none yet, its last packet in the
// other direction with addresses and ports swapped. Its fixed header (IP
// header and the first 20 TCP or 8 UDP bytes) is rebuilt field by field in
// header order; a field not named takes its predicted value:
//
//   - IPv4 identification: the template's + 1 (0 stays 0);
//   - TCP sequence number: the template's + its segment length (payload,
//     SYN and FIN each count 1); from a swapped template, its ack number;
//   - TCP acknowledgement number: the other direction's last sequence number
//     + its segment length (the template's when that direction has none);
//   - UDP length: the IP payload length;
//   - every other field (TOS, IP length, flags and fragment offset, TTL,
//     IPv6 traffic class and flow label, hop limit, TCP data offset, flags,
//     window, urgent pointer, checksums kept as captured): the template's.
//
// A named field is an op token followed by its bytes: numeric fields (IP
// length, identification, sequence and ack numbers, window, UDP length) as a
// signed big-endian delta from the prediction, 1, 2 or (32-bit fields) 4
// bytes, chosen as the shortest that holds it; the others as their new
// bytes. Then the tail: TCP options and kept payload bytes, or UDP's kept
// payload bytes. It is predicted as the template's tail (with the TCP
// timestamp echo set to the other direction's last timestamp value) when the
// lengths agree; <tail:mask> then lists the bytes that differ (a bit mask,
// least significant bit first, then their values), and <tail:raw> gives the
// whole tail when the length changed. An in-order segment of a steady flow
// is <pkt> <dt:k> <flow:0:1> and its timestamp bytes.

// FlowTableDefault is the flow table size of FlowSpec.
const FlowTableDefault = 64

// AddrTableDefault is the address table size of FlowSpec (per IP version).
const AddrTableDefault = 64

// flowOp is a field op token: which field it sets and how many bytes follow.
type flowOp struct {
	field fieldKind
	n     int // bytes that follow
}

type fieldKind uint8

const (
	fTOS fieldKind = iota
	fIPLen
	fIPID
	fFrag
	fTTL
	fIPSum
	fTC
	fHop
	fSeq
	fAck
	fDoff
	fFlags
	fWin
	fL4Sum
	fUrg
	fULen
	numFieldKinds
)

var fieldNames = [numFieldKinds]string{"tos", "iplen", "ipid", "frag", "ttl", "ipsum", "tc", "hop", "seq", "ack", "doff", "flags", "win", "l4sum", "urg", "ulen"}

// deltaField reports whether a field is sent as a delta from its prediction.
func deltaField(f fieldKind) bool {
	switch f {
	case fIPLen, fIPID, fSeq, fAck, fWin, fULen:
		return true
	}
	return false
}

// flowOps lists the op tokens in id order.
var flowOps = []flowOp{
	{fTOS, 1}, {fIPLen, 1}, {fIPLen, 2}, {fIPID, 1}, {fIPID, 2}, {fFrag, 2}, {fTTL, 1}, {fIPSum, 2},
	{fTC, 4}, {fHop, 1},
	{fSeq, 1}, {fSeq, 2}, {fSeq, 4}, {fAck, 1}, {fAck, 2}, {fAck, 4},
	{fDoff, 1}, {fFlags, 1}, {fWin, 1}, {fWin, 2}, {fL4Sum, 2}, {fUrg, 2},
	{fULen, 1}, {fULen, 2},
}

// headerField is a field of a fixed header: where it sits and how wide it is.
type headerField struct {
	kind  fieldKind
	off   int
	width int
}

// flowShape is the fixed header of a flow's packets.
type flowShape struct {
	v4     bool
	proto  int
	ipHdr  int // 20 or 40
	fixed  int // ipHdr + 20 (TCP) or 8 (UDP)
	fields []headerField
	static uint64 // bit k: header byte k belongs to no field (fixed ≤ 60)
}

func newFlowShape(v4 bool, proto int, keepSums bool) flowShape {
	sh := flowShape{v4: v4, proto: proto, ipHdr: 40}
	if v4 {
		sh.ipHdr = 20
		sh.fields = []headerField{{fTOS, 1, 1}, {fIPLen, 2, 2}, {fIPID, 4, 2}, {fFrag, 6, 2}, {fTTL, 8, 1}}
		if keepSums {
			sh.fields = append(sh.fields, headerField{fIPSum, 10, 2})
		}
	} else {
		sh.fields = []headerField{{fTC, 0, 4}, {fIPLen, 4, 2}, {fHop, 7, 1}}
	}
	l4 := sh.ipHdr
	if proto == ProtoTCP {
		sh.fixed = l4 + 20
		sh.fields = append(sh.fields, headerField{fSeq, l4 + 4, 4}, headerField{fAck, l4 + 8, 4},
			headerField{fDoff, l4 + 12, 1}, headerField{fFlags, l4 + 13, 1}, headerField{fWin, l4 + 14, 2})
		if keepSums {
			sh.fields = append(sh.fields, headerField{fL4Sum, l4 + 16, 2})
		}
		sh.fields = append(sh.fields, headerField{fUrg, l4 + 18, 2})
	} else {
		sh.fixed = l4 + 8
		sh.fields = append(sh.fields, headerField{fULen, l4 + 4, 2})
		if keepSums {
			sh.fields = append(sh.fields, headerField{fL4Sum, l4 + 6, 2})
		}
	}
	sh.static = 1<<sh.fixed - 1
	for _, f := range sh.fields {
		sh.static &^= (1<<f.width - 1) << f.off
	}
	return sh
}

// fieldIndex is the index in sh.fields of the field of kind k, -1 if absent.
func (sh *flowShape) fieldIndex(k fieldKind) int {
	for i, f := range sh.fields {
		if f.kind == k {
			return i
		}
	}
	return -1
}

// flowKey identifies a flow regardless of direction.
type flowKey struct {
	v4     bool
	proto  uint8
	lo, hi [18]byte // endpoint (address, port), lo ≤ hi bytewise
}

// flowPacket is what the flow table needs of a packet: its key and whether
// it travels from the key's lo endpoint.
type flowPacket struct {
	key     flowKey
	fromLo  bool
	trackOK bool
}

// endpoints returns the source and destination (address ++ port) of a
// trackable packet p.
func endpoints(p []byte, v4 bool, ipHdr int) (src, dst [18]byte) {
	if v4 {
		copy(src[:], p[12:16])
		copy(dst[:], p[16:20])
	} else {
		copy(src[:], p[8:24])
		copy(dst[:], p[24:40])
	}
	copy(src[16:], p[ipHdr:ipHdr+2])
	copy(dst[16:], p[ipHdr+2:ipHdr+4])
	return src, dst
}

// classify says whether the kept bytes p of a whole packet belong in the
// flow table, and under which key.
func (s *Spec) classify(p []byte) flowPacket {
	if len(p) == 0 {
		return flowPacket{}
	}
	l := s.Keep(p)
	if !l.Complete || l.Malformed || len(p) != l.Keep || (l.Proto != ProtoTCP && l.Proto != ProtoUDP) {
		return flowPacket{}
	}
	v4 := l.Version == 4
	switch {
	case v4 && (l.IPHdrLen != 20 || binary.BigEndian.Uint16(p[6:8])&0x3fff != 0):
		return flowPacket{} // options, or a fragment
	case !v4 && (l.IPHdrLen != 40 || int(p[6]) != l.Proto):
		return flowPacket{} // extension headers
	}
	sh := newFlowShape(v4, l.Proto, false)
	if len(p) < sh.fixed {
		return flowPacket{}
	}
	src, dst := endpoints(p, v4, l.IPHdrLen)
	k := flowKey{v4: v4, proto: uint8(l.Proto), lo: src, hi: dst}
	fromLo := true
	if bytes.Compare(src[:], dst[:]) > 0 {
		k.lo, k.hi, fromLo = dst, src, false
	}
	return flowPacket{key: k, fromLo: fromLo, trackOK: true}
}

// flowEntry is one flow of the table.
type flowEntry struct {
	key     flowKey
	firstLo bool      // direction 0 travels from the key's lo endpoint
	last    [2][]byte // last kept bytes in each direction (nil: none yet)
	hs      handshake // TCP: the handshake (flow_handshake.go)
}

func (e *flowEntry) dir(fromLo bool) int {
	if fromLo == e.firstLo {
		return 0
	}
	return 1
}

// flowTable is a trace's flows, most recently used first, and (spec
// version 3) its addresses.
type flowTable struct {
	size    int
	entries []*flowEntry
	addrs   addrTable
}

// newFlowTable is an empty table of a trace.
func (s *Spec) newFlowTable() flowTable {
	return flowTable{size: s.FlowTable, addrs: addrTable{size: s.AddrTable}}
}

func (t *flowTable) find(k flowKey) int {
	for i, e := range t.entries {
		if e.key == k {
			return i
		}
	}
	return -1
}

// touch moves rank r to the front.
func (t *flowTable) touch(r int) *flowEntry {
	e := t.entries[r]
	copy(t.entries[1:r+1], t.entries[:r])
	t.entries[0] = e
	return e
}

// record files the finished packet p (kept bytes) under its flow: the flow
// moves to the front, a new flow enters there (pushing out the oldest).
func (t *flowTable) record(fp flowPacket, p []byte) {
	if !fp.trackOK {
		return
	}
	var e *flowEntry
	first := false
	if r := t.find(fp.key); r >= 0 {
		e = t.touch(r)
	} else {
		first = true
		e = &flowEntry{key: fp.key, firstLo: fp.fromLo}
		if len(t.entries) < t.size {
			t.entries = append(t.entries, nil)
		}
		copy(t.entries[1:], t.entries[:len(t.entries)-1])
		t.entries[0] = e
	}
	d := e.dir(fp.fromLo)
	e.last[d] = append([]byte(nil), p...)
	if fp.key.proto == ProtoTCP {
		l4 := 40
		if fp.key.v4 {
			l4 = 20
		}
		e.hs.follow(p, l4, d, first)
	}
}

func (t *flowTable) clone() flowTable {
	c := flowTable{size: t.size, entries: make([]*flowEntry, len(t.entries)), addrs: t.addrs.clone()}
	for i, e := range t.entries {
		ce := *e
		c.entries[i] = &ce // packets are never written in place: sharing them is safe
	}
	return c
}

// flowContext is what a known flow's packet is coded against.
type flowContext struct {
	shape   flowShape
	tmpl    []byte // template: fixed header and tail
	swapped bool   // the template is the other direction's packet, mirrored
	other   []byte // the other direction's last packet (nil: none)
}

// context builds the coding context of a packet in direction d of e.
func (s *Spec) context(e *flowEntry, d int) flowContext {
	c := flowContext{other: e.last[1-d]}
	src := e.last[d]
	if src == nil {
		src, c.swapped = e.last[1-d], true
	}
	c.shape = newFlowShape(e.key.v4, int(e.key.proto), !s.ZeroChecksums())
	c.tmpl = append([]byte(nil), src...)
	if c.swapped {
		swapEndpoints(c.tmpl, c.shape)
	}
	return c
}

func swapEndpoints(p []byte, sh flowShape) {
	a, n := 12, 4
	if !sh.v4 {
		a, n = 8, 16
	}
	for i := range n {
		p[a+i], p[a+n+i] = p[a+n+i], p[a+i]
	}
	l4 := sh.ipHdr
	p[l4], p[l4+1], p[l4+2], p[l4+3] = p[l4+2], p[l4+3], p[l4], p[l4+1]
}

func getField(p []byte, f headerField) uint64 {
	var v uint64
	for i := range f.width {
		v = v<<8 | uint64(p[f.off+i])
	}
	return v
}

func putField(p []byte, f headerField, v uint64) {
	for i := f.width - 1; i >= 0; i-- {
		p[f.off+i] = byte(v)
		v >>= 8
	}
}

// ipPayloadLen is the IP payload length a fixed header states.
func ipPayloadLen(p []byte, sh flowShape) int {
	if sh.v4 {
		return int(binary.BigEndian.Uint16(p[2:4])) - 20
	}
	return int(binary.BigEndian.Uint16(p[4:6]))
}

// segLen is the sequence space a TCP segment takes: payload, SYN, FIN.
func segLen(p []byte, sh flowShape) uint64 {
	l4 := sh.ipHdr
	n := max(0, ipPayloadLen(p, sh)-int(p[l4+12]>>4)*4)
	fl := p[l4+13]
	if fl&TCPFlagSYN != 0 {
		n++
	}
	if fl&TCPFlagFIN != 0 {
		n++
	}
	return uint64(n)
}

// predict is the value of field f of a packet whose fixed header so far is
// cur (fields before f settled), in context c.
func (c *flowContext) predict(f headerField, cur []byte) uint64 {
	sh := c.shape
	l4 := sh.ipHdr
	switch f.kind {
	case fIPID:
		if id := getField(c.tmpl, f); id != 0 {
			return (id + 1) & 0xffff
		}
		return 0
	case fSeq:
		if c.swapped {
			return getField(c.tmpl, headerField{fAck, l4 + 8, 4})
		}
		return (getField(c.tmpl, f) + segLen(c.tmpl, sh)) & 0xffffffff
	case fAck:
		if c.other != nil {
			return (getField(c.other, headerField{fSeq, l4 + 4, 4}) + segLen(c.other, sh)) & 0xffffffff
		}
	case fULen:
		return uint64(ipPayloadLen(cur, sh)) & 0xffff
	}
	return getField(c.tmpl, f)
}

// predictTail is the tail (bytes after the fixed header) predicted for a
// packet of tail length n: the template's, when as long, with the TCP
// timestamp echo set to the other direction's last timestamp value; nil when
// the lengths differ.
func (c *flowContext) predictTail(n int) []byte {
	fixed := c.shape.fixed
	if len(c.tmpl)-fixed != n || n == 0 {
		return nil
	}
	t := append([]byte(nil), c.tmpl[fixed:]...)
	if c.shape.proto == ProtoTCP && c.other != nil {
		if at := timestampAt(t, int(c.tmpl[c.shape.ipHdr+12]>>4)*4-20); at >= 0 {
			ofixed := c.shape.fixed
			o := c.other[ofixed:]
			if oat := timestampAt(o, int(c.other[c.shape.ipHdr+12]>>4)*4-20); oat >= 0 {
				copy(t[at+4:at+8], o[oat:oat+4])
			}
		}
	}
	return t
}

// timestampAt finds the TCP timestamp option's value (TSval, then TSecr) in
// the first optLen bytes of opts; -1 when there is none.
func timestampAt(opts []byte, optLen int) int {
	optLen = min(optLen, len(opts))
	for i := 0; i < optLen; {
		switch opts[i] {
		case 0:
			return -1
		case 1:
			i++
			continue
		}
		if i+1 >= optLen {
			return -1
		}
		l := int(opts[i+1])
		if l < 2 || i+l > optLen {
			return -1
		}
		if opts[i] == 8 && l == 10 {
			return i + 2
		}
		i += l
	}
	return -1
}

// tailLen is how many kept bytes follow the fixed header cur.
func (s *Spec) tailLen(cur []byte, sh flowShape) int {
	return s.Keep(cur).Keep - sh.fixed
}

// deltaBytes is the shortest op width that carries value v against
// prediction pred for a field of width w bytes.
func deltaBytes(v, pred uint64, w int) (n int, d uint64) {
	bits := uint(8 * w)
	mask := uint64(1)<<bits - 1
	d = (v - pred) & mask
	sd := int64(d<<(64-bits)) >> (64 - bits) // sign-extended
	switch {
	case sd >= -128 && sd < 128:
		return 1, d
	case w > 2 && sd >= -32768 && sd < 32768:
		return 2, d
	}
	return w, d
}

// applyDelta adds the n-byte signed delta raw to pred in a w-byte field.
func applyDelta(pred uint64, raw []byte, w int) uint64 {
	var d uint64
	for _, b := range raw {
		d = d<<8 | uint64(b)
	}
	n := uint(8 * len(raw))
	sd := int64(d<<(64-n)) >> (64 - n)
	bits := uint(8 * w)
	return (pred + uint64(sd)) & (uint64(1)<<bits - 1)
}

// Flow token ids, relative to Spec.flowBase.
const (
	flowTokNew = iota
	flowTokRaw
	flowTokRef // then 2·FlowTable ids: rank R, direction D at flowTokRef + 2R + D
)

// flowTokens counts the flow tokens: <flow:new>, <flow:raw>, the flow
// references, <tail:mask>, <tail:raw>, the field ops and the address
// references.
func (s *Spec) flowTokens() int { return 2 + 2*s.FlowTable + 2 + len(flowOps) + s.AddrTable }

func (s *Spec) tokFlowNew() int            { return s.flowBase + flowTokNew }
func (s *Spec) tokFlowRaw() int            { return s.flowBase + flowTokRaw }
func (s *Spec) tokFlowRef(rank, d int) int { return s.flowBase + flowTokRef + 2*rank + d }
func (s *Spec) tokTailMask() int           { return s.flowBase + flowTokRef + 2*s.FlowTable }
func (s *Spec) tokTailRaw() int            { return s.tokTailMask() + 1 }
func (s *Spec) tokOp(i int) int            { return s.tokTailMask() + 2 + i }
func (s *Spec) tokAddr(rank int) int       { return s.tokOp(len(flowOps)) + rank }

func (s *Spec) isFlowToken(tok int) bool {
	return s.flowBase > 0 && tok >= s.flowBase && tok < s.FirstLabelID
}

// flowRef decodes a <flow:R:D> token; ok is false for any other token.
func (s *Spec) flowRef(tok int) (rank, d int, ok bool) {
	i := tok - s.tokFlowRef(0, 0)
	if s.flowBase == 0 || i < 0 || i >= 2*s.FlowTable {
		return 0, 0, false
	}
	return i / 2, i % 2, true
}

// opIndex decodes a field op token; -1 for any other token.
func (s *Spec) opIndex(tok int) int {
	i := tok - s.tokOp(0)
	if s.flowBase == 0 || i < 0 || i >= len(flowOps) {
		return -1
	}
	return i
}

// addrRef decodes an <addr:k> token: the rank k; -1 for any other token.
func (s *Spec) addrRef(tok int) int {
	k := tok - s.tokAddr(0)
	if s.flowBase == 0 || k < 0 || k >= s.AddrTable {
		return -1
	}
	return k
}

func (s *Spec) flowTokenString(tok int) string {
	switch {
	case tok == s.tokFlowNew():
		return "<flow:new>"
	case tok == s.tokFlowRaw():
		return "<flow:raw>"
	case tok == s.tokTailMask():
		return "<tail:mask>"
	case tok == s.tokTailRaw():
		return "<tail:raw>"
	}
	if r, d, ok := s.flowRef(tok); ok {
		return fmt.Sprintf("<flow:%d:%d>", r, d)
	}
	if i := s.opIndex(tok); i >= 0 {
		op := flowOps[i]
		if deltaField(op.field) {
			return fmt.Sprintf("<%s:+%d>", fieldNames[op.field], op.n)
		}
		return fmt.Sprintf("<%s>", fieldNames[op.field])
	}
	if k := s.addrRef(tok); k >= 0 {
		return fmt.Sprintf("<addr:%d>", k)
	}
	return fmt.Sprintf("<unknown:%d>", tok)
}
