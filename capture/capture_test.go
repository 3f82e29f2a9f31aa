package capture_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/netssm/netssm/capture"
	"github.com/netssm/netssm/capture/capturetest"
)

func readAll(t *testing.T, r *capture.Reader) (pkts []capture.Packet, err error) {
	t.Helper()
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return pkts, nil
		}
		if err != nil {
			return pkts, err
		}
		p.IP = append([]byte(nil), p.IP...)
		pkts = append(pkts, p)
	}
}

func TestProjectCapturesCoverFormatsAndLinkTypes(t *testing.T) {
	formats := map[capture.Format]bool{}
	links := map[uint16]bool{}
	v6 := false
	for _, f := range capturetest.ProjectCaptures(t) {
		r, err := capture.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		pkts, err := readAll(t, r)
		r.Close()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(pkts) < 20 {
			t.Errorf("%s: %d packets", f, len(pkts))
		}
		formats[r.Format()] = true
		for i, p := range pkts {
			if p.Index != i {
				t.Fatalf("%s: packet %d has index %d", f, i, p.Index)
			}
			links[p.LinkTypeID] = true
			if p.IP != nil && p.IP[0]>>4 == 6 {
				v6 = true
			}
			if p.IP != nil && p.IPWireLen() != p.WireLen-p.LinkHdrLen {
				t.Fatalf("IPWireLen inconsistent")
			}
		}
	}
	for _, f := range []capture.Format{capture.FormatPcap, capture.FormatPcapNG} {
		if !formats[f] {
			t.Errorf("no %s among the project captures", f)
		}
	}
	for _, l := range []uint16{capture.LinkTypeEthernet, capture.LinkTypeLinuxSLL, capture.LinkTypeLinuxSLL2} {
		if !links[l] {
			t.Errorf("no link type %d among the project captures", l)
		}
	}
	if !v6 {
		t.Error("no IPv6 packet among the project captures")
	}
}

func TestWireLenComesFromRecordHeaderNotCapLen(t *testing.T) {
	// http_curl.pcap is captured with a 128-byte snap length.
	f := filepath.Join(capturetest.RepoRoot(t), "testdata", "captures", "web", "http_curl.pcap")
	r, err := capture.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	pkts, err := readAll(t, r)
	if err != nil {
		t.Fatal(err)
	}
	clipped := 0
	for _, p := range pkts {
		if p.WireLen > p.CapLen {
			clipped++
			if p.CapLen > 128 {
				t.Fatalf("packet %d: caplen %d over the snap length", p.Index, p.CapLen)
			}
		}
	}
	if clipped == 0 || r.Stats().CapLenClipped != clipped {
		t.Fatalf("%d records with wire length > caplen, stats say %d", clipped, r.Stats().CapLenClipped)
	}
}

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func ethFrame(ethertype uint16, payload []byte) []byte {
	b := make([]byte, 14, 14+len(payload))
	b[12], b[13] = byte(ethertype>>8), byte(ethertype)
	return append(b, payload...)
}

