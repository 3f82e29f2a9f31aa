package infer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netssm/netssm/export"
	"github.com/netssm/netssm/model"
	"github.com/netssm/netssm/tokenizer"
)

// bundleFiles are the files of a bundle, in the order FuzzLoadBundle takes
// them.
var bundleFiles = []string{export.ManifestFile, export.PrefillFile, export.StepFile, export.WeightsFile}

// bundleSeeds exports a minimal Mamba-2 (one layer, d_model 8) twice, with
// its parameters inside the graphs and in weights.bin, and returns each
// bundle's files in bundleFiles order (an absent file is empty).
func bundleSeeds(t testing.TB) [][4][]byte {
	spec := tokenizer.DefaultSpec()
	spec.Labels = []string{"web"}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	c := model.Config{DModel: 8, Layers: 1, DState: 4, HeadDim: 4, Expand: 2, DConv: 2, ChunkSize: 8, NGroups: 1}
	c = c.WithVocab(model.PadVocab(spec.VocabSize))
	timing, _ := json.Marshal(TimingTables{InterArrivalNs: map[string][]int64{"web": {1000, 50_000}}})
	var seeds [][4][]byte
	for i, threshold := range []int64{-1, 1} {
		dir := filepath.Join(t.TempDir(), "bundle"+string(rune('0'+i)))
		info := export.Info{Config: c, Tokenizer: raw, Labels: spec.Labels, Timing: timing}
		if _, err := export.Write(dir, info, model.InitParams(c, 5), export.Options{ExternalDataThreshold: threshold, PrefillLength: 8}); err != nil {
			t.Fatal(err)
		}
		var files [4][]byte
		for k, name := range bundleFiles {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			files[k] = b
		}
		seeds = append(seeds, files)
	}
	return seeds
}

// FuzzLoadBundle loads arbitrary bundle files (model.json, the two graphs,
// weights.bin): once as they are, and once with model.json's sizes and
// sha256 sums rewritten to match the other files, so that the fuzzer gets
// past the checksums to the config, graph and parameter checks. Nothing may
// panic, every error names a file of the bundle, and a bundle that loads
// has every parameter its config describes.
func FuzzLoadBundle(f *testing.F) {
	for _, s := range bundleSeeds(f) {
		if _, _, err := loadBundle(writeBundleFiles(f, s)); err != nil {
			f.Fatalf("a seed bundle does not load: %v", err)
		}
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, manifest, prefill, step, weights []byte) {
		files := [4][]byte{manifest, prefill, step, weights}
		checkLoadedBundle(t, files)
		if resealed, ok := resealManifest(files); ok {
			checkLoadedBundle(t, resealed)
		}
	})
}

// writeBundleFiles writes files into a fresh directory (weights.bin only
// when it is not nil) and returns it.
func writeBundleFiles(t testing.TB, files [4][]byte) string {
	dir := t.TempDir()
	for k, name := range bundleFiles {
		if files[k] == nil && name == export.WeightsFile {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), files[k], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func checkLoadedBundle(t *testing.T, files [4][]byte) {
	dir := writeBundleFiles(t, files)
	b, params, err := loadBundle(dir)
	if err != nil {
		if !strings.Contains(err.Error(), dir) {
			t.Fatalf("error names no file of the bundle: %v", err)
		}
		return
	}
	for _, ps := range model.ParamShapes(b.Manifest.Config) {
		if len(params[ps.Name]) != ps.Size() {
			t.Fatalf("parameter %s: %d values, its shape %v holds %d", ps.Name, len(params[ps.Name]), ps.Shape, ps.Size())
		}
	}
}

// resealManifest rewrites the size and sha256 model.json records for each
// of the other files (and each graph's byte count) to match them.
func resealManifest(files [4][]byte) ([4][]byte, bool) {
	var m map[string]any
	if err := json.Unmarshal(files[0], &m); err != nil || m == nil {
		return files, false
	}
	sums := map[string]any{}
	for k, name := range bundleFiles[1:] {
		b := files[k+1]
		if name == export.WeightsFile && b == nil {
			continue
		}
		h := sha256.Sum256(b)
		sums[name] = map[string]any{"bytes": len(b), "sha256": hex.EncodeToString(h[:])}
	}
	m["files"] = sums
	out := files
	var err error
	if out[0], err = json.Marshal(m); err != nil {
		return files, false
	}
	return out, true
}
