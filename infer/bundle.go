package infer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/netssm/netssm/capture"
	"github.com/netssm/netssm/export"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/pcapout"
	"github.com/netssm/netssm/tokenizer"
)

// Bundle is a verified model bundle (package export) made ready for
// generation: the Mamba-2 model on ONNX Runtime, the tokenizer spec it was
// trained with, and its timing tables.
type Bundle struct {
	Dir      string
	Manifest export.Manifest
	Spec     tokenizer.Spec
	Model    *ONNXModel
	Vocab    Vocabulary
	Timings  export.TimingTables
	// Checks counts the packets whose length field pcapout repaired, or
	// that it found invalid, while writing through NewPacketWriter (IPv4
	// header checksums are always recomputed and not counted).
	Checks PacketChecks
	// FreshHosts, when set, maps every packet's addresses written through
	// NewPacketWriter (before pcapout's check).
	FreshHosts *FreshHosts
}

// OpenBundle loads and verifies the bundle in dir (export.Load: a missing
// file or a sha256 mismatch is an error naming the file) and prepares its
// model with session options so.
func OpenBundle(dir string, so ort.SessionOptions) (*Bundle, error) {
	return OpenBundleKernels(dir, so, "")
}

// OpenBundleKernels is OpenBundle building the model's graphs with the given
// kernels (model.KernelsFused or model.KernelsStandard) instead of those the
// bundle was exported with ("" keeps the bundle's).
func OpenBundleKernels(dir string, so ort.SessionOptions, kernels string) (*Bundle, error) {
	b, params, err := loadBundle(dir)
	if err != nil {
		return nil, err
	}
	cfg := b.Manifest.Config
	if kernels != "" {
		cfg.Kernels = kernels
	}
	if b.Model, err = NewMamba2(cfg, params, so); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	return b, nil
}

// loadBundle reads and checks everything of the bundle in dir that does not
// need ONNX Runtime: the manifest, the tokenizer spec, the timing tables and
// the parameters.
func loadBundle(dir string) (*Bundle, map[string][]float32, error) {
	eb, err := export.Load(dir)
	if err != nil {
		return nil, nil, err
	}
	b := &Bundle{Dir: dir, Manifest: eb.Manifest}
	if len(eb.Manifest.Tokenizer) == 0 {
		return nil, nil, fmt.Errorf("bundle %s: model.json has no tokenizer spec (re-export the model from a run trained on a tokenized dataset)", dir)
	}
	if b.Spec, err = tokenizer.ParseSpec(eb.Manifest.Tokenizer); err != nil {
		return nil, nil, fmt.Errorf("bundle %s: model.json: %w", dir, err)
	}
	if b.Spec.VocabSize > eb.Manifest.Config.VocabSize {
		return nil, nil, fmt.Errorf("bundle %s: the tokenizer has %d ids but the model only %d logits", dir, b.Spec.VocabSize, eb.Manifest.Config.VocabSize)
	}
	if len(eb.Manifest.Timing) > 0 {
		if err := json.Unmarshal(eb.Manifest.Timing, &b.Timings); err != nil {
			return nil, nil, fmt.Errorf("bundle %s: model.json timing tables: %w", dir, err)
		}
	}
	params, err := eb.Params()
	if err != nil {
		return nil, nil, err
	}
	b.Vocab = SpecVocabulary(&b.Spec)
	return b, params, nil
}

// SpecVocabulary names the ids of a tokenizer spec that generation must
// recognise.
func SpecVocabulary(s *tokenizer.Spec) Vocabulary {
	v := Vocabulary{Size: s.VocabSize, Packet: tokenizer.TokPkt, EOS: tokenizer.TokEOS, DT0: tokenizer.TokDt0, Pad: tokenizer.TokPad}
	if s.Timing {
		v.DTBucket = s.DtBuckets
	}
	v.RowAfterLabel = s.Layout == tokenizer.LayoutNetSSM
	for i := range s.Labels {
		v.Labels = append(v.Labels, s.FirstLabelID+i)
	}
	return v
}

// Labels lists the labels the model knows.
func (b *Bundle) Labels() []string { return slices.Clone(b.Spec.Labels) }

// LabelToken returns a label's token id, or an error listing the known ones.
func (b *Bundle) LabelToken(label string) (int, error) {
	id, ok := b.Spec.LabelToken(label)
	if !ok {
		return 0, fmt.Errorf("label %q is not known to the model in %s (known: %s)", label, b.Dir, strings.Join(b.Spec.Labels, ", "))
	}
	return id, nil
}

