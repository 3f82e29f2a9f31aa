package export_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netssm/netssm/export"
	"github.com/netssm/netssm/graph"
	"github.com/netssm/netssm/internal/testutil"
	"github.com/netssm/netssm/model"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/ort/orttest"
)

// tinyConfig is the tiny preset with a short chunk, so that a prefill of a
// dozen tokens spans two chunks.
func tinyConfig(t testing.TB) model.Config {
	t.Helper()
	c, err := model.Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	c.ChunkSize = 8
	return c
}

func testInfo(c model.Config) export.Info {
	return export.Info{
		Config:     c,
		Tokenizer:  json.RawMessage(`{"version":1,"timing":true,"specials":["<pkt>","<eos>"]}`),
		Labels:     []string{"web", "dns"},
		Timing:     json.RawMessage(`{"web":[1,2,3]}`),
		Provenance: export.Provenance{Tool: "netssm-test", Run: "unit", Step: 42, Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		ORTVersion: ort.Version,
	}
}

// writeBundle exports c with parameters from seed into a fresh directory.
func writeBundle(t *testing.T, c model.Config, seed uint64, o export.Options) (string, map[string][]float32) {
	t.Helper()
	params := model.InitParams(c, seed)
	dir := filepath.Join(t.TempDir(), "bundle")
	if _, err := export.Write(dir, testInfo(c), params, o); err != nil {
		t.Fatal(err)
	}
	return dir, params
}

func load(t *testing.T, dir string) *export.Bundle {
	t.Helper()
	b, err := export.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// runGraph runs one of the bundle's graphs on ids (B rows) from zero states
// (or the given ones, in StateNames order) and returns the logits and the next
// states, widened to float64.
func runGraph(t *testing.T, b *export.Bundle, file string, ids []int64, states [][]float64) ([]float64, [][]float64) {
	t.Helper()
	orttest.Init(t)
	raw, err := b.Graph(file)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ort.NewSession(raw, ort.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	defer s.Close()
	gi := b.Manifest.Prefill
	idShape := []int64{int64(gi.Batch), int64(gi.Length)}
	if file == export.StepFile {
		gi = b.Manifest.Step
		idShape = []int64{int64(gi.Batch)}
	}
	c := b.Manifest.Config
	feeds := map[string]*ort.Tensor{model.InIDs: ort.NewTensor(idShape, ids)}
	in, out := model.StateNames(c)
	for i, sh := range model.StateShapes(c, gi.Batch) {
		n := 1
		for _, d := range sh {
			n *= d
		}
		v := make([]float64, n)
		if states != nil {
			v = states[i]
		}
		if gi.Float == "float64" {
			feeds[in[i]] = ort.NewTensor(int64sOf(sh), v)
		} else {
			feeds[in[i]] = ort.NewTensor(int64sOf(sh), narrow(v))
		}
	}
	res, err := s.Run(feeds)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var next [][]float64
	for _, name := range out {
		next = append(next, widen(res[name].Data))
	}
	return widen(res[model.OutLogits].Data), next
}

func widen(d any) []float64 {
	switch v := d.(type) {
	case []float64:
		return v
	case []float32:
		o := make([]float64, len(v))
		for i, x := range v {
			o[i] = float64(x)
		}
		return o
	}
	panic("not a float tensor")
}

func narrow(v []float64) []float32 {
	o := make([]float32, len(v))
	for i, x := range v {
		o[i] = float32(x)
	}
	return o
}

func int64sOf(s []int) []int64 {
	o := make([]int64, len(s))
	for i, d := range s {
		o[i] = int64(d)
	}
	return o
}

func randomIDs(c model.Config, n int, seed uint64) []int64 {
	r := rand.New(rand.NewPCG(seed, 99))
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(r.IntN(c.VocabSize))
		if (c.PacketPositions > 0 || c.PrevPackets > 0) && r.IntN(5) == 0 {
			ids[i] = int64(c.PacketToken)
		}
	}
	return ids
}

// lastRow is the logits of the last position of each of B rows of L.
func lastRows(logits []float64, B, L, V int) []float64 {
	var o []float64
	for b := range B {
		o = append(o, logits[(b*L+L-1)*V:(b*L+L)*V]...)
	}
	return o
}

func TestFloat64BundleMatchesSequentialReference(t *testing.T) {
	plain := tinyConfig(t)
	withPos := plain
	withPos.PacketPositions, withPos.PacketToken = 8, 257
	withPrev := withPos
	withPrev.PrevPackets, withPrev.PacketHistory = 2, 9
	for name, c := range map[string]model.Config{"plain": plain, "packet positions": withPos, "previous packets": withPrev} {
		t.Run(name, func(t *testing.T) { testFloat64BundleMatchesSequentialReference(t, c) })
	}
}

func testFloat64BundleMatchesSequentialReference(t *testing.T, c model.Config) {
	const B, L = 2, 13
	dir, params := writeBundle(t, c, 1, export.Options{PrefillBatch: B, PrefillLength: L, StepBatch: B, Float: graph.Float64})
	b := load(t, dir)
	p64 := model.ToFloat64(params)
	ids := randomIDs(c, B*(L+1), 5)
	prompt := make([]int64, 0, B*L)
	next := make([]int64, 0, B)
	for r := range B {
		prompt = append(prompt, ids[r*(L+1):r*(L+1)+L]...)
		next = append(next, ids[r*(L+1)+L])
	}
	want, _, err := model.ReferenceForward(c, p64, ids, B, L+1, model.ZeroStates64(c, B))
	if err != nil {
		t.Fatal(err)
	}
	V := c.VocabSize
	got, st := runGraph(t, b, export.PrefillFile, prompt, nil)
	var wantPrefill, wantStep []float64
	for r := range B {
		wantPrefill = append(wantPrefill, want[(r*(L+1)+L-1)*V:(r*(L+1)+L)*V]...)
		wantStep = append(wantStep, want[(r*(L+1)+L)*V:(r*(L+1)+L+1)*V]...)
	}
	if e := testutil.MaxRelErr(got, wantPrefill); e > 1e-9 {
		t.Errorf("prefill.onnx last logits differ from the reference by %.3g", e)
	}
	gotStep, _ := runGraph(t, b, export.StepFile, next, st)
	if e := testutil.MaxRelErr(gotStep, wantStep); e > 1e-9 {
		t.Errorf("step.onnx logits after the prefill differ from the reference by %.3g", e)
	}
}

func TestFloat32BundleGivesTheLogitsOfTheTrainedParams(t *testing.T) {
	c := tinyConfig(t)
	const L = 12
	dir, params := writeBundle(t, c, 2, export.Options{PrefillLength: L})
	b := load(t, dir)
	back, err := b.Params()
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range params {
		if !equal32(back[name], v) {
			t.Fatalf("parameter %s read back from the bundle differs from the one written", name)
		}
	}
	ids := randomIDs(c, L, 7)
	got, _ := runGraph(t, b, export.PrefillFile, ids, nil)
	want, _, err := model.ReferenceForward(c, model.ToFloat64(params), ids, 1, L, model.ZeroStates64(c, 1))
	if err != nil {
		t.Fatal(err)
	}
	if e := testutil.MaxRelErr(got, lastRows(want, 1, L, c.VocabSize)); e > 1e-4 {
		t.Errorf("float32 prefill.onnx differs from the float64 reference by %.3g", e)
	}
}

func equal32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func TestExternalWeightsGiveTheSameLogitsAsInline(t *testing.T) {
	c := tinyConfig(t)
	const L = 10
	inline, _ := writeBundle(t, c, 3, export.Options{PrefillLength: L, ExternalDataThreshold: -1})
	ext, _ := writeBundle(t, c, 3, export.Options{PrefillLength: L, ExternalDataThreshold: 1})
	bi, be := load(t, inline), load(t, ext)
	if bi.Manifest.ExternalWeights || !be.Manifest.ExternalWeights {
		t.Fatalf("external_weights: inline bundle %v, external bundle %v", bi.Manifest.ExternalWeights, be.Manifest.ExternalWeights)
	}
	w, err := os.Stat(filepath.Join(ext, export.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	if minBytes := 4 * model.ParamCount(c); w.Size() < minBytes || be.Manifest.Prefill.Bytes >= bi.Manifest.Prefill.Bytes-minBytes/2 {
		t.Errorf("weights.bin %d bytes (parameters need %d); prefill.onnx %d bytes external vs %d inline", w.Size(), minBytes, be.Manifest.Prefill.Bytes, bi.Manifest.Prefill.Bytes)
	}
	ids := randomIDs(c, L, 11)
	for _, file := range []string{export.PrefillFile, export.StepFile} {
		in := ids
		if file == export.StepFile {
			in = ids[:1]
		}
		a, _ := runGraph(t, bi, file, in, nil)
		z, _ := runGraph(t, be, file, in, nil)
		if e := testutil.MaxRelErr(z, a); e != 0 {
			t.Errorf("%s: external-weights logits differ from inline ones by %.3g", file, e)
		}
	}
	pi, _ := bi.Params()
	pe, err := be.Params()
	if err != nil {
		t.Fatal(err)
	}
	for name := range pi {
		if !equal32(pe[name], pi[name]) {
			t.Errorf("parameter %s differs between the external and inline bundles", name)
		}
	}
}

func TestManifestKeepsWhatTheCallerGave(t *testing.T) {
	c := tinyConfig(t)
	dir, _ := writeBundle(t, c, 4, export.Options{PrefillBatch: 2, PrefillLength: 16, StepBatch: 8})
	m := load(t, dir).Manifest
	info := testInfo(c)
	if m.Config != c || m.ParamCount != model.ParamCount(c) || m.ORTVersion != ort.Version || m.Format != export.FormatVersion {
		t.Errorf("manifest config/count/ORT/format: %+v", m)
	}
	if !bytes.Equal(compact(t, m.Tokenizer), compact(t, info.Tokenizer)) || !bytes.Equal(compact(t, m.Timing), compact(t, info.Timing)) {
		t.Errorf("tokenizer %s / timing %s not kept verbatim", m.Tokenizer, m.Timing)
	}
	if strings.Join(m.Labels, ",") != "web,dns" || m.Provenance.Step != 42 || !m.Provenance.Created.Equal(info.Provenance.Created) {
		t.Errorf("labels %v, provenance %+v", m.Labels, m.Provenance)
	}
	if m.Prefill.Batch != 2 || m.Prefill.Length != 16 || m.Step.Batch != 8 || m.Step.Length != 1 || m.Step.Float != "float32" {
		t.Errorf("graph infos: prefill %+v, step %+v", m.Prefill, m.Step)
	}
	for _, f := range []string{export.PrefillFile, export.StepFile} {
		if s := m.Files[f]; len(s.SHA256) != 64 || s.Bytes == 0 {
			t.Errorf("%s: checksum record %+v", f, s)
		}
	}
}

func compact(t *testing.T, raw json.RawMessage) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestLoadRefusesMismatchedBundle(t *testing.T) {
	c := tinyConfig(t)
	cases := []struct {
		name     string
		external bool
		damage   func(t *testing.T, dir string)
		names    string // the file the error must name
	}{
		{"a changed byte in step.onnx", false, func(t *testing.T, dir string) { flipByte(t, filepath.Join(dir, export.StepFile)) }, export.StepFile},
		{"a changed byte in weights.bin", true, func(t *testing.T, dir string) { flipByte(t, filepath.Join(dir, export.WeightsFile)) }, export.WeightsFile},
		{"prefill.onnx missing", false, func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, export.PrefillFile)) }, export.PrefillFile},
		{"weights.bin truncated", true, func(t *testing.T, dir string) { os.Truncate(filepath.Join(dir, export.WeightsFile), 100) }, export.WeightsFile},
		{"config with another d_model", false, func(t *testing.T, dir string) {
			editManifest(t, dir, func(m *export.Manifest) { m.Config.DModel = 32 })
		}, export.ManifestFile},
		{"config with another vocabulary, count adjusted", false, func(t *testing.T, dir string) {
			editManifest(t, dir, func(m *export.Manifest) {
				m.Config.VocabSize += 16
				m.ParamCount = model.ParamCount(m.Config)
			})
		}, export.PrefillFile},
		{"step graph of another batch", false, func(t *testing.T, dir string) {
			editManifest(t, dir, func(m *export.Manifest) { m.Step.Batch = 3 })
		}, export.StepFile},
		{"graph swapped with another model's", false, func(t *testing.T, dir string) {
			other, _ := writeBundle(t, c, 99, export.Options{})
			raw, err := os.ReadFile(filepath.Join(other, export.StepFile))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, export.StepFile), raw, 0o644); err != nil {
				t.Fatal(err)
			}
		}, export.StepFile},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := export.Options{ExternalDataThreshold: -1}
			if tc.external {
				o.ExternalDataThreshold = 1
			}
			dir, _ := writeBundle(t, c, 5, o)
			load(t, dir) // intact: loads
			tc.damage(t, dir)
			_, err := export.Load(dir)
			if err == nil {
				t.Fatal("Load accepted a mismatched bundle")
			}
			if !strings.Contains(err.Error(), tc.names) {
				t.Errorf("error %q does not name %s", err, tc.names)
			}
			if tc.names != export.ManifestFile && !errors.Is(err, export.ErrMismatch) {
				t.Errorf("error %q is not ErrMismatch", err)
			}
		})
	}
}

