package tokenizer

import "slices"

// The address table (spec version 3): a trace's IP addresses, most recently
// used first, one list per IP version. Every packet whose kept bytes hold
// both its addresses moves them to the front, source then destination (so
// the destination is rank 0), and the least recently used address leaves
// when the list is full. In the kept bytes of a <flow:new> or <flow:raw>
// packet, an address in the table is the one token <addr:k> (k its rank
// among the packet's IP version) instead of its 4 or 16 byte tokens: a new
// flow of a host already in the trace names the host, as a new TCP
// connection to a known server or from the capturing host does, and does
// not spell it byte by byte.

// addrTable holds a trace's recent addresses per IP version.
type addrTable struct {
	size int       // per version; 0: no table (spec version 2)
	v4   [][4]byte // most recent first
	v6   [][16]byte
}

func (a *addrTable) clone() addrTable {
	return addrTable{size: a.size, v4: slices.Clone(a.v4), v6: slices.Clone(a.v6)}
}

// addrSlots gives where the source and destination addresses of an IP
// packet starting with byte first lie, and their width; ok is false when
// first is neither IPv4 nor IPv6.
func addrSlots(first byte) (src, dst, width int, ok bool) {
	switch first >> 4 {
	case 4:
		return 12, 16, 4, true
	case 6:
		return 8, 24, 16, true
	}
	return 0, 0, 0, false
}

// len is the number of addresses of the version packet p (first byte
// known) has.
func (a *addrTable) len(p []byte) int {
	if len(p) == 0 {
		return 0
	}
	switch p[0] >> 4 {
	case 4:
		return len(a.v4)
	case 6:
		return len(a.v6)
	}
	return 0
}

// at is the address of rank k of the version of p.
func (a *addrTable) at(p []byte, k int) []byte {
	if p[0]>>4 == 4 {
		return a.v4[k][:]
	}
	return a.v6[k][:]
}

// rank is the rank of addr among addresses of p's version; -1 if absent.
func (a *addrTable) rank(p []byte, addr []byte) int {
	for k := range a.len(p) {
		if string(a.at(p, k)) == string(addr) {
			return k
		}
	}
	return -1
}

// record moves the source and destination addresses of packet p to the
// front, when p's kept bytes hold them.
func (a *addrTable) record(p []byte) {
	if a.size == 0 || len(p) == 0 {
		return
	}
	src, dst, w, ok := addrSlots(p[0])
	if !ok || len(p) < dst+w {
		return
	}
	for _, off := range [2]int{src, dst} {
		if w == 4 {
			a.v4 = toFront(a.v4, [4]byte(p[off:off+4]), a.size)
		} else {
			a.v6 = toFront(a.v6, [16]byte(p[off:off+16]), a.size)
		}
	}
}

// toFront moves x to the front of the most-recently-used list l of at most
// size entries.
func toFront[T comparable](l []T, x T, size int) []T {
	i := slices.Index(l, x)
	switch {
	case i < 0 && len(l) < size:
		l = append(l, x)
		i = len(l) - 1
	case i < 0:
		i = len(l) - 1
	}
	copy(l[1:i+1], l[:i])
	l[0] = x
	return l
}

// addrSlotAt reports whether the next byte of the packet p (kept bytes so
// far) starts one of its addresses, and the address width.
func addrSlotAt(p []byte) (width int, ok bool) {
	if len(p) == 0 {
		return 0, false
	}
	src, dst, w, ok := addrSlots(p[0])
	return w, ok && (len(p) == src || len(p) == dst)
}

// appendPacketBytes appends the kept bytes of a new or raw packet p, an
// address of the table as its <addr:k>.
func (s *Spec) appendPacketBytes(a *addrTable, p []byte, toks []uint16) []uint16 {
	for i := 0; i < len(p); {
		if w, ok := addrSlotAt(p[:i]); ok && i+w <= len(p) {
			if k := a.rank(p, p[i:i+w]); k >= 0 {
				toks = append(toks, uint16(s.tokAddr(k)))
				i += w
				continue
			}
		}
		toks = append(toks, uint16(p[i]))
		i++
	}
	return toks
}
