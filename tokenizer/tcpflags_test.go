package tokenizer_test

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/netssm/netssm/tokenizer"
)

// tcpSegment builds an IPv4 or IPv6 TCP segment with the given flag byte,
// TCP options (MSS, SACK-permitted, timestamps) and payload, checksums
// computed.
func tcpSegment(t *testing.T, v6 bool, flags uint8, payload int) []byte {
	t.Helper()
	tcp := &layers.TCP{
		SrcPort: 51512, DstPort: 443, Seq: 1_000_000, Ack: 2_000_000, Window: 64240,
		FIN: flags&tokenizer.TCPFlagFIN != 0, SYN: flags&tokenizer.TCPFlagSYN != 0, RST: flags&tokenizer.TCPFlagRST != 0, PSH: flags&tokenizer.TCPFlagPSH != 0,
		ACK: flags&tokenizer.TCPFlagACK != 0, URG: flags&tokenizer.TCPFlagURG != 0, ECE: flags&tokenizer.TCPFlagECE != 0, CWR: flags&tokenizer.TCPFlagCWR != 0,
		Options: []layers.TCPOption{
			{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{5, 0xb4}},
			{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
			{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 0, 0, 1, 0, 0, 0, 0}},
		},
	}
	var ip gopacket.SerializableLayer
	if v6 {
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP,
			SrcIP: net.ParseIP("2001:db8::10"), DstIP: net.ParseIP("2001:db8:1::53")}
		_ = tcp.SetNetworkLayerForChecksum(ip6)
		ip = ip6
	} else {
		ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP,
			SrcIP: net.IP{192, 168, 1, 10}, DstIP: net.IP{10, 0, 0, 53}}
		_ = tcp.SetNetworkLayerForChecksum(ip4)
		ip = ip4
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ip, tcp, gopacket.Payload(make([]byte, payload))); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// grammarAtTCPFlags returns a grammar of sp (well-formed rules on or off)
// that has taken a label, <pkt> and the bytes of pkt up to its TCP flags
// byte, and where that byte lies in pkt.
func grammarAtTCPFlags(t *testing.T, sp *tokenizer.Spec, pkt []byte, wellFormed bool) (*tokenizer.Grammar, int) {
	t.Helper()
	l := sp.Keep(pkt)
	if l.Proto != tokenizer.ProtoTCP || !l.Complete {
		t.Fatalf("%x is no complete TCP segment", pkt)
	}
	at := l.IPHdrLen + 13
	g, err := sp.NewGrammar()
	if err != nil {
		t.Fatal(err)
	}
	if wellFormed {
		g.WellFormed()
	}
	lbl, _ := sp.LabelToken(sp.Labels[0])
	for _, tok := range append([]uint16{uint16(lbl), tokenizer.TokPkt}, bytesToTokens(zeroChecksums(sp, pkt)[:at])...) {
		if err := g.Advance(tok); err != nil {
			t.Fatalf("%x: %v", pkt, err)
		}
	}
	return g, at
}

// checkTCPFlagsByteFollowsTCPFlagsValid checks a grammar standing at a TCP
// flags byte: its mask allows exactly the byte tokens b with
// TCPFlagsValid(b), Advance agrees for all 256, and a refusal names the
// rule. Any layout whose grammar writes the flags as a byte token can reuse
// it.
func checkTCPFlagsByteFollowsTCPFlagsValid(t *testing.T, g *tokenizer.Grammar) {
	t.Helper()
	mask := g.Allowed(nil)
	for b := range 256 {
		want := tokenizer.TCPFlagsValid(uint8(b))
		if mask[b] != want {
			t.Errorf("flags %#02x: mask says %v, TCPFlagsValid %v", b, mask[b], want)
		}
		err := g.Clone().Advance(uint16(b))
		if (err == nil) != want {
			t.Errorf("flags %#02x: Advance says %v, TCPFlagsValid %v", b, err, want)
		}
		if err != nil && !strings.Contains(err.Error(), "TCP flag set") {
			t.Errorf("flags %#02x: refusal %q does not name the TCP flag rule", b, err)
		}
	}
}

func TestWellFormedTCPFlagsByteFollowsTCPFlagsValid(t *testing.T) {
	sp := timingOff(t)
	for _, v6 := range []bool{false, true} {
		g, _ := grammarAtTCPFlags(t, sp, tcpSegment(t, v6, tokenizer.TCPFlagACK, 30), true)
		checkTCPFlagsByteFollowsTCPFlagsValid(t, g)
	}
}

// TestStructuralGrammarTakesAnyTCPFlags: real traces hold scans and broken
// stacks, and checking them must not refuse their flags; only decoding
// (the well-formed rules) is held to TCPFlagsValid.
func TestStructuralGrammarTakesAnyTCPFlags(t *testing.T) {
	sp := timingOff(t)
	g, _ := grammarAtTCPFlags(t, sp, tcpSegment(t, false, tokenizer.TCPFlagACK, 30), false)
	mask := g.Allowed(nil)
	for b := range 256 {
		if !mask[b] {
			t.Errorf("structural grammar refuses TCP flags %#02x", b)
		}
	}
}

