package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/netssm/netssm/internal/progress"
	"github.com/netssm/netssm/ort"
)

// trainer is one run in progress: the engine that steps the model, the
// loader that feeds it, the validator, the run directory's metrics log, and
// the counters every checkpoint records.
type trainer struct {
	ctx    context.Context
	runDir string
	cfg    RunConfig
	model  Model
	data   Data
	so     ort.SessionOptions

	eng     *Engine
	loader  *Loader
	val     *Validator // nil without held-out traces
	unigram []float64  // the unigram baseline, from the training traces
	metrics *metricsLog
	budget  *budget
	bar     *progress.Bar

	step, tokens int64
	best         float64 // best validation loss so far (+Inf before the first)
	lastLoss     float64 // training loss of the last step
	lastCkpt     string
	lastVal      *ValResult
	window       throughputWindow
}

// throughputWindow is where the current tokens-per-second measurement began.
type throughputWindow struct {
	start  time.Time
	tokens int64
}

// Train runs (or resumes) training into runDir. It stops at the budget, at an
// error, or when ctx is cancelled (Ctrl-C, SIGTERM), saving a checkpoint first.
func Train(ctx context.Context, runDir string, cfg RunConfig, m Model, data Data, resume bool) (Result, error) {
	t, err := newTrainer(ctx, runDir, cfg, m, data, resume)
	if err != nil {
		return Result{}, err
	}
	defer t.close()
	for !t.budget.spent(t.step) {
		if ctx.Err() != nil {
			return t.interrupted()
		}
		w, err := t.loader.Next()
		if err != nil {
			return Result{}, err
		}
		row, err := t.trainStep(w)
		if err != nil {
			return Result{}, err
		}
		final := t.budget.spent(t.step)
		v, evalTime, err := t.maybeValidate(final, &row)
		if err != nil {
			return Result{}, err
		}
		// The metrics row goes out before the checkpoint: a run killed in
		// between resumes from the older checkpoint and drops the newer rows.
		if t.validationDue(final) || t.step%max(t.cfg.LogEvery, 1) == 0 {
			if err := t.log(row, evalTime); err != nil {
				return Result{}, err
			}
		}
		if err := t.maybeCheckpoint(v); err != nil {
			return Result{}, err
		}
	}
	if err := t.finalValidation(); err != nil {
		return Result{}, err
	}
	if t.lastCkpt == "" || t.step == 0 || t.val == nil {
		if err := t.checkpoint(math.NaN(), false); err != nil {
			return Result{}, err
		}
	}
	return t.result(false), nil
}

// newTrainer prepares a run: the memory check, the run directory (its
// config, or the checkpoint to resume), the engine, data, validator, metrics
// log and progress bar.
func newTrainer(ctx context.Context, runDir string, cfg RunConfig, m Model, data Data, resume bool) (*trainer, error) {
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating run directory: %w", err)
	}
	if err := checkRunMemory(cfg, m); err != nil {
		return nil, err
	}
	t := &trainer{ctx: ctx, runDir: runDir, cfg: cfg, model: m, data: data, best: math.Inf(1),
		so: ort.SessionOptions{EP: cfg.EP, Threads: cfg.Threads, IOBinding: cfg.IOBinding}}
	var ck *Checkpoint
	var err error
	if resume {
		if ck, err = latestCheckpoint(runDir); err != nil {
			return nil, err
		}
	} else if err := writeJSON(filepath.Join(runDir, "config.json"), cfg); err != nil {
		return nil, err
	}
	if err := t.open(); err != nil {
		t.close()
		return nil, err
	}
	if err := t.restore(ck); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

// checkRunMemory refuses a run whose estimated peak memory exceeds what the
// machine (or, under CUDA, the GPU) has free.
func checkRunMemory(cfg RunConfig, m Model) error {
	if m.MemoryFor == nil {
		return nil
	}
	est, what := m.MemoryFor(cfg.Batch, cfg.Ctx), fmt.Sprintf("training with --batch %d --ctx %d", cfg.Batch, cfg.Ctx)
	if cfg.EP == "cuda" { // the activations live on the GPU
		return CheckGPUMemory(est, 0, what)
	}
	return CheckMemory(est, what)
}

