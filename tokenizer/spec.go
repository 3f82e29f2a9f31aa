// Package tokenizer owns netssm's token format (layout v1 and the others of docs/format.md):
// the vocabulary (bytes 0–255, then specials, inter-arrival buckets and
// labels), which bytes of a packet are kept, encoding packets into a trace's
// tokens, decoding tokens back into packets, and the packet grammar that a
// sampler uses to mask impossible tokens.
//
// It knows nothing about files: captures, Parquet and pcap output belong to
// packages capture, arrowdata and pcapout.
//
// A trace is
//
//	<label:NAME> { <pkt> [<dt:k>] byte… [<pad>…] } <eos>
//
// with <dt:k> present when timing is on, and <pad> only in the paper layout,
// which pads (or cuts) each packet's bytes to exactly PaperPacketLen tokens.
// The netssm layout is NetSSM's own (netssm.go): 128-byte rows from the link
// header on, zero-padded, with <pkt> between packets.
//
// Vocabulary: ids 0–255 are byte values, 256 <pad>, 257 <pkt>, 258 <eos>,
// 259… the DtBuckets inter-arrival buckets, then one id per label in
// Spec.Labels order; VocabSize counts them all.
//
// Decisions (and why):
//   - Kept bytes (Spec.Keep): the IP header with options (IPv6: with its
//     extension headers), the L4 header (TCP with options, UDP and ICMP 8
//     bytes), then the spec's payload bytes for the protocol, never more than
//     the IP length field says the packet carries. Non-first fragments and
//     unknown protocols keep the IP header and Payload.Other bytes. The rule
//     is one function shared by encoder and grammar, so they cannot disagree.
//   - Bucket 0 holds dt ≤ 1 µs, the last bucket dt > 60 s, the 62 between are
//     log-spaced. The first packet of a trace gets <dt:0>.
//   - The <dt:k> clock is the running maximum of the capture's timestamps: a
//     packet stamped before its predecessor (reordering in multi-interface
//     captures) gets <dt:0>, and the dataset's ts_ns keeps its exact time.
//   - Packets captured short of their kept bytes (small snap lengths) are
//     encoded as captured and counted (EncodeStats.Truncated); the grammar,
//     which describes whole packets, does not accept them, so generation
//     always produces complete headers.
//   - Checksums (Spec.Checksums, default "zero"): the IPv4 header checksum
//     and the TCP, UDP and ICMP checksums are written as zero bytes. The
//     IPv4 one is a function of the header that pcapout recomputes on
//     output; the L4 ones cover payload that is not kept, so no model can
//     predict them and no reader can verify them. Keeping them spends about
//     4 of a packet's ~43 tokens on noise (roughly a sixth of the loss of a
//     trained model). "keep" (and the paper layout) keeps them as captured;
//     a spec without the field (datasets written before it) means "keep".
//   - Decode never fails on a bad token stream: it decodes what it can and
//     counts what broke the grammar (DecodeStats), so generated traces are
//     reported, not dropped.
package tokenizer

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Token ids that do not depend on the spec.
const (
	NumByteTokens = 256
	TokPad        = 256 // padding (paper layout)
	TokPkt        = 257 // starts a packet
	TokEOS        = 258 // ends a trace
	TokDt0        = 259 // first of the inter-arrival buckets
)

// Layout is how a packet's bytes are laid out in tokens.
type Layout string

// Layouts.
const (
	LayoutV1    Layout = "v1"    // kept bytes only, <pkt> marks the boundary
	LayoutPaper Layout = "paper" // kept bytes padded/cut to PaperPacketLen with <pad>; read, no longer made by the CLI
	LayoutFlow  Layout = "flow"  // per-flow header compression (spec versions 2 and 3, flow.go)
	// LayoutNetSSM is NetSSM's layout exactly (see netssm.go).
	LayoutNetSSM Layout = "netssm"
)

// Payload is how many payload bytes are kept after the L4 header, per protocol.
type Payload struct {
	TCP   int `json:"tcp"`
	UDP   int `json:"udp"`
	ICMP  int `json:"icmp"`  // ICMP and ICMPv6, after their 8-byte header
	Other int `json:"other"` // other protocols and non-first fragments, after the IP header
}

