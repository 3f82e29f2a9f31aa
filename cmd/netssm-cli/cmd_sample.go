package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/netssm/netssm/capture/cryptopan"
	"github.com/netssm/netssm/infer"
	"github.com/netssm/netssm/infer/sampling"
	"github.com/netssm/netssm/internal/progress"
	"github.com/netssm/netssm/model"
	"github.com/netssm/netssm/ort"
)

func init() {
	register(&cli.Command{
		Name:      "sample",
		Usage:     "generate new traffic from a model bundle and write it as pcaps",
		ArgsUsage: " ",
		Description: "Example:\n" +
			"   netssm-cli sample --model BUNDLE --label web_browsing --packets 10000 -o web.pcap\n" +
			"   netssm-cli sample --model BUNDLE --label voice_call --traces 100 --batch 32 --preset paper -o out/\n" +
			"   netssm-cli sample --model BUNDLE --label video_call --traces 1000 --shard 3/8 -o out/\n" +
			"   netssm-cli sample --model BUNDLE --label web_browsing --fresh-hosts 'my secret phrase' -o web.pcap\n\n" +
			"Runs the prompt (the label token, or the label and the first --prompt-packets packets of\n" +
			"--prompt) through the prefill graph once, forks that state into --batch sequences and\n" +
			"decodes them one token at a time with the step graph; memory does not grow with the\n" +
			"generated length. Packets are masked by the tokenizer's packet grammar as they are\n" +
			"generated (--no-constrain turns that off) and written as they complete.\n\n" +
			"Output: -o FILE.pcap for one trace; -o DIR for --traces K, one DIR/trace-NNNNNN.pcap per\n" +
			"trace index. Each trace ends at <eos> or at its --packets/--tokens/--duration limit\n" +
			"(default: --packets 1000). Trace t samples from its own random stream, derived from\n" +
			"(--seed, the label and prompt, t): two labels never share a stream, and the files are\n" +
			"byte-identical across runs, batch sizes and shards (with\n" +
			"--ep cuda only across runs of the same batch size).\n" +
			"--shard i/n runs the traces t with t mod n = i; the n shards' files together are the\n" +
			"unsharded job's files. Timestamps start at --start and follow the generated <dt:k>\n" +
			"tokens (jittered inside their bucket), or the label's empirical inter-arrival times\n" +
			"when the model was trained without timing.\n" +
			"--fresh-hosts KEY writes every packet's source and destination address as its Crypto-PAn\n" +
			"image under KEY (prefix-preserving: subnets stay subnets, a flow keeps one address pair),\n" +
			"so no training host appears in the output; all other bytes are as generated and the\n" +
			"IPv4 header checksum is recomputed. KEY is 64 hex digits (the 32-byte key itself) or a\n" +
			"passphrase (its SHA-256 is the key); a hex string of 32 to 63 or over 64 digits is refused\n" +
			"as a mistyped key. The same KEY gives the same mapping in every run.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Required: true, Usage: "model bundle directory (made by netssm-cli export)"},
			&cli.StringFlag{Name: "label", Aliases: []string{"l"}, Required: true, Usage: "workload label the traffic should look like"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "FILE.pcap (one trace) or DIR (one file per trace)"},
			&cli.IntFlag{Name: "packets", Usage: "packets per trace (default 1000 when no other limit is given)"},
			&cli.IntFlag{Name: "tokens", Usage: "generated tokens per trace"},
			&cli.DurationFlag{Name: "duration", Usage: "trace time per trace (e.g. 30s)"},
			&cli.IntFlag{Name: "traces", Value: 1, Usage: "number of traces K (trace indices 0…K−1)"},
			&cli.IntFlag{Name: "batch", Value: 1, Usage: "sequences decoded together"},
			&cli.Uint64Flag{Name: "seed", Value: 0, Usage: "seed of every random choice"},
			&cli.StringFlag{Name: "shard", Usage: "run only shard i of n: traces t with t mod n = i (e.g. 0/4)"},
			&cli.StringFlag{Name: "preset", Usage: "sampling preset: paper (temperature 0.5, top-p 0.9, top-k 25, repetition penalty 1.8); other flags override it"},
			&cli.Float64Flag{Name: "temperature", Value: 1, Usage: "softmax temperature (0: greedy)"},
			&cli.IntFlag{Name: "top-k", Usage: "keep the k most probable tokens (0: all)"},
			&cli.Float64Flag{Name: "top-p", Value: 1, Usage: "keep the smallest set of tokens with this much probability (1: all)"},
			&cli.Float64Flag{Name: "min-p", Usage: "drop tokens below this fraction of the most probable one (0: none)"},
			&cli.Float64Flag{Name: "repetition-penalty", Value: 1, Usage: "CTRL repetition penalty over the trace's generated tokens (1: off)"},
			&cli.IntFlag{Name: "repetition-window", Usage: "penalise only the last N generated tokens (0: the whole trace)"},
			&cli.BoolFlag{Name: "greedy", Usage: "always take the most probable allowed token"},
			&cli.BoolFlag{Name: "no-constrain", Usage: "do not mask tokens with the packet grammar"},
			&cli.BoolFlag{Name: "ignore-eos", Usage: "never end a trace by <eos>: every trace runs to its limit"},
			&cli.StringFlag{Name: "prompt", Usage: "capture whose first packets prompt every trace"},
			&cli.IntFlag{Name: "prompt-packets", Value: 16, Usage: "packets of --prompt to use"},
			&cli.StringFlag{Name: "fresh-hosts", Usage: "map every address through Crypto-PAn under `KEY` (64 hex digits, or a passphrase), so no training host appears"},
			&cli.TimestampFlag{Name: "start", Layout: time.RFC3339, Usage: "time of each trace's start (RFC 3339; default 2024-01-01T00:00:00Z, so files are reproducible)"},
			epFlag(),
			ioBindingFlag(),
			threadsFlag(),
			&cli.StringFlag{Name: "kernels", Value: model.KernelsFused, Usage: "decoding step and prefill in netssm's fused CPU kernels (fused) or in standard ONNX ops (standard)"},
		},
		Action: runSample,
	})
}

