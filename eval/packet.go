package eval

import (
	"encoding/binary"
	"hash/maphash"

	"github.com/netssm/netssm/tokenizer"
)

// IP protocol numbers used here.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

// TCP flag bits (byte 13 of the TCP header).
const (
	flagFIN = tokenizer.TCPFlagFIN
	flagSYN = tokenizer.TCPFlagSYN
	flagRST = tokenizer.TCPFlagRST
	flagPSH = tokenizer.TCPFlagPSH
	flagACK = tokenizer.TCPFlagACK
	flagURG = tokenizer.TCPFlagURG
	flagECE = tokenizer.TCPFlagECE
	flagCWR = tokenizer.TCPFlagCWR
)

// Status bits of a parsed packet: what held when its header was read.
const (
	// stIP: a complete IPv4 or IPv6 header was captured.
	stIP uint16 = 1 << iota
	// stL4: the fixed TCP (20 bytes) or UDP (8 bytes) header followed it.
	stL4
	// stIPv4Checksum: the IPv4 header checksum could be checked (IPv4, header captured).
	stIPv4Checksum
	// stIPv4ChecksumOK: and it was valid.
	stIPv4ChecksumOK
	// stLengthOK: the IP length field agrees with the IP and TCP headers and
	// the record's wire length.
	stLengthOK
	// stTCPFlagsOK: a TCP header whose flag set tokenizer.TCPFlagsValid accepts.
	stTCPFlagsOK
	// stIPv4ChecksumZero: the IPv4 checksum field is 0, as in packets captured
	// on their way out of a host whose NIC computes the checksum (offload).
	stIPv4ChecksumZero
	// stUDP: a UDP header was read; stUDPLengthOK: its length field equals
	// the IP payload length.
	stUDP
	stUDPLengthOK
	// stReservedSet: a reserved bit is set (the IPv4 flags' reserved bit, or
	// one of the three reserved bits of the TCP header's 13th byte).
	stReservedSet
	// stOtherProtocol: a record whose link layer names another network
	// protocol than IP (ARP, LLDP, EAPOL, …): a frame, not a broken packet.
	stOtherProtocol
	// stICMP: a complete ICMP or ICMPv6 header (8 bytes) followed the IP header.
	stICMP
	// stIPLengthOffloaded: an IPv4 total length of 0, taken as the frame's
	// length: a segmentation-offload super-packet captured on its way out
	// (Wireshark reads it the same way).
	stIPLengthOffloaded
)

// hdrVecLen is the length of the fixed header vector used for
// nearest-neighbour distances (privacy): IPv6 (40) + TCP (20) fit, with room.
const hdrVecLen = 64

// PacketFields are the header fields of one captured packet that the
// evaluation reads, parsed once from its bytes (IP header on).
type PacketFields struct {
	TimeNS   int64  // capture timestamp, ns since the Unix epoch
	WireLen  int32  // IP packet length from its header; the record's original length when not IP
	Status   uint16 // st* bits
	Version  uint8  // 4 or 6; 0 when not IP
	Proto    uint8  // transport protocol (after IPv6 extension headers)
	TTL      uint8  // TTL or hop limit
	TCPFlags uint8
	Window   uint16 // TCP window field, unscaled
	SrcPort  uint16
	DstPort  uint16
	Seq, Ack uint32
	// SegLen is the TCP payload length from the IP length field (not the
	// captured bytes), plus one for SYN and for FIN: the sequence space used.
	SegLen   uint32
	Src, Dst [16]byte // addresses; IPv4 in the first four bytes
	// HdrHash hashes the IP and transport headers as captured, checksums zeroed.
	HdrHash uint64
	// HdrVec is the first hdrVecLen bytes of those headers, zero-padded.
	HdrVec [hdrVecLen]byte
}

func (p *PacketFields) has(bit uint16) bool { return p.Status&bit != 0 }

var hashSeed = maphash.MakeSeed()

