package tokenizer_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/netssm/netssm/capture/capturetest"
	"github.com/netssm/netssm/pcapout"
	"github.com/netssm/netssm/tokenizer"
)

// walkWellFormed draws n packets token by token, each token uniformly among
// those the well-formed grammar allows: the harshest sampler there is.
func walkWellFormed(t *testing.T, sp *tokenizer.Spec, seed uint64, n int) [][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 99))
	g, _ := sp.NewGrammar()
	g.WellFormed()
	lbl, _ := sp.LabelToken(sp.Labels[0])
	if err := g.Advance(uint16(lbl)); err != nil {
		t.Fatal(err)
	}
	var pkts [][]byte
	for len(pkts) < n {
		if err := g.Advance(tokenizer.TokPkt); err != nil {
			t.Fatal(err)
		}
		for {
			mask := g.Allowed(nil)
			var bytesOK []uint16
			for b := range tokenizer.NumByteTokens {
				if mask[b] {
					bytesOK = append(bytesOK, uint16(b))
				}
			}
			if mask[tokenizer.TokPkt] {
				if len(bytesOK) > 0 {
					t.Fatalf("packet %x: <pkt> and bytes both allowed", g.PacketBytes())
				}
				break
			}
			if len(bytesOK) == 0 {
				t.Fatalf("dead end after %x", g.PacketBytes())
			}
			if err := g.Advance(bytesOK[rng.IntN(len(bytesOK))]); err != nil {
				t.Fatal(err)
			}
		}
		pkts = append(pkts, append([]byte(nil), g.PacketBytes()...))
	}
	return pkts
}

func timingOff(t *testing.T) *tokenizer.Spec {
	s := tokenizer.DefaultSpec()
	s.Timing = false
	return specWith(t, s, "x")
}

func TestWellFormedMaskAgreesWithAdvance(t *testing.T) {
	checkMaskAgreesWithAdvance(t, true, 100, 400, 7)
}

// TestWellFormedPacketsDecode: every packet of a uniform random walk under
// the well-formed grammar decodes in gopacket as IPv4/IPv6 + TCP/UDP/ICMP,
// layer by layer, with the UDP length and the TCP data offset agreeing with
// the IP length, and every TCP flag set valid (tokenizer.TCPFlagsValid). (What the kept payload bytes say is the model's business:
// the grammar does not judge application protocols.)
func TestWellFormedPacketsDecode(t *testing.T) {
	sp := timingOff(t)
	kinds := map[string]int{}
	for i, p := range walkWellFormed(t, sp, 1, 3000) {
		orig, _, err := pcapout.Check(p)
		if err != nil {
			t.Fatalf("packet %d %x: %v", i, p, err)
		}
		fail := func(what string, err error) {
			t.Helper()
			t.Fatalf("packet %d %x: %s: %v", i, p, what, err)
		}
		var proto layers.IPProtocol
		var l4 []byte
		if p[0]>>4 == 4 {
			var ip layers.IPv4
			if err := ip.DecodeFromBytes(p, gopacket.NilDecodeFeedback); err != nil {
				fail("IPv4", err)
			}
			proto, l4 = ip.Protocol, p[ip.IHL*4:]
		} else {
			var ip layers.IPv6
			if err := ip.DecodeFromBytes(p, gopacket.NilDecodeFeedback); err != nil {
				fail("IPv6", err)
			}
			proto, l4 = ip.NextHeader, p[40:]
		}
		ipPayload := orig - ipHeaderLen(p)
		switch proto {
		case layers.IPProtocolTCP:
			var tcp layers.TCP
			if err := tcp.DecodeFromBytes(l4, gopacket.NilDecodeFeedback); err != nil {
				fail("TCP", err)
			}
			if int(tcp.DataOffset)*4 > ipPayload {
				fail("TCP", fmt.Errorf("data offset %d past the IP payload %d", tcp.DataOffset*4, ipPayload))
			}
			if f := l4[13]; !tokenizer.TCPFlagsValid(f) {
				fail("TCP", fmt.Errorf("flag set %#02x is not one a real stack sends", f))
			}
			kinds["TCP"]++
		case layers.IPProtocolUDP:
			var udp layers.UDP
			if err := udp.DecodeFromBytes(l4, gopacket.NilDecodeFeedback); err != nil {
				fail("UDP", err)
			}
			if int(udp.Length) != ipPayload {
				fail("UDP", fmt.Errorf("length %d, IP payload %d", udp.Length, ipPayload))
			}
			kinds["UDP"]++
		case layers.IPProtocolICMPv4, layers.IPProtocolICMPv6:
			if len(l4) < 8 {
				fail("ICMP", fmt.Errorf("%d bytes", len(l4)))
			}
			kinds["ICMP"]++
		default:
			fail("protocol", fmt.Errorf("%v", proto))
		}
	}
	t.Logf("random well-formed packets: %v", kinds)
	for _, k := range []string{"TCP", "UDP", "ICMP"} {
		if kinds[k] == 0 {
			t.Errorf("no %s packet in the walk: the grammar shuts a protocol out", k)
		}
	}
}

