package tokenizer

import (
	"fmt"
	"strconv"
	"strings"
)

// NetSSM writes a trace as text (the Data field of its JSONL datasets):
// "<|LABEL|> " then each row's bytes in decimal, separated by spaces, rows
// joined by " <|pkt|> ". These functions convert between that text and a
// netssm-layout trace's tokens; the text holds no <eos>.

// netssmPkt is NetSSM's packet separator.
const netssmPkt = "<|pkt|>"

// NetSSMText renders a netssm-layout trace (label, rows, optional <eos>)
// as NetSSM's Data text. Tokens that NetSSM's text cannot hold, or rows of
// other than PaperPacketLen bytes, are an error.
func (s *Spec) NetSSMText(tokens []uint16) (string, error) {
	if s.Layout != LayoutNetSSM {
		return "", fmt.Errorf("layout %s: NetSSM's text holds netssm-layout traces only", s.Layout)
	}
	if len(tokens) == 0 || !s.IsLabel(int(tokens[0])) {
		return "", fmt.Errorf("the trace does not open with a label")
	}
	var b strings.Builder
	b.Grow(4 * len(tokens))
	b.WriteString("<|" + s.Labels[int(tokens[0])-s.FirstLabelID] + "|>")
	row := 0
	for i, t := range tokens[1:] {
		tok := int(t)
		switch {
		case tok < NumByteTokens:
			b.WriteByte(' ')
			b.WriteString(strconv.Itoa(tok))
			row++
			continue
		case tok == TokPkt:
			b.WriteString(" " + netssmPkt)
		case tok == TokEOS && i == len(tokens)-2:
		default:
			return "", fmt.Errorf("token %d (%s) has no place in NetSSM's text", i+1, s.TokenString(tok))
		}
		if row != s.PaperPacketLen {
			return "", fmt.Errorf("a row of %d bytes ends at token %d, want %d", row, i+1, s.PaperPacketLen)
		}
		row = 0
	}
	if len(tokens) > 1 && int(tokens[len(tokens)-1]) != TokEOS && row != s.PaperPacketLen {
		return "", fmt.Errorf("the last row has %d bytes, want %d", row, s.PaperPacketLen)
	}
	return b.String(), nil
}

// ParseNetSSMText reads NetSSM's Data text: its label and its rows, each
// of rowLen bytes, concatenated. It accepts only the text NetSSM writes
// (single spaces, decimal bytes without leading zeros), so that rendering
// the rows again gives the same text.
func ParseNetSSMText(text string, rowLen int) (label string, rows []byte, err error) {
	if !strings.HasPrefix(text, "<|") {
		return "", nil, fmt.Errorf("Data does not open with a <|label|> token")
	}
	end := strings.Index(text[2:], "|> ")
	if end < 0 {
		return "", nil, fmt.Errorf("Data holds a label and no packet")
	}
	label, text = text[2:2+end], text[2+end+3:]
	if label == "" {
		return "", nil, fmt.Errorf("Data opens with an empty label")
	}
	n, word := 0, 0
	for w := range strings.SplitSeq(text, " ") {
		word++
		if w == netssmPkt {
			if n != rowLen {
				return "", nil, fmt.Errorf("packet %d has %d byte values, want %d", len(rows)/rowLen+1, n, rowLen)
			}
			n = 0
			continue
		}
		v, perr := strconv.Atoi(w)
		if perr != nil || v < 0 || v > 255 || strconv.Itoa(v) != w {
			return "", nil, fmt.Errorf("word %d after the label, %q, is neither a byte value 0–255 written as NetSSM writes it nor %s", word, clip(w), netssmPkt)
		}
		if n == rowLen {
			return "", nil, fmt.Errorf("packet %d has more than %d byte values (a %s is missing)", len(rows)/rowLen, rowLen, netssmPkt)
		}
		rows = append(rows, byte(v))
		n++
	}
	if n != rowLen {
		return "", nil, fmt.Errorf("packet %d has %d byte values, want %d (NetSSM's -truncate cuts packets: import a file written without it)", len(rows)/rowLen+1, n, rowLen)
	}
	return label, rows, nil
}

func clip(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}

// NetSSMTrace makes the tokens of a netssm-layout trace from its label and
// its rows (concatenated, PaperPacketLen bytes each), and the index where
// each packet starts (its first byte for the first, its <pkt> after).
func (s *Spec) NetSSMTrace(label string, rows []byte) (tokens []uint16, pktOffsets []uint32, err error) {
	if s.Layout != LayoutNetSSM {
		return nil, nil, fmt.Errorf("layout %s: rows are the netssm layout's", s.Layout)
	}
	id, ok := s.LabelToken(label)
	if !ok {
		return nil, nil, fmt.Errorf("label %q is not in the tokenizer spec", label)
	}
	rl := s.PaperPacketLen
	if len(rows) == 0 || len(rows)%rl != 0 {
		return nil, nil, fmt.Errorf("%d row bytes are not whole rows of %d", len(rows), rl)
	}
	tokens = make([]uint16, 0, 2+len(rows)+len(rows)/rl)
	tokens = append(tokens, uint16(id))
	for i, b := range rows {
		if i%rl == 0 {
			pktOffsets = append(pktOffsets, uint32(len(tokens)))
			if i > 0 {
				tokens = append(tokens, TokPkt)
			}
		}
		tokens = append(tokens, uint16(b))
	}
	return append(tokens, TokEOS), pktOffsets, nil
}