// Checksum policies (Spec.Checksums).
const (
	ChecksumsKeep = "keep" // as captured
	ChecksumsZero = "zero" // IPv4 header and TCP/UDP/ICMP checksums written as 0
)

// Spec is a tokenizer configuration; it is stored as JSON in every dataset
// and model bundle so that later stages decode with the same rules.
type Spec struct {
	Version        int      `json:"version"`
	Layout         Layout   `json:"layout"`
	Timing         bool     `json:"timing"`
	Payload        Payload  `json:"payload"`
	Labels         []string `json:"labels"`
	DtBuckets      int      `json:"dt_buckets"`
	DtMinNs        int64    `json:"dt_min_ns"`
	DtMaxNs        int64    `json:"dt_max_ns"`
	PaperPacketLen int      `json:"paper_packet_len,omitempty"` // paper and netssm layouts: tokens per packet
	Link           string   `json:"link,omitempty"`             // netssm layout: the link header rows open with (LinkEthernet, …)
	Checksums      string   `json:"checksums,omitempty"`        // ChecksumsZero or ChecksumsKeep ("" = keep)
	FlowTable      int      `json:"flow_table,omitempty"`       // flow layout: flows a trace's table holds
	AddrTable      int      `json:"addr_table,omitempty"`       // flow layout version 3: addresses per IP version a trace's table holds
	// Derived, written for readers of the JSON; recomputed by Validate.
	VocabSize    int            `json:"vocab_size"`
	SpecialToken map[string]int `json:"special_tokens"`
	FirstLabelID int            `json:"first_label_id"`

	labelID map[string]int
	edges   []int64 // upper edge of buckets 0..DtBuckets-2, in ns
	// flow layout: first id of the flow tokens (<flow:new>, <flow:raw>,
	// <flow:R:D>, <tail:mask>, <tail:raw>, the field ops); 0 otherwise
	flowBase int
}

// DefaultSpec is spec v1 with its defaults: timing on, TCP payload 0, UDP 12.
func DefaultSpec() Spec {
	return Spec{
		Version:   1,
		Layout:    LayoutV1,
		Timing:    true,
		Payload:   Payload{TCP: 0, UDP: 12, ICMP: 0, Other: 0},
		DtBuckets: 64,
		DtMinNs:   1_000,
		DtMaxNs:   60_000_000_000,
		Checksums: ChecksumsZero,
	}
}

// FlowSpec is spec version 3: the flow layout with its address table, and
// v1's other defaults.
func FlowSpec() Spec {
	s := DefaultSpec()
	s.Version = 3
	s.Layout = LayoutFlow
	s.FlowTable = FlowTableDefault
	s.AddrTable = AddrTableDefault
	return s
}

// PaperSpec is the paper layout: v1's kept bytes padded with <pad> to 128
// tokens per packet, TCP payload dropped, 12 UDP payload bytes, no timing
// tokens. NetSSM's own layout is NetSSMSpec.
func PaperSpec() Spec {
	s := DefaultSpec()
	s.Layout = LayoutPaper
	s.Timing = false
	s.PaperPacketLen = 128
	s.Checksums = ChecksumsKeep
	return s
}