// sampleParams reads the sampling flags over the preset.
func sampleParams(c *cli.Context) (sampling.Params, error) {
	p := sampling.Default()
	switch c.String("preset") {
	case "":
	case "paper":
		p = sampling.Paper()
	default:
		return p, usagef("--preset %q: the only preset is paper", c.String("preset"))
	}
	if c.IsSet("temperature") {
		p.Temperature = c.Float64("temperature")
	}
	if c.IsSet("top-k") {
		p.TopK = c.Int("top-k")
	}
	if c.IsSet("top-p") {
		p.TopP = c.Float64("top-p")
	}
	if c.IsSet("min-p") {
		p.MinP = c.Float64("min-p")
	}
	if c.IsSet("repetition-penalty") {
		p.RepetitionPenalty = c.Float64("repetition-penalty")
	}
	if c.IsSet("repetition-window") {
		p.RepetitionWindow = c.Int("repetition-window")
	}
	p.Greedy = c.Bool("greedy")
	if err := p.Validate(); err != nil {
		return p, usagef("%v", err)
	}
	return p, nil
}

// sampleJob checks every flag that needs no file and builds the job.
func sampleJob(c *cli.Context) (infer.Job, *infer.PcapSink, error) {
	if c.NArg() > 0 {
		return infer.Job{}, nil, usagef("sample takes no arguments, got %q", c.Args().Slice())
	}
	if err := checkEP(c); err != nil {
		return infer.Job{}, nil, err
	}
	job := infer.Job{Traces: c.Int("traces"), Batch: c.Int("batch"), Seed: c.Uint64("seed"), IgnoreEOS: c.Bool("ignore-eos")}
	if job.Traces < 1 {
		return job, nil, usagef("--traces %d: need at least 1", job.Traces)
	}
	if job.Batch < 1 {
		return job, nil, usagef("--batch %d: need at least 1", job.Batch)
	}
	job.Limits = infer.Limits{Packets: c.Int("packets"), Tokens: c.Int("tokens"), Duration: c.Duration("duration")}
	if job.Limits.Packets < 0 || job.Limits.Tokens < 0 || job.Limits.Duration < 0 {
		return job, nil, usagef("--packets, --tokens and --duration must not be negative")
	}
	if job.Limits == (infer.Limits{}) {
		job.Limits.Packets = 1000
	}
	if s := c.String("shard"); s != "" {
		sh, err := infer.ParseShard(s)
		if err != nil {
			return job, nil, usagef("--shard: %v", err)
		}
		job.Shard = sh
	}
	var err error
	if job.Sampling, err = sampleParams(c); err != nil {
		return job, nil, err
	}
	if c.IsSet("prompt-packets") && c.String("prompt") == "" {
		return job, nil, usagef("--prompt-packets needs --prompt FILE")
	}
	if c.Int("prompt-packets") < 1 {
		return job, nil, usagef("--prompt-packets %d: need at least 1", c.Int("prompt-packets"))
	}
	job.Start = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	if ts := c.Timestamp("start"); ts != nil {
		job.Start = *ts
	}
	out := c.String("output")
	sink := &infer.PcapSink{Path: out}
	info, statErr := os.Stat(out)
	isDir := statErr == nil && info.IsDir()
	switch {
	case isDir || strings.HasSuffix(out, string(filepath.Separator)):
		sink.Dir = true
	case job.Traces > 1:
		return job, nil, usagef("-o %s: --traces %d writes one file per trace; name a directory (existing, or ending in /)", out, job.Traces)
	case job.Shard.Count > 1:
		return job, nil, usagef("-o %s: --shard writes one file per trace; name a directory (existing, or ending in /)", out)
	case !strings.HasSuffix(out, ".pcap"):
		return job, nil, usagef("-o %s: name a FILE.pcap, or a directory (existing, or ending in /) for one file per trace", out)
	}
	return job, sink, nil
}

