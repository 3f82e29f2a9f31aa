// Package atomicfile owns netssm's rule that an output file appears only when it
// is complete: everything is written to a temporary file in the destination's
// directory, synced, and renamed over the destination on Commit. A writer that
// is abandoned (Abort, or an error) leaves nothing behind that looks finished;
// one cut short that is worth keeping is published by CommitPartial under a
// name that says it is not complete.
package atomicfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// File is an output file under construction. Write to it, then Commit or Abort.
type File struct {
	*os.File
	dest string
	done bool
}

// Create starts writing dest. The temporary file lives beside dest (same
// filesystem, so the final rename is atomic) and is named after it.
func Create(dest string) (*File, error) {
	dir, base := filepath.Split(dest)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".partial-*")
	if err != nil {
		return nil, fmt.Errorf("creating temporary file for %s: %w", dest, err)
	}
	return &File{File: f, dest: dest}, nil
}

// PartialSuffix ends the name of a file that CommitPartial published: the
// destination's name plus this suffix, so that it matches no pattern the
// complete file would (trace-000001.pcap.partial is not a *.pcap).
const PartialSuffix = ".partial"

// Commit flushes the file to disk and renames it to its destination.
func (f *File) Commit() error {
	return f.commitAs(f.dest)
}

// CommitPartial publishes a file known to be incomplete as its destination
// plus PartialSuffix and returns that path. Like Commit, on failure it
// removes the file.
func (f *File) CommitPartial() (string, error) {
	p := f.dest + PartialSuffix
	return p, f.commitAs(p)
}

func (f *File) commitAs(dest string) error {
	if f.done {
		return fmt.Errorf("%s: already committed or aborted", f.dest)
	}
	f.done = true
	if err := f.File.Sync(); err != nil {
		f.File.Close()
		os.Remove(f.File.Name())
		return fmt.Errorf("syncing %s: %w", dest, err)
	}
	if err := f.File.Close(); err != nil {
		os.Remove(f.File.Name())
		return fmt.Errorf("closing %s: %w", dest, err)
	}
	if err := os.Chmod(f.File.Name(), 0o644); err != nil {
		os.Remove(f.File.Name())
		return fmt.Errorf("setting mode of %s: %w", dest, err)
	}
	if err := os.Rename(f.File.Name(), dest); err != nil {
		os.Remove(f.File.Name())
		return fmt.Errorf("renaming into place %s: %w", dest, err)
	}
	return nil
}

// Abort discards the temporary file. It is safe to call after Commit (it does
// nothing then), so `defer f.Abort()` is the usual pattern.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	os.Remove(f.File.Name())
}

// WriteFile writes data to dest atomically.
func WriteFile(dest string, data []byte) error {
	return Write(dest, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write calls fill with a writer for dest and commits only if fill succeeds.
func Write(dest string, fill func(w io.Writer) error) error {
	f, err := Create(dest)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := fill(f); err != nil {
		return err
	}
	return f.Commit()
}