func ipHeaderLen(p []byte) int {
	if p[0]>>4 == 6 {
		return 40
	}
	return int(p[0]&0x0f) * 4
}

// TestWellFormedPacketsPassTshark writes random well-formed packets to a
// pcap and asks tshark for malformed packets: there must be none.
func TestWellFormedPacketsPassTshark(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark not installed (.ci/run installs it)")
	}
	sp := timingOff(t)
	out := filepath.Join(t.TempDir(), "walk.pcap")
	if d := os.Getenv("NETSSM_KEEP_WALK"); d != "" {
		out = d
	}
	w, err := pcapout.Create(out, pcapout.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1_700_000_000, 0)
	for i, p := range walkWellFormed(t, sp, 2, 3000) {
		if _, err := w.WritePacket(ts.Add(time.Duration(i)*time.Millisecond), p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tshark, "-n", "-r", out, "-Y", "_ws.malformed", "-T", "fields", "-e", "frame.number", "-e", "frame.protocols")
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, b)
	}
	// A malformed verdict from an application dissector is about the
	// payload bytes, which a uniform walk fills at random on random ports;
	// one from IP, TCP, UDP or ICMP is the grammar's failure.
	var headers, payload []string
	for line := range strings.Lines(strings.TrimSpace(string(b))) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		stack := strings.Split(f[1], ":")
		switch stack[len(stack)-1] {
		case "ip", "ipv6", "tcp", "udp", "icmp", "icmpv6", "data", "_ws.malformed": // "data": no dissector past L4
			headers = append(headers, line)
		default:
			payload = append(payload, strings.TrimSpace(line))
		}
	}
	t.Logf("tshark: %d of 3000 random packets malformed in an application dissector (random payload on random ports): %v", len(payload), payload[:min(10, len(payload))])
	if len(headers) > 0 {
		t.Fatalf("tshark finds %d packets malformed in the IP/L4 headers, e.g.\n%s", len(headers), strings.Join(headers[:min(10, len(headers))], ""))
	}
	if len(payload) > 30 {
		t.Errorf("%d of 3000 random packets malformed in application dissectors: more than payload noise explains", len(payload))
	}
}