func TestValidTCPFlagsListsTCPFlagsValid(t *testing.T) {
	var want []uint8
	for b := range 256 {
		if tokenizer.TCPFlagsValid(uint8(b)) {
			want = append(want, uint8(b))
		}
	}
	got := tokenizer.ValidTCPFlags()
	if !slices.Equal(got, want) {
		t.Fatalf("ValidTCPFlags() = %x, want %x", got, want)
	}
	for _, f := range []uint8{tokenizer.TCPFlagSYN, tokenizer.TCPFlagSYN | tokenizer.TCPFlagACK, tokenizer.TCPFlagACK, tokenizer.TCPFlagPSH | tokenizer.TCPFlagACK, tokenizer.TCPFlagFIN | tokenizer.TCPFlagACK, tokenizer.TCPFlagRST, tokenizer.TCPFlagRST | tokenizer.TCPFlagACK, tokenizer.TCPFlagSYN | tokenizer.TCPFlagECE | tokenizer.TCPFlagCWR, tokenizer.TCPFlagACK | tokenizer.TCPFlagECE} {
		if !slices.Contains(got, f) {
			t.Errorf("%#02x, sent by every stack, is not valid", f)
		}
	}
	for _, f := range []uint8{0, tokenizer.TCPFlagFIN, tokenizer.TCPFlagPSH, tokenizer.TCPFlagSYN | tokenizer.TCPFlagFIN, tokenizer.TCPFlagSYN | tokenizer.TCPFlagRST, tokenizer.TCPFlagFIN | tokenizer.TCPFlagRST | tokenizer.TCPFlagACK, tokenizer.TCPFlagECE | tokenizer.TCPFlagCWR, tokenizer.TCPFlagFIN | tokenizer.TCPFlagPSH | tokenizer.TCPFlagURG} {
		if slices.Contains(got, f) {
			t.Errorf("%#02x is valid", f)
		}
	}
}

// TestWellFormedGrammarTakesValidTCPConnections: a connection's segments as
// real stacks send them (handshake with ECN, data, close, reset), IPv4 and
// IPv6, encoded and fed to the well-formed grammar, pass it whole; the
// same segment with an invalid flag set is refused at its flags byte.
func TestWellFormedGrammarTakesValidTCPConnections(t *testing.T) {
	sp := timingOff(t)
	conn := []uint8{tokenizer.TCPFlagSYN | tokenizer.TCPFlagECE | tokenizer.TCPFlagCWR, tokenizer.TCPFlagSYN | tokenizer.TCPFlagACK | tokenizer.TCPFlagECE, tokenizer.TCPFlagACK, tokenizer.TCPFlagPSH | tokenizer.TCPFlagACK, tokenizer.TCPFlagACK | tokenizer.TCPFlagECE, tokenizer.TCPFlagPSH | tokenizer.TCPFlagACK | tokenizer.TCPFlagCWR, tokenizer.TCPFlagFIN | tokenizer.TCPFlagACK, tokenizer.TCPFlagACK, tokenizer.TCPFlagRST, tokenizer.TCPFlagRST | tokenizer.TCPFlagACK, tokenizer.TCPFlagURG | tokenizer.TCPFlagACK}
	for _, v6 := range []bool{false, true} {
		var pkts [][]byte
		var times []time.Time
		for i, f := range conn {
			pkts = append(pkts, tcpSegment(t, v6, f, 10*i))
			times = append(times, time.Unix(1_700_000_000, int64(i)*1_000_000))
		}
		tr := encode(t, sp, "x", pkts, times)
		g, _ := sp.NewGrammar()
		g.WellFormed()
		for i, tok := range tr.Tokens {
			if err := g.Advance(tok); err != nil {
				t.Fatalf("IPv6 %v: token %d (%s): %v", v6, i, sp.TokenString(int(tok)), err)
			}
		}
		if !g.Done() {
			t.Errorf("IPv6 %v: the trace did not end", v6)
		}
		for _, bad := range []uint8{0, tokenizer.TCPFlagSYN | tokenizer.TCPFlagFIN, tokenizer.TCPFlagSYN | tokenizer.TCPFlagRST | tokenizer.TCPFlagACK, tokenizer.TCPFlagFIN | tokenizer.TCPFlagRST | tokenizer.TCPFlagACK, tokenizer.TCPFlagPSH, tokenizer.TCPFlagFIN} {
			g, at := grammarAtTCPFlags(t, sp, tcpSegment(t, v6, bad, 10), true)
			if err := g.Advance(uint16(bad)); err == nil {
				t.Errorf("IPv6 %v: flags %#02x at byte %d accepted", v6, bad, at)
			}
		}
	}
}
