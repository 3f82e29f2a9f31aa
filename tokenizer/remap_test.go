package tokenizer

import (
	"net/netip"
	"slices"
	"testing"
)

// TestRemapAddressesRewritesOnlyAddressFields: IPv4 and IPv6 source and
// destination fields are mapped, consistently across packets; every other
// token, and a packet too short to hold both addresses, is left alone.
func TestRemapAddressesRewritesOnlyAddressFields(t *testing.T) {
	v4 := []byte{0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 192, 168, 1, 7, 0x13, 0x88, 0x01, 0xbb, 0, 8, 0, 0}
	v6 := make([]byte, 48)
	v6[0], v6[6], v6[7] = 0x60, 17, 64
	copy(v6[8:24], netip.MustParseAddr("2001:db8::1").AsSlice())
	copy(v6[24:40], netip.MustParseAddr("fe80::2").AsSlice())
	short := v4[:18] // ends inside the destination address
	label := uint16(DefaultSpec().FirstLabelID)
	toks := []uint16{label}
	want := []uint16{label}
	add := func(b []byte, mapped map[int]byte) {
		toks = append(toks, TokPkt, TokDt0+1)
		want = append(want, TokPkt, TokDt0+1)
		for i, v := range b {
			toks = append(toks, uint16(v))
			if m, ok := mapped[i]; ok {
				v = m
			}
			want = append(want, uint16(v))
		}
	}
	mapping := map[netip.Addr]netip.Addr{
		netip.MustParseAddr("10.0.0.1"):    netip.MustParseAddr("44.1.2.3"),
		netip.MustParseAddr("192.168.1.7"): netip.MustParseAddr("44.9.9.9"),
		netip.MustParseAddr("2001:db8::1"): netip.MustParseAddr("2a00::5"),
		netip.MustParseAddr("fe80::2"):     netip.MustParseAddr("2a00::6"),
	}
	v4mapped := map[int]byte{12: 44, 13: 1, 14: 2, 15: 3, 16: 44, 17: 9, 18: 9, 19: 9}
	v6mapped := map[int]byte{}
	for i, v := range netip.MustParseAddr("2a00::5").AsSlice() {
		v6mapped[8+i] = v
	}
	for i, v := range netip.MustParseAddr("2a00::6").AsSlice() {
		v6mapped[24+i] = v
	}
	add(v4, v4mapped)
	add(v6, v6mapped)
	add(short, nil)
	add(v4, v4mapped)
	toks = append(toks, TokPad, TokEOS)
	want = append(want, TokPad, TokEOS)
	calls := 0
	RemapAddresses(toks, func(a netip.Addr) netip.Addr {
		calls++
		m, ok := mapping[a]
		if !ok {
			t.Fatalf("asked to map %v, not an address of the packets", a)
		}
		return m
	})
	if !slices.Equal(toks, want) {
		t.Fatalf("re-mapped tokens\n got %v\nwant %v", toks, want)
	}
	if calls != 6 {
		t.Errorf("%d address look-ups, want 6 (two per complete packet)", calls)
	}
}
