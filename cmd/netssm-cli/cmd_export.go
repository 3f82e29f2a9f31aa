package main

import (
	"encoding/json"
	"fmt"
	"iter"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/netssm/netssm/arrowdata"
	"github.com/netssm/netssm/export"
	"github.com/netssm/netssm/model"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/tokenizer"
	"github.com/netssm/netssm/train"
)

func init() {
	register(&cli.Command{
		Name:      "export",
		Usage:     "turn a training run into a model bundle for `netssm-cli sample`",
		ArgsUsage: "RUN_DIR",
		Description: "Example:\n   netssm-cli export runs/small -o models/small\n\n" +
			"Takes the run's best checkpoint by validation loss (or the latest with --latest)\n" +
			"and writes BUNDLE/ with model.json (config, tokenizer spec, labels, timing tables\n" +
			"from the training data, provenance, sha256 of every file), prefill.onnx and\n" +
			"step.onnx. The directory appears only when complete. The graphs use netssm's\n" +
			"fused CPU kernels unless --portable asks for standard ONNX ops only\n" +
			"(netssm-cli export runs/small -o models/small-portable --portable).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "bundle directory to create"},
			&cli.BoolFlag{Name: "latest", Usage: "export the latest checkpoint instead of the best"},
			&cli.IntFlag{Name: "step-batch", Value: 1, Usage: "sequences per step graph run (the sampler's default batch)"},
			&cli.BoolFlag{Name: "overwrite", Usage: "replace an existing bundle"},
			&cli.BoolFlag{Name: "portable", Usage: "write standard-op graphs that any ONNX runtime loads, not netssm's fused kernels (model.json lists the custom ops a bundle needs)"},
		},
		Action: exportAction,
	})
}

func exportAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("export takes one RUN_DIR, got %d arguments", c.NArg())
	}
	if c.String("out") == "" {
		return usagef("-o BUNDLE is required")
	}
	runDir := c.Args().First()
	cfg, err := train.ReadConfig(runDir)
	if err != nil {
		return err
	}
	var mcfg model.Config
	if err := json.Unmarshal(cfg.Model, &mcfg); err != nil {
		return fmt.Errorf("%s/config.json: model config: %w", runDir, err)
	}
	spec, err := tokenizer.ParseSpec(cfg.Tokenizer)
	if err != nil {
		return fmt.Errorf("%s/config.json: tokenizer spec: %w", runDir, err)
	}
	ckPath := filepath.Join(runDir, "checkpoints", "best.ckpt")
	if _, err := os.Stat(ckPath); c.Bool("latest") || err != nil {
		_, ckPath, _, err = train.LoadLatest(runDir)
		if err != nil {
			return err
		}
	}
	ck, err := train.ReadCheckpoint(ckPath)
	if err != nil {
		return err
	}
	params := map[string][]float32{}
	for _, ps := range model.ParamShapes(mcfg) {
		d, ok := ck.Tensor(ps.Name)
		if !ok {
			return fmt.Errorf("%s lacks parameter %s: it does not belong to this run's model", ckPath, ps.Name)
		}
		params[ps.Name] = d
	}
	timing, err := timingTables(cfg.Data, spec)
	if err != nil {
		return fmt.Errorf("timing tables from %s: %w", cfg.Data, err)
	}
	timingJSON, _ := json.Marshal(timing)
	mcfg.Kernels = model.KernelsFused
	if c.Bool("portable") {
		mcfg = mcfg.Portable()
	}
	info := export.Info{
		Config: mcfg, Tokenizer: cfg.Tokenizer, Labels: spec.Labels, Timing: timingJSON, ORTVersion: ort.Version,
		Provenance: export.Provenance{
			Tool: "netssm-cli " + version, Run: runDir, Checkpoint: filepath.Base(ckPath),
			Step: ck.Header.Step, Tokens: ck.Header.Tokens, ValLoss: ck.Header.ValLoss,
			Dataset: filepath.Base(cfg.Data), Seed: cfg.Seed,
		},
	}
	if _, err := initORT(c); err != nil {
		return err
	}
	if _, err := export.Write(c.String("out"), info, params, export.Options{StepBatch: c.Int("step-batch"), Overwrite: c.Bool("overwrite")}); err != nil {
		return err
	}
	fmt.Printf("exported %s (step %d, validation loss %.4f) to %s\nnext: netssm-cli sample --model %s --label %s -o out.pcap\n",
		ckPath, ck.Header.Step, ck.Header.ValLoss, c.String("out"), c.String("out"), firstOr(spec.Labels, "LABEL"))
	return nil
}

func firstOr(xs []string, alt string) string {
	if len(xs) > 0 {
		return xs[0]
	}
	return alt
}

// timingTables reads the training dataset's packet times.
func timingTables(path string, spec tokenizer.Spec) (export.TimingTables, error) {
	ds, err := arrowdata.Open(path)
	if err != nil {
		return export.TimingTables{}, err
	}
	defer ds.Close()
	traces := func(yield func(export.TimedTrace, error) bool) {
		for tr, err := range ds.Traces() {
			if err != nil {
				yield(export.TimedTrace{}, err)
				return
			}
			if !yield(export.TimedTrace{Label: tr.Label, TsNs: tr.TsNs}, nil) {
				return
			}
		}
	}
	var bucketOf func(int64) int
	if spec.Timing {
		bucketOf = spec.DtBucket
	}
	return export.TimingFrom(iter.Seq2[export.TimedTrace, error](traces), spec.DtBuckets, bucketOf, 100)
}
