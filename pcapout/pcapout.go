// Package pcapout owns writing packets back into pcap files: the file side of
// detokenizing, used by `netssm-cli detokenize` and by generation. Packets
// arrive as bytes from the IP header on; they are checked, repaired where the
// repair is unambiguous (IPv4 header checksum, an IP length field shorter
// than the bytes present), counted and reported when they cannot be, and
// written as LINKTYPE_RAW records (or behind a synthetic Ethernet header on
// request). The file appears only when complete (internal/atomicfile).
//
// It must not know about tokens or datasets.
package pcapout

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/netssm/netssm/internal/atomicfile"
)

// Link is the link type of the written file.
type Link string

// Link types pcapout writes.
const (
	LinkRaw      Link = "raw"       // LINKTYPE_RAW (101): records start at the IP header
	LinkEthernet Link = "ethernet"  // LINKTYPE_ETHERNET: a synthetic 14-byte header per packet (or the packet's own, WriteFrame)
	LinkLinuxSLL Link = "linux-sll" // LINKTYPE_LINUX_SLL: each packet's own 16-byte header (WriteFrame)
)

// SnapLen is the snap length written in the file header.
const SnapLen = 262144

// Repairs says what Check changed in one packet.
type Repairs struct {
	Checksum bool // IPv4 header checksum was wrong (not zero) and was recomputed
	Length   bool // IP length field was shorter than the bytes present and was raised
}

// ErrInvalid marks a packet that cannot be written as IP (no unambiguous repair).
var ErrInvalid = errors.New("invalid IP packet")

// Check validates an IP packet in place, repairs what is unambiguous, and
// returns its original length (from the IP length field). Errors wrap
// ErrInvalid.
func Check(ip []byte) (origLen int, rep Repairs, err error) {
	if len(ip) == 0 {
		return 0, rep, fmt.Errorf("%w: empty", ErrInvalid)
	}
	switch v := ip[0] >> 4; v {
	case 4:
		ihl := int(ip[0]&0x0f) * 4
		if ihl < 20 {
			return 0, rep, fmt.Errorf("%w: IPv4 header length %d < 20", ErrInvalid, ihl)
		}
		if len(ip) < ihl {
			return 0, rep, fmt.Errorf("%w: IPv4 header of %d bytes, only %d present", ErrInvalid, ihl, len(ip))
		}
		total := int(binary.BigEndian.Uint16(ip[2:4]))
		if total < len(ip) {
			binary.BigEndian.PutUint16(ip[2:4], uint16(len(ip)))
			total = len(ip)
			rep.Length = true
		}
		old := binary.BigEndian.Uint16(ip[10:12])
		ip[10], ip[11] = 0, 0
		sum := IPv4Checksum(ip[:ihl])
		binary.BigEndian.PutUint16(ip[10:12], sum)
		rep.Checksum = sum != old && old != 0 // zero: left out by the tokenizer (spec checksums=zero), not wrong
		return total, rep, nil
	case 6:
		if len(ip) < 40 {
			return 0, rep, fmt.Errorf("%w: IPv6 header needs 40 bytes, only %d present", ErrInvalid, len(ip))
		}
		total := 40 + int(binary.BigEndian.Uint16(ip[4:6]))
		if total < len(ip) {
			if len(ip)-40 > 0xffff {
				return 0, rep, fmt.Errorf("%w: IPv6 packet of %d bytes without jumbogram", ErrInvalid, len(ip))
			}
			binary.BigEndian.PutUint16(ip[4:6], uint16(len(ip)-40))
			total = len(ip)
			rep.Length = true
		}
		return total, rep, nil
	default:
		return 0, rep, fmt.Errorf("%w: IP version %d", ErrInvalid, v)
	}
}

