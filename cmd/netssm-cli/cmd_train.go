package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/netssm/netssm/capture/cryptopan"
	"github.com/netssm/netssm/model"
	"github.com/netssm/netssm/tokenizer"
	"github.com/netssm/netssm/train"
)

func init() {
	register(&cli.Command{
		Name:  "train",
		Usage: "train a Mamba-2 model on a tokenized dataset (CPU or CUDA)",
		Description: "Example:\n   netssm-cli train --data traces.parquet --val-frac 0.2 --preset small --ctx 2048 --batch 4 --time 30m --out runs/small\n" +
			"   netssm-cli train --out runs/small --resume        # continue a stopped run\n\n" +
			"Stream mode (default) gives each batch row its own walk through whole traces in\n" +
			"windows of --ctx tokens and carries the recurrent state from window to window, so\n" +
			"the model sees captures of any length with memory bounded by --ctx. Validation\n" +
			"uses whole traces held out by --val or --val-frac (split by trace, never by packet)\n" +
			"and is reported next to a unigram (byte frequency) baseline. Ctrl-C or SIGTERM\n" +
			"saves a checkpoint before exiting.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data", Usage: "training dataset (Parquet, from `netssm-cli tokenize`)"},
			&cli.StringFlag{Name: "val", Usage: "validation dataset (default: --val-frac of --data's traces)"},
			&cli.Float64Flag{Name: "val-frac", Value: 0.1, Usage: "share of traces held out for validation when --val is not given"},
			&cli.StringFlag{Name: "preset", Value: "small", Usage: "model size: tiny | small | base | paper"},
			&cli.IntFlag{Name: "ctx", Value: 2048, Usage: "tokens per window"},
			&cli.IntFlag{Name: "chunk", Usage: "SSD chunk length Q (0: the preset's); changes speed, not the model's function"},
			&cli.IntFlag{Name: "packet-positions", Value: 128, Usage: "add a learned embedding of each token's offset in its packet, offsets 0…K−1 (0: off, the plain Mamba-2 of the presets)"},
			&cli.IntFlag{Name: "prev-packets", Value: 0, Usage: "add copy logits: boost, for the next token, its counterparts at the same offset in the J packets before, by a learned bias per offset and a gate on the hidden state (0: off, the default; see docs/training.md for when to use it)"},
			&cli.IntFlag{Name: "packet-history", Value: 256, Usage: "with --prev-packets: how many tokens back a previous packet's <pkt> may lie"},
			&cli.BoolFlag{Name: "label-embedding", Value: true, Usage: "add a learned embedding of the trace's label to every position's input (--label-embedding=false: the label is only the trace's first token, as in NetSSM)"},
			&cli.IntFlag{Name: "batch", Value: 4, Usage: "windows per step"},
			&cli.Int64Flag{Name: "steps", Usage: "budget: optimiser steps"},
			&cli.Int64Flag{Name: "tokens", Usage: "budget: training tokens"},
			&cli.DurationFlag{Name: "time", Usage: "budget: wall-clock time (e.g. 30m)"},
			&cli.Float64Flag{Name: "lr", Value: 2e-3, Usage: "peak learning rate"},
			&cli.Int64Flag{Name: "warmup", Value: 50, Usage: "warm-up steps"},
			&cli.Float64Flag{Name: "min-lr-ratio", Value: 0.1, Usage: "the cosine decay ends at this fraction of --lr"},
			&cli.Float64Flag{Name: "weight-decay", Value: train.DefaultAdamW.WeightDecay, Usage: "AdamW decoupled weight decay (matrices only)"},
			&cli.Float64Flag{Name: "clip", Value: train.DefaultAdamW.ClipNorm, Usage: "global gradient-norm clip (0: off)"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed for initialisation and data order"},
			&cli.StringFlag{Name: "data-mode", Value: "stream", Usage: "stream (whole traces, state carried) | random (independent windows)"},
			&cli.IntFlag{Name: "segment", Usage: "stream mode: walk traces in segments of N tokens, each from a zero state, in shuffled order (0: whole traces)"},
			&cli.BoolFlag{Name: "remap-addresses", Usage: "stream mode: read every stretch of a capture under fresh IP addresses (a Crypto-PAn key per stretch), so the model predicts addresses from context instead of memorising the training hosts"},
			epFlag(),
			ioBindingFlag(),
			threadsFlag(),
			&cli.StringFlag{Name: "kernels", Value: model.KernelsFused, Usage: "SSD scan in netssm's fused CPU kernels (fused) or in standard ONNX ops (standard); the same model either way"},
			&cli.Int64Flag{Name: "eval-every", Value: 100, Usage: "validate (and checkpoint) every N steps"},
			&cli.Int64Flag{Name: "eval-tokens", Value: 200_000, Usage: "validation tokens per evaluation (0: all)"},
			&cli.Int64Flag{Name: "checkpoint-every", Value: 50, Usage: "checkpoint every N steps"},
			&cli.IntFlag{Name: "keep", Value: 3, Usage: "step checkpoints to keep (best.ckpt is kept too)"},
			&cli.StringFlag{Name: "out", Usage: "run directory"},
			&cli.BoolFlag{Name: "resume", Usage: "continue the run in --out from its latest good checkpoint"},
		},
		Subcommands: []*cli.Command{lossByOffsetCommand},
		Action:      trainAction,
	})
}

func trainAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("train takes no arguments (got %q); the dataset goes in --data", c.Args().Slice())
	}
	if err := checkEP(c); err != nil {
		return err
	}
	out := c.String("out")
	if out == "" {
		return usagef("--out RUN_DIR is required")
	}
	var cfg train.RunConfig
	resume := c.Bool("resume")
	if resume {
		var err error
		if cfg, err = train.ReadConfig(out); err != nil {
			return fmt.Errorf("--resume: %w", err)
		}
		// Budgets and the execution provider may change on resume.
		for _, f := range []string{"steps", "tokens", "time", "ep", "threads", "io-binding", "kernels"} {
			if c.IsSet(f) {
				switch f {
				case "steps":
					cfg.Steps = c.Int64(f)
				case "tokens":
					cfg.Tokens = c.Int64(f)
				case "time":
					cfg.TimeBudget = train.Duration(c.Duration(f))
				case "ep":
					cfg.EP = c.String(f)
				case "threads":
					cfg.Threads = c.Int(f)
				case "io-binding":
					cfg.IOBinding = c.String(f)
				case "kernels":
					cfg.Kernels = c.String(f)
				}
			}
		}
	} else {
		if c.String("data") == "" {
			return usagef("--data DATA.parquet is required")
		}
		if !c.IsSet("steps") && !c.IsSet("tokens") && !c.IsSet("time") {
			return usagef("give a budget: --steps, --tokens or --time")
		}
		if _, err := os.Stat(out + "/config.json"); err == nil {
			return fmt.Errorf("%s already holds a run: continue it with --resume or choose another --out", out)
		}
		if c.Int("ctx") < 2 || c.Int("batch") < 1 {
			return usagef("--ctx must be ≥ 2 and --batch ≥ 1")
		}
		if r := c.Float64("min-lr-ratio"); r < 0 || r > 1 {
			return usagef("--min-lr-ratio must be in [0, 1], got %g", r)
		}
		if c.Int("chunk") < 0 {
			return usagef("--chunk must be ≥ 0 (0: the preset's)")
		}
		if k := c.Int("packet-positions"); k < 0 || k == 1 || k > model.MaxPacketPositions {
			return usagef("--packet-positions must be 0 (off) or 2…%d, got %d", model.MaxPacketPositions, k)
		}
		if j := c.Int("prev-packets"); j < 0 || j > model.MaxPrevPackets {
			return usagef("--prev-packets must be 0 (off) or 1…%d, got %d", model.MaxPrevPackets, j)
		}
		if c.IsSet("packet-history") && c.Int("prev-packets") == 0 {
			return usagef("--packet-history needs --prev-packets")
		}
		if h := c.Int("packet-history"); c.Int("prev-packets") > 0 && (h < 2 || h > model.MaxPacketHistory) {
			return usagef("--packet-history must be 2…%d tokens, got %d", model.MaxPacketHistory, h)
		}
		if m := c.String("data-mode"); m != "stream" && m != "random" {
			return usagef("--data-mode must be stream or random, not %q", m)
		}
		if c.Bool("remap-addresses") && c.String("data-mode") != "stream" {
			return usagef("--remap-addresses needs --data-mode stream")
		}
		cfg = train.RunConfig{
			Data: c.String("data"), Val: c.String("val"), ValFrac: c.Float64("val-frac"), Preset: c.String("preset"),
			Ctx: c.Int("ctx"), Batch: c.Int("batch"), Steps: c.Int64("steps"), Tokens: c.Int64("tokens"),
			TimeBudget: train.Duration(c.Duration("time")), LR: c.Float64("lr"), MinLRRatio: c.Float64("min-lr-ratio"), Warmup: c.Int64("warmup"),
			Opt:  train.AdamW{Beta1: train.DefaultAdamW.Beta1, Beta2: train.DefaultAdamW.Beta2, Eps: train.DefaultAdamW.Eps, WeightDecay: c.Float64("weight-decay"), ClipNorm: c.Float64("clip")},
			Seed: c.Uint64("seed"), Mode: c.String("data-mode"), Segment: c.Int("segment"), RemapAddresses: c.Bool("remap-addresses"), EP: c.String("ep"), Threads: c.Int("threads"), IOBinding: c.String("io-binding"),
			LogEvery: 1, EvalEvery: c.Int64("eval-every"), EvalTokens: c.Int64("eval-tokens"),
			CkptEvery: c.Int64("checkpoint-every"), Keep: c.Int("keep"),
		}
	}
	mcfg, err := model.Preset(cfg.Preset)
	if err != nil {
		return usagef("--preset: %v", err)
	}
	if !resume {
		cfg.Kernels = c.String("kernels")
		if cfg.EP == "cuda" && !c.IsSet("kernels") {
			cfg.Kernels = model.KernelsStandard // the fused kernels are CPU kernels
		}
	}
	if cfg.Kernels == "" {
		cfg.Kernels = model.KernelsStandard // runs from before --kernels
	}
	kernels, err := model.ParseKernels(cfg.Kernels)
	if err != nil {
		return usagef("--%v", err)
	}
	data, spec, err := openTrainingData(&cfg)
	if err != nil {
		return err
	}
	mcfg = mcfg.WithVocab(spec.VocabSize)
	if spec.Layout == tokenizer.LayoutFlow && cfg.RemapAddresses {
		return usagef("--remap-addresses re-writes v1 address bytes; a flow-layout dataset needs sample --fresh-hosts instead")
	}
	if spec.Layout == tokenizer.LayoutNetSSM && cfg.RemapAddresses {
		return usagef("--remap-addresses re-writes packets read from their IP header; the rows of %s (layout netssm) open with their link header", cfg.Data)
	}
	if q := c.Int("chunk"); q > 0 && !resume {
		mcfg.ChunkSize = q
	}
	if k := c.Int("packet-positions"); k > 0 && !resume {
		mcfg.PacketPositions, mcfg.PacketToken = k, tokenizer.TokPkt
	}
	if j := c.Int("prev-packets"); j > 0 && !resume {
		mcfg.PrevPackets, mcfg.PacketHistory, mcfg.PacketToken = j, c.Int("packet-history"), tokenizer.TokPkt
	}
	if c.Bool("label-embedding") && len(spec.Labels) > 0 && !resume {
		mcfg.Labels, mcfg.FirstLabel = len(spec.Labels), spec.FirstLabelID
	}
	if resume {
		var saved model.Config
		decoded := json.Unmarshal(cfg.Model, &saved) == nil
		if decoded && saved.ChunkSize > 0 {
			mcfg.ChunkSize = saved.ChunkSize // the run's own chunk length, --chunk or the preset's
		}
		if decoded {
			mcfg.PacketPositions, mcfg.PacketToken = saved.PacketPositions, saved.PacketToken
			mcfg.PrevPackets, mcfg.PacketHistory = saved.PrevPackets, saved.PacketHistory
			mcfg.Labels, mcfg.FirstLabel = saved.Labels, saved.FirstLabel
		}
		if decoded && saved != mcfg {
			return fmt.Errorf("the run in %s was trained with model %v, the data now gives %v", out, saved, mcfg)
		}
		if err := checkSpecMatches(cfg.Tokenizer, spec, cfg.Data); err != nil {
			return err
		}
	} else {
		cfg.Model, _ = json.Marshal(mcfg)
		cfg.Tokenizer, _ = json.Marshal(spec)
	}
	cfg.Opt.Decays = model.WeightDecays
	if _, err := initORT(c); err != nil {
		return err
	}
	mcfg.Kernels = kernels // how the graphs compute, not part of the saved model
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := train.Model{
		Loss:        model.TrainLoss(mcfg),
		Init:        func(seed uint64) map[string][]float32 { return model.InitParams(mcfg, seed) },
		Vocab:       mcfg.VocabSize,
		PacketToken: tokenizer.TokPkt,
		MemoryFor:   func(b, l int) int64 { return model.TrainMemoryEstimate(mcfg, b, l) },
		Remap:       remapAddresses,
		Restart:     segmentRestart(spec),
	}
	fmt.Fprintf(os.Stderr, "training %s (%s parameters) on %d traces, validating on %d; run directory %s\n",
		cfg.Preset, humanInt(model.ParamCount(mcfg)), data.Train.NumTraces(), numTraces(data.Val), out)
	started := time.Now()
	res, err := train.Train(ctx, out, cfg, m, data, resume)
	if errors.Is(err, train.ErrInterrupted) {
		fmt.Fprintf(os.Stderr, "%v\n", err)
		return cli.Exit("", 130)
	}
	if err != nil {
		return err
	}
	if err := plotLoss(out); err != nil {
		slog.Warn("loss plot failed", "err", err)
	}
	fmt.Printf("trained %d steps (%s tokens) in %s; final training loss %.4f nats/token\n", res.Steps, humanInt(res.Tokens), time.Since(started).Round(time.Second), res.Loss)
	if res.Val != nil {
		fmt.Printf("validation loss %.4f nats/token (%.1f bits/packet); unigram baseline %.4f (ratio %.2f)\n",
			res.Val.Loss, res.Val.BitsPerPacket, res.Val.Unigram, res.Val.Loss/res.Val.Unigram)
	}
	fmt.Printf("checkpoint %s; loss plot %s/loss.png\nnext: netssm-cli export %s -o BUNDLE\n", res.Checkpoint, out, out)
	return nil
}

func numTraces(s train.TraceStore) int {
	if s == nil {
		return 0
	}
	return s.NumTraces()
}

func humanInt(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fG", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e4:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

// remapAddresses re-writes the IP addresses of a stretch of tokens under a
// Crypto-PAn key drawn from key: prefix-preserving, so hosts of one subnet
// stay in one subnet, and consistent within the stretch, so flows stay flows.
func remapAddresses(toks []uint16, key uint64) {
	var k [32]byte
	r := rand.New(rand.NewPCG(key, key^0x6a09e667f3bcc908))
	for i := range k {
		k[i] = byte(r.Uint32())
	}
	a, err := cryptopan.New(k[:])
	if err != nil {
		panic(err) // a 32-byte key is always accepted
	}
	tokenizer.RemapAddresses(toks, a.Addr)
}

// segmentRestart re-encodes training segments of a flow-layout dataset from
// an empty flow table (tokenizer.Restarter); other layouts need nothing.
func segmentRestart(spec tokenizer.Spec) func(trace int, toks []uint16, start, stop int) []uint16 {
	if spec.Layout != tokenizer.LayoutFlow {
		return nil
	}
	return spec.NewRestarter().Restart
}
