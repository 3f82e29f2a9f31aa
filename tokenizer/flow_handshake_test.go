package tokenizer_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netssm/netssm/tokenizer"
)

const (
	flSYN = tokenizer.TCPFlagSYN
	flACK = tokenizer.TCPFlagACK
	flRST = tokenizer.TCPFlagRST
	flPSH = tokenizer.TCPFlagPSH
)

// hsSeg is a segment of a test connection: client to server or back.
type hsSeg struct {
	fromClient bool
	flags      uint8
	seq, ack   uint32
}

// encodeSegs encodes segs as one flow-layout trace, a millisecond apart.
func encodeSegs(t *testing.T, sp *tokenizer.Spec, segs []hsSeg) tokenizer.Trace {
	t.Helper()
	cli, srv := [4]byte{192, 168, 1, 10}, [4]byte{93, 184, 216, 34}
	enc, err := sp.NewEncoder(sp.Labels[0])
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1700000000, 0)
	for i, s := range segs {
		var p []byte
		if s.fromClient {
			p = tcp4(cli, srv, 51000, 443, uint16(100+i), s.seq, s.ack, s.flags, 64240, uint32(7000+i), uint32(9000+i), 0)
		} else {
			p = tcp4(srv, cli, 443, 51000, uint16(300+i), s.seq, s.ack, s.flags, 65160, uint32(9000+i), uint32(7000+i), 0)
		}
		if err := enc.Add(t0.Add(time.Duration(i)*time.Millisecond), len(p), p); err != nil {
			t.Fatal(err)
		}
	}
	return enc.Finish()
}

// strictRefusal runs toks through a strict grammar, checking the mask
// against Advance on each; it returns the index of the first token refused
// (-1: none) and the error.
func strictRefusal(t *testing.T, sp *tokenizer.Spec, toks []uint16) (int, error) {
	t.Helper()
	g, _ := sp.NewGrammar()
	g.WellFormed()
	for i, tok := range toks {
		allowed := g.Allowed(nil)[tok]
		err := g.Advance(tok)
		if allowed != (err == nil) {
			t.Fatalf("token %d %s: mask says %v, Advance says %v", i, sp.TokenString(int(tok)), allowed, err)
		}
		if err != nil {
			return i, err
		}
	}
	return -1, nil
}

