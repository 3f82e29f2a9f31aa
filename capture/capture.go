// Package capture owns reading packet captures: pcap and pcapng files (several
// interfaces per pcapng file) through gopacket's pcapgo, with the link layer
// (Ethernet with VLAN tags, Linux cooked v1 and v2, raw IP, BSD loopback)
// stripped so that callers see bytes from the IP header on. It streams: one
// record in memory at a time, whatever the file's size.
//
// It must not know about tokens, datasets or output files; bad input becomes
// an error (or a counted warning) that names the file and the packet index,
// never a panic.
package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// Link types by their full LINKTYPE_ number. gopacket's layers.LinkType is
// one byte wide, so numbers above 255 (Linux cooked v2 is 276) cannot be
// expressed in it; Packet.LinkTypeID carries the full number.
const (
	LinkTypeNull      uint16 = 0   // BSD loopback, host-order address family
	LinkTypeEthernet  uint16 = 1   // Ethernet II, 802.1Q/802.1ad tags allowed
	LinkTypeRawOld    uint16 = 12  // raw IP on some BSDs
	LinkTypeRawOld2   uint16 = 14  // raw IP on some BSDs
	LinkTypeRaw       uint16 = 101 // raw IPv4/IPv6
	LinkTypeLoop      uint16 = 108 // OpenBSD loopback, network-order address family
	LinkTypeLinuxSLL  uint16 = 113 // Linux cooked v1
	LinkTypeIPv4      uint16 = 228
	LinkTypeIPv6      uint16 = 229
	LinkTypeLinuxSLL2 uint16 = 276 // Linux cooked v2
)

// maxSnapLen bounds a record's captured length (tcpdump's MAXIMUM_SNAPLEN);
// a header asking for more is treated as corrupt rather than allocated.
const maxSnapLen = 262144

// Format is a capture file format.
type Format string

// The formats Open recognises by their magic number.
const (
	FormatPcap   Format = "pcap"
	FormatPcapNG Format = "pcapng"
)

// Packet is one captured record, link layer stripped.
type Packet struct {
	Index     int // 0-based record index in the file
	Timestamp time.Time
	WireLen   int             // original length from the record header (never caplen), link layer included
	LinkType  layers.LinkType // gopacket's one-byte link type (see LinkTypeID for numbers above 255)
	IP        []byte          // captured bytes from the IP header on; nil when the packet is not IPv4/IPv6. Valid until the next Next().

	LinkTypeID uint16 // full LINKTYPE_ number of the record's interface
	LinkHdrLen int    // bytes of link-layer header stripped (0 when IP is nil)
	LinkHdr    []byte // those bytes, as captured (nil when IP is nil). Valid until the next Next().
	CapLen     int    // captured length of the record, link layer included
	Interface  int    // pcapng interface index (0 for pcap)
}

// IPWireLen is the packet's original length from the IP header on: the
// record's wire length less the stripped link-layer header. It can exceed the
// IP length field when the link layer padded the frame (Ethernet minimum size).
func (p Packet) IPWireLen() int {
	if p.IP == nil {
		return 0
	}
	return p.WireLen - p.LinkHdrLen
}

// Stats counts what a Reader has seen so far.
type Stats struct {
	Records       int // records read
	IP            int // records with an IPv4/IPv6 packet
	NonIP         int // records skipped as not IP (ARP, LLDP, …): counted, IP nil
	UnknownLink   int // records whose link type is not understood: counted, IP nil
	ShortLinkHdr  int // records too short for their link-layer header
	CapLenClipped int // records whose captured length is below the wire length
}

// Reader reads one capture file record by record.
type Reader struct {
	path    string
	f       *os.File
	format  Format
	pcap    *pcapgo.Reader
	ng      *pcapgo.NgReader
	link    uint16 // pcap: the file's link type
	next    int
	err     error // sticky: a corrupt stream cannot be resynchronised
	stats   Stats
	snapLen uint32
}

// Open opens a pcap or pcapng file, detected by its magic number.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening capture: %w", err)
	}
	r, err := newReader(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.f = f
	return r, nil
}

// NewReader reads a capture from src; name is used in error messages.
func NewReader(name string, src io.Reader) (*Reader, error) {
	return newReader(name, src)
}

