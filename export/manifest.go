package export

import (
	"encoding/json"
	"time"

	"github.com/netssm/netssm/model"
)

// File names inside a bundle directory.
const (
	ManifestFile = "model.json"
	PrefillFile  = "prefill.onnx"
	StepFile     = "step.onnx"
	WeightsFile  = "weights.bin"
)

// FormatVersion is the bundle layout this package writes and reads.
const FormatVersion = 1

// Manifest is model.json: everything a reader needs to trust and use the
// bundle without running it.
type Manifest struct {
	Format     int          `json:"format"`
	Config     model.Config `json:"config"`
	ParamCount int64        `json:"param_count"`
	// Tokenizer is the tokenizer spec as the tokenizer package wrote it
	// (stored verbatim; this package does not interpret it).
	Tokenizer json.RawMessage `json:"tokenizer,omitempty"`
	Labels    []string        `json:"labels,omitempty"`
	// Timing holds the empirical inter-arrival tables used to jitter
	// timestamps inside a <dt:k> bucket or to draw them post hoc (verbatim).
	Timing     json.RawMessage `json:"timing,omitempty"`
	Provenance Provenance      `json:"provenance"`
	// ORTVersion is the ONNX Runtime version the graphs were built and
	// checked against.
	ORTVersion string    `json:"ort_version"`
	Prefill    GraphInfo `json:"prefill"`
	Step       GraphInfo `json:"step"`
	// ExternalWeights is set when the parameters live in WeightsFile (ONNX
	// external data shared by both graphs) rather than inside them.
	ExternalWeights bool `json:"external_weights,omitempty"`
	// Files records the size and sha256 of every other file of the bundle.
	Files map[string]FileSum `json:"files"`
}

// Provenance says where a model came from. Every field is optional except
// Created.
type Provenance struct {
	Tool          string            `json:"tool,omitempty"` // e.g. "netssm-cli 0.1.0"
	Created       time.Time         `json:"created"`
	Run           string            `json:"run,omitempty"`        // training run name
	Checkpoint    string            `json:"checkpoint,omitempty"` // checkpoint it was exported from
	Step          int64             `json:"step,omitempty"`       // optimizer steps taken
	Tokens        int64             `json:"tokens,omitempty"`     // training tokens seen
	ValLoss       float64           `json:"val_loss,omitempty"`   // nats/token on the validation split
	Dataset       string            `json:"dataset,omitempty"`
	DatasetSHA256 string            `json:"dataset_sha256,omitempty"`
	Seed          uint64            `json:"seed,omitempty"`
	Extra         map[string]string `json:"extra,omitempty"`
}

// GraphInfo describes one exported graph.
type GraphInfo struct {
	File   string `json:"file"`
	Batch  int    `json:"batch"`  // sequences per run
	Length int    `json:"length"` // tokens per sequence per run (1 for step)
	Float  string `json:"float"`  // "float32" or "float64": parameters, states and logits
	Nodes  int    `json:"nodes"`
	Bytes  int64  `json:"bytes"` // size of the .onnx file
	// CustomOps lists the ops outside the standard ONNX domain that the
	// graph needs, as "domain.Op" (netssm's fused kernels, which only
	// netssm's sessions run); empty for a portable graph.
	CustomOps []string `json:"custom_ops,omitempty"`
}

// FileSum is a file's size and SHA-256 (lower-case hex).
type FileSum struct {
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}