func TestFlowStrictGrammarHoldsTCPHandshakesInOrder(t *testing.T) {
	flow, _ := flowAndV1(t)
	const isn, rsn = 1000, 5000
	syn := hsSeg{true, flSYN, isn, 0}
	synAck := hsSeg{false, flSYN | flACK, rsn, isn + 1}
	ack := hsSeg{true, flACK, isn + 1, rsn + 1}
	for name, segs := range map[string][]hsSeg{
		"handshake, then data":                {syn, synAck, ack, {true, flPSH | flACK, isn + 1, rsn + 1}, {false, flACK, rsn + 1, isn + 1}},
		"refused (RST-ACK answers the SYN)":   {syn, {false, flRST | flACK, 0, isn + 1}, syn, {false, flRST | flACK, 0, isn + 1}},
		"SYN retransmitted before the answer": {syn, syn, synAck, ack},
		"SYN retransmitted after the SYN-ACK": {syn, synAck, syn, synAck, ack},
		"SYN-ACK retransmitted":               {syn, synAck, synAck, ack},
		"reset after the SYN-ACK":             {syn, synAck, {true, flRST | flACK, isn + 1, rsn + 1}},
		"new ISN":                             {syn, {true, flSYN, isn + 7777, 0}, {false, flSYN | flACK, rsn, isn + 7778}, {true, flACK, isn + 7778, rsn + 1}},
		"not opened by a SYN (no rule)":       {{true, flACK, isn, rsn}, {false, flSYN | flACK, rsn, 7}, {true, flPSH | flACK, 3, 4}},
	} {
		tr := encodeSegs(t, flow, segs)
		if i, err := strictRefusal(t, flow, tr.Tokens); i >= 0 {
			t.Errorf("%s: the strict grammar refuses token %d: %v", name, i, err)
		}
	}
	for name, c := range map[string]struct {
		segs []hsSeg
		at   int // the packet the strict grammar must refuse
	}{
		"SYN answered by a bare SYN":                    {[]hsSeg{syn, {false, flSYN, 0, 0}}, 1},
		"SYN answered by a bare SYN acking isn+1":       {[]hsSeg{syn, {false, flSYN, rsn, isn + 1}}, 1},
		"SYN answered by a SYN-ACK with a wrong ack":    {[]hsSeg{syn, {false, flSYN | flACK, rsn, isn + 2}}, 1},
		"SYN answered by data":                          {[]hsSeg{syn, {false, flPSH | flACK, rsn, isn + 1}}, 1},
		"initiator ACKs before the SYN-ACK":             {[]hsSeg{syn, ack}, 1},
		"third packet acks the wrong number":            {[]hsSeg{syn, synAck, {true, flACK, isn + 1, rsn + 2}}, 2},
		"third packet with the wrong seq":               {[]hsSeg{syn, synAck, {true, flACK, isn + 5, rsn + 1}}, 2},
		"third packet keeps SYN":                        {[]hsSeg{syn, synAck, {true, flSYN | flACK, isn + 1, rsn + 1}}, 2},
		"retransmitted SYN with seq isn+1":              {[]hsSeg{syn, synAck, {true, flSYN, isn + 1, 0}}, 2},
		"responder sends data before the ACK":           {[]hsSeg{syn, synAck, {false, flPSH | flACK, rsn + 1, isn + 1}}, 2},
		"SYN-ACK retransmitted with another ISN":        {[]hsSeg{syn, synAck, {false, flSYN | flACK, rsn + 9, isn + 1}}, 2},
		"RST answering the SYN acks the wrong number":   {[]hsSeg{syn, {false, flRST | flACK, 0, isn + 2}}, 1},
		"initiator's third packet after a retried SYN":  {[]hsSeg{syn, synAck, syn, {true, flACK, isn + 1, rsn + 1}}, 3},
		"data after a handshake ACK that acks too much": {[]hsSeg{syn, synAck, {true, flACK, isn + 1, rsn + 3}, {true, flPSH | flACK, isn + 1, rsn + 3}}, 2},
	} {
		tr := encodeSegs(t, flow, c.segs)
		if err := grammarAccepts(flow, tr.Tokens); err != nil {
			t.Fatalf("%s: the lenient grammar refuses the encoding: %v", name, err)
		}
		i, err := strictRefusal(t, flow, tr.Tokens)
		end := len(tr.Tokens)
		if c.at+1 < len(tr.PktOffsets) {
			end = int(tr.PktOffsets[c.at+1])
		}
		if i < int(tr.PktOffsets[c.at]) || i >= end {
			t.Errorf("%s: the strict grammar refuses token %d (%v), want one in packet %d (tokens %d…%d)", name, i, err, c.at, tr.PktOffsets[c.at], end)
		}
	}
}

func TestFlowStrictGrammarMasksAnswersToASYN(t *testing.T) {
	flow, _ := flowAndV1(t)
	const isn = 1000
	tr := encodeSegs(t, flow, []hsSeg{{true, flSYN, isn, 0}})
	g, _ := flow.NewGrammar()
	g.WellFormed()
	toks := append(tr.Tokens[:len(tr.Tokens)-1:len(tr.Tokens)-1], tokenizer.TokPkt, tokenizer.TokDt0, tokOf(t, flow, "<flow:0:1>"))
	for _, tok := range toks {
		if err := g.Advance(tok); err != nil {
			t.Fatal(err)
		}
	}
	// The template is the SYN mirrored: its flags (a bare SYN) must not be
	// kept, so the packet cannot end before <flags>.
	if m := g.Allowed(nil); m[tokenizer.TokPkt] || m[tokenizer.TokEOS] || !m[tokOf(t, flow, "<flags>")] {
		t.Fatalf("after <flow:0:1> answering a SYN: <pkt> allowed %v, <flags> allowed %v", m[tokenizer.TokPkt], m[tokOf(t, flow, "<flags>")])
	}
	// Its ack number is predicted as isn+1: an <ack:…> op may only say +0.
	a := g.Clone()
	if err := a.Advance(tokOf(t, flow, "<ack:+1>")); err != nil {
		t.Fatal(err)
	}
	if got := allowedBytes(a); !slices.Equal(got, []int{0}) {
		t.Fatalf("<ack:+1> answering a SYN: bytes %v allowed, want [0]", got)
	}
	if err := g.Advance(tokOf(t, flow, "<flags>")); err != nil {
		t.Fatal(err)
	}
	var want []int
	for _, f := range tokenizer.ValidTCPFlags() {
		if f&flRST != 0 || f&(flSYN|flACK) == flSYN|flACK {
			want = append(want, int(f))
		}
	}
	if got := allowedBytes(g); !slices.Equal(got, want) {
		t.Fatalf("flags answering a SYN: %#x allowed, want the SYN-ACKs and RSTs %#x", got, want)
	}
	// The lenient grammar (decoding, training) keeps any valid flag set.
	l, _ := flow.NewGrammar()
	for _, tok := range append(toks, tokOf(t, flow, "<flags>"), uint16(flSYN)) {
		if err := l.Advance(tok); err != nil {
			t.Fatalf("lenient grammar: %v", err)
		}
	}
}

