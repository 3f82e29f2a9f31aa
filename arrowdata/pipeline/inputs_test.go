package pipeline_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netssm/netssm/arrowdata/pipeline"
	"github.com/netssm/netssm/capture/labels"
)

func TestExpandInputsFollowsASymlinkedDirectory(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"real/web/a.pcap", "real/dns/b.pcapng", "real/notes.txt"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(filepath.Join(dir, "real"), link); err != nil {
		t.Fatal(err)
	}
	got, err := pipeline.ExpandInputs([]string{link})
	if err != nil {
		t.Fatal(err)
	}
	// The paths keep the name given, so labels from directory names hold.
	want := []string{filepath.Join(link, "dns/b.pcapng"), filepath.Join(link, "web/a.pcap")}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("ExpandInputs(symlinked directory) = %v, want %v", got, want)
	}
	for _, p := range got {
		if l, err := labels.FromDir(p); err != nil || (l != "web" && l != "dns") {
			t.Errorf("DirLabel(%s) = %q, %v", p, l, err)
		}
	}
}