// Validate checks the spec and computes its derived fields; call it after
// changing fields by hand. Encode and Decode call it too.
func (s *Spec) Validate() error {
	if s.Version < 1 || s.Version > 3 {
		return fmt.Errorf("tokenizer spec version %d: versions 1 to 3 are known", s.Version)
	}
	switch s.Layout {
	case LayoutV1:
	case LayoutPaper:
		if s.PaperPacketLen <= 0 {
			s.PaperPacketLen = 128
		}
	case LayoutFlow:
		if err := s.validateFlow(); err != nil {
			return err
		}
	case LayoutNetSSM:
		if err := s.validateNetSSM(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("tokenizer layout %q: want v1, flow, netssm or paper", s.Layout)
	}
	if s.Layout != LayoutFlow && s.Version != 1 {
		return fmt.Errorf("tokenizer layout %s is spec version 1, not %d", s.Layout, s.Version)
	}
	for name, n := range map[string]int{"tcp": s.Payload.TCP, "udp": s.Payload.UDP, "icmp": s.Payload.ICMP, "other": s.Payload.Other} {
		if n < 0 || n > 65535 {
			return fmt.Errorf("tokenizer payload %s=%d: want 0..65535", name, n)
		}
	}
	switch s.Checksums {
	case "", ChecksumsKeep, ChecksumsZero:
	default:
		return fmt.Errorf("tokenizer checksums %q: want keep or zero", s.Checksums)
	}
	if s.DtBuckets < 2 || s.DtMinNs <= 0 || s.DtMaxNs <= s.DtMinNs {
		return fmt.Errorf("tokenizer timing buckets: %d buckets from %d ns to %d ns is not a range", s.DtBuckets, s.DtMinNs, s.DtMaxNs)
	}
	s.labelID = make(map[string]int, len(s.Labels))
	s.FirstLabelID = TokDt0 + s.DtBuckets
	s.flowBase = 0
	if s.Layout == LayoutFlow {
		s.flowBase = s.FirstLabelID
		s.FirstLabelID += s.flowTokens()
	}
	for i, l := range s.Labels {
		if l == "" || strings.ContainsAny(l, "<>\n") {
			return fmt.Errorf("tokenizer label %q: empty or contains <, > or a newline", l)
		}
		if _, dup := s.labelID[l]; dup {
			return fmt.Errorf("tokenizer label %q listed twice", l)
		}
		s.labelID[l] = s.FirstLabelID + i
	}
	s.VocabSize = s.FirstLabelID + len(s.Labels)
	s.edges = make([]int64, s.DtBuckets-1)
	for k := range s.edges {
		s.edges[k] = s.edgeFormula(k)
	}
	s.SpecialToken = map[string]int{"<pad>": TokPad, "<pkt>": TokPkt, "<eos>": TokEOS, "<dt:0>": TokDt0}
	if s.flowBase > 0 {
		for t := s.flowBase; t < s.FirstLabelID; t++ {
			s.SpecialToken[s.flowTokenString(t)] = t
		}
	}
	return nil
}

// validateFlow checks the flow layout's tables: version 2 has the flow
// table, version 3 the address table too.
func (s *Spec) validateFlow() error {
	switch {
	case s.Version != 2 && s.Version != 3:
		return fmt.Errorf("tokenizer layout flow needs spec version 2 or 3, not %d", s.Version)
	case s.FlowTable < 1 || s.FlowTable > 1024:
		return fmt.Errorf("tokenizer flow table of %d flows: want 1..1024", s.FlowTable)
	case s.Version == 2 && s.AddrTable != 0:
		return fmt.Errorf("tokenizer address table of %d addresses: spec version 2 has none (version 3 does)", s.AddrTable)
	case s.Version == 3 && (s.AddrTable < 1 || s.AddrTable > 1024):
		return fmt.Errorf("tokenizer address table of %d addresses: want 1..1024", s.AddrTable)
	}
	return nil
}

// AddLabel appends a label if it is new and returns its token id.
func (s *Spec) AddLabel(name string) (int, error) {
	if s.labelID == nil {
		if err := s.Validate(); err != nil {
			return 0, err
		}
	}
	if id, ok := s.labelID[name]; ok {
		return id, nil
	}
	s.Labels = append(s.Labels, name)
	if err := s.Validate(); err != nil {
		s.Labels = s.Labels[:len(s.Labels)-1]
		_ = s.Validate()
		return 0, err
	}
	return s.labelID[name], nil
}

// LabelToken returns the token id of a label.
func (s *Spec) LabelToken(name string) (int, bool) {
	id, ok := s.labelID[name]
	return id, ok
}

// IsLabel reports whether tok is a label token.
func (s *Spec) IsLabel(tok int) bool { return tok >= s.FirstLabelID && tok < s.VocabSize }

// IsDt reports whether tok is an inter-arrival token.
func (s *Spec) IsDt(tok int) bool { return tok >= TokDt0 && tok < TokDt0+s.DtBuckets }

// TokenString names a token: a byte as two hex digits, the others as <…>.
func (s *Spec) TokenString(tok int) string {
	switch {
	case tok >= 0 && tok < NumByteTokens:
		return fmt.Sprintf("%02x", tok)
	case tok == TokPad:
		return "<pad>"
	case tok == TokPkt:
		return "<pkt>"
	case tok == TokEOS:
		return "<eos>"
	case s.IsDt(tok):
		return fmt.Sprintf("<dt:%d>", tok-TokDt0)
	case s.IsLabel(tok):
		return "<label:" + s.Labels[tok-s.FirstLabelID] + ">"
	case s.isFlowToken(tok):
		return s.flowTokenString(tok)
	}
	return fmt.Sprintf("<unknown:%d>", tok)
}

// MarshalJSON writes the spec with its derived fields filled in.
func (s Spec) MarshalJSON() ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	type plain Spec
	return json.Marshal(plain(s))
}