// latestCheckpoint loads the run's newest good checkpoint, saying which
// corrupt ones it passed over.
func latestCheckpoint(runDir string) (*Checkpoint, error) {
	ck, path, skipped, err := LoadLatest(runDir)
	if err != nil {
		return nil, err
	}
	for _, s := range skipped {
		slog.Warn("skipping a corrupt checkpoint; resuming from the previous one", "why", s)
		fmt.Fprintf(os.Stderr, "warning: %s; falling back to the previous checkpoint\n", s)
	}
	slog.Info("resuming", "checkpoint", path, "step", ck.Header.Step)
	return ck, nil
}

// open compiles the train step and builds the loader and the validator.
func (t *trainer) open() error {
	cfg, m := t.cfg, t.model
	sg, err := BuildTrainStep("train_step", cfg.Batch, cfg.Ctx, m.Loss, cfg.Opt)
	if err != nil {
		return err
	}
	if t.eng, err = NewEngine(sg, cfg.Batch, cfg.Ctx, m.Init(cfg.Seed), cfg.Opt, t.so); err != nil {
		return err
	}
	if t.loader, err = NewLoader(t.data.Train, cfg.Batch, cfg.Ctx, cfg.Mode, cfg.Seed, cfg.Segment, m.PacketToken); err != nil {
		return fmt.Errorf("training data: %w", err)
	}
	if cfg.RemapAddresses {
		if m.Remap == nil {
			return fmt.Errorf("address re-mapping asked for, but the model has no re-mapping function")
		}
		if err := t.loader.SetRemap(m.Remap); err != nil {
			return fmt.Errorf("training data: %w", err)
		}
	}
	if m.Restart != nil {
		t.loader.SetRestart(m.Restart)
	}
	return t.openValidator()
}

// openValidator compiles the validation graph when there are held-out
// traces, with the unigram baseline of the training traces.
func (t *trainer) openValidator() error {
	if t.data.Val == nil || t.data.Val.NumTraces() == 0 {
		return nil
	}
	var err error
	if t.unigram, err = UnigramTable(t.data.Train, t.model.Vocab); err != nil {
		return fmt.Errorf("unigram baseline: %w", err)
	}
	eg, err := BuildEvalStep("val_step", t.cfg.Batch, t.cfg.Ctx, t.model.Loss)
	if err != nil {
		return err
	}
	t.val, err = NewValidator(eg, t.data.Val, t.cfg.Batch, t.cfg.Ctx, t.cfg.EvalTokens, t.unigram, t.model.PacketToken, t.so)
	return err
}

// restore continues from ck (nil: a fresh run), then opens the metrics log,
// the budget clock and the progress bar where the run stands.
func (t *trainer) restore(ck *Checkpoint) error {
	truncateAfter, elapsedBefore := int64(-1), 0.0
	if ck != nil {
		if err := t.eng.Restore(ck); err != nil {
			return fmt.Errorf("restoring checkpoint: %w", err)
		}
		if err := t.loader.Restore(ck.Header.DataState); err != nil {
			return err
		}
		h := ck.Header
		t.step, t.tokens, t.lastLoss = h.Step, h.Tokens, h.LastLoss
		if h.BestVal != 0 {
			t.best = h.BestVal
		}
		truncateAfter, elapsedBefore = h.Step, h.ElapsedSecs
	}
	var err error
	if t.metrics, err = openMetrics(filepath.Join(t.runDir, "metrics.jsonl"), truncateAfter); err != nil {
		return err
	}
	t.budget = newBudget(t.cfg, elapsedBefore)
	barMax := t.budget.totalSteps
	if barMax == 0 {
		barMax = -1
	}
	t.bar = progress.New(barMax, "training", "steps")
	t.bar.Set(t.step)
	t.window = throughputWindow{time.Now(), t.tokens}
	return nil
}