func TestStripLinkLayers(t *testing.T) {
	ip4 := capturetest.IPv4UDP([4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}, 1, 2, []byte("x"))
	ip6 := capturetest.IPv6UDP(false, []byte("y"))
	vlan := append([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x81, 0x00, 0x00, 0x07, 0x08, 0x00}, ip4...)
	sll := append(make([]byte, 14), 0x08, 0x00)
	sll = append(sll, ip4...)
	sll2 := append([]byte{0x86, 0xdd}, make([]byte, 18)...)
	sll2 = append(sll2, ip6...)
	null := append([]byte{2, 0, 0, 0}, ip4...)
	loop := append([]byte{0, 0, 0, 24}, ip6...)
	for _, c := range []struct {
		name  string
		link  uint16
		frame []byte
		hdr   int
		res   capture.LinkResult
	}{
		{"ethernet", capture.LinkTypeEthernet, ethFrame(0x0800, ip4), 14, capture.LinkOK},
		{"ethernet-vlan", capture.LinkTypeEthernet, vlan, 18, capture.LinkOK},
		{"ethernet-arp", capture.LinkTypeEthernet, ethFrame(0x0806, make([]byte, 28)), 0, capture.LinkNotIP},
		{"ethernet-short", capture.LinkTypeEthernet, make([]byte, 10), 0, capture.LinkShort},
		{"ethertype-lies", capture.LinkTypeEthernet, ethFrame(0x0800, ip6), 0, capture.LinkNotIP},
		{"sll", capture.LinkTypeLinuxSLL, sll, 16, capture.LinkOK},
		{"sll2", capture.LinkTypeLinuxSLL2, sll2, 20, capture.LinkOK},
		{"raw", capture.LinkTypeRaw, ip6, 0, capture.LinkOK},
		{"null", capture.LinkTypeNull, null, 4, capture.LinkOK},
		{"loop", capture.LinkTypeLoop, loop, 4, capture.LinkOK},
		{"unknown", 147, ip4, 0, capture.LinkUnknown},
	} {
		ip, hdr, res := capture.StripLink(c.link, c.frame)
		if res != c.res || hdr != c.hdr {
			t.Errorf("%s: result %d header %d, want %d %d", c.name, res, hdr, c.res, c.hdr)
		}
		if res == capture.LinkOK && !bytes.Equal(ip, c.frame[c.hdr:]) {
			t.Errorf("%s: wrong IP bytes", c.name)
		}
	}
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBadInputErrorsNameFileAndPacket(t *testing.T) {
	ip := capturetest.IPv4UDP([4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}, 1, 2, make([]byte, 30))
	good := capturetest.PcapBytes(101, 65535, []capturetest.Record{{Time: t0, Data: ip}, {Time: t0, Data: ip}})
	bigCap := capturetest.PcapBytes(101, 40, []capturetest.Record{{Time: t0, Data: ip}})
	for _, c := range []struct {
		name, file string
		data       []byte
		openErr    string // substring of Open's error
		nextErr    string // substring of Next's error (after the good packets)
		good       int
	}{
		{"zero-length", "empty.pcap", nil, "empty file", "", 0},
		{"wrong-magic", "text.pcap", []byte("hello, this is not a capture at all"), "not a pcap or pcapng", "", 0},
		{"short-header", "short.pcap", good[:10], "too short to be a capture (10 bytes", "", 0},
		{"short-pcapng-header", "short.pcapng", pcapngBytes(65535, uint32(len(ip)), ip)[:10], "too short to be a capture (10 bytes", "", 0},
		{"truncated-record", "cut.pcap", good[:len(good)-5], "", "packet 1: file truncated", 1},
		{"truncated-record-header", "cuthdr.pcap", good[:24+16+len(ip)+7], "", "packet 1", 1},
		{"caplen-over-snaplen", "snap.pcap", bigCap, "", "packet 0", 0},
		{"pcapng-garbage", "bad.pcapng", []byte{0x0a, 0x0d, 0x0d, 0x0a, 1, 2, 3}, "bad.pcapng", "", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeTemp(t, c.file, c.data)
			r, err := capture.Open(path)
			if c.openErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.openErr) || !strings.Contains(err.Error(), c.file) {
					t.Fatalf("Open error %v, want one naming %s and saying %q", err, c.file, c.openErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			pkts, err := readAll(t, r)
			if len(pkts) != c.good {
				t.Errorf("%d packets before the error, want %d", len(pkts), c.good)
			}
			if err == nil || !strings.Contains(err.Error(), c.nextErr) || !strings.Contains(err.Error(), c.file) {
				t.Fatalf("Next error %v, want one naming %s and saying %q", err, c.file, c.nextErr)
			}
			if _, again := r.Next(); again == nil || again.Error() != err.Error() {
				t.Fatalf("error not sticky: %v then %v", err, again)
			}
		})
	}
}

func TestUnknownLinkTypeAndNonIPAreCounted(t *testing.T) {
	ip := capturetest.IPv4UDP([4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}, 1, 2, nil)
	path := writeTemp(t, "unk.pcap", capturetest.PcapBytes(147, 65535, []capturetest.Record{{Time: t0, Data: ip}}))
	r, err := capture.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	pkts, err := readAll(t, r)
	if err != nil || len(pkts) != 1 || pkts[0].IP != nil || r.Stats().UnknownLink != 1 {
		t.Fatalf("unknown link type: %d packets, err %v, stats %+v", len(pkts), err, r.Stats())
	}
	path = writeTemp(t, "arp.pcap", capturetest.PcapBytes(1, 65535, []capturetest.Record{
		{Time: t0, Data: ethFrame(0x0806, make([]byte, 28))}, {Time: t0, Data: ethFrame(0x0800, ip)}}))
	r, _ = capture.Open(path)
	pkts, err = readAll(t, r)
	if err != nil || len(pkts) != 2 || r.Stats().NonIP != 1 || r.Stats().IP != 1 {
		t.Fatalf("ARP + IP: %d packets, err %v, stats %+v", len(pkts), err, r.Stats())
	}
}

func TestNextDoesNotAllocatePerPacket(t *testing.T) {
	ip := capturetest.IPv4UDP([4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}, 1, 2, make([]byte, 100))
	recs := make([]capturetest.Record, 5000)
	for i := range recs {
		recs[i] = capturetest.Record{Time: t0.Add(time.Duration(i) * time.Millisecond), Data: ethFrame(0x0800, ip)}
	}
	path := writeTemp(t, "many.pcap", capturetest.PcapBytes(1, 65535, recs))
	r, err := capture.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Next() // the first call sizes the record buffer
	allocs := testing.AllocsPerRun(2000, func() {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Fatalf("%.1f allocations per packet: memory would grow with the file", allocs)
	}
}

func TestNanosecondPcapTimestampsKept(t *testing.T) {
	ip := capturetest.IPv4UDP([4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}, 1, 2, nil)
	b := capturetest.PcapBytes(101, 65535, []capturetest.Record{{Time: t0, Data: ip}})
	copy(b[0:4], []byte{0x4d, 0x3c, 0xb2, 0xa1})                // nanosecond magic, little-endian
	b[24+4], b[24+5], b[24+6], b[24+7] = 0x15, 0xcd, 0x5b, 0x07 // 123456789 ns
	r, err := capture.Open(writeTemp(t, "ns.pcap", b))
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Next()
	if err != nil || p.Timestamp.Nanosecond() != 123456789 {
		t.Fatalf("timestamp %v (%v), want …123456789 ns", p.Timestamp, err)
	}
}

// pcapngBytes builds a little-endian pcapng: a section header, one Ethernet
// interface with the given snap length, and one enhanced packet block whose
// captured-length field says capLen while the block holds data.
func pcapngBytes(snapLen uint32, capLen uint32, data []byte) []byte {
	le := func(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
	var b []byte
	b = le(b, 0x0a0d0d0a)
	b = le(b, 28)
	b = le(b, 0x1a2b3c4d)
	b = append(b, 1, 0, 0, 0)                                     // version 1.0
	b = append(b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff) // section length unknown
	b = le(b, 28)
	b = le(b, 1)
	b = le(b, 20)
	b = append(b, 1, 0, 0, 0) // LINKTYPE_ETHERNET, reserved
	b = le(b, snapLen)
	b = le(b, 20)
	padded := append([]byte(nil), data...)
	for len(padded)%4 != 0 {
		padded = append(padded, 0)
	}
	blen := uint32(32 + len(padded))
	b = le(b, 6)
	b = le(b, blen)
	b = le(b, 0) // interface 0
	b = le(b, 0)
	b = le(b, 1000)
	b = le(b, capLen)
	b = le(b, uint32(len(data)))
	b = append(b, padded...)
	return le(b, blen)
}

// Regression for a fuzzing finding: pcapgo allocates a packet's claimed
// captured length before reading it, so a corrupt 4 GB captured length in a
// 128-byte block cost gigabytes. It must be refused cheaply, naming the packet.
func TestPcapngImpossibleCapLenRefusedWithoutAllocating(t *testing.T) {
	ip := capturetest.IPv4UDP([4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}, 1, 2, make([]byte, 20))
	frame := ethFrame(0x0800, ip)
	good := pcapngBytes(262144, uint32(len(frame)), frame)
	if r, err := capture.NewReader("good.pcapng", bytes.NewReader(good)); err != nil {
		t.Fatal(err)
	} else if p, err := r.Next(); err != nil || p.IP == nil {
		t.Fatalf("well-formed pcapng: %v", err)
	}
	for _, c := range []struct {
		name            string
		snapLen, capLen uint32
	}{
		{"huge-caplen", 262144, 0xff000060},
		{"huge-snaplen-and-caplen", 0xffffffff, 0x7fffffff},
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r, err := capture.NewReader("bad.pcapng", bytes.NewReader(pcapngBytes(c.snapLen, c.capLen, frame)))
		if err == nil {
			_, err = r.Next()
		}
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), "bad.pcapng") {
			t.Errorf("%s: error %v, want one naming the file", c.name, err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
			t.Errorf("%s: reading allocated %d MB", c.name, grew>>20)
		}
	}
	// A huge interface snap length alone is legal and must not size buffers.
	r, err := capture.NewReader("snap.pcapng", bytes.NewReader(pcapngBytes(0xffffffff, uint32(len(frame)), frame)))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := r.Next(); err != nil || p.IP == nil {
		t.Fatalf("huge snap length: %v", err)
	}
}

// multiInterfacePcapng: one section with an Ethernet and a Linux cooked v2
// interface, one packet on each.
func multiInterfacePcapng(eth, sll2 []byte) []byte {
	le := func(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
	idb := func(b []byte, link uint16) []byte {
		b = le(b, 1)
		b = le(b, 20)
		b = binary.LittleEndian.AppendUint16(b, link)
		b = append(b, 0, 0)
		b = le(b, 0)
		return le(b, 20)
	}
	epb := func(b []byte, iface uint32, data []byte) []byte {
		padded := append([]byte(nil), data...)
		for len(padded)%4 != 0 {
			padded = append(padded, 0)
		}
		blen := uint32(32 + len(padded))
		b = le(b, 6)
		b = le(b, blen)
		b = le(b, iface)
		b = le(b, 0)
		b = le(b, 5_000_000+iface)
		b = le(b, uint32(len(data)))
		b = le(b, uint32(len(data)))
		b = append(b, padded...)
		return le(b, blen)
	}
	var b []byte
	b = le(b, 0x0a0d0d0a)
	b = le(b, 28)
	b = le(b, 0x1a2b3c4d)
	b = append(b, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	b = le(b, 28)
	b = idb(b, 1)
	b = idb(b, 276)
	b = epb(b, 0, eth)
	return epb(b, 1, sll2)
}

func TestPcapngWithSeveralInterfacesKeepsEachLinkType(t *testing.T) {
	ip4 := capturetest.IPv4UDP([4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}, 1, 2, []byte("eth"))
	ip6 := capturetest.IPv6UDP(false, []byte("sll2"))
	sll2 := append([]byte{0x86, 0xdd}, make([]byte, 18)...)
	r, err := capture.NewReader("multi.pcapng", bytes.NewReader(multiInterfacePcapng(ethFrame(0x0800, ip4), append(sll2, ip6...))))
	if err != nil {
		t.Fatal(err)
	}
	pkts, err := readAll(t, r)
	if err != nil || len(pkts) != 2 {
		t.Fatalf("%d packets, %v", len(pkts), err)
	}
	for i, c := range []struct {
		link, iface, hdr int
		ip               []byte
	}{{1, 0, 14, ip4}, {276, 1, 20, ip6}} {
		p := pkts[i]
		if int(p.LinkTypeID) != c.link || p.Interface != c.iface || p.LinkHdrLen != c.hdr || !bytes.Equal(p.IP, c.ip) {
			t.Errorf("packet %d: link %d iface %d header %d, want %d %d %d (IP equal %v)", i, p.LinkTypeID, p.Interface, p.LinkHdrLen, c.link, c.iface, c.hdr, bytes.Equal(p.IP, c.ip))
		}
	}
}
