package tokenizer

import "testing"

// byteRange sets whole words of bits at once: it holds exactly the bytes
// in [lo, hi], for bounds inside, at and outside 0…255.
func TestByteRangeHoldsExactlyItsBounds(t *testing.T) {
	for lo := -3; lo < 260; lo++ {
		for hi := lo - 2; hi < 260; hi++ {
			r := byteRange(lo, hi)
			for b := range 256 {
				if r.allows(b) != (b >= lo && b <= hi) {
					t.Fatalf("byteRange(%d, %d) allows %d: %v", lo, hi, b, r.allows(b))
				}
			}
		}
	}
}

// A flow shape's static bits are the header bytes no field covers.
func TestFlowShapeStaticBytesAreThoseOfNoField(t *testing.T) {
	for _, v4 := range []bool{true, false} {
		for _, proto := range []int{ProtoTCP, ProtoUDP} {
			for _, sums := range []bool{true, false} {
				sh := newFlowShape(v4, proto, sums)
				for k := range sh.fixed {
					inField := false
					for _, f := range sh.fields {
						inField = inField || (k >= f.off && k < f.off+f.width)
					}
					if staticByte(&sh, k) == inField {
						t.Errorf("v4 %v proto %d sums %v: byte %d static %v, in a field %v", v4, proto, sums, k, staticByte(&sh, k), inField)
					}
				}
			}
		}
	}
}

// The address table is most recently used first, destination before source,
// one list per IP version, bounded: an address pushed out is unknown again.
func TestAddressTableIsBoundedMostRecentFirstPerVersion(t *testing.T) {
	a := addrTable{size: 3}
	v4 := func(src, dst byte) []byte {
		p := make([]byte, 20)
		p[0], p[12], p[16] = 0x45, src, dst
		return p
	}
	v6 := make([]byte, 40)
	v6[0], v6[8], v6[24] = 0x60, 7, 8
	a.record(v4(1, 2))
	a.record(v6)
	a.record(v4(3, 2))
	addr := func(b byte) []byte { return []byte{b, 0, 0, 0} }
	for want, b := range []byte{2, 3, 1} {
		if got := a.rank(v4(0, 0), addr(b)); got != want {
			t.Errorf("address %d: rank %d, want %d", b, got, want)
		}
	}
	if a.len(v6) != 2 || a.rank(v6, v6[24:40]) != 0 || a.rank(v6, v6[8:24]) != 1 {
		t.Errorf("IPv6 list %x, want the destination then the source", a.v6)
	}
	a.record(v4(4, 2))
	if a.rank(v4(0, 0), addr(1)) >= 0 || a.len(v4(0, 0)) != 3 {
		t.Errorf("after a fourth host the oldest stays: %x", a.v4)
	}
	if a.record(v4(1, 2)[:16]); a.rank(v4(0, 0), addr(1)) >= 0 {
		t.Errorf("a packet cut before its destination address was recorded: %x", a.v4)
	}
}