func tokOf(t *testing.T, sp *tokenizer.Spec, s string) uint16 {
	t.Helper()
	for tok := range sp.VocabSize {
		if sp.TokenString(tok) == s {
			return uint16(tok)
		}
	}
	t.Fatalf("no token %s", s)
	return 0
}

func allowedBytes(g *tokenizer.Grammar) []int {
	var b []int
	for tok, ok := range g.Allowed(nil)[:256] {
		if ok {
			b = append(b, tok)
		}
	}
	return b
}

// handshakeBias steers a walk into TCP handshakes: new flows are often TCP
// and open with a bare SYN, a packet often refers to one of the two most
// recent flows and names its flags, and flags are often SYN, ACK or SYN-ACK.
func handshakeBias(sp *tokenizer.Spec) walkBias {
	str := func(tok uint16) string { return sp.TokenString(int(tok)) }
	var newTok uint16
	for tok := range sp.VocabSize {
		if str(uint16(tok)) == "<flow:new>" {
			newTok = uint16(tok)
		}
	}
	return func(g *tokenizer.Grammar, inNew bool, last string, ok []uint16, rng *rand.Rand) (uint16, bool) {
		prefer := func(want func(tok uint16) bool) (uint16, bool) {
			var c []uint16
			for _, tok := range ok {
				if want(tok) {
					c = append(c, tok)
				}
			}
			if len(c) == 0 || rng.IntN(4) == 0 {
				return 0, false
			}
			return c[rng.IntN(len(c))], true
		}
		isByte := func(vals ...int) func(uint16) bool {
			return func(tok uint16) bool { return slices.Contains(vals, int(tok)) }
		}
		pb := g.PacketBytes()
		switch {
		case inNew:
			n := len(pb)
			if n == 0 {
				return prefer(isByte(0x45))
			}
			ipHdr, proto := 40, -1
			if pb[0]>>4 == 4 {
				ipHdr = int(pb[0]&0xf) * 4
				if n > 9 {
					proto = int(pb[9])
				}
			} else if n > 6 {
				proto = int(pb[6])
			}
			switch {
			case pb[0]>>4 == 4 && n == 9, pb[0]>>4 == 6 && n == 6:
				return prefer(isByte(tokenizer.ProtoTCP))
			case proto == tokenizer.ProtoTCP && n == ipHdr+13:
				return prefer(isByte(int(flSYN)))
			}
		case last == "<flags>":
			return prefer(isByte(int(flSYN), int(flACK), int(flSYN|flACK)))
		case slices.ContainsFunc(ok, func(tok uint16) bool { return str(tok) == "<flow:new>" }):
			if rng.IntN(3) == 0 {
				return newTok, true
			}
			return prefer(func(tok uint16) bool {
				s := str(tok)
				return strings.HasPrefix(s, "<flow:0:") || strings.HasPrefix(s, "<flow:1:")
			})
		default:
			return prefer(func(tok uint16) bool { return str(tok) == "<flags>" })
		}
		return 0, false
	}
}

// handshakeCounts are what followHandshakes found.
type handshakeCounts struct {
	opened   int // TCP flows whose first packet is a bare SYN
	answered int // of them, answered by the responder
	done     int // handshakes completed in order
	aborted  int // ended by a RST
	failed   int // out of order
}

