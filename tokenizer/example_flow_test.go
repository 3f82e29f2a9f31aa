package tokenizer_test

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/netssm/netssm/tokenizer"
)

// tcp4 builds an IPv4 TCP segment with a timestamp option (NOP, NOP, TS)
// and n payload bytes.
func tcp4(src, dst [4]byte, sport, dport uint16, id uint16, seq, ack uint32, flags uint8, win uint16, tsval, tsecr uint32, n int) []byte {
	p := make([]byte, 20+32+n)
	p[0], p[8], p[9] = 0x45, 64, tokenizer.ProtoTCP
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[4:], id)
	p[6] = 0x40 // DF
	copy(p[12:], src[:])
	copy(p[16:], dst[:])
	t := p[20:]
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	binary.BigEndian.PutUint32(t[4:], seq)
	binary.BigEndian.PutUint32(t[8:], ack)
	t[12], t[13] = 8<<4, flags
	binary.BigEndian.PutUint16(t[14:], win)
	copy(t[20:], []byte{1, 1, 8, 10})
	binary.BigEndian.PutUint32(t[24:], tsval)
	binary.BigEndian.PutUint32(t[28:], tsecr)
	return p
}

// rtp4 builds an IPv4 UDP datagram carrying an RTP header (sequence number,
// timestamp, SSRC) and n more payload bytes.
func rtp4(id, rtpSeq uint16, rtpTS uint32, n int) []byte {
	p := make([]byte, 20+8+12+n)
	p[0], p[8], p[9] = 0x45, 57, tokenizer.ProtoUDP
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[4:], id)
	copy(p[12:], []byte{198, 51, 100, 7})
	copy(p[16:], []byte{192, 168, 1, 10})
	u := p[20:]
	binary.BigEndian.PutUint16(u[0:], 3478)
	binary.BigEndian.PutUint16(u[2:], 50000)
	binary.BigEndian.PutUint16(u[4:], uint16(len(p)-20))
	u[8], u[9] = 0x80, 0x6f
	binary.BigEndian.PutUint16(u[10:], rtpSeq)
	binary.BigEndian.PutUint32(u[12:], rtpTS)
	binary.BigEndian.PutUint32(u[16:], 0x1234abcd)
	return p
}

// Example_flowLayout shows the flow layout on a TCP connection and an RTP
// stream: a flow's first packet is spelled out; the others name the flow
// by rank and direction and send only what their context does not predict.
func Example_flowLayout() {
	spec := tokenizer.FlowSpec()
	spec.Labels = []string{"call"}
	if err := spec.Validate(); err != nil {
		panic(err)
	}
	c, s := [4]byte{192, 168, 1, 10}, [4]byte{93, 184, 216, 34}
	const syn, ack, psh = 0x02, 0x10, 0x08
	pkts := [][]byte{
		tcp4(c, s, 51000, 443, 100, 1000, 0, syn, 64240, 7000, 0, 0),           // SYN
		tcp4(s, c, 443, 51000, 0, 5000, 1001, syn|ack, 65160, 9000, 7000, 0),   // SYN-ACK
		tcp4(c, s, 51000, 443, 101, 1001, 5001, ack, 502, 7001, 9000, 0),       // ACK
		tcp4(c, s, 51000, 443, 102, 1001, 5001, psh|ack, 502, 7001, 9000, 517), // request
		rtp4(4000, 300, 48000, 160),                                            // RTP
		tcp4(s, c, 443, 51000, 0, 5001, 1518, ack, 501, 9002, 7001, 1400),      // response
		rtp4(4001, 301, 48960, 160),                                            // RTP
		tcp4(s, c, 443, 51000, 0, 6401, 1518, psh|ack, 501, 9002, 7001, 1400),  // response, in order
	}
	enc, _ := spec.NewEncoder("call")
	t0 := time.Unix(1700000000, 0)
	for i, p := range pkts {
		enc.Add(t0.Add(time.Duration(i)*time.Millisecond), len(p), p)
	}
	tr := enc.Finish()
	for i, off := range tr.PktOffsets {
		end := len(tr.Tokens) - 1
		if i+1 < len(tr.PktOffsets) {
			end = int(tr.PktOffsets[i+1])
		}
		var words []string
		for _, tok := range tr.Tokens[off:end] {
			words = append(words, spec.TokenString(int(tok)))
		}
		if words[2] == "<flow:new>" { // the first bytes and the address references
			short := append(words[:8:8], "…")
			for _, w := range words[8:] {
				if strings.HasPrefix(w, "<addr:") {
					short = append(short, w, "…")
				}
			}
			words = append(short, fmt.Sprintf("(%d tokens)", len(words)))
		}
		fmt.Println(strings.Join(words, " "))
	}
	// Output:
	// <pkt> <dt:0> <flow:new> 45 00 00 34 00 … (55 tokens)
	// <pkt> <dt:24> <flow:0:1> <ipid:+1> 9b <seq:+2> 13 88 <flags> 12 <win:+2> 03 98 <tail:mask> c0 00 23 28
	// <pkt> <dt:24> <flow:0:0> <flags> 10 <win:+2> 07 06 <tail:mask> 80 00 59
	// <pkt> <dt:24> <flow:0:0> <iplen:+2> 02 05 <flags> 18
	// <pkt> <dt:24> <flow:new> 45 00 00 c8 0f … <addr:1> … (40 tokens)
	// <pkt> <dt:24> <flow:1:1> <iplen:+2> 05 78 <flags> 10 <win:+2> 03 6d <tail:mask> 80 00 2a
	// <pkt> <dt:24> <flow:1:0> <tail:mask> c8 00 2d bf 40
	// <pkt> <dt:24> <flow:1:1> <flags> 18
}
