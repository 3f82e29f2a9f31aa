package ort

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// ssdCase is one random SSD scan problem in float64.
type ssdCase struct {
	d                    SSDDims
	x, dt, A, bm, cm, h0 []float64
}

func randomSSD(r *rand.Rand, d SSDDims) ssdCase {
	vec := func(n int, lo, hi float64) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = lo + (hi-lo)*r.Float64()
		}
		return v
	}
	return ssdCase{d,
		vec(d.B*d.L*d.H*d.P, -1, 1), vec(d.B*d.L*d.H, 0.01, 0.5), vec(d.H, -2, -0.2),
		vec(d.B*d.L*d.N, -1, 1), vec(d.B*d.L*d.N, -1, 1), vec(d.B*d.H*d.P*d.N, -1, 1)}
}

// sequentialSSD is the recurrence h_t = exp(dt_t·A)·h_{t−1} + dt_t·x_t⊗Bm_t,
// y_t = h_t·Cm_t, one step at a time.
func sequentialSSD(c ssdCase) (y, final []float64) {
	d := c.d
	y = make([]float64, len(c.x))
	final = slices.Clone(c.h0)
	for b := range d.B {
		for h := range d.H {
			st := final[(b*d.H+h)*d.P*d.N:][:d.P*d.N]
			for t := range d.L {
				dt := c.dt[(b*d.L+t)*d.H+h]
				e := math.Exp(dt * c.A[h])
				xs := c.x[((b*d.L+t)*d.H+h)*d.P:][:d.P]
				bs, cs := c.bm[(b*d.L+t)*d.N:][:d.N], c.cm[(b*d.L+t)*d.N:][:d.N]
				for p := range d.P {
					acc := 0.0
					for n := range d.N {
						st[p*d.N+n] = e*st[p*d.N+n] + dt*xs[p]*bs[n]
						acc += st[p*d.N+n] * cs[n]
					}
					y[((b*d.L+t)*d.H+h)*d.P+p] = acc
				}
			}
		}
	}
	return y, final
}

func maxDiff(a, b []float64) float64 {
	m := 0.0
	for i := range a {
		m = max(m, math.Abs(a[i]-b[i]))
	}
	return m
}

func TestSSDScanKernelEqualsSequentialRecurrence(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, d := range []SSDDims{
		{B: 1, L: 1, H: 1, P: 1, N: 1, Q: 4},
		{B: 2, L: 7, H: 3, P: 2, N: 5, Q: 3},   // the last chunk is padded
		{B: 1, L: 16, H: 2, P: 4, N: 3, Q: 4},  // whole chunks
		{B: 3, L: 9, H: 2, P: 3, N: 2, Q: 100}, // one chunk shorter than Q
	} {
		c := randomSSD(r, d)
		y, final, _, err := SSDScan64(d, c.x, c.dt, c.A, c.bm, c.cm, c.h0)
		if err != nil {
			t.Fatal(err)
		}
		wy, wf := sequentialSSD(c)
		if e := max(maxDiff(y, wy), maxDiff(final, wf)); e > 1e-12 {
			t.Errorf("%+v: chunked differs from sequential by %g", d, e)
		}
	}
}

