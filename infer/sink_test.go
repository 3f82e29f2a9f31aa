package infer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netssm/netssm/internal/atomicfile"
)

// fullDisk is a file system with room for budget more bytes, shared by
// every file written through it; a write past it fails like ENOSPC.
type fullDisk struct{ budget int }

// fullDiskFile is an atomicfile.File on a fullDisk.
type fullDiskFile struct {
	*atomicfile.File
	disk *fullDisk
}

func (f *fullDiskFile) Write(p []byte) (int, error) {
	n := min(len(p), max(f.disk.budget, 0))
	n, err := f.File.Write(p[:n])
	f.disk.budget -= n
	if err == nil && n < len(p) {
		err = errDiskFull
	}
	return n, err
}

func (d *fullDisk) sink(dir string) *PcapSink {
	return &PcapSink{Path: dir, Dir: true, create: func(dest string) (traceStore, error) {
		f, err := atomicfile.Create(dest)
		if err != nil {
			return nil, err
		}
		return &fullDiskFile{File: f, disk: d}, nil
	}}
}

// A write that fails partway through a run (the disk fills up) leaves no
// file under a trace's final name that is not the complete trace: complete
// traces keep their names, the trace being written when the disk filled up
// is kept as .partial and named by the error, the others in progress leave
// nothing, and no temporary file remains.
func TestWriteErrorLeavesNoCompleteLookingFileThatIsNotComplete(t *testing.T) {
	job := baseJob()
	job.Traces, job.Batch = 6, 3
	job.Limits = Limits{Packets: 2000} // > flushBytes per trace: traces reach the disk before they end
	m := &markovModel{noise: 2, noEOS: true}

	all := t.TempDir()
	if _, err := Generate(context.Background(), m, (&fullDisk{budget: 1 << 40}).sink(all), job); err != nil {
		t.Fatal(err)
	}
	total := dirBytes(t, all)
	for _, budget := range []int{0, total / 2, total - 100} {
		dir := t.TempDir()
		_, err := Generate(context.Background(), &markovModel{noise: 2, noEOS: true}, (&fullDisk{budget: budget}).sink(dir), job)
		var we *WriteError
		if !errors.As(err, &we) || !errors.Is(err, errDiskFull) {
			t.Fatalf("budget %d of %d bytes: got %v, want a WriteError wrapping the disk error", budget, total, err)
		}
		checkOnlyCompleteTraces(t, dir, err, job.Limits.Packets)
		t.Logf("disk of %d bytes: %v", budget, err)
	}
}

// checkOnlyCompleteTraces checks every file in dir: a .pcap holds a complete
// trace of packets packets; a .pcap.partial is named by runErr, with as
// many packets as it says; nothing else is there.
func checkOnlyCompleteTraces(t *testing.T, dir string, runErr error, packets int) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var we *WriteError
	errors.As(runErr, &we)
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		recs, perr := readRawPcap(b)
		switch {
		case strings.HasSuffix(e.Name(), ".pcap"):
			if perr != nil || len(recs) != packets {
				t.Errorf("%s looks complete but holds %d of %d packets (%v)", e.Name(), len(recs), packets, perr)
			}
		case strings.HasSuffix(e.Name(), ".pcap"+atomicfile.PartialSuffix):
			if !strings.Contains(runErr.Error(), path) || we.Kept != path {
				t.Errorf("the error %q does not name the incomplete %s", runErr, path)
			}
			if perr != nil || len(recs) != we.Packets || len(recs) == 0 || len(recs) >= packets {
				t.Errorf("%s holds %d packets (%v), the error says %d", e.Name(), len(recs), perr, we.Packets)
			}
		default:
			t.Errorf("%s left behind", e.Name())
		}
	}
	if we.Kept == "" && !strings.Contains(runErr.Error(), "no file of it was left") {
		t.Errorf("the error %q does not say that no file of the trace is left", runErr)
	}
}

func dirBytes(t *testing.T, dir string) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		n += int(fi.Size())
	}
	return n
}
