package infer

import (
	"fmt"
	"time"
)

// State is one sequence's recurrent state: one flat float32 slice per state
// tensor of the model (for Mamba-2, each layer's conv_state (conv_dim, W) and
// ssm_state (H, P, N)), without the batch axis.
type State [][]float32

// Model is what generation needs from a model: a prefill for the prompt and
// batches of recurrent step decoders.
type Model interface {
	// Vocab is the number of logits per position.
	Vocab() int
	// Prefill runs one prompt and returns the logits after its last token
	// and the state it leaves. The caller owns both.
	Prefill(prompt []int) (logits []float32, st State, err error)
	// NewBatch allocates a decoder for size sequences, all state zero.
	NewBatch(size int) (Batch, error)
}

// Batch decodes size sequences together, one token each per Step, keeping
// each sequence's state in its slot. Its memory is fixed at creation.
type Batch interface {
	// Load overwrites slot's state with st (forking a prefilled prompt).
	Load(slot int, st State) error
	// Save returns a copy of slot's state (to move a sequence into another
	// batch).
	Save(slot int) (State, error)
	// Step feeds tokens[i] to slot i and returns size×Vocab logits, valid
	// until the next Step.
	Step(tokens []int) ([]float32, error)
	Close() error
}

// Grammar is one sequence's packet grammar: which token ids may come next
// given the tokens so far. The tokenizer package implements it; generation
// only consumes the masks, so the rules live in one place.
type Grammar interface {
	// Allowed sets allowed[id] for every id of the vocabulary.
	Allowed(allowed []bool)
	// Advance records the token that was chosen.
	Advance(id int) error
}

// PromptGrammar is a Grammar that takes prompt tokens under looser rules
// than it applies to generated ones (a prompt from a real capture may hold
// packets that decoding would not make).
type PromptGrammar interface {
	Grammar
	AdvancePrompt(id int) error
}

// Vocabulary names the token ids generation must recognise to assemble
// packets: byte values are ids 0–255 (token format v1).
type Vocabulary struct {
	Size     int   // number of ids (≤ the model's Vocab)
	Packet   int   // `<pkt>`: a packet starts
	EOS      int   // `<eos>`: the trace ends
	DT0      int   // `<dt:0>`; the DTBuckets timing ids follow it
	DTBucket int   // number of `<dt:k>` ids (0: the model was trained without timing)
	Pad      int   // `<pad>` (paper layout), skipped inside a packet; < 256: none
	Labels   []int // label ids, not expected inside a trace
	// RowAfterLabel: the first packet follows the label without `<pkt>`
	// (the netssm layout, whose `<pkt>` stands between packets).
	RowAfterLabel bool
}

// IsByte reports whether id is a packet byte.
func (v Vocabulary) IsByte(id int) bool { return id >= 0 && id < 256 }

// IsPad reports whether id is the padding token.
func (v Vocabulary) IsPad(id int) bool { return v.Pad >= 256 && id == v.Pad }

// DT returns the timing bucket of id, or -1.
func (v Vocabulary) DT(id int) int {
	if v.DTBucket > 0 && id >= v.DT0 && id < v.DT0+v.DTBucket {
		return id - v.DT0
	}
	return -1
}

func (v Vocabulary) validate(modelVocab int) error {
	if v.Size <= 256 || v.Size > modelVocab {
		return fmt.Errorf("vocabulary of %d ids does not fit the model's %d logits (and byte ids need 256)", v.Size, modelVocab)
	}
	for _, id := range []int{v.Packet, v.EOS} {
		if id < 256 || id >= v.Size {
			return fmt.Errorf("special token id %d outside %d…%d", id, 256, v.Size-1)
		}
	}
	if v.DTBucket > 0 && (v.DT0 < 256 || v.DT0+v.DTBucket > v.Size) {
		return fmt.Errorf("timing ids %d…%d outside the vocabulary of %d", v.DT0, v.DT0+v.DTBucket-1, v.Size)
	}
	return nil
}

// PacketDecoder rebuilds packets from a trace's tokens where a packet is
// not simply its byte tokens (tokenizer.StreamDecoder for the flow layout).
type PacketDecoder interface {
	// Token takes the next token (the prompt's too); when it ends a packet
	// it returns the packet's bytes with ended set; ok is false for a token
	// that fits no packet structure.
	Token(id int) (pkt []byte, ended, ok bool)
	// Packet returns the packet in progress as it stands.
	Packet() []byte
}

// PacketWriter writes one trace's packets (IP bytes from the IP header on) as
// pcap records to the writer it was made for; it must hand each record to
// that writer before returning. pcapout implements it (LINKTYPE_RAW, IPv4
// checksums recomputed); RawPcapWriter is the plain fallback.
type PacketWriter interface {
	WritePacket(ts time.Time, ip []byte) error
}