// parseFields reads the fields of one packet from its bytes from the IP
// header on. ip may be truncated (fewer captured bytes than the IP length
// field says); wireLen is the frame's original length from the IP header on
// (for non-IP records, the record's original length). Nothing is retained
// from ip.
func parseFields(timeNS int64, wireLen int, ip []byte) PacketFields {
	p := PacketFields{TimeNS: timeNS, WireLen: int32(wireLen)}
	if len(ip) == 0 {
		return p
	}
	var (
		ipHdrLen int // bytes of IP header incl. options / extension headers
		ipLen    int // IP packet length from the header
		l4Off    int
		fragment bool // a non-first fragment: no transport header
		lenOK    = true
	)
	switch ip[0] >> 4 {
	case 4:
		if len(ip) < 20 {
			return p
		}
		ihl := int(ip[0]&0x0f) * 4
		if ihl < 20 || ihl > len(ip) {
			return p
		}
		p.Version, p.Status = 4, stIP|stIPv4Checksum
		if ipv4HeaderChecksumOK(ip[:ihl]) {
			p.Status |= stIPv4ChecksumOK
		} else if ip[10] == 0 && ip[11] == 0 {
			p.Status |= stIPv4ChecksumZero
		}
		ipLen = int(binary.BigEndian.Uint16(ip[2:4]))
		if ipLen == 0 && wireLen >= ihl {
			ipLen = wireLen
			p.Status |= stIPLengthOffloaded
		}
		p.TTL, p.Proto = ip[8], ip[9]
		copy(p.Src[:4], ip[12:16])
		copy(p.Dst[:4], ip[16:20])
		fragment = binary.BigEndian.Uint16(ip[6:8])&0x1fff != 0
		if ip[6]&0x80 != 0 {
			p.Status |= stReservedSet
		}
		ipHdrLen, l4Off = ihl, ihl
		if ipLen < ihl {
			lenOK = false
		}
	case 6:
		if len(ip) < 40 {
			return p
		}
		p.Version, p.Status = 6, stIP
		ipLen = 40 + int(binary.BigEndian.Uint16(ip[4:6]))
		p.TTL = ip[7]
		copy(p.Src[:], ip[8:24])
		copy(p.Dst[:], ip[24:40])
		next, off := ip[6], 40
	walk:
		for {
			switch next {
			case 0, 43, 60: // hop-by-hop, routing, destination options
				if off+8 > len(ip) {
					break walk
				}
				next, off = ip[off], off+(int(ip[off+1])+1)*8
			case 44: // fragment
				if off+8 > len(ip) {
					break walk
				}
				fragment = binary.BigEndian.Uint16(ip[off+2:off+4])&0xfff8 != 0
				next, off = ip[off], off+8
			case 51: // authentication header
				if off+8 > len(ip) {
					break walk
				}
				next, off = ip[off], off+(int(ip[off+1])+2)*4
			default:
				break walk
			}
		}
		p.Proto, ipHdrLen, l4Off = next, off, off
		if ipLen == 40 && next != 59 && len(ip) > 40 {
			lenOK = false // payload length 0 with a payload: jumbogram or corruption
		}
	default:
		return p
	}
	p.WireLen = int32(ipLen)
	if ipLen > wireLen {
		lenOK = false // the IP packet cannot be longer than the frame that carried it
	}
	l4HdrLen := 0
	if !fragment && l4Off <= len(ip) {
		b := ip[l4Off:]
		switch p.Proto {
		case protoTCP:
			if len(b) >= 20 {
				p.Status |= stL4
				p.SrcPort = binary.BigEndian.Uint16(b[0:2])
				p.DstPort = binary.BigEndian.Uint16(b[2:4])
				p.Seq = binary.BigEndian.Uint32(b[4:8])
				p.Ack = binary.BigEndian.Uint32(b[8:12])
				doff := int(b[12]>>4) * 4
				p.TCPFlags = b[13]
				p.Window = binary.BigEndian.Uint16(b[14:16])
				if tokenizer.TCPFlagsValid(p.TCPFlags) {
					p.Status |= stTCPFlagsOK
				}
				if b[12]&0x0e != 0 {
					p.Status |= stReservedSet
				}
				l4HdrLen = doff
				payload := ipLen - l4Off - doff
				if doff < 20 || payload < 0 {
					lenOK = false
					payload = 0
				}
				p.SegLen = uint32(payload)
				if p.TCPFlags&flagSYN != 0 {
					p.SegLen++
				}
				if p.TCPFlags&flagFIN != 0 {
					p.SegLen++
				}
			}
		case protoUDP:
			if len(b) >= 8 {
				p.Status |= stL4
				p.SrcPort = binary.BigEndian.Uint16(b[0:2])
				p.DstPort = binary.BigEndian.Uint16(b[2:4])
				l4HdrLen = 8
				p.Status |= stUDP
				if int(binary.BigEndian.Uint16(b[4:6])) == ipLen-l4Off {
					p.Status |= stUDPLengthOK
				}
			}
		case protoICMP, protoICMPv6:
			if len(b) >= 8 {
				l4HdrLen = 8
				p.Status |= stICMP
			}
		}
	}
	if lenOK {
		p.Status |= stLengthOK
	}
	p.hashHeader(ip, ipHdrLen, l4Off, l4HdrLen)
	return p
}

// hashHeader fills HdrHash and HdrVec from the captured IP and transport
// headers with their checksum fields zeroed.
func (p *PacketFields) hashHeader(ip []byte, ipHdrLen, l4Off, l4HdrLen int) {
	var buf [120]byte // IPv4 ≤ 60 + TCP ≤ 60; longer IPv6 chains are cut
	n := copy(buf[:], ip[:min(len(ip), ipHdrLen+l4HdrLen)])
	if p.Version == 4 && n >= 12 {
		buf[10], buf[11] = 0, 0
	}
	switch {
	case p.Proto == protoTCP && l4HdrLen >= 18 && l4Off+18 <= n:
		buf[l4Off+16], buf[l4Off+17] = 0, 0
	case p.Proto == protoUDP && l4HdrLen == 8 && l4Off+8 <= n:
		buf[l4Off+6], buf[l4Off+7] = 0, 0
	case (p.Proto == protoICMP || p.Proto == protoICMPv6) && l4HdrLen == 8 && l4Off+4 <= n:
		buf[l4Off+2], buf[l4Off+3] = 0, 0
	}
	p.HdrHash = maphash.Bytes(hashSeed, buf[:n])
	copy(p.HdrVec[:], buf[:min(n, hdrVecLen)])
}

// ipv4HeaderChecksumOK reports whether the one's-complement sum over the
// header (checksum field included) is 0xffff (RFC 791, RFC 1071).
func ipv4HeaderChecksumOK(h []byte) bool {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return sum == 0xffff
}