func newReader(name string, src io.Reader) (r *Reader, err error) {
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("%s: corrupt capture header: %v", name, p)
		}
	}()
	br := bufio.NewReaderSize(src, 1<<16)
	magic, err := br.Peek(4)
	if len(magic) == 0 {
		return nil, fmt.Errorf("%s: empty file, not a capture", name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: too short to be a capture (%d bytes)", name, len(magic))
	}
	r = &Reader{path: name}
	switch {
	case binary.BigEndian.Uint32(magic) == 0x0a0d0d0a:
		r.format = FormatPcapNG
		r.ng, err = pcapgo.NewNgReader(newNgGuard(br), pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			return nil, fmt.Errorf("%s: reading pcapng section header: %w", name, err)
		}
	case isPcapMagic(binary.LittleEndian.Uint32(magic)) || isPcapMagic(binary.BigEndian.Uint32(magic)):
		r.format = FormatPcap
		hdr, perr := br.Peek(24)
		if perr != nil {
			return nil, fmt.Errorf("%s: truncated pcap file header (%d of 24 bytes)", name, len(hdr))
		}
		order := binary.ByteOrder(binary.LittleEndian)
		if isPcapMagic(binary.BigEndian.Uint32(magic)) {
			order = binary.BigEndian
		}
		r.link = uint16(order.Uint32(hdr[20:24])) // upper bits hold FCS flags
		r.pcap, err = pcapgo.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: reading pcap file header: %w", name, err)
		}
		r.snapLen = r.pcap.Snaplen()
		if r.snapLen == 0 || r.snapLen > maxSnapLen {
			r.pcap.SetSnaplen(maxSnapLen)
		}
	default:
		return nil, fmt.Errorf("%s: not a pcap or pcapng file (magic %#08x); convert it with editcap", name, binary.BigEndian.Uint32(magic))
	}
	return r, nil
}

func isPcapMagic(m uint32) bool {
	return m == 0xa1b2c3d4 || m == 0xa1b23c4d
}

// Path is the file (or name) being read.
func (r *Reader) Path() string { return r.path }

// Format is the file's format.
func (r *Reader) Format() Format { return r.format }

// Stats returns the counters so far.
func (r *Reader) Stats() Stats { return r.stats }

// Next returns the next record. It returns io.EOF at the end of the file;
// other errors name the file and the packet index, and repeat on later calls.
func (r *Reader) Next() (Packet, error) {
	if r.err != nil {
		return Packet{}, r.err
	}
	data, ci, link, err := r.read()
	if err != nil {
		switch {
		case errors.Is(err, io.EOF):
			r.err = io.EOF
		case errors.Is(err, io.ErrUnexpectedEOF):
			r.err = fmt.Errorf("%s: packet %d: file truncated inside the record: %w", r.path, r.next, err)
		default:
			r.err = fmt.Errorf("%s: packet %d: %w", r.path, r.next, err)
		}
		return Packet{}, r.err
	}
	p := Packet{
		Index:      r.next,
		Timestamp:  ci.Timestamp,
		WireLen:    ci.Length,
		CapLen:     ci.CaptureLength,
		LinkTypeID: link,
		LinkType:   layers.LinkType(link),
		Interface:  ci.InterfaceIndex,
	}
	r.next++
	r.stats.Records++
	if ci.CaptureLength < ci.Length {
		r.stats.CapLenClipped++
	}
	ip, hdr, res := StripLink(link, data)
	switch res {
	case LinkOK:
		p.IP, p.LinkHdrLen, p.LinkHdr = ip, hdr, data[:hdr:hdr]
		r.stats.IP++
	case LinkNotIP:
		r.stats.NonIP++
	case LinkUnknown:
		r.stats.UnknownLink++
	case LinkShort:
		r.stats.ShortLinkHdr++
	}
	return p, nil
}

