package eval

import (
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// This file makes the small captures the tests run on: two workloads with
// clearly different traffic ("bulk": TCP downloads; "call": a UDP media
// stream), written with pcapgo as LINKTYPE_RAW pcaps, each packet cut to a
// 96-byte snap length as real captures often are.

type rawPacket struct {
	ts     time.Time
	data   []byte
	length int // original length
}

type trafficGen struct {
	rng  *rand.Rand
	pkts []rawPacket
	t0   time.Time
}

func newTrafficGen(seed uint64) *trafficGen {
	return &trafficGen{rng: rand.New(rand.NewPCG(seed, 0x5eed)), t0: time.Unix(1_700_000_000, 0).UTC()}
}

func (g *trafficGen) addr(last byte) net.IP { return net.IPv4(10, 0, byte(g.rng.IntN(4)), last).To4() }

func (g *trafficGen) emit(ts time.Time, ls ...gopacket.SerializableLayer) {
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		panic(err) // test helper: a bug in the generator itself
	}
	b := append([]byte(nil), buf.Bytes()...)
	g.pkts = append(g.pkts, rawPacket{ts: ts, data: b, length: len(b)})
}

func (g *trafficGen) tcp(ts time.Time, src, dst net.IP, sp, dp uint16, seq, ack uint32, flags string, payload int) {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src, DstIP: dst, Id: uint16(g.rng.IntN(65536)), Flags: layers.IPv4DontFragment}
	t := &layers.TCP{SrcPort: layers.TCPPort(sp), DstPort: layers.TCPPort(dp), Seq: seq, Ack: ack, Window: uint16(20000 + g.rng.IntN(40000))}
	for _, f := range flags {
		switch f {
		case 'S':
			t.SYN = true
		case 'A':
			t.ACK = true
		case 'F':
			t.FIN = true
		case 'P':
			t.PSH = true
		case 'R':
			t.RST = true
		}
	}
	_ = t.SetNetworkLayerForChecksum(ip)
	g.emit(ts, ip, t, gopacket.Payload(make([]byte, payload)))
}

func (g *trafficGen) udp(ts time.Time, src, dst net.IP, sp, dp uint16, payload int) {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 128, Protocol: layers.IPProtocolUDP, SrcIP: src, DstIP: dst, Id: uint16(g.rng.IntN(65536))}
	u := &layers.UDP{SrcPort: layers.UDPPort(sp), DstPort: layers.UDPPort(dp)}
	_ = u.SetNetworkLayerForChecksum(ip)
	p := make([]byte, payload)
	for i := range p {
		p[i] = byte(g.rng.IntN(256))
	}
	g.emit(ts, ip, u, gopacket.Payload(p))
}

// tcpDownload is one TCP connection: handshake, segments from the server
// with ACKs every second segment, then FIN exchange.
func (g *trafficGen) tcpDownload(start time.Time, client, server net.IP, segments int, meanGap time.Duration) {
	cp, sp := uint16(40000+g.rng.IntN(20000)), uint16(443)
	ci, si := g.rng.Uint32(), g.rng.Uint32()
	ts := start
	step := func(mean time.Duration) time.Time {
		ts = ts.Add(time.Duration(g.rng.ExpFloat64()*float64(mean)) + time.Microsecond)
		return ts
	}
	g.tcp(ts, client, server, cp, sp, ci, 0, "S", 0)
	g.tcp(step(20*time.Millisecond), server, client, sp, cp, si, ci+1, "SA", 0)
	g.tcp(step(20*time.Millisecond), client, server, cp, sp, ci+1, si+1, "A", 0)
	g.tcp(step(time.Millisecond), client, server, cp, sp, ci+1, si+1, "PA", 300)
	cseq, sseq := ci+301, si+1
	for i := range segments {
		n := 1448
		if g.rng.IntN(5) == 0 {
			n = 100 + g.rng.IntN(1300)
		}
		g.tcp(step(meanGap), server, client, sp, cp, sseq, cseq, "A", n)
		sseq += uint32(n)
		if i%2 == 1 {
			g.tcp(step(meanGap/4), client, server, cp, sp, cseq, sseq, "A", 0)
		}
	}
	g.tcp(step(meanGap), server, client, sp, cp, sseq, cseq, "FA", 0)
	g.tcp(step(meanGap), client, server, cp, sp, cseq, sseq+1, "FA", 0)
	g.tcp(step(meanGap), server, client, sp, cp, sseq+1, cseq+1, "A", 0)
}

