package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestCommitPublishesOnlyCompleteFile(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "out.bin")
	f, err := Create(dest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("half")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("destination visible before Commit: %v", err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dest)
	if err != nil || string(got) != "half" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestFailedWriteLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "out.bin")
	boom := errors.New("boom")
	err := Write(dest, func(w io.Writer) error {
		w.Write([]byte("partial"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}

func TestCommitPartialPublishesUnderANameThatSaysSo(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "out.pcap")
	f, err := Create(dest)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("cut"))
	p, err := f.CommitPartial()
	if err != nil {
		t.Fatal(err)
	}
	if p != dest+PartialSuffix {
		t.Fatalf("published as %s, want %s", p, dest+PartialSuffix)
	}
	if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the incomplete file is under its final name: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "out.pcap"+PartialSuffix {
		t.Fatalf("directory holds %v", entries)
	}
}
