package model

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"
)

// InitParams64 initialises every parameter of c from seed, exactly as the
// model document prescribes (docs/mamba2.md): embedding N(0, 0.02) (the packet-position
// and label embeddings and the copy logits' bias and gate too, netssm's
// additions);
// in_proj U(±1/√D); conv1d
// weight and bias U(±1/√W); dt_bias the inverse softplus of a log-uniform dt
// in [0.001, 0.1] (clamped ≥ 1e-4); A_log = ln U(1, 16); D = 1; norms 1;
// out_proj U(±1/√d_inner). Each parameter draws from its own stream,
// seeded by (seed, name), so its values do not depend on the others.
func InitParams64(c Config, seed uint64) map[string][]float64 {
	out := map[string][]float64{}
	for _, p := range ParamShapes(c) {
		r := rand.New(rand.NewPCG(seed, nameHash(p.Name)))
		v := make([]float64, p.Size())
		uniform := func(lo, hi float64) {
			for i := range v {
				v[i] = lo + (hi-lo)*r.Float64()
			}
		}
		fill := func(x float64) {
			for i := range v {
				v[i] = x
			}
		}
		n := p.Name
		switch {
		case n == "embedding.weight", n == PacketPositionParam, n == LabelParam, n == CopyBiasParam, n == CopyGateParam:
			for i := range v {
				v[i] = 0.02 * r.NormFloat64()
			}
		case strings.HasSuffix(n, "in_proj.weight"):
			b := 1 / math.Sqrt(float64(c.DModel))
			uniform(-b, b)
		case strings.HasSuffix(n, "conv1d.weight"), strings.HasSuffix(n, "conv1d.bias"):
			b := 1 / math.Sqrt(float64(c.DConv))
			uniform(-b, b)
		case strings.HasSuffix(n, "dt_bias"):
			lo, hi := math.Log(0.001), math.Log(0.1)
			for i := range v {
				dt := max(math.Exp(r.Float64()*(hi-lo)+lo), 1e-4)
				v[i] = dt + math.Log(-math.Expm1(-dt)) // softplus⁻¹(dt)
			}
		case strings.HasSuffix(n, "A_log"):
			for i := range v {
				v[i] = math.Log(1 + 15*r.Float64())
			}
		case strings.HasSuffix(n, "out_proj.weight"):
			b := 1 / math.Sqrt(float64(c.DInner()))
			uniform(-b, b)
		default: // D, norm weights
			fill(1)
		}
		out[n] = v
	}
	return out
}

// InitParams is InitParams64 rounded to float32, the training precision.
func InitParams(c Config, seed uint64) map[string][]float32 {
	return ToFloat32(InitParams64(c, seed))
}

// ToFloat32 rounds every value to float32.
func ToFloat32(p map[string][]float64) map[string][]float32 {
	out := make(map[string][]float32, len(p))
	for k, v := range p {
		w := make([]float32, len(v))
		for i, x := range v {
			w[i] = float32(x)
		}
		out[k] = w
	}
	return out
}

// ToFloat64 widens every value to float64.
func ToFloat64(p map[string][]float32) map[string][]float64 {
	out := make(map[string][]float64, len(p))
	for k, v := range p {
		w := make([]float64, len(v))
		for i, x := range v {
			w[i] = float64(x)
		}
		out[k] = w
	}
	return out
}

func nameHash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}
