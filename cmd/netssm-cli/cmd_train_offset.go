package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/netssm/netssm/model"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/tokenizer"
	"github.com/netssm/netssm/train"
)

// lossByOffsetCommand is `netssm-cli train loss-by-offset`.
var lossByOffsetCommand = &cli.Command{
	Name:      "loss-by-offset",
	Usage:     "say where a run's held-out loss goes: nats per token by offset in the packet",
	ArgsUsage: "RUN_DIR",
	Description: "Example:\n   netssm-cli train loss-by-offset runs/small\n" +
		"   netssm-cli train loss-by-offset --checkpoint runs/small/checkpoints/step-00000500.ckpt --val heldout.parquet runs/small\n\n" +
		"Runs the run's validation (the same walk through whole held-out traces, state carried\n" +
		"from window to window) with a graph that reports every target token's loss, and\n" +
		"groups the losses by the token's offset in its packet: 0 at <pkt>, 1 at <dt:k> (or\n" +
		"the first header byte without timing), and so on; offsets from 127 on, and tokens\n" +
		"before the first packet, share the last row. Each row gives its share of the tokens,\n" +
		"the model's mean loss, the unigram baseline's, and the nats per token it contributes.",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "checkpoint", Usage: "checkpoint to score (default: the run's best.ckpt, else its latest)"},
		&cli.StringFlag{Name: "val", Usage: "held-out dataset (default: the run's own validation traces)"},
		&cli.Int64Flag{Name: "tokens", Value: 200_000, Usage: "target tokens to score, spread over the traces as validation does (0: all)"},
		epFlag(),
		threadsFlag(),
	},
	Action: lossByOffsetAction,
}

// maxOffset bounds the offsets reported; the last row also holds the
// tokens before a trace's first <pkt>.
const maxOffset = 128

// offsetLosses accumulates nats per packet offset of the predicted token.
type offsetLosses struct {
	model, unigram, n [maxOffset]float64
}

// packetOffset is the offset of toks[i] in its packet: 0 at <pkt>.
func packetOffset(toks []uint16, i int) int {
	for off := 0; off < maxOffset-1 && i-off >= 0; off++ {
		if toks[i-off] == tokenizer.TokPkt {
			return off
		}
	}
	return maxOffset - 1
}

func (l *offsetLosses) write(w io.Writer, title string) {
	var n, sum, uni float64
	for o := range maxOffset {
		n, sum, uni = n+l.n[o], sum+l.model[o], uni+l.unigram[o]
	}
	fmt.Fprintf(w, "%s: %.0f tokens, %.4f nats/token (unigram baseline %.4f)\n", title, n, sum/n, uni/n)
	fmt.Fprintf(w, "%8s %7s %9s %9s %12s\n", "offset", "share", "model", "unigram", "contributes")
	for o := range maxOffset {
		if l.n[o] > 0 && l.n[o]/n >= 0.0005 {
			fmt.Fprintf(w, "%8d %7.3f %9.3f %9.3f %12.4f\n", o, l.n[o]/n, l.model[o]/l.n[o], l.unigram[o]/l.n[o], l.model[o]/n)
		}
	}
}

func lossByOffsetAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("loss-by-offset takes one RUN_DIR")
	}
	if err := checkEP(c); err != nil {
		return err
	}
	runDir := c.Args().First()
	cfg, err := train.ReadConfig(runDir)
	if err != nil {
		return err
	}
	if c.IsSet("val") {
		cfg.Val = c.String("val")
	}
	var mcfg model.Config
	if err := json.Unmarshal(cfg.Model, &mcfg); err != nil {
		return fmt.Errorf("%s: the model config is unreadable: %w", filepath.Join(runDir, "config.json"), err)
	}
	data, _, err := openTrainingData(&cfg)
	if err != nil {
		return err
	}
	if data.Val == nil || data.Val.NumTraces() == 0 {
		return usagef("the run in %s holds out no traces; name a held-out dataset with --val", runDir)
	}
	ckPath, err := scoredCheckpoint(runDir, c.String("checkpoint"))
	if err != nil {
		return err
	}
	if _, err := initORT(c); err != nil {
		return err
	}
	losses, err := lossByOffset(c.Context, cfg, mcfg, data, ckPath, c.Int64("tokens"), ort.SessionOptions{EP: c.String("ep"), Threads: c.Int("threads")})
	if err != nil {
		return err
	}
	losses.write(os.Stdout, ckPath)
	return nil
}

// scoredCheckpoint is the checkpoint given, or the run's best, or its latest.
func scoredCheckpoint(runDir, given string) (string, error) {
	if given != "" {
		return given, nil
	}
	best := filepath.Join(runDir, "checkpoints", "best.ckpt")
	if _, err := os.Stat(best); err == nil {
		return best, nil
	}
	_, path, _, err := train.LoadLatest(runDir)
	return path, err
}

// lossByOffset runs the run's validation walk with the per-token loss graph
// and groups every target's loss by its packet offset.
func lossByOffset(ctx context.Context, cfg train.RunConfig, mcfg model.Config, data train.Data, ckPath string, tokens int64, so ort.SessionOptions) (*offsetLosses, error) {
	params, err := checkpointParams(ckPath, mcfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, p := range params {
			p.Destroy()
		}
	}()
	unigram, err := train.UnigramTable(data.Train, mcfg.VocabSize)
	if err != nil {
		return nil, fmt.Errorf("unigram baseline: %w", err)
	}
	eg, err := train.BuildEvalStep("loss_by_offset", cfg.Batch, cfg.Ctx, model.TokenLoss(mcfg))
	if err != nil {
		return nil, err
	}
	v, err := train.NewValidator(eg, data.Val, cfg.Batch, cfg.Ctx, tokens, unigram, tokenizer.TokPkt, so)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	var l offsetLosses
	err = v.ObserveTokens(func(_ int, toks []uint16, target int, nats float64) {
		o := packetOffset(toks, target)
		l.model[o] += nats
		l.unigram[o] += unigram[toks[target]]
		l.n[o]++
	})
	if err != nil {
		return nil, err
	}
	if _, err := v.Run(ctx, params, nil); err != nil {
		return nil, fmt.Errorf("scoring %s: %w", ckPath, err)
	}
	return &l, nil
}

// checkpointParams reads a checkpoint's parameters as host tensors by name.
func checkpointParams(path string, mcfg model.Config) (map[string]*ort.HostTensor[float32], error) {
	ck, err := train.ReadCheckpoint(path)
	if err != nil {
		return nil, err
	}
	params := map[string]*ort.HostTensor[float32]{}
	for _, ps := range model.ParamShapes(mcfg) {
		d, ok := ck.Tensor(ps.Name)
		if !ok {
			return nil, fmt.Errorf("%s has no parameter %s for the run's model", path, ps.Name)
		}
		shape := make([]int64, len(ps.Shape))
		for i, s := range ps.Shape {
			shape[i] = int64(s)
		}
		if params[ps.Name], err = ort.HostTensorOf(shape, d); err != nil {
			return nil, fmt.Errorf("%s: parameter %s: %w", path, ps.Name, err)
		}
	}
	return params, nil
}
