package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/netssm/netssm/internal/atomicfile"
)

// RunConfig is everything that defines a training run; it is written to
// RUN_DIR/config.json and into every checkpoint, so a resume needs no flags.
type RunConfig struct {
	Data       string          `json:"data"`
	Val        string          `json:"val,omitempty"`
	ValFrac    float64         `json:"val_frac,omitempty"`
	Preset     string          `json:"preset"`
	Model      json.RawMessage `json:"model"`     // the model config
	Tokenizer  json.RawMessage `json:"tokenizer"` // the dataset's tokenizer spec
	Ctx        int             `json:"ctx"`
	Batch      int             `json:"batch"`
	Steps      int64           `json:"steps,omitempty"`
	Tokens     int64           `json:"tokens,omitempty"`
	TimeBudget Duration        `json:"time,omitempty"`
	LR         float64         `json:"lr"`
	MinLRRatio float64         `json:"min_lr_ratio"`
	Warmup     int64           `json:"warmup_steps"`
	Opt        AdamW           `json:"adamw"`
	Seed       uint64          `json:"seed"`
	Mode       string          `json:"data_mode"`         // stream | random
	Segment    int             `json:"segment,omitempty"` // stream-mode unit length in tokens (0: whole traces)
	// RemapAddresses: every stretch a row walks is read under fresh IP
	// addresses (Model.Remap), so addresses must be predicted from context.
	RemapAddresses bool   `json:"remap_addresses,omitempty"`
	EP             string `json:"ep"`
	Threads        int    `json:"threads,omitempty"`
	IOBinding      string `json:"io_binding,omitempty"` // auto | on | off (ort.SessionOptions.IOBinding)
	Kernels        string `json:"kernels,omitempty"`    // fused | standard (model.Config.Kernels): how the train step computes the SSD scan
	LogEvery       int64  `json:"log_every"`
	EvalEvery      int64  `json:"eval_every"`
	EvalTokens     int64  `json:"eval_tokens"`
	CkptEvery      int64  `json:"checkpoint_every"`
	Keep           int    `json:"keep_checkpoints"`
	TrainTraces    []int  `json:"train_traces,omitempty"` // with ValFrac: the split
	ValTraces      []int  `json:"val_traces,omitempty"`
}

// Duration is a time.Duration that reads and writes as "30m".
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// Model is what the loop needs of a model, supplied by the caller.
type Model struct {
	Loss        LossBuilder
	Init        func(seed uint64) map[string][]float32
	Vocab       int
	PacketToken int                        // id of <pkt> (for bits/packet), −1 if none
	MemoryFor   func(batch, ctx int) int64 // estimated peak bytes of a train step
	// Remap re-writes the addresses of a stretch of tokens in place under
	// the given key (for RunConfig.RemapAddresses).
	Remap func(toks []uint16, key uint64)
	// Restart gives a segment that starts inside a trace as if it began the
	// trace (Loader.SetRestart); nil when the layout needs no re-encoding.
	Restart func(trace int, toks []uint16, start, stop int) []uint16
}

// Data is the split dataset.
type Data struct {
	Train TraceStore
	Val   TraceStore
}

// Result summarises a finished (or interrupted) run.
type Result struct {
	Steps       int64
	Tokens      int64
	Loss        float64
	Val         *ValResult
	BestVal     float64
	Checkpoint  string
	Interrupted bool
}

// ErrInterrupted is returned when a signal stopped the run (after saving).
var ErrInterrupted = errors.New("training interrupted")

// totalSteps is the step budget (for the schedule), from --steps or --tokens;
// 0 when only a time budget is given.
func (c *RunConfig) totalSteps() int64 {
	if c.Steps > 0 {
		return c.Steps
	}
	if c.Tokens > 0 {
		per := int64(c.Batch * c.Ctx)
		return (c.Tokens + per - 1) / per
	}
	return 0
}

func finiteOr(v, alt float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return alt
	}
	return v
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'))
}

// ReadConfig reads RUN_DIR/config.json.
func ReadConfig(runDir string) (RunConfig, error) {
	var c RunConfig
	b, err := os.ReadFile(filepath.Join(runDir, "config.json"))
	if err != nil {
		return c, fmt.Errorf("reading the run's config: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%s: %w", filepath.Join(runDir, "config.json"), err)
	}
	return c, nil
}