// close releases the sessions and files; safe on a half-built trainer.
func (t *trainer) close() {
	if t.bar != nil {
		t.bar.Finish()
	}
	if t.metrics != nil {
		t.metrics.Close()
	}
	if t.val != nil {
		t.val.Close()
	}
	if t.eng != nil {
		t.eng.Close()
	}
}

// trainStep runs one optimiser step on w and returns its metrics row.
func (t *trainer) trainStep(w *Window) (MetricsRow, error) {
	lr := t.budget.lr(t.step)
	loss, norm, err := t.eng.Step(w, lr)
	if errors.Is(err, ErrNonFinite) {
		where := "no checkpoint was written yet"
		if t.lastCkpt != "" {
			where = "the last good checkpoint is " + t.lastCkpt
		}
		return MetricsRow{}, fmt.Errorf("training stopped at step %d: %v; %s (try a lower --lr)", t.step+1, err, where)
	}
	if err != nil {
		return MetricsRow{}, fmt.Errorf("step %d: %w", t.step+1, err)
	}
	t.step++
	t.tokens += int64(w.Tokens)
	t.lastLoss = loss
	t.bar.Set(t.step)
	t.bar.Describe(fmt.Sprintf("step %d loss %.3f", t.step, loss))
	return MetricsRow{Step: t.step, Tokens: t.tokens, Loss: loss, LR: lr, GradNorm: norm, ElapsedSecs: t.budget.elapsed()}, nil
}

// validationDue says whether this step validates: every EvalEvery steps and
// at the last one.
func (t *trainer) validationDue(final bool) bool {
	return final || (t.cfg.EvalEvery > 0 && t.step%t.cfg.EvalEvery == 0)
}

// maybeValidate runs a (bounded) validation pass when one is due and adds
// its figures to row; it returns the result (nil when none ran) and the time
// it took, which the throughput leaves out.
func (t *trainer) maybeValidate(final bool, row *MetricsRow) (*ValResult, time.Duration, error) {
	if t.val == nil || !t.validationDue(final) {
		return nil, 0, nil
	}
	start := time.Now()
	params, err := t.eng.paramTensors()
	if err != nil {
		return nil, 0, err
	}
	r, err := t.val.Run(t.ctx, params, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("validation at step %d: %w", t.step, err)
	}
	t.lastVal = &r
	row.addValidation(&r)
	return &r, time.Since(start), nil
}

// addValidation records a validation result in a metrics row.
func (row *MetricsRow) addValidation(v *ValResult) {
	row.ValLoss, row.Baseline = &v.Loss, &v.Unigram
	if !math.IsNaN(v.BitsPerPacket) {
		row.ValBitsPkt = &v.BitsPerPacket
	}
}

// log writes a metrics row with the training throughput since the last one
// (validation time not counted).
func (t *trainer) log(row MetricsRow, evalTime time.Duration) error {
	if dt := time.Since(t.window.start).Seconds() - evalTime.Seconds(); dt > 0 {
		row.TokensPerS = float64(t.tokens-t.window.tokens) / dt
	}
	t.window = throughputWindow{time.Now(), t.tokens}
	if err := t.metrics.write(row); err != nil {
		return fmt.Errorf("writing metrics: %w", err)
	}
	return nil
}

// maybeCheckpoint saves after every validation (refreshing best.ckpt on a
// new best) and every CkptEvery steps.
func (t *trainer) maybeCheckpoint(v *ValResult) error {
	switch {
	case v != nil:
		isBest := v.Loss < t.best
		if isBest {
			t.best = v.Loss
		}
		return t.checkpoint(v.Loss, isBest)
	case t.cfg.CkptEvery > 0 && t.step%t.cfg.CkptEvery == 0:
		return t.checkpoint(math.NaN(), false)
	}
	return nil
}

