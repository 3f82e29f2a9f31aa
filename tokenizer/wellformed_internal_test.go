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