// mediaStream is a bidirectional UDP media flow: a packet every ~20 ms each way.
func (g *trafficGen) mediaStream(start time.Time, a, b net.IP, packets int) {
	pa, pb := uint16(50000+g.rng.IntN(10000)), uint16(3478)
	ts := start
	for range packets {
		ts = ts.Add(time.Duration(float64(10*time.Millisecond) * (0.8 + 0.4*g.rng.Float64())))
		if g.rng.IntN(2) == 0 {
			g.udp(ts, a, b, pa, pb, 80+g.rng.IntN(140))
		} else {
			g.udp(ts, b, a, pb, pa, 80+g.rng.IntN(140))
		}
	}
}

func (g *trafficGen) dns(ts time.Time, client, resolver net.IP) {
	p := uint16(30000 + g.rng.IntN(30000))
	g.udp(ts, client, resolver, p, 53, 30+g.rng.IntN(20))
	g.udp(ts.Add(time.Duration(5+g.rng.IntN(30))*time.Millisecond), resolver, client, 53, p, 80+g.rng.IntN(200))
}

// workload generates about n packets of the named workload ("bulk" or "call").
func (g *trafficGen) workload(label string, n int) {
	client, resolver := g.addr(2), net.IPv4(10, 0, 0, 53).To4()
	switch label {
	case "bulk":
		t := g.t0
		for len(g.pkts) < n {
			server := net.IPv4(93, 184, byte(g.rng.IntN(256)), byte(1+g.rng.IntN(250))).To4()
			g.dns(t, client, resolver)
			g.tcpDownload(t.Add(50*time.Millisecond), client, server, 20+g.rng.IntN(200), 400*time.Microsecond)
			t = t.Add(time.Duration(g.rng.IntN(400)) * time.Millisecond)
		}
	case "call":
		peer := net.IPv4(52, 112, byte(g.rng.IntN(256)), 7).To4()
		g.dns(g.t0, client, resolver)
		g.tcpDownload(g.t0.Add(30*time.Millisecond), client, net.IPv4(52, 113, 1, 1).To4(), 6, 30*time.Millisecond)
		g.mediaStream(g.t0.Add(200*time.Millisecond), client, peer, n-len(g.pkts))
	default:
		panic("unknown workload " + label)
	}
	sort.SliceStable(g.pkts, func(i, j int) bool { return g.pkts[i].ts.Before(g.pkts[j].ts) })
}

// writePcap writes packets as a LINKTYPE_RAW pcap, cutting each to snapLen
// captured bytes (0: no cut).
func writePcap(t testing.TB, path string, pkts []rawPacket, snapLen int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriterNanos(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeRaw); err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		data := p.data
		if snapLen > 0 && len(data) > snapLen {
			data = data[:snapLen]
		}
		ci := gopacket.CaptureInfo{Timestamp: p.ts, CaptureLength: len(data), Length: p.length}
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}
}

// makeWorkloadCaptures writes files of each label under dir/label/ and
// returns their paths; seed varies the traffic.
func makeWorkloadCaptures(t testing.TB, dir string, labels []string, filesPerLabel, packetsPerFile int, seed uint64) []string {
	t.Helper()
	var paths []string
	for li, l := range labels {
		for i := range filesPerLabel {
			g := newTrafficGen(seed*1000 + uint64(li*100+i))
			g.workload(l, packetsPerFile)
			p := filepath.Join(dir, l, l+"_"+string(rune('a'+i))+".pcap")
			writePcap(t, p, g.pkts, 96)
			paths = append(paths, p)
		}
	}
	return paths
}

// loadAll loads capture files labelled by directory.
func loadAll(t testing.TB, paths []string) []*Trace {
	t.Helper()
	traces, err := LoadTraces(paths, Labeler{}, "test captures")
	if err != nil {
		t.Fatal(err)
	}
	return traces
}
