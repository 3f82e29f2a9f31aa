package model_test

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netssm/netssm/graph"
	"github.com/netssm/netssm/model"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/ort/orttest"
)

// Benchmarks run float32 graphs on ONNX Runtime's CPU provider with as many
// intra-op threads as there are CPUs. They are opt-in (go test -bench).

// fwdBwd builds forward + masked CE loss + gradients of every parameter for
// batch B and length L, and returns the session and its feeds.
func fwdBwd(tb testing.TB, c model.Config, B, L int) (*ort.Session, map[string]*ort.Tensor, int) {
	g := lossAndGradients(tb, "fwd_bwd", c, B, L)
	orttest.Init(tb)
	b, err := g.Serialize()
	if err != nil {
		tb.Fatal(err)
	}
	s, err := ort.NewSession(b, ort.SessionOptions{Threads: runtime.NumCPU()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	feeds := map[string]*ort.Tensor{}
	p := model.InitParams(c, 1)
	for _, ps := range model.ParamShapes(c) {
		feeds[ps.Name] = ort.NewTensor(int64s(ps.Shape), p[ps.Name])
	}
	in, _ := model.StateNames(c)
	for i, sh := range model.StateShapes(c, B) {
		feeds[in[i]] = ort.NewTensor(int64s(sh), make([]float32, size(sh)))
	}
	r := rand.New(rand.NewPCG(1, 1))
	tok := make([]int64, B*L)
	tgt := make([]int64, B*L)
	m := make([]float32, B*L)
	for i := range tok {
		tok[i], tgt[i], m[i] = int64(r.IntN(256)), int64(r.IntN(256)), 1
	}
	shape := []int64{int64(B), int64(L)}
	feeds["ids"], feeds["targets"], feeds["mask"] = ort.NewTensor(shape, tok), ort.NewTensor(shape, tgt), ort.NewTensor(shape, m)
	return s, feeds, g.NumNodes()
}

func preset(tb testing.TB, name string) model.Config {
	c, err := model.Preset(name)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// BenchmarkForwardBackward: one forward + backward over B=4 windows of
// L=2048 tokens; reports tokens/s.
func BenchmarkForwardBackward(b *testing.B) {
	for _, name := range []string{"tiny", "small"} {
		b.Run(name, func(b *testing.B) {
			const B, L = 4, 2048
			s, feeds, nodes := fwdBwd(b, preset(b, name), B, L)
			if _, err := s.Run(feeds); err != nil { // warm-up
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				if _, err := s.Run(feeds); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(B*L*b.N)/time.Since(start).Seconds(), "tokens/s")
			b.ReportMetric(float64(nodes), "nodes")
		})
	}
}

// BenchmarkStep: one decoding step of the small preset (weights as
// initializers) at batch 1 and 32, the way generation runs it: ONNX Runtime
// values allocated once, the states double-buffered (a step reads one set and
// writes the other, then they swap) but for the conv and SSM states of fused
// kernels, which MixerStep updates in place, so nothing is copied between
// steps.
// Reports the latency per step and tokens/s.
func BenchmarkStep(b *testing.B) {
	for _, kernels := range []string{model.KernelsFused, model.KernelsStandard} {
		for _, B := range []int{1, 4, 32} {
			b.Run(fmt.Sprintf("small/%s/B=%d", kernels, B), func(b *testing.B) {
				c := preset(b, "small")
				c.Kernels = kernels
				benchStep(b, c, B)
			})
		}
	}
}

// benchStep times one decoding step of config c at batch B.
func benchStep(b *testing.B, c model.Config, B int) {
	p := model.InitParams(c, 1)
	g, err := model.NewStepGraph(c, B, graph.Float32)
	if err != nil {
		b.Fatal(err)
	}
	orttest.Init(b)
	bs, err := g.Serialize(graph.Initializers(model.Values(p)))
	if err != nil {
		b.Fatal(err)
	}
	s, err := ort.NewSession(bs, ort.SessionOptions{Threads: runtime.NumCPU()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	stateIn, stateOut := model.StateNames(c)
	shapes := model.StateShapes(c, B)
	bufs := [2][]*ort.HostTensor[float32]{}
	for k := range bufs {
		for i, sh := range shapes {
			if k == 1 && c.Fused() && i < 2*c.Layers { // MixerStep's states: in place, as generation runs them
				bufs[k] = append(bufs[k], bufs[0][i])
				continue
			}
			t, err := ort.NewHostTensor[float32](int64s(sh)...)
			if err != nil {
				b.Fatal(err)
			}
			defer t.Destroy()
			bufs[k] = append(bufs[k], t)
		}
	}
	ids, err := ort.NewHostTensor[int64](int64(B))
	if err != nil {
		b.Fatal(err)
	}
	defer ids.Destroy()
	logits, err := ort.NewHostTensor[float32](int64(B), int64(c.VocabSize))
	if err != nil {
		b.Fatal(err)
	}
	defer logits.Destroy()
	pos := map[string]int{}
	for i, n := range stateIn {
		pos[n] = i
	}
	for i, n := range stateOut {
		pos[n] = i
	}
	ins := make([]ort.Value, len(s.InputNames()))
	outs := make([]ort.Value, len(s.OutputNames()))
	cur := 0
	bind := func() {
		for i, n := range s.InputNames() {
			if n == model.InIDs {
				ins[i] = ids
			} else {
				ins[i] = bufs[cur][pos[n]]
			}
		}
		for i, n := range s.OutputNames() {
			if n == model.OutLogits {
				outs[i] = logits
			} else {
				outs[i] = bufs[1-cur][pos[n]]
			}
		}
	}
	tok := ids.GetData()
	step := func(i int) {
		for j := range tok {
			tok[j] = int64((i*7 + j) % 256)
		}
		bind()
		if err := s.RunValues(ins, outs); err != nil {
			b.Fatal(err)
		}
		cur = 1 - cur
	}
	for i := range 10 {
		step(i)
	}
	b.ResetTimer()
	start := time.Now()
	i := 0
	for b.Loop() {
		step(i)
		i++
	}
	el := time.Since(start)
	b.ReportMetric(float64(el.Microseconds())/float64(b.N), "µs/step")
	b.ReportMetric(float64(B*b.N)/el.Seconds(), "tokens/s")
}

// rssEnv makes the test binary run one forward+backward in a child process
// and print its peak resident set (VmHWM).
const rssEnv = "NETSSM_MODEL_RSS_CHILD"

// BenchmarkPeakRSSForwardBackward: peak resident memory (VmHWM of a child
// process) of one forward + backward of the small preset at B=1, L=16,384,
// with the fused kernels and with standard ops.
func BenchmarkPeakRSSForwardBackward(b *testing.B) {
	for _, kernels := range []string{model.KernelsFused, model.KernelsStandard} {
		b.Run(kernels, func(b *testing.B) { benchPeakRSS(b, "small:1:16384:"+kernels) })
	}
}

func benchPeakRSS(b *testing.B, spec string) {
	for b.Loop() {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPeakRSSChild$", "-test.v")
		cmd.Env = append(os.Environ(), rssEnv+"="+spec)
		outb, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("child: %v\n%s", err, outb)
		}
		sc := bufio.NewScanner(strings.NewReader(string(outb)))
		for sc.Scan() {
			if f, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "peak-rss-kib "); ok {
				fields := strings.Fields(f)
				kib, _ := strconv.ParseFloat(fields[0], 64)
				sec, _ := strconv.ParseFloat(fields[1], 64)
				b.ReportMetric(kib/1024, "peak-MiB")
				b.ReportMetric(16384/sec, "tokens/s")
			}
		}
	}
}

// TestPeakRSSChild is the child of BenchmarkPeakRSSForwardBackward; it does
// nothing unless the benchmark started it.
func TestPeakRSSChild(t *testing.T) {
	spec := os.Getenv(rssEnv)
	if spec == "" {
		t.Skip("runs only as BenchmarkPeakRSSForwardBackward's child process")
	}
	parts := strings.Split(spec, ":")
	B, _ := strconv.Atoi(parts[1])
	L, _ := strconv.Atoi(parts[2])
	c := preset(t, parts[0])
	if len(parts) > 3 {
		c.Kernels = parts[3]
	}
	s, feeds, _ := fwdBwd(t, c, B, L)
	start := time.Now()
	if _, err := s.Run(feeds); err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			fmt.Printf("peak-rss-kib %s %g\n", strings.Fields(v)[0], el.Seconds())
		}
	}
}
