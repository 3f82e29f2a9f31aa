package capture_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netssm/netssm/capture"
)

func makeFiles(t *testing.T, dir string, files ...string) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFindFilesFindsCapturesAndNamesMissingPaths(t *testing.T) {
	dir := t.TempDir()
	makeFiles(t, dir, "a/x.pcap", "a/b/y.pcapng", "a/notes.txt", "z.cap")
	got, err := capture.FindFiles([]string{filepath.Join(dir, "a"), filepath.Join(dir, "z.cap"), filepath.Join(dir, "a/x.pcap")})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "a/b/y.pcapng"), filepath.Join(dir, "a/x.pcap"), filepath.Join(dir, "z.cap")}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("FindFiles = %v, want %v", got, want)
	}
	missing := filepath.Join(dir, "nope")
	if _, err := capture.FindFiles([]string{missing}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing path: err = %v, want one naming %s", err, missing)
	}
	os.MkdirAll(filepath.Join(dir, "empty"), 0o755)
	if _, err := capture.FindFiles([]string{filepath.Join(dir, "empty")}); err == nil {
		t.Error("directory without captures accepted")
	}
}

// TestFindFilesFollowsSymlinkedDirectories: a directory given as a link,
// and a label directory that is a link inside the input directory, are both
// searched, under the names given; a link cycle is searched once.
func TestFindFilesFollowsSymlinkedDirectories(t *testing.T) {
	dir := t.TempDir()
	makeFiles(t, dir, "real/web/a.pcap", "elsewhere/dns/b.pcapng")
	if err := os.Symlink(filepath.Join(dir, "elsewhere", "dns"), filepath.Join(dir, "real", "dns")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "real"), filepath.Join(dir, "real", "web", "loop")); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(filepath.Join(dir, "real"), link); err != nil {
		t.Fatal(err)
	}
	got, err := capture.FindFiles([]string{link})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(link, "dns/b.pcapng"), filepath.Join(link, "web/a.pcap")}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("FindFiles(symlinks) = %v, want %v", got, want)
	}
}
