// Command offsetloss says where a model's held-out nats go: the loss per
// packet offset (0 at <pkt>, 1 at <dt:k>, 2 at the first IP byte, …) of a
// training checkpoint, or of count models fitted on a training dataset, on
// the first tokens of every trace of a held-out dataset. It is the
// diagnostic behind the README's previous-packets paragraph:
//
//	go run ./scripts/offsetloss count TRAIN.parquet HELDOUT.parquet [MAX_TOKENS]
//	go run ./scripts/offsetloss model RUN/checkpoints/step-N.ckpt RUN/config.json HELDOUT.parquet [MAX_TOKENS]
//
// The model mode reads each trace in windows of 2,048 tokens from a zero
// state, carrying the state across windows, and scores whole windows only
// (so the tokens scored are the first ⌊MAX_TOKENS/2048⌋·2048 of a trace);
// the count mode scores the same tokens. Count models: the unigram, p(byte |
// offset), p(byte | offset, the previous packet's byte at that offset) and
// p(byte | offset, the byte two packets back), each interpolated
// (Witten–Bell) with the one before.
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"

	"github.com/netssm/netssm/arrowdata"
	"github.com/netssm/netssm/graph"
	"github.com/netssm/netssm/model"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/tokenizer"
	"github.com/netssm/netssm/train"
)

const (
	maxOffset = 128  // offsets are capped here (also "no packet yet")
	window    = 2048 // model mode's window
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "offsetloss:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	usage := fmt.Errorf("usage: offsetloss count TRAIN HELDOUT [MAX_TOKENS] | offsetloss model CKPT CONFIG HELDOUT [MAX_TOKENS]")
	maxTokens := func(i int) (int, error) {
		if len(args) <= i {
			return 150000, nil
		}
		return strconv.Atoi(args[i])
	}
	switch {
	case len(args) >= 3 && args[0] == "count":
		n, err := maxTokens(3)
		if err != nil {
			return err
		}
		return countModels(args[1], args[2], n)
	case len(args) >= 4 && args[0] == "model":
		n, err := maxTokens(4)
		if err != nil {
			return err
		}
		return checkpointLoss(args[1], args[2], args[3], n)
	}
	return usage
}

// scored is the tokens of a held-out trace that both modes score: the first
// whole windows, plus the token each last position predicts.
func scored(toks []uint16, maxTokens int) []uint16 {
	n := min(len(toks)-1, maxTokens) / window * window
	return toks[:n+1]
}

// byOffset accumulates loss per offset of the predicted token.
type byOffset struct {
	sum, n [maxOffset]float64
}

func (b *byOffset) add(off int, loss float64) { b.sum[off] += loss; b.n[off]++ }

func (b *byOffset) print(name string) {
	var sum, n float64
	for o := range maxOffset {
		sum, n = sum+b.sum[o], n+b.n[o]
	}
	fmt.Printf("%s: %.0f tokens, %.4f nats/token\n", name, n, sum/n)
	for o := range maxOffset {
		if b.n[o]/n >= 0.0005 {
			fmt.Printf("  offset %3d  share %.3f  mean %.3f  contributes %.4f\n", o, b.n[o]/n, b.sum[o]/b.n[o], b.sum[o]/n)
		}
	}
}

// offsets walks toks and calls f for every position i ≥ 1 with the offset of
// toks[i] and the bytes at that offset one and two packets back (−1: none).
func offsets(toks []uint16, f func(i, off, prev1, prev2 int)) {
	off := maxOffset - 1
	var cur, p1, p2 []int
	at := func(p []int, o int) int {
		if p == nil || o >= len(p) || o >= maxOffset-1 {
			return -1
		}
		return p[o]
	}
	for i, t := range toks {
		if int(t) == tokenizer.TokPkt {
			if cur != nil {
				p1, p2 = cur, p1
			}
			cur, off = []int{}, 0
		} else if off < maxOffset-1 {
			off++
		}
		if i > 0 {
			f(i, off, at(p1, off), at(p2, off))
		}
		if cur != nil {
			cur = append(cur, int(t))
		}
	}
}

// countModel is a table of counts per context, interpolated with a parent.
type countModel struct {
	name   string
	key    func(off, prev1, prev2 int) int
	parent *countModel
	counts map[int]map[int]float64
	totals map[int]float64
}

func (m *countModel) prob(off, p1, p2, tok, vocab int) float64 {
	base := 1 / float64(vocab)
	if m.parent != nil {
		base = m.parent.prob(off, p1, p2, tok, vocab)
	}
	k := m.key(off, p1, p2)
	c, ok := m.counts[k]
	if !ok {
		return base
	}
	n, types := m.totals[k], float64(len(c))
	lambda := n / (n + types)
	return lambda*c[tok]/n + (1-lambda)*base
}

