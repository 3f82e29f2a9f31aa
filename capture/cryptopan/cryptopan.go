// Package cryptopan owns prefix-preserving IP address anonymisation with
// Crypto-PAn (Xu, Fan, Ammar, Moon, "Prefix-preserving IP address
// anonymization", ICNP 2002), built on crypto/aes: two addresses that share a
// k-bit prefix map to two addresses that share a k-bit prefix. IPv6 uses the
// same construction over 128 bits.
//
// It also rewrites the addresses inside a packet (IPv4/IPv6 header) and keeps
// the IPv4 header checksum and the TCP/UDP/ICMPv6 checksums consistent. It
// must not know about tokens or files.
package cryptopan

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
)

// Anonymizer maps addresses with one key. Not safe for concurrent use (it
// caches results).
type Anonymizer struct {
	block cipher.Block
	pad   [16]byte
	cache map[netip.Addr]netip.Addr
}

// New makes an Anonymizer from a 32-byte key: the first 16 bytes are the AES
// key, the last 16 are encrypted to make the pad (as in the reference code).
func New(key []byte) (*Anonymizer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("crypto-pan key: %d bytes, want 32", len(key))
	}
	b, err := aes.NewCipher(key[:16])
	if err != nil {
		return nil, fmt.Errorf("crypto-pan key: %w", err)
	}
	a := &Anonymizer{block: b, cache: map[netip.Addr]netip.Addr{}}
	b.Encrypt(a.pad[:], key[16:32])
	return a, nil
}

// FromPassphrase derives the 32-byte key as SHA-256 of a passphrase (what the
// --anonymize flag takes), unless the passphrase is exactly 64 hex digits,
// which are used as the key itself.
func FromPassphrase(pass string) (*Anonymizer, error) {
	if pass == "" {
		return nil, fmt.Errorf("crypto-pan key: empty")
	}
	if len(pass) == 64 {
		if key, err := hex.DecodeString(pass); err == nil {
			return New(key)
		}
	}
	sum := sha256.Sum256([]byte(pass))
	return New(sum[:])
}

// Addr returns the anonymised address (IPv4 or IPv6; zones dropped).
func (a *Anonymizer) Addr(in netip.Addr) netip.Addr {
	if out, ok := a.cache[in]; ok {
		return out
	}
	var out netip.Addr
	if in.Is4() {
		b := in.As4()
		a.anon(b[:])
		out = netip.AddrFrom4(b)
	} else {
		b := in.As16()
		a.anon(b[:])
		out = netip.AddrFrom16(b)
	}
	a.cache[in] = out
	return out
}

// anon rewrites addr (4 or 16 bytes) in place. For each bit position i the
// AES input is the address's first i bits followed by the pad's remaining
// bits; the first output bit is XORed into address bit i.
func (a *Anonymizer) anon(addr []byte) {
	nbits := len(addr) * 8
	var in, out [16]byte
	flip := make([]byte, len(addr))
	for pos := 0; pos < nbits; pos++ {
		in = a.pad
		full := pos / 8
		copy(in[:full], addr[:full])
		if rem := pos % 8; rem != 0 {
			mask := byte(0xff) << (8 - rem)
			in[full] = addr[full]&mask | a.pad[full]&^mask
		}
		a.block.Encrypt(out[:], in[:])
		flip[pos/8] |= (out[0] >> 7) << (7 - pos%8)
	}
	for i := range addr {
		addr[i] ^= flip[i]
	}
}

// Addresses rewrites the source and destination addresses of an IP packet
// in place (bytes from the IP header on) and nothing else: checksums are
// left as they are, for a caller that recomputes them or whose packets carry
// none (generated traffic). It returns false when the packet is no IPv4 or
// IPv6 header long enough to hold its addresses (then it is unchanged).
func (a *Anonymizer) Addresses(ip []byte) bool {
	off, n := addressFields(ip)
	if n == 0 {
		return false
	}
	for f := off; f < off+2*n; f += n {
		if n == 4 {
			out := a.Addr(netip.AddrFrom4([4]byte(ip[f : f+4]))).As4()
			copy(ip[f:f+4], out[:])
		} else {
			out := a.Addr(netip.AddrFrom16([16]byte(ip[f : f+16]))).As16()
			copy(ip[f:f+16], out[:])
		}
	}
	return true
}

// addressFields gives where an IP packet's source address starts and the
// address length (the destination follows it); n is 0 when ip is no IPv4
// (IHL ≥ 5) or IPv6 header that holds both addresses.
func addressFields(ip []byte) (off, n int) {
	switch {
	case len(ip) >= 20 && ip[0]>>4 == 4 && ip[0]&0x0f >= 5:
		return 12, 4
	case len(ip) >= 40 && ip[0]>>4 == 6:
		return 8, 16
	}
	return 0, 0
}

// Packet rewrites the source and destination addresses of an IP packet in
// place (bytes from the IP header on) and patches the IPv4 header checksum
// and, where the bytes are present, the TCP, UDP and ICMPv6 checksums
// (incrementally, RFC 1624), so valid checksums stay valid. It returns false
// when the packet is too short to hold its addresses (then it is unchanged).
func (a *Anonymizer) Packet(ip []byte) bool {
	off, n := addressFields(ip)
	if n == 0 {
		return false
	}
	old := append([]byte(nil), ip[off:off+2*n]...)
	a.Addresses(ip)
	neu := ip[off : off+2*n]
	var l4off, proto int
	if n == 4 {
		patch(ip[10:12], old, neu)
		l4off, proto = int(ip[0]&0x0f)*4, int(ip[9])
		if binary.BigEndian.Uint16(ip[6:8])&0x1fff != 0 {
			return true // non-first fragment: no L4 header here
		}
	} else {
		l4off, proto = 40, int(ip[6]) // extension headers: L4 checksums left as they are
	}
	var ck int
	switch proto {
	case 6:
		ck = l4off + 16
	case 17:
		ck = l4off + 6
	case 58:
		ck = l4off + 2
	default:
		return true
	}
	if len(ip) >= ck+2 {
		if proto == 17 && n == 4 && ip[ck] == 0 && ip[ck+1] == 0 {
			return true // IPv4 UDP without checksum
		}
		patch(ip[ck:ck+2], old, neu)
	}
	return true
}

// patch updates a ones-complement checksum field for a change of the covered
// 16-bit words old → neu (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')).
func patch(field, old, neu []byte) {
	sum := uint32(^binary.BigEndian.Uint16(field))
	for i := 0; i+1 < len(old); i += 2 {
		sum += uint32(^binary.BigEndian.Uint16(old[i:]))
		sum += uint32(binary.BigEndian.Uint16(neu[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(field, ^uint16(sum))
}
