package export_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/netssm/netssm/export"
	"github.com/netssm/netssm/model"
	"github.com/netssm/netssm/onnxpb"
)

// A config whose parameters cannot fit in the bundle's files is refused
// before anything is sized from it (n_layer 2^40 would otherwise list a
// trillion layers' parameters).
func TestLoadRefusesConfigLargerThanItsFiles(t *testing.T) {
	for name, edit := range map[string]func(*model.Config){
		"2^40 layers":          func(c *model.Config) { c.Layers = 1 << 40 },
		"d_model 2^31":         func(c *model.Config) { c.DModel = 1 << 31 },
		"vocabulary 2^50":      func(c *model.Config) { c.VocabSize = 1 << 50 },
		"d_state times layers": func(c *model.Config) { c.DState, c.Layers = 1<<20, 1<<20 },
	} {
		t.Run(name, func(t *testing.T) {
			dir, _ := writeBundle(t, tinyConfig(t), 5, export.Options{})
			editManifest(t, dir, func(m *export.Manifest) { edit(&m.Config) })
			_, err := export.Load(dir)
			if !errors.Is(err, export.ErrMismatch) || !strings.Contains(err.Error(), export.ManifestFile) {
				t.Fatalf("err = %v, want ErrMismatch naming %s", err, export.ManifestFile)
			}
		})
	}
}

// An initializer whose external data lies past the end of weights.bin is an
// error naming the graph, found before its bytes are allocated.
func TestParamsRefuseExternalDataPastWeightsFile(t *testing.T) {
	dir, _ := writeBundle(t, tinyConfig(t), 5, export.Options{ExternalDataThreshold: 1})
	path := filepath.Join(dir, export.PrefillFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(raw, &mp); err != nil {
		t.Fatal(err)
	}
	for _, e := range mp.GetGraph().GetInitializer()[0].GetExternalData() {
		if e.GetKey() == "length" {
			e.Value = proto.String("8000000000")
		}
	}
	if raw, err = proto.Marshal(&mp); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(raw)
	editManifest(t, dir, func(m *export.Manifest) {
		m.Files[export.PrefillFile] = export.FileSum{Bytes: int64(len(raw)), SHA256: hex.EncodeToString(h[:])}
	})
	b := load(t, dir)
	_, err = b.Params()
	if !errors.Is(err, export.ErrMismatch) || !strings.Contains(err.Error(), export.PrefillFile) || !strings.Contains(err.Error(), export.WeightsFile) {
		t.Fatalf("err = %v, want ErrMismatch naming %s and %s", err, export.PrefillFile, export.WeightsFile)
	}
}
