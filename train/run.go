package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/netssm/netssm/internal/atomicfile"
	"github.com/netssm/netssm/internal/progress"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/plots"
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
	Loss      LossBuilder
	Init      func(seed uint64) map[string][]float32
	Vocab     int
	PktToken  int                        // id of <pkt> (for bits/packet), −1 if none
	MemoryFor func(batch, ctx int) int64 // estimated peak bytes of a train step
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

// Train runs (or resumes) training into runDir. It stops at the budget, at an
// error, or when ctx is cancelled (Ctrl-C, SIGTERM), saving a checkpoint first.
func Train(ctx context.Context, runDir string, cfg RunConfig, m Model, data Data, resume bool) (res Result, err error) {
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return res, fmt.Errorf("creating run directory: %w", err)
	}
	if m.MemoryFor != nil {
		est, what := m.MemoryFor(cfg.Batch, cfg.Ctx), fmt.Sprintf("training with --batch %d --ctx %d", cfg.Batch, cfg.Ctx)
		check := CheckMemory(est, what)
		if cfg.EP == "cuda" { // the activations live on the GPU
			check = CheckGPUMemory(est, 0, what)
		}
		if check != nil {
			return res, check
		}
	}
	var ck *Checkpoint
	if resume {
		var path string
		var skipped []string
		ck, path, skipped, err = LoadLatest(runDir)
		if err != nil {
			return res, err
		}
		for _, s := range skipped {
			slog.Warn("skipping a corrupt checkpoint; resuming from the previous one", "why", s)
			fmt.Fprintf(os.Stderr, "warning: %s; falling back to the previous checkpoint\n", s)
		}
		slog.Info("resuming", "checkpoint", path, "step", ck.Header.Step)
	} else {
		if err := writeJSON(filepath.Join(runDir, "config.json"), cfg); err != nil {
			return res, err
		}
	}

	so := ort.SessionOptions{EP: cfg.EP, Threads: cfg.Threads, IOBinding: cfg.IOBinding}
	sg, err := BuildTrainStep("train_step", cfg.Batch, cfg.Ctx, m.Loss, cfg.Opt)
	if err != nil {
		return res, err
	}
	eng, err := NewEngine(sg, cfg.Batch, cfg.Ctx, m.Init(cfg.Seed), cfg.Opt, so)
	if err != nil {
		return res, err
	}
	defer eng.Close()

	loader, err := NewLoader(data.Train, cfg.Batch, cfg.Ctx, cfg.Mode, cfg.Seed, cfg.Segment, m.PktToken)
	if err != nil {
		return res, fmt.Errorf("training data: %w", err)
	}
	if cfg.RemapAddresses {
		if m.Remap == nil {
			return res, fmt.Errorf("address re-mapping asked for, but the model has no re-mapping function")
		}
		if err := loader.SetRemap(m.Remap); err != nil {
			return res, fmt.Errorf("training data: %w", err)
		}
	}
	if m.Restart != nil {
		loader.SetRestart(m.Restart)
	}
	var val *Validator
	var uni []float64
	if data.Val != nil && data.Val.NumTraces() > 0 {
		uni, err = UnigramTable(data.Train, m.Vocab)
		if err != nil {
			return res, fmt.Errorf("unigram baseline: %w", err)
		}
		eg, err := BuildEvalStep("val_step", cfg.Batch, cfg.Ctx, m.Loss)
		if err != nil {
			return res, err
		}
		if val, err = NewValidator(eg, data.Val, cfg.Batch, cfg.Ctx, cfg.EvalTokens, uni, m.PktToken, so); err != nil {
			return res, err
		}
		defer val.Close()
	}

	step, tokens := int64(0), int64(0)
	best := math.Inf(1)
	elapsedBefore := 0.0
	resumedLoss := 0.0 // training loss at the checkpoint resumed from
	if ck != nil {
		if err := eng.Restore(ck); err != nil {
			return res, fmt.Errorf("restoring checkpoint: %w", err)
		}
		if err := loader.Restore(ck.Header.DataState); err != nil {
			return res, err
		}
		step, tokens, best = ck.Header.Step, ck.Header.Tokens, ck.Header.BestVal
		if best == 0 {
			best = math.Inf(1)
		}
		var extra struct {
			Elapsed float64 `json:"elapsed_s"`
			Loss    float64 `json:"loss"`
		}
		json.Unmarshal(ck.Header.RNGState, &extra)
		elapsedBefore, resumedLoss = extra.Elapsed, extra.Loss
	}
	metrics, err := openMetrics(filepath.Join(runDir, "metrics.jsonl"), map[bool]int64{true: step, false: -1}[ck != nil])
	if err != nil {
		return res, err
	}
	defer metrics.Close()

	total := cfg.totalSteps()
	sched := Schedule{Peak: cfg.LR, Warmup: cfg.Warmup, Total: total, MinRatio: cfg.MinLRRatio}
	started := time.Now()
	elapsed := func() float64 { return elapsedBefore + time.Since(started).Seconds() }
	barMax := total
	if barMax == 0 {
		barMax = -1
	}
	bar := progress.New(barMax, "training", "steps")
	bar.Set(step)
	defer bar.Finish()

	lastCkpt := ""
	lastLoss := resumedLoss
	save := func(valLoss float64, isBest bool) error {
		entries, tensors, err := eng.Snapshot()
		if err != nil {
			return err
		}
		cfgJSON, _ := json.Marshal(cfg)
		rng, _ := json.Marshal(map[string]float64{"elapsed_s": elapsed(), "loss": finiteOr(lastLoss, 0)})
		c := &Checkpoint{Header: CheckpointHeader{
			Step: step, Tokens: tokens, BestVal: finiteOr(best, 0), ValLoss: finiteOr(valLoss, 0),
			RunConfig: cfgJSON, DataState: loader.State(), RNGState: rng, Tensors: entries,
		}, Data: tensors}
		p, err := SaveCheckpoint(runDir, c, cfg.Keep, isBest)
		if err == nil {
			lastCkpt = p
		}
		return err
	}
	evaluate := func() (*ValResult, error) {
		if val == nil {
			return nil, nil
		}
		params, err := eng.paramTensors()
		if err != nil {
			return nil, err
		}
		r, err := val.Run(ctx, params, nil)
		if err != nil {
			return nil, fmt.Errorf("validation at step %d: %w", step, err)
		}
		return &r, nil
	}

	windowStart, tokensAtWindow := time.Now(), tokens
	var lastVal *ValResult
	for {
		if total > 0 && step >= total {
			break
		}
		if cfg.TimeBudget > 0 && elapsed() >= time.Duration(cfg.TimeBudget).Seconds() {
			break
		}
		if ctx.Err() != nil {
			if err := save(math.NaN(), false); err != nil {
				return res, fmt.Errorf("saving a checkpoint on interrupt: %w", err)
			}
			res = Result{Steps: step, Tokens: tokens, Loss: lastLoss, BestVal: best, Checkpoint: lastCkpt, Interrupted: true}
			return res, fmt.Errorf("%w at step %d; checkpoint %s (continue with --resume)", ErrInterrupted, step, lastCkpt)
		}
		w, err := loader.Next()
		if err != nil {
			return res, err
		}
		lr := sched.LR(step)
		if total == 0 && cfg.TimeBudget > 0 {
			// Time budget: the schedule runs on the fraction of time spent.
			frac := elapsed() / time.Duration(cfg.TimeBudget).Seconds()
			lr = Schedule{Peak: cfg.LR, Warmup: cfg.Warmup, Total: cfg.Warmup + 1_000_000, MinRatio: cfg.MinLRRatio}.LR(cfg.Warmup + int64(frac*1_000_000))
			if step < cfg.Warmup {
				lr = sched.LR(step)
			}
		}
		loss, norm, err := eng.Step(w, lr)
		if errors.Is(err, ErrNonFinite) {
			where := "no checkpoint was written yet"
			if lastCkpt != "" {
				where = "the last good checkpoint is " + lastCkpt
			}
			return res, fmt.Errorf("training stopped at step %d: %v; %s (try a lower --lr)", step+1, err, where)
		}
		if err != nil {
			return res, fmt.Errorf("step %d: %w", step+1, err)
		}
		step++
		tokens += int64(w.Tokens)
		lastLoss = loss
		bar.Set(step)
		bar.Describe(fmt.Sprintf("step %d loss %.3f", step, loss))

		final := (total > 0 && step >= total) || (cfg.TimeBudget > 0 && elapsed() >= time.Duration(cfg.TimeBudget).Seconds())
		row := MetricsRow{Step: step, Tokens: tokens, Loss: loss, LR: lr, GradNorm: norm, ElapsedSecs: elapsed()}
		logNow := step%max(cfg.LogEvery, 1) == 0 || final
		var v *ValResult
		evalStart := time.Now()
		if (cfg.EvalEvery > 0 && step%cfg.EvalEvery == 0) || final {
			if v, err = evaluate(); err != nil {
				return res, err
			}
			if v != nil {
				lastVal = v
				row.ValLoss, row.Baseline = &v.Loss, &v.Unigram
				if !math.IsNaN(v.BitsPerPacket) {
					row.ValBitsPkt = &v.BitsPerPacket
				}
			}
			logNow = true
		}
		// The metrics row goes out before the checkpoint: a run killed in
		// between resumes from the older checkpoint and drops the newer rows.
		evalTime := time.Since(evalStart)
		if logNow {
			// Training throughput: the validation pass is not counted.
			dt := time.Since(windowStart).Seconds() - evalTime.Seconds()
			if dt > 0 {
				row.TokensPerS = float64(tokens-tokensAtWindow) / dt
			}
			windowStart, tokensAtWindow = time.Now(), tokens
			if err := metrics.write(row); err != nil {
				return res, fmt.Errorf("writing metrics: %w", err)
			}
		}
		switch {
		case v != nil:
			isBest := v.Loss < best
			if isBest {
				best = v.Loss
			}
			if err := save(v.Loss, isBest); err != nil {
				return res, err
			}
		case cfg.CkptEvery > 0 && step%cfg.CkptEvery == 0:
			if err := save(math.NaN(), false); err != nil {
				return res, err
			}
		}
	}
	if val != nil && cfg.EvalTokens > 0 && ctx.Err() == nil {
		// Periodic evaluations read a bounded share of each held-out trace;
		// the final one reads all of them.
		full := *val
		full.maxTokens = 0
		if rows, window, err := val.FullPassLayout(); err == nil && rows != cfg.Batch {
			eg, err := BuildEvalStep("val_full", rows, window, m.Loss)
			if err != nil {
				return res, err
			}
			fv, err := NewValidator(eg, data.Val, rows, window, 0, uni, m.PktToken, so)
			if err != nil {
				return res, err
			}
			defer fv.Close()
			full = *fv
			slog.Info("final validation layout", "rows", rows, "window", window)
		}
		bar.Finish()
		var vbar *progress.Bar
		params, err := eng.paramTensors()
		if err != nil {
			return res, err
		}
		r, err := full.Run(ctx, params, func(done, total int64) {
			if vbar == nil {
				vbar = progress.New(total, "final validation on every held-out token", "tokens")
			}
			vbar.Set(done)
		})
		if vbar != nil {
			vbar.Finish()
		}
		if ctx.Err() != nil {
			// Interrupted: the last checkpoint stands; the full row is left out.
			return res, fmt.Errorf("%w during the final validation (step %d is checkpointed)", ErrInterrupted, step)
		}
		if err != nil {
			return res, fmt.Errorf("final validation: %w", err)
		}
		lastVal = &r
		row := MetricsRow{Step: step, Tokens: tokens, Loss: lastLoss, ValLoss: &r.Loss, Baseline: &r.Unigram, ValFull: true, ElapsedSecs: elapsed()}
		if !math.IsNaN(r.BitsPerPacket) {
			row.ValBitsPkt = &r.BitsPerPacket
		}
		if err := metrics.write(row); err != nil {
			return res, fmt.Errorf("writing metrics: %w", err)
		}
	}
	if lastCkpt == "" || step == 0 || (val == nil) {
		if err := save(math.NaN(), false); err != nil {
			return res, err
		}
	}
	if err := PlotLoss(runDir); err != nil {
		slog.Warn("loss plot failed", "err", err)
	}
	return Result{Steps: step, Tokens: tokens, Loss: lastLoss, Val: lastVal, BestVal: best, Checkpoint: lastCkpt}, nil
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