func TestWellFormedRefusals(t *testing.T) {
	sp := timingOff(t)
	lbl, _ := sp.LabelToken("x")
	udp := capturetest.IPv4UDP(a4, b4, 1, 2, make([]byte, 30))
	tcp := capturetest.IPv4TCP(a4, b4, []byte{2, 4, 5, 0xb4, 1, 1, 4, 2}, nil)
	mod := func(p []byte, at int, v byte) []byte {
		q := append([]byte(nil), p...)
		q[at] = v
		return q
	}
	for _, c := range []struct {
		name, why string
		pkt       []byte
	}{
		{"udp-length", "UDP length", mod(udp, 25, 37)},
		{"fragment", "fragments", mod(udp, 6, 0x20)},
		{"igmp", "protocol", mod(udp, 9, 2)},
		{"short-total-length", "total length", mod(mod(udp, 2, 0), 3, 20)},
		{"tcp-option-length", "TCP options", mod(tcp, 41, 5)},
		{"tcp-unknown-option", "TCP options", mod(tcp, 44, 99)},
		{"tcp-offset-past-ip-length", "data offset", mod(tcp, 32, 0xf0)},
	} {
		g, _ := sp.NewGrammar()
		g.WellFormed()
		pkt := c.pkt[:min(len(c.pkt), sp.Keep(c.pkt).Keep)]
		toks := append([]uint16{uint16(lbl), tokenizer.TokPkt}, bytesToTokens(zeroChecksums(sp, pkt))...)
		var err error
		for _, tok := range toks {
			if err = g.Advance(tok); err != nil {
				break
			}
		}
		if err == nil || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%s: got %v, want a refusal naming %q", c.name, err, c.why)
		}
		// The structural grammar (checking real traces) takes the same
		// bytes where they add up.
		if c.name == "udp-length" || c.name == "igmp" || c.name == "tcp-unknown-option" {
			if err := grammarAccepts(sp, append(toks, tokenizer.TokEOS)); err != nil {
				t.Errorf("%s: structural grammar refuses: %v", c.name, err)
			}
		}
	}
	for _, p := range [][]byte{udp, tcp} {
		p = p[:sp.Keep(p).Keep]
		g, _ := sp.NewGrammar()
		g.WellFormed()
		for _, tok := range append([]uint16{uint16(lbl), tokenizer.TokPkt}, bytesToTokens(zeroChecksums(sp, p))...) {
			if err := g.Advance(tok); err != nil {
				t.Fatalf("control packet %x refused: %v", p, err)
			}
		}
	}
}

func bytesToTokens(p []byte) []uint16 {
	out := make([]uint16, len(p))
	for i, b := range p {
		out[i] = uint16(b)
	}
	return out
}

// wellFormedShare feeds every IP packet of files to the well-formed grammar
// and returns how many it takes and why it refuses the others.
func wellFormedShare(t *testing.T, files []string) (accepted, total int, refused map[string]int) {
	sp := timingOff(t)
	refused = map[string]int{}
	eachWholePacket(t, sp, files, func(_ string, _ int, tr tokenizer.Trace) {
		total++
		g, _ := sp.NewGrammar()
		g.WellFormed()
		for _, tok := range tr.Tokens[:len(tr.Tokens)-1] { // up to <eos>
			if err := g.Advance(tok); err != nil {
				why := err.Error()
				if i := strings.LastIndex(why, ": "); i >= 0 {
					why = why[i+2:]
				}
				refused[why]++
				return
			}
		}
		accepted++
	})
	return accepted, total, refused
}

func TestWellFormedGrammarTakesTheProjectCaptures(t *testing.T) {
	acc, total, refused := wellFormedShare(t, capturetest.ProjectCaptures(t))
	if total == 0 || acc != total {
		t.Fatalf("well-formed grammar takes %d of %d project packets; refusals %v", acc, total, refused)
	}
}

// TestWellFormedGrammarTakesMostSharedPackets reports how much of the real
// traffic lies inside the well-formed rules (decoding cannot make the rest).
func TestWellFormedGrammarTakesMostSharedPackets(t *testing.T) {
	files := capturetest.SharedCaptures(t)
	if testing.Short() {
		t.Skip("-short")
	}
	acc, total, refused := wellFormedShare(t, files)
	var reasons []string
	for why := range refused {
		reasons = append(reasons, why)
	}
	sort.Slice(reasons, func(i, j int) bool { return refused[reasons[i]] > refused[reasons[j]] })
	for _, why := range reasons {
		t.Logf("%7d refused: %s", refused[why], why)
	}
	share := float64(acc) / float64(max(total, 1))
	t.Logf("well-formed grammar takes %d of %d real packets (%.2f%%)", acc, total, 100*share)
	if share < 0.97 {
		t.Errorf("only %.2f%% of real packets are well-formed by the grammar's rules", 100*share)
	}
}
