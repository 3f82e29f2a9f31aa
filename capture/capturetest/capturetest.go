// Package capturetest owns the helpers that tests of the data side share:
// finding the repository root, the project's own test captures
// (testdata/captures) and the optional shared data set (../shared relative to
// the repository root), and writing small synthetic pcaps. Only tests import
// it.
package capturetest

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/netssm/netssm/capture"
)

// RepoRoot walks up from the working directory to the directory holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// ProjectCaptures returns the project's test captures (testdata/captures/LABEL/FILE).
func ProjectCaptures(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(RepoRoot(t), "testdata", "captures", "*", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no project captures under testdata/captures (make them with testdata/make_captures.sh): %v", err)
	}
	sort.Strings(files)
	return files
}

// SharedCaptures returns the captures of ../shared/data/pcaps, or skips the
// test when that data set is absent.
func SharedCaptures(t testing.TB) []string {
	t.Helper()
	dir := filepath.Join(RepoRoot(t), "..", "shared", "data", "pcaps")
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*"))
	if len(files) == 0 {
		t.Skip("../shared/data/pcaps is absent: data-driven extra skipped")
	}
	sort.Strings(files)
	return files
}

// Record is one record of a synthetic pcap.
type Record struct {
	Time    time.Time
	Data    []byte
	WireLen int // 0: len(Data)
}

// PcapBytes builds a little-endian, microsecond pcap file by hand (so tests
// can also build broken ones).
func PcapBytes(linkType uint32, snapLen uint32, recs []Record) []byte {
	b := make([]byte, 24)
	binary.LittleEndian.PutUint32(b[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(b[4:], 2)
	binary.LittleEndian.PutUint16(b[6:], 4)
	binary.LittleEndian.PutUint32(b[16:], snapLen)
	binary.LittleEndian.PutUint32(b[20:], linkType)
	for _, r := range recs {
		wl := r.WireLen
		if wl == 0 {
			wl = len(r.Data)
		}
		var h [16]byte
		binary.LittleEndian.PutUint32(h[0:], uint32(r.Time.Unix()))
		binary.LittleEndian.PutUint32(h[4:], uint32(r.Time.Nanosecond()/1000))
		binary.LittleEndian.PutUint32(h[8:], uint32(len(r.Data)))
		binary.LittleEndian.PutUint32(h[12:], uint32(wl))
		b = append(b, h[:]...)
		b = append(b, r.Data...)
	}
	return b
}

// IPv4UDP builds an IPv4/UDP packet with a valid header checksum.
func IPv4UDP(src, dst [4]byte, sport, dport uint16, payload []byte) []byte {
	ip := make([]byte, 28+len(payload))
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	copy(ip[12:], src[:])
	copy(ip[16:], dst[:])
	binary.BigEndian.PutUint16(ip[20:], sport)
	binary.BigEndian.PutUint16(ip[22:], dport)
	binary.BigEndian.PutUint16(ip[24:], uint16(8+len(payload)))
	copy(ip[28:], payload)
	binary.BigEndian.PutUint16(ip[10:], checksum(ip[:20]))
	return ip
}

// IPv4TCP builds an IPv4/TCP segment with the given TCP options (padded to
// 4 bytes) and payload, valid IP header checksum.
func IPv4TCP(src, dst [4]byte, opts, payload []byte) []byte {
	for len(opts)%4 != 0 {
		opts = append(opts, 1) // NOP
	}
	thl := 20 + len(opts)
	ip := make([]byte, 20+thl+len(payload))
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	copy(ip[12:], src[:])
	copy(ip[16:], dst[:])
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], 443)
	binary.BigEndian.PutUint16(tcp[2:], 51000)
	tcp[12] = byte(thl/4) << 4
	tcp[13] = 0x18
	copy(tcp[20:], opts)
	copy(tcp[thl:], payload)
	binary.BigEndian.PutUint16(ip[10:], checksum(ip[:20]))
	return ip
}

// IPv6UDP builds an IPv6/UDP packet, optionally behind a hop-by-hop header.
func IPv6UDP(hopByHop bool, payload []byte) []byte {
	ext := 0
	if hopByHop {
		ext = 8
	}
	ip := make([]byte, 40+ext+8+len(payload))
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(ip)-40))
	ip[6], ip[7] = 17, 64
	if hopByHop {
		ip[6] = 0
		ip[40] = 17 // next header; length 0 → 8 bytes
	}
	ip[8], ip[23], ip[24], ip[39] = 0xfd, 1, 0xfd, 2
	u := ip[40+ext:]
	binary.BigEndian.PutUint16(u[0:], 5004)
	binary.BigEndian.PutUint16(u[2:], 5004)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	copy(u[8:], payload)
	return ip
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// IPPackets reads every IP packet of a capture file (their bytes copied).
func IPPackets(t testing.TB, path string) []capture.Packet {
	t.Helper()
	r, err := capture.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []capture.Packet
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if p.IP != nil {
			p.IP = append([]byte(nil), p.IP...)
			out = append(out, p)
		}
	}
}