// Prompt returns the tokens that prefill runs: the label token and, when
// capturePath is set, the first packets IP packets of that capture encoded
// with the bundle's tokenizer spec (without `<eos>`).
func (b *Bundle) Prompt(label, capturePath string, packets int) ([]int, error) {
	id, err := b.LabelToken(label)
	if err != nil {
		return nil, err
	}
	if capturePath == "" {
		return []int{id}, nil
	}
	enc, err := b.Spec.NewEncoder(label)
	if err != nil {
		return nil, err
	}
	r, err := capture.Open(capturePath)
	if err != nil {
		return nil, fmt.Errorf("prompt capture: %w", err)
	}
	for enc.Packets() < packets {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("prompt capture %s: %w", capturePath, err)
		}
		if p.IP == nil {
			continue
		}
		if err := enc.AddFrame(p.Timestamp, p.IPWireLen(), capture.LinkName(p.LinkTypeID), p.LinkHdr, p.IP); err != nil {
			return nil, fmt.Errorf("prompt capture %s, packet %d: %w", capturePath, p.Index, err)
		}
	}
	if enc.Packets() == 0 {
		return nil, fmt.Errorf("prompt capture %s holds no IP packet", capturePath)
	}
	if enc.Packets() < packets {
		slog.Warn("prompt capture has fewer IP packets than asked for", "file", capturePath, "packets", enc.Packets(), "asked", packets)
	}
	toks := enc.Finish().Tokens
	if n := len(toks); n > 0 && int(toks[n-1]) == tokenizer.TokEOS {
		toks = toks[:n-1]
	}
	prompt := make([]int, len(toks))
	for i, t := range toks {
		prompt[i] = int(t)
	}
	return prompt, nil
}

// NewGrammar returns a fresh packet grammar of the bundle's tokenizer, with
// the well-formedness rules on for generated packets
// (tokenizer.Grammar.WellFormed); prompt tokens are held to the structural
// rules only.
func (b *Bundle) NewGrammar() Grammar {
	g, err := b.Spec.NewGrammar()
	if err != nil { // the spec was validated when the bundle was opened
		return nil
	}
	return &specGrammar{g: g.WellFormed()}
}

// NewDecoder returns a packet decoder for the bundle's layout, or nil when
// a packet is its byte tokens.
func (b *Bundle) NewDecoder() PacketDecoder {
	if d := b.Spec.NewStreamDecoder(); d != nil {
		return d
	}
	return nil
}

// specGrammar adapts tokenizer.Grammar to Grammar.
type specGrammar struct{ g *tokenizer.Grammar }

func (s *specGrammar) Allowed(a []bool) { s.g.Allowed(a) }

func (s *specGrammar) Advance(id int) error {
	if id < 0 || id > math.MaxUint16 {
		return fmt.Errorf("token id %d out of range", id)
	}
	return s.g.Advance(uint16(id))
}

func (s *specGrammar) AdvancePrompt(id int) error {
	if id < 0 || id > math.MaxUint16 {
		return fmt.Errorf("token id %d out of range", id)
	}
	return s.g.AdvanceLenient(uint16(id))
}

// Timing returns how the label's packets get their timestamps: inside
// their generated `<dt:k>` bucket, or, for a model trained without timing,
// from the label's empirical inter-arrival quantiles.
func (b *Bundle) Timing(label string) Timing {
	return SpecTiming(&b.Spec, b.Timings, label)
}

// SpecTiming builds the Timing of a tokenizer spec and timing tables.
func SpecTiming(s *tokenizer.Spec, t export.TimingTables, label string) Timing {
	var fallback Timing = EmpiricalTiming{Quantiles: []time.Duration{time.Millisecond}}
	if q := t.InterArrivalNs[label]; len(q) > 0 {
		fallback = EmpiricalTiming{Quantiles: durations(q)}
	} else if !s.Timing {
		slog.Warn("the model has no timing tokens and the bundle no inter-arrival table for this label: packets are spaced 1 ms apart", "label", label)
	}
	if !s.Timing {
		return fallback
	}
	edges := make([]time.Duration, s.DtBuckets+1)
	for k := 0; k < s.DtBuckets; k++ {
		lo, hi := s.DtBounds(k)
		edges[k] = time.Duration(lo)
		if k == s.DtBuckets-1 {
			hi = 2 * s.DtMaxNs // the open last bucket: up to twice its lower edge
		}
		edges[k+1] = time.Duration(hi)
	}
	bt := BucketTiming{Edges: edges, Fallback: fallback}
	for _, q := range t.BucketNs {
		bt.Quantiles = append(bt.Quantiles, durations(q))
	}
	return bt
}

func durations(ns []int64) []time.Duration {
	d := make([]time.Duration, len(ns))
	for i, v := range ns {
		d[i] = time.Duration(v)
	}
	slices.Sort(d)
	return d
}

// NewPacketWriter writes a trace through pcapout's packet check: IPv4
// header checksums recomputed, length fields shorter than the bytes raised,
// invalid packets written as generated and counted in Checks; with
// FreshHosts set, addresses are mapped first.
func (b *Bundle) NewPacketWriter(w io.Writer) (PacketWriter, error) {
	if b.Spec.Layout == tokenizer.LayoutNetSSM {
		return NewRowPcapWriter(w, &b.Spec, b.FreshHosts, &b.Checks)
	}
	check := PacketCheck(pcapoutCheck)
	if b.FreshHosts != nil {
		check = b.FreshHosts.Before(check)
	}
	return NewPcapWriter(w, check, &b.Checks)
}

func pcapoutCheck(ip []byte) (int, bool, error) {
	n, rep, err := pcapout.Check(ip)
	return n, rep.Length, err
}