func flipByte(t *testing.T, path string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x40
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

func editManifest(t *testing.T, dir string, edit func(*export.Manifest)) {
	t.Helper()
	path := filepath.Join(dir, export.ManifestFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m export.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(&m)
	raw, _ = json.Marshal(m)
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWriteLeavesOnlyCompleteBundles(t *testing.T) {
	c := tinyConfig(t)
	parent := t.TempDir()
	dir := filepath.Join(parent, "bundle")
	params := model.InitParams(c, 6)

	// Bad parameters: nothing appears, no temporary directory is left.
	broken := model.InitParams(c, 6)
	delete(broken, "norm_f.weight")
	if _, err := export.Write(dir, testInfo(c), broken, export.Options{}); err == nil || !strings.Contains(err.Error(), "norm_f.weight") {
		t.Fatalf("Write with a missing parameter: %v, want an error naming it", err)
	}
	assertEntries(t, parent)

	// A tokenizer spec that is not JSON: refused before anything is written.
	badInfo := testInfo(c)
	badInfo.Tokenizer = json.RawMessage(`{"version":`)
	if _, err := export.Write(dir, badInfo, params, export.Options{}); err == nil || !strings.Contains(err.Error(), "tokenizer") {
		t.Fatalf("Write with a broken tokenizer spec: %v, want an error naming it", err)
	}
	assertEntries(t, parent)

	if _, err := export.Write(dir, testInfo(c), params, export.Options{}); err != nil {
		t.Fatal(err)
	}
	assertEntries(t, parent, "bundle")
	if fi, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	} else if fi.Mode().Perm() != 0o755 {
		t.Errorf("bundle directory mode %v, want rwxr-xr-x", fi.Mode().Perm())
	}
	first := load(t, dir).Manifest.Files[export.PrefillFile]

	// An existing bundle is kept unless overwriting is asked for.
	other := model.InitParams(c, 7)
	if _, err := export.Write(dir, testInfo(c), other, export.Options{}); err == nil {
		t.Fatal("Write replaced an existing bundle without Overwrite")
	}
	if got := load(t, dir).Manifest.Files[export.PrefillFile]; got != first {
		t.Fatal("a refused Write changed the existing bundle")
	}
	if _, err := export.Write(dir, testInfo(c), other, export.Options{Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	if got := load(t, dir).Manifest.Files[export.PrefillFile]; got == first {
		t.Fatal("Overwrite kept the old bundle")
	}
	assertEntries(t, parent, "bundle")
}

// assertEntries checks that dir holds exactly the named entries.
func assertEntries(t *testing.T, dir string, want ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s holds %v, want %v", dir, got, want)
	}
}

// checkerPython is Debian's interpreter, which python3-onnx installs into
// (a python3 earlier on PATH may lack onnx).
const checkerPython = "/usr/bin/python3"

func TestExportedGraphsPassONNXChecker(t *testing.T) {
	if err := exec.Command(checkerPython, "-c", "import onnx").Run(); err != nil {
		t.Skipf("%s cannot import onnx (install python3-onnx): %v", checkerPython, err)
	}
	c := tinyConfig(t)
	for _, ext := range []bool{false, true} {
		o := export.Options{PrefillLength: 20, ExternalDataThreshold: -1}
		if ext {
			o.ExternalDataThreshold = 1
		}
		dir, _ := writeBundle(t, c, 8, o)
		for _, f := range []string{export.PrefillFile, export.StepFile} {
			// Check the loaded model (external data read in), not the path:
			// onnx 1.12's check_model(path, full_check=True) writes the
			// shape-inferred model back over the file.
			script := "import sys, onnx\n" +
				"m = onnx.load(sys.argv[1])\n" +
				"onnx.checker.check_model(m, full_check=True)\n" +
				"print(m.ir_version, m.opset_import[0].version)\n"
			out, err := exec.Command(checkerPython, "-c", script, filepath.Join(dir, f)).CombinedOutput()
			if err != nil {
				t.Fatalf("external=%v %s: onnx.checker: %v\n%s", ext, f, err, out)
			}
			if got := strings.TrimSpace(string(out)); got != "8 17" {
				t.Errorf("external=%v %s: IR and opset %q, want 8 17", ext, f, got)
			}
		}
		load(t, dir) // the check left the files as they were
	}
}

// TestBundleSaysWhichCustomOpsItNeeds: a bundle of fused graphs lists the
// ops of netssm's domain each graph uses; a portable one lists none, and its
// graphs use only standard ops.
func TestBundleSaysWhichCustomOpsItNeeds(t *testing.T) {
	c := tinyConfig(t)
	c.Kernels = model.KernelsFused
	for _, tc := range []struct {
		c             model.Config
		prefill, step string
	}{{c, "ai.netssm.ConvSilu,ai.netssm.GatedRMSNorm,ai.netssm.RMSNorm,ai.netssm.SSDScan", "ai.netssm.BlockStep,ai.netssm.RMSNorm"}, {c.Portable(), "", ""}} {
		dir, _ := writeBundle(t, tc.c, 8, export.Options{PrefillLength: 20})
		m := load(t, dir).Manifest
		if got := strings.Join(m.Prefill.CustomOps, ","); got != tc.prefill {
			t.Errorf("kernels %q: prefill custom ops %q, want %q", tc.c.Kernels, got, tc.prefill)
		}
		if got := strings.Join(m.Step.CustomOps, ","); got != tc.step {
			t.Errorf("kernels %q: step custom ops %q, want %q", tc.c.Kernels, got, tc.step)
		}
		for _, f := range []string{export.PrefillFile, export.StepFile} {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if uses := bytes.Contains(b, []byte(graph.FusedDomain)); uses != tc.c.Fused() {
				t.Errorf("kernels %q: %s names the fused domain: %v", tc.c.Kernels, f, uses)
			}
		}
	}
}
