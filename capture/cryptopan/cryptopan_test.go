package cryptopan

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// The key and address pairs of the Crypto-PAn reference distribution
// (sample_trace_raw.txt / sample_trace_sanitized.txt).
var refKey = []byte{21, 34, 23, 141, 51, 164, 207, 128, 19, 10, 91, 22, 73, 144, 125, 16,
	216, 152, 143, 131, 121, 121, 101, 39, 98, 87, 76, 45, 42, 132, 34, 2}

func TestReferenceVectors(t *testing.T) {
	a, err := New(refKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{
		{"128.11.68.132", "135.242.180.132"},
		{"129.118.74.4", "134.136.186.123"},
		{"130.132.252.244", "133.68.164.234"},
		{"141.223.7.43", "141.167.8.160"},
		{"141.233.145.108", "141.129.237.235"},
		{"156.29.3.236", "147.225.12.42"},
		{"165.247.96.84", "162.9.99.234"},
		{"166.107.77.190", "160.132.178.185"},
		{"192.102.249.13", "252.138.62.131"},
	} {
		got := a.Addr(netip.MustParseAddr(c[0]))
		if got.String() != c[1] {
			t.Errorf("%s → %s, want %s", c[0], got, c[1])
		}
	}
}

func commonPrefix(a, b []byte) int {
	n := 0
	for i := range a {
		x := a[i] ^ b[i]
		if x != 0 {
			return n + bits.LeadingZeros8(x)
		}
		n += 8
	}
	return n
}

func TestPrefixPreserved(t *testing.T) {
	a, _ := New(refKey)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 300; i++ {
		var x, y [16]byte
		for j := range x {
			x[j] = byte(rng.Uint32())
		}
		y = x
		k := rng.IntN(128)
		y[k/8] ^= 0x80 >> (k % 8) // differ first at bit k
		for j := k + 1; j < 128; j++ {
			if rng.IntN(2) == 0 {
				y[j/8] ^= 0x80 >> (j % 8)
			}
		}
		ax, ay := a.Addr(netip.AddrFrom16(x)).As16(), a.Addr(netip.AddrFrom16(y)).As16()
		if got := commonPrefix(ax[:], ay[:]); got != k {
			t.Fatalf("IPv6 addresses sharing %d bits map to addresses sharing %d", k, got)
		}
		x4, y4 := [4]byte(x[:4]), [4]byte(y[:4])
		want := commonPrefix(x4[:], y4[:])
		a4, b4 := a.Addr(netip.AddrFrom4(x4)).As4(), a.Addr(netip.AddrFrom4(y4)).As4()
		if got := commonPrefix(a4[:], b4[:]); got != want {
			t.Fatalf("IPv4 addresses sharing %d bits map to addresses sharing %d", want, got)
		}
	}
}

func TestDifferentKeysDifferentMapping(t *testing.T) {
	a, _ := FromPassphrase("one")
	b, _ := FromPassphrase("two")
	ip := netip.MustParseAddr("10.1.2.3")
	if a.Addr(ip) == b.Addr(ip) {
		t.Fatal("two keys gave the same mapping")
	}
	if a.Addr(ip) == ip {
		t.Fatal("address unchanged")
	}
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// udp4 builds an IPv4/UDP packet with valid IP and UDP checksums.
func udp4(payload []byte) []byte {
	ip := make([]byte, 28+len(payload))
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	copy(ip[12:], []byte{192, 168, 1, 10, 10, 0, 0, 53})
	binary.BigEndian.PutUint16(ip[20:], 5353)
	binary.BigEndian.PutUint16(ip[22:], 53)
	binary.BigEndian.PutUint16(ip[24:], uint16(8+len(payload)))
	copy(ip[28:], payload)
	binary.BigEndian.PutUint16(ip[10:], checksum(ip[:20]))
	binary.BigEndian.PutUint16(ip[26:], udpSum(ip))
	return ip
}

func udpSum(ip []byte) uint16 {
	ps := append([]byte(nil), ip[12:20]...)
	ps = append(ps, 0, 17, ip[24], ip[25])
	seg := append([]byte(nil), ip[20:]...)
	seg[6], seg[7] = 0, 0
	return checksum(append(ps, seg...))
}

func TestPacketChecksumsStayValid(t *testing.T) {
	a, _ := FromPassphrase("k")
	ip := udp4([]byte("hello, world"))
	orig := append([]byte(nil), ip...)
	if !a.Packet(ip) {
		t.Fatal("packet refused")
	}
	if string(ip[12:20]) == string(orig[12:20]) {
		t.Fatal("addresses unchanged")
	}
	if checksum(ip[:20]) != 0 {
		t.Fatal("IPv4 header checksum invalid after rewrite")
	}
	if got, want := binary.BigEndian.Uint16(ip[26:]), udpSum(ip); got != want {
		t.Fatalf("UDP checksum %#04x, want %#04x", got, want)
	}
	if string(ip[28:]) != "hello, world" {
		t.Fatal("payload changed")
	}
}

// TestAddressesChangesOnlyTheAddresses: Addresses writes the Crypto-PAn
// images of both addresses, IPv4 and IPv6, and leaves every other byte
// (checksums included) as it was; a packet too short for its addresses is
// left alone.
func TestAddressesChangesOnlyTheAddresses(t *testing.T) {
	a, _ := FromPassphrase("k")
	v6 := make([]byte, 48)
	v6[0], v6[6] = 0x60, 17
	copy(v6[8:], netip.MustParseAddr("2001:db8::1").AsSlice())
	copy(v6[24:], netip.MustParseAddr("2001:db8:1::53").AsSlice())
	for name, c := range map[string]struct {
		ip      []byte
		off, n  int
		changes bool
	}{
		"ipv4":       {udp4([]byte("hello")), 12, 4, true},
		"ipv6":       {v6, 8, 16, true},
		"ipv4 short": {udp4(nil)[:19], 0, 0, false},
		"ipv6 short": {v6[:39], 0, 0, false},
		"ihl 4":      {append([]byte{0x44}, udp4(nil)[1:]...), 0, 0, false},
	} {
		ip := append([]byte(nil), c.ip...)
		if got := a.Addresses(ip); got != c.changes {
			t.Errorf("%s: Addresses = %v, want %v", name, got, c.changes)
		}
		for i := range ip {
			inAddr := i >= c.off && i < c.off+2*c.n
			if !inAddr && ip[i] != c.ip[i] {
				t.Errorf("%s: byte %d changed", name, i)
			}
		}
		for f := c.off; c.n > 0 && f < c.off+2*c.n; f += c.n {
			in, _ := netip.AddrFromSlice(c.ip[f : f+c.n])
			out, _ := netip.AddrFromSlice(ip[f : f+c.n])
			if out != a.Addr(in) || out == in {
				t.Errorf("%s: %v written as %v, want its image %v", name, in, out, a.Addr(in))
			}
		}
	}
}