// checkpoint writes the engine's tensors, the loader's position and the
// run's counters into the run directory.
func (t *trainer) checkpoint(valLoss float64, isBest bool) error {
	entries, tensors, err := t.eng.Snapshot()
	if err != nil {
		return err
	}
	cfgJSON, _ := json.Marshal(t.cfg)
	c := &Checkpoint{Header: CheckpointHeader{
		Step: t.step, Tokens: t.tokens, BestVal: finiteOr(t.best, 0), ValLoss: finiteOr(valLoss, 0),
		ElapsedSecs: t.budget.elapsed(), LastLoss: finiteOr(t.lastLoss, 0),
		RunConfig: cfgJSON, DataState: t.loader.State(), Tensors: entries,
	}, Data: tensors}
	p, err := SaveCheckpoint(t.runDir, c, t.cfg.Keep, isBest)
	if err == nil {
		t.lastCkpt = p
	}
	return err
}

// interrupted saves a checkpoint after a signal and says how to continue.
func (t *trainer) interrupted() (Result, error) {
	if err := t.checkpoint(math.NaN(), false); err != nil {
		return Result{}, fmt.Errorf("saving a checkpoint on interrupt: %w", err)
	}
	return t.result(true), fmt.Errorf("%w at step %d; checkpoint %s (continue with --resume)", ErrInterrupted, t.step, t.lastCkpt)
}

func (t *trainer) result(interrupted bool) Result {
	return Result{Steps: t.step, Tokens: t.tokens, Loss: t.lastLoss, Val: t.lastVal, BestVal: t.best, Checkpoint: t.lastCkpt, Interrupted: interrupted}
}

// finalValidation reads every held-out token once the budget is spent (the
// periodic evaluations read a bounded share of each trace) and logs it as a
// row of its own, marked val_full.
func (t *trainer) finalValidation() error {
	if t.val == nil || t.cfg.EvalTokens <= 0 || t.ctx.Err() != nil {
		return nil
	}
	full, owned, err := t.fullValidator()
	if err != nil {
		return err
	}
	if owned {
		defer full.Close()
	}
	t.bar.Finish()
	r, err := t.runWithProgress(full)
	if t.ctx.Err() != nil {
		// Interrupted: the last checkpoint stands; the full row is left out.
		return fmt.Errorf("%w during the final validation (step %d is checkpointed)", ErrInterrupted, t.step)
	}
	if err != nil {
		return fmt.Errorf("final validation: %w", err)
	}
	t.lastVal = &r
	row := MetricsRow{Step: t.step, Tokens: t.tokens, Loss: t.lastLoss, ValFull: true, ElapsedSecs: t.budget.elapsed()}
	row.addValidation(&r)
	if err := t.metrics.write(row); err != nil {
		return fmt.Errorf("writing metrics: %w", err)
	}
	return nil
}

// fullValidator is a validator that reads every held-out token, in the
// layout that needs the fewest Runs: the periodic validator unbounded, or a
// new one of fewer, longer rows, which the caller then owns (and closes).
func (t *trainer) fullValidator() (v *Validator, owned bool, err error) {
	rows, window, err := t.val.FullPassLayout()
	if err != nil || rows == t.cfg.Batch {
		full := *t.val // shares the session and state buffers
		full.maxTokens = 0
		return &full, false, nil
	}
	eg, err := BuildEvalStep("val_full", rows, window, t.model.Loss)
	if err != nil {
		return nil, false, err
	}
	slog.Info("final validation layout", "rows", rows, "window", window)
	v, err = NewValidator(eg, t.data.Val, rows, window, 0, t.unigram, t.model.PacketToken, t.so)
	return v, err == nil, err
}

// runWithProgress runs a validation pass behind a progress bar.
func (t *trainer) runWithProgress(v *Validator) (ValResult, error) {
	params, err := t.eng.paramTensors()
	if err != nil {
		return ValResult{}, err
	}
	var bar *progress.Bar
	r, err := v.Run(t.ctx, params, func(done, total int64) {
		if bar == nil {
			bar = progress.New(total, "final validation on every held-out token", "tokens")
		}
		bar.Set(done)
	})
	if bar != nil {
		bar.Finish()
	}
	return r, err
}
