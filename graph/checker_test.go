package graph_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netssm/netssm/graph"
)

// onnxPython finds a Python interpreter that can import onnx: $NETSSM_PYTHON,
// or any python3 on PATH (Debian's python3-onnx installs the package for the
// system interpreter, which may not come first); else it skips the test.
func onnxPython(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("NETSSM_PYTHON")}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		candidates = append(candidates, filepath.Join(dir, "python3"))
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if exec.Command(c, "-c", "import onnx").Run() == nil {
			return c
		}
	}
	t.Skip("no python3 with the onnx package (Debian: python3-onnx)")
	return ""
}

// checkScript runs onnx.checker with full_check (strict shape inference) on
// each model; the builder's shapes are in value_info and the outputs, so ONNX
// reports any disagreement with its own inference.
const checkScript = `
import sys, onnx
bad = 0
for path in sys.argv[1:]:
    try:
        onnx.checker.check_model(onnx.load(path), full_check=True)
    except Exception as e:
        bad += 1
        print(path, str(e).splitlines()[0] if str(e) else repr(e))
sys.exit(1 if bad else 0)
`

func TestModelsPassTheONNXCheckerWithShapeInference(t *testing.T) {
	py := onnxPython(t)
	dir := t.TempDir()
	var paths []string
	write := func(name string, g *graph.Graph) {
		b, err := g.Serialize(graph.WithValueInfo())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		p := filepath.Join(dir, strings.ReplaceAll(name, "/", "_")+".onnx")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	g, _ := allOpsGraph()
	write("all_ops", g)
	for i, c := range append(gradCases, compositeCases...) {
		g, _, _, _ := gradGraph(t, c)
		write(fmt.Sprintf("grad%02d_%s", i, c.op), g)
	}
	out, err := exec.Command(py, append([]string{"-c", checkScript}, paths...)...).CombinedOutput()
	if err != nil {
		t.Errorf("onnx.checker: %v\n%s", err, out)
	}
}