// ParseSpec reads a spec from JSON and validates it.
func ParseSpec(data []byte) (Spec, error) {
	type plain Spec
	var p plain
	if err := json.Unmarshal(data, &p); err != nil {
		return Spec{}, fmt.Errorf("tokenizer spec JSON: %w", err)
	}
	s := Spec(p)
	vocab := s.VocabSize
	if err := s.Validate(); err != nil {
		return Spec{}, err
	}
	if vocab != 0 && vocab != s.VocabSize {
		return Spec{}, fmt.Errorf("tokenizer spec JSON: vocab_size %d disagrees with its labels and buckets (%d)", vocab, s.VocabSize)
	}
	return s, nil
}

// DtBucket maps an inter-arrival time in nanoseconds to its bucket: bucket 0
// holds dt ≤ DtMinNs, the last bucket dt > DtMaxNs, and the ones between are
// log-spaced: bucket k holds (edge(k-1), edge(k)].
func (s *Spec) DtBucket(dtNs int64) int {
	if s.edges == nil {
		if err := s.Validate(); err != nil {
			return 0
		}
	}
	// first edge ≥ dt; past the last edge: the last bucket
	return sort.Search(len(s.edges), func(k int) bool { return s.edges[k] >= dtNs })
}

// edgeFormula is the upper edge of bucket k (0 ≤ k ≤ DtBuckets-2), in ns:
// DtMinNs·(DtMaxNs/DtMinNs)^(k/(DtBuckets-2)).
func (s *Spec) edgeFormula(k int) int64 {
	if k <= 0 {
		return s.DtMinNs
	}
	if k >= s.DtBuckets-2 {
		return s.DtMaxNs
	}
	step := math.Log(float64(s.DtMaxNs)/float64(s.DtMinNs)) / float64(s.DtBuckets-2)
	return int64(math.Round(float64(s.DtMinNs) * math.Exp(float64(k)*step)))
}

func (s *Spec) dtEdge(k int) int64 {
	if s.edges == nil {
		return s.edgeFormula(k)
	}
	return s.edges[max(0, min(k, len(s.edges)-1))]
}

// DtBounds returns the range (lo, hi] of inter-arrival times in bucket k, in
// ns; bucket 0 is [0, DtMinNs] and the last bucket has hi = math.MaxInt64.
func (s *Spec) DtBounds(k int) (lo, hi int64) {
	switch {
	case k <= 0:
		return 0, s.DtMinNs
	case k >= s.DtBuckets-1:
		return s.DtMaxNs, math.MaxInt64
	}
	return s.dtEdge(k - 1), s.dtEdge(k)
}

// DtMid is a representative inter-arrival time of bucket k: the geometric
// middle of its range (half of DtMinNs for bucket 0, DtMaxNs for the last).
func (s *Spec) DtMid(k int) int64 {
	lo, hi := s.DtBounds(k)
	switch {
	case k <= 0:
		return s.DtMinNs / 2
	case k >= s.DtBuckets-1:
		return s.DtMaxNs + s.DtMaxNs/2
	}
	return int64(math.Round(math.Sqrt(float64(lo) * float64(hi))))
}
