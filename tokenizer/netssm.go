package tokenizer

import (
	"encoding/binary"
	"fmt"
	"time"
)

// The netssm layout (LayoutNetSSM) is NetSSM's own dataset layout, so that
// its datasets and models and this project's can be exchanged:
//
//	<label:NAME> row { <pkt> row } <eos>
//
// where each row is exactly PaperPacketLen (128) byte tokens: the capture's
// link-layer header as captured (Spec.Link: Ethernet, Linux cooked v1, or
// none for raw IP), the IP header with options (IPv6: with its extension
// headers), then for TCP the header with options and no payload, for UDP
// the 8-byte header and the first 12 payload bytes; checksums as captured;
// cut at 128 bytes and padded with the byte 0 (not a <pad> token). <pkt>
// stands between packets, not before the first; no timing tokens. Only TCP
// and UDP packets that are not IP fragments are kept: the others are left
// out of the trace (EncodeStats.Skipped), as NetSSM leaves them out.
//
// NetSSM's preprocessor keeps only the first len-1 bytes of a UDP payload
// shorter than 12 bytes; the layout does the same, so that a dataset made
// here is byte for byte what NetSSM makes of the same captures. It fails
// on a UDP packet with no payload; the layout keeps such a packet's headers.
// The grammar and the decoder read the kept length back from the headers
// (IP and UDP length fields), which is how the zero padding is told apart
// from data.

// Link headers a netssm-layout row may open with (Spec.Link), named as
// datasets name link types.
const (
	LinkEthernet = "ethernet"  // 14 bytes, and 4 per 802.1Q/802.1ad tag
	LinkLinuxSLL = "linux-sll" // 16 bytes
	LinkRaw      = "raw"       // none
)

// NetSSMSpec is NetSSM's layout: 128-byte rows from the link header on,
// zero padding, TCP headers without payload, UDP with 12 payload bytes,
// checksums as captured, no timing tokens. link is LinkEthernet,
// LinkLinuxSLL or LinkRaw.
func NetSSMSpec(link string) Spec {
	s := DefaultSpec()
	s.Layout = LayoutNetSSM
	s.Timing = false
	s.Payload = Payload{TCP: 0, UDP: 12}
	s.PaperPacketLen = 128
	s.Checksums = ChecksumsKeep
	s.Link = link
	return s
}

// validateNetSSM checks the fields NetSSM's layout fixes.
func (s *Spec) validateNetSSM() error {
	if s.PaperPacketLen <= 0 {
		s.PaperPacketLen = 128
	}
	if s.Link == "" {
		s.Link = LinkEthernet
	}
	switch {
	case s.Link != LinkEthernet && s.Link != LinkLinuxSLL && s.Link != LinkRaw:
		return fmt.Errorf("tokenizer netssm layout: link %q: want %s, %s or %s", s.Link, LinkEthernet, LinkLinuxSLL, LinkRaw)
	case s.Timing:
		return fmt.Errorf("tokenizer netssm layout: NetSSM's rows have no timing tokens (timing must be off)")
	case s.Payload != Payload{TCP: 0, UDP: 12}:
		return fmt.Errorf("tokenizer netssm layout: payload %+v: NetSSM keeps tcp=0, udp=12", s.Payload)
	case s.Checksums == ChecksumsZero:
		return fmt.Errorf("tokenizer netssm layout: NetSSM keeps checksums as captured (checksums must be keep)")
	}
	return nil
}

// NetSSMRow is what NetSSM's preprocessor keeps of one packet, before the
// padding to PaperPacketLen: link is the captured link-layer header, ip the
// captured bytes from the IP header on. ok is false for the packets NetSSM
// leaves out: not TCP or UDP, IP fragments, or L4 headers not captured
// whole. truncated reports kept bytes (headers, UDP payload) missing from
// the capture.
func (s *Spec) NetSSMRow(link, ip []byte) (row []byte, ok, truncated bool) {
	l := s.Keep(ip)
	if !l.Complete || netssmFragment(ip, l) {
		return nil, false, false
	}
	hdrs := l.IPHdrLen + l.L4HdrLen
	if (l.Proto != ProtoTCP && l.Proto != ProtoUDP) || len(ip) < hdrs {
		return nil, false, false
	}
	kept := hdrs
	if l.Proto == ProtoUDP {
		udpLen := int(binary.BigEndian.Uint16(ip[l.IPHdrLen+4:]))
		if udpLen > 0 && udpLen < 8 {
			return nil, false, false // gopacket refuses such a header
		}
		avail := min(len(ip), ipEnd(ip, l)) - hdrs
		if udpLen >= 8 {
			avail = min(avail, udpLen-8)
		}
		kept += netssmUDPPayload(max(avail, 0))
		truncated = netssmUDPPayload(claimedUDPPayload(ip, l)) > max(avail, 0)
	}
	row = make([]byte, 0, len(link)+kept)
	row = append(append(row, link...), ip[:kept]...)
	return row, true, truncated
}

