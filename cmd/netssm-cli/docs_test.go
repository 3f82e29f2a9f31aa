package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryTrainFlagIsDocumented: docs/training.md has a paragraph, headed
// "### `--NAME`", for every flag of `netssm-cli train`.
func TestEveryTrainFlagIsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "training.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range newApp().Commands {
		if c.Name != "train" {
			continue
		}
		for _, f := range c.Flags {
			name := f.Names()[0]
			if !strings.Contains(string(doc), "### `--"+name+"`") {
				t.Errorf("docs/training.md has no paragraph for train --%s", name)
			}
		}
		return
	}
	t.Fatal("no train command")
}