// followHandshakes judges the TCP handshakes of pkts as eval does
// (eval/analyze.go, advanceHandshake): SYN → SYN-ACK acking isn+1 → ACK with
// seq isn+1 acking the responder's isn+1; retransmitted SYNs and SYN-ACKs
// allowed, a RST ends the handshake unjudged. Each out-of-order handshake is
// reported as an error.
func followHandshakes(t *testing.T, pkts [][]byte) handshakeCounts {
	t.Helper()
	const (
		hsNone = iota
		hsSYN
		hsSYNACK
		hsDone
		hsFailed
		hsAborted
	)
	type flowState struct {
		initiator  string
		packets    int
		hs         int
		isnC, isnS uint32
		answered   bool
	}
	var c handshakeCounts
	flows := map[string]*flowState{}
	for i, p := range pkts {
		var src, dst string
		l4 := 40
		switch {
		case len(p) >= 20 && p[0]>>4 == 4 && p[9] == tokenizer.ProtoTCP:
			l4 = int(p[0]&0xf) * 4
			src, dst = string(p[12:16]), string(p[16:20])
		case len(p) >= 40 && p[0]>>4 == 6 && p[6] == tokenizer.ProtoTCP:
			src, dst = string(p[8:24]), string(p[24:40])
		default:
			continue
		}
		if len(p) < l4+20 {
			t.Fatalf("packet %d %x: short TCP header", i, p)
		}
		src += string(p[l4 : l4+2])
		dst += string(p[l4+2 : l4+4])
		key := src + "|" + dst
		if src > dst {
			key = dst + "|" + src
		}
		f := flows[key]
		if f == nil {
			f = &flowState{initiator: src}
			flows[key] = f
		}
		f.packets++
		seq, ack, fl := binary.BigEndian.Uint32(p[l4+4:]), binary.BigEndian.Uint32(p[l4+8:]), p[l4+13]
		syn, hasAck, rst := fl&flSYN != 0, fl&flACK != 0, fl&flRST != 0
		initiator := src == f.initiator
		if f.packets == 1 {
			if syn && !hasAck {
				f.hs, f.isnC = hsSYN, seq
				c.opened++
			}
			continue
		}
		if f.hs != hsSYN && f.hs != hsSYNACK {
			continue
		}
		if !initiator && !f.answered {
			f.answered = true
			c.answered++
		}
		was := fmt.Sprintf("state %d, isnC %d, isnS %d", f.hs, f.isnC, f.isnS)
		switch {
		case rst:
			f.hs = hsAborted
			c.aborted++
		case initiator && syn && !hasAck:
			f.hs, f.isnC = hsSYN, seq
		case f.hs == hsSYN && !initiator && syn && hasAck && ack == f.isnC+1:
			f.hs, f.isnS = hsSYNACK, seq
		case f.hs == hsSYNACK && !initiator && syn && hasAck && seq == f.isnS:
		case f.hs == hsSYNACK && initiator && hasAck && !syn && seq == f.isnC+1 && ack == f.isnS+1:
			f.hs = hsDone
			c.done++
		default:
			f.hs = hsFailed
			c.failed++
			t.Errorf("packet %d (initiator %v, flags %#02x, seq %d, ack %d) breaks the handshake (%s): %x", i, initiator, fl, seq, ack, was, p)
		}
	}
	return c
}

func TestFlowStrictWalksCompleteHandshakesInOrder(t *testing.T) {
	flow, _ := flowAndV1(t)
	var all handshakeCounts
	for seed := range uint64(3) {
		toks, walked := walkFlowWith(t, flow, true, 100+seed, 400, handshakeBias(flow), false)
		d, err := flow.Decode(toks, tokenizer.DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if d.Stats.Stray+d.Stats.Incomplete+d.Stats.EmptyPackets+d.Stats.MissingDt > 0 {
			t.Fatalf("decoding a grammar walk: %s", d.Stats)
		}
		pkts := make([][]byte, len(d.Packets))
		for i, p := range d.Packets {
			if !bytes.Equal(p.Bytes, walked[i]) {
				t.Fatalf("packet %d: the grammar held %x, Decode gives %x", i, walked[i], p.Bytes)
			}
			pkts[i] = p.Bytes
		}
		c := followHandshakes(t, pkts)
		all.opened += c.opened
		all.answered += c.answered
		all.done += c.done
		all.aborted += c.aborted
		all.failed += c.failed
	}
	t.Logf("%+v", all)
	if all.failed > 0 || all.done < 20 {
		t.Fatalf("%d handshakes in order, %d out of order (%+v)", all.done, all.failed, all)
	}
}