// IPv4Checksum is the Internet checksum of an IPv4 header (checksum field
// included as it stands: zero it first to compute a new one).
func IPv4Checksum(hdr []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(hdr); i += 2 {
		sum += uint32(hdr[i])<<8 | uint32(hdr[i+1])
	}
	if len(hdr)%2 == 1 {
		sum += uint32(hdr[len(hdr)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// Stats counts what a Writer did.
type Stats struct {
	Written        int // records written
	ChecksumFixed  int // IPv4 header checksums recomputed because they were wrong
	LengthRepaired int // IP length fields raised to the bytes present
	Invalid        int // packets that could not be written as IP (not written unless KeepInvalid)
}

// Options configure a Writer.
type Options struct {
	Link        Link // default LinkRaw
	KeepInvalid bool // write invalid packets too (caplen = wire length = bytes present)
}

// Writer writes one pcap file (or stream).
type Writer struct {
	path  string
	f     *atomicfile.File // nil for NewWriter
	w     *pcapgo.Writer
	opt   Options
	buf   []byte
	stats Stats
}

var ethHeader = [12]byte{0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01}

// Create starts writing path (nanosecond timestamps). Nothing appears at path
// until Commit.
func Create(path string, opt Options) (*Writer, error) {
	switch opt.Link {
	case "", LinkRaw, LinkEthernet, LinkLinuxSLL:
	default:
		return nil, fmt.Errorf("pcap link type %q: want raw, ethernet or linux-sll", opt.Link)
	}
	f, err := atomicfile.Create(path)
	if err != nil {
		return nil, err
	}
	w, err := NewWriter(f, path, opt)
	if err != nil {
		f.Abort()
		return nil, err
	}
	w.f = f
	return w, nil
}

// NewWriter writes a pcap stream to dst (name is used in errors); Commit and
// Abort do nothing for it.
func NewWriter(dst io.Writer, name string, opt Options) (*Writer, error) {
	if opt.Link == "" {
		opt.Link = LinkRaw
	}
	lt := layers.LinkTypeRaw
	switch opt.Link {
	case LinkRaw:
	case LinkEthernet:
		lt = layers.LinkTypeEthernet
	case LinkLinuxSLL:
		lt = layers.LinkTypeLinuxSLL
	default:
		return nil, fmt.Errorf("pcap link type %q: want raw, ethernet or linux-sll", opt.Link)
	}
	w := pcapgo.NewWriterNanos(dst)
	if err := w.WriteFileHeader(SnapLen, lt); err != nil {
		return nil, fmt.Errorf("writing pcap header of %s: %w", name, err)
	}
	return &Writer{path: name, w: w, opt: opt}, nil
}

// WritePacket checks and repairs ip (in place) and writes it with timestamp
// ts. An invalid packet is counted and returned as an error wrapping
// ErrInvalid (and written only with KeepInvalid); other errors are I/O.
func (w *Writer) WritePacket(ts time.Time, ip []byte) (Repairs, error) {
	return w.write(ts, nil, ip)
}

// WriteFrame is WritePacket for a packet that comes with its own link-layer
// header (a netssm-layout row's): the header is written as given, in a file
// of its link type, and the IP part is checked and repaired. An empty link
// is WritePacket.
func (w *Writer) WriteFrame(ts time.Time, link, ip []byte) (Repairs, error) {
	if len(link) > 0 && w.opt.Link == LinkRaw {
		return Repairs{}, fmt.Errorf("%s: a packet with a %d-byte link header cannot go in a raw-IP pcap", w.path, len(link))
	}
	if len(link) == 0 && w.opt.Link == LinkLinuxSLL {
		return Repairs{}, fmt.Errorf("%s: a packet without its Linux cooked header", w.path)
	}
	return w.write(ts, link, ip)
}

// write checks ip and writes it behind link (nil: none, or the synthetic
// Ethernet header).
func (w *Writer) write(ts time.Time, link, ip []byte) (Repairs, error) {
	orig, rep, cerr := Check(ip)
	if rep.Checksum {
		w.stats.ChecksumFixed++
	}
	if rep.Length {
		w.stats.LengthRepaired++
	}
	if cerr != nil {
		w.stats.Invalid++
		if !w.opt.KeepInvalid {
			return rep, cerr
		}
		orig = len(ip)
	}
	if len(ip) > SnapLen {
		return rep, fmt.Errorf("%w: %d bytes exceed the snap length %d", ErrInvalid, len(ip), SnapLen)
	}
	data := ip
	switch {
	case len(link) > 0:
		w.buf = append(append(w.buf[:0], link...), ip...)
		data = w.buf
		orig += len(link)
	case w.opt.Link == LinkEthernet:
		w.buf = append(w.buf[:0], ethHeader[:]...)
		et := uint16(0x0800)
		if len(ip) > 0 && ip[0]>>4 == 6 {
			et = 0x86dd
		}
		w.buf = binary.BigEndian.AppendUint16(w.buf, et)
		w.buf = append(w.buf, ip...)
		data = w.buf
		orig += 14
	}
	if ts.IsZero() { // pcapgo would write the current time for a zero timestamp
		ts = time.Unix(0, 0)
	}
	ci := gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(data), Length: orig}
	if err := w.w.WritePacket(ci, data); err != nil {
		return rep, fmt.Errorf("writing %s record %d: %w", w.path, w.stats.Written, err)
	}
	w.stats.Written++
	return rep, cerr
}

// Stats returns the counters so far.
func (w *Writer) Stats() Stats { return w.stats }

// Commit finishes the file and moves it into place.
func (w *Writer) Commit() error {
	if w.f == nil {
		return nil
	}
	return w.f.Commit()
}

// Abort discards the file; safe after Commit.
func (w *Writer) Abort() {
	if w.f != nil {
		w.f.Abort()
	}
}