// read fetches one record; pcapgo panics on some corrupt inputs, which are
// turned into errors here.
func (r *Reader) read() (data []byte, ci gopacket.CaptureInfo, link uint16, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("corrupt record: %v", p)
		}
	}()
	if r.pcap != nil {
		data, ci, err = r.pcap.ZeroCopyReadPacketData()
		if err == nil && r.snapLen != 0 && r.snapLen < maxSnapLen && ci.CaptureLength > int(r.snapLen) {
			err = fmt.Errorf("captured length %d exceeds the file's snap length %d", ci.CaptureLength, r.snapLen)
		}
		return data, ci, r.link, err
	}
	data, ci, err = r.ng.ZeroCopyReadPacketData()
	if err != nil {
		return nil, ci, 0, err
	}
	if ci.CaptureLength > ci.Length && ci.Length > 0 {
		return nil, ci, 0, fmt.Errorf("captured length %d exceeds original length %d", ci.CaptureLength, ci.Length)
	}
	if len(ci.AncillaryData) > 0 {
		if lt, ok := ci.AncillaryData[0].(layers.LinkType); ok {
			link = uint16(lt)
		}
	}
	// pcapgo reads the interface's 16-bit link type into one byte: 276 (Linux
	// cooked v2) arrives as 20, a number no link type uses.
	if link == LinkTypeLinuxSLL2&0xff {
		link = LinkTypeLinuxSLL2
	}
	return data, ci, link, nil
}

// Close closes the file.
func (r *Reader) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// LinkResult says what StripLink found.
type LinkResult int

// StripLink outcomes.
const (
	LinkOK      LinkResult = iota // an IPv4/IPv6 packet
	LinkNotIP                     // a frame of another protocol
	LinkUnknown                   // a link type this package does not understand
	LinkShort                     // shorter than its link-layer header
)

// StripLink removes the link-layer header of a frame of the given LINKTYPE_
// and returns the bytes from the IP header on and the header's length.
func StripLink(link uint16, frame []byte) (ip []byte, hdrLen int, res LinkResult) {
	var ethertype uint16
	switch link {
	case LinkTypeEthernet:
		if len(frame) < 14 {
			return nil, 0, LinkShort
		}
		hdrLen = 14
		ethertype = binary.BigEndian.Uint16(frame[12:14])
		for ethertype == 0x8100 || ethertype == 0x88a8 || ethertype == 0x9100 {
			if len(frame) < hdrLen+4 {
				return nil, 0, LinkShort
			}
			ethertype = binary.BigEndian.Uint16(frame[hdrLen+2 : hdrLen+4])
			hdrLen += 4
		}
	case LinkTypeLinuxSLL:
		if len(frame) < 16 {
			return nil, 0, LinkShort
		}
		hdrLen, ethertype = 16, binary.BigEndian.Uint16(frame[14:16])
	case LinkTypeLinuxSLL2:
		if len(frame) < 20 {
			return nil, 0, LinkShort
		}
		hdrLen, ethertype = 20, binary.BigEndian.Uint16(frame[0:2])
	case LinkTypeRaw, LinkTypeRawOld, LinkTypeRawOld2, LinkTypeIPv4, LinkTypeIPv6:
		if len(frame) < 1 {
			return nil, 0, LinkShort
		}
		switch frame[0] >> 4 {
		case 4, 6:
			return frame, 0, LinkOK
		}
		return nil, 0, LinkNotIP
	case LinkTypeNull, LinkTypeLoop:
		if len(frame) < 4 {
			return nil, 0, LinkShort
		}
		fam := binary.LittleEndian.Uint32(frame[:4])
		if link == LinkTypeLoop || fam > 0xffff {
			fam = binary.BigEndian.Uint32(frame[:4])
		}
		switch fam {
		case 2:
			ethertype = 0x0800
		case 10, 24, 28, 30:
			ethertype = 0x86dd
		}
		hdrLen = 4
	default:
		return nil, 0, LinkUnknown
	}
	if ethertype != 0x0800 && ethertype != 0x86dd {
		return nil, 0, LinkNotIP
	}
	if len(frame) <= hdrLen {
		return nil, 0, LinkShort
	}
	ip = frame[hdrLen:]
	if v := ip[0] >> 4; (v != 4 || ethertype != 0x0800) && (v != 6 || ethertype != 0x86dd) {
		return nil, 0, LinkNotIP
	}
	return ip, hdrLen, LinkOK
}
