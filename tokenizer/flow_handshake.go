package tokenizer

import (
	"bytes"
	"encoding/binary"
	"slices"
)

// The handshake rule of the strict grammar. Each TCP flow of the table
// follows its handshake as eval does (eval/analyze.go, advanceHandshake):
// a flow whose first packet is a bare SYN (SYN without ACK) waits for the
// responder's SYN-ACK, then for the initiator's ACK. The flow table tracks
// it in every mode (it is a function of the packets, so the encoding does
// not change); the strict rules (generation) hold a known flow's packet to
// it while the handshake is open:
//
//   - SYN seen, no SYN-ACK yet: the responder's packet acknowledges the
//     initiator's ISN + 1 and is a SYN-ACK or a RST; the initiator's is a
//     SYN again (without ACK, any sequence number: a retransmission or a new
//     attempt) or a RST.
//   - SYN-ACK seen: the responder's packet repeats its SYN-ACK (sequence
//     number its ISN, acknowledging the initiator's ISN + 1) or is a RST;
//     the initiator's either has sequence number ISN + 1, acknowledges the
//     responder's ISN + 1 and carries ACK without SYN (the handshake's ACK)
//     or is a RST, or has sequence number ISN and is a retransmitted SYN
//     (without ACK) or a RST.
//
// A RST, or the handshake's ACK, ends the rule for the flow. The context
// predicts those numbers (the responder's first ack: the SYN's sequence
// number + 1; the initiator's seq and ack after a SYN-ACK: its SYN's + 1 and
// the SYN-ACK's + 1), so the rule costs no op where it agrees with the
// prediction; the flags are the template's and must be named.

// hsState is where a TCP flow opened by a bare SYN stands in its handshake.
type hsState uint8

const (
	hsNone   hsState = iota // not opened by a bare SYN, or the handshake is over (done, reset or broken)
	hsSYN                   // the initiator's SYN seen (its ISN isnC), no SYN-ACK yet
	hsSYNACK                // the responder's SYN-ACK seen (its ISN isnS), no ACK yet
)

// handshake is a flow's handshake state; direction 0 (the flow's first
// packet) is the initiator.
type handshake struct {
	state      hsState
	isnC, isnS uint32
}

// tcpNumbers returns the sequence and acknowledgement numbers and the flags
// of a TCP header at p[l4:].
func tcpNumbers(p []byte, l4 int) (seq, ack uint32, fl byte) {
	return binary.BigEndian.Uint32(p[l4+4:]), binary.BigEndian.Uint32(p[l4+8:]), p[l4+13]
}

// follow advances the handshake over a packet p of direction d whose TCP
// header starts at l4; first says it is the flow's first packet.
func (h *handshake) follow(p []byte, l4, d int, first bool) {
	seq, ack, fl := tcpNumbers(p, l4)
	syn, hasAck, rst := fl&TCPFlagSYN != 0, fl&TCPFlagACK != 0, fl&TCPFlagRST != 0
	if first {
		*h = handshake{}
		if syn && !hasAck {
			h.state, h.isnC = hsSYN, seq
		}
		return
	}
	if h.state == hsNone {
		return
	}
	switch {
	case rst:
		h.state = hsNone
	case d == 0 && syn && !hasAck:
		h.state, h.isnC = hsSYN, seq
	case h.state == hsSYN && d == 1 && syn && hasAck && ack == h.isnC+1:
		h.state, h.isnS = hsSYNACK, seq
	case h.state == hsSYNACK && d == 1 && syn && hasAck && seq == h.isnS:
	default: // the handshake's ACK, or a broken handshake
		h.state = hsNone
	}
}

// hsValues is the set of values the handshake rule leaves field k (seq or
// ack) of the packet whose fixed header so far is cur (the fields before k
// settled); nil when it leaves any.
func (m *flowMachine) hsValues(k fieldKind, cur []byte) []uint64 {
	h := m.hs
	if h.state == hsNone {
		return nil
	}
	seq, _, _ := tcpNumbers(cur, m.ctx.shape.ipHdr)
	initiator := m.dir == 0
	switch {
	case k == fSeq && h.state == hsSYNACK && initiator:
		return []uint64{uint64(h.isnC), uint64(h.isnC + 1)}
	case k == fSeq && h.state == hsSYNACK:
		return []uint64{uint64(h.isnS)}
	case k == fAck && !initiator:
		return []uint64{uint64(h.isnC + 1)}
	case k == fAck && h.state == hsSYNACK && seq == h.isnC+1:
		return []uint64{uint64(h.isnS + 1)}
	}
	return nil
}

// hsFlagsOK reports whether the flags of header cur (sequence and
// acknowledgement numbers settled) pass the handshake rule.
func (m *flowMachine) hsFlagsOK(cur []byte) bool {
	h := m.hs
	if h.state == hsNone {
		return true
	}
	seq, _, fl := tcpNumbers(cur, m.ctx.shape.ipHdr)
	syn, ack := fl&TCPFlagSYN != 0, fl&TCPFlagACK != 0
	switch {
	case fl&TCPFlagRST != 0:
		return true
	case m.dir == 1:
		return syn && ack
	case h.state == hsSYNACK && seq == h.isnC+1:
		return ack && !syn
	}
	return syn && !ack
}

// handshakeOK reports whether field i of header h passes the handshake rule.
func (m *flowMachine) handshakeOK(h []byte, i int) bool {
	f := m.ctx.shape.fields[i]
	switch f.kind {
	case fSeq, fAck:
		vals := m.hsValues(f.kind, h)
		return vals == nil || slices.Contains(vals, getField(h, f))
	case fFlags:
		return m.hsFlagsOK(h)
	}
	return true
}

// fieldOK checks field i of header h against the strict rules: well-formed
// bytes (fieldWellFormed) and the handshake rule.
func (m *flowMachine) fieldOK(h []byte, i int) bool {
	return fieldWellFormed(&m.ctx.shape, h, i) && m.handshakeOK(h, i)
}

// hsDeltaByteOK reports whether byte b may follow the bytes given so far of
// an n-byte delta op for a w-byte field predicted as pred, when the
// handshake rule leaves the field only the values vals: some allowed value's
// n-byte delta starts with them and b.
func hsDeltaByteOK(vals []uint64, pred uint64, given []byte, b, n, w int) bool {
	j := len(given)
	for _, v := range vals {
		if raw, ok := deltaRaw(v, pred, n, w); ok && bytes.Equal(raw[:j], given) && int(raw[j]) == b {
			return true
		}
	}
	return false
}

// deltaRaw is the n-byte op that gives value v against prediction pred in a
// w-byte field; ok is false when the delta needs more than n bytes.
func deltaRaw(v, pred uint64, n, w int) (raw []byte, ok bool) {
	bits := uint(8 * w)
	d := (v - pred) & (uint64(1)<<bits - 1)
	sd := int64(d<<(64-bits)) >> (64 - bits)
	if n < w {
		lim := int64(1) << (8*n - 1)
		if sd < -lim || sd >= lim {
			return nil, false
		}
	}
	raw = make([]byte, n)
	for i := n - 1; i >= 0; i-- {
		raw[i] = byte(sd)
		sd >>= 8
	}
	return raw, true
}