func runSample(c *cli.Context) error {
	job, sink, err := sampleJob(c)
	if err != nil {
		return err
	}
	var fresh *infer.FreshHosts
	if c.IsSet("fresh-hosts") {
		an, err := freshHostsKey(c.String("fresh-hosts"))
		if err != nil {
			return usagef("--fresh-hosts: %v", err)
		}
		fresh = infer.NewFreshHosts(an)
	}
	if sink.Dir {
		if err := os.MkdirAll(sink.Path, 0o755); err != nil {
			return fmt.Errorf("creating output directory: %w", err)
		}
	}
	if len(job.Shard.Traces(job.Traces)) == 0 {
		return usagef("--shard %d/%d of %d traces runs none; use more traces or fewer shards", job.Shard.Index, job.Shard.Count, job.Traces)
	}
	pinGenerationMemory()
	defer runtime.UnlockOSThread()
	if _, err := initORT(c); err != nil {
		return err
	}
	kernels, err := model.ParseKernels(c.String("kernels"))
	if err != nil {
		return usagef("--%v", err)
	}
	if c.String("ep") == "cuda" && !c.IsSet("kernels") {
		kernels = model.KernelsStandard // the fused kernels are CPU kernels
	}
	b, err := infer.OpenBundleKernels(c.String("model"), ort.SessionOptions{EP: c.String("ep"), Threads: c.Int("threads"), IOBinding: c.String("io-binding")}, kernels)
	if err != nil {
		return err
	}
	label := c.String("label")
	if _, err := b.LabelToken(label); err != nil {
		return usagef("--label: %v", err)
	}
	if job.Prompt, err = b.Prompt(label, c.String("prompt"), c.Int("prompt-packets")); err != nil {
		return err
	}
	job.Vocab = b.Vocab
	job.Timing = b.Timing(label)
	job.NewDecoder = b.NewDecoder
	if !c.Bool("no-constrain") {
		job.NewGrammar = b.NewGrammar
	}
	b.FreshHosts = fresh
	sink.NewWriter = b.NewPacketWriter
	if fresh != nil {
		slog.Info("fresh hosts: every address is written as its Crypto-PAn image under the --fresh-hosts key", "output", sink.Path)
	}

	traces := len(job.Shard.Traces(job.Traces))
	total := int64(-1)
	if job.Limits.Packets > 0 && job.Limits.Tokens == 0 && job.Limits.Duration == 0 {
		total = int64(job.Limits.Packets * traces)
	}
	bar := progress.New(total, "sampling", "packets")
	start := time.Now()
	job.Progress = func(s infer.Stats) {
		if s.Steps%16 != 0 {
			return
		}
		bar.Set(int64(s.Packets))
		el := time.Since(start).Seconds()
		bar.Describe(fmt.Sprintf("sampling %d/%d traces, %.0f tokens/s", s.Traces, traces, float64(s.Tokens)/max(el, 1e-9)))
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer tuneGCForGeneration()()
	st, err := infer.Generate(ctx, b.Model, sink, job)
	bar.Finish()
	if err != nil {
		if ctx.Err() != nil && c.Context.Err() == nil {
			return fmt.Errorf("interrupted after %d complete traces (%d packets); the traces in progress were discarded", st.Traces, st.Packets)
		}
		return err
	}
	where := sink.Path
	fmt.Printf("wrote %d traces, %d packets to %s (%d tokens, %.0f tokens/s", st.Traces, st.Packets, where, st.Tokens, st.TokensPerSecond())
	if st.EOS > 0 {
		fmt.Printf(", %d ended by <eos>", st.EOS)
	}
	if st.OffGrammar > 0 {
		fmt.Printf(", %d tokens outside any packet skipped", st.OffGrammar)
	}
	if st.Truncated > 0 {
		fmt.Printf(", %d packets cut short by a limit dropped", st.Truncated)
	}
	if n := b.Checks.Repaired.Load(); n > 0 {
		fmt.Printf(", %d packets had their IP length field raised to the bytes generated", n)
	}
	if n := b.Checks.Invalid.Load(); n > 0 {
		fmt.Printf(", %d packets are not valid IP (written as generated)", n)
	}
	if fresh != nil {
		fmt.Printf(", addresses mapped by Crypto-PAn (--fresh-hosts)")
	}
	fmt.Println(")")
	return nil
}

// freshHostsKey reads a --fresh-hosts KEY: 64 hex digits are the 32-byte
// Crypto-PAn key, anything else a passphrase whose SHA-256 is the key
// (cryptopan.FromPassphrase). An empty KEY, or one of only hex digits whose
// length is 32 or more but not 64 (a key with a digit too many or too few,
// which would silently become a passphrase), is refused.
func freshHostsKey(key string) (*cryptopan.Anonymizer, error) {
	isHex := key != "" && strings.Trim(key, "0123456789abcdefABCDEF") == ""
	if isHex && len(key) >= 32 && len(key) != 64 {
		return nil, fmt.Errorf("%d hex digits: a key is 64 hex digits (32 bytes); a passphrase must not look like a hex key", len(key))
	}
	return cryptopan.FromPassphrase(key)
}

// pinGenerationMemory makes generation's resident memory independent of
// its length and of thread scheduling: the calling goroutine is locked to
// its OS thread (the caller unlocks it), so every ONNX Runtime call, from
// loading the bundle to the last step, comes from one thread, and C
// allocations share one malloc arena (unless MALLOC_ARENA_MAX is set).
// Without this, Go moves the goroutine between threads, each thread that
// calls into ONNX Runtime gets its own glibc arena, and the peak resident
// memory of identical runs varied by 15 %.
func pinGenerationMemory() {
	runtime.LockOSThread()
	if os.Getenv("MALLOC_ARENA_MAX") == "" {
		ort.LimitMallocArenas(1)
	}
}

// tuneGCForGeneration sets the Go collector for generation and returns
// what restores it. Decoding makes a few hundred bytes of garbage per token
// (ONNX Runtime calls) next to a live heap of the model's weights (tens of
// MB); with Go's default GOGC=100 that garbage piles up to twice the live
// heap before the first collection, so resident memory climbed for the
// first ~100,000 tokens of a trace. Collecting at 10 % growth keeps it flat
// from the start at a negligible cost (a collection every few thousand
// tokens). A GOGC the user set is left alone.
func tuneGCForGeneration() (restore func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	old := debug.SetGCPercent(10)
	return func() { debug.SetGCPercent(old) }
}