func countModels(trainPath, heldPath string, maxTokens int) error {
	unigram := &countModel{name: "unigram", key: func(int, int, int) int { return 0 }}
	offset := &countModel{name: "p(byte | offset)", key: func(o, _, _ int) int { return o }, parent: unigram}
	prev1 := &countModel{name: "p(byte | offset, previous packet's byte)", key: func(o, p, _ int) int { return o<<10 | (p + 1) }, parent: offset}
	prev2 := &countModel{name: "p(byte | offset, byte two packets back)", key: func(o, _, p int) int { return o<<10 | (p + 1) }, parent: offset}
	models := []*countModel{unigram, offset, prev1, prev2}
	for _, m := range models {
		m.counts, m.totals = map[int]map[int]float64{}, map[int]float64{}
	}
	tr, err := arrowdata.Open(trainPath)
	if err != nil {
		return err
	}
	defer tr.Close()
	vocab := tr.Spec().VocabSize
	for t, err := range tr.Traces() {
		if err != nil {
			return err
		}
		offsets(t.Tokens, func(i, off, p1, p2 int) {
			for _, m := range models {
				k := m.key(off, p1, p2)
				if m.counts[k] == nil {
					m.counts[k] = map[int]float64{}
				}
				m.counts[k][int(t.Tokens[i])]++
				m.totals[k]++
			}
		})
	}
	held, err := arrowdata.Open(heldPath)
	if err != nil {
		return err
	}
	defer held.Close()
	losses := make([]byOffset, len(models))
	for t, err := range held.Traces() {
		if err != nil {
			return err
		}
		toks := scored(t.Tokens, maxTokens)
		offsets(toks, func(i, off, p1, p2 int) {
			for j, m := range models {
				losses[j].add(off, -math.Log(m.prob(off, p1, p2, int(toks[i]), vocab)))
			}
		})
	}
	for j, m := range models {
		losses[j].print(m.name)
	}
	return nil
}

func checkpointLoss(ckptPath, configPath, heldPath string, maxTokens int) error {
	ck, err := train.ReadCheckpoint(ckptPath)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(configPath)
	if err != nil {
		return err
	}
	var rc struct {
		Model model.Config `json:"model"`
	}
	if err := json.Unmarshal(raw, &rc); err != nil {
		return fmt.Errorf("%s: %w", configPath, err)
	}
	c := rc.Model
	params := map[string][]float32{}
	for _, ps := range model.ParamShapes(c) {
		v, ok := ck.Tensor(ps.Name)
		if !ok {
			return fmt.Errorf("%s: no parameter %s for the model of %s", ckptPath, ps.Name, configPath)
		}
		params[ps.Name] = v
	}
	if _, err := ort.Init(ort.InitOptions{AutoSetup: true}); err != nil {
		return err
	}
	g := graph.New("offsetloss")
	lm, err := model.DeclareParams(g, c)
	if err != nil {
		return err
	}
	ids := g.Input(model.InIDs, graph.Int64, 1, window)
	logits, next := lm.Forward(ids, model.DeclareStates(g, c, 1))
	g.Output("logp", graph.LogSoftmax(logits, -1))
	model.OutputStates(g, c, next)
	b, err := g.Serialize(graph.Initializers(model.Values(params)))
	if err != nil {
		return err
	}
	s, err := ort.NewSession(b, ort.SessionOptions{})
	if err != nil {
		return err
	}
	defer s.Close()
	held, err := arrowdata.Open(heldPath)
	if err != nil {
		return err
	}
	defer held.Close()
	inNames, outNames := model.StateNames(c)
	shapes := model.StateShapes(c, 1)
	var loss byOffset
	V := c.VocabSize
	for t, err := range held.Traces() {
		if err != nil {
			return err
		}
		toks := scored(t.Tokens, maxTokens)
		feeds := map[string]*ort.Tensor{}
		for j, name := range inNames {
			n := 1
			dims := make([]int64, len(shapes[j]))
			for k, d := range shapes[j] {
				n, dims[k] = n*d, int64(d)
			}
			feeds[name] = ort.NewTensor(dims, make([]float32, n))
		}
		var logp []float32
		offsets(toks, func(i, off, _, _ int) {
			if (i-1)%window == 0 { // the window that predicts tokens i … i+window−1
				in := make([]int64, window)
				for k := range in {
					in[k] = int64(toks[i-1+k])
				}
				feeds[model.InIDs] = ort.NewTensor([]int64{1, window}, in)
				out, rerr := s.Run(feeds)
				if rerr != nil {
					err = rerr
					return
				}
				logp = out["logp"].Float32()
				for j, name := range inNames {
					feeds[name] = out[outNames[j]]
				}
			}
			if err == nil {
				loss.add(off, -float64(logp[((i-1)%window)*V+int(toks[i])]))
			}
		})
		if err != nil {
			return fmt.Errorf("%s: %w", ckptPath, err)
		}
	}
	loss.print(ckptPath)
	return nil
}
