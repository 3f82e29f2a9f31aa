package tokenizer

// TCP flag bits of the header's 14th byte.
const (
	TCPFlagFIN uint8 = 0x01
	TCPFlagSYN uint8 = 0x02
	TCPFlagRST uint8 = 0x04
	TCPFlagPSH uint8 = 0x08
	TCPFlagACK uint8 = 0x10
	TCPFlagURG uint8 = 0x20
	TCPFlagECE uint8 = 0x40
	TCPFlagCWR uint8 = 0x80
)

// TCPFlagsValid reports whether a TCP flag byte is one a real stack sends:
// not empty, SYN never with FIN or RST, FIN never with RST, and ACK on every
// segment but a SYN or a RST, and FIN, PSH and URG only with ACK. The
// ECN bits (CWR, ECE) may accompany any valid set. It is the one rule that
// the grammars (structure-aware decoding) and eval's compliance share.
func TCPFlagsValid(f uint8) bool {
	syn, fin, rst, ack := f&TCPFlagSYN != 0, f&TCPFlagFIN != 0, f&TCPFlagRST != 0, f&TCPFlagACK != 0
	switch {
	case f&(TCPFlagFIN|TCPFlagSYN|TCPFlagRST|TCPFlagPSH|TCPFlagACK|TCPFlagURG) == 0:
		return false
	case syn && (fin || rst), fin && rst:
		return false
	case !syn && !rst && !ack:
		return false
	case f&(TCPFlagFIN|TCPFlagPSH|TCPFlagURG) != 0 && !ack:
		return false
	}
	return true
}