// netssmUDPPayload is how many of n UDP payload bytes NetSSM keeps: 12, or
// all but the last of a shorter payload (its preprocessor's slice bound),
// and none of an empty one (where its preprocessor fails).
func netssmUDPPayload(n int) int {
	switch {
	case n >= 12:
		return 12
	case n > 0:
		return n - 1
	}
	return 0
}

// ipEnd is where the IP length field says the packet ends (a zero IPv4
// length, as segmentation offload writes, means the bytes present).
func ipEnd(ip []byte, l PacketLayout) int {
	switch l.Version {
	case 4:
		if n := int(binary.BigEndian.Uint16(ip[2:4])); n > 0 {
			return n
		}
	case 6:
		return 40 + int(binary.BigEndian.Uint16(ip[4:6]))
	}
	return len(ip)
}

// claimedUDPPayload is the UDP payload length the headers claim (the
// smaller of the IP and UDP length fields).
func claimedUDPPayload(ip []byte, l PacketLayout) int {
	n := ipEnd(ip, l) - l.IPHdrLen - 8
	if u := int(binary.BigEndian.Uint16(ip[l.IPHdrLen+4:])); u >= 8 {
		n = min(n, u-8)
	}
	return max(n, 0)
}

// netssmFragment reports an IP fragment, first ones included: NetSSM's
// packet decoder gives no TCP or UDP layer for any fragment.
func netssmFragment(ip []byte, l PacketLayout) bool {
	if l.Proto < 0 {
		return true
	}
	switch l.Version {
	case 4:
		return binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 // MF or an offset
	case 6:
		for next, off := int(ip[6]), 40; off < l.IPHdrLen; {
			switch next {
			case 44:
				return true
			case 51:
				next, off = int(ip[off]), off+(int(ip[off+1])+2)*4
			default:
				next, off = int(ip[off]), off+(int(ip[off+1])+1)*8
			}
		}
	}
	return false
}

// netssmKept is the kept length of a row's IP part read back from its
// headers, and whether the headers present are enough to know it.
func (s *Spec) netssmKept(ip []byte) (int, bool) {
	l := s.Keep(ip)
	if !l.Complete {
		return 0, false
	}
	hdrs := l.IPHdrLen + l.L4HdrLen
	if l.Proto != ProtoUDP {
		return hdrs, true
	}
	if len(ip) < hdrs {
		return 0, false
	}
	return hdrs + netssmUDPPayload(claimedUDPPayload(ip, l)), true
}

// linkLen is the length of the link header opening a row, as far as row
// shows it, and whether the link header announces IP (false: a frame the
// layout cannot read further).
func (s *Spec) linkLen(row []byte) (int, bool) {
	switch s.Link {
	case LinkRaw:
		return 0, true
	case LinkLinuxSLL:
		if len(row) < 16 {
			return 16, true
		}
		return 16, ipEtherType(binary.BigEndian.Uint16(row[14:16]))
	}
	n := 14
	for {
		if len(row) < n {
			return n, true
		}
		switch et := binary.BigEndian.Uint16(row[n-2 : n]); {
		case ipEtherType(et):
			return n, true
		case et == 0x8100 || et == 0x88a8 || et == 0x9100:
			n += 4
		default:
			return n, false
		}
	}
}

func ipEtherType(et uint16) bool { return et == 0x0800 || et == 0x86dd }

// SplitNetSSMRow splits a decoded row of the netssm layout into its link
// header and its kept IP bytes (the zero padding after them removed). For
// other layouts the link is nil and ip the row.
func (s *Spec) SplitNetSSMRow(row []byte) (link, ip []byte) {
	if s.Layout != LayoutNetSSM {
		return nil, row
	}
	n, isIP := s.linkLen(row)
	if n > len(row) {
		return row, nil
	}
	link, ip = row[:n], row[n:]
	if !isIP {
		return link, ip
	}
	if kept, ok := s.netssmKept(ip); ok && kept < len(ip) {
		ip = ip[:kept]
	}
	return link, ip
}