// PlotLoss draws RUN_DIR/loss.png and loss.svg from metrics.jsonl: training
// loss, validation loss and the unigram baseline against tokens seen.
func PlotLoss(runDir string) error {
	rows, err := ReadMetrics(filepath.Join(runDir, "metrics.jsonl"))
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return fmt.Errorf("%s has no rows yet", filepath.Join(runDir, "metrics.jsonl"))
	}
	tr := plots.Series{Name: "train"}
	va := plots.Series{Name: "validation"}
	un := plots.Series{Name: "unigram baseline (val)"}
	for _, r := range rows {
		x := float64(r.Tokens)
		tr.X, tr.Y = append(tr.X, x), append(tr.Y, r.Loss)
		if r.ValLoss != nil {
			va.X, va.Y = append(va.X, x), append(va.Y, *r.ValLoss)
		}
		if r.Baseline != nil {
			un.X, un.Y = append(un.X, x), append(un.Y, *r.Baseline)
		}
	}
	series := []plots.Series{tr}
	for _, s := range []plots.Series{va, un} {
		if len(s.X) > 0 {
			series = append(series, s)
		}
	}
	return plots.Lines(filepath.Join(runDir, "loss"), "Training loss", "tokens seen", "loss (nats/token)", false, series...)
}

var _ = rand.N[int]