// TestSSDScanGradKernelMatchesFiniteDifferences checks every input's
// gradient of the loss Σ y⊙wy + Σ final⊙wf against central differences, in
// float64.
func TestSSDScanGradKernelMatchesFiniteDifferences(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, d := range []SSDDims{{B: 2, L: 7, H: 2, P: 3, N: 4, Q: 3}, {B: 1, L: 5, H: 3, P: 2, N: 2, Q: 8}} {
		c := randomSSD(r, d)
		wc := randomSSD(r, d) // its x and h0 weigh y and final
		loss := func() float64 {
			y, f, _, err := SSDScan64(d, c.x, c.dt, c.A, c.bm, c.cm, c.h0)
			if err != nil {
				t.Fatal(err)
			}
			s := 0.0
			for i := range y {
				s += y[i] * wc.x[i]
			}
			for i := range f {
				s += f[i] * wc.h0[i]
			}
			return s
		}
		y, _, states, err := SSDScan64(d, c.x, c.dt, c.A, c.bm, c.cm, c.h0)
		if err != nil {
			t.Fatal(err)
		}
		g, err := SSDScanGrad64(d, c.x, c.dt, c.A, c.bm, c.cm, c.h0, wc.x, wc.h0, states, y)
		if err != nil {
			t.Fatal(err)
		}
		// The backward takes the forward's chunk states and y; recomputing
		// the states and forming dy·y term by term gives the same gradients.
		re, err := SSDScanGrad64(d, c.x, c.dt, c.A, c.bm, c.cm, c.h0, wc.x, wc.h0, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range [][2][]float64{{g.X, re.X}, {g.DT, re.DT}, {g.A, re.A}, {g.B, re.B}, {g.C, re.C}, {g.H0, re.H0}} {
			if e := maxDiff(p[0], p[1]); e > 1e-13 {
				t.Errorf("%+v: gradients from the forward's chunk states and from recomputed ones differ by %g", d, e)
			}
		}
		for _, in := range []struct {
			name string
			v, g []float64
		}{{"x", c.x, g.X}, {"dt", c.dt, g.DT}, {"A", c.A, g.A}, {"Bm", c.bm, g.B}, {"Cm", c.cm, g.C}, {"h0", c.h0, g.H0}} {
			for i := range in.v {
				const eps = 1e-6
				v := in.v[i]
				in.v[i] = v + eps
				up := loss()
				in.v[i] = v - eps
				down := loss()
				in.v[i] = v
				fd := (up - down) / (2 * eps)
				if math.Abs(fd-in.g[i]) > 1e-6*max(1, math.Abs(fd)) {
					t.Errorf("%+v: d/d%s[%d] = %g, finite differences %g", d, in.name, i, in.g[i], fd)
				}
			}
		}
	}
}

// TestSSDScanKernelAtEveryVectorWidth runs the scan and its backward with
// the 256-bit product and, where the CPU has AVX-512, the 512-bit one, at
// shapes whose rows fill two vectors, one vector and a scalar tail: both
// equal the step-by-step recurrence, and their gradients agree.
func TestSSDScanKernelAtEveryVectorWidth(t *testing.T) {
	widths := []int{256}
	if SSDVectorBits(0) == 512 {
		widths = append(widths, 512)
	} else {
		t.Log("this CPU has no AVX-512: only the 256-bit product runs")
	}
	defer SSDVectorBits(SSDVectorBits(0))
	r := rand.New(rand.NewPCG(5, 6))
	for _, d := range []SSDDims{
		{B: 2, L: 70, H: 2, P: 40, N: 24, Q: 16}, // 32 + 8 columns (float64: two 512-bit vectors, then one)
		{B: 1, L: 37, H: 3, P: 19, N: 33, Q: 12}, // scalar tails
		{B: 1, L: 130, H: 1, P: 64, N: 64, Q: 64},
	} {
		c, w := randomSSD(r, d), randomSSD(r, d)
		wy, wf := sequentialSSD(c)
		var grads []SSDGrads
		for _, bits := range widths {
			if got := SSDVectorBits(bits); got != bits {
				t.Fatalf("asked for %d-bit vectors, got %d", bits, got)
			}
			y, final, states, err := SSDScan64(d, c.x, c.dt, c.A, c.bm, c.cm, c.h0)
			if err != nil {
				t.Fatal(err)
			}
			if e := max(maxDiff(y, wy), maxDiff(final, wf)); e > 1e-11 {
				t.Errorf("%+v, %d bits: chunked differs from sequential by %g", d, bits, e)
			}
			g, err := SSDScanGrad64(d, c.x, c.dt, c.A, c.bm, c.cm, c.h0, w.x, w.h0, states, y)
			if err != nil {
				t.Fatal(err)
			}
			grads = append(grads, g)
		}
		for i := 1; i < len(grads); i++ {
			a, b := grads[0], grads[i]
			for _, p := range [][2][]float64{{a.X, b.X}, {a.DT, b.DT}, {a.A, b.A}, {a.B, b.B}, {a.C, b.C}, {a.H0, b.H0}} {
				if e := maxDiff(p[0], p[1]); e > 1e-10 {
					t.Errorf("%+v: the gradients at %d and %d bits differ by %g", d, widths[0], widths[i], e)
				}
			}
		}
	}
}

// The kernels' worker pool runs every task of a job exactly once, whatever
// the number of threads asked for (more than the tasks included), and jobs
// from several goroutines at once (one runs on the pool, the others on
// their own thread) lose none.
func TestWorkerPoolRunsEveryTaskOnce(t *testing.T) {
	check := func(parts, total int) error {
		for i, n := range poolCounts(parts, total) {
			if n != 1 {
				return fmt.Errorf("%d threads, %d tasks: task %d ran %d times", parts, total, i, n)
			}
		}
		return nil
	}
	for _, parts := range []int{1, 2, 3, 8} {
		for _, total := range []int{0, 1, 2, 5, 73, 1000} {
			if err := check(parts, total); err != nil {
				t.Fatal(err)
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				if err := check(1+g%4, 1+(i*37+g)%300); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