// PacketIP returns the IP part of a packet's bytes as a trace holds them:
// the bytes themselves, or, in the netssm layout, the row after its link
// header.
func (s *Spec) PacketIP(b []byte) []byte {
	if s.Layout != LayoutNetSSM {
		return b
	}
	n, _ := s.linkLen(b)
	if n > len(b) {
		return nil
	}
	return b[n:]
}

// AddFrame encodes one packet given with its captured link-layer header,
// of link type linkName (LinkEthernet, LinkLinuxSLL, LinkRaw or another
// dataset link name). Only the netssm layout keeps the link header; the
// other layouts encode ip as Add does.
func (e *Encoder) AddFrame(ts time.Time, wireLen int, linkName string, link, ip []byte) error {
	if e.spec.Layout != LayoutNetSSM {
		return e.Add(ts, wireLen, ip)
	}
	if linkName != e.spec.Link {
		return fmt.Errorf("encoder: a %s packet, but the netssm-layout spec holds %s packets (NetSSM's rows start with the link header, so each link type needs its own dataset)", linkName, e.spec.Link)
	}
	return e.addNetSSM(ts, wireLen, link, ip)
}

// addNetSSM appends one row: <pkt> (but before the first packet), then the
// row's PaperPacketLen bytes.
func (e *Encoder) addNetSSM(ts time.Time, wireLen int, link, ip []byte) error {
	s := e.spec
	if e.done {
		return fmt.Errorf("encoder: packet added after the trace was finished")
	}
	if s.Link != LinkRaw && len(link) == 0 {
		return fmt.Errorf("encoder: the netssm layout with %s links needs each packet's link header (use AddFrame)", s.Link)
	}
	row, ok, truncated := s.NetSSMRow(link, ip)
	if !ok {
		e.tr.Stats.Skipped++
		return nil
	}
	if truncated {
		e.tr.Stats.Truncated++
	}
	if len(row) > s.PaperPacketLen {
		row = row[:s.PaperPacketLen]
		e.tr.Stats.Cut++
	}
	ns := ts.UnixNano()
	if len(e.tr.PktOffsets) == 0 {
		e.startNs = ns
		e.tr.PktOffsets = append(e.tr.PktOffsets, uint32(len(e.tr.Tokens)))
	} else {
		e.tr.PktOffsets = append(e.tr.PktOffsets, uint32(len(e.tr.Tokens)))
		e.tr.Tokens = append(e.tr.Tokens, TokPkt)
	}
	e.tr.TsNs = append(e.tr.TsNs, ns-e.startNs)
	e.tr.WireLen = append(e.tr.WireLen, uint32(max(wireLen, 0)))
	for i := range s.PaperPacketLen {
		var b byte
		if i < len(row) {
			b = row[i]
		}
		e.tr.Tokens = append(e.tr.Tokens, uint16(b))
	}
	e.tr.Stats.Packets++
	return nil
}

// decodeNetSSM reads rows back: the label, then rows split by <pkt>.
func (s *Spec) decodeNetSSM(tokens []uint16) Decoded {
	var d Decoded
	var row []byte
	started := false // a byte or <pkt> came after the label
	finish := func() {
		if len(row) == 0 {
			if started {
				d.Stats.EmptyPackets++
			}
			return
		}
		if len(row) != s.PaperPacketLen {
			d.Stats.BadLength++
		}
		link, ip := s.SplitNetSSMRow(row)
		d.Packets = append(d.Packets, DecodedPacket{Bytes: ip, Link: link, DtBucket: -1})
		row = nil
	}
	rest := tokens
	if len(tokens) > 0 && s.IsLabel(int(tokens[0])) {
		d.Label = s.Labels[int(tokens[0])-s.FirstLabelID]
		rest = tokens[1:]
	} else {
		d.Stats.NoLabel = true
	}
	d.Stats.NoEOS = true
	for _, t := range rest {
		switch tok := int(t); {
		case tok < NumByteTokens:
			row = append(row, byte(tok))
		case tok == TokPkt:
			finish()
		case tok == TokEOS:
			finish()
			d.Stats.NoEOS = false
			return d
		default:
			d.Stats.Stray++
			continue
		}
		started = true
	}
	finish()
	return d
}

