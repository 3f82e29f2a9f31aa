package tokenizer

import "encoding/binary"

// IP protocol numbers the kept-byte rule knows.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// PacketLayout describes where a packet's headers end, as far as the bytes
// given reveal it.
type PacketLayout struct {
	Version   int // 4 or 6 (0: not IP)
	IPHdrLen  int // IPv4 header with options, or IPv6 header with extension headers
	Proto     int // upper-layer protocol (-1 for a non-first fragment)
	L4HdrLen  int // TCP with options, UDP 8, ICMP/ICMPv6 8, others 0
	Payload   int // payload bytes kept after the L4 header
	Keep      int // IPHdrLen + L4HdrLen + Payload: the bytes a token stream holds
	Complete  bool
	Malformed bool // a header field is impossible (IHL < 5, TCP data offset < 5)
}

// Keep works out which bytes of an IP packet are kept. Complete is false
// when ip ends before the headers do (a truncated capture, or a prefix being
// generated); Keep then is a lower bound.
//
// The rule: the IP header (options and IPv6 extension headers included), the
// L4 header (TCP with options, UDP 8 bytes, ICMP/ICMPv6 8 bytes), then the
// spec's payload bytes for the protocol, never more than the IP length field
// says the packet carries (when that field is at least the headers' length;
// a zero field, as TCP segmentation offload writes, does not limit).
func (s *Spec) Keep(ip []byte) PacketLayout {
	var l PacketLayout
	if len(ip) < 1 {
		return l
	}
	l.Version = int(ip[0] >> 4)
	ipTotal := -1 // IP length field, as bytes from the IP header on
	switch l.Version {
	case 4:
		l.IPHdrLen = int(ip[0]&0x0f) * 4
		if l.IPHdrLen < 20 {
			l.Malformed = true
			l.IPHdrLen = 20
		}
		if len(ip) < l.IPHdrLen {
			l.Keep = l.IPHdrLen
			return l
		}
		ipTotal = int(binary.BigEndian.Uint16(ip[2:4]))
		l.Proto = int(ip[9])
		if binary.BigEndian.Uint16(ip[6:8])&0x1fff != 0 {
			l.Proto = -1
		}
	case 6:
		l.IPHdrLen = 40
		if len(ip) < 40 {
			l.Keep = 40
			return l
		}
		ipTotal = 40 + int(binary.BigEndian.Uint16(ip[4:6]))
		next := int(ip[6])
	ext:
		for {
			switch next {
			case 0, 43, 60, 135, 139, 140: // hop-by-hop, routing, destination, mobility, HIP, shim6
				if len(ip) < l.IPHdrLen+2 {
					l.Keep = l.IPHdrLen + 2
					return l
				}
				next = int(ip[l.IPHdrLen])
				l.IPHdrLen += (int(ip[l.IPHdrLen+1]) + 1) * 8
			case 44: // fragment
				if len(ip) < l.IPHdrLen+8 {
					l.Keep = l.IPHdrLen + 8
					return l
				}
				off := binary.BigEndian.Uint16(ip[l.IPHdrLen+2:l.IPHdrLen+4]) >> 3
				next = int(ip[l.IPHdrLen])
				l.IPHdrLen += 8
				if off != 0 {
					next = -1
					break ext
				}
			case 51: // authentication header
				if len(ip) < l.IPHdrLen+2 {
					l.Keep = l.IPHdrLen + 2
					return l
				}
				next = int(ip[l.IPHdrLen])
				l.IPHdrLen += (int(ip[l.IPHdrLen+1]) + 2) * 4
			default:
				break ext
			}
			if len(ip) < l.IPHdrLen {
				l.Keep = l.IPHdrLen
				return l
			}
		}
		l.Proto = next
	default:
		return l
	}
	var pay int
	switch l.Proto {
	case ProtoTCP:
		l.L4HdrLen = 20
		if len(ip) < l.IPHdrLen+13 {
			l.Keep = l.IPHdrLen + 20
			return l
		}
		if doff := int(ip[l.IPHdrLen+12]>>4) * 4; doff >= 20 {
			l.L4HdrLen = doff
		} else {
			l.Malformed = true
		}
		pay = s.Payload.TCP
	case ProtoUDP:
		l.L4HdrLen, pay = 8, s.Payload.UDP
	case ProtoICMP, ProtoICMPv6:
		l.L4HdrLen, pay = 8, s.Payload.ICMP
	default:
		pay = s.Payload.Other
	}
	hdrs := l.IPHdrLen + l.L4HdrLen
	if ipTotal >= hdrs && ipTotal-hdrs < pay {
		pay = ipTotal - hdrs
	}
	l.Payload = pay
	l.Keep = hdrs + pay
	l.Complete = true
	return l
}

// checksumOffsets gives where a packet of layout l holds its IPv4 header
// checksum and its L4 checksum (-1: none).
func checksumOffsets(l PacketLayout) (ip, l4 int) {
	ip, l4 = -1, -1
	if l.Version == 4 {
		ip = 10
	}
	if off := l4ChecksumOffset(l.Proto); off >= 0 && l.IPHdrLen > 0 && (l.Version == 4 || l.Version == 6) {
		l4 = l.IPHdrLen + off
	}
	return ip, l4
}

// ChecksumAt reports whether byte n of a packet whose first n bytes are p
// (n = len(p)) is a checksum byte: the IPv4 header checksum, or the TCP,
// UDP, ICMP or ICMPv6 checksum of a first fragment.
func (s *Spec) ChecksumAt(p []byte) bool {
	n := len(p)
	if n == 0 {
		return false
	}
	if p[0]>>4 == 4 && (n == 10 || n == 11) {
		return true
	}
	l := s.Keep(p)
	if n < l.IPHdrLen {
		return false
	}
	_, l4 := checksumOffsets(l)
	return l4 >= 0 && (n == l4 || n == l4+1)
}

// l4ChecksumOffset is where the checksum sits in the L4 header, -1 for
// protocols without one the tokenizer knows.
func l4ChecksumOffset(proto int) int {
	switch proto {
	case ProtoTCP:
		return 16
	case ProtoUDP:
		return 6
	case ProtoICMP, ProtoICMPv6:
		return 2
	}
	return -1
}

// ZeroChecksums reports whether the spec writes checksums as zero.
func (s *Spec) ZeroChecksums() bool { return s.Checksums == ChecksumsZero }

// KeptBytes returns (a copy of) what a trace holds of the IP packet ip: its
// kept bytes (Keep, as far as captured), with the checksums zeroed when the
// spec says so. Decoding a packet's tokens gives exactly these bytes.
func (s *Spec) KeptBytes(ip []byte) []byte {
	l := s.Keep(ip)
	out := append([]byte(nil), ip[:min(l.Keep, len(ip))]...)
	if s.Layout == LayoutPaper && len(out) > s.PaperPacketLen {
		out = out[:s.PaperPacketLen]
	}
	if s.ZeroChecksums() {
		zeroPairs(out, l, func(i int) { out[i] = 0 })
	}
	return out
}

// zeroPairs calls zero for each checksum byte of a packet of layout l that
// lies inside its first len(kept) bytes.
func zeroPairs(kept []byte, l PacketLayout, zero func(int)) {
	ip, l4 := checksumOffsets(l)
	for _, at := range []int{ip, l4} {
		for i := at; i >= 0 && i <= at+1 && i < len(kept); i++ {
			zero(i)
		}
	}
}
