package labels_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netssm/netssm/capture/labels"
)

// TestCSVMatchesByPathRelativePathOrBaseName: a file is found by the path
// the CSV gives, by its path relative to the CSV's directory, or by its base
// name when that is unambiguous; a file not listed is an error naming it.
func TestCSVMatchesByPathRelativePathOrBaseName(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join(dir, "labels.csv")
	body := "file,label\nweb/a.pcap,web\nb.pcapng,dns\nx/dup.pcap,one\ny/dup.pcap,two\n"
	if err := os.WriteFile(csv, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	label, err := labels.ReadCSV(csv)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"web/a.pcap":                     "web",
		filepath.Join(dir, "web/a.pcap"): "web",
		"/elsewhere/b.pcapng":            "dns",
		filepath.Join(dir, "y/dup.pcap"): "two",
	} {
		if got, err := label(path); err != nil || got != want {
			t.Errorf("label(%s) = %q, %v; want %q", path, got, err, want)
		}
	}
	for _, path := range []string{"/elsewhere/dup.pcap", "/elsewhere/c.pcap"} {
		if _, err := label(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("label(%s): err = %v, want one naming the file", path, err)
		}
	}
}

func TestFromDirNamesTheParentDirectory(t *testing.T) {
	if got, err := labels.FromDir("captures/web/a.pcap"); err != nil || got != "web" {
		t.Errorf("FromDir = %q, %v; want web", got, err)
	}
	if _, err := labels.FromDir("a.pcap"); err == nil {
		t.Error("a file without a directory got a label")
	}
}
