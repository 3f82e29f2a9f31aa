package tokenizer

import "fmt"

// DecodedPacket is one packet read back from tokens.
type DecodedPacket struct {
	Bytes    []byte // from the IP header on, as kept (pads removed)
	Link     []byte // netssm layout: the link-layer header the row opens with
	DtBucket int    // the <dt:k> bucket, -1 when the trace has no timing tokens
	TsNs     int64  // time from the trace start (from the buckets, or 0 without timing)
}

// DecodeStats counts token sequences that break the grammar; Decode keeps
// going past them rather than failing.
type DecodeStats struct {
	Stray        int  // tokens where none can stand (bytes before the first <pkt>, a second label, unknown ids)
	MissingDt    int  // packets without their <dt:k> although timing is on
	EmptyPackets int  // <pkt> followed by no byte
	Incomplete   int  // flow layout: packets that ended before their fields or tail did (completed as predicted)
	NoEOS        bool // the tokens end without <eos>
	NoLabel      bool // the trace does not open with a label
	BadLength    int  // netssm layout: rows of other than PaperPacketLen bytes
}

// Decoded is a trace read back from tokens.
type Decoded struct {
	Label   string
	Packets []DecodedPacket
	Stats   DecodeStats
}

// DecodeOptions tune Decode.
type DecodeOptions struct {
	// DtSample picks an inter-arrival time (ns) inside bucket k; the default
	// is Spec.DtMid. Generation passes a sampler drawn from the empirical
	// distribution inside each bucket.
	DtSample func(k int) int64
}

// Decode turns tokens back into packets. It does not fail on sequences the
// grammar forbids: it counts them in Stats and decodes what it can. Tokens
// after <eos> are ignored.
func (s *Spec) Decode(tokens []uint16, opt DecodeOptions) (Decoded, error) {
	if s.labelID == nil {
		if err := s.Validate(); err != nil {
			return Decoded{}, err
		}
	}
	if s.Layout == LayoutNetSSM {
		return s.decodeNetSSM(tokens), nil
	}
	sample := opt.DtSample
	if sample == nil {
		sample = s.DtMid
	}
	if s.Layout == LayoutFlow {
		return s.decodeFlow(tokens, sample), nil
	}
	var d Decoded
	var cur *DecodedPacket
	var ts int64
	sawDt := false
	finish := func() {
		if cur == nil {
			return
		}
		if len(cur.Bytes) == 0 {
			d.Stats.EmptyPackets++
		}
		if s.Timing && !sawDt {
			d.Stats.MissingDt++
		}
		cur = nil
	}
	d.Stats.NoEOS = true
	for i, t := range tokens {
		tok := int(t)
		if i == 0 && !s.IsLabel(tok) {
			d.Stats.NoLabel = true
		}
		switch {
		case tok < NumByteTokens:
			if cur == nil {
				d.Stats.Stray++
				continue
			}
			cur.Bytes = append(cur.Bytes, byte(tok))
		case tok == TokPad:
			if cur == nil {
				d.Stats.Stray++
			}
		case tok == TokPkt:
			finish()
			d.Packets = append(d.Packets, DecodedPacket{DtBucket: -1, TsNs: ts})
			cur = &d.Packets[len(d.Packets)-1]
			sawDt = false
		case s.IsDt(tok):
			if cur == nil || sawDt || len(cur.Bytes) > 0 {
				d.Stats.Stray++
				continue
			}
			sawDt = true
			k := tok - TokDt0
			cur.DtBucket = k
			if len(d.Packets) > 1 {
				ts += sample(k)
			}
			cur.TsNs = ts
		case tok == TokEOS:
			finish()
			d.Stats.NoEOS = false
			return d, nil
		case s.IsLabel(tok):
			if i != 0 {
				d.Stats.Stray++
				continue
			}
			d.Label = s.Labels[tok-s.FirstLabelID]
		default:
			d.Stats.Stray++
		}
	}
	finish()
	if len(tokens) == 0 {
		d.Stats.NoLabel = true
	}
	return d, nil
}

// String summarises the problems found, "" when there are none.
func (st DecodeStats) String() string {
	if st == (DecodeStats{}) {
		return ""
	}
	return fmt.Sprintf("stray tokens %d, packets missing <dt> %d, empty packets %d, incomplete packets %d, rows of a wrong length %d, no <eos> %v, no label %v",
		st.Stray, st.MissingDt, st.EmptyPackets, st.Incomplete, st.BadLength, st.NoEOS, st.NoLabel)
}