// netssmByteRule gives the bytes allowed next in a row: the link header's
// type field, then the IP packet's rules (those of layout v1, with NetSSM's
// TCP-or-UDP only when generating), then zero padding once the kept bytes
// are written, up to PaperPacketLen.
func (g *Grammar) netssmByteRule() byteRule {
	s := g.spec
	n := len(g.pkt)
	if n >= s.PaperPacketLen {
		return noByte
	}
	if g.final >= 0 && n >= g.final {
		return byteSet(0).because("a row is padded with zero bytes after its kept bytes")
	}
	ll, isIP := s.linkLen(g.pkt)
	switch {
	case !isIP:
		return anyByte // a non-IP frame in a prompt: the row's bytes are free
	case n < ll:
		return g.linkByteRule(n)
	}
	ip := g.pkt[ll:]
	sp := *s
	sp.Layout = LayoutV1
	r := (&Grammar{spec: &sp, pkt: ip, final: -1, strict: g.strict}).byteRule()
	if len(ip) == 0 {
		et := byte(0x08)
		if ll >= 2 {
			et = g.pkt[ll-2]
		}
		if et == 0x86 {
			r = r.and(byteRange(0x60, 0x6f))
		} else {
			r = r.and(byteRange(0x40, 0x4f))
		}
		return r.because("the IP version must match the link header's type")
	}
	if !g.strict {
		return r
	}
	if (ip[0]>>4 == 4 && len(ip) == 9) || (ip[0]>>4 == 6 && len(ip) == 6) {
		return r.and(byteSet(ProtoTCP, ProtoUDP)).because("NetSSM's rows hold TCP and UDP packets only")
	}
	if l := s.Keep(ip); l.Proto == ProtoTCP && len(ip) == l.IPHdrLen+12 {
		room := (s.PaperPacketLen - ll - l.IPHdrLen) / 4
		return r.and(byteRange(0x50, min(room, 15)<<4|0x0f)).because("the TCP header must end inside the row")
	}
	return r
}

// linkByteRule is the rule for byte n of the link header: its type field
// announces IPv4 or IPv6 (generated rows carry no 802.1Q tags).
func (g *Grammar) linkByteRule(n int) byteRule {
	at := 12
	if g.spec.Link == LinkLinuxSLL {
		at = 14
	}
	vlan := !g.strict && g.spec.Link == LinkEthernet
	switch {
	case n == at || (n > at && n%4 == 0 && vlan):
		r := byteSet(0x08, 0x86)
		if vlan {
			r = r.or(byteSet(0x81, 0x88, 0x91))
		}
		return r.because("the link header's type must be IPv4 or IPv6")
	case n == at+1 || (n > at && n%4 == 1 && vlan):
		switch g.pkt[n-1] {
		case 0x08:
			return byteSet(0x00)
		case 0x86:
			return byteSet(0xdd)
		case 0x81:
			return byteSet(0x00)
		case 0x88:
			return byteSet(0xa8)
		}
		return byteSet(0x00)
	}
	return anyByte
}

// netssmAllowed is Allowed for the netssm layout.
func (g *Grammar) netssmAllowed(mask []bool) {
	s := g.spec
	switch g.state {
	case gLabel:
		for t := s.FirstLabelID; t < s.VocabSize; t++ {
			mask[t] = true
		}
	case gBytes:
		g.netssmByteRule().fill(mask)
		if len(g.pkt) == s.PaperPacketLen {
			mask[TokPkt] = true
			mask[TokEOS] = true
		}
	}
}

// netssmAdvance is Advance for the netssm layout.
func (g *Grammar) netssmAdvance(t int) error {
	s := g.spec
	refuse := func() error {
		return fmt.Errorf("grammar: %s not allowed here (row byte %d)", s.TokenString(t), len(g.pkt))
	}
	switch g.state {
	case gLabel:
		if !s.IsLabel(t) {
			return refuse()
		}
		g.state, g.pkt, g.final = gBytes, g.pkt[:0], -1
	case gBytes:
		switch {
		case t == TokPkt || t == TokEOS:
			if len(g.pkt) != s.PaperPacketLen {
				return refuse()
			}
			if t == TokEOS {
				g.state = gDone
			}
			g.pkt, g.final = g.pkt[:0], -1
		case t < NumByteTokens:
			if r := g.netssmByteRule(); !r.allows(t) {
				if r.why != "" {
					return fmt.Errorf("grammar: byte %#02x not allowed at row byte %d: %s", t, len(g.pkt), r.why)
				}
				return refuse()
			}
			g.pkt = append(g.pkt, byte(t))
			if g.final < 0 {
				if ll, isIP := s.linkLen(g.pkt); isIP && len(g.pkt) > ll {
					if kept, ok := s.netssmKept(g.pkt[ll:]); ok {
						g.final = ll + kept
					}
				}
			}
		default:
			return refuse()
		}
	case gDone:
		return fmt.Errorf("grammar: %s after <eos>", s.TokenString(t))
	default:
		return refuse()
	}
	return nil
}
