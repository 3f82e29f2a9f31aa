package tokenizer

import "net/netip"

// RemapAddresses rewrites, in place, the IPv4 and IPv6 source and destination
// addresses of every packet of a token sequence through mapAddr (one address
// always maps to the same one, so flows stay flows). Packets whose tokens do
// not hold the whole address fields (a stretch cut inside a header, the
// paper layout's cut packets) are left as they are, and nothing but the
// address bytes changes: the checksums are not in the token stream.
//
// Training uses it to show each stretch of a capture under fresh addresses,
// so the model has to predict an address from the packets before it rather
// than from the handful of hosts in the training captures.
func RemapAddresses(toks []uint16, mapAddr func(netip.Addr) netip.Addr) {
	start := -1 // index of the current packet's first byte token
	for i := 0; i <= len(toks); i++ {
		if i < len(toks) && int(toks[i]) < NumByteTokens {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			remapPacket(toks[start:i], mapAddr)
			start = -1
		}
	}
}

// remapPacket rewrites the address fields of one packet's byte tokens.
func remapPacket(b []uint16, mapAddr func(netip.Addr) netip.Addr) {
	if len(b) == 0 {
		return
	}
	var off, n int
	switch b[0] >> 4 {
	case 4:
		off, n = 12, 4
	case 6:
		off, n = 8, 16
	default:
		return
	}
	if len(b) < off+2*n {
		return
	}
	for f := range 2 {
		field := b[off+f*n : off+(f+1)*n]
		var raw [16]byte
		for j, t := range field {
			raw[j] = byte(t)
		}
		var a netip.Addr
		if n == 4 {
			a = netip.AddrFrom4([4]byte(raw[:4]))
		} else {
			a = netip.AddrFrom16(raw)
		}
		out := mapAddr(a).AsSlice()
		if len(out) != n {
			continue // a mapping that changes the family is not applied
		}
		for j, v := range out {
			field[j] = uint16(v)
		}
	}
}
